//! Aperture, least loaded (Finagle's `ApertureLoadBandBalancer`): picks
//! are power of two choices within a window of the first endpoints, in an
//! order of this balancer's own. The window starts at `minAperture` and
//! moves with load: the smoothed number of requests in flight (an EWMA
//! over `smoothWindowMs`) divided by the window's size is kept between
//! `lowLoad` and `highLoad` by widening or narrowing one endpoint at a
//! time. Endpoints that are removed do not count towards the window: it
//! reaches further to hold as many that take requests.
//!
//! The load figure and the size are atomics updated at each pick;
//! concurrent picks may each adjust it, which only speeds the step.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::node::{Clock, Snapshot, nanos_since};

/// The parameters of `aperture`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Band {
    pub(super) smooth_window: Duration,
    pub(super) low_load: f64,
    pub(super) high_load: f64,
    pub(super) min_aperture: usize,
}

/// One balancer's window.
#[derive(Debug)]
pub(super) struct Aperture {
    epoch: Instant,
    size: AtomicUsize,
    /// Requests in flight through this balancer; picks hold a handle.
    pub(super) in_flight: Arc<AtomicUsize>,
    /// The smoothed `in_flight`, as `f64` bits.
    smoothed: AtomicU64,
    /// When `smoothed` was last updated, in ns after `epoch`; 0 before.
    stamp: AtomicU64,
}

impl Aperture {
    pub(super) fn new(epoch: Instant, band: &Band) -> Aperture {
        Aperture {
            epoch,
            size: AtomicUsize::new(band.min_aperture),
            in_flight: Arc::default(),
            smoothed: AtomicU64::new(0f64.to_bits()),
            stamp: AtomicU64::new(0),
        }
    }

    /// How many endpoints the window holds now.
    pub(super) fn size(&self) -> usize {
        self.size.load(Ordering::Relaxed)
    }

    /// Updates the load figure and the window; returns where the window
    /// ends in `snapshot` (not empty).
    pub(super) fn window(&self, snapshot: &Snapshot, band: &Band, clock: &Clock) -> usize {
        let n = snapshot.nodes.len();
        let load = self.smooth(band, clock.now());
        let floor = band.min_aperture.min(n);
        let mut size = self.size.load(Ordering::Relaxed).clamp(floor, n);
        let per_node = load / size as f64;
        if per_node >= band.high_load && size < n {
            size += 1;
        } else if per_node <= band.low_load && size > floor {
            size -= 1;
        }
        self.size.store(size, Ordering::Relaxed);
        // The shortest prefix holding `size` endpoints that take requests.
        let mut open = 0;
        for (i, node) in snapshot.nodes.iter().enumerate() {
            if node.is_open(clock) {
                open += 1;
                if open == size {
                    return i + 1;
                }
            }
        }
        n
    }

    /// The in-flight count averaged over `smooth_window`, as of `now`.
    fn smooth(&self, band: &Band, now: Instant) -> f64 {
        let sample = self.in_flight.load(Ordering::Relaxed) as f64;
        let now_ns = nanos_since(self.epoch, now).max(1);
        let stamp = self.stamp.swap(now_ns, Ordering::Relaxed);
        let smoothed = if stamp == 0 {
            sample
        } else {
            let previous = f64::from_bits(self.smoothed.load(Ordering::Relaxed));
            let elapsed = now_ns.saturating_sub(stamp) as f64;
            let kept = (-elapsed / band.smooth_window.as_nanos() as f64).exp();
            previous * kept + sample * (1.0 - kept)
        };
        self.smoothed.store(smoothed.to_bits(), Ordering::Relaxed);
        smoothed
    }
}
