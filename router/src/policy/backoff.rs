//! Linkerd's `backoff:` blocks, used by failure accrual (how long a node
//! stays dead) and by retries (how long to wait before the next attempt).
//!
//! `{kind: constant, ms}` waits the same time every step. `{kind: jittered,
//! minMs, maxMs}` is Finagle's `Backoff.decorrelatedJittered` (the AWS
//! "decorrelated jitter"): the first pause is `minMs`, each next one is drawn
//! uniformly from `minMs` to three times the previous pause, capped at
//! `maxMs`. A config is checked once ([`BackoffConfig::validate`]); each
//! user then owns a [`BackoffSchedule`] that remembers its last pause.

use std::time::Duration;

/// `backoff:` — `{kind: constant, ms}` (ms default 0) or
/// `{kind: jittered, minMs, maxMs}` (both required, `minMs <= maxMs`,
/// `maxMs > 0`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum BackoffConfig {
    /// The same pause every time.
    Constant {
        /// The pause, in ms.
        #[serde(default)]
        ms: u64,
    },
    /// Decorrelated jitter between `min_ms` and `max_ms`.
    Jittered {
        /// The first pause, and the least any pause can be, in ms.
        min_ms: u64,
        /// The longest pause, in ms.
        max_ms: u64,
    },
}

impl BackoffConfig {
    /// Checks the bounds; the message names the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            BackoffConfig::Constant { .. } => Ok(()),
            BackoffConfig::Jittered { min_ms, max_ms } => {
                if max_ms == 0 {
                    return Err("maxMs: must be above 0".to_string());
                }
                if min_ms > max_ms {
                    return Err(format!(
                        "minMs: must not exceed maxMs ({min_ms} > {max_ms})"
                    ));
                }
                Ok(())
            }
        }
    }

    /// A fresh schedule following this config.
    pub fn schedule(&self) -> BackoffSchedule {
        BackoffSchedule {
            config: self.clone(),
            previous: None,
        }
    }
}

/// The pauses of one user of a [`BackoffConfig`]: each call to
/// [`BackoffSchedule::next`] gives the next one.
#[derive(Debug, Clone)]
pub struct BackoffSchedule {
    config: BackoffConfig,
    previous: Option<Duration>,
}

impl BackoffSchedule {
    /// The next pause.
    // Not an `Iterator`: a schedule never ends, so there is no `Option`.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Duration {
        self.next_with(rand::random::<f64>())
    }

    /// The next pause, with `unit` (in `[0, 1)`) as the random draw, so
    /// tests can ask for exact pauses.
    pub fn next_with(&mut self, unit: f64) -> Duration {
        let pause = match (&self.config, self.previous) {
            (BackoffConfig::Constant { ms }, _) => Duration::from_millis(*ms),
            (BackoffConfig::Jittered { min_ms, .. }, None) => Duration::from_millis(*min_ms),
            (BackoffConfig::Jittered { min_ms, max_ms }, Some(previous)) => {
                decorrelated(*min_ms, *max_ms, previous, unit)
            }
        };
        self.previous = Some(pause);
        pause
    }

    /// Starts again from the first pause.
    pub fn reset(&mut self) {
        self.previous = None;
    }
}

/// `min(max, uniform(min, 3 × previous))`, in whole ms.
fn decorrelated(min_ms: u64, max_ms: u64, previous: Duration, unit: f64) -> Duration {
    // A zero pause would never grow: grow from 1 ms at least.
    let previous_ms = u64::try_from(previous.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    let upper = previous_ms.saturating_mul(3).min(max_ms).max(min_ms);
    let span = (upper - min_ms) as f64;
    let drawn = min_ms.saturating_add((span * unit.clamp(0.0, 1.0)) as u64);
    Duration::from_millis(drawn.min(max_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: serde_json::Value) -> Result<BackoffConfig, String> {
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    fn jittered(min_ms: u64, max_ms: u64) -> BackoffConfig {
        BackoffConfig::Jittered { min_ms, max_ms }
    }

    #[test]
    fn constant_pauses_the_same_every_time() {
        let mut schedule = BackoffConfig::Constant { ms: 250 }.schedule();
        for _ in 0..5 {
            assert_eq!(schedule.next(), Duration::from_millis(250));
        }
    }

    #[test]
    fn jittered_starts_at_min_and_stays_within_bounds() {
        let mut schedule = jittered(10, 1_000).schedule();
        assert_eq!(schedule.next(), Duration::from_millis(10));
        let mut previous = Duration::from_millis(10);
        for _ in 0..10_000 {
            let pause = schedule.next();
            assert!(pause >= Duration::from_millis(10), "{pause:?}");
            assert!(pause <= Duration::from_millis(1_000), "{pause:?}");
            assert!(pause <= (previous * 3).max(Duration::from_millis(10)));
            previous = pause;
        }
    }

    #[test]
    fn jittered_grows_up_to_three_times_the_last_pause_then_caps() {
        let mut schedule = jittered(10, 1_000).schedule();
        // The highest draws: 10, 30, 90, 270, 810, then the cap.
        let pauses: Vec<u64> = (0..7)
            .map(|_| schedule.next_with(0.999_999_9).as_millis() as u64)
            .collect();
        assert_eq!(&pauses[..5], &[10, 29, 86, 257, 770]);
        assert_eq!(pauses[6], 999);
        // The lowest draw is min, whatever came before.
        assert_eq!(schedule.next_with(0.0), Duration::from_millis(10));
    }

    #[test]
    fn reset_starts_again_from_min() {
        let mut schedule = jittered(100, 10_000).schedule();
        schedule.next();
        schedule.next_with(0.9);
        assert!(schedule.next_with(0.9) > Duration::from_millis(100));
        schedule.reset();
        assert_eq!(schedule.next(), Duration::from_millis(100));
    }

    #[test]
    fn a_zero_min_still_grows() {
        let mut schedule = jittered(0, 100).schedule();
        assert_eq!(schedule.next(), Duration::ZERO);
        assert_eq!(schedule.next_with(0.99), Duration::from_millis(2));
        assert!(schedule.next_with(0.99) > Duration::from_millis(2));
    }

    #[test]
    fn min_equal_to_max_is_constant() {
        let mut schedule = jittered(50, 50).schedule();
        for _ in 0..10 {
            assert_eq!(schedule.next(), Duration::from_millis(50));
        }
    }

    #[test]
    fn validation_names_the_key() {
        assert_eq!(jittered(5, 300).validate(), Ok(()));
        assert_eq!(jittered(0, 1).validate(), Ok(()));
        assert_eq!(BackoffConfig::Constant { ms: 0 }.validate(), Ok(()));
        assert_eq!(
            jittered(500, 300).validate(),
            Err("minMs: must not exceed maxMs (500 > 300)".to_string())
        );
        assert_eq!(
            jittered(0, 0).validate(),
            Err("maxMs: must be above 0".to_string())
        );
    }

    #[test]
    fn parses_linkerd_keys() {
        assert_eq!(
            parse(json!({"kind": "jittered", "minMs": 10, "maxMs": 10000})),
            Ok(jittered(10, 10_000))
        );
        assert_eq!(
            parse(json!({"kind": "constant", "ms": 30})),
            Ok(BackoffConfig::Constant { ms: 30 })
        );
        assert_eq!(
            parse(json!({"kind": "constant"})),
            Ok(BackoffConfig::Constant { ms: 0 })
        );
    }

    #[test]
    fn parse_errors_are_readable() {
        let bad_kind = parse(json!({"kind": "exponential"})).unwrap_err();
        assert!(
            bad_kind.contains("unknown variant `exponential`")
                && bad_kind.contains("`constant`")
                && bad_kind.contains("`jittered`"),
            "{bad_kind}"
        );
        let unknown = parse(json!({"kind": "constant", "ms": 1, "jitter": 2})).unwrap_err();
        assert!(unknown.contains("unknown field `jitter`"), "{unknown}");
        let missing = parse(json!({"kind": "jittered", "minMs": 1})).unwrap_err();
        assert!(missing.contains("missing field `maxMs`"), "{missing}");
        let no_kind = parse(json!({"ms": 1})).unwrap_err();
        assert!(no_kind.contains("missing field `kind`"), "{no_kind}");
        let wrong_case = parse(json!({"kind": "jittered", "min_ms": 1, "maxMs": 2})).unwrap_err();
        assert!(
            wrong_case.contains("unknown field `min_ms`"),
            "{wrong_case}"
        );
    }
}
