//! The behaviour every [`DtabStore`] must have, as one async check that each
//! backend's tests run against a fresh, empty store.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use dtab::Dtab;
use namers::{Activity, Live};

use super::{DtabStore, StoreError};
use crate::Namespace;

fn ns(name: &str) -> Namespace {
    Namespace::new(name).unwrap()
}

fn dtab(text: &str) -> Dtab {
    Dtab::read(text).unwrap()
}

/// Waits (up to `limit`) until `live` satisfies `done`.
pub async fn wait_for<T>(live: &Live<T>, limit: Duration, what: &str, done: impl Fn(&T) -> bool) {
    let mut live = live.clone();
    let waited = tokio::time::timeout(limit, async {
        while !done(&live.load()) {
            live.changed().await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "timed out after {limit:?} waiting for {what}"
    );
}

/// Runs the whole contract against an empty `store`. `namespace_prefix`
/// keeps runs that share a backend apart.
pub async fn check_store(store: &dyn DtabStore, namespace_prefix: &str) {
    let limit = Duration::from_secs(10);
    let a = ns(&format!("{namespace_prefix}a"));
    let b = ns(&format!("{namespace_prefix}b"));

    // Watches set up before anything exists.
    let watch_a = store.watch(&a);
    wait_for(&watch_a, limit, "an absent namespace", |s| {
        matches!(s, Activity::Ok(None))
    })
    .await;
    let list = store.watch_list();

    // create / get
    let v1 = store.create(&a, &dtab("/svc=>/#/io.l5d.fs")).await.unwrap();
    assert_eq!(
        store.create(&a, &dtab("/x=>/y")).await,
        Err(StoreError::AlreadyExists(a.clone())),
        "create of an existing namespace"
    );
    let got = store
        .get(&a)
        .await
        .unwrap()
        .expect("created namespace missing");
    assert_eq!(got.dtab.show(), "/svc=>/#/io.l5d.fs");
    assert_eq!(got.version, v1);
    assert_eq!(store.get(&b).await.unwrap(), None);

    // compare-and-set
    let v2 = store
        .update(
            &a,
            &dtab("/svc=>/#/io.l5d.fs;/svc/web=>/$/inet/127.0.0.1/1"),
            &v1,
        )
        .await
        .unwrap();
    assert_ne!(v1, v2, "a write must change the version");
    assert_eq!(
        store.update(&a, &dtab("/lost=>/update"), &v1).await,
        Err(StoreError::VersionMismatch(a.clone())),
        "update with a stale version"
    );
    assert_eq!(
        store.get(&a).await.unwrap().unwrap().version,
        v2,
        "a rejected update changed the dtab"
    );
    assert_eq!(
        store.update(&b, &dtab("/x=>/y"), &v1).await,
        Err(StoreError::NotFound(b.clone())),
        "update of a missing namespace"
    );

    // watch sees the latest write
    wait_for(
        &watch_a,
        limit,
        "the update in a watch",
        |s| matches!(s, Activity::Ok(Some(d)) if d.version == v2 && d.dtab.len() == 2),
    )
    .await;

    // put upserts
    let vb = store.put(&b, &dtab("/b=>/c")).await.unwrap();
    let vb2 = store.put(&b, &dtab("/b=>/d")).await.unwrap();
    assert_ne!(vb, vb2);
    assert_eq!(store.get(&b).await.unwrap().unwrap().dtab.show(), "/b=>/d");

    // list
    let names = store.list().await.unwrap();
    assert!(
        names.contains(&a) && names.contains(&b),
        "list lacks a or b: {names:?}"
    );
    wait_for(
        &list,
        limit,
        "both namespaces in the list watch",
        |s| matches!(s, Activity::Ok(names) if names.contains(&a) && names.contains(&b)),
    )
    .await;

    // delete
    store.delete(&a).await.unwrap();
    assert_eq!(
        store.delete(&a).await,
        Err(StoreError::NotFound(a.clone())),
        "second delete"
    );
    assert_eq!(store.get(&a).await.unwrap(), None);
    wait_for(&watch_a, limit, "the delete in a watch", |s| {
        matches!(s, Activity::Ok(None))
    })
    .await;
    wait_for(
        &list,
        limit,
        "the delete in the list watch",
        |s| matches!(s, Activity::Ok(names) if !names.contains(&a)),
    )
    .await;

    // an empty dtab is a value like any other
    store.put(&a, &Dtab::empty()).await.unwrap();
    assert_eq!(store.get(&a).await.unwrap().unwrap().dtab, Dtab::empty());
    store.delete(&a).await.unwrap();
    store.delete(&b).await.unwrap();
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_in_memory_store_keeps_the_contract() {
        super::check_store(&crate::store::memory::InMemoryStore::default(), "").await;
    }
}
