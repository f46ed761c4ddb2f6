//! Interpreters that leave binding to namerd: what `io.l5d.namerd.http`,
//! `io.l5d.namerd` (thrift) and `io.l5d.mesh` (gRPC) share. Each kind is a
//! [`Remote`]: how to open a watch of a binding or an address over its
//! protocol. This module keeps those watches going.
//!
//! Each distinct (dtab, path) has one bind watch, shared by every binding
//! of it; each bound id in the trees it sends has one address watch,
//! shared by every tree that holds the id. A watch ends when nobody holds
//! what it feeds.
//!
//! namerd may go away at any time. A watch that ends is reopened at once;
//! while reopening fails, attempts back off exponentially (with jitter)
//! from `retry.baseSeconds` to `retry.maxSeconds`. Meanwhile the last tree
//! and addresses namerd sent stay in force: a failure is published only
//! for a name namerd has never answered for and that namerd itself reports
//! as failed (or whose TLS handshake with namerd fails: its error says
//! why, and the next handshake that works replaces it). A name namerd has
//! not answered yet is pending.

mod backoff;
mod reach;
pub(crate) mod target;

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dtab::{Dtab, NameTree, Path};
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use namers::LiveCache;
use namers::{Activity, Addr, Binding, Bound, Live, NamingError, Publisher};
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use super::{RouterNaming, params};
use backoff::Backoff;
use reach::Reach;

pub use backoff::Retry;

/// How long `/admin/ready`'s question to namerd may take.
const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A leaf of a tree namerd sent: a bound id, the rest of the path, and the
/// id's address when namerd sent it along.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteLeaf {
    /// The bound id, e.g. `/#/io.l5d.k8s/default/http/web`.
    pub id: Path,
    /// What is left of the path after the id.
    pub residual: Path,
    /// The id's address, when namerd sent it with the tree.
    pub addr: Option<Addr>,
}

impl RemoteLeaf {
    /// A leaf without an address.
    pub fn new(id: Path, residual: Path) -> RemoteLeaf {
        RemoteLeaf {
            id,
            residual,
            addr: None,
        }
    }
}

/// Why a watch could not be opened, or ended.
#[derive(Clone, Debug)]
pub enum WatchError {
    /// namerd refused the request itself (a dtab over its limits, say):
    /// asking again would get the same answer.
    Refused(String),
    /// namerd answered that the name cannot be served, or sent something
    /// that cannot be read.
    Failed(String),
    /// namerd could not be reached, was too slow, or the stream broke.
    Unreachable(String),
}

impl WatchError {
    fn message(&self) -> &str {
        match self {
            WatchError::Refused(m) | WatchError::Failed(m) | WatchError::Unreachable(m) => m,
        }
    }
}

/// What a watch delivers: each new value, then `None` when namerd ends the
/// stream cleanly, or one error.
pub type Updates<T> = BoxStream<'static, Result<T, WatchError>>;

/// One protocol for asking namerd.
pub trait Remote: Send + Sync + 'static {
    /// The interpreter's `kind`.
    const KIND: &'static str;

    /// The namespace (or root) asked about, for messages.
    fn namespace(&self) -> &str;

    /// Where namerd is, for messages.
    fn target(&self) -> String;

    /// Opens a watch of the binding of `path` through namerd's dtab
    /// followed by `dtab`.
    fn watch_bind(
        &self,
        dtab: &Dtab,
        path: &Path,
    ) -> BoxFuture<'_, Result<Updates<NameTree<RemoteLeaf>>, WatchError>>;

    /// Opens a watch of the address of a bound id.
    fn watch_addr(&self, id: &Path) -> BoxFuture<'_, Result<Updates<Addr>, WatchError>>;

    /// namerd's explanation of how `path` resolves, as the delegator's
    /// JSON (`namers::json::delegate_tree`'s shape).
    fn delegate<'a>(
        &'a self,
        dtab: &'a Dtab,
        path: &'a Path,
    ) -> BoxFuture<'a, Result<Value, String>>;

    /// Asks namerd whether it serves the namespace: `Ok(false)` when it
    /// answers that it does not.
    fn probe(&self) -> BoxFuture<'_, Result<bool, String>>;
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

fn default_base_seconds() -> f64 {
    5.0
}

fn default_max_seconds() -> f64 {
    600.0
}

impl RetryConfig {
    /// The backoff, checked; errors are reported under `kind`.
    pub(crate) fn retry(&self, kind: &str) -> Result<Retry, String> {
        let seconds = |key: &str, value: f64| {
            if !(value.is_finite() && value > 0.0) {
                return Err(params::invalid(
                    kind,
                    key,
                    format!("must be a positive number of seconds, not {value}"),
                ));
            }
            Duration::try_from_secs_f64(value).map_err(|e| params::invalid(kind, key, e))
        };
        let base = seconds("retry.baseSeconds", self.base_seconds)?;
        let max = seconds("retry.maxSeconds", self.max_seconds)?;
        if max < base {
            return Err(params::invalid(
                kind,
                "retry.maxSeconds",
                format!(
                    "{} is less than baseSeconds ({})",
                    self.max_seconds, self.base_seconds
                ),
            ));
        }
        Ok(Retry { base, max })
    }
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

/// An interpreter asking namerd through `R`. Cheap to clone; clones share
/// their watches.
pub struct RemoteNamerd<R: Remote> {
    shared: Arc<Shared<R>>,
}

impl<R: Remote> Clone for RemoteNamerd<R> {
    fn clone(&self) -> Self {
        RemoteNamerd {
            shared: self.shared.clone(),
        }
    }
}

type BindKey = (String, Path);

struct Shared<R> {
    remote: R,
    retry: Retry,
    binds: LiveCache<BindKey, Activity<NameTree<Bound>>>,
    addrs: LiveCache<Path, Addr>,
    status: StatusCell,
    reach: Reach,
}

impl<R: Remote> RemoteNamerd<R> {
    /// An interpreter over `remote` that keeps a name's watch for
    /// `inactive_ttl` after it is last used.
    pub(crate) fn new(remote: R, retry: Retry, inactive_ttl: Duration) -> RemoteNamerd<R> {
        RemoteNamerd {
            shared: Arc::new(Shared {
                remote,
                retry,
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

    /// The live address of a bound id (shared with the trees that hold
    /// the id). Must be called within a tokio runtime.
    pub fn addr(&self, id: &Path) -> Live<Addr> {
        self.shared.addr(id, None)
    }
}

impl<R: Remote> RouterNaming for RemoteNamerd<R> {
    fn bind(&self, dtab: &Dtab, path: &Path) -> Binding {
        if tokio::runtime::Handle::try_current().is_err() {
            return Live::constant(Activity::Failed(NamingError::namer(format!(
                "{} interpreter: binding outside a tokio runtime",
                R::KIND
            ))));
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
        self.shared.remote.delegate(dtab, path)
    }

    // `interpreter/<kind>/…`: its watches and caches, as Linkerd's namerd
    // interpreters showed `bindcache.size` and `addrcache.size`.
    fn list_stats(&self, interpreter: &mut namers::telemetry::Scope<'_>) {
        if interpreter.is_rolling() {
            return;
        }
        let shared = &self.shared;
        let status = shared.status.publisher.subscribe().load();
        let mut scope = interpreter.scope(R::KIND);
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
            let outcome = tokio::time::timeout(READY_PROBE_TIMEOUT, shared.remote.probe())
                .await
                .unwrap_or_else(|_| {
                    Err(format!(
                        "namerd did not answer within {READY_PROBE_TIMEOUT:?}"
                    ))
                });
            let (kind, target, namespace) = (
                R::KIND,
                shared.remote.target(),
                shared.remote.namespace().to_string(),
            );
            match outcome {
                Ok(true) => {
                    shared.answered();
                    Ok(())
                }
                // Reachable, so no outage to log; not ready all the same.
                Ok(false) => Err(format!(
                    "{kind}: namerd at {target} has no namespace {namespace:?}"
                )),
                Err(why) => {
                    shared.failed(&why);
                    Err(format!(
                        "{kind}: namerd at {target} has not answered: {why}"
                    ))
                }
            }
        }
        .boxed()
    }
}

impl<R: Remote> Shared<R> {
    /// namerd answered something.
    fn answered(&self) {
        self.reach
            .answered(self.remote.namespace(), &self.remote.target());
    }

    /// An attempt to reach namerd failed.
    fn failed(&self, error: &str) {
        self.reach
            .failed(self.remote.namespace(), &self.remote.target(), error);
    }

    /// The shared live address of `id`; `inline` (what namerd sent inside
    /// a bound tree) is its first value if nobody watches it yet.
    fn addr(self: &Arc<Self>, id: &Path, inline: Option<Addr>) -> Live<Addr> {
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

    /// A tree namerd sent, with live addresses at its leaves and each
    /// leaf's union weight.
    fn bound_tree(self: &Arc<Self>, tree: NameTree<RemoteLeaf>) -> NameTree<Bound> {
        self.bound_subtree(tree, None)
    }

    fn bound_subtree(
        self: &Arc<Self>,
        tree: NameTree<RemoteLeaf>,
        weight: Option<f64>,
    ) -> NameTree<Bound> {
        match tree {
            NameTree::Leaf(leaf) => {
                let addr = self.addr(&leaf.id, leaf.addr);
                let mut bound = Bound::new(leaf.id, leaf.residual, addr);
                bound.weight = weight;
                NameTree::Leaf(bound)
            }
            NameTree::Alt(trees) => NameTree::Alt(
                trees
                    .into_iter()
                    .map(|t| self.bound_subtree(t, weight))
                    .collect(),
            ),
            NameTree::Union(branches) => NameTree::Union(
                branches
                    .into_iter()
                    .map(|b| {
                        let w = b.weight;
                        dtab::Weighted::new(w, self.bound_subtree(b.tree, Some(w)))
                    })
                    .collect(),
            ),
            NameTree::Neg => NameTree::Neg,
            NameTree::Fail => NameTree::Fail,
            NameTree::Empty => NameTree::Empty,
        }
    }
}

/// How one watch attempt went.
struct Attempt {
    /// Whether it delivered at least one value.
    progressed: bool,
    /// Why it ended: `None` when namerd closed the stream cleanly.
    error: Option<String>,
    /// namerd refused the request itself: watching again would get the
    /// same answer.
    refused: bool,
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

/// Runs `once` (one watch attempt) again and again, backing off between
/// failures, until nobody holds `publisher`'s value.
async fn keep_watching<R, T, F, Fut>(
    shared: &Shared<R>,
    publisher: &Publisher<T>,
    what: &str,
    mut once: F,
) where
    R: Remote,
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
        tracing::debug!(kind = R::KIND, watch = what, error = %why, ?delay, failures = backoff.failures(), "namerd watch ended; reconnecting");
        if !delay.is_zero() {
            tokio::select! {
                () = publisher.closed() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }
}

/// One bind watch: publishes each tree until the stream ends.
async fn bind_once<R: Remote>(
    shared: &Arc<Shared<R>>,
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
    let mut watch = match shared.remote.watch_bind(dtab, path).await {
        Ok(watch) => watch,
        Err(WatchError::Refused(message)) => {
            // A request namerd will never serve (a dtab over its binding
            // limits, say): the router answers it as the client's mistake.
            publisher.publish_if_changed(Activity::Failed(NamingError::Refused(
                message.as_str().into(),
            )));
            return Attempt::refused(message);
        }
        Err(error) => {
            if let WatchError::Failed(message) = &error {
                fail_unanswered(message);
            }
            return Attempt::failed(false, error.message().to_string());
        }
    };
    let _open = shared.status.opened();
    let mut progressed = false;
    loop {
        match watch.next().await {
            Some(Ok(tree)) => {
                if !progressed {
                    shared.answered();
                }
                progressed = true;
                let tree = shared.bound_tree(tree);
                super::watched::publish_if_changed(publisher, &Activity::Ok(tree));
                // When each answer arrived, for whoever times namerd's
                // updates from the router's side.
                tracing::debug!(kind = R::KIND, name = %path, "namerd sent a tree");
            }
            Some(Err(error)) => {
                if let WatchError::Failed(message) | WatchError::Refused(message) = &error {
                    fail_unanswered(message);
                }
                return Attempt::failed(progressed, error.message().to_string());
            }
            None => return Attempt::ended(progressed),
        }
    }
}

/// One address watch: publishes each address until the stream ends.
async fn addr_once<R: Remote>(
    shared: &Shared<R>,
    id: &Path,
    publisher: &Publisher<Addr>,
) -> Attempt {
    let answered = || matches!(*publisher.current(), Addr::Bound(_) | Addr::Neg);
    let fail_unanswered = |message: &str| {
        if !answered() {
            publisher.publish_if_changed(Addr::Failed(message.into()));
        }
    };
    let mut watch = match shared.remote.watch_addr(id).await {
        Ok(watch) => watch,
        Err(error) => {
            if let WatchError::Failed(message) | WatchError::Refused(message) = &error {
                fail_unanswered(message);
            }
            return Attempt::failed(false, error.message().to_string());
        }
    };
    let _open = shared.status.opened();
    let mut progressed = false;
    loop {
        match watch.next().await {
            Some(Ok(Addr::Pending)) => {}
            Some(Ok(Addr::Failed(cause))) => {
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
            Some(Ok(addr)) => {
                if !progressed {
                    shared.answered();
                }
                progressed = true;
                publisher.publish_if_changed(addr);
                tracing::debug!(kind = R::KIND, %id, "namerd sent an address");
            }
            Some(Err(error)) => {
                if let WatchError::Failed(message) | WatchError::Refused(message) = &error {
                    fail_unanswered(message);
                }
                return Attempt::failed(progressed, error.message().to_string());
            }
            None => return Attempt::ended(progressed),
        }
    }
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
