//! What the configs need from their pods: the Kubernetes API (through a
//! `kubectl proxy` beside them or in-cluster with a token), the RBAC grants
//! for what they read and write there, the DTab custom resource, and the
//! environment the Kubernetes transformers read.

use k8s_openapi::api::core::v1::Container;
use k8s_openapi::api::rbac::v1::PolicyRule;

use crate::configs::{Embedded, Program};
use crate::objects::{Doc, Object};
use crate::wiring::{pod_spec, transformers};

/// What a config reads or writes through the Kubernetes API.
enum Need {
    /// Lists and watches Services and Endpoints: in one namespace, or in
    /// any (`None`) when dtabs pick the namespace.
    Services(Option<String>),
    /// Keeps dtabs as `dtabs.l5d.io` objects in a namespace.
    Dtabs(String),
}

/// One use of the API: where in the config, the `host`/`port` keys, what
/// it needs.
struct ApiUse {
    at: String,
    host: Option<String>,
    port: Option<u64>,
    need: Need,
}

fn api_uses(config: &Embedded<'_>) -> Vec<ApiUse> {
    let v = &config.value;
    let mut uses = Vec::new();
    for (i, namer) in v["namers"].as_array().into_iter().flatten().enumerate() {
        if namer["kind"] == "io.l5d.k8s" {
            uses.push(ApiUse {
                at: format!("namers[{i}]"),
                host: namer["host"].as_str().map(str::to_string),
                port: namer["port"].as_u64(),
                need: Need::Services(None),
            });
        }
    }
    for (at, t) in transformers(config) {
        if t["kind"] == "io.l5d.k8s.daemonset" {
            uses.push(ApiUse {
                at,
                host: t["k8sHost"].as_str().map(str::to_string),
                port: t["k8sPort"].as_u64(),
                need: Need::Services(t["namespace"].as_str().map(str::to_string)),
            });
        }
    }
    if config.program == Program::Namerd && v["storage"]["kind"] == "io.l5d.k8s" {
        uses.push(ApiUse {
            at: "storage".into(),
            host: v["storage"]["host"].as_str().map(str::to_string),
            port: v["storage"]["port"].as_u64(),
            need: Need::Dtabs(
                v["storage"]["namespace"]
                    .as_str()
                    .unwrap_or("default")
                    .to_string(),
            ),
        });
    }
    uses
}

/// The port a `kubectl proxy` container listens on, if it is one.
fn kubectl_proxy_port(container: &Container) -> Option<u64> {
    let args: Vec<&str> = container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
        .map(String::as_str)
        .collect();
    let image = container.image.as_deref().unwrap_or("");
    if !image.contains("kubectl") || !args.contains(&"proxy") {
        return None;
    }
    let mut port = 8001;
    for (i, arg) in args.iter().enumerate() {
        if let Some(p) = arg.strip_prefix("--port=") {
            port = p.parse().ok()?;
        } else if (*arg == "--port" || *arg == "-p") && i + 1 < args.len() {
            port = args[i + 1].parse().ok()?;
        }
    }
    Some(port)
}

fn rule_allows(rule: &PolicyRule, group: &str, resource: &str, verb: &str) -> bool {
    let has = |list: Option<&Vec<String>>, want: &str| {
        list.is_some_and(|l| l.iter().any(|x| x == want || x == "*"))
    };
    has(rule.api_groups.as_ref(), group)
        && has(rule.resources.as_ref(), resource)
        && (rule.verbs.iter().any(|v| v == verb || v == "*"))
        && rule.resource_names.as_ref().is_none_or(Vec::is_empty)
}

fn role_rules<'a>(
    docs: &'a [Doc],
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> Vec<&'a PolicyRule> {
    docs.iter()
        .filter(|d| d.kind() == kind && d.name() == name)
        .flat_map(|d| match &d.object {
            Object::ClusterRole(r) => r.rules.iter().flatten().collect::<Vec<_>>(),
            Object::Role(r) if d.namespace() == namespace => r.rules.iter().flatten().collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// Whether the service account `namespace/account` may `verb` the
/// `resource` of API `group` in `target` (`None`: in every namespace).
fn allowed(
    docs: &[Doc],
    (namespace, account): (&str, &str),
    target: Option<&str>,
    (group, resource, verb): (&str, &str, &str),
) -> bool {
    let is_subject = |subjects: Option<&Vec<k8s_openapi::api::rbac::v1::Subject>>| {
        subjects.into_iter().flatten().any(|s| {
            s.kind == "ServiceAccount"
                && s.name == account
                && s.namespace.as_deref() == Some(namespace)
        })
    };
    docs.iter().any(|d| {
        let rules = match &d.object {
            Object::ClusterRoleBinding(b) if is_subject(b.subjects.as_ref()) => {
                role_rules(docs, &b.role_ref.kind, None, &b.role_ref.name)
            }
            Object::RoleBinding(b)
                if target.is_some()
                    && d.namespace() == target
                    && is_subject(b.subjects.as_ref()) =>
            {
                role_rules(docs, &b.role_ref.kind, d.namespace(), &b.role_ref.name)
            }
            _ => Vec::new(),
        };
        rules.iter().any(|r| rule_allows(r, group, resource, verb))
    })
}

/// Each config's uses of the Kubernetes API: reachable from its pod, and
/// allowed to its service account.
pub(crate) fn api_access(docs: &[Doc], embedded: &[Embedded<'_>]) -> Vec<String> {
    let mut problems = Vec::new();
    for config in embedded {
        for u in api_uses(config) {
            let at = format!("{}: {}", config.at(), u.at);
            for reader in &config.readers {
                let Some(spec) = pod_spec(reader.workload) else {
                    continue;
                };
                let pod = reader.workload.at();
                match u.host.as_deref() {
                    None if u.port.is_none() => {
                        if spec.automount_service_account_token == Some(false) {
                            problems.push(format!(
                                "{at}: uses the in-cluster API server, but {pod} mounts no service-account token"
                            ));
                        }
                    }
                    Some("localhost" | "127.0.0.1" | "::1") | None => {
                        let port = u.port.unwrap_or(8001);
                        if !spec.containers.iter().any(|c| kubectl_proxy_port(c) == Some(port)) {
                            problems.push(format!("{at}: uses a kubectl proxy on port {port}, which {pod} does not run"));
                        }
                    }
                    Some(host) => problems.push(format!("{at}: API server {host:?} is neither in-cluster nor a kubectl proxy in the pod")),
                }
                let ns = reader.workload.namespace().unwrap_or("default");
                let account = (
                    ns,
                    spec.service_account_name.as_deref().unwrap_or("default"),
                );
                let wants: Vec<(Option<&str>, &str, &str, &[&str])> = match &u.need {
                    Need::Services(target) => vec![
                        (target.as_deref(), "", "services", &["list", "watch"]),
                        (target.as_deref(), "", "endpoints", &["list", "watch"]),
                    ],
                    Need::Dtabs(target) => vec![(
                        Some(target.as_str()),
                        "l5d.io",
                        "dtabs",
                        &["get", "list", "watch", "create", "update", "delete"],
                    )],
                };
                for (target, group, resource, verbs) in wants {
                    for verb in verbs {
                        if !allowed(docs, account, target, (group, resource, verb)) {
                            let scope = target.map_or("every namespace".to_string(), |t| {
                                format!("namespace {t}")
                            });
                            problems.push(format!(
                                "{at}: service account {}/{} may not {verb} {resource} ({group:?}) in {scope}",
                                account.0, account.1
                            ));
                        }
                    }
                }
                if let Need::Dtabs(_) = &u.need {
                    problems.extend(dtab_crd(docs).err().map(|why| format!("{at}: {why}")));
                }
            }
        }
    }
    problems
}

/// The DTab custom resource the k8s store keeps dtabs as, as Linkerd's
/// namerd has it: `dtabs.l5d.io`, version `v1alpha1`, namespaced.
fn dtab_crd(docs: &[Doc]) -> Result<(), String> {
    let crd = docs
        .iter()
        .find_map(|d| match &d.object {
            Object::CustomResourceDefinition(c) if d.name() == "dtabs.l5d.io" => Some(c),
            _ => None,
        })
        .ok_or(
            "the CustomResourceDefinition dtabs.l5d.io is not in the manifests (dtab-crd.yaml)",
        )?;
    let spec = &crd.spec;
    let served = spec
        .versions
        .iter()
        .any(|v| v.name == "v1alpha1" && v.served);
    if spec.group != "l5d.io"
        || spec.names.plural != "dtabs"
        || spec.names.kind != "DTab"
        || spec.scope != "Namespaced"
        || !served
    {
        return Err("dtabs.l5d.io must be group l5d.io, plural dtabs, kind DTab, Namespaced, serving v1alpha1".into());
    }
    Ok(())
}

/// The variables the Kubernetes transformers read come from the downward
/// API, and their `hostNetwork` is the pods'.
pub(crate) fn transformer_env(docs: &[Doc], embedded: &[Embedded<'_>]) -> Vec<String> {
    let mut problems = Vec::new();
    for config in embedded {
        for (at, t) in transformers(config) {
            let host_network = t["hostNetwork"].as_bool().unwrap_or(false);
            let at = format!("{}: {at}", config.at());
            match t["kind"].as_str() {
                Some("io.l5d.k8s.localnode") => {
                    for reader in &config.readers {
                        let (var, field) = if host_network {
                            ("NODE_NAME", "spec.nodeName")
                        } else {
                            ("POD_IP", "status.podIP")
                        };
                        if !from_field(reader.container, var, field) {
                            problems.push(format!(
                                "{at}: container {} of {} must set {var} from {field}",
                                reader.container.name,
                                reader.workload.at()
                            ));
                        }
                        problems.extend(same_network(reader.workload, host_network, &at));
                    }
                }
                Some("io.l5d.k8s.daemonset") => {
                    // The daemonset's pods are the Service's: here the
                    // routers themselves.
                    let service = docs.iter().find(|d| {
                        d.kind() == "Service"
                            && d.namespace() == t["namespace"].as_str()
                            && t["service"].as_str() == Some(d.name())
                    });
                    let Some(Object::Service(service)) = service.map(|d| &d.object) else {
                        continue; // reported with the ports
                    };
                    let selector = service
                        .spec
                        .as_ref()
                        .and_then(|s| s.selector.clone())
                        .unwrap_or_default();
                    for workload in crate::wiring::workloads(docs) {
                        let labels = workload.pod_labels();
                        if !selector.is_empty()
                            && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
                        {
                            problems.extend(same_network(workload, host_network, &at));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    problems
}

fn from_field(container: &Container, var: &str, field: &str) -> bool {
    container.env.iter().flatten().any(|e| {
        e.name == var
            && e.value_from
                .as_ref()
                .and_then(|f| f.field_ref.as_ref())
                .is_some_and(|f| f.field_path == field)
    })
}

fn same_network(workload: &Doc, host_network: bool, at: &str) -> Option<String> {
    let pods = pod_spec(workload)
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    (pods != host_network).then(|| {
        format!(
            "{at}: hostNetwork is {host_network}, but the pods of {} run with hostNetwork {pods}",
            workload.at()
        )
    })
}
