//! The deployment files of `examples/deploy/`, checked strictly, since no
//! cluster and no container engine run here:
//!
//! - every Kubernetes object parses as the `k8s-openapi` type of its kind,
//!   with no key that the type does not have ([`objects`]);
//! - names resolve: namespaces, service accounts, roles, ConfigMaps,
//!   volumes, selectors ([`wiring`]);
//! - ports agree from container to Service to the router or namerd config
//!   behind it ([`wiring`]);
//! - each config reaches the Kubernetes API it uses and is allowed what it
//!   does there, with the environment its transformers read ([`access`]);
//! - each config passes `router --check` or `namerd --check` ([`configs`]);
//! - `kustomization.yaml` lists every manifest;
//! - each Containerfile builds a real binary and runs it as non-root
//!   ([`containers`]).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod configs;
mod containers;
mod objects;
mod wiring;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use objects::Doc;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn kubernetes_dir() -> PathBuf {
    deploy_dir().join("kubernetes")
}

/// Fails with every problem, one per line.
fn assert_none(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s):\n  {}\n",
        problems.len(),
        problems.join("\n  ")
    );
}

/// The manifests, or a failure listing why they do not parse.
fn docs() -> Vec<Doc> {
    objects::load(&kubernetes_dir()).unwrap_or_else(|problems| {
        assert_none("the manifests do not parse strictly", &problems);
        unreachable!()
    })
}

#[test]
fn every_object_parses_strictly_as_its_kind() {
    let docs = docs();
    let kinds: BTreeSet<&str> = docs.iter().map(Doc::kind).collect();
    for kind in [
        "Namespace",
        "Deployment",
        "DaemonSet",
        "Service",
        "ConfigMap",
        "ClusterRole",
        "Role",
    ] {
        assert!(
            kinds.contains(kind),
            "no {kind} in the manifests: {kinds:?}"
        );
    }
}

#[test]
fn strictness_catches_misspelled_misplaced_and_unknown_keys() {
    let text = "\
apiVersion: v1
kind: Namespace
metadata:
  name: fine
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
      replicas: 2
    spec:
      contianers:
      - name: web
      containers:
      - name: web
        image: web
        ports:
        - nmae: http
          containerPort: 80
---
apiVersion: example.com/v1
kind: Widget
metadata:
  name: w
";
    let problems = objects::parse_file("typos.yaml", text)
        .err()
        .expect("refused");
    let expect = [
        "typos.yaml document 2 (Deployment): key spec.template.metadata.replicas is not a field",
        "typos.yaml document 2 (Deployment): key spec.template.spec.contianers is not a field",
        "typos.yaml document 2 (Deployment): key spec.template.spec.containers[0].ports[0].nmae is not a field",
        "typos.yaml document 3: unknown kind example.com/v1 Widget",
    ];
    for want in expect {
        assert!(
            problems.iter().any(|p| p.starts_with(want)),
            "no problem starting {want:?} in {problems:#?}"
        );
    }
    assert_eq!(problems.len(), expect.len(), "{problems:#?}");
}

#[test]
fn kustomization_lists_every_manifest() {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Kustomization {
        api_version: String,
        kind: String,
        resources: Vec<String>,
    }
    let path = kubernetes_dir().join(objects::KUSTOMIZATION);
    let text = std::fs::read_to_string(&path).expect("kustomization.yaml");
    let k: Kustomization = serde_saphyr::from_str(&text).expect("kustomization.yaml, strictly");
    assert_eq!(k.api_version, "kustomize.config.k8s.io/v1beta1");
    assert_eq!(k.kind, "Kustomization");
    let listed: BTreeSet<String> = k.resources.iter().cloned().collect();
    assert_eq!(
        listed.len(),
        k.resources.len(),
        "a resource listed twice: {:?}",
        k.resources
    );
    let files: BTreeSet<String> = objects::manifest_files(&kubernetes_dir())
        .into_iter()
        .collect();
    let missing: Vec<_> = files.difference(&listed).collect();
    let absent: Vec<_> = listed.difference(&files).collect();
    assert!(
        missing.is_empty(),
        "manifests not in kustomization.yaml: {missing:?}"
    );
    assert!(
        absent.is_empty(),
        "kustomization.yaml lists files that do not exist: {absent:?}"
    );
}

#[test]
fn objects_refer_to_objects_that_exist() {
    let docs = docs();
    let mut problems = wiring::namespaces(&docs);
    problems.extend(wiring::references(&docs));
    assert_none("references", &problems);
}

#[test]
fn ports_agree_between_containers_services_and_configs() {
    let docs = docs();
    let embedded = configs::embedded(&docs).unwrap_or_else(|p| {
        assert_none("configs in ConfigMaps", &p);
        unreachable!()
    });
    assert_none("ports", &wiring::ports(&docs, &embedded));
}

#[test]
fn configs_reach_and_may_use_the_kubernetes_api() {
    let docs = docs();
    let embedded = configs::embedded(&docs).unwrap_or_else(|p| {
        assert_none("configs in ConfigMaps", &p);
        unreachable!()
    });
    let mut problems = access::api_access(&docs, &embedded);
    problems.extend(access::transformer_env(&docs, &embedded));
    assert_none("Kubernetes API access", &problems);
}

#[test]
fn embedded_configs_pass_the_real_checks() {
    let docs = docs();
    let embedded = configs::embedded(&docs).unwrap_or_else(|p| {
        assert_none("configs in ConfigMaps", &p);
        unreachable!()
    });
    let programs: BTreeSet<String> = embedded
        .iter()
        .map(|e| format!("{:?}", e.program))
        .collect();
    assert_eq!(
        programs.len(),
        2,
        "expected router and namerd configs, found {programs:?}"
    );
    let problems: Vec<String> = embedded.iter().flat_map(configs::check).collect();
    assert_none("router --check / namerd --check", &problems);
}

#[test]
fn containerfiles_build_real_binaries_as_non_root() {
    let dir = deploy_dir().join("containers");
    let workspace = containers::workspace();
    let mut problems = Vec::new();
    let mut images = Vec::new();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("examples/deploy/containers")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".Containerfile"))
        .collect();
    files.sort();
    for file in &files {
        let text = std::fs::read_to_string(dir.join(file)).expect("a Containerfile");
        match containers::check(file, &text, &workspace) {
            Ok(image) => images.push(image),
            Err(found) => problems.extend(found),
        }
    }
    // One image per binary of the router and namerd packages.
    let wanted: BTreeSet<&String> = ["router", "namerd"]
        .iter()
        .flat_map(|p| workspace.bins.get(*p).into_iter().flatten())
        .collect();
    let built: BTreeSet<&String> = images.iter().map(|i| &i.bin).collect();
    if wanted != built {
        problems.push(format!(
            "Containerfiles build {built:?}; the binaries to ship are {wanted:?}"
        ));
    }
    // The manifests run those images as the user the image names.
    for doc in docs().iter() {
        let Some(spec) = wiring::pod_spec(doc) else {
            continue;
        };
        let pod_uid = spec.security_context.as_ref().and_then(|s| s.run_as_user);
        for container in &spec.containers {
            let image = container.image.as_deref().unwrap_or("");
            let repo = image
                .rsplit('/')
                .next()
                .unwrap_or("")
                .split(':')
                .next()
                .unwrap_or("");
            let Some(bin) = repo.strip_prefix("switchboard-") else {
                continue;
            };
            match images.iter().find(|i| i.bin == bin) {
                None => problems.push(format!(
                    "{}: container {} runs {image}, which no Containerfile builds",
                    doc.at(),
                    container.name
                )),
                Some(built) => {
                    let uid = container
                        .security_context
                        .as_ref()
                        .and_then(|s| s.run_as_user)
                        .or(pod_uid);
                    if uid != Some(built.uid.into()) {
                        problems.push(format!(
                            "{}: container {} runs as {uid:?}, the image as {}",
                            doc.at(),
                            container.name,
                            built.uid
                        ));
                    }
                }
            }
        }
    }
    assert_none("Containerfiles", &problems);
}
