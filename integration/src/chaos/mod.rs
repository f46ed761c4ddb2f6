//! Chaos for namerd's dtab stores: writers incrementing a counter by
//! compare-and-set through namerd's HTTP API ([`counter`]) while namerd is
//! killed with SIGKILL and restarted, or its etcd or ZooKeeper server is
//! killed and restarted under it; and the check that no acknowledged
//! write was lost and none was acknowledged twice.
//!
//! The short runs are `integration/tests/chaos_namerd.rs`; the long runs
//! are the `chaos` example (`cargo run --release -p examples --bin chaos`).
//! Both need a multi-threaded runtime: starting and stopping processes
//! blocks a thread (`tokio::task::block_in_place`).

pub mod client;
pub mod counter;
pub mod namerd;

use std::time::{Duration, Instant};

use counter::Swarm;
use namerd::{Backend, Namerd};

/// How long namerd, or its backend, may take to serve again after a
/// restart before a run fails.
pub const RECOVERY_LIMIT: Duration = Duration::from_secs(30);

/// What one SIGKILL of namerd showed.
#[derive(Clone, Debug)]
pub struct KillReport {
    /// The highest counter value acknowledged before the kill.
    pub acked_before: u64,
    /// The counter namerd served first after its restart.
    pub served_after: u64,
    /// From starting namerd again to its API listening.
    pub start: Duration,
    /// From the kill to the first increment acknowledged after the
    /// restart, `down` included.
    pub recovery: Duration,
}

/// Kills `namerd` with SIGKILL while `swarm` writes through it, leaves it
/// down for `down`, starts it again on the same store, and waits for the
/// writers to get an increment acknowledged. Fails if the first counter it
/// serves is below one acknowledged before the kill, or if no increment
/// is acknowledged within [`RECOVERY_LIMIT`].
pub async fn kill_and_restart(
    namerd: &mut Namerd,
    swarm: &Swarm,
    ns: &str,
    down: Duration,
) -> Result<KillReport, String> {
    let acked_before = swarm.max_acked();
    let killed = Instant::now();
    tokio::task::block_in_place(|| namerd.kill());
    tokio::time::sleep(down).await;
    let starting = Instant::now();
    tokio::task::block_in_place(|| namerd.restart());
    let start = starting.elapsed();
    // No increment can be acknowledged while namerd is down, so any from
    // here on was answered by the new process.
    let since = swarm.acked();
    let (served_after, _) = counter::read(namerd.api(), ns, RECOVERY_LIMIT)
        .await
        .map_err(|e| format!("after a restart: {e}; namerd's log:\n{}", namerd.log()))?;
    if served_after < acked_before {
        return Err(format!(
            "after the restart namerd served the counter {served_after}, but \
             {acked_before} had been acknowledged before the kill"
        ));
    }
    if swarm.wait_acked(since, 1, RECOVERY_LIMIT).await.is_none() {
        return Err(format!(
            "no increment was acknowledged within {RECOVERY_LIMIT:?} of the restart; \
             namerd's log:\n{}",
            namerd.log()
        ));
    }
    Ok(KillReport {
        acked_before,
        served_after,
        start,
        recovery: killed.elapsed(),
    })
}

/// What one restart of etcd or ZooKeeper under namerd showed.
#[derive(Clone, Debug)]
pub struct OutageReport {
    /// From the kill of the server to it serving again.
    pub outage: Duration,
    /// From the server serving again to the first increment acknowledged
    /// through namerd.
    pub recovery: Duration,
}

/// Kills the backend's server while `swarm` writes through namerd, leaves
/// it down for `down`, starts it again on the same port and data, and
/// waits for the writers to get an increment acknowledged.
pub async fn restart_backend(
    backend: &mut Backend,
    swarm: &Swarm,
    down: Duration,
) -> Result<OutageReport, String> {
    let stopped = Instant::now();
    tokio::task::block_in_place(|| backend.stop());
    tokio::time::sleep(down).await;
    tokio::task::block_in_place(|| backend.restart());
    let outage = stopped.elapsed();
    let since = swarm.acked();
    match swarm.wait_acked(since, 1, RECOVERY_LIMIT).await {
        Some(recovery) => Ok(OutageReport { outage, recovery }),
        None => Err(format!(
            "no increment was acknowledged within {RECOVERY_LIMIT:?} of the backend's restart; \
             its log:\n{}",
            backend.log()
        )),
    }
}
