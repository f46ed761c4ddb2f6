//! When to reopen a watch: at once after a stream that worked, then with
//! jittered exponential backoff while attempts keep failing.

use std::time::Duration;

use namers::backoff::ExponentialBackoff;
use tokio::time::Instant;

/// Linkerd's `retry: {baseSeconds, maxSeconds}` as durations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Retry {
    /// The first delay after a failed reconnection.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for Retry {
    /// Linkerd's defaults: 5 s, doubling up to 600 s.
    fn default() -> Retry {
        Retry {
            base: Duration::from_secs(5),
            max: Duration::from_secs(600),
        }
    }
}

/// The reconnection schedule of one watch: namerd-watch policy (reopen at
/// once after a stream that worked) over the shared exponential backoff.
#[derive(Debug)]
pub(crate) struct Backoff {
    retry: Retry,
    schedule: ExponentialBackoff,
    /// Attempts since the last one that delivered a value.
    failures: u32,
    /// When a watch was last reopened without waiting.
    last_immediate: Option<Instant>,
}

impl Backoff {
    pub(crate) fn new(retry: Retry) -> Backoff {
        Backoff {
            retry,
            schedule: ExponentialBackoff::new(retry.base, retry.max),
            failures: 0,
            last_immediate: None,
        }
    }

    /// How long to wait before the next attempt, after one that ended;
    /// `progressed` says whether it delivered a value. `unit` is a random
    /// number in `[0, 1)` that spreads the delay over its upper half.
    ///
    /// A watch that worked is reopened at once, unless that already
    /// happened within `base` (a namerd that answers and hangs up each
    /// time must not be hammered). Each further failure doubles the delay,
    /// from `base` up to `max`.
    pub(crate) fn next_delay(&mut self, progressed: bool, now: Instant, unit: f64) -> Duration {
        if progressed {
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        let recently = self
            .last_immediate
            .is_some_and(|at| now.saturating_duration_since(at) < self.retry.base);
        if self.failures == 1 && !recently {
            self.last_immediate = Some(now);
            return Duration::ZERO;
        }
        // The first failure after an immediate reopening waits `base`.
        self.schedule.pause(self.failures.saturating_sub(2), unit)
    }

    /// Consecutive failed attempts.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn reopens_at_once_then_backs_off_exponentially_to_the_cap() {
        let mut b = Backoff::new(Retry {
            base: S,
            max: 5 * S,
        });
        let now = Instant::now();
        // A working stream ended: reopen at once.
        assert_eq!(b.next_delay(true, now, 1.0), Duration::ZERO);
        // The reopening failed, and again, and again...
        let delays: Vec<_> = (0..6).map(|_| b.next_delay(false, now, 1.0)).collect();
        assert_eq!(delays, vec![S, 2 * S, 4 * S, 5 * S, 5 * S, 5 * S]);
        assert_eq!(b.failures(), 7);
        // Jitter spreads the delay over its upper half.
        assert_eq!(b.next_delay(false, now, 0.0), 5 * S / 2);
        // A stream that worked resets the schedule, but two immediate
        // reopenings within `base` are not allowed.
        assert_eq!(b.next_delay(true, now, 1.0), S);
        tokio::time::advance(S).await;
        assert_eq!(
            b.next_delay(true, Instant::now(), 1.0),
            Duration::ZERO,
            "a working stream after `base` is reopened at once again"
        );
    }

    #[test]
    fn huge_failure_counts_do_not_overflow() {
        let mut b = Backoff::new(Retry::default());
        let now = Instant::now();
        let mut last = Duration::ZERO;
        for _ in 0..100 {
            last = b.next_delay(false, now, 0.999);
        }
        assert!(last <= Duration::from_secs(600) && last > Duration::from_secs(299));
    }
}
