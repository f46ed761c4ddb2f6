//! Watching groups of member znodes in ZooKeeper: one session per namer,
//! and one task per watched group that keeps its members' data current.
//!
//! A group is a znode whose children named `member_*` are the members (a
//! Finagle serverset, or a leader-election group; for Curator's service
//! discovery, every child is a member). Its task lists the
//! children with a child watch and reads every member with a data watch;
//! each event re-reads only what it concerns and re-arms its watch. While
//! ZooKeeper is unreachable nothing is published, so every group keeps its
//! last members; the client re-arms its watches itself when it reconnects
//! within the session, and once the session has expired the task re-reads
//! everything on a new one. The task ends, dropping its watches, when the
//! last handle on the group's live value is dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::{BoxFuture, FutureExt, join_all};
use futures_util::stream::FuturesUnordered;
use tokio::sync::watch as tokio_watch;
use tokio::time::Instant;
use zookeeper_client as zk;

use crate::backoff::{Backoff, ExponentialBackoff};
use crate::{Live, LiveCache, Publisher};

/// How long one ZooKeeper call (or opening a session) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The pauses between failed reads and between failed connections: from
/// 100 ms doubling to 2 s, without jitter.
fn retry_schedule() -> ExponentialBackoff {
    ExponentialBackoff::new(Duration::from_millis(100), Duration::from_secs(2)).without_jitter()
}

/// The session timeout Finagle's serverset resolver asks for.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// Member znodes are the children with this prefix (Finagle's and the
/// commons `Group`'s naming).
pub const MEMBER_PREFIX: &str = "member_";

/// What is known of a group.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum GroupState<M> {
    /// Not read yet.
    Pending,
    /// The group's znode does not exist.
    Missing,
    /// The members that decoded, by znode name (sorted, so the first is the
    /// one with the lowest sequence number).
    Members(Arc<BTreeMap<String, M>>),
    /// The first read failed; later failures keep the last good state.
    Failed(Arc<str>),
}

/// Turns a member's data into what the namer keeps of it; `None` leaves the
/// member out. Given the member's full znode path for messages.
pub(crate) type Decode<M> = fn(&str, &[u8]) -> Option<M>;

/// One ZooKeeper session, opened on first use and again after it expired.
pub(crate) struct ZkSession {
    kind: &'static str,
    connect_string: String,
    session_timeout: Duration,
    slot: tokio::sync::Mutex<Slot>,
    /// Times ZooKeeper went from reachable to not, or back (each also
    /// logged once).
    state_changes: Arc<AtomicU64>,
}

struct Slot {
    client: Option<zk::Client>,
    /// No new connection is tried before this, after a failed one.
    retry_at: Option<Instant>,
    retry: Backoff,
    last_error: Option<String>,
}

impl Default for Slot {
    fn default() -> Slot {
        Slot {
            client: None,
            retry_at: None,
            retry: retry_schedule().into(),
            last_error: None,
        }
    }
}

impl ZkSession {
    pub(crate) fn new(
        kind: &'static str,
        connect_string: String,
        session_timeout: Duration,
    ) -> ZkSession {
        ZkSession {
            kind,
            connect_string,
            session_timeout,
            slot: tokio::sync::Mutex::default(),
            state_changes: Arc::default(),
        }
    }

    /// Times ZooKeeper went from reachable to not, or back.
    pub(crate) fn state_changes(&self) -> u64 {
        self.state_changes.load(Ordering::Relaxed)
    }

    fn where_(&self) -> String {
        format!("ZooKeeper at {}", self.connect_string)
    }

    /// The session if it is connected now, opening a new one if there is
    /// none or the last one has ended. Fails at once while the session is
    /// reconnecting, and while a failed attempt to connect is recent.
    async fn client(&self) -> Result<zk::Client, String> {
        let mut slot = self.slot.lock().await;
        if let Some(client) = &slot.client {
            let state = client.state();
            if !state.is_terminated() {
                return match state {
                    zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                        Ok(client.clone())
                    }
                    state => Err(format!("{}: not connected ({state})", self.where_())),
                };
            }
            slot.client = None;
        }
        if let (Some(at), Some(error)) = (slot.retry_at, &slot.last_error)
            && Instant::now() < at
        {
            return Err(error.clone());
        }
        let connect = zk::Client::connector()
            .with_session_timeout(self.session_timeout)
            .with_fail_eagerly()
            .connect(&self.connect_string);
        let result = match tokio::time::timeout(CALL_TIMEOUT, connect).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(format!("{}: cannot open a session: {e}", self.where_())),
            Err(_) => Err(format!(
                "{}: no session after {CALL_TIMEOUT:?}",
                self.where_()
            )),
        };
        match result {
            Ok(client) => {
                if slot.last_error.take().is_some() {
                    self.state_changes.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(namer = self.kind, servers = %self.connect_string, "ZooKeeper reachable again");
                }
                tracing::debug!(kind = self.kind, servers = %self.connect_string, session = %client.session_id(), "ZooKeeper session opened");
                tokio::spawn(log_states(
                    self.kind,
                    self.connect_string.clone(),
                    client.state_watcher(),
                    self.state_changes.clone(),
                ));
                slot.retry_at = None;
                slot.retry.reset();
                slot.client = Some(client.clone());
                Ok(client)
            }
            Err(error) => {
                if slot.last_error.is_none() {
                    self.state_changes.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(namer = self.kind, "{error}; keeping the last known members");
                }
                let delay = slot.retry.next_pause();
                slot.retry_at = Some(Instant::now() + delay);
                slot.last_error = Some(error.clone());
                Err(error)
            }
        }
    }

    /// The current session's id, if one is open (for tests and logs).
    pub(crate) async fn session_id(&self) -> Option<i64> {
        let slot = self.slot.lock().await;
        slot.client
            .as_ref()
            .filter(|c| !c.state().is_terminated())
            .map(|c| c.session_id().0)
    }
}

/// Logs (and counts) a session's state once per change.
async fn log_states(
    kind: &'static str,
    servers: String,
    mut states: zk::StateWatcher,
    changes: Arc<AtomicU64>,
) {
    loop {
        let state = states.changed().await;
        changes.fetch_add(1, Ordering::Relaxed);
        match state {
            zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                tracing::info!(namer = kind, %servers, %state, "ZooKeeper session connected again");
            }
            zk::SessionState::Expired => {
                tracing::warn!(namer = kind, %servers, "ZooKeeper session expired; re-reading everything on a new one");
            }
            _ => {
                tracing::warn!(namer = kind, %servers, %state, "ZooKeeper session not connected; keeping the last known members");
            }
        }
        if state.is_terminated() {
            return;
        }
    }
}

/// The watched groups of one namer, shared by znode path.
pub(crate) struct Groups<M> {
    session: ZkSession,
    decode: Decode<M>,
    /// Which children of a group are its members.
    is_member: fn(&str) -> bool,
    watches: LiveCache<String, GroupState<M>>,
    /// How many groups are watched.
    count: tokio_watch::Sender<usize>,
}

impl<M> Groups<M>
where
    M: Clone + PartialEq + Send + Sync + 'static,
{
    pub(crate) fn new(session: ZkSession, decode: Decode<M>) -> Groups<M> {
        Groups::with_members(session, decode, |child| child.starts_with(MEMBER_PREFIX))
    }

    /// Groups whose members are the children `is_member` accepts (Curator's
    /// service instances are named by their ids, with no prefix).
    pub(crate) fn with_members(
        session: ZkSession,
        decode: Decode<M>,
        is_member: fn(&str) -> bool,
    ) -> Groups<M> {
        Groups {
            session,
            decode,
            is_member,
            watches: LiveCache::default(),
            count: tokio_watch::channel(0).0,
        }
    }

    pub(crate) fn session(&self) -> &ZkSession {
        &self.session
    }

    /// How many groups are watched.
    pub(crate) fn watched_count(&self) -> usize {
        *self.count.borrow()
    }

    /// [`Groups::watched_count`] as a value to wait on.
    pub(crate) fn watched(&self) -> tokio_watch::Receiver<usize> {
        self.count.subscribe()
    }

    /// The live state of the group at `path` (an absolute znode path),
    /// watching it if nobody does yet. Needs a tokio runtime.
    pub(crate) fn watch(self: &Arc<Self>, path: &str) -> Live<GroupState<M>> {
        let (groups, group) = (self.clone(), path.to_string());
        let run = move |publisher| keep_watching(groups.clone(), group.clone(), publisher);
        self.watches
            .subscribe(path.to_string(), || GroupState::Pending, run)
    }
}

/// Counts a group as watched while its task runs.
struct Watching<'a>(&'a tokio_watch::Sender<usize>);

impl Watching<'_> {
    fn start(count: &tokio_watch::Sender<usize>) -> Watching<'_> {
        count.send_modify(|n| *n += 1);
        Watching(count)
    }
}

impl Drop for Watching<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Keeps one group current until nobody holds it.
async fn keep_watching<M>(
    groups: Arc<Groups<M>>,
    path: String,
    publisher: Arc<Publisher<GroupState<M>>>,
) where
    M: Clone + PartialEq + Send + Sync + 'static,
{
    let _watching = Watching::start(&groups.count);
    let run = async {
        let mut backoff = Backoff::from(retry_schedule());
        loop {
            match follow(&groups, &path, &publisher, &mut backoff).await {
                // The session ended: read everything again on a new one.
                Ok(()) => continue,
                // The session's own log says when ZooKeeper goes away and
                // comes back; this only reports a group that never answered.
                Err(error) => {
                    if publisher.current().is_pending() {
                        tracing::warn!(namer = groups.session.kind, group = %path, %error, "cannot read the group");
                        publisher.publish(GroupState::Failed(error.into()));
                    } else {
                        tracing::debug!(kind = groups.session.kind, group = %path, %error, "cannot read the group; keeping its last members");
                    }
                    tokio::time::sleep(backoff.next_pause()).await;
                }
            }
        }
    };
    tokio::select! {
        () = run => {}
        () = publisher.closed() => {}
    }
}

type Event = BoxFuture<'static, (Option<String>, zk::WatchedEvent)>;

fn on_change(member: Option<String>, watcher: zk::OneshotWatcher) -> Event {
    Box::pin(async move { (member, watcher.changed().await) })
}

/// Runs `call` with the call timeout.
async fn call<T>(
    what: &str,
    call: impl Future<Output = Result<T, zk::Error>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(zk::Error::NoNode)) => Err(Failure::NoNode),
        Ok(Err(e)) => Err(Failure::Other(format!("{what}: {e}"))),
        Err(_) => Err(Failure::Other(format!(
            "{what}: no answer in {CALL_TIMEOUT:?}"
        ))),
    }
}

enum Failure {
    NoNode,
    Other(String),
}

/// Follows the group on one session: returns `Ok` when the session has
/// ended, `Err` when a call failed.
async fn follow<M>(
    groups: &Groups<M>,
    path: &str,
    publisher: &Publisher<GroupState<M>>,
    backoff: &mut Backoff,
) -> Result<(), String>
where
    M: Clone + PartialEq + Send + Sync + 'static,
{
    let client = groups.session.client().await?;
    let where_ = groups.session.where_();
    let fail = |e: Failure, what: &str| match e {
        Failure::NoNode => format!("{where_}: {what}: no such znode"),
        Failure::Other(e) => format!("{where_}: {e}"),
    };
    // Members present, and what their data decoded to.
    let mut members: BTreeMap<String, Option<M>> = BTreeMap::new();
    let mut events: FuturesUnordered<Event> = FuturesUnordered::new();
    let mut list = true;
    let mut missing = false;
    let mut unread: BTreeSet<String> = BTreeSet::new();
    loop {
        if list {
            list = false;
            match call("list", client.list_and_watch_children(path)).await {
                Ok((children, watcher)) => {
                    missing = false;
                    events.push(on_change(None, watcher));
                    let children: BTreeSet<String> = children
                        .into_iter()
                        .filter(|c| (groups.is_member)(c))
                        .collect();
                    members.retain(|name, _| children.contains(name));
                    unread.retain(|name| children.contains(name));
                    for child in children {
                        if !members.contains_key(&child) {
                            unread.insert(child);
                        }
                    }
                }
                Err(Failure::NoNode) => {
                    // Watch for its creation instead.
                    let (stat, watcher) = call("watch", client.check_and_watch_stat(path))
                        .await
                        .map_err(|e| fail(e, path))?;
                    if stat.is_some() {
                        // Created meanwhile: list it.
                        list = true;
                        continue;
                    }
                    missing = true;
                    members.clear();
                    unread.clear();
                    events.push(on_change(None, watcher));
                }
                Err(e) => return Err(fail(e, path)),
            }
        }
        if !unread.is_empty() {
            let names: Vec<String> = std::mem::take(&mut unread).into_iter().collect();
            let reads = names.iter().map(|name| {
                let member = format!("{path}/{name}");
                let client = &client;
                async move {
                    let read = call("read", client.get_and_watch_data(&member)).await;
                    (member, read)
                }
            });
            for (name, (member, read)) in names.iter().zip(join_all(reads).await) {
                match read {
                    Ok((data, _, watcher)) => {
                        events.push(on_change(Some(name.clone()), watcher));
                        members.insert(name.clone(), (groups.decode)(&member, &data));
                    }
                    // Deleted meanwhile; the child watch says so too.
                    Err(Failure::NoNode) => {
                        members.remove(name);
                    }
                    Err(e) => return Err(fail(e, &member)),
                }
            }
        }
        let state = if missing {
            GroupState::Missing
        } else {
            let decoded = members
                .iter()
                .filter_map(|(name, m)| Some((name.clone(), m.clone()?)))
                .collect();
            GroupState::Members(Arc::new(decoded))
        };
        publisher.publish_if_changed(state);
        backoff.reset();
        let Some(mut next) = events.next().await else {
            // The child (or creation) watch is always armed, so this does
            // not happen; should it, read again rather than spin.
            tokio::time::sleep(backoff.next_pause()).await;
            list = true;
            continue;
        };
        // Take every event that is ready, so a burst is read once.
        loop {
            let (member, event) = next;
            if event.event_type == zk::EventType::Session {
                // Expired or closed: the caller starts over on a new session.
                return Ok(());
            }
            match member {
                None => list = true,
                Some(name) if event.event_type == zk::EventType::NodeDeleted => {
                    members.remove(&name);
                    unread.remove(&name);
                }
                Some(name) => {
                    if members.contains_key(&name) {
                        unread.insert(name);
                    }
                }
            }
            match events.next().now_or_never() {
                Some(Some(ready)) => next = ready,
                _ => break,
            }
        }
    }
}

impl<M> GroupState<M> {
    fn is_pending(&self) -> bool {
        matches!(self, GroupState::Pending)
    }
}
