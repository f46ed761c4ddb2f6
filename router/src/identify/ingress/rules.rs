//! What the identifier keeps of an Ingress, and how a request is matched
//! against it. Pure: no I/O.

use std::sync::Arc;

use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};

/// The annotation that gives an Ingress its controller's class.
pub(super) const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// Where a matched request goes: a port of a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Backend {
    pub(super) namespace: String,
    /// The Service port's name, or its number.
    pub(super) port: String,
    pub(super) service: String,
}

/// How a rule's path is compared with the request's path.
#[derive(Clone, Debug)]
enum PathMatch {
    /// No path: every request path.
    Any,
    /// `pathType: Exact`: the same path.
    Exact(String),
    /// `pathType: Prefix`: the same path elements first (`/a` matches
    /// `/a` and `/a/b`, not `/ab`).
    Prefix(Vec<String>),
    /// `pathType: ImplementationSpecific` (or none): Linkerd's reading, a
    /// regular expression the whole path must match.
    Regex(regex::Regex),
    /// A path that is not a valid regular expression: matches nothing.
    Invalid,
}

/// One `host` + `path` of an Ingress, with its backend.
#[derive(Clone, Debug)]
struct Rule {
    /// Lower-cased; `None` matches every host.
    host: Option<String>,
    path: PathMatch,
    backend: Backend,
}

/// What is kept of one Ingress of our class.
#[derive(Clone, Debug)]
pub(super) struct IngressSpec {
    rules: Vec<Rule>,
    /// `spec.defaultBackend`, unless `ignoreDefaultBackends`.
    fallback: Option<Backend>,
}

/// Which Ingresses are ours, and what of them counts.
#[derive(Clone, Debug)]
pub(super) struct Filter {
    /// `ingressClassAnnotation` (`linkerd` by default).
    pub(super) class: String,
    pub(super) ignore_default_backends: bool,
}

impl Filter {
    /// What counts of `ingress`, or `None` when it belongs to another
    /// ingress controller: its `kubernetes.io/ingress.class` annotation, or
    /// without one its `spec.ingressClassName`, names another class. An
    /// Ingress with neither is everyone's, as Linkerd took it.
    pub(super) fn keep(&self, ingress: &Ingress) -> Option<Arc<IngressSpec>> {
        let annotation = ingress
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CLASS_ANNOTATION));
        let spec = ingress.spec.as_ref()?;
        let class = annotation.or(spec.ingress_class_name.as_ref());
        if class.is_some_and(|c| *c != self.class) {
            return None;
        }
        let namespace = ingress.metadata.namespace.as_deref().unwrap_or("default");
        let mut rules = Vec::new();
        for rule in spec.rules.iter().flatten() {
            let host = rule
                .host
                .as_deref()
                .filter(|h| !h.is_empty())
                .map(str::to_ascii_lowercase);
            let paths = rule.http.iter().flat_map(|http| http.paths.iter());
            for path in paths {
                let Some(backend) = backend(namespace, &path.backend) else {
                    continue;
                };
                rules.push(Rule {
                    host: host.clone(),
                    path: PathMatch::new(path.path.as_deref(), &path.path_type),
                    backend,
                });
            }
        }
        let fallback = match &spec.default_backend {
            Some(b) if !self.ignore_default_backends => backend(namespace, b),
            _ => None,
        };
        Some(Arc::new(IngressSpec { rules, fallback }))
    }
}

/// The Service port of a backend; `None` for a `resource` backend, which
/// names no Service.
fn backend(namespace: &str, backend: &IngressBackend) -> Option<Backend> {
    let service = backend.service.as_ref()?;
    let port = service.port.as_ref()?;
    let port = match (&port.name, port.number) {
        (Some(name), _) if !name.is_empty() => name.clone(),
        (_, Some(number)) => number.to_string(),
        _ => return None,
    };
    Some(Backend {
        namespace: namespace.to_string(),
        port,
        service: service.name.clone(),
    })
}

impl PathMatch {
    fn new(path: Option<&str>, path_type: &str) -> PathMatch {
        let Some(path) = path.filter(|p| !p.is_empty()) else {
            return PathMatch::Any;
        };
        match path_type {
            "Exact" => PathMatch::Exact(path.to_string()),
            "Prefix" => PathMatch::Prefix(elements(path)),
            _ => match regex::Regex::new(&format!("^(?:{path})$")) {
                Ok(regex) => PathMatch::Regex(regex),
                Err(error) => {
                    tracing::warn!(%path, %error, "io.l5d.ingress: a path that is not a regular expression matches nothing");
                    PathMatch::Invalid
                }
            },
        }
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Any => true,
            PathMatch::Exact(exact) => exact == path,
            PathMatch::Prefix(prefix) => {
                let request = elements(path);
                request.len() >= prefix.len() && request.iter().zip(prefix).all(|(a, b)| a == b)
            }
            PathMatch::Regex(regex) => regex.is_match(path),
            PathMatch::Invalid => false,
        }
    }
}

/// The non-empty elements of a path (`/a//b/` is `[a, b]`).
fn elements(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect()
}

/// The backend of the first rule that matches `host` (without its port,
/// lower-cased) and `path`, in the order of `ingresses` and of their rules;
/// else the first default backend. Linkerd's order.
pub(super) fn find<'a>(
    ingresses: impl Iterator<Item = &'a IngressSpec> + Clone,
    host: Option<&str>,
    path: &str,
) -> Option<&'a Backend> {
    let matches = |rule: &&Rule| {
        rule.host.as_deref().is_none_or(|h| Some(h) == host) && rule.path.matches(path)
    };
    let mut rules = ingresses.clone().flat_map(|i| i.rules.iter());
    if let Some(rule) = rules.find(matches) {
        return Some(&rule.backend);
    }
    ingresses.filter_map(|i| i.fallback.as_ref()).next()
}

/// The host of a `Host` or `:authority` value: without its port and
/// lower-cased (`[::1]:80` is `[::1]`).
pub(super) fn host_of(value: &[u8]) -> Option<String> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let host = match value.rfind(':') {
        Some(i) if !value[i..].contains(']') => &value[..i],
        _ => value,
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn ingress(value: serde_json::Value) -> Ingress {
        serde_json::from_value(value).unwrap()
    }

    fn filter(ignore_default_backends: bool) -> Filter {
        Filter {
            class: "linkerd".into(),
            ignore_default_backends,
        }
    }

    fn svc(port: u16, name: &str) -> serde_json::Value {
        serde_json::json!({"service": {"name": name, "port": {"number": port}}})
    }

    fn found(specs: &[Arc<IngressSpec>], host: Option<&str>, path: &str) -> Option<String> {
        find(specs.iter().map(|s| &**s), host, path)
            .map(|b| format!("{}/{}/{}", b.namespace, b.port, b.service))
    }

    #[test]
    fn rules_match_by_exact_host_and_by_path_type_then_default_backends() {
        let one = ingress(serde_json::json!({
            "metadata": {"name": "one", "namespace": "prod"},
            "spec": {
                "defaultBackend": svc(80, "fallback"),
                "rules": [
                    {"host": "web.example", "http": {"paths": [
                        {"path": "/api", "pathType": "Prefix", "backend": svc(80, "api")},
                        {"path": "/", "pathType": "Prefix", "backend": svc(80, "web")},
                    ]}},
                    {"http": {"paths": [
                        {"path": "/exact", "pathType": "Exact", "backend": svc(81, "exact")},
                        {"path": "/re/[0-9]+", "pathType": "ImplementationSpecific",
                         "backend": {"service": {"name": "re", "port": {"name": "http"}}}},
                    ]}},
                ],
            },
        }));
        let specs = vec![filter(false).keep(&one).unwrap()];
        let at = |host, path| found(&specs, host, path);
        assert_eq!(at(Some("web.example"), "/api/v1").unwrap(), "prod/80/api");
        assert_eq!(at(Some("web.example"), "/api").unwrap(), "prod/80/api");
        assert_eq!(at(Some("web.example"), "/apix").unwrap(), "prod/80/web");
        assert_eq!(at(None, "/exact").unwrap(), "prod/81/exact");
        assert_eq!(at(None, "/exact/x").unwrap(), "prod/80/fallback");
        assert_eq!(at(Some("other"), "/re/12").unwrap(), "prod/http/re");
        // Linkerd's regular expressions match the whole path.
        assert_eq!(at(Some("other"), "/re/12/x").unwrap(), "prod/80/fallback");
        let ignoring = vec![filter(true).keep(&one).unwrap()];
        assert_eq!(found(&ignoring, None, "/nothing"), None);
    }

    #[test]
    fn other_classes_are_left_out() {
        let with = |meta: serde_json::Value, spec: serde_json::Value| {
            let mut spec = spec;
            spec["defaultBackend"] = svc(80, "x");
            filter(false).keep(&ingress(
                serde_json::json!({"metadata": meta, "spec": spec}),
            ))
        };
        let annotated = |class: &str| serde_json::json!({"name": "a", "annotations": {CLASS_ANNOTATION: class}});
        let plain = serde_json::json!({"name": "a"});
        assert!(with(annotated("linkerd"), serde_json::json!({})).is_some());
        assert!(with(annotated("nginx"), serde_json::json!({})).is_none());
        assert!(with(plain.clone(), serde_json::json!({})).is_some());
        assert!(
            with(
                plain.clone(),
                serde_json::json!({"ingressClassName": "linkerd"})
            )
            .is_some()
        );
        assert!(with(plain, serde_json::json!({"ingressClassName": "nginx"})).is_none());
        // The annotation wins over the class name.
        let both = serde_json::json!({"ingressClassName": "nginx"});
        assert!(with(annotated("linkerd"), both).is_some());
    }

    #[test]
    fn hosts_lose_their_port() {
        assert_eq!(host_of(b"Web.Example:8080").unwrap(), "web.example");
        assert_eq!(host_of(b"web").unwrap(), "web");
        assert_eq!(host_of(b"[::1]:80").unwrap(), "[::1]");
        assert_eq!(host_of(b"[::1]").unwrap(), "[::1]");
        assert_eq!(host_of(b""), None);
    }
}
