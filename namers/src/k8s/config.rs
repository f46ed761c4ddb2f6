//! The `io.l5d.k8s` namer's config block, with Linkerd's keys and
//! defaults, and where the API server is found.

use std::sync::Arc;
use std::time::Duration;

use dtab::Path;
use serde::Deserialize;

use super::K8sNamer;
use crate::system::inet::InetResolver;

/// The `io.l5d.k8s` namer config (its `kind` and `prefix` are read by the
/// namer registry). Every key is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct K8sConfig {
    /// The API server's host, reached over plain HTTP (usually a `kubectl
    /// proxy` beside the router). When absent, the in-cluster API server
    /// and service account are used if the pod has them, else
    /// `localhost`.
    pub host: Option<String>,
    /// The port of `host`; 8001 by default (`kubectl proxy`'s).
    pub port: Option<u16>,
    /// A label whose value is named by the path: with `labelSelector:
    /// version`, `/<ns>/<port>/<service>/v2` binds only the endpoints of
    /// objects labelled `version=v2`.
    pub label_selector: Option<String>,
}

/// Where the API server is and how to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiServer {
    /// Plain HTTP to `host:port` (a `kubectl proxy`).
    Proxy {
        /// `host:port` as used in a URL.
        authority: String,
    },
    /// The pod's own cluster: `KUBERNETES_SERVICE_HOST`/`_PORT`, over TLS,
    /// with the service account's token and CA certificate.
    InCluster,
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
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            watch_timeout: Duration::from_secs(290),
        }
    }
}

/// Why an `io.l5d.k8s` config is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {why}")]
pub struct K8sConfigError {
    /// The key at fault.
    pub key: String,
    /// What is wrong with it.
    pub why: String,
}

/// The validated config the namer runs with.
#[derive(Clone, Debug)]
pub(super) struct Settings {
    pub(super) api: ApiServer,
    pub(super) label: Option<String>,
    pub(super) timing: Timing,
    /// What a path binds to.
    pub(super) mode: Mode,
    /// The one namespace of `io.l5d.k8s.ns`, which paths then leave out.
    pub(super) namespace: Option<String>,
}

/// What the namer binds a Service port to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    /// The ready endpoints of the Service's pods (`io.l5d.k8s`,
    /// `io.l5d.k8s.ns`).
    Endpoints,
    /// The Service's external load balancer (`io.l5d.k8s.external`).
    External,
}

/// The environment variable the in-cluster API server's host is read from.
const IN_CLUSTER_HOST: &str = "KUBERNETES_SERVICE_HOST";

impl K8sConfig {
    /// Builds the namer, serving paths below `prefix` (usually
    /// `/#/io.l5d.k8s`).
    pub fn build(&self, prefix: Path) -> Result<Arc<K8sNamer>, K8sConfigError> {
        self.build_with(prefix, Timing::default())
    }

    /// [`K8sConfig::build`] with other retry pacing.
    pub fn build_with(
        &self,
        prefix: Path,
        timing: Timing,
    ) -> Result<Arc<K8sNamer>, K8sConfigError> {
        Ok(K8sNamer::new(prefix, self.validate(timing)?))
    }

    pub(super) fn validate(&self, timing: Timing) -> Result<Settings, K8sConfigError> {
        let in_cluster = std::env::var_os(IN_CLUSTER_HOST).is_some_and(|h| !h.is_empty());
        let api = api_server(self.host.as_deref(), self.port, in_cluster)?;
        let label = match self.label_selector.as_deref() {
            None => None,
            Some(label) if valid_label_key(label) => Some(label.to_string()),
            Some(label) => {
                return Err(K8sConfigError {
                    key: "labelSelector".into(),
                    why: format!("{label:?} is not a label key"),
                });
            }
        };
        Ok(Settings {
            api,
            label,
            timing,
            mode: Mode::Endpoints,
            namespace: None,
        })
    }
}

/// The `io.l5d.k8s.external` namer config: Linkerd's keys (`host`, `port`,
/// `labelSelector`), with the meaning they have for `io.l5d.k8s`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct K8sExternalConfig {
    /// As [`K8sConfig::host`].
    pub host: Option<String>,
    /// As [`K8sConfig::port`].
    pub port: Option<u16>,
    /// As [`K8sConfig::label_selector`].
    pub label_selector: Option<String>,
}

impl K8sExternalConfig {
    /// Builds the namer, serving paths below `prefix` (usually
    /// `/#/io.l5d.k8s.external`); load balancers named by host are
    /// resolved through `inet`.
    pub fn build_with(
        &self,
        prefix: Path,
        inet: Arc<InetResolver>,
        timing: Timing,
    ) -> Result<Arc<K8sNamer>, K8sConfigError> {
        let base = K8sConfig {
            host: self.host.clone(),
            port: self.port,
            label_selector: self.label_selector.clone(),
        };
        let settings = Settings {
            mode: Mode::External,
            ..base.validate(timing)?
        };
        Ok(K8sNamer::with_inet(prefix, settings, Some(inet)))
    }
}

/// The `io.l5d.k8s.ns` namer config: `io.l5d.k8s` confined to the namespace
/// named by an environment variable, which paths leave out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct K8sNsConfig {
    /// As [`K8sConfig::host`].
    pub host: Option<String>,
    /// As [`K8sConfig::port`].
    pub port: Option<u16>,
    /// The environment variable holding the namespace (`POD_NAMESPACE` by
    /// default, usually set from `metadata.namespace` by the downward API).
    pub env_var: Option<String>,
    /// As [`K8sConfig::label_selector`].
    pub label_selector: Option<String>,
}

/// The environment variable `io.l5d.k8s.ns` reads by default.
pub const DEFAULT_NAMESPACE_VAR: &str = "POD_NAMESPACE";

impl K8sNsConfig {
    /// The namespace the namer serves, read from its environment variable.
    pub fn namespace(&self) -> Result<String, K8sConfigError> {
        let var = self.env_var.as_deref().unwrap_or(DEFAULT_NAMESPACE_VAR);
        match std::env::var(var) {
            Ok(ns) if !ns.trim().is_empty() => Ok(ns.trim().to_ascii_lowercase()),
            _ => Err(K8sConfigError {
                key: "envVar".into(),
                why: format!("the environment variable {var} names no namespace"),
            }),
        }
    }

    /// Builds the namer for `namespace` (see [`K8sNsConfig::namespace`]),
    /// serving paths below `prefix` (usually `/#/io.l5d.k8s.ns`).
    pub fn build_in(
        &self,
        prefix: Path,
        namespace: &str,
        timing: Timing,
    ) -> Result<Arc<K8sNamer>, K8sConfigError> {
        let base = K8sConfig {
            host: self.host.clone(),
            port: self.port,
            label_selector: self.label_selector.clone(),
        };
        let namespace = namespace.trim().to_ascii_lowercase();
        if namespace.is_empty() || namespace.contains('/') {
            return Err(K8sConfigError {
                key: "envVar".into(),
                why: format!("{namespace:?} is not a namespace"),
            });
        }
        let settings = Settings {
            namespace: Some(namespace),
            ..base.validate(timing)?
        };
        Ok(K8sNamer::new(prefix, settings))
    }
}

/// The API server named by `host` and `port`: in-cluster only when neither
/// is given and the pod runs in a cluster, as a `kubectl proxy` otherwise.
/// namerd's `io.l5d.k8s` dtab store reads its keys the same way.
pub fn api_server(
    host: Option<&str>,
    port: Option<u16>,
    in_cluster: bool,
) -> Result<ApiServer, K8sConfigError> {
    if host.is_none() && port.is_none() && in_cluster {
        return Ok(ApiServer::InCluster);
    }
    let host = host.unwrap_or("localhost");
    let port = port.unwrap_or(8001);
    if port == 0 {
        return Err(K8sConfigError {
            key: "port".into(),
            why: "must be 1 to 65535".into(),
        });
    }
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let bad = host.is_empty()
        || host
            .chars()
            .any(|c| c.is_whitespace() || "/?#@[]".contains(c))
        || authority.parse::<http::uri::Authority>().is_err();
    if bad {
        return Err(K8sConfigError {
            key: "host".into(),
            why: format!("{host:?} is not a host name or IP address"),
        });
    }
    Ok(ApiServer::Proxy { authority })
}

/// A client of the API server at `api`, which does not retry by itself:
/// watches retry with their own pacing, and count each failure. Errors
/// say which server and why.
pub fn kube_client(api: &ApiServer) -> Result<kube::Client, String> {
    let mut config = match api {
        ApiServer::Proxy { authority } => {
            let url = format!("http://{authority}")
                .parse()
                .map_err(|e| format!("{authority}: {e}"))?;
            kube::Config::new(url)
        }
        ApiServer::InCluster => {
            kube::Config::incluster().map_err(|e| format!("in-cluster API server: {e}"))?
        }
    };
    config.default_retry = false;
    kube::Client::try_from(config).map_err(|e| e.to_string())
}

/// Whether `key` can be a label key: `[prefix/]name`, alphanumerics with
/// `-`, `_` and `.` inside.
fn valid_label_key(key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or_default();
    let ok = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    !name.is_empty()
        && name.len() <= 63
        && key.chars().all(|c| ok(c) || c == '/')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn defaults_are_kubectl_proxys_unless_in_a_cluster() {
        let proxy = |authority: &str| ApiServer::Proxy {
            authority: authority.into(),
        };
        assert_eq!(
            api_server(None, None, false).unwrap(),
            proxy("localhost:8001")
        );
        assert_eq!(api_server(None, None, true).unwrap(), ApiServer::InCluster);
        assert_eq!(
            api_server(Some("10.0.0.1"), None, true).unwrap(),
            proxy("10.0.0.1:8001")
        );
        assert_eq!(
            api_server(None, Some(9000), true).unwrap(),
            proxy("localhost:9000")
        );
        assert_eq!(
            api_server(Some("::1"), Some(1), false).unwrap(),
            proxy("[::1]:1")
        );
        assert_eq!(api_server(None, Some(0), false).unwrap_err().key, "port");
        assert_eq!(
            api_server(Some("a b"), None, false).unwrap_err().key,
            "host"
        );
    }

    #[test]
    fn label_selectors_must_be_label_keys() {
        let config = |label: &str| K8sConfig {
            label_selector: Some(label.into()),
            host: Some("localhost".into()),
            ..K8sConfig::default()
        };
        for good in ["version", "app.kubernetes.io/version", "a_b-c"] {
            assert!(config(good).validate(Timing::default()).is_ok(), "{good}");
        }
        for bad in ["", "version=v1", "-x", "a b"] {
            let err = config(bad).validate(Timing::default()).unwrap_err();
            assert_eq!(err.key, "labelSelector", "{bad}");
        }
    }
}
