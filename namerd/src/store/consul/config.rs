//! The `io.l5d.consul` storage config, with Linkerd's keys and defaults,
//! and its checks.

use std::sync::Arc;
use std::time::Duration;

use namers::consul::{Agent, ConsistencyMode, ConsulClient, kv};

use super::{ConsulStore, Inner, KIND};
use crate::store::backend::Watches;

/// Consul's limit on the `wait` of a blocking query.
const MAX_WAIT: Duration = Duration::from_secs(600);

/// The `io.l5d.consul` storage config, with Linkerd's keys and defaults.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConsulConfig {
    /// The Consul agent's host name or IP address; `localhost` by default.
    pub host: Option<String>,
    /// The agent's HTTP port; 8500 by default.
    pub port: Option<u16>,
    /// The KV folder holding one key per namespace; `/namerd/dtabs` by default.
    pub path_prefix: Option<String>,
    /// The ACL token sent with every call, if any.
    pub token: Option<String>,
    /// The datacenter whose KV store is used; the agent's own by default.
    pub datacenter: Option<String>,
    /// The consistency of reads and watches; `default` by default.
    pub read_consistency_mode: Option<ConsistencyMode>,
    /// The consistency of the reads a write makes (the check after a lost
    /// compare-and-set, the read before a delete, the read of the version a
    /// write made); `default` by default.
    pub write_consistency_mode: Option<ConsistencyMode>,
    /// Accepted for compatibility with Linkerd's config. Here a call to an
    /// unreachable agent always fails at once and watches retry with
    /// backoff, whatever its value.
    pub fail_fast: Option<bool>,
}

/// Timeouts and retry pacing; not part of the config file.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// How long one blocking query may wait for a change (Consul caps it
    /// at 10 minutes).
    pub wait: Duration,
    /// The limit on a call that is not a blocking query. A blocking query
    /// may take `wait`, plus Consul's random extra of up to `wait / 16`,
    /// plus this.
    pub request_timeout: Duration,
    /// The first pause of a watch after a failed query.
    pub backoff_min: Duration,
    /// The longest pause of a watch between failed queries.
    pub backoff_max: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            wait: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
        }
    }
}

impl ConsulConfig {
    /// Checks the config and builds the store with the default [`Timing`].
    pub fn build(&self) -> Result<ConsulStore, String> {
        self.build_with(Timing::default())
    }

    /// Checks the config and builds the store with the given timing.
    pub fn build_with(&self, timing: Timing) -> Result<ConsulStore, String> {
        let agent = Agent::new(
            self.host.as_deref().unwrap_or("localhost"),
            self.port.unwrap_or(8500),
            self.token.as_deref(),
        )
        .map_err(|e| e.to_string())?;
        let prefix = kv::path_prefix(self.path_prefix.as_deref().unwrap_or("/namerd/dtabs"))
            .map_err(|e| format!("pathPrefix: {e}"))?;
        if let Some(dc) = &self.datacenter {
            kv::datacenter(dc).map_err(|e| format!("datacenter: {e}"))?;
        }
        let timing = Timing {
            wait: timing.wait.clamp(Duration::from_millis(1), MAX_WAIT),
            ..timing
        };
        Ok(ConsulStore {
            inner: Arc::new(Inner {
                client: ConsulClient::new(agent, timing.request_timeout),
                datacenter: self.datacenter.clone(),
                prefix,
                read: self.read_consistency_mode.unwrap_or_default(),
                write: self.write_consistency_mode.unwrap_or_default(),
                timing,
                watches: Watches::new(KIND),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Namespace;

    fn config(yaml_like: serde_json::Value) -> Result<ConsulConfig, String> {
        serde_json::from_value(yaml_like).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_follow_linkerd() {
        let store = ConsulConfig::default().build().unwrap();
        assert_eq!(
            store.key(&Namespace::new("default").unwrap()),
            "namerd/dtabs/default"
        );
        assert_eq!(store.inner.client.agent().authority(), "localhost:8500");
        assert_eq!(store.inner.read, ConsistencyMode::Default);
        assert_eq!(store.inner.timing.wait, Duration::from_secs(30));
    }

    #[test]
    fn linkerd_keys_are_read_and_unknown_ones_refused() {
        let parsed = config(serde_json::json!({
            "host": "consul.local", "port": 8501, "pathPrefix": "/dtabs/prod/",
            "token": "secret", "datacenter": "east-1",
            "readConsistencyMode": "stale", "writeConsistencyMode": "consistent",
            "failFast": true
        }))
        .unwrap();
        let store = parsed.build().unwrap();
        assert_eq!(store.key(&Namespace::new("web").unwrap()), "dtabs/prod/web");
        assert_eq!(store.inner.client.agent().authority(), "consul.local:8501");
        assert_eq!(store.inner.read, ConsistencyMode::Stale);
        assert_eq!(store.inner.write, ConsistencyMode::Consistent);

        let err = config(serde_json::json!({"hots": "x"})).unwrap_err();
        assert!(err.contains("unknown field `hots`"), "{err}");
        let err = config(serde_json::json!({"readConsistencyMode": "eventual"})).unwrap_err();
        assert!(err.contains("eventual"), "{err}");
    }

    #[test]
    fn bad_values_are_refused_with_the_key_named() {
        let build = |v: serde_json::Value| config(v).unwrap().build().err().unwrap();
        assert!(build(serde_json::json!({"port": 0})).starts_with("port:"));
        assert!(build(serde_json::json!({"pathPrefix": "namerd"})).starts_with("pathPrefix:"));
        assert!(build(serde_json::json!({"pathPrefix": "/a//b"})).starts_with("pathPrefix:"));
        assert!(build(serde_json::json!({"pathPrefix": "/a b"})).starts_with("pathPrefix:"));
        assert!(build(serde_json::json!({"datacenter": "dc 1"})).starts_with("datacenter:"));
        assert!(build(serde_json::json!({"token": "a\nb"})).starts_with("token:"));
        assert!(build(serde_json::json!({"host": "a/b"})).starts_with("host:"));
        assert!(build(serde_json::json!({"host": ""})).starts_with("host:"));
    }

    #[test]
    fn root_prefix_and_ipv6_hosts_work() {
        let store = config(serde_json::json!({"pathPrefix": "/", "host": "::1"}))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(store.key(&Namespace::new("x").unwrap()), "x");
        assert_eq!(store.inner.list_prefix(), "");
        assert_eq!(store.inner.client.agent().authority(), "[::1]:8500");
    }
}
