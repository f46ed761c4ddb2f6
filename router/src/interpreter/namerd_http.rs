//! The `io.l5d.namerd.http` interpreter: names are bound by namerd, through
//! its HTTP API's streaming watches.
//!
//! Each distinct (dtab, path) has one `GET /api/1/bind/<ns>?watch=true`
//! stream, shared by every binding of it; each bound id in the trees it
//! sends has one `GET /api/1/addr/<ns>?watch=true` stream, shared by every
//! tree that holds the id. A stream ends when nobody holds what it feeds.
//!
//! namerd may go away at any time. A stream that ends is reopened at once;
//! while reopening fails, attempts back off exponentially (with jitter) from
//! `retry.baseSeconds` to `retry.maxSeconds`. Meanwhile the last tree and
//! addresses namerd sent stay in force: a failure is published only for a
//! name namerd has never answered for and that namerd itself reports as
//! failed, or whose TLS handshake with namerd fails (its error says why,
//! and the next handshake that works replaces it). A name namerd has not
//! answered yet is pending.
//!
//! With `tls` (Linkerd's client TLS block), namerd is reached over TLS:
//! its certificate must be valid for `commonName` (also sent as SNI), and
//! `clientAuth` is shown when namerd asks for a certificate. The files are
//! read again when they change.

mod backoff;
mod reach;
#[cfg(test)]
mod tests;
mod wire;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use dtab::{Dtab, NameTree, Path};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use namerd_client::{BaseUrl, Client, ClientError, Namespace, TlsSettings};
use namers::LiveCache;
use namers::resolve::{Resolved, choose, pick_by_weight};
use namers::tls::{ALPN_HTTP11, ClientTlsConfig};
use namers::{
    Activity, Addr, Binding, Bound, Interpreter, Live, NameInterpreter, NamingError, Publisher,
};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::{RouterNaming, params};
use backoff::Backoff;
use reach::Reach;

pub use backoff::Retry;

/// The interpreter's `kind`.
pub const KIND: &str = "io.l5d.namerd.http";

/// How long `/admin/ready`'s question to namerd may take.
const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long finding namerd's address (binding `dst`) may take.
const DST_TIMEOUT: Duration = Duration::from_secs(10);

/// `interpreter: {kind: io.l5d.namerd.http, dst, namespace, retry}`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamerdHttpConfig {
    /// Where namerd's HTTP API is: a path bound with the default
    /// interpreter (`/$/inet/<host>/<port>`), `host:port`, or
    /// `http://host:port[/prefix]` (`https://` with `tls`).
    pub dst: String,
    /// The namerd namespace whose dtab binds names (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Reconnection backoff.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Linkerd required `experimental: true`; accepted and not required.
    #[serde(default)]
    pub experimental: bool,
    /// TLS to namerd (Linkerd's client TLS block).
    #[serde(default)]
    pub tls: Option<ClientTlsConfig>,
}

/// `retry: {baseSeconds: 5, maxSeconds: 600}`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RetryConfig {
    /// The first delay after a failed reconnection, in seconds (fractions
    /// allowed).
    #[serde(default = "default_base_seconds")]
    pub base_seconds: f64,
    /// The longest delay between reconnections, in seconds.
    #[serde(default = "default_max_seconds")]
    pub max_seconds: f64,
}

impl Default for RetryConfig {
    fn default() -> RetryConfig {
        RetryConfig {
            base_seconds: default_base_seconds(),
            max_seconds: default_max_seconds(),
        }
    }
}

fn default_namespace() -> String {
    "default".to_string()
}

fn default_base_seconds() -> f64 {
    5.0
}

fn default_max_seconds() -> f64 {
    600.0
}

/// How the watches of one interpreter are doing, for operators and tests.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WatchStatus {
    /// Watch streams open now.
    pub open: usize,
    /// Watch streams opened so far.
    pub opened: u64,
    /// Attempts that failed and streams that ended, so far.
    pub failures: u64,
    /// Why the latest one failed or ended.
    pub last_error: Option<Arc<str>>,
}

/// The `io.l5d.namerd.http` interpreter. Cheap to clone; clones share their
/// watches.
#[derive(Clone)]
pub struct NamerdHttpInterpreter {
    shared: Arc<Shared>,
}

type BindKey = (String, Path);

struct Shared {
    namespace: Namespace,
    retry: Retry,
    target: Target,
    binds: LiveCache<BindKey, Activity<NameTree<Bound>>>,
    addrs: LiveCache<Path, Addr>,
    status: StatusCell,
    reach: Reach,
}

impl NamerdHttpInterpreter {
    /// Builds the interpreter from the keys of its `interpreter:` block;
    /// `default` binds `dst` when it is a path. A name nobody uses any
    /// more keeps its streams to namerd for `idle_ttl`.
    pub fn from_params(
        params: &Map<String, Value>,
        default: &Interpreter,
        idle_ttl: Duration,
    ) -> Result<NamerdHttpInterpreter, String> {
        let config: NamerdHttpConfig = params::parse(KIND, params)?;
        let namespace =
            Namespace::new(&config.namespace).map_err(|e| params::invalid(KIND, "namespace", e))?;
        let retry = retry_of(&config.retry)?;
        let tls = match config.tls.as_ref().filter(|tls| tls.is_enabled()) {
            Some(tls) => Some(tls_settings(tls).map_err(|e| params::invalid(KIND, "tls", e))?),
            None => None,
        };
        let target = Target::parse(&config.dst, default, tls)
            .map_err(|e| params::invalid(KIND, "dst", e))?;
        Ok(NamerdHttpInterpreter::with_target(
            namespace, retry, target, idle_ttl,
        ))
    }

    /// An interpreter asking the namerd at `base` about `namespace`, that
    /// keeps a name's watch for `inactive_ttl` after it is last used.
    pub fn new(
        base: BaseUrl,
        namespace: Namespace,
        retry: Retry,
        inactive_ttl: Duration,
    ) -> NamerdHttpInterpreter {
        NamerdHttpInterpreter::with_target(
            namespace,
            retry,
            Target::Url(Box::new(Client::new(base))),
            inactive_ttl,
        )
    }

    fn with_target(
        namespace: Namespace,
        retry: Retry,
        target: Target,
        inactive_ttl: Duration,
    ) -> NamerdHttpInterpreter {
        NamerdHttpInterpreter {
            shared: Arc::new(Shared {
                namespace,
                retry,
                target,
                // A name the router's cache let go of keeps its namerd
                // watch a while, so asking again during a namerd outage
                // gets the last good answer.
                binds: LiveCache::with_inactive_ttl(inactive_ttl),
                addrs: LiveCache::with_inactive_ttl(inactive_ttl),
                status: StatusCell::default(),
                reach: Reach::default(),
            }),
        }
    }

    /// The state of this interpreter's watches, live.
    pub fn status(&self) -> Live<WatchStatus> {
        self.shared.status.publisher.subscribe()
    }

    /// How many bind and address watches are being kept (open or
    /// reconnecting).
    pub fn watch_count(&self) -> usize {
        self.shared.binds.len() + self.shared.addrs.len()
    }

    /// The live address of a bound id, through namerd's `/api/1/addr`
    /// (shared with the trees that hold the id). Must be called within a
    /// tokio runtime.
    pub fn addr(&self, id: &Path) -> Live<Addr> {
        self.shared.addr(id, None)
    }
}

/// The client TLS of a `tls:` block: its files read now, and again when
/// they change.
fn tls_settings(config: &ClientTlsConfig) -> Result<TlsSettings, String> {
    // namerd's API is HTTP/1.1.
    let tls = Arc::new(config.build(&[ALPN_HTTP11])?);
    if tokio::runtime::Handle::try_current().is_ok() {
        tls.watch();
    }
    // Without a commonName (only with disableValidation), the name sent is
    // namerd's address.
    let server_name = match &config.common_name {
        Some(name) => Some(
            rustls_pki_types::ServerName::try_from(name.clone())
                .map_err(|_| format!("commonName: `{name}` is not a DNS name or an IP address"))?,
        ),
        None => None,
    };
    Ok(TlsSettings::new(move || tls.rustls_config(), server_name))
}

fn retry_of(config: &RetryConfig) -> Result<Retry, String> {
    let seconds = |key: &str, value: f64| {
        if !(value.is_finite() && value > 0.0) {
            return Err(params::invalid(
                KIND,
                key,
                format!("must be a positive number of seconds, not {value}"),
            ));
        }
        Duration::try_from_secs_f64(value).map_err(|e| params::invalid(KIND, key, e))
    };
    let base = seconds("retry.baseSeconds", config.base_seconds)?;
    let max = seconds("retry.maxSeconds", config.max_seconds)?;
    if max < base {
        return Err(params::invalid(
            KIND,
            "retry.maxSeconds",
            format!(
                "{} is less than baseSeconds ({})",
                config.max_seconds, config.base_seconds
            ),
        ));
    }
    Ok(Retry { base, max })
}

impl RouterNaming for NamerdHttpInterpreter {
    fn bind(&self, dtab: &Dtab, path: &Path) -> Binding {
        if tokio::runtime::Handle::try_current().is_err() {
            return Live::constant(Activity::Failed(NamingError::namer(
                "io.l5d.namerd.http interpreter: binding outside a tokio runtime",
            )));
        }
        let shared = self.shared.clone();
        let (dtab, path) = (dtab.clone(), path.clone());
        self.shared.binds.subscribe(
            (dtab.show(), path.clone()),
            || Activity::Pending,
            move |publisher| {
                let (shared, dtab, path) = (shared.clone(), dtab.clone(), path.clone());
                async move {
                    let what = format!("binding {path} (dtab {dtab})");
                    let once = || bind_once(&shared, &dtab, &path, &publisher);
                    keep_watching(&shared, &publisher, &what, once).await;
                }
            },
        )
    }

    fn delegate<'a>(
        &'a self,
        dtab: &'a Dtab,
        path: &'a Path,
    ) -> BoxFuture<'a, Result<Value, String>> {
        async move {
            let client = self.shared.target.client().await?;
            client
                .delegate(&self.shared.namespace, path, dtab)
                .await
                .map_err(|e| e.to_string())
        }
        .boxed()
    }

    // `interpreter/io.l5d.namerd.http/…`: its watches and caches, as
    // Linkerd's namerd interpreter showed `bindcache.size` and
    // `addrcache.size`.
    fn list_stats(&self, interpreter: &mut namers::telemetry::Scope<'_>) {
        if interpreter.is_rolling() {
            return;
        }
        let shared = &self.shared;
        let status = shared.status.publisher.subscribe().load();
        let mut scope = interpreter.scope(KIND);
        #[allow(clippy::cast_precision_loss)]
        {
            scope.gauge("bindcache.size", shared.binds.len() as f64);
            scope.gauge("addrcache.size", shared.addrs.len() as f64);
            scope.gauge("watches/open", status.open as f64);
        }
        scope.counter("watches/opened", status.opened);
        scope.counter("watches/failures", status.failures);
        let answering = if shared.reach.heard().is_ok() && !shared.reach.is_down() {
            1.0
        } else {
            0.0
        };
        scope.gauge("namerd/answering", answering);
    }

    // Ready once namerd has answered: a watch delivered something, or
    // namerd serves the namespace when asked here.
    fn ready(&self) -> BoxFuture<'_, Result<(), String>> {
        async move {
            let shared = &self.shared;
            if shared.reach.heard().is_ok() {
                return Ok(());
            }
            // `Ok(false)`: namerd answered, without the namespace.
            let probe = async {
                let client = shared.target.client().await?;
                match client.get_dtab(&shared.namespace).await {
                    Ok(_) => Ok(true),
                    Err(ClientError::NotFound { .. }) => Ok(false),
                    Err(e) => Err(e.to_string()),
                }
            };
            let outcome = tokio::time::timeout(READY_PROBE_TIMEOUT, probe)
                .await
                .unwrap_or_else(|_| {
                    Err(format!(
                        "namerd did not answer within {READY_PROBE_TIMEOUT:?}"
                    ))
                });
            match outcome {
                Ok(true) => {
                    shared.answered();
                    Ok(())
                }
                // Reachable, so no outage to log; not ready all the same.
                Ok(false) => Err(format!(
                    "{KIND}: namerd at {} has no namespace {:?}",
                    shared.target,
                    shared.namespace.as_str()
                )),
                Err(why) => {
                    shared.failed(&why);
                    Err(format!(
                        "{KIND}: namerd at {} has not answered: {why}",
                        shared.target
                    ))
                }
            }
        }
        .boxed()
    }
}

impl Shared {
    /// namerd answered something.
    fn answered(&self) {
        self.reach
            .answered(self.namespace.as_str(), &self.target.to_string());
    }

    /// An attempt to reach namerd failed.
    fn failed(&self, error: &str) {
        self.reach
            .failed(self.namespace.as_str(), &self.target.to_string(), error);
    }

    /// The shared live address of `id`; `inline` (what namerd sent inside
    /// a bound tree) is its first value if nobody watches it yet.
    fn addr(self: &Arc<Shared>, id: &Path, inline: Option<Addr>) -> Live<Addr> {
        let shared = self.clone();
        let key = id.clone();
        let initial = move || match inline {
            Some(addr @ (Addr::Bound(_) | Addr::Neg)) => addr,
            _ => Addr::Pending,
        };
        self.addrs.subscribe(id.clone(), initial, move |publisher| {
            let (shared, id) = (shared.clone(), key.clone());
            async move {
                let what = format!("address of {id}");
                let once = || addr_once(&shared, &id, &publisher);
                keep_watching(&shared, &publisher, &what, once).await;
            }
        })
    }
}

/// How one watch attempt went.
struct Attempt {
    /// Whether it delivered at least one value.
    progressed: bool,
    /// Why it ended: `None` when namerd closed the stream cleanly.
    error: Option<String>,
    /// namerd refused the request itself (400): watching again would get
    /// the same answer.
    refused: bool,
}

/// Runs `once` (one watch attempt) again and again, backing off between
/// failures, until nobody holds `publisher`'s value.
async fn keep_watching<T, F, Fut>(
    shared: &Shared,
    publisher: &Publisher<T>,
    what: &str,
    mut once: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Attempt>,
{
    let mut backoff = Backoff::new(shared.retry);
    loop {
        let attempt = tokio::select! {
            () = publisher.closed() => return,
            attempt = once() => attempt,
        };
        if attempt.refused {
            // Kept as it is until nobody holds it.
            publisher.closed().await;
            return;
        }
        let why: Arc<str> = attempt
            .error
            .as_deref()
            .unwrap_or("namerd ended the stream")
            .into();
        shared.status.update(|s| {
            s.failures += 1;
            s.last_error = Some(why.clone());
        });
        let delay = backoff.next_delay(attempt.progressed, Instant::now(), rand::random());
        // An outage is logged once for the interpreter (`Reach`); each
        // watch's own story is debug detail.
        if !attempt.progressed && attempt.error.is_some() {
            shared.failed(&why);
        }
        tracing::debug!(watch = what, error = %why, ?delay, failures = backoff.failures(), "namerd watch ended; reconnecting");
        if !delay.is_zero() {
            tokio::select! {
                () = publisher.closed() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }
}

/// One `/api/1/bind` watch: publishes each tree until the stream ends.
async fn bind_once(
    shared: &Arc<Shared>,
    dtab: &Dtab,
    path: &Path,
    publisher: &Publisher<Activity<NameTree<Bound>>>,
) -> Attempt {
    let fail_unanswered = |message: &str| {
        // Never replace an answer with a failure.
        if !matches!(*publisher.current(), Activity::Ok(_)) {
            publisher.publish_if_changed(Activity::Failed(NamingError::namer(message)));
        }
    };
    let client = match shared.target.client().await {
        Ok(client) => client,
        Err(error) => return Attempt::failed(false, error),
    };
    let mut watch = match client.watch_bind(&shared.namespace, path, dtab).await {
        Ok(watch) => watch,
        Err(ClientError::BadRequest { message, .. }) => {
            // A request namerd will never serve (a dtab over its binding
            // limits, say): the router answers it as the client's mistake.
            publisher.publish_if_changed(Activity::Failed(NamingError::Refused(
                message.as_str().into(),
            )));
            return Attempt::refused(message);
        }
        Err(error) => {
            if namerd_refused(&error) {
                fail_unanswered(&error.to_string());
            }
            return Attempt::failed(false, error.to_string());
        }
    };
    let _open = shared.status.opened();
    let mut progressed = false;
    loop {
        match watch.next().await {
            Some(Ok(doc)) => {
                let mut leaf = |id: &Path, inline: Option<Addr>| shared.addr(id, inline);
                match wire::bound_tree(&doc, &mut leaf) {
                    Ok(tree) => {
                        if !progressed {
                            shared.answered();
                        }
                        progressed = true;
                        super::fs::publish_if_changed(publisher, &Activity::Ok(tree));
                    }
                    Err(error) => {
                        let message =
                            format!("{}: unreadable bound tree: {error}", watch.describe());
                        fail_unanswered(&message);
                        return Attempt::failed(progressed, message);
                    }
                }
            }
            Some(Err(error)) => {
                if namerd_refused(&error) {
                    fail_unanswered(&error.to_string());
                }
                return Attempt::failed(progressed, error.to_string());
            }
            None => return Attempt::ended(progressed),
        }
    }
}

/// One `/api/1/addr` watch: publishes each address until the stream ends.
async fn addr_once(shared: &Shared, id: &Path, publisher: &Publisher<Addr>) -> Attempt {
    let answered = || matches!(*publisher.current(), Addr::Bound(_) | Addr::Neg);
    let fail_unanswered = |message: &str| {
        if !answered() {
            publisher.publish_if_changed(Addr::Failed(message.into()));
        }
    };
    let client = match shared.target.client().await {
        Ok(client) => client,
        Err(error) => return Attempt::failed(false, error),
    };
    let mut watch = match client.watch_addr(&shared.namespace, id).await {
        Ok(watch) => watch,
        Err(error) => {
            if namerd_refused(&error) {
                fail_unanswered(&error.to_string());
            }
            return Attempt::failed(false, error.to_string());
        }
    };
    let _open = shared.status.opened();
    let mut progressed = false;
    loop {
        match watch.next().await {
            Some(Ok(doc)) => match wire::addr(&doc) {
                Ok(Addr::Pending) => {}
                Ok(Addr::Failed(cause)) => {
                    if !progressed {
                        shared.answered();
                    }
                    progressed = true;
                    if answered() {
                        tracing::warn!(%id, %cause, "namerd reports the address as failed; keeping the last good one");
                    } else {
                        publisher.publish_if_changed(Addr::Failed(cause));
                    }
                }
                Ok(addr) => {
                    if !progressed {
                        shared.answered();
                    }
                    progressed = true;
                    publisher.publish_if_changed(addr);
                }
                Err(error) => {
                    let message = format!("{}: unreadable address: {error}", watch.describe());
                    fail_unanswered(&message);
                    return Attempt::failed(progressed, message);
                }
            },
            Some(Err(error)) => {
                if namerd_refused(&error) {
                    fail_unanswered(&error.to_string());
                }
                return Attempt::failed(progressed, error.to_string());
            }
            None => return Attempt::ended(progressed),
        }
    }
}

impl Attempt {
    fn failed(progressed: bool, error: String) -> Attempt {
        Attempt {
            progressed,
            error: Some(error),
            refused: false,
        }
    }

    fn ended(progressed: bool) -> Attempt {
        Attempt {
            progressed,
            error: None,
            refused: false,
        }
    }

    fn refused(error: String) -> Attempt {
        Attempt {
            progressed: false,
            error: Some(error),
            refused: true,
        }
    }
}

/// Whether namerd itself answered that the name cannot be served (as
/// opposed to being unreachable, slow, restarting or cut off).
fn namerd_refused(error: &ClientError) -> bool {
    match error {
        ClientError::Unreachable { .. }
        | ClientError::Timeout { .. }
        | ClientError::Server { .. } => false,
        // The client reports a connection cut mid-stream with this message;
        // any other message on a watch is namerd's own error line.
        ClientError::WatchFailed { message, .. } => !message.starts_with("the stream broke"),
        // Not namerd's answer, but every attempt fails the same way until
        // certificates change: a name never answered fails with why
        // rather than waiting for its binding timeout.
        ClientError::Tls { .. } => true,
        _ => true,
    }
}

/// Where namerd is.
enum Target {
    /// A fixed URL.
    Url(Box<Client>),
    /// A path bound with the default interpreter; each attempt connects to
    /// the next of its endpoints.
    Name {
        path: Path,
        default: Interpreter,
        binding: OnceLock<Binding>,
        clients: Mutex<HashMap<SocketAddr, Client>>,
        turn: AtomicUsize,
        tls: Option<TlsSettings>,
    },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Url(client) => write!(f, "{}", client.base_url()),
            Target::Name { path, .. } => write!(f, "{}", path.show()),
        }
    }
}

impl Target {
    fn parse(dst: &str, default: &Interpreter, tls: Option<TlsSettings>) -> Result<Target, String> {
        let dst = dst.trim();
        if dst.starts_with('/') {
            let path = Path::read(dst).map_err(|e| format!("{dst:?}: {e}"))?;
            return Ok(Target::Name {
                path,
                default: default.clone(),
                binding: OnceLock::new(),
                clients: Mutex::default(),
                turn: AtomicUsize::new(0),
                tls,
            });
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = if dst.contains("://") {
            dst.to_string()
        } else {
            format!("{scheme}://{dst}")
        };
        let base = BaseUrl::parse(&url).map_err(|e| {
            format!("{e} (write a path such as /$/inet/<host>/<port>, or host:port)")
        })?;
        match (base.is_https(), tls) {
            (true, Some(tls)) => Ok(Target::Url(Box::new(Client::with_tls(base, tls)))),
            (false, None) => Ok(Target::Url(Box::new(Client::new(base)))),
            (true, None) => Err(format!(
                "{url:?} is https:// but the interpreter has no tls block (commonName, trustCertsBundle)"
            )),
            (false, Some(_)) => Err(format!(
                "{url:?} is plain http:// but the interpreter has a tls block; write https:// or host:port"
            )),
        }
    }

    /// A client for namerd, waiting (a bounded time) for `dst` to bind.
    async fn client(&self) -> Result<Client, String> {
        let (path, default, binding, clients, turn, tls) = match self {
            Target::Url(client) => return Ok((**client).clone()),
            Target::Name {
                path,
                default,
                binding,
                clients,
                turn,
                tls,
            } => (path, default, binding, clients, turn, tls),
        };
        let mut binding = binding
            .get_or_init(|| NameInterpreter::bind(default, &Dtab::empty(), path))
            .clone();
        let deadline = Instant::now() + DST_TIMEOUT;
        loop {
            let mut addr = match &*binding.load() {
                Activity::Pending => None,
                Activity::Failed(e) => return Err(format!("dst {path}: {e}")),
                Activity::Ok(tree) => match choose(tree, &mut pick_by_weight) {
                    Resolved::Leaf(bound) => Some(bound.addr.clone()),
                    Resolved::Empty | Resolved::Neg => {
                        return Err(format!("dst {path}: no address ({})", tree.show()));
                    }
                },
            };
            if let Some(live) = &addr {
                match &*live.load() {
                    Addr::Bound(set) if !set.is_empty() => {
                        let endpoints = set.endpoints();
                        let at = turn.fetch_add(1, Ordering::Relaxed) % endpoints.len();
                        return client_for(clients, endpoints[at].addr, tls.as_ref());
                    }
                    Addr::Bound(_) => return Err(format!("dst {path}: no endpoints")),
                    Addr::Neg => return Err(format!("dst {path}: no such name")),
                    Addr::Failed(e) => return Err(format!("dst {path}: {e}")),
                    Addr::Pending => {}
                }
            }
            let changed = async {
                match addr.as_mut() {
                    Some(live) => tokio::select! {
                        () = live.changed() => {}
                        () = binding.changed() => {}
                    },
                    None => binding.changed().await,
                }
            };
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(format!("dst {path}: still pending after {DST_TIMEOUT:?}"));
            }
        }
    }
}

fn client_for(
    clients: &Mutex<HashMap<SocketAddr, Client>>,
    addr: SocketAddr,
    tls: Option<&TlsSettings>,
) -> Result<Client, String> {
    let mut clients = clients.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(client) = clients.get(&addr) {
        return Ok(client.clone());
    }
    let client = match tls {
        Some(tls) => {
            let base = BaseUrl::parse(&format!("https://{addr}")).map_err(|e| e.to_string())?;
            Client::with_tls(base, tls.clone())
        }
        None => Client::new(BaseUrl::parse(&format!("http://{addr}")).map_err(|e| e.to_string())?),
    };
    clients.insert(addr, client.clone());
    Ok(client)
}

/// The watch status and its publisher; updates are serialized so none is
/// lost.
struct StatusCell {
    state: Mutex<WatchStatus>,
    publisher: Publisher<WatchStatus>,
}

impl Default for StatusCell {
    fn default() -> StatusCell {
        StatusCell {
            state: Mutex::default(),
            publisher: Publisher::new(WatchStatus::default()),
        }
    }
}

impl StatusCell {
    fn update(&self, change: impl FnOnce(&mut WatchStatus)) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        change(&mut state);
        self.publisher.publish(state.clone());
    }

    /// Counts a stream as open until the guard is dropped.
    fn opened(&self) -> OpenStream<'_> {
        self.update(|s| {
            s.open += 1;
            s.opened += 1;
        });
        OpenStream(self)
    }
}

struct OpenStream<'a>(&'a StatusCell);

impl Drop for OpenStream<'_> {
    fn drop(&mut self) {
        self.0.update(|s| s.open = s.open.saturating_sub(1));
    }
}
