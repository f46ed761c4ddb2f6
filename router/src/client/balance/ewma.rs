//! Peak EWMA of latency (Finagle's `PeakEwma`, linkerd2-proxy's
//! `PeakEwma`): a node's cost is its smoothed latency times its requests
//! in flight plus one, per unit of weight.
//!
//! A latency above the average replaces it at once (the peak); a lower one
//! is blended in with weight `1 - exp(-elapsed / decay)`. With no news the
//! average fades towards 0 over `decay`, so a node that was slow once is
//! tried again later. A node never observed costs nothing while idle and
//! more than any observed node while it has a request in flight (Finagle's
//! penalty): a new endpoint gets one request at once, and more only after
//! its first answer shows how fast it is.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::node::nanos_since;

/// The cost of an unobserved node with requests in flight, in ns (about
/// 18 minutes of latency: above any real one).
const PENALTY: f64 = (1u64 << 40) as f64;

/// One node's latency average. Updates race benignly: two answers at the
/// same moment may blend as one.
#[derive(Debug)]
pub(super) struct PeakEwma {
    epoch: Instant,
    /// ns, as `f64` bits.
    latency: AtomicU64,
    /// When `latency` was last updated, in ns after `epoch`.
    stamp: AtomicU64,
    observed: AtomicBool,
}

impl PeakEwma {
    pub(super) fn new(epoch: Instant) -> PeakEwma {
        PeakEwma {
            epoch,
            latency: AtomicU64::new(0f64.to_bits()),
            stamp: AtomicU64::new(0),
            observed: AtomicBool::new(false),
        }
    }

    /// The average as of `now_ns` (a [`PeakEwma::stamp`]) and the share of
    /// it kept since the last update; `None` before any observation.
    fn faded(&self, now_ns: u64, decay: Duration) -> Option<(f64, f64)> {
        if !self.observed.load(Ordering::Acquire) {
            return None;
        }
        let latency = f64::from_bits(self.latency.load(Ordering::Relaxed));
        let stamp = self.stamp.load(Ordering::Relaxed);
        let elapsed = now_ns.saturating_sub(stamp) as f64;
        // (`as_secs_f64` rather than `as_nanos`: a 128-bit conversion to
        // floating point costs more than the rest of the update.)
        let kept = fade(elapsed / (decay.as_secs_f64() * 1e9));
        Some((latency * kept, kept))
    }

    /// Adds the latency of one answer.
    #[cfg(test)]
    pub(super) fn observe(&self, rtt: Duration, now: Instant, decay: Duration) {
        self.observe_at(rtt.as_secs_f64() * 1e9, self.stamp(now), decay);
    }

    /// [`PeakEwma::observe`] of `rtt` ns at `now_ns` (a [`PeakEwma::stamp`]).
    fn observe_at(&self, rtt: f64, now_ns: u64, decay: Duration) {
        let latency = match self.faded(now_ns, decay) {
            // `average` is already faded by `kept`: blend the answer in.
            Some((average, kept)) if rtt <= average => average + rtt * (1.0 - kept),
            _ => rtt,
        };
        self.latency.store(latency.to_bits(), Ordering::Relaxed);
        self.stamp.store(now_ns, Ordering::Relaxed);
        self.observed.store(true, Ordering::Release);
    }

    /// `at` as ns after this average's origin, to time a request with.
    pub(super) fn stamp(&self, at: Instant) -> u64 {
        nanos_since(self.epoch, at)
    }

    /// Adds the latency of a request sent at `started` (a
    /// [`PeakEwma::stamp`]) and answered at `now`: one reading of the
    /// difference serves both the latency and the fading.
    pub(super) fn observe_since(&self, started: u64, now: Instant, decay: Duration) {
        let now_ns = self.stamp(now);
        self.observe_at(now_ns.saturating_sub(started) as f64, now_ns, decay);
    }

    /// The cost of sending one more request, with `in_flight` already
    /// there.
    pub(super) fn cost(&self, now: Instant, decay: Duration, in_flight: usize) -> f64 {
        match self.faded(self.stamp(now), decay) {
            Some((latency, _)) => latency * (in_flight as f64 + 1.0),
            None if in_flight == 0 => 0.0,
            None => PENALTY + in_flight as f64,
        }
    }
}

/// `exp(-x)` for `x >= 0`. Under load answers come microseconds apart
/// against a decay of seconds, so `x` is tiny, and there four terms of the
/// series agree with `exp` to a unit or two in the last place, at a
/// fraction of its cost.
fn fade(x: f64) -> f64 {
    if x < 1e-4 {
        // The next term, x^4 / 24, is below 5e-18.
        1.0 - x * (1.0 - x * (0.5 - x / 6.0))
    } else {
        (-x).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECAY: Duration = Duration::from_secs(10);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn fading_matches_exp_on_both_sides_of_the_cut() {
        for x in [0.0, 1e-12, 1e-9, 3e-6, 5e-5, 9.99e-5, 1e-4, 0.3, 2.0, 40.0] {
            let (ours, exact) = (fade(x), (-x).exp());
            assert!(
                (ours - exact).abs() <= 2.0 * f64::EPSILON * exact,
                "{x}: {ours} {exact}"
            );
        }
    }

    #[test]
    fn a_peak_replaces_the_average_and_lower_answers_blend_in() {
        let t0 = Instant::now();
        let ewma = PeakEwma::new(t0);
        ewma.observe(ms(10), t0, DECAY);
        assert_eq!(ewma.cost(t0, DECAY, 0), 10e6);
        ewma.observe(ms(50), t0, DECAY);
        assert_eq!(ewma.cost(t0, DECAY, 1), 100e6);
        // 1 s later: the peak fades to 50·e^-0.1 and 10 ms is blended in.
        let later = t0 + Duration::from_secs(1);
        ewma.observe(ms(10), later, DECAY);
        let kept = (-0.1f64).exp();
        let expected = 50e6 * kept + 10e6 * (1.0 - kept);
        assert!((ewma.cost(later, DECAY, 0) - expected).abs() < 1.0);
    }

    #[test]
    fn the_average_fades_with_time() {
        let t0 = Instant::now();
        let ewma = PeakEwma::new(t0);
        ewma.observe(ms(100), t0, DECAY);
        let cost = ewma.cost(t0 + DECAY, DECAY, 0);
        assert!((cost - 100e6 / std::f64::consts::E).abs() < 1.0, "{cost}");
    }

    #[test]
    fn an_unobserved_node_gets_one_request_at_a_time() {
        let t0 = Instant::now();
        let new = PeakEwma::new(t0);
        let slow = PeakEwma::new(t0);
        slow.observe(Duration::from_secs(60), t0, DECAY);
        assert_eq!(new.cost(t0, DECAY, 0), 0.0);
        assert!(new.cost(t0, DECAY, 1) > slow.cost(t0, DECAY, 10));
    }
}
