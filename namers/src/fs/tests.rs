use std::net::SocketAddr;
use std::os::unix::fs::symlink;
use std::sync::Arc;
use std::time::Duration;

use dtab::{Label, NameTree, Path};
use tempfile::TempDir;

use super::*;
use crate::{Activity, Addr, Bound, Endpoint, Live, Name, Namer};

const WAIT: Duration = Duration::from_secs(5);

fn path(text: &str) -> Path {
    Path::read(text).unwrap()
}

fn namer(dir: &TempDir) -> Arc<FsNamer> {
    FsNamer::new(path("/#/io.l5d.fs"), dir.path().to_path_buf()).unwrap()
}

fn write(dir: &TempDir, file: &str, text: &str) {
    std::fs::write(dir.path().join(file), text).unwrap();
}

/// Waits (at most `WAIT`) until the live value satisfies `ok`.
async fn until<T: std::fmt::Debug>(live: &mut Live<T>, ok: impl Fn(&T) -> bool) -> Arc<T> {
    until_within(WAIT, live, ok).await
}

async fn until_within<T: std::fmt::Debug>(
    wait: Duration,
    live: &mut Live<T>,
    ok: impl Fn(&T) -> bool,
) -> Arc<T> {
    let waited = tokio::time::timeout(wait, async {
        loop {
            let value = live.load();
            if ok(&value) {
                return value;
            }
            live.changed().await;
        }
    })
    .await;
    match waited {
        Ok(value) => value,
        Err(_) => panic!("timed out; the value is still {:?}", live.load()),
    }
}

fn bound(tree: &Activity<NameTree<Name>>) -> Option<&Bound> {
    match tree {
        Activity::Ok(NameTree::Leaf(Name::Bound(bound))) => Some(bound),
        _ => None,
    }
}

/// Waits for the lookup to bind, and returns the bound name.
async fn leaf(live: &mut Live<Activity<NameTree<Name>>>) -> Bound {
    let tree = until(live, |t| bound(t).is_some()).await;
    bound(&tree).cloned().unwrap()
}

fn addrs(addr: &Addr) -> Option<Vec<SocketAddr>> {
    match addr {
        Addr::Bound(set) => Some(set.endpoints().iter().map(|e| e.addr).collect()),
        _ => None,
    }
}

fn sockets(list: &[&str]) -> Vec<SocketAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

/// Waits until the address is bound to exactly `expected`.
async fn until_addrs(addr: &mut Live<Addr>, expected: &[&str]) {
    let expected = sockets(expected);
    until(addr, |a| addrs(a).as_ref() == Some(&expected)).await;
}

async fn until_watched(namer: &FsNamer, count: usize) {
    let mut watched = namer.watched();
    let waited = tokio::time::timeout(WAIT, watched.wait_for(|n| *n == count)).await;
    assert!(
        waited.is_ok(),
        "still watching {} files, expected {count}",
        namer.watched_count()
    );
}

#[tokio::test]
async fn binds_a_file_and_follows_in_place_edits() {
    let dir = TempDir::new().unwrap();
    write(
        &dir,
        "web",
        "# web\n127.0.0.1 8080\n127.0.0.2 8080 * 2.5 # canary\n",
    );
    let namer = namer(&dir);
    let mut tree = namer.lookup(&path("/web/api/v1"));
    let web = leaf(&mut tree).await;
    assert_eq!(web.id, path("/#/io.l5d.fs/web"));
    assert_eq!(web.residual, path("/api/v1"));
    assert_eq!(web.weight, None);
    let mut addr = web.addr.clone();
    until_addrs(&mut addr, &["127.0.0.1:8080", "127.0.0.2:8080"]).await;
    let Addr::Bound(set) = &*addr.load() else {
        unreachable!()
    };
    assert_eq!(set.endpoints()[0].weight, 1.0);
    assert_eq!(
        set.endpoints()[1],
        Endpoint::new("127.0.0.2:8080".parse().unwrap()).with_weight(2.5)
    );

    // The same path shares one live tree; another residual shares the address.
    let again = namer.lookup(&path("/web/api/v1"));
    assert!(again.same_source(&tree));
    let mut other = namer.lookup(&path("/web"));
    let other_web = leaf(&mut other).await;
    assert!(!other.same_source(&tree));
    assert!(other_web.addr.same_source(&web.addr));
    assert_eq!(other_web.residual, Path::empty());

    write(&dir, "web", "127.0.0.3 9090\n");
    until_addrs(&mut addr, &["127.0.0.3:9090"]).await;
    // An edit changes the address, not the tree.
    assert_eq!(bound(&tree.load()), Some(&web));
    assert!(bound(&tree.load()).unwrap().addr.same_source(&web.addr));
    assert_eq!(namer.watched_count(), 1);
}

#[tokio::test]
async fn reading_files_does_not_trigger_more_reads() {
    // inotify reports opens and reads too, ours included; they must not
    // start another read.
    let dir = TempDir::new().unwrap();
    write(&dir, "web", "127.0.0.1 8080\n");
    let namer = namer(&dir);
    let mut tree = namer.lookup(&path("/web"));
    let mut addr = leaf(&mut tree).await.addr;
    until_addrs(&mut addr, &["127.0.0.1:8080"]).await;
    // Nothing to wait for: give a read loop time to show itself.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reads = namer.inner.reads.load(std::sync::atomic::Ordering::Relaxed);
    assert!(reads <= 2, "read {reads} times");
}

#[tokio::test]
async fn an_edit_re_reads_only_the_file_it_names() {
    let dir = TempDir::new().unwrap();
    for i in 0..50 {
        write(&dir, &format!("svc{i}"), "127.0.0.1 8080\n");
    }
    let namer = namer(&dir);
    let mut held = Vec::new();
    for i in 0..50 {
        let mut tree = namer.lookup(&path(&format!("/svc{i}")));
        let addr = leaf(&mut tree).await.addr;
        held.push((tree, addr));
    }
    until_addrs(&mut held[7].1, &["127.0.0.1:8080"]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = namer.inner.reads.load(std::sync::atomic::Ordering::Relaxed);

    // Written the way most tools do: a temporary file renamed over it.
    write(&dir, ".svc7.tmp", "127.0.0.2 8080\n");
    std::fs::rename(dir.path().join(".svc7.tmp"), dir.path().join("svc7")).unwrap();
    until_addrs(&mut held[7].1, &["127.0.0.2:8080"]).await;
    let reads = namer.inner.reads.load(std::sync::atomic::Ordering::Relaxed) - before;
    assert!(reads <= 2, "one edit re-read {reads} of 50 files");
}

#[tokio::test]
async fn a_file_that_is_a_symlink_follows_edits_of_its_target() {
    let dir = TempDir::new().unwrap();
    write(&dir, "web-v2", "127.0.0.1 8080\n");
    symlink("web-v2", dir.path().join("web")).unwrap();
    let namer = namer(&dir);
    let mut tree = namer.lookup(&path("/web"));
    let mut addr = leaf(&mut tree).await.addr;
    until_addrs(&mut addr, &["127.0.0.1:8080"]).await;

    // Only `web-v2` is named by the event; nobody looked it up.
    write(&dir, "web-v2", "127.0.0.5 8080\n");
    until_addrs(&mut addr, &["127.0.0.5:8080"]).await;
}

#[tokio::test]
async fn follows_editors_that_rename_a_new_file_over_the_old() {
    let dir = TempDir::new().unwrap();
    write(&dir, "web", "127.0.0.1 8080\n");
    let namer = namer(&dir);
    let mut tree = namer.lookup(&path("/web"));
    let mut addr = leaf(&mut tree).await.addr;
    until_addrs(&mut addr, &["127.0.0.1:8080"]).await;

    write(&dir, ".web.swp", "127.0.0.2 8080\n127.0.0.3 8080\n");
    std::fs::rename(dir.path().join(".web.swp"), dir.path().join("web")).unwrap();
    until_addrs(&mut addr, &["127.0.0.2:8080", "127.0.0.3:8080"]).await;
    assert!(bound(&tree.load()).is_some());
}

#[tokio::test]
async fn follows_a_configmap_data_symlink_swap() {
    // The layout the kubelet gives a ConfigMap volume.
    let dir = TempDir::new().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("..2024_01_01_00_00_00.1")).unwrap();
    std::fs::write(root.join("..2024_01_01_00_00_00.1/web"), "127.0.0.1 8080\n").unwrap();
    symlink("..2024_01_01_00_00_00.1", root.join("..data")).unwrap();
    symlink("..data/web", root.join("web")).unwrap();
    let namer = namer(&dir);
    let mut tree = namer.lookup(&path("/web"));
    let mut addr = leaf(&mut tree).await.addr;
    until_addrs(&mut addr, &["127.0.0.1:8080"]).await;

    // An update: a new timestamped dir, a new symlink renamed over `..data`.
    std::fs::create_dir(root.join("..2024_01_02_00_00_00.2")).unwrap();
    std::fs::write(root.join("..2024_01_02_00_00_00.2/web"), "127.0.0.9 9999\n").unwrap();
    symlink("..2024_01_02_00_00_00.2", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    std::fs::remove_dir_all(root.join("..2024_01_01_00_00_00.1")).unwrap();
    until_addrs(&mut addr, &["127.0.0.9:9999"]).await;
    assert!(bound(&tree.load()).is_some());
}

#[tokio::test]
async fn a_malformed_edit_keeps_the_last_good_endpoints() {
    let dir = TempDir::new().unwrap();
    write(&dir, "web", "127.0.0.1 8080\n");
    write(&dir, "marker", "127.0.0.1 1\n");
    let namer = namer(&dir);
    let mut web_tree = namer.lookup(&path("/web"));
    let mut web = leaf(&mut web_tree).await.addr;
    until_addrs(&mut web, &["127.0.0.1:8080"]).await;
    let mut marker_tree = namer.lookup(&path("/marker"));
    let mut marker = leaf(&mut marker_tree).await.addr;
    until_addrs(&mut marker, &["127.0.0.1:1"]).await;

    write(&dir, "web", "127.0.0.2 8080\n127.0.0.3 http\n");
    // Events are handled in order, so once the later marker edit is seen,
    // the bad web file has been read too.
    write(&dir, "marker", "127.0.0.1 2\n");
    until_addrs(&mut marker, &["127.0.0.1:2"]).await;
    assert_eq!(addrs(&web.load()), Some(sockets(&["127.0.0.1:8080"])));

    write(&dir, "web", "127.0.0.2 8080\n");
    until_addrs(&mut web, &["127.0.0.2:8080"]).await;
}

#[tokio::test]
async fn a_malformed_first_read_fails_naming_file_and_line() {
    let dir = TempDir::new().unwrap();
    write(&dir, "web", "# ok\n127.0.0.1 8080\n127.0.0.2\n");
    let namer = namer(&dir);
    let mut tree = namer.lookup(&path("/web"));
    let mut addr = leaf(&mut tree).await.addr;
    let failed = until(&mut addr, |a| matches!(a, Addr::Failed(_))).await;
    let Addr::Failed(why) = &*failed else {
        unreachable!()
    };
    assert!(
        why.contains("web:3") && why.contains("missing port"),
        "{why}"
    );
}

#[tokio::test]
async fn a_deleted_file_turns_negative_and_a_new_one_binds() {
    let dir = TempDir::new().unwrap();
    let namer = namer(&dir);
    let mut tree = namer.lookup(&path("/web/x"));
    until(&mut tree, |t| *t == Activity::Ok(NameTree::Neg)).await;

    write(&dir, "web", "127.0.0.1 8080\n");
    let mut addr = leaf(&mut tree).await.addr;
    until_addrs(&mut addr, &["127.0.0.1:8080"]).await;

    std::fs::remove_file(dir.path().join("web")).unwrap();
    until(&mut tree, |t| *t == Activity::Ok(NameTree::Neg)).await;
    until(&mut addr, |a| *a == Addr::Neg).await;

    // Back again, malformed: with no good set since the delete, it fails.
    write(&dir, "web", "127.0.0.1 0\n");
    leaf(&mut tree).await;
    until(
        &mut addr,
        |a| matches!(a, Addr::Failed(why) if why.contains("web:1")),
    )
    .await;
}

#[tokio::test]
async fn an_oversized_file_is_refused() {
    let dir = TempDir::new().unwrap();
    // Valid text (all comments) that is over the limit.
    let big = "# padding padding padding padding padding padding padding pad\n".repeat(9000);
    assert!(big.len() as u64 > MAX_FILE_BYTES);
    write(&dir, "web", &big);
    let namer = namer(&dir);
    let mut tree = namer.lookup(&path("/web"));
    let mut addr = leaf(&mut tree).await.addr;
    let failed = until(&mut addr, |a| matches!(a, Addr::Failed(_))).await;
    let Addr::Failed(why) = &*failed else {
        unreachable!()
    };
    assert!(why.contains("web") && why.contains("limit"), "{why}");

    // A file just under the limit is read.
    write(&dir, "web", &format!("127.0.0.1 80\n{}", &big[..400_000]));
    until_addrs(&mut addr, &["127.0.0.1:80"]).await;
}

#[tokio::test]
async fn host_names_are_resolved() {
    let dir = TempDir::new().unwrap();
    write(&dir, "web", "localhost 8080 * 3\n");
    let namer = namer(&dir);
    let mut tree = namer.lookup(&path("/web"));
    let mut addr = leaf(&mut tree).await.addr;
    let resolved = until(&mut addr, |a| matches!(a, Addr::Bound(_))).await;
    let Addr::Bound(set) = &*resolved else {
        unreachable!()
    };
    assert!(
        set.endpoints()
            .iter()
            .all(|e| e.addr.ip().is_loopback() && e.addr.port() == 8080 && e.weight == 3.0)
    );
    assert!(!set.is_empty());

    write(&dir, "web", "127.0.0.7 1\n");
    until_addrs(&mut addr, &["127.0.0.7:1"]).await;
}

#[tokio::test]
async fn a_name_that_does_not_resolve_fails_naming_file_and_line() {
    let dir = TempDir::new().unwrap();
    // `.invalid` never resolves (RFC 6761); a resolver that cannot reach
    // its servers may take a while to say so.
    write(&dir, "web", "127.0.0.1 80\nno-such-host.invalid 8080\n");
    let namer = namer(&dir);
    let mut tree = namer.lookup(&path("/web"));
    let mut addr = leaf(&mut tree).await.addr;
    let slow_dns = Duration::from_secs(30);
    let failed = until_within(slow_dns, &mut addr, |a| matches!(a, Addr::Failed(_))).await;
    let Addr::Failed(why) = &*failed else {
        unreachable!()
    };
    assert!(
        why.contains("web:2") && why.contains("no-such-host.invalid"),
        "{why}"
    );
}

#[tokio::test]
async fn dropping_every_handle_stops_watching_and_a_new_lookup_restarts() {
    let dir = TempDir::new().unwrap();
    write(&dir, "web", "127.0.0.1 8080\n");
    write(&dir, "users", "127.0.0.1 9090\n");
    let namer = namer(&dir);
    assert!(!namer.is_watching());
    let mut web = namer.lookup(&path("/web"));
    let web_again = namer.lookup(&path("/web"));
    let mut web_api = namer.lookup(&path("/web/api"));
    let mut users = namer.lookup(&path("/users"));
    let mut addr = leaf(&mut web).await.addr;
    leaf(&mut web_api).await;
    leaf(&mut users).await;
    assert_eq!(namer.watched_count(), 2);
    assert!(namer.is_watching());

    drop((web, web_again, web_api, users));
    // `web` stays watched while its address is held.
    until_watched(&namer, 1).await;
    write(&dir, "web", "127.0.0.2 8080\n");
    until_addrs(&mut addr, &["127.0.0.2:8080"]).await;
    assert_eq!(namer.watched_count(), 1);

    drop(addr);
    until_watched(&namer, 0).await;
    assert!(!namer.is_watching());

    // A later lookup watches again.
    let mut web = namer.lookup(&path("/web"));
    let mut addr = leaf(&mut web).await.addr;
    until_addrs(&mut addr, &["127.0.0.2:8080"]).await;
    write(&dir, "web", "127.0.0.3 8080\n");
    until_addrs(&mut addr, &["127.0.0.3:8080"]).await;
    drop((web, addr));
    until_watched(&namer, 0).await;
}

#[tokio::test]
async fn paths_that_name_no_file_are_negative() {
    let dir = TempDir::new().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    write(&dir, "sub/web", "127.0.0.1 80\n");
    let namer = namer(&dir);
    let neg = Activity::Ok(NameTree::Neg);
    let odd = [
        Path::empty(),
        path("/.."),
        path("/."),
        Path::from_labels(vec![Label::new("sub/web").unwrap()]),
        Path::from_labels(vec![Label::new(b"\xff").unwrap()]),
    ];
    for p in odd {
        assert_eq!(*namer.lookup(&p).load(), neg, "{p}");
    }
    // A directory is not a service.
    let mut sub = namer.lookup(&path("/sub/web"));
    until(&mut sub, |t| *t == neg).await;
}

#[test]
fn a_lookup_outside_a_runtime_fails_without_panicking() {
    let dir = TempDir::new().unwrap();
    let tree = namer(&dir).lookup(&path("/web"));
    assert!(matches!(&*tree.load(), Activity::Failed(_)));
}

#[test]
fn the_root_dir_must_be_a_readable_directory() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("missing");
    let err = FsNamer::new(path("/#/io.l5d.fs"), missing.clone())
        .err()
        .unwrap();
    assert!(
        err.to_string().contains(&*missing.to_string_lossy()),
        "{err}"
    );
    write(&dir, "file", "");
    assert!(FsNamer::new(path("/#/io.l5d.fs"), dir.path().join("file")).is_err());
}

#[test]
fn the_config_takes_root_dir_only() {
    let config: FsConfig = serde_json::from_str(r#"{"rootDir": "/etc/disco"}"#).unwrap();
    assert_eq!(config.root_dir, std::path::PathBuf::from("/etc/disco"));
    assert!(serde_json::from_str::<FsConfig>(r#"{"rootDir": "/x", "root": "/y"}"#).is_err());
    assert!(serde_json::from_str::<FsConfig>(r#"{}"#).is_err());
}

#[tokio::test]
async fn a_vanished_root_dir_keeps_the_last_good_endpoints() {
    let dir = TempDir::new().unwrap();
    let root = dir.path().join("disco");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("web"), "127.0.0.1 8080\n").unwrap();
    let namer = FsNamer::new(path("/#/io.l5d.fs"), root.clone()).unwrap();
    let mut tree = namer.lookup(&path("/web"));
    let mut web = leaf(&mut tree).await.addr;
    until_addrs(&mut web, &["127.0.0.1:8080"]).await;

    // The directory goes away (an unmounted volume, a botched deploy).
    std::fs::rename(&root, dir.path().join("disco.old")).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        bound(&tree.load()).is_some(),
        "the name turned negative: {:?}",
        tree.load()
    );
    assert_eq!(addrs(&web.load()), Some(sockets(&["127.0.0.1:8080"])));
}
