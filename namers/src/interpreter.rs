//! The interpreter: binds names through a dtab and the configured namers,
//! live (Linkerd's configured-namers interpreter).
//!
//! Each binding is a background task that runs the pure core
//! ([`crate::bind`]) over snapshots of the namer lookups it depends on,
//! recomputes when one of them changes, and publishes only results that
//! differ. The task and its lookups end when the last consumer goes away.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dtab::{Dtab, NameTree, Path};
use futures_util::future::select_all;

use crate::bind::{BindLimits, Snapshot, bind_tree, dtab_then};
use crate::system::SystemNamers;
use crate::{Activity, Bound, Live, Lookup, Name, Namer, NamingError, Publisher};

/// The configured namers, each under its full prefix (e.g. `/#/io.l5d.fs`),
/// in the order they are tried.
pub type NamerList = Vec<(Path, Arc<dyn Namer>)>;

/// A live binding: the bound tree of one (dtab, path), kept up to date.
pub type Binding = Live<Activity<NameTree<Bound>>>;

/// Something that binds names: the configured namers here, or a remote
/// namerd for the router.
pub trait NameInterpreter: Send + Sync + 'static {
    /// Binds `path` through `dtab`, live.
    fn bind(&self, dtab: &Dtab, path: &Path) -> Binding;
}

/// Counters an admin endpoint can read.
#[derive(Debug, Default)]
pub struct InterpreterStats {
    /// Bindings started.
    pub bindings_started: AtomicU64,
    /// Bindings whose task has ended (no consumer left).
    pub bindings_ended: AtomicU64,
    /// Times a binding was recomputed after a dependency changed.
    pub recomputations: AtomicU64,
    /// Times a namer that had answered failed and its last good answer was
    /// kept instead.
    pub failures_masked: AtomicU64,
}

impl InterpreterStats {
    /// Bindings whose task is still running.
    pub fn active_bindings(&self) -> u64 {
        let started = self.bindings_started.load(Ordering::Relaxed);
        started.saturating_sub(self.bindings_ended.load(Ordering::Relaxed))
    }
}

/// How an unknown `/$/<name>` is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnknownSystemNamer {
    /// As Linkerd's router does: `Unknown namer: <name> for path: <path>`.
    UnknownNamer,
    /// As Finagle and namerd do: the system lookup's own error.
    AsIs,
}

/// Binds names through a dtab, then the configured namers in order, then the
/// `/$/` system namers. Cheap to clone.
#[derive(Clone)]
pub struct Interpreter {
    inner: Arc<Inner>,
}

struct Inner {
    namers: NamerList,
    system: SystemNamers,
    limits: BindLimits,
    unknown: UnknownSystemNamer,
    stats: Arc<InterpreterStats>,
}

impl Interpreter {
    /// An interpreter over `namers`, each under its full prefix (e.g.
    /// `/#/io.l5d.fs`), tried in the given order.
    pub fn new(namers: NamerList, system: SystemNamers) -> Interpreter {
        Interpreter {
            inner: Arc::new(Inner {
                namers,
                system,
                limits: BindLimits::default(),
                unknown: UnknownSystemNamer::UnknownNamer,
                stats: Arc::default(),
            }),
        }
    }

    /// The same interpreter with another limit on lookups in one chain.
    pub fn with_max_depth(self, max_depth: usize) -> Interpreter {
        self.rebuild(|inner| inner.limits.max_depth = max_depth)
    }

    /// The same interpreter with other work limits for each bind and
    /// delegation.
    pub fn with_bind_limits(self, limits: BindLimits) -> Interpreter {
        self.rebuild(|inner| inner.limits = limits)
    }

    /// The work limits of each bind.
    pub fn bind_limits(&self) -> &BindLimits {
        &self.inner.limits
    }

    /// The same interpreter reporting unknown system namers as given.
    pub fn with_unknown_system_namer(self, unknown: UnknownSystemNamer) -> Interpreter {
        self.rebuild(|inner| inner.unknown = unknown)
    }

    fn rebuild(self, change: impl FnOnce(&mut Inner)) -> Interpreter {
        let mut inner = Inner {
            namers: self.inner.namers.clone(),
            system: self.inner.system.clone(),
            limits: self.inner.limits,
            unknown: self.inner.unknown,
            stats: self.inner.stats.clone(),
        };
        change(&mut inner);
        Interpreter {
            inner: Arc::new(inner),
        }
    }

    /// The counters of this interpreter.
    pub fn stats(&self) -> &Arc<InterpreterStats> {
        &self.inner.stats
    }

    /// The configured namers and their prefixes.
    pub fn namers(&self) -> &[(Path, Arc<dyn Namer>)] {
        &self.inner.namers
    }

    /// Binds once against the current state of every lookup, subscribing to
    /// what it needs through `deps`.
    pub(crate) fn bind_once(
        &self,
        dtab: &Dtab,
        path: &Path,
        deps: &mut Deps,
    ) -> Activity<NameTree<Bound>> {
        deps.begin();
        let root = NameTree::Leaf(Name::Path(path.clone()));
        let result = bind_tree(&root, &self.inner.limits, &mut |p| {
            dtab_then(dtab, p, &mut |p| self.lookup_namers(deps, p))
        });
        deps.finish();
        result
    }

    /// Linkerd's namer step for a path the dtab did not rewrite: the first
    /// configured namer whose prefix matches and that does not answer `~`,
    /// else the system namers.
    pub(crate) fn lookup_namers(&self, deps: &mut Deps, path: &Path) -> Snapshot {
        for (index, (prefix, namer)) in self.inner.namers.iter().enumerate() {
            if !path.starts_with(prefix) {
                continue;
            }
            let key = DepKey::Namer(index, path.clone());
            let rest = path.drop_first(prefix.len());
            match deps.snapshot(key, &self.inner.stats, || namer.lookup(&rest)) {
                Activity::Ok(NameTree::Neg) => continue,
                other => return other,
            }
        }
        let key = DepKey::System(path.clone());
        match deps.snapshot(key, &self.inner.stats, || self.inner.system.lookup(path)) {
            Activity::Failed(NamingError::UnknownSystemNamer { name })
                if self.inner.unknown == UnknownSystemNamer::UnknownNamer =>
            {
                Activity::Failed(NamingError::UnknownNamer {
                    name,
                    path: path.show(),
                })
            }
            other => other,
        }
    }
}

impl NameInterpreter for Interpreter {
    fn bind(&self, dtab: &Dtab, path: &Path) -> Binding {
        let mut deps = Deps::default();
        // The first answer is computed here, so names that need no I/O (IP
        // literals, fixed rewrites) are bound before this returns.
        let publisher = Publisher::new(self.bind_once(dtab, path, &mut deps));
        let binding = publisher.subscribe();
        self.inner
            .stats
            .bindings_started
            .fetch_add(1, Ordering::Relaxed);
        tokio::spawn(keep_bound(
            self.clone(),
            dtab.clone(),
            path.clone(),
            publisher,
            deps,
        ));
        binding
    }
}

/// Recomputes a binding whenever a lookup it depends on changes, until
/// nobody holds the binding any more.
async fn keep_bound(
    interpreter: Interpreter,
    dtab: Dtab,
    path: Path,
    publisher: Publisher<Activity<NameTree<Bound>>>,
    mut deps: Deps,
) {
    loop {
        tokio::select! {
            () = publisher.closed() => break,
            () = deps.any_changed() => {}
        }
        interpreter
            .inner
            .stats
            .recomputations
            .fetch_add(1, Ordering::Relaxed);
        let result = interpreter.bind_once(&dtab, &path, &mut deps);
        publisher.publish_if_changed(result);
    }
    interpreter
        .inner
        .stats
        .bindings_ended
        .fetch_add(1, Ordering::Relaxed);
}

/// Which lookup a binding depends on.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) enum DepKey {
    /// The configured namer at this index, for this full path.
    Namer(usize, Path),
    /// The system namers, for this path.
    System(Path),
}

/// One subscribed lookup and the last answer it gave.
struct Dep {
    live: Lookup,
    last_good: Option<NameTree<Name>>,
    masking_failure: bool,
    /// Whether the answer used was pending (a delegation waits on these).
    pending: bool,
}

/// The lookups a binding depends on. Lookups not used by the latest
/// computation are dropped, which unsubscribes from them.
#[derive(Default)]
pub(crate) struct Deps {
    deps: HashMap<DepKey, Dep>,
    used: HashSet<DepKey>,
}

impl Deps {
    pub(crate) fn begin(&mut self) {
        self.used.clear();
    }

    pub(crate) fn finish(&mut self) {
        let used = &self.used;
        self.deps.retain(|key, _| used.contains(key));
    }

    /// Whether any lookup used in the latest computation was pending.
    pub(crate) fn any_pending(&self) -> bool {
        self.deps.values().any(|d| d.pending)
    }

    /// The current answer of a lookup, subscribing to it on first use. A
    /// lookup that has answered and then fails keeps its last good answer.
    fn snapshot(
        &mut self,
        key: DepKey,
        stats: &InterpreterStats,
        subscribe: impl FnOnce() -> Lookup,
    ) -> Snapshot {
        self.used.insert(key.clone());
        let dep = self.deps.entry(key.clone()).or_insert_with(|| Dep {
            live: subscribe(),
            last_good: None,
            masking_failure: false,
            pending: false,
        });
        let current = dep.live.load();
        dep.pending = current.is_pending() && dep.last_good.is_none();
        match (&*current, &dep.last_good) {
            (Activity::Ok(tree), _) => {
                if dep.masking_failure {
                    dep.masking_failure = false;
                    tracing::info!(lookup = %key, "namer recovered");
                }
                dep.last_good = Some(tree.clone());
                Activity::Ok(tree.clone())
            }
            (Activity::Failed(error), Some(good)) => {
                if !dep.masking_failure {
                    dep.masking_failure = true;
                    stats.failures_masked.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(lookup = %key, %error, "namer failed; keeping its last good answer");
                }
                Activity::Ok(good.clone())
            }
            (Activity::Pending, Some(good)) => Activity::Ok(good.clone()),
            (other, None) => other.clone(),
        }
    }

    /// Completes when any lookup has changed since it was last read. With no
    /// lookups at all, never completes.
    pub(crate) async fn any_changed(&mut self) {
        if self.deps.is_empty() {
            return std::future::pending().await;
        }
        let waits = self.deps.values_mut().map(|d| Box::pin(d.live.changed()));
        select_all(waits).await;
    }
}

impl std::fmt::Display for DepKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DepKey::Namer(_, path) | DepKey::System(path) => write!(f, "{path}"),
        }
    }
}
