//! `consul`: namerd following thousands of Consul services for a router
//! that watches every one of them.
//!
//! Consul is the in-process fake of `integration::consul` (no Consul can
//! be installed here): services `svc0` … with `instances` instances each,
//! instance j on node `node<j>` at backend j (every backend answers `a`),
//! and one more service, `hot`, with a single instance. namerd binds
//! `/svc => /#/io.l5d.consul/dc1` with one blocking query per service; the
//! fake answers them in this process, so its CPU is not namerd's. One
//! router (`io.l5d.namerd.http`) is sent a request for every service.
//!
//! Updates: an instance of a service moves to another backend's port
//! (one catalog write each), with nobody asking the router, for the CPU
//! figures; then `hot` flips between backend `a` and backend `b`, and the
//! router is asked until it answers from the new one.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use examples::harness::Backend;
use examples::load::keepalive::KeepAlive;
use examples::load::namerd::{
    CpuMeter, InterpreterKind, Namerd, peak_rss_mib, rss_mib, spawn_router,
};
use examples::load::procs::WorkDir;
use integration::consul::{FakeConsul, Instance};
use serde_json::json;

use crate::observe;

/// How many services and instances.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Size {
    /// Services registered (and watched).
    pub(crate) services: usize,
    /// Instances of each.
    pub(crate) instances: usize,
}

/// The quiet time between two catalog writes counted for CPU.
const CPU_GAP: Duration = Duration::from_millis(250);
/// Requests in flight while the router binds every service.
const WARM_CLIENTS: usize = 4;

fn instance(service: &str, node: usize, port: u16) -> Instance {
    Instance::new(service, "127.0.0.1", port)
        .on_node(&format!("node{node}"))
        .with_id(&format!("{service}-{node}"))
}

/// Runs the scenario; returns its figures as JSON.
pub(crate) async fn run(
    work: &WorkDir,
    bin_dir: &Path,
    size: Size,
    updates: usize,
    poll: Duration,
) -> Result<serde_json::Value> {
    let Size {
        services,
        instances,
    } = size;
    println!(
        "\n## consul: {services} services x {instances} instances, all watched by one router through namerd"
    );
    let mut backends = Vec::with_capacity(instances);
    for _ in 0..instances.max(1) {
        backends.push(Backend::start("a").await?);
    }
    let b = Backend::start("b").await?;
    let port = |j: usize| backends[j % backends.len()].addr.port();
    let consul = FakeConsul::start()
        .await
        .context("starting the fake Consul")?;
    let started = Instant::now();
    for s in 0..services {
        let service = format!("svc{s}");
        for j in 0..instances {
            consul.register(&instance(&service, j, port(j)));
        }
    }
    consul.register(&instance("hot", 0, port(0)));
    println!(
        "registered {} instances in {:.1} s",
        services * instances + 1,
        started.elapsed().as_secs_f64()
    );

    let namers = format!(
        "- kind: io.l5d.consul\n  host: 127.0.0.1\n  port: {}\n",
        consul.addr().port()
    );
    let mut namerd = Namerd::start(work, bin_dir, &namers).await?;
    namerd
        .put_dtab("default", "/svc => /#/io.l5d.consul/dc1;")
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let namerd_pid = namerd.proc.pid();
    let namerd_idle = rss_mib(namerd_pid);
    let mut router = spawn_router(
        work,
        bin_dir,
        "consul-router",
        &namerd,
        InterpreterKind::Http,
        services + 1,
    )?;
    router.wait_ready().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let router_pid = router.proc.pid();
    let router_idle = rss_mib(router_pid);

    let started = Instant::now();
    let tasks: Vec<_> = (0..WARM_CLIENTS)
        .map(|c| {
            let mut client = KeepAlive::new(router.addr);
            tokio::spawn(async move {
                let hosts = (c..services)
                    .step_by(WARM_CLIENTS)
                    .map(|s| format!("svc{s}"));
                observe::warm(&mut client, hosts, "a", Duration::from_secs(300)).await
            })
        })
        .collect();
    let (mut retried, mut failed) = (0, 0);
    for task in tasks {
        let (r, f) = task.await??;
        retried += r;
        failed += f;
    }
    let mut hot = vec![KeepAlive::new(router.addr)];
    observe::warm(
        &mut hot[0],
        std::iter::once("hot".to_string()),
        "a",
        Duration::from_secs(30),
    )
    .await?;
    let warm_secs = started.elapsed().as_secs_f64();
    println!(
        "{services} services bound in {warm_secs:.1} s ({retried} needed a retry, {failed} never answered)"
    );
    let expected = 2 * (services + 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut router_watches = router.open_watches().await.unwrap_or(0.0);
    while router_watches < expected as f64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        router_watches = router.open_watches().await.unwrap_or(0.0);
    }
    let namerd_streams = namerd.open_http_streams().await.unwrap_or(f64::NAN);
    let blocking = consul.blocking_queries_in_flight();
    let namerd_rss = rss_mib(namerd_pid);
    let router_rss = rss_mib(router_pid);
    println!(
        "watches: router {router_watches:.0} of {expected}, namerd serves {namerd_streams:.0} HTTP streams, {blocking} blocking queries wait in Consul"
    );
    router.proc.check_running()?;
    namerd.proc.check_running()?;

    // Idle CPU as the baseline, then one catalog write per CPU_GAP.
    let cpu_time = CPU_GAP * updates as u32;
    let idle = (
        CpuMeter::start(vec![namerd_pid]),
        CpuMeter::start(vec![router_pid]),
    );
    tokio::time::sleep(cpu_time).await;
    let ((idle_n, idle_wall), (idle_r, _)) = (idle.0.read(), idle.1.read());
    let meters = (
        CpuMeter::start(vec![namerd_pid]),
        CpuMeter::start(vec![router_pid]),
    );
    for u in 0..updates {
        // Spread over the services; each write moves one instance.
        let s = (u * 7919) % services.max(1);
        let j = u % instances.max(1);
        consul.register(&instance(&format!("svc{s}"), j, port(j + 1 + u)));
        tokio::time::sleep(CPU_GAP).await;
    }
    let ((n_cpu, n_wall), (r_cpu, r_wall)) = (meters.0.read(), meters.1.read());
    let per_update = |cpu: f64, wall: Duration, idle_cpu: f64| {
        let extra = cpu - idle_cpu / idle_wall.as_secs_f64() * wall.as_secs_f64();
        extra.max(0.0) * 1e3 / updates.max(1) as f64
    };
    let namerd_cpu = per_update(n_cpu, n_wall, idle_n);
    let router_cpu = per_update(r_cpu, r_wall, idle_r);

    let mut rounds = Vec::new();
    for u in 0..updates {
        let (to, want) = if u % 2 == 0 {
            (b.addr.port(), "b")
        } else {
            (port(0), "a")
        };
        consul.register(&instance("hot", 0, to));
        let since = Instant::now();
        rounds.push(
            observe::until_answer(&mut hot, "hot", want, since, poll, Duration::from_secs(10))
                .await,
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after_idle = crate::fanout::idle_cpu_rate(namerd_pid).await;
    println!("namerd CPU with nothing changing, after the updates: {after_idle:.0} ms/s");
    let (by, windows, never, errors) = observe::merge(&rounds);
    let seen = observe::summary(&by);
    let window = observe::summary(&windows);
    let namerd_after = rss_mib(namerd_pid);
    let namerd_peak = peak_rss_mib(namerd_pid);
    let router_after = rss_mib(router_pid);
    router.proc.check_running()?;
    namerd.proc.check_running()?;

    println!(
        "\n| {services} Consul services x {instances} instances | namerd | router |\n|---|---|---|"
    );
    println!("| RSS idle | {namerd_idle:.1} MiB | {router_idle:.1} MiB |");
    println!("| RSS, every service watched | {namerd_rss:.1} MiB | {router_rss:.1} MiB |");
    println!(
        "| RSS after the updates (namerd peak) | {namerd_after:.1} MiB ({namerd_peak:.1}) | {router_after:.1} MiB |"
    );
    println!("| CPU per instance change | {namerd_cpu:.2} ms | {router_cpu:.2} ms |");
    println!(
        "| idle CPU | {:.1} ms/s | {:.1} ms/s |",
        idle_n / idle_wall.as_secs_f64() * 1e3,
        idle_r / idle_wall.as_secs_f64() * 1e3
    );
    println!(
        "\n`hot` moved to another backend → router routes there: {} ({} updates, {never} never seen, {errors} failed requests; window p50 {:.1} ms)",
        observe::show(seen),
        by.len(),
        window[0]
    );

    let result = json!({
        "services": services,
        "instances": instances,
        "bind_all_s": warm_secs,
        "bind_retried": retried,
        "bind_failed": failed,
        "router_watches_open": router_watches,
        "namerd_http_streams_open": namerd_streams,
        "consul_blocking_queries": blocking,
        "namerd_rss_idle_mib": namerd_idle,
        "namerd_rss_watching_mib": namerd_rss,
        "namerd_rss_after_mib": namerd_after,
        "namerd_rss_peak_mib": namerd_peak,
        "router_rss_idle_mib": router_idle,
        "router_rss_watching_mib": router_rss,
        "router_rss_after_mib": router_after,
        "namerd_cpu_ms_per_change": namerd_cpu,
        "router_cpu_ms_per_change": router_cpu,
        "namerd_idle_cpu_ms_per_s": idle_n / idle_wall.as_secs_f64() * 1e3,
        "router_idle_cpu_ms_per_s": idle_r / idle_wall.as_secs_f64() * 1e3,
        "namerd_cpu_ms_per_s_after_updates": after_idle,
        "hot_change_seen": observe::json(seen),
        "hot_change_window": observe::json(window),
        "hot_never": never,
        "hot_errors": errors,
    });
    drop(router);
    drop(namerd);
    drop(consul);
    Ok(result)
}
