//! What every balancer kind owes its callers: it spreads load, keeps away
//! from removed endpoints, lets exactly one probe through after a backoff,
//! and follows the live address. Time is explicit: no test sleeps.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use namers::{Addr, Endpoint, Live, Publisher};
use tokio::time::Instant;

use super::*;
use crate::client::accrual::{AccrualConfig, AccrualPolicy};
use crate::policy::backoff::BackoffConfig;

const BACKOFF: Duration = Duration::from_secs(10);
const MS: Duration = Duration::from_millis(1);

fn endpoints(ports: &[(u16, f64)]) -> Addr {
    Addr::bound(
        ports
            .iter()
            .map(|(p, w)| Endpoint::new(([127, 0, 0, 1], *p).into()).with_weight(*w))
            .collect(),
    )
}

fn even(ports: &[u16]) -> Addr {
    endpoints(&ports.iter().map(|&p| (p, 1.0)).collect::<Vec<_>>())
}

fn aperture(min_aperture: usize) -> BalancerKind {
    BalancerKind::Aperture {
        max_effort: 5,
        smooth_window: Duration::from_secs(1),
        low_load: 0.5,
        high_load: 2.0,
        min_aperture,
    }
}

fn every_kind() -> Vec<BalancerKind> {
    vec![
        BalancerKind::P2c { max_effort: 5 },
        BalancerKind::Ewma {
            max_effort: 5,
            decay: Duration::from_secs(10),
        },
        // A window as wide as the tests' sets, so it behaves like p2c.
        aperture(4),
        BalancerKind::Heap,
        BalancerKind::RoundRobin { max_effort: 5 },
    ]
}

/// Removal after one failure, for a constant 10 s.
fn config(kind: BalancerKind, fail_fast: bool) -> Arc<BalanceConfig> {
    Arc::new(BalanceConfig {
        kind,
        accrual: Arc::new(AccrualConfig {
            policy: AccrualPolicy::ConsecutiveFailures { failures: 1 },
            backoff: BackoffConfig::Constant {
                ms: BACKOFF.as_millis() as u64,
            },
        }),
        fail_fast,
    })
}

fn balancer(kind: BalancerKind, addr: Addr) -> Balancer {
    Balancer::with_config(Live::constant(addr), config(kind, false))
}

fn port(picked: &Picked) -> u16 {
    picked.addr.port()
}

/// Picks `n` times at `now`, each request answered at once.
fn ports_of(balancer: &Balancer, n: usize, now: Instant) -> HashMap<u16, usize> {
    let mut counts = HashMap::new();
    for _ in 0..n {
        let mut picked = balancer.pick_at(now).expect("an endpoint");
        picked.record_at(Outcome::Success, now);
        *counts.entry(port(&picked)).or_default() += 1;
    }
    counts
}

/// Picks `n` times at `now`, holding every request (so that least-loaded
/// kinds spread them), then answers them all.
fn held_ports(balancer: &Balancer, n: usize, now: Instant) -> HashMap<u16, usize> {
    let held: Vec<Picked> = (0..n).filter_map(|_| balancer.pick_at(now)).collect();
    let mut counts = HashMap::new();
    for mut picked in held {
        *counts.entry(port(&picked)).or_default() += 1;
        picked.record_at(Outcome::Success, now);
    }
    counts
}

/// Picks until a request lands on `target`, holding the others (so that
/// every kind gets there) and dropping them unanswered.
fn pick_until(balancer: &Balancer, target: u16, now: Instant) -> Picked {
    let mut held = Vec::new();
    for _ in 0..1_000 {
        let picked = balancer.pick_at(now).expect("an endpoint");
        if port(&picked) == target {
            return picked;
        }
        held.push(picked);
    }
    panic!("never picked {target}");
}

/// Removes the endpoint on `target` by failing a request to it.
fn remove(balancer: &Balancer, target: u16, now: Instant) {
    pick_until(balancer, target, now).record_at(Outcome::Failure, now);
}

#[test]
fn every_kind_spreads_held_requests() {
    for kind in every_kind() {
        let balancer = balancer(kind.clone(), even(&[1, 2, 3, 4]));
        let t0 = Instant::now();
        let held: Vec<Picked> = (0..40).filter_map(|_| balancer.pick_at(t0)).collect();
        let mut counts: HashMap<u16, usize> = HashMap::new();
        for picked in &held {
            *counts.entry(port(picked)).or_default() += 1;
        }
        assert_eq!(counts.len(), 4, "{kind:?}: {counts:?}");
        assert!(
            counts.values().all(|&n| n >= 5),
            "{kind:?} piles up: {counts:?}"
        );
        assert_eq!(
            balancer
                .endpoints()
                .iter()
                .map(|e| e.in_flight)
                .sum::<usize>(),
            40
        );
        drop(held);
        assert!(balancer.endpoints().iter().all(|e| e.in_flight == 0));
    }
}

#[test]
fn every_kind_keeps_away_from_a_removed_endpoint() {
    for kind in every_kind() {
        let balancer = balancer(kind.clone(), even(&[1, 2, 3, 4]));
        let t0 = Instant::now();
        remove(&balancer, 3, t0);
        assert_eq!(balancer.available(), 3, "{kind:?}");
        let counts = held_ports(&balancer, 60, t0 + BACKOFF - MS);
        assert_eq!(counts.get(&3), None, "{kind:?}: {counts:?}");
        assert_eq!(counts.len(), 3, "{kind:?}: {counts:?}");
    }
}

#[test]
fn every_kind_lets_one_probe_through_after_the_backoff() {
    for kind in every_kind() {
        let balancer = balancer(kind.clone(), even(&[1, 2, 3]));
        let t0 = Instant::now();
        remove(&balancer, 2, t0);
        let open = t0 + BACKOFF;
        // Hold every request so that the removed endpoint, with nothing in
        // flight, looks the least loaded to every kind.
        let held: Vec<Picked> = (0..60).filter_map(|_| balancer.pick_at(open)).collect();
        let probes: Vec<&Picked> = held.iter().filter(|p| port(p) == 2).collect();
        assert_eq!(probes.len(), 1, "{kind:?}: one probe");
        assert!(probes[0].is_probe(), "{kind:?}");
        assert_eq!(balancer.probes(), 1, "{kind:?}");
        drop(held);
        // The probe ended with no outcome: the next request probes.
        let mut probe = pick_until(&balancer, 2, open);
        assert!(probe.is_probe());
        probe.record_at(Outcome::Success, open);
        assert_eq!(balancer.revivals(), 1, "{kind:?}");
        assert_eq!(balancer.available(), 3);
        let counts = held_ports(&balancer, 30, open);
        assert!(
            counts.get(&2).is_some_and(|&n| n >= 5),
            "{kind:?}: {counts:?}"
        );
    }
}

#[test]
fn a_failed_probe_removes_the_endpoint_again() {
    for kind in every_kind() {
        let balancer = balancer(kind.clone(), even(&[1, 2]));
        let t0 = Instant::now();
        remove(&balancer, 1, t0);
        let open = t0 + BACKOFF;
        let mut probe = pick_until(&balancer, 1, open);
        probe.record_at(Outcome::Failure, open);
        drop(probe);
        assert_eq!(balancer.removals(), 2, "{kind:?}");
        let counts = ports_of(&balancer, 100, open + BACKOFF - MS);
        assert_eq!(counts.get(&1), None, "{kind:?}: {counts:?}");
    }
}

#[test]
fn every_kind_follows_the_live_address_and_keeps_health() {
    for kind in every_kind() {
        let publisher = Publisher::new(even(&[1, 2]));
        let balancer = Balancer::with_config(publisher.subscribe(), config(kind.clone(), false));
        let t0 = Instant::now();
        remove(&balancer, 1, t0);
        publisher.publish(even(&[1, 3, 4]));
        assert_eq!(balancer.size(), 3);
        assert_eq!(balancer.available(), 2, "{kind:?}: 1 stays removed");
        let counts = held_ports(&balancer, 20, t0);
        assert_eq!(counts.len(), 2, "{kind:?}: {counts:?}");
        assert!(counts.contains_key(&3) && counts.contains_key(&4));
        // Counts of endpoints that leave are kept in the totals.
        publisher.publish(even(&[3, 4]));
        assert_eq!(balancer.removals(), 1, "{kind:?}");
        publisher.publish(Addr::Neg);
        assert!(balancer.pick_at(t0).is_none());
        assert_eq!(balancer.removals(), 1);
    }
}

#[test]
fn a_balancer_of_removed_endpoints_still_sends() {
    for kind in every_kind() {
        let balancer = balancer(kind.clone(), even(&[1, 2]));
        let t0 = Instant::now();
        remove(&balancer, 1, t0);
        remove(&balancer, 2, t0);
        assert_eq!(balancer.available(), 0);
        let mut picked = balancer.pick_at(t0).expect("sends anyway");
        assert!(!picked.is_probe());
        // Its outcome does not revive the endpoint: only a probe can.
        picked.record_at(Outcome::Success, t0);
        assert_eq!(balancer.available(), 0, "{kind:?}");
    }
}

#[test]
fn connect_failures_remove_at_once_only_with_fail_fast() {
    let three_failures = |fail_fast| {
        let mut config = (*config(BalancerKind::P2c { max_effort: 5 }, fail_fast)).clone();
        config.accrual = Arc::new(AccrualConfig {
            policy: AccrualPolicy::ConsecutiveFailures { failures: 3 },
            backoff: BackoffConfig::Constant { ms: 1_000 },
        });
        Balancer::with_config(Live::constant(even(&[1])), Arc::new(config))
    };
    let t0 = Instant::now();
    let fast = three_failures(true);
    fast.pick_at(t0)
        .unwrap()
        .record_at(Outcome::ConnectFailed, t0);
    assert_eq!(fast.available(), 0);
    let slow = three_failures(false);
    for _ in 0..2 {
        slow.pick_at(t0)
            .unwrap()
            .record_at(Outcome::ConnectFailed, t0);
    }
    assert_eq!(slow.available(), 1);
    slow.pick_at(t0)
        .unwrap()
        .record_at(Outcome::ConnectFailed, t0);
    assert_eq!(slow.available(), 0);
}

#[test]
fn only_the_first_outcome_counts() {
    let balancer = balancer(BalancerKind::P2c { max_effort: 5 }, even(&[1]));
    let t0 = Instant::now();
    let mut picked = balancer.pick_at(t0).unwrap();
    picked.record_at(Outcome::Success, t0);
    picked.record_at(Outcome::Failure, t0);
    assert_eq!(balancer.available(), 1);
}

#[test]
fn p2c_compares_two_distinct_endpoints() {
    let balancer = balancer(BalancerKind::P2c { max_effort: 5 }, even(&[1, 2]));
    let t0 = Instant::now();
    let held = balancer.pick_at(t0).unwrap();
    let busy = port(&held);
    // Every pair holds both endpoints, so the idle one always wins.
    let counts = ports_of(&balancer, 200, t0);
    assert_eq!(counts.get(&busy), None, "{counts:?}");
}

#[test]
fn p2c_prefers_the_less_loaded_endpoint() {
    let balancer = Balancer::new(Live::constant(even(&[1, 2, 3])));
    let held: Vec<Picked> = (0..30)
        .filter_map(|_| balancer.pick())
        .filter(|p| port(p) == 1)
        .collect();
    assert!(!held.is_empty());
    let picks: Vec<u16> = (0..300)
        .filter_map(|_| balancer.pick().map(|p| port(&p)))
        .collect();
    let to_one = picks.iter().filter(|&&p| p == 1).count();
    // Every pair port 1 is in holds an idle endpoint too.
    assert_eq!(to_one, 0, "{to_one} of 300 went to the loaded endpoint");
}

#[test]
fn p2c_honours_weights_when_idle() {
    let balancer = Balancer::new(Live::constant(endpoints(&[(1, 1.0), (2, 3.0)])));
    let t0 = Instant::now();
    // Two distinct endpoints: every idle pair is {1, 2} and a tie goes to
    // the first drawn, which is 2 three times in four.
    let counts = ports_of(&balancer, 10_000, t0);
    let to_two = counts.get(&2).copied().unwrap_or(0);
    assert!((7_000..8_000).contains(&to_two), "{to_two}");
}

#[test]
fn p2c_follows_the_live_address_and_keeps_in_flight_counts() {
    let publisher = Publisher::new(even(&[1]));
    let balancer = Balancer::new(publisher.subscribe());
    let held = balancer.pick().unwrap();
    publisher.publish(even(&[1, 2]));
    assert_eq!(balancer.size(), 2);
    // Port 1 still has one request in flight, so port 2 wins every pair.
    let picks: Vec<u16> = (0..100)
        .filter_map(|_| balancer.pick().map(|p| port(&p)))
        .collect();
    assert!(picks.iter().all(|&p| p == 2));
    drop(held);
    publisher.publish(Addr::Neg);
    assert!(balancer.pick().is_none());
}

#[test]
fn ewma_keeps_away_from_a_slow_endpoint() {
    let kind = BalancerKind::Ewma {
        max_effort: 5,
        decay: Duration::from_secs(10),
    };
    let balancer = balancer(kind, even(&[1, 2, 3]));
    let mut now = Instant::now();
    let latency = |port: u16| if port == 1 { 200 * MS } else { MS };
    let mut to_slow = 0;
    for i in 0..1_000 {
        let mut picked = balancer.pick_at(now).unwrap();
        let port = port(&picked);
        now += latency(port);
        picked.record_at(Outcome::Success, now);
        if i >= 100 && port == 1 {
            to_slow += 1;
        }
    }
    // Without latency, a third would go there.
    assert!(to_slow < 30, "{to_slow} of 900 went to the slow endpoint");
    let loads: HashMap<u16, f64> = balancer
        .endpoints()
        .iter()
        .map(|e| (e.addr.port(), e.load))
        .collect();
    assert!(loads[&1] > 10.0 * loads[&2], "{loads:?}");
}

#[test]
fn ewma_sends_one_request_at_a_time_to_a_new_endpoint() {
    let kind = BalancerKind::Ewma {
        max_effort: 5,
        decay: Duration::from_secs(10),
    };
    let publisher = Publisher::new(even(&[1]));
    let balancer = Balancer::with_config(publisher.subscribe(), config(kind, false));
    let t0 = Instant::now();
    let mut warm = balancer.pick_at(t0).unwrap();
    warm.record_at(Outcome::Success, t0 + 5 * MS);
    drop(warm);
    publisher.publish(even(&[1, 2]));
    let held: Vec<Picked> = (0..20).filter_map(|_| balancer.pick_at(t0)).collect();
    assert_eq!(held.iter().filter(|p| port(p) == 2).count(), 1);
}

#[test]
fn heap_takes_the_least_loaded_then_the_first() {
    let balancer = balancer(
        BalancerKind::Heap,
        endpoints(&[(1, 1.0), (2, 2.0), (3, 1.0)]),
    );
    let t0 = Instant::now();
    let held: Vec<Picked> = (0..8).map(|_| balancer.pick_at(t0).unwrap()).collect();
    // By load per unit of weight; ties go to the first in the address.
    let order: Vec<u16> = held.iter().map(port).collect();
    assert_eq!(order, vec![1, 2, 3, 2, 1, 2, 3, 2]);
}

#[test]
fn round_robin_takes_turns_and_skips_removed_endpoints() {
    let balancer = balancer(BalancerKind::RoundRobin { max_effort: 5 }, even(&[1, 2, 3]));
    let t0 = Instant::now();
    let order: Vec<u16> = (0..6)
        .map(|_| port(&balancer.pick_at(t0).unwrap()))
        .collect();
    assert_eq!(order, vec![1, 2, 3, 1, 2, 3]);
    let mut picked = balancer.pick_at(t0).unwrap();
    assert_eq!(port(&picked), 1);
    picked.record_at(Outcome::Failure, t0);
    let order: Vec<u16> = (0..4)
        .map(|_| port(&balancer.pick_at(t0).unwrap()))
        .collect();
    assert_eq!(order, vec![2, 3, 2, 3]);
}

#[test]
fn round_robin_follows_weights() {
    let balancer = balancer(
        BalancerKind::RoundRobin { max_effort: 5 },
        endpoints(&[(1, 1.0), (2, 3.0)]),
    );
    let counts = ports_of(&balancer, 400, Instant::now());
    assert_eq!((counts[&1], counts[&2]), (100, 300));
}

#[test]
fn aperture_stays_narrow_under_low_load() {
    let balancer = balancer(aperture(1), even(&[1, 2, 3, 4, 5, 6]));
    let first = balancer.endpoints()[0].addr.port();
    let t0 = Instant::now();
    let mut now = t0;
    for _ in 0..200 {
        let mut picked = balancer.pick_at(now).unwrap();
        assert_eq!(port(&picked), first);
        now += 10 * MS;
        picked.record_at(Outcome::Success, now);
    }
    assert_eq!(balancer.aperture_size(), Some(1));
}

#[test]
fn aperture_widens_under_load_and_narrows_after() {
    let balancer = balancer(aperture(1), even(&[1, 2, 3, 4, 5, 6]));
    let mut now = Instant::now();
    let mut held = Vec::new();
    // Twenty requests held: ten per endpoint in a window of two is above
    // highLoad, so the window widens until about 20 / 6 per endpoint.
    for _ in 0..400 {
        held.push(balancer.pick_at(now).unwrap());
        if held.len() > 20 {
            held.remove(0);
        }
        now += 50 * MS;
    }
    assert_eq!(balancer.aperture_size(), Some(6));
    let used: std::collections::HashSet<u16> = held.iter().map(port).collect();
    assert!(used.len() >= 4, "{used:?}");
    drop(held);
    for _ in 0..400 {
        balancer.pick_at(now);
        now += 50 * MS;
    }
    assert_eq!(balancer.aperture_size(), Some(1));
}

#[test]
fn aperture_reaches_past_a_removed_endpoint() {
    let balancer = balancer(aperture(1), even(&[1, 2, 3]));
    let order: Vec<u16> = balancer.endpoints().iter().map(|e| e.addr.port()).collect();
    let t0 = Instant::now();
    remove(&balancer, order[0], t0);
    let counts = ports_of(&balancer, 50, t0);
    assert_eq!(counts.get(&order[1]), Some(&50), "{counts:?}");
}

#[test]
fn endpoints_show_health() {
    let balancer = balancer(BalancerKind::P2c { max_effort: 5 }, even(&[1, 2]));
    let t0 = Instant::now();
    remove(&balancer, 2, t0);
    let states: Vec<(u16, HealthState)> = balancer
        .endpoints()
        .iter()
        .map(|e| (e.addr.port(), e.state))
        .collect();
    assert_eq!(states[0], (1, HealthState::Live));
    assert!(matches!(states[1], (2, HealthState::Dead { .. })));
}

#[test]
fn balancers_are_shared_between_tasks() {
    fn check<T: Send + Sync>() {}
    check::<Balancer>();
    check::<Picked>();
}

#[test]
fn a_pick_stays_small() {
    // It rides in every response body: the address and one pointer, and a
    // few words more.
    assert!(std::mem::size_of::<Picked>() <= 56);
}

#[test]
fn a_removed_endpoint_s_share_does_not_go_to_a_loaded_one() {
    let ports: Vec<u16> = (1..=10).collect();
    for kind in [
        BalancerKind::P2c { max_effort: 5 },
        BalancerKind::Ewma {
            max_effort: 5,
            decay: Duration::from_secs(10),
        },
    ] {
        let balancer = balancer(kind.clone(), even(&ports));
        let now = Instant::now();
        remove(&balancer, 1, now);
        remove(&balancer, 2, now);
        // Port 10 is slow: every request sent to it stays in flight.
        let mut held = Vec::new();
        for _ in 0..3000 {
            let mut picked = balancer.pick_at(now).unwrap();
            if port(&picked) == 10 {
                held.push(picked);
            } else {
                picked.record_at(Outcome::Success, now);
            }
        }
        // Pairs of a removed and the slow endpoint are drawn again rather
        // than settled in the slow one's favour (4 % of all pairs, 120
        // requests). The slow one still wins a few pairs by chance before
        // its load tells (about 10 here, now and then 16 or more).
        assert!(
            held.len() < 45,
            "{kind:?}: {} of 3000 went to the slow endpoint",
            held.len()
        );
    }
}
