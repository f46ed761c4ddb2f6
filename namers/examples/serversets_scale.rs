//! Measures `io.l5d.serversets` at scale against a real ZooKeeper: 1,000
//! serversets of 10 members each, all bound live through the interpreter.
//! Prints the process's memory, the time to bind everything, and how long a
//! znode change takes to reach a live binding.
//!
//! Run with `cargo run --release -p namers --example serversets_scale`
//! (`SETS` and `MEMBERS` change the shape).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use dtab::{Dtab, NameTree, Path};
use futures_util::future::join_all;
use integration::servers::ZooKeeper;
use namers::serversets::{HostPort, ServersetsNamer, ServiceInstance, Status};
use namers::system::SystemNamers;
use namers::system::inet::InetResolver;
use namers::{Activity, Addr, Bound, Interpreter, Live, NameInterpreter};
use zookeeper_client as zk;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn member(set: usize, i: usize) -> String {
    ServiceInstance {
        service_endpoint: Some(HostPort {
            host: format!("10.{}.{}.{}", set / 250, set % 250, i + 1),
            port: 8080,
        }),
        additional_endpoints: Default::default(),
        status: Status::Alive,
        shard: Some(i as i32),
    }
    .to_json()
}

fn size(addr: &Addr) -> usize {
    match addr {
        Addr::Bound(set) => set.endpoints().len(),
        _ => 0,
    }
}

async fn wait_size(addr: &mut Live<Addr>, want: usize) {
    loop {
        addr.mark_seen();
        if size(&addr.load()) == want {
            return;
        }
        addr.changed().await;
    }
}

fn percentiles(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    println!(
        "{name}: n={} p50={:.2?} p90={:.2?} p99={:.2?} max={:.2?}",
        samples.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sets = env("SETS", 1000);
    let members = env("MEMBERS", 10);
    let Some(server) = ZooKeeper::start() else {
        eprintln!("ZooKeeper is not installed; nothing measured");
        return;
    };
    let writer = zk::Client::connector()
        .with_session_timeout(Duration::from_secs(30))
        .connect(&server.connect_string())
        .await
        .unwrap();
    let dir = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let ephemeral = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
    let started = Instant::now();
    writer.mkdir("/scale", &dir).await.unwrap();
    for chunk in (0..sets).collect::<Vec<_>>().chunks(100) {
        join_all(chunk.iter().map(|s| {
            let writer = &writer;
            let (dir, ephemeral) = (&dir, &ephemeral);
            async move {
                let set = format!("/scale/s{s}");
                writer.create(&set, b"", dir).await.unwrap();
                let prefix = format!("{set}/member_");
                let data: Vec<String> = (0..members).map(|i| member(*s, i)).collect();
                join_all(
                    data.iter()
                        .map(|d| writer.create(&prefix, d.as_bytes(), ephemeral)),
                )
                .await
                .into_iter()
                .for_each(|r| {
                    r.unwrap();
                });
            }
        }))
        .await;
    }
    println!(
        "wrote {sets} serversets x {members} members in {:.2?}",
        started.elapsed()
    );

    let rss_before = rss_kib();
    let inet = Arc::new(InetResolver::system().unwrap());
    let namer = ServersetsNamer::new(
        Path::read("/#/io.l5d.serversets").unwrap(),
        server.connect_string(),
        Duration::from_secs(10),
        inet.clone(),
    );
    let interpreter = Interpreter::new(
        vec![(Path::read("/#/io.l5d.serversets").unwrap(), namer.clone())],
        SystemNamers::new(inet),
    );
    let dtab = Dtab::read("/svc=>/#/io.l5d.serversets/scale").unwrap();
    let started = Instant::now();
    let bindings: Vec<_> = (0..sets)
        .map(|s| interpreter.bind(&dtab, &Path::read(&format!("/svc/s{s}")).unwrap()))
        .collect();
    let mut addrs: Vec<Live<Addr>> = Vec::new();
    for binding in &bindings {
        let mut binding = binding.clone();
        let bound: Bound = loop {
            binding.mark_seen();
            if let Activity::Ok(NameTree::Leaf(b)) = &*binding.load() {
                break b.clone();
            }
            binding.changed().await;
        };
        let mut addr = bound.addr.clone();
        wait_size(&mut addr, members).await;
        addrs.push(addr);
    }
    let bound_in = started.elapsed();
    let rss_after = rss_kib();
    println!(
        "bound {sets} names ({} endpoints) in {bound_in:.2?}; {} serversets watched",
        sets * members,
        namer.watched_count()
    );
    println!(
        "RSS: {rss_before} KiB before the namer, {rss_after} KiB with everything bound \
         (+{} KiB, {:.1} KiB per serverset)",
        rss_after.saturating_sub(rss_before),
        rss_after.saturating_sub(rss_before) as f64 / sets as f64
    );

    // One change at a time: a member joins, then leaves, then its status
    // changes; timed from just before the write to the binding seeing it.
    let samples = 200.min(sets);
    let (mut joins, mut leaves, mut deaths) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..samples {
        let s = (n * 7919) % sets;
        let addr = &mut addrs[s];
        let prefix = format!("/scale/s{s}/member_");
        let data = member(s, members + 1);
        let t = Instant::now();
        let (_, seq) = writer
            .create(&prefix, data.as_bytes(), &ephemeral)
            .await
            .unwrap();
        wait_size(addr, members + 1).await;
        joins.push(t.elapsed());
        let path = format!("{prefix}{seq}");
        let t = Instant::now();
        writer.delete(&path, None).await.unwrap();
        wait_size(addr, members).await;
        leaves.push(t.elapsed());
        let victim = format!("/scale/s{s}/member_{:010}", 0);
        let dead = ServiceInstance {
            status: Status::Dead,
            ..namers::serversets::parse_member(&writer.get_data(&victim).await.unwrap().0).unwrap()
        };
        let t = Instant::now();
        writer
            .set_data(&victim, dead.to_json().as_bytes(), None)
            .await
            .unwrap();
        wait_size(addr, members - 1).await;
        deaths.push(t.elapsed());
        let alive = ServiceInstance {
            status: Status::Alive,
            ..dead
        };
        writer
            .set_data(&victim, alive.to_json().as_bytes(), None)
            .await
            .unwrap();
        wait_size(addr, members).await;
    }
    percentiles("member joins   -> binding", joins);
    percentiles("member leaves  -> binding", leaves);
    percentiles("status DEAD    -> binding", deaths);

    // A burst: one member joins every serverset at once.
    let started = Instant::now();
    let created = join_all((0..sets).map(|s| {
        let writer = &writer;
        let ephemeral = &ephemeral;
        async move {
            let prefix = format!("/scale/s{s}/member_");
            writer
                .create(&prefix, member(s, members + 2).as_bytes(), ephemeral)
                .await
                .unwrap()
        }
    }))
    .await;
    let written = started.elapsed();
    for addr in &mut addrs {
        wait_size(addr, members + 1).await;
    }
    println!(
        "burst: {} joins written in {written:.2?}, all seen by the bindings {:.2?} after the first write",
        created.len(),
        started.elapsed()
    );
    println!("RSS at the end: {} KiB", rss_kib());
    drop((bindings, addrs));
}
