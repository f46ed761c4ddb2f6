//! The `DTab` custom resource (`dtabs.l5d.io`, version `v1alpha1`) as
//! Linkerd's namerd shaped it: a namespaced object whose `metadata.name` is
//! the dtab's namespace and whose `dentries` is a list of `{prefix, dst}`
//! strings; and its conversion from and to a [`Dtab`].

use std::borrow::Cow;

use dtab::{Dentry, Dtab, NameTree, Prefix};
use k8s_openapi::NamespaceResourceScope;
use kube::core::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::store::{Version, VersionedDtab};

/// The API group of the resource.
pub const GROUP: &str = "l5d.io";
/// Its version.
pub const VERSION: &str = "v1alpha1";
/// Its kind.
pub const KIND: &str = "DTab";
/// Its plural, the last segment of its URLs.
pub const PLURAL: &str = "dtabs";

/// One DTab object as the API server serves it.
///
/// `dentries` is kept as plain JSON and only read as a dtab afterwards: a
/// resource someone edited into something that is not a dtab must not stop
/// the list or watch of all the others from being read.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DtabResource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) kind: Option<String>,
    #[serde(default)]
    pub(super) metadata: ObjectMeta,
    #[serde(default)]
    pub(super) dentries: Value,
    /// Whatever else the object holds, kept as is when namerd replaces it.
    #[serde(flatten)]
    pub(super) other: Map<String, Value>,
}

impl kube::Resource for DtabResource {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        KIND.into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        GROUP.into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        VERSION.into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        PLURAL.into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl DtabResource {
    /// A new object for the dtab namespace `name`, in the Kubernetes
    /// namespace `namespace`.
    pub(super) fn new(namespace: &str, name: &str, dtab: &Dtab) -> DtabResource {
        DtabResource {
            api_version: Some(format!("{GROUP}/{VERSION}")),
            kind: Some(KIND.to_string()),
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(namespace.to_string()),
                ..ObjectMeta::default()
            },
            dentries: dentries(dtab),
            other: Map::new(),
        }
    }

    /// The object with its dentries replaced by `dtab`, and everything else
    /// (labels, annotations, other fields, the resource version) kept.
    pub(super) fn with_dtab(mut self, dtab: &Dtab) -> DtabResource {
        self.api_version = Some(format!("{GROUP}/{VERSION}"));
        self.kind = Some(KIND.to_string());
        self.dentries = dentries(dtab);
        self
    }

    /// Its name, which is the dtab's namespace.
    pub(super) fn name(&self) -> Option<&str> {
        self.metadata.name.as_deref()
    }

    /// Its resource version.
    pub(super) fn resource_version(&self) -> Option<&str> {
        self.metadata
            .resource_version
            .as_deref()
            .filter(|v| !v.is_empty())
    }

    /// The dtab it holds and its version, or why it holds none.
    pub(super) fn read(&self) -> Result<VersionedDtab, String> {
        let what = self.describe();
        let version = self
            .resource_version()
            .ok_or_else(|| format!("{what} has no metadata.resourceVersion"))?;
        let dtab = read_dentries(&self.dentries).map_err(|why| format!("{what}: {why}"))?;
        Ok(VersionedDtab {
            dtab,
            version: version_of(version),
        })
    }

    /// `DTab <namespace>/<name>`, for errors.
    pub(super) fn describe(&self) -> String {
        let meta = &self.metadata;
        format!(
            "DTab {}/{}",
            meta.namespace.as_deref().unwrap_or("?"),
            meta.name.as_deref().unwrap_or("?")
        )
    }
}

/// The store's version of a resource version: its bytes, as Linkerd kept
/// it (so the ETag is the base64 of the resource version's text).
pub(super) fn version_of(resource_version: &str) -> Version {
    Version(resource_version.as_bytes().to_vec())
}

/// The resource version a store version stands for, if it can be one.
pub(super) fn resource_version_of(version: &Version) -> Option<&str> {
    std::str::from_utf8(&version.0)
        .ok()
        .filter(|v| !v.is_empty())
}

/// `dtab` as the JSON list of `{prefix, dst}` the resource holds.
fn dentries(dtab: &Dtab) -> Value {
    Value::Array(
        dtab.iter()
            .map(|d| {
                let mut entry = Map::new();
                entry.insert("prefix".into(), Value::String(d.prefix.show()));
                entry.insert("dst".into(), Value::String(d.dst.show()));
                Value::Object(entry)
            })
            .collect(),
    )
}

/// Reads the `dentries` of a resource, naming the entry and field at fault.
/// Other fields of an entry are ignored, as Linkerd did.
fn read_dentries(value: &Value) -> Result<Dtab, String> {
    let entries = match value {
        Value::Array(entries) => entries,
        Value::Null => return Err("has no dentries".to_string()),
        other => return Err(format!("dentries is not a list: {other}")),
    };
    let mut dentries = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let field = |name: &str| {
            entry
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("dentries[{i}] has no string {name:?}: {entry}"))
        };
        let (prefix, dst) = (field("prefix")?, field("dst")?);
        let prefix = Prefix::read(prefix)
            .map_err(|e| format!("dentries[{i}].prefix {prefix:?} is not a prefix: {e}"))?;
        let dst = NameTree::read(dst)
            .map_err(|e| format!("dentries[{i}].dst {dst:?} is not a name tree: {e}"))?;
        dentries.push(Dentry::new(prefix, dst));
    }
    Ok(Dtab::new(dentries))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resource(object: Value) -> DtabResource {
        serde_json::from_value(object).unwrap()
    }

    #[test]
    fn linkerds_shape_is_read_as_is() {
        let object = resource(json!({
            "apiVersion": "l5d.io/v1alpha1", "kind": "DTab",
            "metadata": {"name": "default", "namespace": "linkerd", "resourceVersion": "42",
                         "labels": {"team": "web"}},
            "dentries": [
                {"prefix": "/svc", "dst": "/#/io.l5d.k8s/default/http"},
                {"prefix": "/svc/*/web", "dst": "/$/inet/127.0.0.1/8080 | ~"},
            ],
        }));
        let read = object.read().unwrap();
        assert_eq!(
            read.dtab.show(),
            "/svc=>/#/io.l5d.k8s/default/http;/svc/*/web=>/$/inet/127.0.0.1/8080 | ~"
        );
        assert_eq!(read.version, Version(b"42".to_vec()));
        assert_eq!(read.version.to_etag(), "NDI=");
    }

    #[test]
    fn what_is_not_a_dtab_is_refused_naming_the_resource_and_field() {
        let with = |dentries: Value| {
            resource(json!({
                "metadata": {"name": "web", "namespace": "ns", "resourceVersion": "3"},
                "dentries": dentries,
            }))
            .read()
            .unwrap_err()
        };
        let err = with(json!([{"prefix": "/svc", "dst": "/a |"}]));
        assert!(
            err.starts_with("DTab ns/web: dentries[0].dst \"/a |\""),
            "{err}"
        );
        let err = with(json!([{"prefix": "/svc"}]));
        assert!(err.contains("dentries[0] has no string \"dst\""), "{err}");
        let err = with(json!("/svc=>/a"));
        assert!(err.contains("dentries is not a list"), "{err}");
        let err = with(Value::Null);
        assert!(err.contains("has no dentries"), "{err}");
        let no_version = resource(json!({"metadata": {"name": "x"}, "dentries": []}));
        assert!(no_version.read().unwrap_err().contains("resourceVersion"));
    }

    #[test]
    fn a_written_resource_reads_back_the_same_and_keeps_other_fields() {
        let dtab = Dtab::read("/svc=>/#/io.l5d.fs;/svc/web=>/a | 2*/b & /c").unwrap();
        let new = DtabResource::new("linkerd", "default", &dtab);
        let json = serde_json::to_value(&new).unwrap();
        assert_eq!(json["apiVersion"], "l5d.io/v1alpha1");
        assert_eq!(json["kind"], "DTab");
        assert_eq!(json["metadata"]["name"], "default");
        assert_eq!(json["dentries"][1]["dst"], "/a | 2.00*/b & /c");

        let mut stored = resource(json!({
            "apiVersion": "l5d.io/v1alpha1", "kind": "DTab",
            "metadata": {"name": "default", "namespace": "linkerd", "resourceVersion": "7",
                         "annotations": {"owner": "ops"}},
            "dentries": [], "note": "kept",
        }));
        stored = stored.with_dtab(&dtab);
        let json = serde_json::to_value(&stored).unwrap();
        assert_eq!(json["note"], "kept");
        assert_eq!(json["metadata"]["annotations"]["owner"], "ops");
        assert_eq!(json["metadata"]["resourceVersion"], "7");
        assert_eq!(stored.read().unwrap().dtab.show(), dtab.show());
    }

    #[test]
    fn versions_are_resource_versions() {
        assert_eq!(resource_version_of(&version_of("123")), Some("123"));
        assert_eq!(resource_version_of(&Version(vec![0xff])), None);
        assert_eq!(resource_version_of(&Version(Vec::new())), None);
    }
}
