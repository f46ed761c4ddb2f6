//! The `io.l5d.etcd` config block and its checks.

use std::time::Duration;

use super::EtcdStore;
use crate::store::DtabStore;

/// How long one backend call may take before it fails.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The `io.l5d.etcd` config, with Linkerd's keys.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EtcdConfig {
    /// The etcd host (default `localhost`).
    #[serde(default = "default_host")]
    pub host: String,
    /// The etcd client port (default 2379).
    #[serde(default = "default_port")]
    pub port: u16,
    /// The key prefix of the namespaces (default `/namerd/dtabs`).
    #[serde(default = "default_path_prefix")]
    pub path_prefix: String,
}

impl Default for EtcdConfig {
    fn default() -> EtcdConfig {
        EtcdConfig {
            host: default_host(),
            port: default_port(),
            path_prefix: default_path_prefix(),
        }
    }
}

fn default_host() -> String {
    "localhost".to_string()
}

fn default_port() -> u16 {
    2379
}

fn default_path_prefix() -> String {
    "/namerd/dtabs".to_string()
}

impl EtcdConfig {
    /// Checks the config; the error names the key and why.
    pub fn validate(&self) -> Result<EtcdSettings, String> {
        let host = self.host.trim();
        if host.is_empty() || host.contains(['/', ' ', '@', '?', '#']) {
            return Err(format!("host: invalid host {:?}", self.host));
        }
        if self.port == 0 {
            return Err("port: must be 1-65535".to_string());
        }
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let prefix = &self.path_prefix;
        let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
        if !trimmed.starts_with('/') {
            return Err(format!(
                "pathPrefix: must start with '/', like /namerd/dtabs (got {prefix:?})"
            ));
        }
        if trimmed[1..].split('/').any(str::is_empty) {
            return Err(format!(
                "pathPrefix: must name a key prefix below the root, without empty segments (got {prefix:?})"
            ));
        }
        Ok(EtcdSettings {
            endpoint: format!("http://{host}:{}", self.port),
            path_prefix: trimmed.to_string(),
            call_timeout: DEFAULT_CALL_TIMEOUT,
        })
    }

    /// Checks the config and builds the store. It connects on first use,
    /// so namerd can start while etcd is down.
    pub fn build(&self) -> Result<EtcdStore, String> {
        Ok(EtcdStore::new(self.validate()?))
    }

    /// Checks the config, builds the store and makes one call now, failing
    /// if etcd cannot be reached within the call timeout.
    pub async fn connect(&self) -> Result<EtcdStore, String> {
        let store = self.build()?;
        store.list().await.map_err(|e| e.to_string())?;
        Ok(store)
    }
}

/// A checked `io.l5d.etcd` config.
#[derive(Clone, Debug)]
pub struct EtcdSettings {
    /// The client URL, `http://host:port`.
    pub endpoint: String,
    /// The key prefix, without a trailing `/`.
    pub path_prefix: String,
    /// How long one backend call may take.
    pub call_timeout: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> Result<EtcdSettings, String> {
        let config: EtcdConfig = serde_json::from_str(json).map_err(|e| e.to_string())?;
        config.validate()
    }

    #[test]
    fn defaults_follow_linkerd() {
        let settings = config("{}").unwrap();
        assert_eq!(settings.endpoint, "http://localhost:2379");
        assert_eq!(settings.path_prefix, "/namerd/dtabs");
        assert_eq!(settings.call_timeout, DEFAULT_CALL_TIMEOUT);
        let settings = config(r#"{"host": "::1", "port": 2380, "pathPrefix": "/x/"}"#).unwrap();
        assert_eq!(settings.endpoint, "http://[::1]:2380");
        assert_eq!(settings.path_prefix, "/x");
    }

    #[test]
    fn bad_configs_name_the_key() {
        let cases = [
            (r#"{"host": ""}"#, "host:"),
            (r#"{"host": "http://a"}"#, "host:"),
            (r#"{"port": 0}"#, "port:"),
            (r#"{"pathPrefix": "namerd"}"#, "pathPrefix"),
            (r#"{"pathPrefix": "/"}"#, "pathPrefix"),
            (r#"{"pathPrefix": "/a//b"}"#, "pathPrefix"),
            (r#"{"prefix": "/a"}"#, "unknown field `prefix`"),
        ];
        for (text, key) in cases {
            let err = config(text).err().unwrap_or_default();
            assert!(err.contains(key), "{text}: {err:?} should name {key}");
        }
    }
}
