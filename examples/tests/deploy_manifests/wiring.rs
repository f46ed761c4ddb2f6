//! How the objects fit together: namespaces, names one object gives another
//! (service accounts, roles, ConfigMaps, claims, selectors), volumes and
//! mounts, and ports, from a container to its Service to the config of the
//! program behind it.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, PodSpec, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::configs::{self, Embedded, Program};
use crate::objects::{Doc, Object};

/// The workloads: Deployments and DaemonSets.
pub(crate) fn workloads(docs: &[Doc]) -> impl Iterator<Item = &Doc> {
    docs.iter().filter(|d| d.pod_template().is_some())
}

/// A workload's pod spec.
pub(crate) fn pod_spec(doc: &Doc) -> Option<&PodSpec> {
    doc.pod_template().and_then(|t| t.spec.as_ref())
}

/// Whether a label selector picks pods with `labels` (an empty selector
/// picks nothing here: it is always a mistake in these files).
fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The workloads in `namespace` whose pods `selector` picks.
fn selected<'a>(
    docs: &'a [Doc],
    namespace: Option<&str>,
    selector: &BTreeMap<String, String>,
) -> Vec<&'a Doc> {
    workloads(docs)
        .filter(|w| w.namespace() == namespace && selects(selector, &w.pod_labels()))
        .collect()
}

fn find<'a>(docs: &'a [Doc], kind: &str, namespace: Option<&str>, name: &str) -> Option<&'a Doc> {
    docs.iter()
        .find(|d| d.kind() == kind && d.namespace() == namespace && d.name() == name)
}

/// Namespaced objects name their namespace, which exists (or is
/// `default`); cluster-wide ones name none.
pub(crate) fn namespaces(docs: &[Doc]) -> Vec<String> {
    let mut problems = Vec::new();
    for doc in docs {
        let cluster_wide = matches!(
            doc.object,
            Object::Namespace(_)
                | Object::ClusterRole(_)
                | Object::ClusterRoleBinding(_)
                | Object::CustomResourceDefinition(_)
        );
        match (cluster_wide, doc.namespace()) {
            (true, Some(_)) => problems.push(format!(
                "{}: metadata.namespace on a cluster-wide object",
                doc.at()
            )),
            (false, None) => problems.push(format!(
                "{}: metadata.namespace is missing (kustomization.yaml sets none)",
                doc.at()
            )),
            (false, Some(ns)) if ns != "default" && find(docs, "Namespace", None, ns).is_none() => {
                problems.push(format!(
                    "{}: namespace {ns} is not created by any manifest",
                    doc.at()
                ))
            }
            _ => {}
        }
    }
    problems
}

/// Every name one object gives another resolves, in the right namespace.
pub(crate) fn references(docs: &[Doc]) -> Vec<String> {
    let mut problems = Vec::new();
    for doc in docs {
        let at = doc.at();
        let ns = doc.namespace();
        match &doc.object {
            Object::Deployment(_) | Object::DaemonSet(_) => {
                problems.extend(workload_references(docs, doc));
            }
            Object::Service(service) => {
                let selector = service
                    .spec
                    .as_ref()
                    .and_then(|s| s.selector.clone())
                    .unwrap_or_default();
                if selected(docs, ns, &selector).is_empty() {
                    problems.push(format!(
                        "{at}: spec.selector {selector:?} picks no workload's pods"
                    ));
                }
            }
            Object::PodDisruptionBudget(pdb) => {
                let selector = pdb
                    .spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .and_then(|s| s.match_labels.clone())
                    .unwrap_or_default();
                if selected(docs, ns, &selector).is_empty() {
                    problems.push(format!(
                        "{at}: spec.selector {selector:?} picks no workload's pods"
                    ));
                }
            }
            Object::RoleBinding(binding) => {
                problems.extend(binding_references(
                    docs,
                    doc,
                    &binding.role_ref,
                    binding.subjects.as_deref(),
                ));
            }
            Object::ClusterRoleBinding(binding) => {
                problems.extend(binding_references(
                    docs,
                    doc,
                    &binding.role_ref,
                    binding.subjects.as_deref(),
                ));
            }
            _ => {}
        }
    }
    problems
}

fn binding_references(
    docs: &[Doc],
    doc: &Doc,
    role_ref: &k8s_openapi::api::rbac::v1::RoleRef,
    subjects: Option<&[k8s_openapi::api::rbac::v1::Subject]>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let at = doc.at();
    let role_ns = if role_ref.kind == "Role" {
        doc.namespace()
    } else {
        None
    };
    if role_ref.api_group != "rbac.authorization.k8s.io"
        || find(docs, &role_ref.kind, role_ns, &role_ref.name).is_none()
    {
        problems.push(format!(
            "{at}: roleRef {} {} is not in the manifests",
            role_ref.kind, role_ref.name
        ));
    }
    let subjects = subjects.unwrap_or_default();
    if subjects.is_empty() {
        problems.push(format!("{at}: no subjects"));
    }
    for (i, subject) in subjects.iter().enumerate() {
        let Some(sns) = subject.namespace.as_deref() else {
            problems.push(format!("{at}: subjects[{i}] names no namespace"));
            continue;
        };
        if subject.kind != "ServiceAccount"
            || find(docs, "ServiceAccount", Some(sns), &subject.name).is_none()
        {
            problems.push(format!(
                "{at}: subjects[{i}] {} {sns}/{} is not in the manifests",
                subject.kind, subject.name
            ));
        }
    }
    problems
}

/// A workload's service account, selector, volumes and mounts, and the
/// files its containers are given in their arguments.
fn workload_references(docs: &[Doc], doc: &Doc) -> Vec<String> {
    let mut problems = Vec::new();
    let at = doc.at();
    let ns = doc.namespace();
    let selector = match &doc.object {
        Object::Deployment(d) => d
            .spec
            .as_ref()
            .and_then(|s| s.selector.match_labels.clone()),
        Object::DaemonSet(d) => d
            .spec
            .as_ref()
            .and_then(|s| s.selector.match_labels.clone()),
        _ => None,
    }
    .unwrap_or_default();
    if !selects(&selector, &doc.pod_labels()) {
        problems.push(format!(
            "{at}: spec.selector {selector:?} does not pick its own pods"
        ));
    }
    let Some(spec) = pod_spec(doc) else {
        problems.push(format!("{at}: no pod spec"));
        return problems;
    };
    if let Some(account) = &spec.service_account_name
        && find(docs, "ServiceAccount", ns, account).is_none()
    {
        problems.push(format!(
            "{at}: serviceAccountName {account} is not in the manifests"
        ));
    }
    let volumes: Vec<&str> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    let mut mounted = BTreeSet::new();
    for volume in spec.volumes.iter().flatten() {
        if let Some(source) = &volume.config_map {
            match configs::config_map(docs, doc, &source.name) {
                None => problems.push(format!(
                    "{at}: volume {} names ConfigMap {}, which is not in the manifests",
                    volume.name, source.name
                )),
                Some(map) => {
                    let keys = configs::keys(map);
                    for item in source.items.iter().flatten() {
                        if !keys.contains(&item.key) {
                            problems.push(format!(
                                "{at}: volume {} names key {} that ConfigMap {} lacks",
                                volume.name, item.key, source.name
                            ));
                        }
                    }
                }
            }
        }
        if let Some(claim) = &volume.persistent_volume_claim
            && find(docs, "PersistentVolumeClaim", ns, &claim.claim_name).is_none()
        {
            problems.push(format!(
                "{at}: volume {} names claim {}, which is not in the manifests",
                volume.name, claim.claim_name
            ));
        }
    }
    for container in &spec.containers {
        let mut paths = BTreeSet::new();
        for mount in container.volume_mounts.iter().flatten() {
            mounted.insert(mount.name.as_str());
            if !volumes.contains(&mount.name.as_str()) {
                problems.push(format!(
                    "{at}: container {} mounts volume {}, which the pod does not have",
                    container.name, mount.name
                ));
            }
            if !paths.insert(mount.mount_path.as_str()) {
                problems.push(format!(
                    "{at}: container {} mounts two volumes at {}",
                    container.name, mount.mount_path
                ));
            }
        }
        // An argument naming a file under a ConfigMap's mount must be one
        // of its keys.
        let files = configs::mounted_files(docs, doc, container);
        for arg in container.args.iter().flatten() {
            let under_mount = container.volume_mounts.iter().flatten().any(|m| {
                arg.starts_with(&format!("{}/", m.mount_path.trim_end_matches('/')))
                    && volume_is_config_map(spec, &m.name)
            });
            if under_mount && !files.contains_key(arg) {
                problems.push(format!(
                    "{at}: container {} is given {arg}, which its ConfigMap mount does not hold",
                    container.name
                ));
            }
        }
    }
    for volume in &volumes {
        if !mounted.contains(volume) {
            problems.push(format!("{at}: volume {volume} is mounted by no container"));
        }
    }
    problems
}

fn volume_is_config_map(spec: &PodSpec, name: &str) -> bool {
    spec.volumes
        .iter()
        .flatten()
        .any(|v| v.name == name && v.config_map.is_some())
}

/// Where a container listens, by port number, with the port's name.
fn container_ports(container: &Container) -> BTreeMap<i32, Option<String>> {
    container
        .ports
        .iter()
        .flatten()
        .map(|p| (p.container_port, p.name.clone()))
        .collect()
}

/// The container port a probe, Service or reference names in `container`.
fn resolve_port(container: &Container, port: &IntOrString) -> Option<i32> {
    let ports = container_ports(container);
    match port {
        IntOrString::Int(n) => ports.contains_key(n).then_some(*n),
        IntOrString::String(name) => ports
            .iter()
            .find(|(_, n)| n.as_deref() == Some(name.as_str()))
            .map(|(p, _)| *p),
    }
}

fn probes(container: &Container) -> Vec<(&'static str, &Probe)> {
    [
        ("livenessProbe", &container.liveness_probe),
        ("readinessProbe", &container.readiness_probe),
        ("startupProbe", &container.startup_probe),
    ]
    .into_iter()
    .filter_map(|(name, probe)| probe.as_ref().map(|p| (name, p)))
    .collect()
}

/// Ports: names unique in a pod and short enough; probes and Services name
/// ports that containers have; configs listen on the ports their
/// containers declare, and only those.
pub(crate) fn ports(docs: &[Doc], embedded: &[Embedded<'_>]) -> Vec<String> {
    let mut problems = Vec::new();
    for doc in workloads(docs) {
        let at = doc.at();
        let Some(spec) = pod_spec(doc) else { continue };
        let mut names = BTreeSet::new();
        let mut numbers = BTreeSet::new();
        for container in &spec.containers {
            for port in container.ports.iter().flatten() {
                if let Some(name) = &port.name
                    && (name.len() > 15 || !names.insert(name.clone()))
                {
                    problems.push(format!(
                        "{at}: port name {name} is repeated or longer than 15"
                    ));
                }
                if !numbers.insert(port.container_port) {
                    problems.push(format!(
                        "{at}: container port {} declared twice",
                        port.container_port
                    ));
                }
            }
            for (which, probe) in probes(container) {
                if let Some(get) = &probe.http_get
                    && resolve_port(container, &get.port).is_none()
                {
                    problems.push(format!(
                        "{at}: container {}: {which} port {:?} is not one of its ports",
                        container.name, get.port
                    ));
                }
            }
        }
    }
    for doc in docs {
        let Object::Service(service) = &doc.object else {
            continue;
        };
        let Some(spec) = &service.spec else { continue };
        let selector = spec.selector.clone().unwrap_or_default();
        for workload in selected(docs, doc.namespace(), &selector) {
            let containers = pod_spec(workload)
                .map(|s| s.containers.as_slice())
                .unwrap_or_default();
            for (i, port) in spec.ports.iter().flatten().enumerate() {
                let target = port
                    .target_port
                    .clone()
                    .unwrap_or(IntOrString::Int(port.port));
                if !containers
                    .iter()
                    .any(|c| resolve_port(c, &target).is_some())
                {
                    problems.push(format!(
                        "{}: spec.ports[{i}] targetPort {target:?} is not a port of {}",
                        doc.at(),
                        workload.at()
                    ));
                }
            }
        }
    }
    for config in embedded {
        problems.extend(config_ports(docs, config, embedded));
    }
    problems
}

/// One address a config listens on.
pub(crate) struct Listener {
    /// Where in the config: `routers[1].servers[0]`, `interfaces[2]`.
    pub(crate) at: String,
    /// What answers there: `io.l5d.httpController`, or the router's
    /// protocol.
    pub(crate) what: String,
    /// The router's transformer kinds, for routers.
    pub(crate) transformers: Vec<String>,
    /// Whether it listens on loopback only.
    pub(crate) loopback: bool,
    /// The port, if written.
    pub(crate) port: Option<i64>,
}

fn is_loopback(ip: Option<&str>) -> bool {
    ip.is_none_or(|ip| {
        ip.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
    })
}

/// The transformer entries of a router config: (where, entry).
pub(crate) fn transformers<'a>(config: &'a Embedded<'_>) -> Vec<(String, &'a serde_json::Value)> {
    let mut found = Vec::new();
    for (i, router) in config.value["routers"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        for (j, t) in router["interpreter"]["transformers"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            found.push((format!("routers[{i}].interpreter.transformers[{j}]"), t));
        }
    }
    for (i, namer) in config.value["namers"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        for (j, t) in namer["transformers"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            found.push((format!("namers[{i}].transformers[{j}]"), t));
        }
    }
    found
}

/// Every address `config` listens on.
pub(crate) fn listeners(config: &Embedded<'_>) -> Vec<Listener> {
    let v = &config.value;
    let mut found = vec![Listener {
        at: "admin".into(),
        what: "admin".into(),
        transformers: Vec::new(),
        loopback: is_loopback(v["admin"]["ip"].as_str()),
        port: v["admin"]["port"].as_i64(),
    }];
    match config.program {
        Program::Router => {
            for (i, router) in v["routers"].as_array().into_iter().flatten().enumerate() {
                let kinds: Vec<String> = router["interpreter"]["transformers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t["kind"].as_str().map(str::to_string))
                    .collect();
                for (j, server) in router["servers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    found.push(Listener {
                        at: format!("routers[{i}].servers[{j}]"),
                        what: router["protocol"].as_str().unwrap_or("").to_string(),
                        transformers: kinds.clone(),
                        loopback: is_loopback(server["ip"].as_str()),
                        port: server["port"].as_i64(),
                    });
                }
            }
        }
        Program::Namerd => {
            for (i, iface) in v["interfaces"].as_array().into_iter().flatten().enumerate() {
                found.push(Listener {
                    at: format!("interfaces[{i}]"),
                    what: iface["kind"].as_str().unwrap_or("").to_string(),
                    transformers: Vec::new(),
                    loopback: is_loopback(iface["ip"].as_str()),
                    port: iface["port"].as_i64(),
                });
            }
        }
    }
    found
}

/// What listens behind port `port` of the Service `name` in `namespace`:
/// each reader's listener, or why there is none.
fn behind_service<'a>(
    docs: &[Doc],
    embedded: &'a [Embedded<'a>],
    namespace: &str,
    name: &str,
    port: &IntOrString,
) -> Result<Vec<Listener>, String> {
    let service = find(docs, "Service", Some(namespace), name)
        .ok_or_else(|| format!("Service {namespace}/{name} is not in the manifests"))?;
    let Object::Service(service) = &service.object else {
        return Err(format!("{namespace}/{name} is not a Service"));
    };
    let spec = service.spec.as_ref().ok_or("a Service with no spec")?;
    let service_port = spec
        .ports
        .iter()
        .flatten()
        .find(|p| match port {
            IntOrString::Int(n) => p.port == *n,
            IntOrString::String(s) => p.name.as_deref() == Some(s.as_str()),
        })
        .ok_or_else(|| format!("Service {namespace}/{name} has no port {port:?}"))?;
    let target = service_port
        .target_port
        .clone()
        .unwrap_or(IntOrString::Int(service_port.port));
    let selector = spec.selector.clone().unwrap_or_default();
    let mut found = Vec::new();
    for workload in selected(docs, Some(namespace), &selector) {
        for container in pod_spec(workload)
            .map(|s| s.containers.as_slice())
            .unwrap_or_default()
        {
            let Some(number) = resolve_port(container, &target) else {
                continue;
            };
            for config in embedded {
                let reads = config.readers.iter().any(|r| {
                    std::ptr::eq(r.workload, workload) && r.container.name == container.name
                });
                if reads {
                    found.extend(
                        listeners(config)
                            .into_iter()
                            .filter(|l| l.port == Some(number.into())),
                    );
                }
            }
        }
    }
    if found.is_empty() {
        return Err(format!(
            "no router or namerd config listens behind port {port:?} of Service {namespace}/{name}"
        ));
    }
    Ok(found)
}

/// A config's listeners against its containers' ports and probes, and
/// the Services it names against what listens behind them.
fn config_ports(docs: &[Doc], config: &Embedded<'_>, embedded: &[Embedded<'_>]) -> Vec<String> {
    let mut problems = Vec::new();
    let at = config.at();
    let listeners = listeners(config);
    for listener in &listeners {
        if listener.port.is_none() {
            problems.push(format!("{at}: {}: write the port explicitly", listener.at));
        }
    }
    let admin = listeners.first().and_then(|l| l.port);
    for reader in &config.readers {
        let ports = container_ports(reader.container);
        let c = format!(
            "{}: container {}",
            reader.workload.at(),
            reader.container.name
        );
        for listener in listeners.iter().filter(|l| !l.loopback) {
            if let Some(port) = listener.port
                && !ports.contains_key(&(port as i32))
            {
                problems.push(format!(
                    "{at}: {} listens on {port}, which {c} does not declare",
                    listener.at
                ));
            }
        }
        for port in ports.keys() {
            if !listeners
                .iter()
                .any(|l| !l.loopback && l.port == Some((*port).into()))
            {
                problems.push(format!(
                    "{c} declares port {port}, on which the config ({at}) does not listen"
                ));
            }
        }
        for (which, probe) in probes(reader.container) {
            let Some(get) = &probe.http_get else { continue };
            let port = resolve_port(reader.container, &get.port);
            if port.map(i64::from) != admin || listeners[0].loopback {
                problems.push(format!(
                    "{c}: {which} does not go to the admin port of the config, on a non-loopback ip"
                ));
            }
        }
    }
    if config.program == Program::Router {
        problems.extend(router_targets(docs, config, embedded));
    }
    problems
}

/// The namerd a router's interpreter names and the routers its
/// daemonset transformers send to are what the config expects there.
fn router_targets(docs: &[Doc], config: &Embedded<'_>, embedded: &[Embedded<'_>]) -> Vec<String> {
    let mut problems = Vec::new();
    let at = config.at();
    for (i, router) in config.value["routers"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let interpreter = &router["interpreter"];
        if interpreter["kind"] == "io.l5d.namerd.http" {
            let dst = interpreter["dst"].as_str().unwrap_or("");
            match cluster_service(dst) {
                None => problems.push(format!(
                    "{at}: routers[{i}].interpreter.dst {dst:?} is not /$/inet/<service>.<namespace>.svc.cluster.local/<port>"
                )),
                Some((name, ns, port)) => match behind_service(docs, embedded, &ns, &name, &IntOrString::Int(port)) {
                    Err(why) => problems.push(format!("{at}: routers[{i}].interpreter.dst: {why}")),
                    Ok(found) => {
                        for l in found.iter().filter(|l| l.what != "io.l5d.httpController") {
                            problems.push(format!(
                                "{at}: routers[{i}].interpreter.dst reaches {} ({}), not namerd's io.l5d.httpController",
                                l.at, l.what
                            ));
                        }
                    }
                },
            }
        }
        let protocol = router["protocol"].as_str().unwrap_or("");
        for (j, t) in interpreter["transformers"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if t["kind"] != "io.l5d.k8s.daemonset" {
                continue;
            }
            let (Some(ns), Some(name), Some(port)) = (
                t["namespace"].as_str(),
                t["service"].as_str(),
                t["port"].as_str(),
            ) else {
                continue; // the real check refuses it
            };
            let port = match port.parse::<i32>() {
                Ok(n) => IntOrString::Int(n),
                Err(_) => IntOrString::String(port.to_string()),
            };
            match behind_service(docs, embedded, ns, name, &port) {
                Err(why) => problems.push(format!(
                    "{at}: routers[{i}].interpreter.transformers[{j}]: {why}"
                )),
                Ok(found) => {
                    for l in &found {
                        if l.what != protocol
                            || !l.transformers.iter().any(|k| k == "io.l5d.k8s.localnode")
                        {
                            problems.push(format!(
                                "{at}: routers[{i}].interpreter.transformers[{j}] sends {protocol} to {} ({} router, \
                                 transformers {:?}), not to a {protocol} router with io.l5d.k8s.localnode",
                                l.at, l.what, l.transformers
                            ));
                        }
                    }
                }
            }
        }
    }
    problems
}

/// `/$/inet/<name>.<namespace>.svc.cluster.local/<port>` as its parts.
fn cluster_service(dst: &str) -> Option<(String, String, i32)> {
    let rest = dst.strip_prefix("/$/inet/")?;
    let (host, port) = rest.split_once('/')?;
    let port = port.parse().ok()?;
    let base = host.strip_suffix(".svc.cluster.local")?;
    let (name, ns) = base.split_once('.')?;
    Some((name.to_string(), ns.to_string(), port))
}
