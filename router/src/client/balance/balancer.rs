//! The balancer: the snapshot it reads, the pick loop every kind shares,
//! and the handle a request holds on its endpoint.

use std::hash::RandomState;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use namers::{Addr, Live};
use tokio::time::Instant;

use super::aperture::{Aperture, Band};
use super::config::{BalanceConfig, BalancerKind};
use super::node::{Clock, Node, NodeShared, Owner, Snapshot, epoch};
use super::{EndpointState, Outcome, heap, p2c, round_robin};
use crate::client::accrual::{Admission, HealthState, Transition};

/// Balances requests over a live endpoint set.
pub struct Balancer {
    addr: Live<Addr>,
    snapshot: ArcSwap<Snapshot>,
    config: Arc<BalanceConfig>,
    epoch: Instant,
    /// Orders endpoints for `aperture`.
    rank: RandomState,
    /// Whose turn it is, for `roundRobin`.
    cursor: AtomicUsize,
    aperture: Option<(Aperture, Band)>,
    /// What endpoints that left had counted.
    retired_removals: AtomicU64,
    retired_revivals: AtomicU64,
    retired_probes: AtomicU64,
    owner: Arc<Owner>,
}

/// A chosen endpoint. Its in-flight count drops when this is dropped; the
/// request's outcome goes to [`Picked::record`].
pub struct Picked {
    /// Where to send the request.
    pub addr: SocketAddr,
    node: Arc<NodeShared>,
    /// When the pick was made, for `ewma` (a `PeakEwma::stamp`).
    started: u64,
    admission: Admission,
    recorded: bool,
}

impl Picked {
    /// Reports how the request ended. Only the first report counts.
    pub fn record(&mut self, outcome: Outcome) {
        self.record_with(outcome, &Clock::system());
    }

    /// [`Picked::record`] as of `now`.
    pub fn record_at(&mut self, outcome: Outcome, now: Instant) {
        self.record_with(outcome, &Clock::at(now));
    }

    /// Whether this request is the probe of a removed endpoint.
    pub fn is_probe(&self) -> bool {
        self.admission == Admission::Probe
    }

    fn record_with(&mut self, outcome: Outcome, clock: &Clock) {
        if std::mem::replace(&mut self.recorded, true) {
            return;
        }
        if let Some(decay) = self.node.ewma_decay
            && outcome != Outcome::ConnectFailed
        {
            self.node
                .latency
                .observe_since(self.started, clock.now(), decay);
        }
        let health = &self.node.health;
        let transition = if outcome == Outcome::ConnectFailed
            && self.node.fail_fast
            && self.admission == Admission::Normal
        {
            health.mark_dead(clock.now())
        } else {
            health.record_with(self.admission, outcome == Outcome::Success, || clock.now())
        };
        if let Some(transition) = transition {
            self.log(transition);
        }
    }

    /// One line for each removal and revival: they are rare, and what an
    /// operator looks for first.
    fn log(&self, transition: Transition) {
        let owner = &self.node.owner;
        let (router, id) = (&*owner.router, &*owner.id);
        let endpoint = tracing::field::display(self.addr);
        match transition {
            Transition::Removed { for_ } => tracing::warn!(
                router,
                id,
                endpoint,
                removed_for_ms = u64::try_from(for_.as_millis()).unwrap_or(u64::MAX),
                probe = self.admission == Admission::Probe,
                "endpoint removed by failure accrual"
            ),
            Transition::Revived => {
                tracing::info!(
                    router,
                    id,
                    endpoint,
                    "endpoint revived: its probe succeeded"
                );
            }
        }
    }
}

impl Drop for Picked {
    fn drop(&mut self) {
        self.node.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Some(total) = &self.node.balancer_in_flight {
            total.fetch_sub(1, Ordering::Relaxed);
        }
        if !self.recorded {
            // A probe that ended without an outcome lets the next request
            // probe instead.
            self.node.health.cancel(self.admission);
        }
    }
}

impl Balancer {
    /// A p2c balancer over `addr`, with Linkerd's default failure accrual.
    pub fn new(addr: Live<Addr>) -> Balancer {
        Balancer::with_config(addr, Arc::default())
    }

    /// A balancer over `addr` made as `config` says.
    pub fn with_config(addr: Live<Addr>, config: Arc<BalanceConfig>) -> Balancer {
        Balancer::owned(addr, config, Arc::default())
    }

    /// [`Balancer::with_config`] for `owner`, named when its endpoints are
    /// removed or revived.
    pub fn owned(addr: Live<Addr>, config: Arc<BalanceConfig>, owner: Arc<Owner>) -> Balancer {
        let epoch = epoch();
        let rank = RandomState::new();
        let aperture = match config.kind {
            BalancerKind::Aperture {
                smooth_window,
                low_load,
                high_load,
                min_aperture,
                ..
            } => {
                let band = Band {
                    smooth_window,
                    low_load,
                    high_load,
                    min_aperture,
                };
                Some((Aperture::new(epoch, &band), band))
            }
            _ => None,
        };
        let aperture_in_flight = aperture.as_ref().map(|(a, _)| &a.in_flight);
        let (snapshot, _) = Snapshot::build(
            addr.load(),
            None,
            &config,
            &rank,
            epoch,
            aperture_in_flight,
            &owner,
        );
        Balancer {
            addr,
            snapshot: ArcSwap::from_pointee(snapshot),
            config,
            epoch,
            rank,
            cursor: AtomicUsize::new(0),
            aperture,
            retired_removals: AtomicU64::new(0),
            retired_revivals: AtomicU64::new(0),
            retired_probes: AtomicU64::new(0),
            owner,
        }
    }

    /// The current address (for errors and admin pages).
    pub fn addr(&self) -> Arc<Addr> {
        self.addr.load()
    }

    /// The live address, to wait for one that is pending.
    pub fn live_addr(&self) -> Live<Addr> {
        self.addr.clone()
    }

    /// What this balancer was made with.
    pub fn config(&self) -> &Arc<BalanceConfig> {
        &self.config
    }

    /// How many endpoints there are now, removed or not.
    pub fn size(&self) -> usize {
        self.current().nodes.len()
    }

    /// How many endpoints are not removed now (those whose backoff has
    /// passed count: their next request is a probe).
    pub fn available(&self) -> usize {
        let now = Instant::now();
        self.current()
            .nodes
            .iter()
            .filter(|n| !matches!(n.shared.health.state(now), HealthState::Dead { .. }))
            .count()
    }

    /// Each endpoint's state, for the admin page.
    pub fn endpoints(&self) -> Vec<EndpointState> {
        let now = Instant::now();
        self.current()
            .nodes
            .iter()
            .map(|n| EndpointState {
                addr: n.addr,
                weight: n.weight,
                in_flight: n.in_flight(),
                state: n.shared.health.state(now),
                load: match self.config.kind {
                    BalancerKind::Ewma { decay, .. } => {
                        n.shared.latency.cost(now, decay, n.in_flight()) / 1e6 / n.weight
                    }
                    _ => n.load(),
                },
            })
            .collect()
    }

    /// Removals of endpoints, summed (those that left the address
    /// included).
    pub fn removals(&self) -> u64 {
        self.total(&self.retired_removals, |n| n.shared.health.removals())
    }

    /// Revivals of endpoints, summed.
    pub fn revivals(&self) -> u64 {
        self.total(&self.retired_revivals, |n| n.shared.health.revivals())
    }

    /// Probes of removed endpoints, summed.
    pub fn probes(&self) -> u64 {
        self.total(&self.retired_probes, |n| n.shared.health.probes())
    }

    /// How many endpoints the aperture holds now (`None` for other kinds).
    pub fn aperture_size(&self) -> Option<usize> {
        self.aperture.as_ref().map(|(a, _)| a.size())
    }

    /// Picks an endpoint, or `None` when there is none.
    pub fn pick(&self) -> Option<Picked> {
        self.pick_with(&Clock::system())
    }

    /// [`Balancer::pick`], and the time it read from the clock if it
    /// needed it (`ewma`, failure accrual's probes): whoever needs the time
    /// next may take this rather than read the clock again.
    pub fn pick_reading(&self) -> Option<(Picked, Option<Instant>)> {
        let clock = Clock::system();
        let picked = self.pick_with(&clock)?;
        Some((picked, clock.read()))
    }

    /// [`Balancer::pick`] as of `now`.
    pub fn pick_at(&self, now: Instant) -> Option<Picked> {
        self.pick_with(&Clock::at(now))
    }

    fn pick_with(&self, clock: &Clock) -> Option<Picked> {
        let snapshot = self.current();
        if snapshot.nodes.is_empty() {
            return None;
        }
        let mut last = 0;
        for _ in 0..self.config.kind.max_effort() {
            last = self.choose(&snapshot, clock);
            let node = &snapshot.nodes[last];
            if let Some(admission) = node.shared.health.admit_with(|| clock.now()) {
                return Some(self.picked(node, admission, clock));
            }
        }
        // Every try landed on a removed endpoint: send anyway.
        Some(self.picked(&snapshot.nodes[last], Admission::Normal, clock))
    }

    fn choose(&self, snapshot: &Snapshot, clock: &Clock) -> usize {
        let nodes = &snapshot.nodes;
        match &self.config.kind {
            BalancerKind::P2c { .. } => {
                p2c::choose(snapshot, nodes.len(), clock, |i| nodes[i].load())
            }
            BalancerKind::Ewma { decay, .. } => {
                let now = clock.now();
                p2c::choose(snapshot, nodes.len(), clock, |i| {
                    let node = &nodes[i];
                    node.shared.latency.cost(now, *decay, node.in_flight()) / node.weight
                })
            }
            BalancerKind::Aperture { .. } => {
                let end = match &self.aperture {
                    Some((aperture, band)) => aperture.window(snapshot, band, clock),
                    None => nodes.len(),
                };
                p2c::choose(snapshot, end, clock, |i| nodes[i].load())
            }
            BalancerKind::Heap => heap::choose(snapshot, clock),
            BalancerKind::RoundRobin { .. } => round_robin::choose(snapshot, &self.cursor),
        }
    }

    fn picked(&self, node: &Node, admission: Admission, clock: &Clock) -> Picked {
        node.shared.in_flight.fetch_add(1, Ordering::Relaxed);
        if let Some(total) = &node.shared.balancer_in_flight {
            total.fetch_add(1, Ordering::Relaxed);
        }
        let started = match node.shared.ewma_decay {
            Some(_) => node.shared.latency.stamp(clock.now()),
            None => 0,
        };
        Picked {
            addr: node.addr,
            node: node.shared.clone(),
            started,
            admission,
            recorded: false,
        }
    }

    fn total(&self, retired: &AtomicU64, count: impl Fn(&Node) -> u64) -> u64 {
        let live: u64 = self.current().nodes.iter().map(count).sum();
        live + retired.load(Ordering::Relaxed)
    }

    /// The snapshot of the current address, rebuilt if it changed.
    fn current(&self) -> Arc<Snapshot> {
        let source = self.addr.load();
        let snapshot = self.snapshot.load_full();
        if Arc::ptr_eq(&snapshot.source, &source) {
            return snapshot;
        }
        let (rebuilt, retired) = Snapshot::build(
            source,
            Some(&snapshot),
            &self.config,
            &self.rank,
            self.epoch,
            self.aperture.as_ref().map(|(a, _)| &a.in_flight),
            &self.owner,
        );
        let rebuilt = Arc::new(rebuilt);
        let previous = self.snapshot.compare_and_swap(&snapshot, rebuilt.clone());
        if !Arc::ptr_eq(&*previous, &snapshot) {
            // Another request rebuilt it first: use its endpoints, so that
            // every request counts on the same ones.
            let winner = self.snapshot.load_full();
            if Arc::ptr_eq(&winner.source, &rebuilt.source) {
                return winner;
            }
            return rebuilt;
        }
        // Only the rebuild that won counts the endpoints that left.
        self.retired_removals
            .fetch_add(retired.removals, Ordering::Relaxed);
        self.retired_revivals
            .fetch_add(retired.revivals, Ordering::Relaxed);
        self.retired_probes
            .fetch_add(retired.probes, Ordering::Relaxed);
        rebuilt
    }
}
