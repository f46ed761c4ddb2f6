//! The watches of the `io.l5d.consul` store: Consul blocking queries, one
//! per watched namespace and one for the list. The store's watch table
//! shares each between its watchers and stops it when the last goes away.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use namers::backoff::ExponentialBackoff;
use namers::consul::Blocking;
use namers::consul::kv::{self, PollTiming, Polled};
use namers::{Activity, NamingError, Publisher};

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
/// for ever: the watch table drops it when nobody watches any more. A
/// value that is not a dtab is logged once and never served: the last good
/// value stays (a watch that never had one fails with why).
pub(super) async fn follow<F: Followed>(
    inner: Arc<Inner>,
    target: F,
    publisher: Arc<Publisher<Activity<F::Value>>>,
) {
    let what = target.describe(&inner);
    let timing = PollTiming {
        wait: inner.timing.wait,
        backoff: ExponentialBackoff::new(inner.timing.backoff_min, inner.timing.backoff_max),
        min_query_interval: MIN_QUERY_INTERVAL,
    };
    // The index of a bad value already logged.
    let mut bad_at = None;
    let (inner, target) = (&*inner, &target);
    let query = move |blocking| target.query(inner, blocking);
    kv::poll(&what, timing, query, |polled| match polled {
        Polled::Answer {
            value: Ok(value), ..
        } => {
            bad_at = None;
            publisher.publish_if_changed(Activity::Ok(value));
        }
        Polled::Answer {
            index,
            value: Err(why),
        } => {
            if bad_at != Some(index) {
                tracing::warn!("consul: {what}: {why}; keeping the last good value");
                bad_at = Some(index);
            }
            if publisher.current().ok().is_none() {
                publisher.publish_if_changed(Activity::Failed(NamingError::namer(why)));
            }
        }
        Polled::Failed { why, .. } => {
            if publisher.current().is_pending() {
                publisher.publish(Activity::Failed(NamingError::namer(why)));
            }
        }
    })
    .await;
}
