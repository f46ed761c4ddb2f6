//! Pauses between failed calls to a namer's backend.

use std::time::Duration;

/// Doubling from `min` up to `max`, each pause drawn between half and all
/// of its step, so that watches failing together do not retry together.
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    /// Starts at `min`; a `max` below `min` is taken as `min`.
    pub(crate) fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            step: min,
        }
    }

    /// How long to wait before the next attempt.
    pub(crate) fn next_pause(&mut self) -> Duration {
        let step = self.step;
        self.step = (step * 2).min(self.max);
        step.mul_f64(0.5 + 0.5 * rand::random::<f64>())
    }

    /// After a success: the next failure waits the shortest pause again.
    pub(crate) fn reset(&mut self) {
        self.step = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_up_to_its_limit() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        let pauses: Vec<Duration> = (0..12).map(|_| backoff.next_pause()).collect();
        assert!(pauses[0] >= Duration::from_millis(50) && pauses[0] <= Duration::from_millis(100));
        assert!(pauses[3] >= Duration::from_millis(400) && pauses[3] <= Duration::from_millis(800));
        assert!(pauses[11] >= Duration::from_secs(15) && pauses[11] <= Duration::from_secs(30));
        backoff.reset();
        assert!(backoff.next_pause() <= Duration::from_millis(100));
    }

    #[test]
    fn a_max_below_the_min_is_the_min() {
        let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
        for _ in 0..4 {
            let pause = backoff.next_pause();
            assert!(pause >= Duration::from_secs(1) && pause <= Duration::from_secs(2));
        }
    }
}
