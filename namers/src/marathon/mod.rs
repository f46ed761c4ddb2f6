//! The `io.l5d.marathon` namer: the tasks of Marathon apps (DC/OS), polled.
//!
//! A path `/<app id path>[/residual]` names the app whose id is the
//! shortest leading part of the path, compared in lower case, as Linkerd
//! does: `/group/web/api` is the app `/group/web` with residual `/api` when
//! Marathon has an app `/group/web`. The id is the namer's prefix followed
//! by the app id (lower case); the residual keeps its case.
//!
//! As Linkerd, the namer polls: the list of apps (`GET
//! <uriPrefix>/v2/apps`), once for the whole namer, and each app looked up
//! (`GET <uriPrefix>/v2/apps/<id>?embed=app.tasks`), each every `ttlMs`
//! give or take up to `jitterMs`. An app's endpoints are its tasks' host and
//! first port, or with an IP per task (`ipAddress.discovery.ports`) each
//! task's first IP address and the first discovery port. With
//! `useHealthCheck`, only tasks that are `TASK_RUNNING` with as many alive
//! health check results as the app has health checks count. Host names are
//! resolved when the answer arrives.
//!
//! **Existence.** An app that is not in the list, or that has no usable
//! task, is `~` (so that a dtab's `|` falls through), as in Linkerd.
//!
//! **Outages.** A failed poll (Marathon down or without a leader,
//! unreadable answer, login refused) keeps the last good answer; only a
//! poll that never had an answer reports the failure. Each change between
//! answering and failing is logged once and counted
//! ([`MarathonStats::state_changes`]); every failed poll counts as an error.
//!
//! **Authentication.** As Linkerd, from the environment:
//! `DCOS_SERVICE_ACCOUNT_CREDENTIAL` (a DC/OS service account: a signed JWT
//! is posted to the login endpoint's path on the Marathon server, and the
//! token it gives is sent as `Authorization: token=<token>`), else
//! `MARATHON_HTTP_AUTH_CREDENTIAL` (sent as `Authorization: Basic <it>`).
//!
//! The tests of this namer run against an in-process fake of Marathon's
//! API (`integration::marathon`), not a real Marathon.

mod api;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use dtab::{NameTree, Path};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::NamerContext;
use crate::{
    Activity, Addr, Bound, Endpoint, Live, LiveCache, Lookup, Name, Namer, NamerCounter,
    NamingError, Publisher,
};
use api::{Api, AppIds, Auth, DcosLogin};

/// The environment variable holding DC/OS service-account credentials.
pub const DCOS_CREDENTIAL_ENV: &str = "DCOS_SERVICE_ACCOUNT_CREDENTIAL";

/// The environment variable holding a basic-auth credential.
pub const BASIC_CREDENTIAL_ENV: &str = "MARATHON_HTTP_AUTH_CREDENTIAL";

/// How long one call to Marathon may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The `io.l5d.marathon` config block (its `kind`, `prefix` and
/// `transformers` are read by the namer registry).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MarathonConfig {
    /// The Marathon host (default `marathon.mesos`), also the `Host` header.
    pub host: Option<String>,
    /// Its port (default 80).
    pub port: Option<u16>,
    /// Where to connect, as `/$/inet/<host>/<port>` (default: `host` and
    /// `port`).
    pub dst: Option<String>,
    /// What the API's paths start with (default none), e.g. `/marathon`.
    pub uri_prefix: Option<String>,
    /// The polling interval in milliseconds (default 5000).
    pub ttl_ms: Option<u64>,
    /// How far each pause may differ from `ttlMs`, in milliseconds
    /// (default 50).
    pub jitter_ms: Option<u64>,
    /// Keep only tasks whose health checks are all alive (default false).
    pub use_health_check: Option<bool>,
    /// Linkerd's client TLS; not supported yet.
    pub tls: Option<Value>,
}

impl MarathonConfig {
    /// Checks the config and builds the namer, with credentials read by
    /// `env` (the process environment in [`build`]).
    pub fn build(
        &self,
        prefix: Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Arc<MarathonNamer>, String> {
        if self.tls.is_some() {
            return Err("tls: not supported yet by io.l5d.marathon".into());
        }
        let host = self.host.clone().unwrap_or_else(|| "marathon.mesos".into());
        if host.is_empty() {
            return Err("host: must not be empty".into());
        }
        let port = self.port.unwrap_or(80);
        if port == 0 {
            return Err("port: must be 1 to 65535".into());
        }
        let connect = match &self.dst {
            None => format!("{host}:{port}"),
            Some(dst) => inet_dst(dst).map_err(|e| format!("dst: {e}"))?,
        };
        let uri_prefix = self
            .uri_prefix
            .as_deref()
            .unwrap_or("")
            .trim_end_matches('/');
        if !uri_prefix.is_empty() && !uri_prefix.starts_with('/') {
            return Err(format!("uriPrefix: {uri_prefix:?} must start with '/'"));
        }
        let ttl = self.ttl_ms.unwrap_or(5000);
        if ttl == 0 {
            return Err("ttlMs: must be at least 1".into());
        }
        let auth = match (env(DCOS_CREDENTIAL_ENV), env(BASIC_CREDENTIAL_ENV)) {
            (Some(secret), _) => Auth::Dcos(
                DcosLogin::from_secret(&secret)
                    .map_err(|e| format!("{DCOS_CREDENTIAL_ENV}: {e}"))?,
            ),
            (None, Some(basic)) => Auth::Basic(basic),
            (None, None) => Auth::None,
        };
        let api = Api::new(connect, host, uri_prefix, auth, REQUEST_TIMEOUT);
        Ok(Arc::new(MarathonNamer {
            shared: Arc::new(Shared {
                prefix,
                api,
                ttl: Duration::from_millis(ttl),
                jitter: Duration::from_millis(self.jitter_ms.unwrap_or(50)),
                use_health_check: self.use_health_check.unwrap_or(false),
                apps: LiveCache::default(),
                addrs: LiveCache::default(),
                stats: MarathonStats::default(),
            }),
        }))
    }
}

/// `host:port` from `/$/inet/<host>/<port>` (the only `dst` taken).
fn inet_dst(dst: &str) -> Result<String, String> {
    let path = Path::read(dst).map_err(|e| e.to_string())?;
    let labels: Vec<String> = path
        .elems()
        .iter()
        .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned())
        .collect();
    match labels.as_slice() {
        [dollar, inet, host, port] if dollar == "$" && (inet == "inet" || inet == "fixedinet") => {
            let port: u16 = port
                .parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{dst:?}: bad port {port:?}"))?;
            Ok(format!("{host}:{port}"))
        }
        _ => Err(format!(
            "{dst:?}: only /$/inet/<host>/<port> is supported here"
        )),
    }
}

/// Builds the namer from its config keys (the registry's entry point).
pub fn build(
    prefix: &Path,
    params: &Map<String, Value>,
    _: &NamerContext,
) -> Result<Arc<dyn Namer>, String> {
    let config: MarathonConfig = crate::config::kind_params(params)?;
    Ok(config.build(prefix.clone(), &|key| std::env::var(key).ok())?)
}

/// Counters of a Marathon namer.
#[derive(Debug, Default)]
pub struct MarathonStats {
    /// Failed polls, retries included.
    pub errors: AtomicU64,
    /// Changes between answering and failing, either way.
    pub state_changes: AtomicU64,
    /// Polling loops started (the app list, each app).
    pub watches_started: AtomicU64,
    /// Polling loops ended because nothing used them.
    pub watches_ended: AtomicU64,
}

/// The `io.l5d.marathon` namer.
pub struct MarathonNamer {
    shared: Arc<Shared>,
}

struct Shared {
    prefix: Path,
    api: Api,
    ttl: Duration,
    jitter: Duration,
    use_health_check: bool,
    /// The list of apps, polled while someone looks up.
    apps: LiveCache<(), Activity<Arc<AppIds>>>,
    /// Each app's address, polled while someone holds it.
    addrs: LiveCache<String, Addr>,
    stats: MarathonStats,
}

impl MarathonNamer {
    /// The namer's counters.
    pub fn stats(&self) -> &MarathonStats {
        &self.shared.stats
    }
}

impl Shared {
    /// `ttl`, give or take up to `jitter`.
    fn pause(&self) -> Duration {
        let jitter = self.jitter.as_secs_f64() * (rand::random::<f64>() * 2.0 - 1.0);
        Duration::from_secs_f64((self.ttl.as_secs_f64() + jitter).max(0.001))
    }

    fn apps(self: &Arc<Self>) -> Live<Activity<Arc<AppIds>>> {
        let shared = self.clone();
        self.apps.subscribe(
            (),
            || Activity::Pending,
            move |publisher| {
                let shared = shared.clone();
                async move {
                    shared
                        .poll(
                            &publisher,
                            "the app list",
                            |s| async move {
                                s.api.app_ids().await.map(|ids| Activity::Ok(Arc::new(ids)))
                            },
                            |e| Activity::Failed(NamingError::namer(e)),
                        )
                        .await;
                }
            },
        )
    }

    fn addr(self: &Arc<Self>, app: &str) -> Live<Addr> {
        let shared = self.clone();
        let app = app.to_string();
        self.addrs.subscribe(
            app.clone(),
            || Addr::Pending,
            move |publisher| {
                let shared = shared.clone();
                let app = app.clone();
                async move {
                    let what = format!("app {app}");
                    shared
                        .poll(
                            &publisher,
                            &what,
                            |s| {
                                let app = app.clone();
                                async move {
                                    let tasks = s.api.app_tasks(&app, s.use_health_check).await?;
                                    let addrs = api::resolve(&tasks.unwrap_or_default()).await;
                                    Ok(endpoints_addr(addrs))
                                }
                            },
                            |e| Addr::Failed(e.into()),
                        )
                        .await;
                }
            },
        )
    }

    /// Polls with `get` every pause until nobody watches `publisher`: an
    /// answer is published if it differs; a failure is published only if
    /// there was no answer yet, else logged (once per outage) and counted.
    async fn poll<T, F, Fut>(
        self: &Arc<Self>,
        publisher: &Publisher<T>,
        what: &str,
        get: F,
        failed: impl Fn(String) -> T,
    ) where
        T: PartialEq + Send + Sync + 'static,
        F: Fn(Arc<Shared>) -> Fut,
        Fut: std::future::Future<Output = Result<T, String>>,
    {
        self.stats.watches_started.fetch_add(1, Ordering::Relaxed);
        let answered = AtomicBool::new(false);
        let mut failing = false;
        loop {
            let result = tokio::select! {
                () = publisher.closed() => break,
                result = get(self.clone()) => result,
            };
            match result {
                Ok(value) => {
                    if failing {
                        tracing::info!(
                            namer = "io.l5d.marathon",
                            "Marathon answers again for {what}"
                        );
                        self.stats.state_changes.fetch_add(1, Ordering::Relaxed);
                        failing = false;
                    }
                    answered.store(true, Ordering::Relaxed);
                    publisher.publish_if_changed(value);
                }
                Err(e) => {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    if !answered.load(Ordering::Relaxed) {
                        publisher.publish_if_changed(failed(e.clone()));
                    }
                    if !failing {
                        tracing::warn!(
                            namer = "io.l5d.marathon",
                            "polling {what} failed{}: {e}",
                            if answered.load(Ordering::Relaxed) {
                                "; keeping the last answer"
                            } else {
                                ""
                            }
                        );
                        self.stats.state_changes.fetch_add(1, Ordering::Relaxed);
                        failing = true;
                    }
                }
            }
            tokio::select! {
                () = publisher.closed() => break,
                () = tokio::time::sleep(self.pause()) => {}
            }
        }
        self.stats.watches_ended.fetch_add(1, Ordering::Relaxed);
    }
}

/// `~` for no endpoint, as Linkerd.
fn endpoints_addr(addrs: Vec<SocketAddr>) -> Addr {
    if addrs.is_empty() {
        Addr::Neg
    } else {
        Addr::bound(addrs.into_iter().map(Endpoint::new).collect())
    }
}

/// The app a path names: the shortest leading part that is an app id, and
/// how many labels it took.
fn find_app(apps: &AppIds, lowered: &[String]) -> Option<(String, usize)> {
    (1..=lowered.len()).find_map(|n| {
        let id = format!("/{}", lowered[..n].join("/"));
        apps.contains(&id).then_some((id, n))
    })
}

impl Namer for MarathonNamer {
    fn lookup(&self, path: &Path) -> Lookup {
        if path.is_empty() {
            return Live::constant(Activity::Ok(NameTree::Neg));
        }
        let lowered: Vec<String> = path
            .elems()
            .iter()
            .map(|l| String::from_utf8_lossy(l.as_bytes()).to_lowercase())
            .collect();
        let shared = self.shared.clone();
        let mut apps = shared.apps();
        let publisher = Publisher::new(Activity::Pending);
        let lookup = publisher.subscribe();
        let path = path.clone();
        tokio::spawn(async move {
            // The app found and its address, kept while the path names it.
            let mut found: Option<(String, usize, Live<Addr>)> = None;
            loop {
                let tree = match &*apps.load() {
                    Activity::Pending => Activity::Pending,
                    Activity::Failed(e) => Activity::Failed(e.clone()),
                    Activity::Ok(ids) => match find_app(ids, &lowered) {
                        None => {
                            found = None;
                            Activity::Ok(NameTree::Neg)
                        }
                        Some((app, n)) => {
                            if found.as_ref().is_none_or(|(a, _, _)| *a != app) {
                                let addr = shared.addr(&app);
                                found = Some((app, n, addr));
                            }
                            match &found {
                                Some((app, n, addr)) => {
                                    tree_of(&shared.prefix, app, *n, &path, addr)
                                }
                                None => Activity::Pending,
                            }
                        }
                    },
                };
                publisher.publish_if_changed(tree);
                let addr_changed = async {
                    match &mut found {
                        Some((_, _, addr)) => addr.changed().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = publisher.closed() => return,
                    () = apps.changed() => {}
                    () = addr_changed => {}
                }
            }
        });
        lookup
    }

    fn counters(&self) -> Vec<NamerCounter> {
        let stats = &self.shared.stats;
        vec![
            NamerCounter::errors(stats.errors.load(Ordering::Relaxed)),
            NamerCounter::state_changes(stats.state_changes.load(Ordering::Relaxed)),
            NamerCounter::watches_started(stats.watches_started.load(Ordering::Relaxed)),
            NamerCounter::watches_ended(stats.watches_ended.load(Ordering::Relaxed)),
        ]
    }
}

/// The tree for an app found in the list, by its address's state: `~`
/// without tasks, as Linkerd.
fn tree_of(
    prefix: &Path,
    app: &str,
    taken: usize,
    path: &Path,
    addr: &Live<Addr>,
) -> Activity<NameTree<Name>> {
    match &*addr.load() {
        Addr::Pending => Activity::Pending,
        Addr::Neg => Activity::Ok(NameTree::Neg),
        Addr::Failed(e) => Activity::Failed(NamingError::namer(e.to_string())),
        Addr::Bound(_) => {
            let id = prefix.concat(&Path::read(app).unwrap_or_default());
            let residual = path.drop_first(taken);
            Activity::Ok(NameTree::Leaf(Name::Bound(Bound::new(
                id,
                residual,
                addr.clone(),
            ))))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_shortest_leading_app_id_wins() {
        let apps: AppIds = ["/group/web", "/group/web/api", "/web"]
            .into_iter()
            .map(String::from)
            .collect();
        let path = |p: &str| p.split('/').skip(1).map(String::from).collect::<Vec<_>>();
        assert_eq!(
            find_app(&apps, &path("/group/web/api/x")),
            Some(("/group/web".into(), 2))
        );
        assert_eq!(find_app(&apps, &path("/group")), None);
    }

    #[test]
    fn config_errors_say_which_key() {
        let build = |json: serde_json::Value| {
            let config: MarathonConfig = serde_json::from_value(json).unwrap();
            config
                .build(Path::read("/#/io.l5d.marathon").unwrap(), &|_| None)
                .err()
                .unwrap()
        };
        assert!(build(serde_json::json!({"ttlMs": 0})).starts_with("ttlMs: "));
        assert!(build(serde_json::json!({"uriPrefix": "marathon"})).starts_with("uriPrefix: "));
        let e = build(serde_json::json!({"dst": "/#/io.l5d.fs/marathon"}));
        assert!(e.starts_with("dst: ") && e.contains("/$/inet"), "{e}");
        assert!(build(serde_json::json!({"tls": {}})).contains("not supported yet"));
        assert_eq!(inet_dst("/$/inet/10.0.0.1/8080").unwrap(), "10.0.0.1:8080");
    }
}
