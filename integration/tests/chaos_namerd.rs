//! Chaos for namerd's dtab stores, through the real `namerd` binary and its
//! HTTP API: SIGKILL under concurrent compare-and-set writers on the disk
//! store, etcd and ZooKeeper; etcd and ZooKeeper killed and restarted under
//! a running namerd; two namerds sharing one etcd or ZooKeeper, and a
//! router whose namerd `dst` names both, under traffic while either is
//! killed.
//!
//! These are the short runs; `cargo run --release -p examples --bin chaos`
//! runs the same for minutes. What the counter writers check is in
//! `integration::chaos::counter`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use integration::chaos::client::{self, Client, Watch};
use integration::chaos::counter::{self, Swarm, Tally};
use integration::chaos::namerd::{Backend, Namerd, Store};
use integration::chaos::{RECOVERY_LIMIT, kill_and_restart};
use integration::process::{Process, binary, free_port, http};

/// Concurrent writers in the kill runs.
const WRITERS: usize = 32;

/// Increments to see acknowledged before the first kill and after each
/// restart, so that every phase carries writes.
const ACKS_PER_PHASE: u64 = 20;

/// How long a change through one namerd may take to reach a watcher on
/// another.
const PROPAGATION_LIMIT: Duration = Duration::from_secs(1);

fn start_namerd(backend: &Backend, prefix: &str) -> Namerd {
    tokio::task::block_in_place(|| {
        Namerd::start(&binary("namerd", "namerd"), &backend.storage_yaml(prefix))
    })
}

/// Whether a watch line (the dtab as JSON) holds the counter `value`.
fn holds(line: &str, value: u64) -> bool {
    line.contains(&format!("\"/#/n{value}\""))
}

/// The counter a watch line (the dtab as JSON) holds.
fn counter_in(line: &str) -> Option<u64> {
    let (_, rest) = line.split_once("\"/#/n")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The counters a watch shows until it shows `value`, which must come
/// within `limit`.
async fn follow_to(watch: &mut Watch, value: u64, limit: Duration) -> Vec<u64> {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    while seen.last() != Some(&value) {
        let left = deadline.saturating_duration_since(Instant::now());
        match watch.next(left).await {
            Ok(Some(line)) => seen.push(counter_in(&line).unwrap_or_else(|| panic!("{line}"))),
            other => {
                panic!("the watch did not reach {value} within {limit:?} ({other:?}): {seen:?}")
            }
        }
    }
    seen
}

/// Stops the writers and holds what they were told against the counter
/// namerd serves at the end.
async fn finish(swarm: Swarm, namerd: &Namerd, ns: &str) -> Tally {
    let logs = swarm.stop().await;
    let (value, writer) = counter::read(namerd.api(), ns, RECOVERY_LIMIT)
        .await
        .unwrap();
    Tally::new(&logs, value, &writer)
}

/// Writers increment the counter while namerd is killed with SIGKILL
/// twice and restarted on the same store; no acknowledged increment may be
/// lost, none acknowledged twice, and nothing refused may have happened.
async fn kill_9_under_cas_writers(store: Store) {
    let Some(backend) = Backend::start(store) else {
        return;
    };
    let ns = "chaos";
    let mut namerd = start_namerd(&backend, "/chaos-kill");
    counter::reset(namerd.api(), ns, RECOVERY_LIMIT)
        .await
        .unwrap();
    let swarm = Swarm::start(&[namerd.api()], ns, WRITERS);
    assert!(
        swarm
            .wait_acked(0, ACKS_PER_PHASE, RECOVERY_LIMIT)
            .await
            .is_some(),
        "the writers make no progress; namerd's log:\n{}",
        namerd.log()
    );
    let mut reports = Vec::new();
    for _ in 0..2 {
        let report = kill_and_restart(&mut namerd, &swarm, ns, Duration::from_millis(300))
            .await
            .unwrap();
        let acked = swarm.acked();
        assert!(
            swarm
                .wait_acked(acked, ACKS_PER_PHASE, RECOVERY_LIMIT)
                .await
                .is_some(),
            "the writers stall after a restart; namerd's log:\n{}",
            namerd.log()
        );
        reports.push(report);
    }
    let tally = finish(swarm, &namerd, ns).await;
    eprintln!("{}: {reports:?}\n{tally:?}", store.name());
    if let Err(e) = tally.check() {
        panic!("{}: {e}", store.name());
    }
    assert_eq!(tally.lost_increments(), 0);
    assert!(tally.acked >= 3 * ACKS_PER_PHASE, "{tally:?}");
    // The kills hit the writers: some requests failed or never left.
    assert!(
        tally.unknown + tally.not_sent + tally.failed_reads > 0,
        "{tally:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_cas_writers_keeps_every_acknowledged_write_on_the_disk_store() {
    kill_9_under_cas_writers(Store::Disk).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_cas_writers_keeps_every_acknowledged_write_on_etcd() {
    kill_9_under_cas_writers(Store::Etcd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_cas_writers_keeps_every_acknowledged_write_on_zookeeper() {
    kill_9_under_cas_writers(Store::ZooKeeper).await;
}

/// The backend's server is killed and started again on the same port and
/// data under a running namerd: during the outage namerd answers reads
/// with 500 and keeps its watchers' streams open; afterwards it writes
/// again by itself, and the open watch sees the next change.
async fn backend_restarted_under_namerd(store: Store) {
    let Some(mut backend) = Backend::start(store) else {
        return;
    };
    let ns = "outage";
    let namerd = start_namerd(&backend, "/chaos-outage");
    counter::reset(namerd.api(), ns, RECOVERY_LIMIT)
        .await
        .unwrap();
    let mut watch = Watch::open(namerd.api(), ns).await.unwrap();
    watch
        .wait_for(Duration::from_secs(5), |l| holds(l, 0))
        .await
        .unwrap();

    let stopped = Instant::now();
    tokio::task::block_in_place(|| backend.stop());
    let mut client = Client::new(namerd.api());
    let started = Instant::now();
    let answer = client::get_dtab(&mut client, ns).await.unwrap();
    assert_eq!(answer.status, 500, "a read during the outage: {answer:?}");
    assert!(
        started.elapsed() <= Duration::from_secs(6),
        "a read during the outage took {:?}",
        started.elapsed()
    );
    // The stream stays open and sends nothing: the last value holds.
    assert_eq!(watch.next(Duration::from_millis(300)).await, Ok(None));
    if let Some(rest) = Duration::from_secs(1).checked_sub(stopped.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    tokio::task::block_in_place(|| backend.restart());

    let back = Instant::now();
    loop {
        match client::put_dtab(&mut client, ns, &counter::dtab(1, "after"), None).await {
            Ok(answer) if answer.status == 204 => break,
            _ if back.elapsed() < RECOVERY_LIMIT => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!(
                "namerd does not write again after the restart: {other:?}; its log:\n{}",
                namerd.log()
            ),
        }
    }
    let writable = back.elapsed();
    // The store's watches come from the backend, not from namerd's own
    // writes: this line shows the backend watch was set up again.
    watch
        .wait_for(Duration::from_secs(5), |l| holds(l, 1))
        .await
        .unwrap_or_else(|e| panic!("{e}; namerd's log:\n{}", namerd.log()));
    eprintln!(
        "{}: writes again {writable:?} after the restart, watch {:?}",
        store.name(),
        back.elapsed()
    );
    assert_eq!(
        counter::read(namerd.api(), ns, RECOVERY_LIMIT).await,
        Ok((1, "after".to_string()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_restarted_under_namerd_recovers_and_the_watch_sees_the_next_change() {
    backend_restarted_under_namerd(Store::Etcd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_restarted_under_namerd_recovers_and_the_watch_sees_the_next_change() {
    backend_restarted_under_namerd(Store::ZooKeeper).await;
}

/// Two namerds on one etcd or ZooKeeper: a write through either reaches a
/// watcher on the other within a second, and compare-and-set writers
/// spread over both never overwrite each other.
async fn two_namerds_share_one_backend(store: Store) {
    let Some(backend) = Backend::start(store) else {
        return;
    };
    let ns = "shared";
    let a = start_namerd(&backend, "/chaos-shared");
    let b = start_namerd(&backend, "/chaos-shared");
    counter::reset(a.api(), ns, RECOVERY_LIMIT).await.unwrap();
    let mut watch_a = Watch::open(a.api(), ns).await.unwrap();
    let mut watch_b = Watch::open(b.api(), ns).await.unwrap();
    for watch in [&mut watch_a, &mut watch_b] {
        watch
            .wait_for(Duration::from_secs(5), |l| holds(l, 0))
            .await
            .unwrap();
    }
    let mut slowest = Duration::ZERO;
    for value in 1..=4 {
        let (from, to, watch) = if value % 2 == 1 {
            (&a, "b", &mut watch_b)
        } else {
            (&b, "a", &mut watch_a)
        };
        let mut client = Client::new(from.api());
        let sent = Instant::now();
        let answer = client::put_dtab(&mut client, ns, &counter::dtab(value, "put"), None)
            .await
            .unwrap();
        assert_eq!(answer.status, 204, "{answer:?}");
        watch
            .wait_for(PROPAGATION_LIMIT, |l| holds(l, value))
            .await
            .unwrap_or_else(|e| panic!("write {value} did not reach namerd {to}: {e}"));
        slowest = slowest.max(sent.elapsed());
    }
    eprintln!(
        "{}: slowest write to the other namerd's watch: {slowest:?}",
        store.name()
    );

    counter::reset(a.api(), ns, RECOVERY_LIMIT).await.unwrap();
    for watch in [&mut watch_a, &mut watch_b] {
        follow_to(watch, 0, PROPAGATION_LIMIT).await;
    }
    let swarm = Swarm::start(&[a.api(), b.api()], ns, 16);
    assert!(
        swarm
            .wait_acked(0, 2 * ACKS_PER_PHASE, RECOVERY_LIMIT)
            .await
            .is_some()
    );
    let tally = finish(swarm, &b, ns).await;
    tally.check().unwrap();
    assert_eq!(tally.unknown, 0, "nothing failed, so nothing is unknown");
    assert_eq!(tally.final_value, tally.acked, "{tally:?}");
    // Both watches followed the writes in order and reached the last.
    for watch in [&mut watch_a, &mut watch_b] {
        let seen = follow_to(watch, tally.final_value, PROPAGATION_LIMIT).await;
        assert!(seen.is_sorted(), "a watch went backwards: {seen:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_namerds_on_one_etcd_see_each_others_writes_within_a_second() {
    two_namerds_share_one_backend(Store::Etcd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_namerds_on_one_zookeeper_see_each_others_writes_within_a_second() {
    two_namerds_share_one_backend(Store::ZooKeeper).await;
}

/// A `flaky_backend` answering 200 and its name on a free port.
fn named_backend(name: &str, dir: &std::path::Path) -> (Process, u16) {
    let port = free_port();
    let mut process = Process::start(
        &binary("integration", "flaky_backend"),
        &[&port.to_string(), "200", "0", name],
        dir,
    );
    process.wait_listening(([127, 0, 0, 1], port).into());
    (process, port)
}

/// Routes `web` through namerd's dtab `default`.
fn web_dtab(port: u16) -> String {
    format!("/svc/web => /$/inet/127.0.0.1/{port}")
}

/// Puts the `default` dtab through `namerd`, retrying while its store
/// reconnects after a kill.
async fn put_web(namerd: &Namerd, port: u16) {
    let mut client = Client::new(namerd.api());
    let deadline = Instant::now() + RECOVERY_LIMIT;
    loop {
        match client::put_dtab(&mut client, "default", &web_dtab(port), None).await {
            Ok(answer) if answer.status == 204 => return,
            other if Instant::now() > deadline => panic!("cannot put the dtab: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Waits until the router answers `web` from `name`; how long it took.
fn wait_routed(router: std::net::SocketAddr, name: &str, log: impl Fn() -> String) -> Duration {
    let started = Instant::now();
    loop {
        let (status, body) = http(router, "GET", "/", "web", &[], "");
        if status == 200 && body.trim() == name {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "web still answers {status} {body:?}:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A router whose `io.l5d.namerd.http` `dst` is a name listing two namerds
/// on one backend. Under steady traffic, namerd `a` is killed and a change
/// is made through `b`; then `a` comes back, `b` is killed, and a change is
/// made through `a`. Every request succeeds, and the router follows each
/// change through whichever namerd is left.
async fn a_router_on_two_namerds_survives_either_killed(store: Store) {
    let Some(backend) = Backend::start(store) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_v1, v1) = named_backend("v1", dir.path());
    let (_v2, v2) = named_backend("v2", dir.path());
    let mut a = start_namerd(&backend, "/chaos-router");
    let mut b = start_namerd(&backend, "/chaos-router");
    put_web(&a, v1).await;

    // The router finds its namerds through a file of its own fs namer.
    let disco = dir.path().join("disco");
    std::fs::create_dir_all(&disco).unwrap();
    std::fs::write(
        disco.join("namerds"),
        format!(
            "127.0.0.1 {}\n127.0.0.1 {}\n",
            a.api().port(),
            b.api().port()
        ),
    )
    .unwrap();
    let router_port = free_port();
    let config = dir.path().join("router.yaml");
    std::fs::write(
        &config,
        format!(
            "admin:\n  port: {}\nnamers:\n- kind: io.l5d.fs\n  rootDir: {}\nrouters:\n\
             - protocol: http\n  interpreter:\n    kind: io.l5d.namerd.http\n    \
             dst: /#/io.l5d.fs/namerds\n    namespace: default\n    \
             retry: {{baseSeconds: 0.05, maxSeconds: 0.5}}\n  servers:\n  - port: {router_port}\n",
            free_port(),
            disco.display()
        ),
    )
    .unwrap();
    let router_addr: std::net::SocketAddr = ([127, 0, 0, 1], router_port).into();
    let mut router = Process::start(
        &binary("router", "router"),
        &[config.to_str().unwrap()],
        dir.path(),
    );
    router.wait_listening(router_addr);
    let router = std::sync::Arc::new(router);
    let log = || router.log();
    tokio::task::block_in_place(|| wait_routed(router_addr, "v1", log));

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Answers so far, across the threads.
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let traffic: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            let answered = answered.clone();
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0u64, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match http(router_addr, "GET", "/", "web", &[], "") {
                        (200, _) => {
                            ok += 1;
                            answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        (status, body) => failed.push(format!("{status} {body}")),
                    }
                }
                (ok, failed)
            })
        })
        .collect();

    a.kill();
    put_web(&b, v2).await;
    let first = tokio::task::block_in_place(|| wait_routed(router_addr, "v2", log));
    a.restart();
    b.kill();
    put_web(&a, v1).await;
    let second = tokio::task::block_in_place(|| wait_routed(router_addr, "v1", log));
    eprintln!(
        "{}: the router followed a change through namerd b in {first:?} with a killed, \
         through a in {second:?} with b killed",
        store.name()
    );

    // Both switches can take only milliseconds; on a busy machine the
    // traffic then has answered few requests. It runs on a little, so that
    // the count says the router kept serving, not how fast the machine is.
    let deadline = Instant::now() + Duration::from_secs(10);
    while answered.load(std::sync::atomic::Ordering::Relaxed) <= 100 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failed) = (0, Vec::new());
    for thread in traffic {
        let (o, f) = thread.join().unwrap();
        ok += o;
        failed.extend(f);
    }
    assert!(ok > 100, "only {ok} requests were answered");
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}\n{}",
        failed.len(),
        ok + failed.len() as u64,
        &failed[..failed.len().min(5)],
        router.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_on_two_namerds_sharing_etcd_routes_on_with_either_killed() {
    a_router_on_two_namerds_survives_either_killed(Store::Etcd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_on_two_namerds_sharing_zookeeper_routes_on_with_either_killed() {
    a_router_on_two_namerds_survives_either_killed(Store::ZooKeeper).await;
}
