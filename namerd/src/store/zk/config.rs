//! The `io.l5d.zk` storage config, with Linkerd's keys and defaults, and
//! its checks.

use std::time::Duration;

use zookeeper_client as zk;

use super::ZkStore;

/// How long one backend call may take before it fails.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The `io.l5d.zk` config, with Linkerd's keys.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ZkConfig {
    /// The ZooKeeper servers.
    pub zk_addrs: Vec<ZkAddr>,
    /// The parent znode of the namespaces (default `/dtabs`).
    #[serde(default = "default_path_prefix")]
    pub path_prefix: String,
    /// The session timeout asked of ZooKeeper, in ms (default 10000).
    #[serde(default = "default_session_timeout_ms")]
    pub session_timeout_ms: u64,
    /// Credentials added to the session, e.g. `digest` and `user:password`.
    #[serde(default)]
    pub auth_info: Option<ZkAuthInfo>,
    /// The ACLs of the znodes this store creates (default: anyone may do
    /// anything, ZooKeeper's `OPEN_ACL_UNSAFE`).
    #[serde(default)]
    pub acls: Vec<ZkAclConfig>,
}

/// One ZooKeeper server.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ZkAddr {
    /// Host name or IP address.
    pub host: String,
    /// Client port (default 2181).
    #[serde(default = "default_port")]
    pub port: u16,
}

/// Session credentials: ZooKeeper's `addAuthInfo(scheme, auth)`.
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ZkAuthInfo {
    /// The scheme, e.g. `digest`.
    pub scheme: String,
    /// The credentials, e.g. `user:password`.
    pub auth: String,
}

// Credentials stay out of logs.
impl std::fmt::Debug for ZkAuthInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkAuthInfo")
            .field("scheme", &self.scheme)
            .field("auth", &"<redacted>")
            .finish()
    }
}

/// One ACL entry of the znodes this store creates.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ZkAclConfig {
    /// The scheme, e.g. `world`, `digest`, `ip`.
    pub scheme: String,
    /// The id in that scheme, e.g. `anyone`.
    pub id: String,
    /// The permissions as letters of `crwda` (create, read, write, delete,
    /// admin).
    pub perms: String,
}

fn default_path_prefix() -> String {
    "/dtabs".to_string()
}

fn default_session_timeout_ms() -> u64 {
    10_000
}

fn default_port() -> u16 {
    2181
}

impl ZkConfig {
    /// Checks the config; the error names the key and why.
    pub fn validate(&self) -> Result<ZkSettings, String> {
        if self.zk_addrs.is_empty() {
            return Err("zkAddrs: at least one ZooKeeper server is required".to_string());
        }
        let mut servers = Vec::new();
        for (i, addr) in self.zk_addrs.iter().enumerate() {
            let host = addr.host.trim();
            if host.is_empty() || host.contains([',', '/', ' ']) {
                return Err(format!("zkAddrs[{i}].host: invalid host {:?}", addr.host));
            }
            if addr.port == 0 {
                return Err(format!("zkAddrs[{i}].port: must be 1-65535"));
            }
            if host.contains(':') {
                servers.push(format!("[{host}]:{}", addr.port));
            } else {
                servers.push(format!("{host}:{}", addr.port));
            }
        }
        let path_prefix = validate_path_prefix(&self.path_prefix)?;
        if self.session_timeout_ms == 0 {
            return Err("sessionTimeoutMs: must be positive".to_string());
        }
        let auth = match &self.auth_info {
            Some(info) if info.scheme.trim().is_empty() => {
                return Err("authInfo.scheme: must not be empty".to_string());
            }
            Some(info) => Some((info.scheme.clone(), info.auth.clone().into_bytes())),
            None => None,
        };
        let mut acls = Vec::new();
        for (i, acl) in self.acls.iter().enumerate() {
            if acl.scheme.trim().is_empty() {
                return Err(format!("acls[{i}].scheme: must not be empty"));
            }
            let perms = parse_perms(&acl.perms).map_err(|e| format!("acls[{i}].perms: {e}"))?;
            acls.push(zk::Acl::new(perms, zk::AuthId::new(&acl.scheme, &acl.id)));
        }
        Ok(ZkSettings {
            connect_string: servers.join(","),
            path_prefix,
            session_timeout: Duration::from_millis(self.session_timeout_ms),
            call_timeout: DEFAULT_CALL_TIMEOUT,
            auth,
            acls,
        })
    }

    /// Checks the config and builds the store. It connects on first use,
    /// so namerd can start while ZooKeeper is down.
    pub fn build(&self) -> Result<ZkStore, String> {
        Ok(ZkStore::new(self.validate()?))
    }

    /// Checks the config, builds the store and opens its session now,
    /// failing if ZooKeeper cannot be reached within the call timeout.
    pub async fn connect(&self) -> Result<ZkStore, String> {
        let store = self.build()?;
        store.connect().await.map_err(|e| e.to_string())?;
        Ok(store)
    }
}

fn validate_path_prefix(prefix: &str) -> Result<String, String> {
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    let bad = |why: &str| Err(format!("pathPrefix: {why} (got {prefix:?})"));
    if !trimmed.starts_with('/') {
        return bad("must be an absolute znode path, like /dtabs");
    }
    if trimmed.is_empty() {
        return bad("must name a znode below the root");
    }
    for segment in trimmed[1..].split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return bad("has an empty, `.` or `..` segment");
        }
        if segment.chars().any(|c| c.is_control()) {
            return bad("has a control character");
        }
    }
    Ok(trimmed.to_string())
}

/// ZooKeeper's permission letters: `c`reate, `r`ead, `w`rite, `d`elete,
/// `a`dmin.
fn parse_perms(text: &str) -> Result<zk::Permission, String> {
    let mut perms = zk::Permission::NONE;
    for c in text.chars() {
        perms = perms
            | match c.to_ascii_lowercase() {
                'c' => zk::Permission::CREATE,
                'r' => zk::Permission::READ,
                'w' => zk::Permission::WRITE,
                'd' => zk::Permission::DELETE,
                'a' => zk::Permission::ADMIN,
                _ => {
                    return Err(format!(
                        "unknown permission {c:?}; use letters of \"crwda\""
                    ));
                }
            };
    }
    if perms == zk::Permission::NONE {
        return Err("no permission given; use letters of \"crwda\"".to_string());
    }
    Ok(perms)
}

/// A checked `io.l5d.zk` config.
#[derive(Clone)]
pub struct ZkSettings {
    /// The servers as a ZooKeeper connect string, `host:port,...`.
    pub connect_string: String,
    /// The parent znode, without a trailing `/`.
    pub path_prefix: String,
    /// The session timeout asked of ZooKeeper.
    pub session_timeout: Duration,
    /// How long one backend call (including connecting) may take.
    pub call_timeout: Duration,
    pub(super) auth: Option<(String, Vec<u8>)>,
    pub(super) acls: Vec<zk::Acl>,
}

// Credentials stay out of logs.
impl std::fmt::Debug for ZkSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkSettings")
            .field("connect_string", &self.connect_string)
            .field("path_prefix", &self.path_prefix)
            .field("session_timeout", &self.session_timeout)
            .field("call_timeout", &self.call_timeout)
            .field("auth_scheme", &self.auth.as_ref().map(|(scheme, _)| scheme))
            .field("acls", &self.acls)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml_like_json: &str) -> Result<ZkSettings, String> {
        let config: ZkConfig = serde_json::from_str(yaml_like_json).map_err(|e| e.to_string())?;
        config.validate()
    }

    #[test]
    fn defaults_follow_linkerd() {
        let settings =
            config(r#"{"zkAddrs": [{"host": "zk1"}, {"host": "zk2", "port": 2182}]}"#).unwrap();
        assert_eq!(settings.connect_string, "zk1:2181,zk2:2182");
        assert_eq!(settings.path_prefix, "/dtabs");
        assert_eq!(settings.session_timeout, Duration::from_secs(10));
        assert!(settings.acls.is_empty());
        assert!(settings.auth.is_none());
    }

    #[test]
    fn auth_and_acls_are_read() {
        let settings = config(
            r#"{"zkAddrs": [{"host": "::1"}], "pathPrefix": "/a/b/", "sessionTimeoutMs": 3000,
                "authInfo": {"scheme": "digest", "auth": "u:p"},
                "acls": [{"scheme": "digest", "id": "u:hash", "perms": "crwda"},
                         {"scheme": "world", "id": "anyone", "perms": "r"}]}"#,
        )
        .unwrap();
        assert_eq!(settings.connect_string, "[::1]:2181");
        assert_eq!(settings.path_prefix, "/a/b");
        assert_eq!(settings.session_timeout, Duration::from_secs(3));
        assert_eq!(settings.auth, Some(("digest".into(), b"u:p".to_vec())));
        assert_eq!(settings.acls[0].permission(), zk::Permission::ALL);
        assert_eq!(settings.acls[1].permission(), zk::Permission::READ);
        assert_eq!(settings.acls[1].scheme(), "world");
        assert!(
            !format!("{settings:?}").contains("u:p"),
            "credentials in Debug"
        );
    }

    #[test]
    fn bad_configs_name_the_key() {
        let cases = [
            (r#"{"zkAddrs": []}"#, "zkAddrs:"),
            (r#"{"zkAddrs": [{"host": ""}]}"#, "zkAddrs[0].host"),
            (
                r#"{"zkAddrs": [{"host": "a", "port": 0}]}"#,
                "zkAddrs[0].port",
            ),
            (
                r#"{"zkAddrs": [{"host": "a"}], "pathPrefix": "dtabs"}"#,
                "pathPrefix",
            ),
            (
                r#"{"zkAddrs": [{"host": "a"}], "pathPrefix": "/"}"#,
                "pathPrefix",
            ),
            (
                r#"{"zkAddrs": [{"host": "a"}], "pathPrefix": "/a//b"}"#,
                "pathPrefix",
            ),
            (
                r#"{"zkAddrs": [{"host": "a"}], "sessionTimeoutMs": 0}"#,
                "sessionTimeoutMs",
            ),
            (
                r#"{"zkAddrs": [{"host": "a"}], "acls": [{"scheme": "world", "id": "anyone", "perms": "rx"}]}"#,
                "acls[0].perms",
            ),
            (
                r#"{"zkAddrs": [{"host": "a"}], "zkAddr": []}"#,
                "unknown field `zkAddr`",
            ),
        ];
        for (text, key) in cases {
            let err = config(text).err().unwrap_or_default();
            assert!(err.contains(key), "{text}: {err:?} should name {key}");
        }
    }
}
