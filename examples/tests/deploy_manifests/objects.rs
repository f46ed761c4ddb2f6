//! Reading the manifests: every YAML document, parsed with the typed
//! `k8s-openapi` struct of its `apiVersion` and `kind`, and made strict by
//! a round trip: the typed value, written back as JSON, must hold every
//! key of the document (serde in `k8s-openapi` drops unknown keys
//! silently, so a `contianers:` would otherwise just vanish).

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::Resource;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolumeClaim, PodTemplateSpec, Service, ServiceAccount,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

/// The file every manifest must be listed in, and that is not one itself.
pub(crate) const KUSTOMIZATION: &str = "kustomization.yaml";

/// Declares the kinds the manifests may hold: the enum of typed objects and
/// the parser that picks the struct by `apiVersion` and `kind`. A kind not
/// listed here fails the test; adding one means also checking, in
/// `wiring.rs`, whatever it refers to.
macro_rules! kinds {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        /// One typed Kubernetes object. Some kinds are only parsed, never
        /// looked into, hence `dead_code`.
        #[allow(clippy::large_enum_variant, dead_code)]
        pub(crate) enum Object {
            $(
                #[allow(missing_docs)]
                $variant($ty),
            )*
        }

        /// Every `apiVersion kind` accepted, for messages.
        const KNOWN: &[(&str, &str)] = &[
            $((<$ty as Resource>::API_VERSION, <$ty as Resource>::KIND)),*
        ];

        /// The typed object for `value`, and that object written back.
        fn typed(api_version: &str, kind: &str, value: &Value) -> Result<(Object, Value), String> {
            $(
                if api_version == <$ty as Resource>::API_VERSION
                    && kind == <$ty as Resource>::KIND
                {
                    let object: $ty = serde_json::from_value(value.clone())
                        .map_err(|e| format!("not a valid {api_version} {kind}: {e}"))?;
                    let back = serde_json::to_value(&object)
                        .map_err(|e| format!("{kind} does not serialize: {e}"))?;
                    return Ok((Object::$variant(object), back));
                }
            )*
            let known: Vec<String> = KNOWN.iter().map(|(a, k)| format!("{a} {k}")).collect();
            Err(format!(
                "unknown kind {api_version} {kind}: the test knows {}",
                known.join(", ")
            ))
        }
    };
}

kinds! {
    Namespace(Namespace),
    ServiceAccount(ServiceAccount),
    ClusterRole(ClusterRole),
    ClusterRoleBinding(ClusterRoleBinding),
    Role(Role),
    RoleBinding(RoleBinding),
    ConfigMap(ConfigMap),
    Deployment(Deployment),
    DaemonSet(DaemonSet),
    Service(Service),
    PersistentVolumeClaim(PersistentVolumeClaim),
    PodDisruptionBudget(PodDisruptionBudget),
    CustomResourceDefinition(CustomResourceDefinition),
}

/// One document of one manifest file.
pub(crate) struct Doc {
    /// The file's name in `examples/deploy/kubernetes/`.
    pub(crate) file: String,
    /// Its position among the file's documents, from 1.
    pub(crate) index: usize,
    /// The document as written.
    pub(crate) value: Value,
    /// The document as its kind.
    pub(crate) object: Object,
}

impl Doc {
    /// `metadata.name`.
    pub(crate) fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or("")
    }

    /// `metadata.namespace`, if any.
    pub(crate) fn namespace(&self) -> Option<&str> {
        self.value["metadata"]["namespace"].as_str()
    }

    /// `kind`.
    pub(crate) fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }

    /// Where the document is and what it is, for messages:
    /// `namerd.yaml document 3 (Deployment switchboard/namerd)`.
    pub(crate) fn at(&self) -> String {
        let name = match self.namespace() {
            Some(ns) => format!("{ns}/{}", self.name()),
            None => self.name().to_string(),
        };
        format!(
            "{} document {} ({} {name})",
            self.file,
            self.index,
            self.kind()
        )
    }

    /// The pod template of a workload.
    pub(crate) fn pod_template(&self) -> Option<&PodTemplateSpec> {
        match &self.object {
            Object::Deployment(d) => d.spec.as_ref().map(|s| &s.template),
            Object::DaemonSet(d) => d.spec.as_ref().map(|s| &s.template),
            _ => None,
        }
    }

    /// The labels of a workload's pods.
    pub(crate) fn pod_labels(&self) -> BTreeMap<String, String> {
        self.pod_template()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default()
    }
}

/// Every manifest file of `dir`, by name (without the kustomization).
pub(crate) fn manifest_files(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .expect("the manifests directory")
        .map(|entry| entry.expect("a directory entry").file_name())
        .filter_map(|name| name.to_str().map(str::to_string))
        .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml"))
        .filter(|name| name != KUSTOMIZATION)
        .collect();
    files.sort();
    files
}

/// Every document of every manifest in `dir`, or every reason why not.
pub(crate) fn load(dir: &Path) -> Result<Vec<Doc>, Vec<String>> {
    let mut docs = Vec::new();
    let mut problems = Vec::new();
    for file in manifest_files(dir) {
        let text = std::fs::read_to_string(dir.join(&file)).expect("a readable manifest");
        match parse_file(&file, &text) {
            Ok(found) => docs.extend(found),
            Err(found) => problems.extend(found),
        }
    }
    if problems.is_empty() {
        Ok(docs)
    } else {
        Err(problems)
    }
}

/// The documents of one file, each checked strictly.
pub(crate) fn parse_file(file: &str, text: &str) -> Result<Vec<Doc>, Vec<String>> {
    let values: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|e| vec![format!("{file}: not YAML: {e}")])?;
    if values.is_empty() {
        return Err(vec![format!("{file}: no document")]);
    }
    let mut docs = Vec::new();
    let mut problems = Vec::new();
    for (i, value) in values.into_iter().enumerate() {
        let at = format!("{file} document {}", i + 1);
        let api_version = value["apiVersion"].as_str().unwrap_or("").to_string();
        let kind = value["kind"].as_str().unwrap_or("").to_string();
        let (object, back) = match typed(&api_version, &kind, &value) {
            Ok(found) => found,
            Err(why) => {
                problems.push(format!("{at}: {why}"));
                continue;
            }
        };
        let mut missing = Vec::new();
        lost_keys(&value, &back, "", &mut missing);
        for path in missing {
            problems.push(format!(
                "{at} ({kind}): key {path} is not a field of {api_version} {kind} \
                 (misspelled, misplaced or null)"
            ));
        }
        let doc = Doc {
            file: file.to_string(),
            index: i + 1,
            value,
            object,
        };
        if doc.name().is_empty() {
            problems.push(format!("{}: metadata.name is missing", doc.at()));
        }
        docs.push(doc);
    }
    if problems.is_empty() {
        Ok(docs)
    } else {
        Err(problems)
    }
}

/// Appends to `lost` the key path of every key of `written` that `back`
/// does not have at the same place: `spec.template.spec.contianers`,
/// `spec.ports[1].nmae`.
pub(crate) fn lost_keys(written: &Value, back: &Value, at: &str, lost: &mut Vec<String>) {
    match (written, back) {
        (Value::Object(written), Value::Object(back)) => {
            for (key, value) in written {
                let path = if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                };
                match back.get(key) {
                    Some(kept) => lost_keys(value, kept, &path, lost),
                    None => lost.push(path),
                }
            }
        }
        (Value::Array(written), Value::Array(back)) if written.len() == back.len() => {
            for (i, (value, kept)) in written.iter().zip(back).enumerate() {
                lost_keys(value, kept, &format!("{at}[{i}]"), lost);
            }
        }
        (Value::Object(_) | Value::Array(_), _) => lost.push(at.to_string()),
        _ => {}
    }
}
