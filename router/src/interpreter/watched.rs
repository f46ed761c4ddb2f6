//! What the interpreters with a watched dtab share: `io.l5d.fs` (a file),
//! `io.l5d.k8s.configMap` (a key of a ConfigMap) and
//! `io.l5d.consul.interpreter` (a Consul KV key).
//!
//! Each binds names with the router's own namers, like the default
//! interpreter, through the source's dtab followed by the dtab the router
//! passes (its own dtab, then the request's), so the router's entries win.
//! A source is a [`DtabSource`]: it says where its dtab is and keeps a
//! [`SourceUpdates`] up to date with what it reads. The rest is here: one
//! watch of the source shared by every binding and ended with the last one,
//! a rebind of live bindings when the dtab changes (and only then), the
//! last good dtab kept when a read fails, and bindings that fail with the
//! source's error while it has never given a dtab.

use std::sync::Arc;
use std::time::Duration;

use dtab::{Dtab, NameTree, Path};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use namers::LiveCache;
use namers::{
    Activity, Binding, Bound, Interpreter, Live, NameInterpreter, NamingError, Publisher,
};
use serde_json::Value;

use super::RouterNaming;

/// How long a source may take to give its first answer before bindings
/// fail with "no answer yet" (they rebind as soon as it answers).
pub const FIRST_ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// What a watched source holds, as far as bindings are concerned.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceDtab {
    /// The dtab in force: the last one read successfully; `None` until the
    /// source has given one.
    pub dtab: Option<Dtab>,
    /// Why the latest read gave no dtab, naming where (`path:line:col: ...`
    /// for a syntax error); `None` when it did.
    pub error: Option<Arc<str>>,
}

impl SourceDtab {
    /// Whether the source has said nothing yet.
    pub fn is_pending(&self) -> bool {
        self.dtab.is_none() && self.error.is_none()
    }
}

/// One reading of a source.
#[derive(Clone, Debug, PartialEq)]
pub enum Read {
    /// The source holds this dtab.
    Dtab(Dtab),
    /// The source holds no dtab (a ConfigMap, key or Consul key that does
    /// not exist). Before any dtab, that is the empty dtab, as in Linkerd;
    /// after one, the last good dtab stays (a deletion during a rollout
    /// must not unroute everything). The text says where.
    Absent(String),
    /// The source's value is unusable, or the source cannot be reached; the
    /// last good dtab stays. The text says where and why.
    Failed(String),
    /// The source answers again after failing, with nothing new: the last
    /// good dtab is current again.
    Recovered,
}

/// Where a source reports its readings. Cheap to clone.
#[derive(Clone)]
pub struct SourceUpdates {
    kind: &'static str,
    publisher: Arc<Publisher<SourceDtab>>,
}

impl SourceUpdates {
    /// Applies a reading: a dtab replaces the one in force; an error is
    /// recorded and logged (once per distinct state) while the last good
    /// dtab stays. Equal states are not published again.
    pub fn apply(&self, read: Read) {
        let kind = self.kind;
        let current = self.publisher.current();
        let next = match read {
            Read::Dtab(dtab) => SourceDtab {
                dtab: Some(dtab),
                error: None,
            },
            Read::Absent(why) => SourceDtab {
                dtab: Some(current.dtab.clone().unwrap_or_else(Dtab::empty)),
                error: Some(why.into()),
            },
            Read::Failed(why) => SourceDtab {
                dtab: current.dtab.clone(),
                error: Some(why.into()),
            },
            Read::Recovered if current.dtab.is_some() => SourceDtab {
                dtab: current.dtab.clone(),
                error: None,
            },
            Read::Recovered => return,
        };
        if *current == next {
            return;
        }
        match (&next.error, &current.dtab) {
            (Some(error), Some(_)) => {
                tracing::warn!(%error, "{kind} interpreter: keeping the last good dtab");
            }
            (Some(error), None) if next.dtab.is_some() => {
                tracing::warn!(%error, "{kind} interpreter: binding with the router's dtab alone until it appears");
            }
            (Some(error), None) => tracing::warn!(%error, "{kind} interpreter: no usable dtab"),
            (None, _) if current.error.is_some() => {
                tracing::info!("{kind} interpreter: the dtab source is usable again");
            }
            (None, _) => {}
        }
        if next.dtab != current.dtab
            && let Some(dtab) = &next.dtab
        {
            tracing::info!(%dtab, "{kind} interpreter: dtab changed");
        }
        self.publisher.publish(next);
    }

    /// The state as it stands.
    pub fn current(&self) -> Arc<SourceDtab> {
        self.publisher.current()
    }

    /// Completes once no binding (or other handle) watches the source.
    pub async fn closed(&self) {
        self.publisher.closed().await;
    }
}

/// Where an interpreter's dtab comes from, and how it is followed.
pub trait DtabSource: Send + Sync + 'static {
    /// The interpreter's `kind`, for logs and errors.
    fn kind(&self) -> &'static str;

    /// Where the dtab is, for messages: `the dtab file /etc/dtab`.
    fn describe(&self) -> String;

    /// The state before the watch reports anything: a file is read at once;
    /// a remote source is pending (bindings wait, up to
    /// [`FIRST_ANSWER_TIMEOUT`]).
    fn initial(&self) -> SourceDtab {
        SourceDtab::default()
    }

    /// Keeps `updates` up to date with the source; it may return once
    /// [`SourceUpdates::closed`] completes, and is dropped then anyway.
    fn watch(self: Arc<Self>, updates: SourceUpdates) -> BoxFuture<'static, ()>;
}

/// An interpreter binding with the router's namers through a watched
/// source's dtab. Cheap to clone.
pub struct WatchedDtab<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for WatchedDtab<S> {
    fn clone(&self) -> Self {
        WatchedDtab {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<S> {
    source: Arc<S>,
    default: Interpreter,
    /// One watch of the source, shared by every binding, ended when none is
    /// left.
    watch: LiveCache<(), SourceDtab>,
    first_answer_timeout: Duration,
}

impl<S: DtabSource> WatchedDtab<S> {
    /// An interpreter binding through `source`'s dtab with the namers of
    /// `default`.
    pub fn with_source(source: S, default: Interpreter) -> WatchedDtab<S> {
        WatchedDtab::with_timeout(source, default, FIRST_ANSWER_TIMEOUT)
    }

    /// [`WatchedDtab::with_source`] with another wait for the source's
    /// first answer.
    pub fn with_timeout(
        source: S,
        default: Interpreter,
        first_answer_timeout: Duration,
    ) -> WatchedDtab<S> {
        WatchedDtab {
            inner: Arc::new(Inner {
                source: Arc::new(source),
                default,
                watch: LiveCache::default(),
                first_answer_timeout,
            }),
        }
    }

    /// The source.
    pub fn source(&self) -> &S {
        &self.inner.source
    }

    /// The source's dtab, live. The source is watched while any handle is
    /// held. Must be called within a tokio runtime.
    pub fn source_dtab(&self) -> Live<SourceDtab> {
        let source = self.inner.source.clone();
        let timeout = self.inner.first_answer_timeout;
        self.inner.watch.subscribe(
            (),
            || self.inner.source.initial(),
            move |publisher| run(source.clone(), publisher, timeout),
        )
    }

    /// Whether the source is being watched (it is while any binding or
    /// [`WatchedDtab::source_dtab`] handle is held).
    pub fn is_watching(&self) -> bool {
        !self.inner.watch.is_empty()
    }
}

/// Watches the source until nobody listens; a source silent for `timeout`
/// makes bindings fail with why until it answers.
async fn run<S: DtabSource>(
    source: Arc<S>,
    publisher: Arc<Publisher<SourceDtab>>,
    timeout: Duration,
) {
    let updates = SourceUpdates {
        kind: source.kind(),
        publisher: publisher.clone(),
    };
    let what = source.describe();
    let watch = source.watch(updates.clone());
    let deadline = async {
        tokio::time::sleep(timeout).await;
        if updates.current().is_pending() {
            updates.apply(Read::Failed(format!(
                "no answer from {what} within {timeout:?}"
            )));
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = watch => {}
        () = deadline => {}
        () = publisher.closed() => {}
    }
}

impl<S: DtabSource> RouterNaming for WatchedDtab<S> {
    fn bind(&self, dtab: &Dtab, path: &Path) -> Binding {
        let kind = self.inner.source.kind();
        if tokio::runtime::Handle::try_current().is_err() {
            return Live::constant(Activity::Failed(NamingError::namer(format!(
                "{kind} interpreter: binding outside a tokio runtime"
            ))));
        }
        let source = self.source_dtab();
        let mut follow = Follow {
            default: self.inner.default.clone(),
            local: dtab.clone(),
            path: path.clone(),
            current: None,
            publisher: Publisher::new(Activity::Pending),
        };
        // The first answer is computed here, like the default
        // interpreter's, so names needing no I/O are bound at once.
        follow.step(&source.load());
        let binding = follow.publisher.subscribe();
        tokio::spawn(follow.run(source));
        binding
    }

    fn delegate<'a>(
        &'a self,
        dtab: &'a Dtab,
        path: &'a Path,
    ) -> BoxFuture<'a, Result<Value, String>> {
        async move {
            let base = self.usable_dtab().await?;
            let full = base.concat(dtab);
            RouterNaming::delegate(&self.inner.default, &full, path).await
        }
        .boxed()
    }

    // Ready once the source has given a usable dtab; a source that breaks
    // later leaves the last good dtab in force, so readiness stays. Not
    // waited for: readiness is asked again.
    fn ready(&self) -> BoxFuture<'_, Result<(), String>> {
        async move { self.usable(&self.source_dtab().load()).map(drop) }.boxed()
    }
}

impl<S: DtabSource> WatchedDtab<S> {
    /// The dtab in force, waiting for the source's first answer if it has
    /// given none yet; else why there is none.
    async fn usable_dtab(&self) -> Result<Dtab, String> {
        let mut source = self.source_dtab();
        let state = loop {
            let state = source.load();
            if !state.is_pending() {
                break state;
            }
            source.changed().await;
        };
        self.usable(&state)
    }

    /// The dtab in force, or why there is none.
    fn usable(&self, state: &SourceDtab) -> Result<Dtab, String> {
        match &state.dtab {
            Some(dtab) => Ok(dtab.clone()),
            None => Err(format!(
                "{} interpreter: no usable dtab from {} yet: {}",
                self.inner.source.kind(),
                self.inner.source.describe(),
                state.error.as_deref().unwrap_or("not read yet")
            )),
        }
    }
}

/// One binding: the default interpreter's binding of the path through the
/// source's dtab plus the router's, replaced whenever the source's dtab
/// changes.
struct Follow {
    default: Interpreter,
    local: Dtab,
    path: Path,
    current: Option<(Dtab, Binding)>,
    publisher: Publisher<Activity<NameTree<Bound>>>,
}

impl Follow {
    async fn run(mut self, mut source: Live<SourceDtab>) {
        loop {
            tokio::select! {
                () = self.publisher.closed() => return,
                () = source.changed() => {}
                () = async {
                    match self.current.as_mut() {
                        Some((_, binding)) => binding.changed().await,
                        None => std::future::pending().await,
                    }
                } => {}
            }
            self.step(&source.load());
        }
    }

    /// Rebinds if the source's dtab changed, then publishes the binding's
    /// state.
    fn step(&mut self, source: &SourceDtab) {
        if let Some(base) = &source.dtab {
            let full = base.concat(&self.local);
            if self.current.as_ref().is_none_or(|(d, _)| *d != full) {
                let binding = NameInterpreter::bind(&self.default, &full, &self.path);
                self.current = Some((full, binding));
            }
        }
        let next = match &self.current {
            Some((_, binding)) => binding.load(),
            None => match &source.error {
                Some(error) => Arc::new(Activity::Failed(NamingError::Namer(error.clone()))),
                None => return,
            },
        };
        // A new dtab's binding may need a moment (a namer reading a file);
        // the previous tree serves meanwhile.
        if next.is_pending() && matches!(*self.publisher.current(), Activity::Ok(_)) {
            return;
        }
        publish_if_changed(&self.publisher, &next);
    }
}

/// Publishes `next` unless it is the current state with the same address
/// handles (an equal tree whose leaves read other address sources is
/// published, so nobody is left holding a handle that no longer updates).
pub(super) fn publish_if_changed(
    publisher: &Publisher<Activity<NameTree<Bound>>>,
    next: &Activity<NameTree<Bound>>,
) {
    let current = publisher.current();
    let same = match (&*current, next) {
        (Activity::Ok(a), Activity::Ok(b)) => a == b && same_addr_sources(a, b),
        (a, b) => a == b,
    };
    if !same {
        publisher.publish(next.clone());
    }
}

fn same_addr_sources(a: &NameTree<Bound>, b: &NameTree<Bound>) -> bool {
    let (mut left, mut right) = (Vec::new(), Vec::new());
    leaves(a, &mut left);
    leaves(b, &mut right);
    left.len() == right.len()
        && left
            .iter()
            .zip(&right)
            .all(|(x, y)| x.addr.same_source(&y.addr))
}

fn leaves<'t>(tree: &'t NameTree<Bound>, out: &mut Vec<&'t Bound>) {
    match tree {
        NameTree::Leaf(bound) => out.push(bound),
        NameTree::Alt(trees) => trees.iter().for_each(|t| leaves(t, out)),
        NameTree::Union(branches) => branches.iter().for_each(|w| leaves(&w.tree, out)),
        NameTree::Neg | NameTree::Fail | NameTree::Empty => {}
    }
}

/// `where:line:col: expected ...: "context"` for a dtab that does not parse.
pub(super) fn parse_dtab(text: &str, at: &str) -> Result<Dtab, String> {
    Dtab::read(text).map_err(|e| {
        format!(
            "{at}:{}:{}: expected {}: \"{}\"",
            e.line, e.column, e.expected, e.context
        )
    })
}
