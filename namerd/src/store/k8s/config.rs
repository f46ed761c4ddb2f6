//! The `io.l5d.k8s` storage config, with Linkerd's keys and defaults, and
//! where the API server is found (as the `io.l5d.k8s` namer finds it).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use namers::k8s::ApiServer;

use super::{Inner, K8sStore, KIND};
use crate::store::backend::Watches;

/// The `io.l5d.k8s` storage config. Every key is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct K8sStoreConfig {
    /// The API server's host, reached over plain HTTP (usually a `kubectl
    /// proxy` beside namerd). When neither `host` nor `port` is set and
    /// namerd runs in a pod, the in-cluster API server and the pod's
    /// service account are used; otherwise `localhost`.
    pub host: Option<String>,
    /// The port of `host`; 8001 by default (`kubectl proxy`'s).
    pub port: Option<u16>,
    /// The Kubernetes namespace the DTab objects live in; `default` by
    /// default. (Not a dtab namespace: each DTab object is one of those.)
    pub namespace: Option<String>,
}

/// Timeouts and retry pacing; not part of the config file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// The first pause after a failed list or watch.
    pub backoff_min: Duration,
    /// The longest pause between failed attempts.
    pub backoff_max: Duration,
    /// How long the server may keep one watch open (`timeoutSeconds`).
    pub watch_timeout: Duration,
    /// The limit on one call that is not a watch (a read or a write).
    pub request_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            watch_timeout: Duration::from_secs(290),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// The environment variable that tells a pod where its API server is.
const IN_CLUSTER_HOST: &str = "KUBERNETES_SERVICE_HOST";

impl K8sStoreConfig {
    /// Checks the config and builds the store with the default [`Timing`].
    pub fn build(&self) -> Result<K8sStore, String> {
        self.build_with(Timing::default())
    }

    /// Checks the config and builds the store with the given timing.
    pub fn build_with(&self, timing: Timing) -> Result<K8sStore, String> {
        let in_cluster = std::env::var_os(IN_CLUSTER_HOST).is_some_and(|h| !h.is_empty());
        self.build_for(timing, in_cluster)
    }

    fn build_for(&self, timing: Timing, in_cluster: bool) -> Result<K8sStore, String> {
        let api = namers::k8s::api_server(self.host.as_deref(), self.port, in_cluster)
            .map_err(|e| e.to_string())?;
        let namespace = self.namespace.as_deref().unwrap_or("default");
        if let Err(why) = check_name(namespace, 63, false) {
            return Err(format!("namespace: {namespace:?} {why}"));
        }
        Ok(K8sStore {
            inner: Arc::new(Inner {
                api,
                namespace: namespace.to_string(),
                timing,
                client: Mutex::new(None),
                collection: namers::LiveCache::default(),
                watches: Watches::new(KIND),
            }),
        })
    }
}

/// Whether `name` can name a Kubernetes object: a DNS label (namespaces;
/// at most 63 characters, no dots) or subdomain (other objects, such as a
/// DTab; at most 253, dots between labels). Says why not.
pub(super) fn check_name(name: &str, max: usize, dots: bool) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if name.is_empty() || name.len() > max {
        return Err(format!("must be 1 to {max} characters"));
    }
    let labels: Vec<&str> = if dots {
        name.split('.').collect()
    } else {
        vec![name]
    };
    let ok = labels.iter().all(|l| {
        !l.is_empty() && l.chars().all(allowed) && l.starts_with(alnum) && l.ends_with(alnum)
    });
    if ok {
        Ok(())
    } else if dots {
        Err("is not a Kubernetes object name (lower-case letters, digits, '-' and '.', starting and ending with a letter or digit)".to_string())
    } else {
        Err("is not a Kubernetes namespace name (lower-case letters, digits and '-', starting and ending with a letter or digit)".to_string())
    }
}

impl K8sStore {
    /// Where the API server is.
    pub fn api_server(&self) -> &ApiServer {
        &self.inner.api
    }

    /// The Kubernetes namespace the DTab objects live in.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: serde_json::Value) -> Result<K8sStoreConfig, String> {
        serde_json::from_value(json).map_err(|e| e.to_string())
    }

    fn proxy(authority: &str) -> ApiServer {
        ApiServer::Proxy {
            authority: authority.to_string(),
        }
    }

    #[test]
    fn defaults_follow_linkerd_unless_in_a_pod() {
        let store = K8sStoreConfig::default()
            .build_for(Timing::default(), false)
            .unwrap();
        assert_eq!(store.api_server(), &proxy("localhost:8001"));
        assert_eq!(store.namespace(), "default");
        let store = K8sStoreConfig::default()
            .build_for(Timing::default(), true)
            .unwrap();
        assert_eq!(store.api_server(), &ApiServer::InCluster);
    }

    #[test]
    fn linkerds_keys_are_read_and_unknown_ones_refused() {
        let parsed =
            config(serde_json::json!({"host": "10.0.0.1", "port": 8002, "namespace": "linkerd"}))
                .unwrap();
        let store = parsed.build_for(Timing::default(), true).unwrap();
        assert_eq!(store.api_server(), &proxy("10.0.0.1:8002"));
        assert_eq!(store.namespace(), "linkerd");
        let err = config(serde_json::json!({"hots": "x"})).unwrap_err();
        assert!(err.contains("unknown field `hots`"), "{err}");
    }

    #[test]
    fn bad_values_are_refused_with_the_key_named() {
        let build = |json: serde_json::Value| {
            config(json)
                .unwrap()
                .build_for(Timing::default(), false)
                .err()
                .unwrap()
        };
        assert!(build(serde_json::json!({"port": 0})).starts_with("port:"));
        assert!(build(serde_json::json!({"host": "a b"})).starts_with("host:"));
        for bad in ["", "Linkerd", "a.b", "-a", "a_b"] {
            let err = build(serde_json::json!({"namespace": bad}));
            assert!(err.starts_with("namespace:"), "{bad}: {err}");
        }
    }

    #[test]
    fn object_names_are_dns_subdomains() {
        assert!(check_name("web.prod-1", 253, true).is_ok());
        assert!(check_name("Web", 253, true).is_err());
        assert!(check_name("a..b", 253, true).is_err());
        assert!(check_name("a_b", 253, true).is_err());
        assert!(check_name(&"a".repeat(254), 253, true).is_err());
    }
}
