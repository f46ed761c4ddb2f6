//! The watches of the `io.l5d.zk` store: ZooKeeper watches, one per
//! watched namespace plus one on the children of `pathPrefix` for the list,
//! re-armed after every event and set up again on a new session after the
//! old one expired.

use std::collections::BTreeSet;
use std::sync::Arc;

use namers::Activity;
use zookeeper_client as zk;

use super::{Inner, decode, namespaces};
use crate::Namespace;
use crate::store::StoreResult;
use crate::store::backend::{
    DtabPublisher, Health, ListPublisher, Read, publish_failure, publish_read, retry_backoff,
};

impl Inner {
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

/// Keeps one namespace's watch up to date; dropped when nobody holds it.
pub(super) async fn watch_dtab(inner: Arc<Inner>, ns: Namespace, publisher: DtabPublisher) {
    let what = format!("watch of {}", inner.node(&ns));
    let mut health = Health::new("io.l5d.zk", Some(ns.as_str()), &what);
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
pub(super) async fn watch_list(inner: Arc<Inner>, publisher: ListPublisher) {
    let what = format!("watch of the children of {}", inner.settings.path_prefix);
    let mut health = Health::new("io.l5d.zk", None, &what);
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
