//! The router and namerd configs held in ConfigMaps: which container reads
//! each, and the checks `router --check` and `namerd --check` run on them.
//!
//! A config is checked in a child process (the `config_check` binary of
//! this package) with the environment its container would have:
//! the Kubernetes transformers read `POD_IP` or `NODE_NAME` when they are
//! built, and a test may not set its own environment (that is `unsafe`).

use std::collections::BTreeMap;
use std::process::Command;

use k8s_openapi::api::core::v1::Container;
use serde_json::Value;

use crate::objects::{Doc, Object};

/// Which program reads a config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Program {
    /// `router`.
    Router,
    /// `namerd`.
    Namerd,
}

impl Program {
    /// The program a container image runs: `switchboard-router:…` is the
    /// router (the images of `examples/deploy/containers/`).
    pub(crate) fn of_image(image: &str) -> Option<Program> {
        let repo = image.rsplit('/').next().unwrap_or(image);
        let repo = repo.split([':', '@']).next().unwrap_or(repo);
        match repo {
            "switchboard-router" => Some(Program::Router),
            "switchboard-namerd" => Some(Program::Namerd),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Program::Router => "router",
            Program::Namerd => "namerd",
        }
    }
}

/// A container that reads a config, and the pod it runs in.
pub(crate) struct Reader<'a> {
    /// The Deployment or DaemonSet.
    pub(crate) workload: &'a Doc,
    /// The container.
    pub(crate) container: &'a Container,
}

/// One config file held in a ConfigMap.
pub(crate) struct Embedded<'a> {
    /// The ConfigMap.
    pub(crate) config_map: &'a Doc,
    /// Its key.
    pub(crate) key: String,
    /// The text.
    pub(crate) text: String,
    /// The text as plain values.
    pub(crate) value: Value,
    /// What reads it, by the image of the containers that name it in
    /// their arguments.
    pub(crate) program: Program,
    /// Those containers.
    pub(crate) readers: Vec<Reader<'a>>,
}

impl Embedded<'_> {
    /// For messages: `router.yaml document 4 (ConfigMap …): key router.yaml`.
    pub(crate) fn at(&self) -> String {
        format!("{}: key {}", self.config_map.at(), self.key)
    }
}

/// The ConfigMap `name` in the namespace of `workload`.
pub(crate) fn config_map<'a>(docs: &'a [Doc], workload: &Doc, name: &str) -> Option<&'a Doc> {
    docs.iter().find(|d| {
        matches!(d.object, Object::ConfigMap(_))
            && d.name() == name
            && d.namespace() == workload.namespace()
    })
}

/// The keys of a ConfigMap.
pub(crate) fn keys(config_map: &Doc) -> Vec<String> {
    match &config_map.object {
        Object::ConfigMap(map) => map.data.iter().flat_map(|d| d.keys().cloned()).collect(),
        _ => Vec::new(),
    }
}

/// Where a container of `workload` sees the keys of ConfigMaps: file path
/// to (ConfigMap name, key).
pub(crate) fn mounted_files(
    docs: &[Doc],
    workload: &Doc,
    container: &Container,
) -> BTreeMap<String, (String, String)> {
    let mut found = BTreeMap::new();
    let Some(spec) = workload.pod_template().and_then(|t| t.spec.as_ref()) else {
        return found;
    };
    for volume in spec.volumes.iter().flatten() {
        let Some(source) = volume.config_map.as_ref() else {
            continue;
        };
        for mount in container.volume_mounts.iter().flatten() {
            if mount.name != volume.name {
                continue;
            }
            let dir = mount.mount_path.trim_end_matches('/');
            let items: Vec<(String, String)> = match &source.items {
                Some(items) => items
                    .iter()
                    .map(|i| (i.key.clone(), i.path.clone()))
                    .collect(),
                None => config_map(docs, workload, &source.name)
                    .map(keys)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|k| (k.clone(), k))
                    .collect(),
            };
            for (key, path) in items {
                found.insert(format!("{dir}/{path}"), (source.name.clone(), key));
            }
        }
    }
    found
}

/// Every config held in a ConfigMap (a key ending in `.yaml`, `.yml` or
/// `.json`), with the containers that read it; or what is wrong.
pub(crate) fn embedded(docs: &[Doc]) -> Result<Vec<Embedded<'_>>, Vec<String>> {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for map_doc in docs {
        let Object::ConfigMap(map) = &map_doc.object else {
            continue;
        };
        for (key, text) in map.data.iter().flatten() {
            if ![".yaml", ".yml", ".json"].iter().any(|e| key.ends_with(e)) {
                continue;
            }
            let at = format!("{}: key {key}", map_doc.at());
            let value: Value = match serde_saphyr::from_str(text) {
                Ok(value) => value,
                Err(e) => {
                    problems.push(format!("{at}: not YAML: {e}"));
                    continue;
                }
            };
            let mut readers = Vec::new();
            for workload in docs {
                let Some(spec) = workload.pod_template().and_then(|t| t.spec.as_ref()) else {
                    continue;
                };
                for container in &spec.containers {
                    let files = mounted_files(docs, workload, container);
                    let reads = container.args.iter().flatten().any(|arg| {
                        files.get(arg).is_some_and(|(m, k)| {
                            m == map_doc.name()
                                && k == key
                                && workload.namespace() == map_doc.namespace()
                        })
                    });
                    if reads {
                        readers.push(Reader {
                            workload,
                            container,
                        });
                    }
                }
            }
            let programs: Vec<Option<Program>> = readers
                .iter()
                .map(|r| r.container.image.as_deref().and_then(Program::of_image))
                .collect();
            let program = match programs.first() {
                None => {
                    problems.push(format!(
                        "{at}: no container reads it (none names its mounted path in its args)"
                    ));
                    continue;
                }
                Some(None) => {
                    problems.push(format!(
                        "{at}: read by container {} of {}, whose image is not a switchboard-router \
                         or switchboard-namerd image",
                        readers[0].container.name,
                        readers[0].workload.at()
                    ));
                    continue;
                }
                Some(Some(p)) if programs.iter().all(|q| *q == Some(*p)) => *p,
                Some(Some(_)) => {
                    problems.push(format!("{at}: read by different programs"));
                    continue;
                }
            };
            found.push(Embedded {
                config_map: map_doc,
                key: key.clone(),
                text: text.clone(),
                value,
                program,
                readers,
            });
        }
    }
    if problems.is_empty() {
        Ok(found)
    } else {
        Err(problems)
    }
}

/// What a value of the downward API would be in a pod, for the check.
fn sample_field(field_path: &str) -> &'static str {
    match field_path {
        "status.podIP" => "10.244.1.7",
        "status.hostIP" => "10.0.0.11",
        "spec.nodeName" => "node-1",
        "metadata.name" => "pod-1",
        "metadata.namespace" => "default",
        _ => "sample",
    }
}

/// The environment `container` gets: its literal values, the downward API
/// with sample values, and what the kubelet gives every pod.
fn pod_env(container: &Container) -> BTreeMap<String, String> {
    let mut env = BTreeMap::from([
        (
            "KUBERNETES_SERVICE_HOST".to_string(),
            "10.96.0.1".to_string(),
        ),
        ("KUBERNETES_SERVICE_PORT".to_string(), "443".to_string()),
    ]);
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(value), _) => value.clone(),
            (None, Some(from)) => match &from.field_ref {
                Some(field) => sample_field(&field.field_path).to_string(),
                None => "sample".to_string(),
            },
            (None, None) => String::new(),
        };
        env.insert(var.name.clone(), value);
    }
    env
}

/// Kinds the real check refuses today because they are being built on
/// other branches: (what, kind, branch). Their refusal is still a failure.
const NOT_MERGED_YET: &[(&str, &str, &str)] = &[
    ("interface", "io.l5d.thriftNameInterpreter", "thrift-iface"),
    ("interface", "io.l5d.mesh", "mesh-iface"),
    ("storage", "io.l5d.k8s", "k8s-store"),
];

/// The entry of [`NOT_MERGED_YET`] that `error` is the refusal of.
fn not_merged_yet(error: &str) -> Option<(&'static str, &'static str, &'static str)> {
    NOT_MERGED_YET.iter().copied().find(|(what, kind, _)| {
        error.contains(&format!("{what} kind \"{kind}\" is not supported yet"))
    })
}

/// `value` without the entries of kind `kind` (an interface), or with an
/// in-memory store in place of the storage of that kind.
fn set_aside(value: &mut Value, what: &str, kind: &str) {
    match what {
        "interface" => {
            if let Some(list) = value["interfaces"].as_array_mut() {
                list.retain(|i| i["kind"] != kind);
            }
        }
        _ => {
            value["storage"] = serde_json::json!({"kind": "io.l5d.inMemory"});
        }
    }
}

/// Runs the real check of `embedded` with the environment of each
/// container that reads it. A namerd config refused only for kinds of
/// [`NOT_MERGED_YET`] is still a failure, whose message says so and
/// whether the rest of the config passes.
pub(crate) fn check(embedded: &Embedded<'_>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut envs: Vec<BTreeMap<String, String>> = Vec::new();
    for reader in &embedded.readers {
        let env = pod_env(reader.container);
        if !envs.contains(&env) {
            envs.push(env);
        }
    }
    let name = format!("{}/{}", embedded.config_map.file, embedded.key);
    for env in &envs {
        let Err(first) = run_child(embedded.program, &name, &embedded.text, env) else {
            continue;
        };
        // Set aside each refused kind that is not merged yet and check
        // again, until the check passes or refuses something else.
        let mut refused = Vec::new();
        let mut value = embedded.value.clone();
        let mut last = first.clone();
        let error = loop {
            match not_merged_yet(&last) {
                Some(entry) if embedded.program == Program::Namerd && !refused.contains(&entry) => {
                    refused.push(entry);
                    set_aside(&mut value, entry.0, entry.1);
                    let json = serde_json::to_string_pretty(&value).unwrap_or_default();
                    match run_child(embedded.program, &name, &json, env) {
                        Ok(()) => break None,
                        Err(e) => last = e,
                    }
                }
                _ => break Some(last),
            }
        };
        if refused.is_empty() {
            problems.push(format!(
                "{}: {} --check fails: {first}",
                embedded.at(),
                embedded.program.name()
            ));
            continue;
        }
        let kinds: Vec<String> = refused
            .iter()
            .map(|(what, kind, branch)| format!("{what} {kind} (branch {branch})"))
            .collect();
        let rest = match &error {
            None => {
                "with those entries set aside, the rest of the config passes the check".to_string()
            }
            Some(e) => format!("with those entries set aside, the check still fails: {e}"),
        };
        problems.push(format!(
            "{}: {} --check refuses kinds that are not merged into this branch yet: {}; {rest}. \
             First refusal: {first}",
            embedded.at(),
            embedded.program.name(),
            kinds.join(", ")
        ));
    }
    problems
}

/// What the child prints before its verdict.
const VERDICT: &str = "deploy-config-check:";

/// Checks `text` as a config of `program` in a child process with `env`.
fn run_child(
    program: Program,
    name: &str,
    text: &str,
    env: &BTreeMap<String, String>,
) -> Result<(), String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_config_check"));
    command
        .arg(program.name())
        .arg(name)
        .env("CONFIG_CHECK_TEXT", text);
    for var in [
        "NODE_NAME",
        "POD_IP",
        "KUBERNETES_SERVICE_HOST",
        "KUBERNETES_SERVICE_PORT",
    ] {
        command.env_remove(var);
    }
    command.envs(env);
    let output = command
        .output()
        .map_err(|e| format!("running the check: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let verdict = stdout
        .lines()
        .find_map(|line| line.split_once(VERDICT).map(|(_, verdict)| verdict))
        .map(str::trim);
    match verdict {
        Some("ok") => Ok(()),
        Some(error) => {
            Err(serde_json::from_str::<String>(error).unwrap_or_else(|_| error.to_string()))
        }
        None => Err(format!(
            "the check said nothing ({}): {}{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        )),
    }
}
