//! The watches of the `io.l5d.consul` store: Consul blocking queries, one
//! per watched namespace and one for the list. The store's watch table
//! shares each between its watchers and stops it when the last goes away.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use namers::backoff::Backoff;
use namers::consul::Blocking;
use namers::{Activity, NamingError, Publisher};
use tokio::time::Instant;

use super::{Inner, parse_entry};
use crate::Namespace;
use crate::store::VersionedDtab;

/// The shortest time between two queries of one watch, so that a busy
/// cluster does not make a watch spin.
const MIN_QUERY_INTERVAL: Duration = Duration::from_millis(50);

/// Something a watch follows with blocking queries.
pub(super) trait Followed: Send + Sync + 'static {
    /// What a successful query yields.
    type Value: PartialEq + Send + Sync + 'static;

    /// For logs.
    fn describe(&self, inner: &Inner) -> String;

    /// One query: the index Consul answered with, and the value or why the
    /// stored data is unusable. `Err` when Consul could not be asked.
    fn query(
        &self,
        inner: &Inner,
        blocking: Blocking,
    ) -> impl Future<Output = Result<(u64, Result<Self::Value, String>), String>> + Send;
}

pub(super) struct DtabKey(pub(super) Namespace);

impl Followed for DtabKey {
    type Value = Option<VersionedDtab>;

    fn describe(&self, inner: &Inner) -> String {
        format!("dtab {} (Consul key {})", self.0, inner.key(&self.0))
    }

    async fn query(
        &self,
        inner: &Inner,
        blocking: Blocking,
    ) -> Result<(u64, Result<Self::Value, String>), String> {
        let key = inner.key(&self.0);
        let (index, entry) = inner
            .client
            .get(&key, inner.dc(), inner.read, blocking)
            .await
            .map_err(|e| e.to_string())?;
        let value = entry.map(|e| parse_entry(&key, &e)).transpose();
        Ok((index, value))
    }
}

pub(super) struct NamespaceList;

impl Followed for NamespaceList {
    type Value = BTreeSet<Namespace>;

    fn describe(&self, inner: &Inner) -> String {
        format!("namespace list (Consul keys under {})", inner.list_prefix())
    }

    async fn query(
        &self,
        inner: &Inner,
        blocking: Blocking,
    ) -> Result<(u64, Result<Self::Value, String>), String> {
        let (index, keys) = inner
            .client
            .keys(&inner.list_prefix(), inner.dc(), inner.read, blocking)
            .await
            .map_err(|e| e.to_string())?;
        Ok((index, Ok(inner.namespaces(keys))))
    }
}

/// Follows `target` with blocking queries and publishes what it finds,
/// for ever: the watch table drops it when nobody watches any more.
pub(super) async fn follow<F: Followed>(
    inner: Arc<Inner>,
    target: F,
    publisher: Arc<Publisher<Activity<F::Value>>>,
) {
    let what = target.describe(&inner);
    let mut index = 0;
    let mut backoff = Backoff::new(inner.timing.backoff_min, inner.timing.backoff_max);
    // Whether an outage was logged, so that retries do not log again.
    let mut failing = false;
    // The index of a bad value already logged.
    let mut bad_at = None;
    loop {
        let started = Instant::now();
        let blocking = if index == 0 {
            Blocking::No
        } else {
            Blocking::Since {
                index,
                wait: inner.timing.wait,
            }
        };
        let pause = match target.query(&inner, blocking).await {
            Ok((new_index, value)) => {
                if failing {
                    tracing::info!("consul: {what}: Consul answers again");
                    failing = false;
                }
                backoff.reset();
                if new_index < index {
                    // A snapshot restore, or a list whose newest key went:
                    // waiting on the old index could miss every change.
                    tracing::info!(
                        "consul: {what}: the index went backwards ({index} -> {new_index}); reading afresh"
                    );
                    index = 0;
                    continue;
                }
                // Consul never answers 0 but by a bug, and blocking on 0
                // would not block at all.
                index = new_index.max(1);
                match value {
                    Ok(value) => {
                        bad_at = None;
                        publisher.publish_if_changed(Activity::Ok(value));
                    }
                    Err(why) => {
                        if bad_at != Some(index) {
                            tracing::warn!("consul: {what}: {why}; keeping the last good value");
                            bad_at = Some(index);
                        }
                        if publisher.current().ok().is_none() {
                            publisher.publish_if_changed(Activity::Failed(NamingError::namer(why)));
                        }
                    }
                }
                MIN_QUERY_INTERVAL.saturating_sub(started.elapsed())
            }
            Err(why) => {
                if failing {
                    tracing::debug!("consul: {what}: still failing: {why}");
                } else {
                    tracing::warn!(
                        "consul: {what}: {why}; keeping the last good value and retrying"
                    );
                    failing = true;
                }
                if publisher.current().is_pending() {
                    publisher.publish(Activity::Failed(NamingError::namer(why)));
                }
                backoff.next_pause()
            }
        };
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
}
