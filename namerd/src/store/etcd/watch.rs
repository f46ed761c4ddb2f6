//! Watches: one etcd watch stream per watched namespace, and one on the
//! prefix for the list of namespaces. After a broken stream they resume
//! from the last revision seen, and read the key again if that revision
//! has been compacted away.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use namers::Activity;

use super::client::describe;
use super::etcdserverpb::{self as pb, event::EventType};
use super::{Inner, decode, revision_of};
use crate::Namespace;
use crate::store::StoreError;
use crate::store::backend::{
    DtabPublisher, Health, ListPublisher, Read, publish_failure, publish_read, retry_backoff,
};

/// How long a watch stream must have lasted for its end to reset the
/// backoff (a stream that breaks at once is retried ever more slowly).
const STABLE: Duration = Duration::from_secs(10);

/// Where a watch stands: the store revision its value is current at, or
/// `None` when it must read the key again first.
pub(super) type Position = Option<i64>;

/// What became of a watch stream.
pub(super) enum StreamEnd {
    /// It broke; resume from the last revision seen.
    Broken(StoreError),
    /// Its start revision was compacted away; read again.
    Compacted,
}

/// Follows one watch stream, handing every event to `apply` and keeping
/// `position` at the last revision seen, until the stream ends.
pub(super) async fn follow(
    inner: &Inner,
    stream: &mut tonic::Streaming<pb::WatchResponse>,
    position: &mut Position,
    mut apply: impl FnMut(&pb::Event),
) -> StreamEnd {
    let broken = |why: String| {
        StreamEnd::Broken(StoreError::Backend(format!(
            "etcd at {}: {why}",
            inner.settings.endpoint
        )))
    };
    loop {
        let response = match stream.message().await {
            Ok(Some(response)) => response,
            Ok(None) => return broken("the watch stream ended".to_string()),
            Err(e) => return broken(format!("the watch stream broke: {}", describe(&e))),
        };
        if response.canceled {
            if response.compact_revision > 0 {
                return StreamEnd::Compacted;
            }
            return broken(format!(
                "etcd canceled the watch: {}",
                response.cancel_reason
            ));
        }
        for event in &response.events {
            apply(event);
            if let Some(kv) = &event.kv {
                *position = Some(position.unwrap_or(0).max(kv.mod_revision));
            }
        }
        // A progress notice: every event up to its revision has been sent.
        if response.events.is_empty()
            && !response.created
            && let Ok(revision) = revision_of(response.header.as_ref())
        {
            *position = Some(position.unwrap_or(0).max(revision));
        }
    }
}

/// Keeps one namespace's watch up to date; dropped when nobody holds it.
pub(super) async fn watch_dtab(inner: Arc<Inner>, ns: Namespace, publisher: DtabPublisher) {
    let key = inner.key(&ns);
    let what = format!("watch of {key}");
    let apply_read = |read: Read| publish_read(&publisher, &ns, read);
    let mut health = Health::new("io.l5d.etcd", Some(ns.as_str()), &what);
    let mut backoff = retry_backoff();
    let mut position: Position = None;
    loop {
        let opened = inner
            .call("watch", async {
                let revision = match position {
                    Some(revision) => revision,
                    None => {
                        let (read, revision) = inner.read(&ns).await?;
                        apply_read(read);
                        position = Some(revision);
                        revision
                    }
                };
                inner.open_watch(&key, false, revision + 1).await
            })
            .await;
        let end = match opened {
            Ok(mut stream) => {
                health.ok();
                let opened_at = Instant::now();
                let end = follow(&inner, &mut stream, &mut position, |event| {
                    match EventType::try_from(event.r#type) {
                        Ok(EventType::Put) => match event.kv.as_ref().map(|kv| decode(&ns, kv)) {
                            Some(Ok(dtab)) => apply_read(Read::Good(Some(dtab))),
                            Some(Err(why)) => apply_read(Read::Corrupt(why)),
                            None => {}
                        },
                        Ok(EventType::Delete) => apply_read(Read::Good(None)),
                        // A kind of event this etcd is newer than us about.
                        Err(_) => {}
                    }
                })
                .await;
                // Back off afresh only after a stream that lasted.
                if opened_at.elapsed() >= STABLE {
                    backoff.reset();
                }
                end
            }
            Err(e) => StreamEnd::Broken(e),
        };
        match end {
            StreamEnd::Compacted => position = None,
            StreamEnd::Broken(e) => {
                health.failed(&e);
                publish_failure(&publisher, &e);
                tokio::time::sleep(backoff.next_pause()).await;
            }
        }
    }
}

/// Keeps the list watch up to date; dropped when nobody holds it.
pub(super) async fn watch_list(inner: Arc<Inner>, publisher: ListPublisher) {
    let dir = inner.dir();
    let what = format!("watch of {dir}*");
    let mut health = Health::new("io.l5d.etcd", None, &what);
    let mut backoff = retry_backoff();
    let mut position: Position = None;
    let mut names = BTreeSet::new();
    loop {
        let opened = inner
            .call("watch", async {
                let revision = match position {
                    Some(revision) => revision,
                    None => {
                        let (now, revision) = inner.read_list().await?;
                        names = now;
                        publisher.publish_if_changed(Activity::Ok(names.clone()));
                        position = Some(revision);
                        revision
                    }
                };
                inner.open_watch(&dir, true, revision + 1).await
            })
            .await;
        let end = match opened {
            Ok(mut stream) => {
                health.ok();
                let opened_at = Instant::now();
                let end = follow(&inner, &mut stream, &mut position, |event| {
                    let Some(ns) = event.kv.as_ref().and_then(|kv| inner.namespace_of(&kv.key))
                    else {
                        return;
                    };
                    let changed = match EventType::try_from(event.r#type) {
                        Ok(EventType::Put) => names.insert(ns),
                        Ok(EventType::Delete) => names.remove(&ns),
                        Err(_) => false,
                    };
                    if changed {
                        publisher.publish(Activity::Ok(names.clone()));
                    }
                })
                .await;
                if opened_at.elapsed() >= STABLE {
                    backoff.reset();
                }
                end
            }
            Err(e) => StreamEnd::Broken(e),
        };
        match end {
            StreamEnd::Compacted => position = None,
            StreamEnd::Broken(e) => {
                health.failed(&e);
                publish_failure(&publisher, &e);
                tokio::time::sleep(backoff.next_pause()).await;
            }
        }
    }
}
