//! `io.l5d.zk`: dtabs in ZooKeeper, as Linkerd's namerd keeps them.
//!
//! Each namespace is the znode `<pathPrefix>/<namespace>` whose data is the
//! dtab text; its version is the znode's `stat.version` as 4 big-endian
//! bytes. Compare-and-set is ZooKeeper's versioned `setData`. Watches are
//! ZooKeeper watches, one per watched namespace plus one on the children
//! of `pathPrefix` for the list, re-armed after every event and set up
//! again on a new session after the old one expired.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use dtab::Dtab;
use futures_util::future::{BoxFuture, FutureExt};
use namers::Activity;
use zookeeper_client as zk;

use super::backend::{
    DtabPublisher, Health, ListPublisher, Read, Watches, publish_failure, publish_read,
    retry_backoff,
};
use super::{
    DtabStore, DtabWatch, NamespacesWatch, StoreError, StoreResult, Version, VersionedDtab,
};
use crate::Namespace;

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
    auth: Option<(String, Vec<u8>)>,
    acls: Vec<zk::Acl>,
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

/// Dtabs in ZooKeeper.
pub struct ZkStore {
    inner: Arc<Inner>,
}

struct Inner {
    settings: ZkSettings,
    /// The current session; replaced when it has expired or closed.
    session: tokio::sync::Mutex<Option<zk::Client>>,
    watches: Watches,
}

impl ZkStore {
    /// A store with these settings; it connects on first use.
    pub fn new(settings: ZkSettings) -> ZkStore {
        ZkStore {
            inner: Arc::new(Inner {
                settings,
                session: tokio::sync::Mutex::new(None),
                watches: Watches::new("io.l5d.zk"),
            }),
        }
    }

    /// Opens the session now rather than on first use.
    pub async fn connect(&self) -> StoreResult<()> {
        self.inner
            .call("connect", async { self.inner.connected().await.map(drop) })
            .await
    }

    /// The settings this store runs with.
    pub fn settings(&self) -> &ZkSettings {
        &self.inner.settings
    }
}

impl Inner {
    fn node(&self, ns: &Namespace) -> String {
        format!("{}/{}", self.settings.path_prefix, ns)
    }

    fn where_(&self) -> String {
        format!("ZooKeeper at {}", self.settings.connect_string)
    }

    fn backend(&self, what: &str, e: zk::Error) -> StoreError {
        StoreError::Backend(format!("{}: {what}: {e}", self.where_()))
    }

    fn acls(&self) -> zk::Acls<'_> {
        if self.settings.acls.is_empty() {
            zk::Acls::anyone_all()
        } else {
            zk::Acls::new(&self.settings.acls)
        }
    }

    /// Runs `call`, failing it after the call timeout.
    async fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        let limit = self.settings.call_timeout;
        match tokio::time::timeout(limit, call).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Backend(format!(
                "{}: {what} timed out after {limit:?}",
                self.where_()
            ))),
        }
    }

    /// The live session, opening a new one if there is none or the last
    /// one has expired or closed.
    async fn session(&self) -> StoreResult<zk::Client> {
        let mut slot = self.session.lock().await;
        if let Some(client) = slot.as_ref()
            && !client.state().is_terminated()
        {
            return Ok(client.clone());
        }
        let mut connector = zk::Client::connector()
            .with_session_timeout(self.settings.session_timeout)
            .with_fail_eagerly();
        if let Some((scheme, auth)) = &self.settings.auth {
            connector = connector.with_auth(scheme, auth);
        }
        let client = connector
            .connect(&self.settings.connect_string)
            .await
            .map_err(|e| self.backend("cannot open a session", e))?;
        tracing::info!(
            servers = %self.settings.connect_string,
            session = %client.session_id(),
            "ZooKeeper session opened"
        );
        tokio::spawn(log_session_states(
            self.settings.connect_string.clone(),
            client.state_watcher(),
        ));
        *slot = Some(client.clone());
        Ok(client)
    }

    /// The session, if it is connected right now. While it reconnects,
    /// calls fail at once rather than queue: a queued write could still
    /// happen after its caller was told it failed.
    async fn connected(&self) -> StoreResult<zk::Client> {
        let client = self.session().await?;
        match client.state() {
            zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => Ok(client),
            state => Err(StoreError::Backend(format!(
                "{}: not connected ({state})",
                self.where_()
            ))),
        }
    }

    /// Creates the znode of `ns`, and `pathPrefix` first if it is missing.
    async fn create_node(
        &self,
        client: &zk::Client,
        ns: &Namespace,
        data: &[u8],
    ) -> StoreResult<Version> {
        let path = self.node(ns);
        let acls = self.acls();
        let options = zk::CreateMode::Persistent.with_acls(acls);
        for attempt in 0..2 {
            match client.create(&path, data, &options).await {
                Ok((stat, _)) => return Ok(version_of(stat.version)),
                Err(zk::Error::NodeExists) => return Err(StoreError::AlreadyExists(ns.clone())),
                Err(zk::Error::NoNode) if attempt == 0 => {
                    let prefix = &self.settings.path_prefix;
                    client
                        .mkdir(prefix, &options)
                        .await
                        .map_err(|e| self.backend(&format!("cannot create {prefix}"), e))?;
                }
                Err(e) => return Err(self.backend(&format!("cannot create {path}"), e)),
            }
        }
        Err(StoreError::Backend(format!(
            "{}: {} vanished while creating {path}",
            self.where_(),
            self.settings.path_prefix
        )))
    }

    /// Reads the namespace's znode and sets a watch on it (which also fires
    /// when it is created or deleted).
    async fn read_and_watch(&self, ns: &Namespace) -> StoreResult<(Read, zk::OneshotWatcher)> {
        let client = self.connected().await?;
        let path = self.node(ns);
        let (stat, watcher) = client
            .check_and_watch_stat(&path)
            .await
            .map_err(|e| self.backend(&format!("cannot watch {path}"), e))?;
        if stat.is_none() {
            return Ok((Read::Good(None), watcher));
        }
        let read = match client.get_data(&path).await {
            Ok((data, stat)) => match decode(ns, &data, &stat) {
                Ok(dtab) => Read::Good(Some(dtab)),
                Err(why) => Read::Corrupt(why),
            },
            // Deleted meanwhile; the watch has fired already.
            Err(zk::Error::NoNode) => Read::Good(None),
            Err(e) => return Err(self.backend(&format!("cannot read {path}"), e)),
        };
        Ok((read, watcher))
    }

    /// Lists the namespaces and sets a watch on the list (or, while
    /// `pathPrefix` does not exist, on its creation).
    async fn list_and_watch(&self) -> StoreResult<(BTreeSet<Namespace>, zk::OneshotWatcher)> {
        let client = self.connected().await?;
        let prefix = &self.settings.path_prefix;
        loop {
            match client.list_and_watch_children(prefix).await {
                Ok((children, watcher)) => return Ok((namespaces(children), watcher)),
                Err(zk::Error::NoNode) => {}
                Err(e) => return Err(self.backend(&format!("cannot list {prefix}"), e)),
            }
            let (stat, watcher) = client
                .check_and_watch_stat(prefix)
                .await
                .map_err(|e| self.backend(&format!("cannot watch {prefix}"), e))?;
            if stat.is_none() {
                return Ok((BTreeSet::new(), watcher));
            }
            // Created meanwhile: list it.
        }
    }
}

/// Linkerd's version of a znode: its `stat.version`, 4 bytes big-endian.
fn version_of(stat_version: i32) -> Version {
    Version(stat_version.to_be_bytes().to_vec())
}

fn decode(ns: &Namespace, data: &[u8], stat: &zk::Stat) -> Result<VersionedDtab, String> {
    let text = std::str::from_utf8(data)
        .map_err(|_| format!("the znode of namespace {ns} does not hold UTF-8 text"))?;
    let dtab = Dtab::read(text)
        .map_err(|e| format!("the znode of namespace {ns} does not hold a valid dtab: {e}"))?;
    Ok(VersionedDtab {
        dtab,
        version: version_of(stat.version),
    })
}

/// The children that are namespace names; others are not ours to list.
fn namespaces(children: Vec<String>) -> BTreeSet<Namespace> {
    children
        .into_iter()
        .filter_map(|child| Namespace::new(&child).ok())
        .collect()
}

async fn log_session_states(servers: String, mut states: zk::StateWatcher) {
    loop {
        let state = states.changed().await;
        match state {
            zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                tracing::info!(%servers, %state, "ZooKeeper session connected");
            }
            _ => {
                tracing::warn!(
                    %servers,
                    %state,
                    "ZooKeeper session not connected; watches keep their last values"
                );
            }
        }
        if state.is_terminated() {
            return;
        }
    }
}

impl DtabStore for ZkStore {
    fn list(&self) -> BoxFuture<'_, StoreResult<BTreeSet<Namespace>>> {
        let inner = &self.inner;
        inner
            .call("list", async move {
                let client = inner.connected().await?;
                let prefix = &inner.settings.path_prefix;
                match client.list_children(prefix).await {
                    Ok(children) => Ok(namespaces(children)),
                    Err(zk::Error::NoNode) => Ok(BTreeSet::new()),
                    Err(e) => Err(inner.backend(&format!("cannot list {prefix}"), e)),
                }
            })
            .boxed()
    }

    fn get<'a>(&'a self, ns: &'a Namespace) -> BoxFuture<'a, StoreResult<Option<VersionedDtab>>> {
        let inner = &self.inner;
        inner
            .call("get", async move {
                let client = inner.connected().await?;
                let path = inner.node(ns);
                match client.get_data(&path).await {
                    Ok((data, stat)) => decode(ns, &data, &stat)
                        .map(Some)
                        .map_err(|why| StoreError::Backend(format!("{}: {why}", inner.where_()))),
                    Err(zk::Error::NoNode) => Ok(None),
                    Err(e) => Err(inner.backend(&format!("cannot read {path}"), e)),
                }
            })
            .boxed()
    }

    fn create<'a>(
        &'a self,
        ns: &'a Namespace,
        dtab: &'a Dtab,
    ) -> BoxFuture<'a, StoreResult<Version>> {
        let inner = &self.inner;
        inner
            .call("create", async move {
                let client = inner.connected().await?;
                inner.create_node(&client, ns, dtab.show().as_bytes()).await
            })
            .boxed()
    }

    fn update<'a>(
        &'a self,
        ns: &'a Namespace,
        dtab: &'a Dtab,
        version: &'a Version,
    ) -> BoxFuture<'a, StoreResult<Version>> {
        let inner = &self.inner;
        inner
            .call("update", async move {
                let client = inner.connected().await?;
                let path = inner.node(ns);
                let Ok(expected) = <[u8; 4]>::try_from(version.0.as_slice()) else {
                    // Not a version of ours: it cannot match.
                    return match client.check_stat(&path).await {
                        Ok(Some(_)) => Err(StoreError::VersionMismatch(ns.clone())),
                        Ok(None) => Err(StoreError::NotFound(ns.clone())),
                        Err(e) => Err(inner.backend(&format!("cannot read {path}"), e)),
                    };
                };
                let expected = i32::from_be_bytes(expected);
                match client
                    .set_data(&path, dtab.show().as_bytes(), Some(expected))
                    .await
                {
                    Ok(stat) => Ok(version_of(stat.version)),
                    Err(zk::Error::BadVersion) => Err(StoreError::VersionMismatch(ns.clone())),
                    Err(zk::Error::NoNode) => Err(StoreError::NotFound(ns.clone())),
                    Err(e) => Err(inner.backend(&format!("cannot write {path}"), e)),
                }
            })
            .boxed()
    }

    fn put<'a>(&'a self, ns: &'a Namespace, dtab: &'a Dtab) -> BoxFuture<'a, StoreResult<Version>> {
        let inner = &self.inner;
        inner
            .call("put", async move {
                let client = inner.connected().await?;
                let path = inner.node(ns);
                let data = dtab.show();
                // Set, or create if missing; a create that loses a race
                // with another writer sets instead.
                for _ in 0..5 {
                    match client.set_data(&path, data.as_bytes(), None).await {
                        Ok(stat) => return Ok(version_of(stat.version)),
                        Err(zk::Error::NoNode) => {}
                        Err(e) => return Err(inner.backend(&format!("cannot write {path}"), e)),
                    }
                    match inner.create_node(&client, ns, data.as_bytes()).await {
                        Err(StoreError::AlreadyExists(_)) => continue,
                        other => return other,
                    }
                }
                Err(StoreError::Backend(format!(
                    "{}: {path} kept appearing and disappearing",
                    inner.where_()
                )))
            })
            .boxed()
    }

    fn delete<'a>(&'a self, ns: &'a Namespace) -> BoxFuture<'a, StoreResult<()>> {
        let inner = &self.inner;
        inner
            .call("delete", async move {
                let client = inner.connected().await?;
                let path = inner.node(ns);
                match client.delete(&path, None).await {
                    Ok(()) => Ok(()),
                    Err(zk::Error::NoNode) => Err(StoreError::NotFound(ns.clone())),
                    Err(e) => Err(inner.backend(&format!("cannot delete {path}"), e)),
                }
            })
            .boxed()
    }

    fn watch_list(&self) -> NamespacesWatch {
        let inner = self.inner.clone();
        self.inner
            .watches
            .list(|publisher| watch_list(inner, publisher))
    }

    fn watch(&self, ns: &Namespace) -> DtabWatch {
        let inner = self.inner.clone();
        self.inner
            .watches
            .dtab(ns, |publisher| watch_dtab(inner, ns.clone(), publisher))
    }
}

/// Keeps one namespace's watch up to date; dropped when nobody holds it.
async fn watch_dtab(inner: Arc<Inner>, ns: Namespace, publisher: DtabPublisher) {
    let what = format!("watch of {}", inner.node(&ns));
    let mut health = Health::new(&what);
    let mut backoff = retry_backoff();
    loop {
        match inner.call("watch", inner.read_and_watch(&ns)).await {
            Ok((read, watcher)) => {
                health.ok();
                backoff.reset();
                publish_read(&publisher, &ns, read);
                // Fires on a change, or on the end of the session (then the
                // next round opens a new one).
                watcher.changed().await;
            }
            Err(e) => {
                health.failed(&e);
                publish_failure(&publisher, &e);
                tokio::time::sleep(backoff.next_pause()).await;
            }
        }
    }
}

/// Keeps the list watch up to date; dropped when nobody holds it.
async fn watch_list(inner: Arc<Inner>, publisher: ListPublisher) {
    let what = format!("watch of the children of {}", inner.settings.path_prefix);
    let mut health = Health::new(&what);
    let mut backoff = retry_backoff();
    loop {
        match inner.call("watch", inner.list_and_watch()).await {
            Ok((names, watcher)) => {
                health.ok();
                backoff.reset();
                publisher.publish_if_changed(Activity::Ok(names));
                watcher.changed().await;
            }
            Err(e) => {
                health.failed(&e);
                publish_failure(&publisher, &e);
                tokio::time::sleep(backoff.next_pause()).await;
            }
        }
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watches_are_shared_and_stop_with_their_last_handle() {
        let Some(server) = integration::servers::ZooKeeper::start() else {
            return;
        };
        let config = ZkConfig {
            zk_addrs: vec![ZkAddr {
                host: "127.0.0.1".to_string(),
                port: server.port(),
            }],
            path_prefix: "/shared".to_string(),
            session_timeout_ms: 10_000,
            auth_info: None,
            acls: Vec::new(),
        };
        let store = config.build().unwrap();
        let ns = Namespace::new("a").unwrap();
        let first = store.watch(&ns);
        let second = store.watch(&ns);
        assert!(
            first.same_source(&second),
            "one backend watch per namespace"
        );
        let list = store.watch_list();
        assert!(list.same_source(&store.watch_list()));
        crate::store::contract::wait_for(&first, Duration::from_secs(10), "an answer", |s| {
            matches!(s, Activity::Ok(None))
        })
        .await;
        drop(first);
        assert!(store.inner.watches.watches(&ns));
        drop((second, list));
        // The tasks end and let go of the store.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&store.inner) > 1 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "watch tasks still run"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(store.inner.watches.is_empty());
        // A new watch starts afresh and works.
        let again = store.watch(&ns);
        let version = store
            .put(&ns, &Dtab::read("/a=>/b").unwrap())
            .await
            .unwrap();
        crate::store::contract::wait_for(
            &again,
            Duration::from_secs(10),
            "the write",
            |s| matches!(s, Activity::Ok(Some(d)) if d.version == version),
        )
        .await;
    }

    #[test]
    fn versions_are_four_big_endian_bytes() {
        assert_eq!(version_of(258).0, vec![0, 0, 1, 2]);
        assert_eq!(version_of(0).to_etag(), "AAAAAA==");
    }
}
