//! `fanout`: R routers watching N names each through one namerd, and how
//! an update reaches all of them.
//!
//! namerd serves namespace `default` with the dtab `/svc => /#/io.l5d.fs`
//! over a directory of service files `s0`, `s1`, … (one endpoint each,
//! backend `a`). Each router is sent one request per name (`Host: s17`),
//! which opens its bind and address watches of that name. Two updates are
//! timed: an edit of the file `s0` (its endpoint flips between backends
//! `a` and `b`), and a dtab update that adds or removes
//! `/svc/s1 => /$/inet/127.0.0.1/<b>`.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use examples::harness::Backend;
use examples::load::keepalive::KeepAlive;
use examples::load::namerd::{
    CpuMeter, InterpreterKind, Namerd, NamerdRouter, open_file_limit, peak_rss_mib, replace_file,
    rss_mib, spawn_router,
};
use examples::load::procs::WorkDir;
use examples::load::report::{median, quantile};
use serde_json::json;

use crate::{delivered, observe};

/// How many routers, names and files.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Size {
    /// Router processes.
    pub(crate) routers: usize,
    /// Names each router watches.
    pub(crate) names: usize,
    /// Service files in namerd's directory.
    pub(crate) files: usize,
}

/// How the run goes.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// How routers ask namerd.
    pub(crate) interpreter: InterpreterKind,
    /// Updates of each kind timed (and as many for CPU).
    pub(crate) updates: usize,
    /// How often each router is asked while an update spreads.
    pub(crate) poll: Duration,
}

/// The longest one update may take to reach every router.
const UPDATE_LIMIT: Duration = Duration::from_secs(10);
/// The quiet time between two updates.
const GAP: Duration = Duration::from_millis(300);
/// The quiet time between two updates counted for CPU.
const CPU_GAP: Duration = Duration::from_millis(250);

/// The dtab of namespace `default`; `override_s1` sends `/svc/s1` to
/// backend `b` directly.
fn dtab(override_s1: Option<u16>) -> String {
    let mut dtab = "/svc => /#/io.l5d.fs;".to_string();
    if let Some(port) = override_s1 {
        dtab.push_str(&format!("\n/svc/s1 => /$/inet/127.0.0.1/{port};"));
    }
    dtab
}

fn endpoint(port: u16) -> String {
    format!("127.0.0.1 {port}\n")
}

/// Runs one size; returns its figures as JSON.
pub(crate) async fn run(
    work: &WorkDir,
    bin_dir: &Path,
    size: Size,
    settings: &Settings,
) -> Result<serde_json::Value> {
    let Size {
        routers,
        names,
        files,
    } = size;
    let kind = settings.interpreter;
    println!(
        "\n## fanout: {routers} routers x {names} names through one namerd ({}), {files} service files",
        kind.kind()
    );
    // One bind and one address watch per name per router; over HTTP each
    // is a connection of its own, on both sides.
    let streams = 2 * routers * names;
    let limit = open_file_limit();
    if kind == InterpreterKind::Http
        && let Some(limit) = limit
        && streams as u64 + 200 > limit
    {
        println!(
            "warning: {streams} watch connections need as many open files in namerd; \
             the limit here is {limit}. Expect watches to fail."
        );
    }
    let (a, b) = (Backend::start("a").await?, Backend::start("b").await?);
    let disco = work.file(&format!("disco-{routers}x{names}"));
    std::fs::create_dir_all(&disco)?;
    for i in 0..files {
        std::fs::write(disco.join(format!("s{i}")), endpoint(a.addr.port()))?;
    }
    let namers = format!("- kind: io.l5d.fs\n  rootDir: {}\n", disco.display());
    let mut namerd = Namerd::start(work, bin_dir, &namers).await?;
    namerd.put_dtab("default", &dtab(None)).await?;
    let namerd_pid = namerd.proc.pid();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let namerd_idle = rss_mib(namerd_pid);

    let started = Instant::now();
    let mut fleet = Vec::with_capacity(routers);
    for r in 0..routers {
        fleet.push(spawn_router(
            work,
            bin_dir,
            &format!("router{r}"),
            &namerd,
            kind,
            names,
        )?);
    }
    for router in &mut fleet {
        router.wait_ready().await?;
    }
    let start_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let router_pids: Vec<u32> = fleet.iter().map(|r| r.proc.pid()).collect();
    let router_idle = median(&router_pids.iter().map(|&p| rss_mib(p)).collect::<Vec<_>>());
    println!(
        "{routers} routers started in {start_secs:.1} s; idle RSS median {router_idle:.1} MiB"
    );

    // Every router asks for every name once, all routers at once.
    let started = Instant::now();
    let warmups: Vec<_> = fleet
        .iter()
        .map(|router| {
            let mut client = KeepAlive::new(router.addr);
            tokio::spawn(async move {
                let hosts = (0..names).map(|i| format!("s{i}"));
                let outcome =
                    observe::warm(&mut client, hosts, "a", Duration::from_secs(120)).await;
                (client, outcome)
            })
        })
        .collect();
    let mut clients = Vec::with_capacity(routers);
    let (mut retried, mut failed) = (0, 0);
    for task in warmups {
        let (client, outcome) = task.await?;
        let (r, f) = outcome?;
        retried += r;
        failed += f;
        clients.push(client);
    }
    let warm_secs = started.elapsed().as_secs_f64();
    println!(
        "{} names bound in {warm_secs:.1} s ({retried} needed a retry, {failed} never answered)",
        routers * names
    );
    let (namerd_streams, router_watches) = settle_watches(&namerd, &fleet, streams, kind).await;
    let namerd_rss = rss_mib(namerd_pid);
    let namerd_peak = peak_rss_mib(namerd_pid);
    let router_rss: Vec<f64> = router_pids.iter().map(|&p| rss_mib(p)).collect();
    println!(
        "watches open: routers report {router_watches:.0} of {streams}; namerd serves {namerd_streams:.0} HTTP streams"
    );
    let per_watch_kib = (namerd_rss - namerd_idle) * 1024.0 / (streams.max(1) as f64);
    println!(
        "namerd RSS: idle {namerd_idle:.1} MiB, all watches open {namerd_rss:.1} MiB (peak {namerd_peak:.1}), {per_watch_kib:.2} KiB per watch"
    );
    println!(
        "router RSS: median {:.1} MiB, max {:.1} MiB, all {routers} {:.0} MiB",
        median(&router_rss),
        quantile(&router_rss, 1.0),
        router_rss.iter().sum::<f64>()
    );
    for router in &mut fleet {
        router.proc.check_running()?;
    }
    namerd.proc.check_running()?;

    // Idle CPU over as long as the CPU rounds take, as their baseline.
    let cpu_secs = CPU_GAP * settings.updates as u32;
    let idle = CpuMeter::start(vec![namerd_pid]);
    let idle_routers = CpuMeter::start(router_pids.clone());
    tokio::time::sleep(cpu_secs).await;
    let (idle_namerd, idle_wall) = idle.read();
    let (idle_fleet, _) = idle_routers.read();

    let s0 = disco.join("s0");
    let (pa, pb) = (a.addr.port(), b.addr.port());
    let mut edit_rounds = Vec::new();
    let mut dtab_rounds = Vec::new();
    let edit_cpu = CpuMeter::start(vec![namerd_pid]);
    for u in 0..settings.updates {
        let (port, want) = if u % 2 == 0 { (pb, "b") } else { (pa, "a") };
        replace_file(&s0, &endpoint(port))?;
        let since = Instant::now();
        let round =
            observe::until_answer(&mut clients, "s0", want, since, settings.poll, UPDATE_LIMIT)
                .await;
        edit_rounds.push(round);
        tokio::time::sleep(GAP).await;
    }
    let (edit_namerd_polled, _) = edit_cpu.read();
    for u in 0..settings.updates {
        let (over, want) = if u % 2 == 0 {
            (Some(pb), "b")
        } else {
            (None, "a")
        };
        let since = Instant::now();
        namerd.put_dtab("default", &dtab(over)).await?;
        let round =
            observe::until_answer(&mut clients, "s1", want, since, settings.poll, UPDATE_LIMIT)
                .await;
        dtab_rounds.push(round);
        tokio::time::sleep(GAP).await;
    }
    // The same updates with nobody asking the routers: what namerd and
    // the routers spend on each, less what they spend idle.
    let idle_rate = |cpu: f64| cpu / idle_wall.as_secs_f64();
    let per_update = |cpu: f64, wall: Duration, idle_cpu: f64| {
        let extra = cpu - idle_rate(idle_cpu) * wall.as_secs_f64();
        (extra.max(0.0) * 1e3) / settings.updates as f64
    };
    let meters = (
        CpuMeter::start(vec![namerd_pid]),
        CpuMeter::start(router_pids.clone()),
    );
    // These rounds also time delivery from the routers' logs.
    let mut edit_times = Vec::with_capacity(settings.updates);
    for u in 0..settings.updates {
        let port = if u % 2 == 0 { pb } else { pa };
        edit_times.push(SystemTime::now());
        replace_file(&s0, &endpoint(port))?;
        tokio::time::sleep(CPU_GAP).await;
    }
    let ((n_cpu, n_wall), (r_cpu, r_wall)) = (meters.0.read(), meters.1.read());
    let edit_cpu_ms = (
        per_update(n_cpu, n_wall, idle_namerd),
        per_update(r_cpu, r_wall, idle_fleet),
    );
    let meters = (
        CpuMeter::start(vec![namerd_pid]),
        CpuMeter::start(router_pids.clone()),
    );
    let mut dtab_times = Vec::with_capacity(settings.updates);
    for u in 0..settings.updates {
        let over = (u % 2 == 0).then_some(pb);
        dtab_times.push(SystemTime::now());
        namerd.put_dtab("default", &dtab(over)).await?;
        tokio::time::sleep(CPU_GAP).await;
    }
    let ((n_cpu, n_wall), (r_cpu, r_wall)) = (meters.0.read(), meters.1.read());
    let dtab_cpu_ms = (
        per_update(n_cpu, n_wall, idle_namerd),
        per_update(r_cpu, r_wall, idle_fleet),
    );
    namerd.proc.check_running()?;
    let namerd_after = rss_mib(namerd_pid);
    let after_idle = idle_cpu_rate(namerd_pid).await;
    println!("namerd CPU with nothing changing, after the updates: {after_idle:.0} ms/s");

    let logs: Vec<_> = fleet.iter().map(|r| r.log.clone()).collect();
    let (edit_delivered, edit_undelivered) = delivered::delays(
        &logs,
        &edit_times,
        delivered::address_sent("/#/io.l5d.fs/s0"),
    );
    let (dtab_delivered, dtab_undelivered) =
        delivered::delays(&logs, &dtab_times, delivered::tree_sent("/svc/s1"));
    let edit_d = observe::summary(&edit_delivered);
    let dtab_d = observe::summary(&dtab_delivered);
    let (edit_by, edit_windows, edit_never, edit_errors) = observe::merge(&edit_rounds);
    let (dtab_by, dtab_windows, dtab_never, dtab_errors) = observe::merge(&dtab_rounds);
    let edit_q = observe::summary(&edit_by);
    let dtab_q = observe::summary(&dtab_by);
    let edit_w = observe::summary(&edit_windows);
    let dtab_w = observe::summary(&dtab_windows);
    let idle_ms_per_s = idle_rate(idle_namerd) * 1e3;
    let fleet_idle_ms_per_s = idle_rate(idle_fleet) * 1e3;
    println!(
        "\n| {routers} routers x {names} names | file edit of s0 | dtab update for s1 |\n|---|---|---|"
    );
    println!(
        "| change → each router routes by it: p50 / p90 / p99 / max | {} | {} |",
        observe::show(edit_q),
        observe::show(dtab_q)
    );
    println!(
        "| change → each router has it (its log; nobody asking): p50 / p90 / p99 / max | {} | {} |",
        observe::show(edit_d),
        observe::show(dtab_d)
    );
    println!(
        "| deliveries logged (routers × updates); missing | {}; {edit_undelivered} | {}; {dtab_undelivered} |",
        edit_delivered.len(),
        dtab_delivered.len()
    );
    println!(
        "| sightings (routers × updates); never seen | {}; {edit_never} | {}; {dtab_never} |",
        edit_by.len(),
        dtab_by.len()
    );
    println!(
        "| precision: window between last old and first new answer, p50 / p99 | {:.1} / {:.1} ms | {:.1} / {:.1} ms |",
        edit_w[0], edit_w[2], dtab_w[0], dtab_w[2]
    );
    println!("| failed requests while polling | {edit_errors} | {dtab_errors} |");
    println!(
        "| namerd CPU per update (no polling) | {:.1} ms | {:.1} ms |",
        edit_cpu_ms.0, dtab_cpu_ms.0
    );
    println!(
        "| all routers' CPU per update (no polling) | {:.1} ms | {:.1} ms |",
        edit_cpu_ms.1, dtab_cpu_ms.1
    );
    println!(
        "(idle: namerd {idle_ms_per_s:.1} ms CPU/s, all routers {fleet_idle_ms_per_s:.1} ms CPU/s; namerd CPU over the polled file edits {:.0} ms; namerd RSS after the updates {namerd_after:.1} MiB)",
        edit_namerd_polled * 1e3
    );
    if edit_never + dtab_never > 0 {
        println!(
            "FINDING: {} router sightings never came within {UPDATE_LIMIT:?}",
            edit_never + dtab_never
        );
    }

    let result = json!({
        "routers": routers,
        "names_per_router": names,
        "files": files,
        "interpreter": kind.kind(),
        "watch_streams_expected": streams,
        "open_file_limit": limit,
        "routers_start_s": start_secs,
        "bind_all_s": warm_secs,
        "bind_retried": retried,
        "bind_failed": failed,
        "router_watches_open": router_watches,
        "namerd_http_streams_open": namerd_streams,
        "namerd_rss_idle_mib": namerd_idle,
        "namerd_rss_watching_mib": namerd_rss,
        "namerd_rss_peak_mib": namerd_peak,
        "namerd_rss_after_updates_mib": namerd_after,
        "namerd_kib_per_watch": per_watch_kib,
        "router_rss_idle_median_mib": router_idle,
        "router_rss_median_mib": median(&router_rss),
        "router_rss_max_mib": quantile(&router_rss, 1.0),
        "router_rss_sum_mib": router_rss.iter().sum::<f64>(),
        "namerd_idle_cpu_ms_per_s": idle_ms_per_s,
        "namerd_cpu_ms_per_s_after_updates": after_idle,
        "routers_idle_cpu_ms_per_s": fleet_idle_ms_per_s,
        "file_edit": {
            "seen": observe::json(edit_q),
            "window": observe::json(edit_w),
            "delivered": observe::json(edit_d),
            "deliveries_missing": edit_undelivered,
            "sightings": edit_by.len(),
            "never": edit_never,
            "errors": edit_errors,
            "namerd_cpu_ms_per_update": edit_cpu_ms.0,
            "routers_cpu_ms_per_update": edit_cpu_ms.1,
        },
        "dtab_update": {
            "seen": observe::json(dtab_q),
            "window": observe::json(dtab_w),
            "delivered": observe::json(dtab_d),
            "deliveries_missing": dtab_undelivered,
            "sightings": dtab_by.len(),
            "never": dtab_never,
            "errors": dtab_errors,
            "namerd_cpu_ms_per_update": dtab_cpu_ms.0,
            "routers_cpu_ms_per_update": dtab_cpu_ms.1,
        },
    });
    drop(fleet);
    drop(namerd);
    Ok(result)
}

/// namerd's CPU over 3 s in which nothing changes, in ms per second.
pub(crate) async fn idle_cpu_rate(pid: u32) -> f64 {
    let meter = CpuMeter::start(vec![pid]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (cpu, wall) = meter.read();
    cpu * 1e3 / wall.as_secs_f64()
}

/// Waits (up to 30 s) until the routers report `streams` watches open;
/// returns what namerd and the routers report then.
async fn settle_watches(
    namerd: &Namerd,
    fleet: &[NamerdRouter],
    streams: usize,
    kind: InterpreterKind,
) -> (f64, f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut open = 0.0;
        for router in fleet {
            open += router.open_watches().await.unwrap_or(0.0);
        }
        let served = match kind {
            InterpreterKind::Http => namerd.open_http_streams().await.unwrap_or(0.0),
            InterpreterKind::Mesh => f64::NAN,
        };
        if open >= streams as f64 || Instant::now() >= deadline {
            return (served, open);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What the rounds of one kind saw, for a test of the merge.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::{Round, Seen};

    #[test]
    fn rounds_merge_sightings_and_misses() {
        let seen = |by: u64, not_before: u64| Seen {
            by: Duration::from_millis(by),
            not_before: Duration::from_millis(not_before),
        };
        let rounds = vec![
            Round {
                seen: vec![seen(30, 25), seen(40, 20)],
                never: 1,
                errors: 2,
            },
            Round {
                seen: vec![seen(10, 0)],
                never: 0,
                errors: 0,
            },
        ];
        let (by, windows, never, errors) = observe::merge(&rounds);
        assert_eq!(by.len(), 3);
        assert_eq!(windows[1], Duration::from_millis(20));
        assert_eq!((never, errors), (1, 2));
        assert_eq!(
            dtab(Some(80)),
            "/svc => /#/io.l5d.fs;\n/svc/s1 => /$/inet/127.0.0.1/80;"
        );
    }
}
