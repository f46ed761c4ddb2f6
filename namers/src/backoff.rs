//! Pauses between failed calls to a backend: exponential backoff with
//! jitter, for every watch of the namers, of namerd's stores and of the
//! router's namerd interpreter.
//!
//! [`ExponentialBackoff`] is the checked, `Copy` schedule a config makes
//! once; [`Backoff`] is the state of one watch that follows it. The pause is
//! a function of the attempt number and of a random number given as an
//! argument ([`ExponentialBackoff::pause`], [`Backoff::next_pause_with`]),
//! so tests assert exact delays. Its arithmetic saturates.

use std::time::Duration;

/// Why a backoff schedule is refused.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum InvalidBackoff {
    /// The longest pause is shorter than the first.
    #[error("the maximum backoff {max:?} is below the minimum {min:?}")]
    MaxBelowMin {
        /// The first pause.
        min: Duration,
        /// The longest pause.
        max: Duration,
    },
    /// The jitter is not a fraction.
    #[error("the backoff jitter {0} is not between 0 and 1")]
    Jitter(f64),
}

/// A schedule of pauses that doubles from `min` up to `max`. With a jitter
/// `j`, each pause is drawn between `1 - j` and all of its step, so that
/// watches failing together do not retry together.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExponentialBackoff {
    min: Duration,
    max: Duration,
    jitter: f64,
}

impl ExponentialBackoff {
    /// The shortest first pause: a zero one would never grow.
    pub const FLOOR: Duration = Duration::from_millis(1);

    /// The usual jitter: pauses are drawn from the upper half of each step.
    pub const HALF: f64 = 0.5;

    /// Checks a schedule: `max` must not be below `min` and `jitter` must be
    /// between 0 (no jitter) and 1. A `min` below [`Self::FLOOR`] is the
    /// floor.
    pub fn try_new(
        min: Duration,
        max: Duration,
        jitter: f64,
    ) -> Result<ExponentialBackoff, InvalidBackoff> {
        if max < min {
            return Err(InvalidBackoff::MaxBelowMin { min, max });
        }
        if !(0.0..=1.0).contains(&jitter) {
            return Err(InvalidBackoff::Jitter(jitter));
        }
        let min = min.max(Self::FLOOR);
        Ok(ExponentialBackoff {
            min,
            max: max.max(min),
            jitter,
        })
    }

    /// From `min` to `max` with [`Self::HALF`] jitter; never refuses: a
    /// `max` below `min` is taken as `min`, a `min` below the floor as the
    /// floor.
    pub fn new(min: Duration, max: Duration) -> ExponentialBackoff {
        let min = min.max(Self::FLOOR);
        ExponentialBackoff {
            min,
            max: max.max(min),
            jitter: Self::HALF,
        }
    }

    /// The same steps, each paused in full.
    pub fn without_jitter(self) -> ExponentialBackoff {
        ExponentialBackoff {
            jitter: 0.0,
            ..self
        }
    }

    /// The first pause.
    pub fn min(&self) -> Duration {
        self.min
    }

    /// The longest pause.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The pause before retry number `attempt` (0 for the first):
    /// `min * 2^attempt`, at most `max`, scaled by `unit`, a random number
    /// in `[0, 1)`, over the jitter's share of it.
    pub fn pause(&self, attempt: u32, unit: f64) -> Duration {
        let step = self
            .min
            .saturating_mul(2u32.saturating_pow(attempt.min(32)))
            .min(self.max);
        if self.jitter == 0.0 {
            return step;
        }
        let unit = if unit.is_nan() {
            0.0
        } else {
            unit.clamp(0.0, 1.0)
        };
        let share = 1.0 - self.jitter + self.jitter * unit;
        // `mul_f64` would panic on a step near `Duration::MAX`.
        Duration::try_from_secs_f64(step.as_secs_f64() * share).unwrap_or(step)
    }
}

/// The backoff of one watch: how many attempts failed since the last
/// success, on a schedule.
#[derive(Clone, Debug)]
pub struct Backoff {
    schedule: ExponentialBackoff,
    attempts: u32,
}

impl From<ExponentialBackoff> for Backoff {
    fn from(schedule: ExponentialBackoff) -> Backoff {
        Backoff {
            schedule,
            attempts: 0,
        }
    }
}

impl Backoff {
    /// Starts at `min`, with the lenient checks of
    /// [`ExponentialBackoff::new`].
    pub fn new(min: Duration, max: Duration) -> Backoff {
        ExponentialBackoff::new(min, max).into()
    }

    /// How long to wait before the next attempt.
    pub fn next_pause(&mut self) -> Duration {
        self.next_pause_with(rand::random())
    }

    /// [`Backoff::next_pause`] with the random number in `[0, 1)` given.
    pub fn next_pause_with(&mut self, unit: f64) -> Duration {
        let pause = self.schedule.pause(self.attempts, unit);
        self.attempts = self.attempts.saturating_add(1);
        pause
    }

    /// After a success: the next failure waits the shortest pause again.
    pub fn reset(&mut self) {
        self.attempts = 0;
    }

    /// The pauses handed out since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_up_to_its_limit_and_starts_over_after_a_reset() {
        let schedule = ExponentialBackoff::new(100 * MS, 2000 * MS).without_jitter();
        let mut backoff = Backoff::from(schedule);
        let pauses: Vec<Duration> = (0..7).map(|_| backoff.next_pause()).collect();
        assert_eq!(
            pauses,
            [100, 200, 400, 800, 1600, 2000, 2000].map(|ms| ms * MS)
        );
        assert_eq!(backoff.attempts(), 7);
        backoff.reset();
        assert_eq!(backoff.next_pause(), 100 * MS);
    }

    #[test]
    fn jitter_spreads_each_pause_over_the_upper_half_of_its_step() {
        let mut backoff = Backoff::new(100 * MS, 400 * MS);
        let top: Vec<Duration> = (0..4).map(|_| backoff.next_pause_with(1.0)).collect();
        assert_eq!(top, [100, 200, 400, 400].map(|ms| ms * MS));
        backoff.reset();
        let bottom: Vec<Duration> = (0..4).map(|_| backoff.next_pause_with(0.0)).collect();
        assert_eq!(bottom, [50, 100, 200, 200].map(|ms| ms * MS));
        backoff.reset();
        assert_eq!(backoff.next_pause_with(0.5), 75 * MS);
        for step in [200, 400, 400, 400].map(|ms| ms * MS) {
            let pause = backoff.next_pause();
            assert!(pause >= step / 2 && pause <= step, "{pause:?}");
        }
    }

    #[test]
    fn a_zero_min_still_grows_and_a_max_below_the_min_is_the_min() {
        let mut backoff = Backoff::new(Duration::ZERO, Duration::from_secs(1));
        assert_eq!(backoff.next_pause_with(1.0), ExponentialBackoff::FLOOR);
        assert_eq!(backoff.next_pause_with(1.0), 2 * ExponentialBackoff::FLOOR);
        let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
        for _ in 0..4 {
            assert_eq!(backoff.next_pause_with(1.0), Duration::from_secs(2));
        }
    }

    #[test]
    fn bad_schedules_are_refused() {
        let s = Duration::from_secs(1);
        assert_eq!(
            ExponentialBackoff::try_new(2 * s, s, 0.5),
            Err(InvalidBackoff::MaxBelowMin { min: 2 * s, max: s })
        );
        assert!(ExponentialBackoff::try_new(s, s, 1.5).is_err());
        assert!(ExponentialBackoff::try_new(s, s, f64::NAN).is_err());
        assert_eq!(
            ExponentialBackoff::try_new(s, 2 * s, 0.5),
            Ok(ExponentialBackoff::new(s, 2 * s))
        );
    }

    #[test]
    fn huge_attempt_counts_saturate() {
        let schedule = ExponentialBackoff::new(Duration::from_secs(5), Duration::from_secs(600));
        assert_eq!(schedule.pause(u32::MAX, 1.0), Duration::from_secs(600));
        let unbounded = ExponentialBackoff::new(Duration::MAX / 2, Duration::MAX);
        assert_eq!(unbounded.pause(1000, 1.0), Duration::MAX);
        assert!(unbounded.pause(1000, 0.5) >= Duration::MAX / 2);
        let mut backoff = Backoff::from(schedule);
        for _ in 0..100 {
            backoff.next_pause_with(0.999);
        }
        let last = backoff.next_pause_with(0.999);
        assert!(last <= Duration::from_secs(600) && last > Duration::from_secs(299));
    }
}
