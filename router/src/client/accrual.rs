//! Failure accrual: each endpoint's health, fed by the outcome of the
//! requests sent to it (Linkerd's `client.failureAccrual`, Finagle's
//! `FailureAccrualFactory` and `FailureAccrualPolicy`).
//!
//! A live node takes requests. When its policy says it has failed too much
//! it is removed ("dead") for the next pause of its backoff. Once the pause
//! has passed, one request (the probe) is let through and decides: success
//! revives the node (policy history and backoff start afresh), failure
//! removes it again for the next, longer, pause. Outcomes of requests that
//! were admitted before a removal are ignored.
//!
//! The policies, as Finagle has them:
//! - `io.l5d.consecutiveFailures`: dead after `failures` failures in a row;
//!   a success clears the count.
//! - `io.l5d.successRate`: an exponentially weighted moving average of
//!   success (1) and failure (0) over observations, with weight
//!   `exp(-1 / requests)` kept per observation (Finagle's `Ema` stamped by
//!   request count). Only a failure can remove the node, and only once at
//!   least `requests` outcomes have been seen since the node was made or
//!   revived, and the average is below `successRate`.
//! - `io.l5d.successRateWindowed`: the same average stamped by time, with
//!   weight `exp(-elapsed / window)`. A failure removes the node once a
//!   whole `window` has passed since the first outcome seen (Finagle counts
//!   from when the node was made; counting from the first outcome keeps
//!   idle time from passing for observation), at least 5 outcomes fell in
//!   the last window (Finagle's minimum request threshold) and the average
//!   is below `successRate`.
//! - `none`: outcomes never remove the node; `failFast` still can.
//!
//! The request path only touches atomics on a live node: [`NodeHealth::admit`]
//! reads the state and nothing else, and a success under
//! `consecutiveFailures` only clears a counter that is usually already 0.
//! Transitions, backoffs and the success-rate averages sit behind a small
//! mutex.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use namers::config::KindConfig;
use tokio::time::Instant;

use crate::policy::backoff::{BackoffConfig, BackoffSchedule};

const CONSECUTIVE_FAILURES: &str = "io.l5d.consecutiveFailures";
const SUCCESS_RATE: &str = "io.l5d.successRate";
const SUCCESS_RATE_WINDOWED: &str = "io.l5d.successRateWindowed";
const NONE: &str = "none";

/// The `failureAccrual` kinds this build has.
pub const KINDS: &[&str] = &[
    CONSECUTIVE_FAILURES,
    SUCCESS_RATE,
    SUCCESS_RATE_WINDOWED,
    NONE,
];

/// Fewest outcomes in the last window before `successRateWindowed` may
/// remove a node (Finagle's `DefaultMinimumRequestThreshold`).
const WINDOWED_MIN_REQUESTS: u32 = 5;

/// When a node has failed too much.
#[derive(Debug, Clone, PartialEq)]
pub enum AccrualPolicy {
    /// `failures` failures in a row.
    ConsecutiveFailures {
        /// How many.
        failures: u32,
    },
    /// The average success over the last `requests` outcomes is below
    /// `success_rate`.
    SuccessRate {
        /// The least acceptable success rate, in (0, 1].
        success_rate: f64,
        /// How many outcomes the average spans.
        requests: u32,
    },
    /// The average success over the last `window` is below `success_rate`.
    SuccessRateWindowed {
        /// The least acceptable success rate, in (0, 1].
        success_rate: f64,
        /// How long the average spans.
        window: Duration,
    },
    /// Never.
    None,
}

/// A `failureAccrual:` block, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct AccrualConfig {
    /// When a node is removed.
    pub policy: AccrualPolicy,
    /// How long it stays removed, removal after removal.
    pub backoff: BackoffConfig,
}

impl Default for AccrualConfig {
    /// Linkerd's default: 5 consecutive failures, then jittered pauses from
    /// 5 s to 300 s.
    fn default() -> AccrualConfig {
        AccrualConfig {
            policy: AccrualPolicy::ConsecutiveFailures { failures: 5 },
            backoff: default_backoff(),
        }
    }
}

fn default_backoff() -> BackoffConfig {
    BackoffConfig::Jittered {
        min_ms: 5_000,
        max_ms: 300_000,
    }
}

/// The keys every kind may have, and each kind's own; all optional here so
/// that a missing one is reported by name.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ConsecutiveParams {
    failures: Option<u32>,
    backoff: Option<BackoffConfig>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SuccessRateParams {
    success_rate: Option<f64>,
    requests: Option<u32>,
    backoff: Option<BackoffConfig>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WindowedParams {
    success_rate: Option<f64>,
    /// In seconds.
    window: Option<u64>,
    backoff: Option<BackoffConfig>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NoneParams {
    backoff: Option<BackoffConfig>,
}

impl AccrualConfig {
    /// From a `failureAccrual:` block at key path `at`. Errors read
    /// `"{at}: key: why"`.
    pub fn from_kind(at: &str, config: &KindConfig) -> Result<AccrualConfig, String> {
        let params = |e: String| format!("{at}: {e}");
        let (policy, backoff) = match config.kind.as_str() {
            CONSECUTIVE_FAILURES => {
                let p: ConsecutiveParams =
                    namers::config::kind_params(&config.params).map_err(params)?;
                let failures = required(at, "failures", p.failures)?;
                if failures == 0 {
                    return Err(format!("{at}: failures: must be at least 1"));
                }
                (AccrualPolicy::ConsecutiveFailures { failures }, p.backoff)
            }
            SUCCESS_RATE => {
                let p: SuccessRateParams =
                    namers::config::kind_params(&config.params).map_err(params)?;
                let success_rate = success_rate(at, p.success_rate)?;
                let requests = required(at, "requests", p.requests)?;
                if requests == 0 {
                    return Err(format!("{at}: requests: must be at least 1"));
                }
                let policy = AccrualPolicy::SuccessRate {
                    success_rate,
                    requests,
                };
                (policy, p.backoff)
            }
            SUCCESS_RATE_WINDOWED => {
                let p: WindowedParams =
                    namers::config::kind_params(&config.params).map_err(params)?;
                let success_rate = success_rate(at, p.success_rate)?;
                let window = required(at, "window", p.window)?;
                if window == 0 {
                    return Err(format!("{at}: window: must be at least 1 (seconds)"));
                }
                let policy = AccrualPolicy::SuccessRateWindowed {
                    success_rate,
                    window: Duration::from_secs(window),
                };
                (policy, p.backoff)
            }
            NONE => {
                let p: NoneParams = namers::config::kind_params(&config.params).map_err(params)?;
                (AccrualPolicy::None, p.backoff)
            }
            other => {
                return Err(namers::config::linkerd::unknown_kind(
                    at,
                    "failureAccrual",
                    other,
                    KINDS,
                ));
            }
        };
        let backoff = backoff.unwrap_or_else(default_backoff);
        backoff
            .validate()
            .map_err(|e| format!("{at}: backoff.{e}"))?;
        Ok(AccrualConfig { policy, backoff })
    }
}

fn required<T>(at: &str, key: &str, value: Option<T>) -> Result<T, String> {
    value.ok_or_else(|| format!("{at}: {key}: missing field"))
}

fn success_rate(at: &str, value: Option<f64>) -> Result<f64, String> {
    let rate = required(at, "successRate", value)?;
    if rate > 0.0 && rate <= 1.0 {
        Ok(rate)
    } else {
        Err(format!("{at}: successRate: must be in (0, 1] (got {rate})"))
    }
}

/// Where a node stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    /// Takes requests.
    Live,
    /// Removed until `until`.
    Dead {
        /// When the backoff ends.
        until: Instant,
    },
    /// The backoff has passed: the next request is the probe, or the probe
    /// is in flight.
    Probing,
}

/// How a request was let through to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// As usual: a live node.
    Normal,
    /// As the single probe of a dead node whose backoff has passed.
    Probe,
}

/// A change of a node's state that an outcome caused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The node is removed for `for_`.
    Removed {
        /// The backoff.
        for_: Duration,
    },
    /// The probe succeeded: the node is live again.
    Revived,
}

const LIVE: u8 = 0;
const DEAD: u8 = 1;
const PROBING: u8 = 2;

/// One endpoint's health. Shared (`Arc`) between the balancer's snapshot
/// and the requests in flight to it.
#[derive(Debug)]
pub struct NodeHealth {
    config: Arc<AccrualConfig>,
    /// The origin of `dead_until`.
    epoch: Instant,
    /// `LIVE`, `DEAD` or `PROBING`.
    state: AtomicU8,
    /// When the backoff ends, in ns after `epoch`; written before `state`
    /// becomes `DEAD`.
    dead_until: AtomicU64,
    /// Failures in a row, for `consecutiveFailures`.
    consecutive: AtomicU32,
    slow: Mutex<Slow>,
    removals: AtomicU64,
    revivals: AtomicU64,
    probes: AtomicU64,
}

/// What only transitions and the success-rate policies touch.
#[derive(Debug)]
struct Slow {
    backoff: BackoffSchedule,
    rate: Option<SuccessAverage>,
}

impl NodeHealth {
    /// A live node following `config`.
    pub fn new(config: Arc<AccrualConfig>) -> NodeHealth {
        let now = Instant::now();
        // An origin well before any instant callers will show us, so that
        // instants taken just before this node was made still compare right.
        let epoch = now.checked_sub(Duration::from_secs(3600)).unwrap_or(now);
        let rate = SuccessAverage::for_policy(&config.policy);
        NodeHealth {
            epoch,
            state: AtomicU8::new(LIVE),
            dead_until: AtomicU64::new(0),
            consecutive: AtomicU32::new(0),
            slow: Mutex::new(Slow {
                backoff: config.backoff.schedule(),
                rate,
            }),
            removals: AtomicU64::new(0),
            revivals: AtomicU64::new(0),
            probes: AtomicU64::new(0),
            config,
        }
    }

    /// The config this node follows.
    pub fn config(&self) -> &Arc<AccrualConfig> {
        &self.config
    }

    /// Where the node stands at `now`.
    pub fn state(&self, now: Instant) -> HealthState {
        match self.state.load(Ordering::Acquire) {
            LIVE => HealthState::Live,
            PROBING => HealthState::Probing,
            _ => {
                let until = self.dead_until.load(Ordering::Acquire);
                if self.nanos(now) >= until {
                    HealthState::Probing
                } else {
                    HealthState::Dead {
                        until: self.epoch + Duration::from_nanos(until),
                    }
                }
            }
        }
    }

    /// Whether the node is live, without a clock.
    pub fn is_live(&self) -> bool {
        self.state.load(Ordering::Acquire) == LIVE
    }

    /// Whether [`NodeHealth::admit`] would let a request through now,
    /// without claiming the probe.
    pub fn is_open(&self, now: impl FnOnce() -> Instant) -> bool {
        match self.state.load(Ordering::Acquire) {
            LIVE => true,
            PROBING => false,
            _ => self.nanos(now()) >= self.dead_until.load(Ordering::Acquire),
        }
    }

    /// Whether a request may go here now. Claims the single probe when a
    /// dead node's backoff has passed: until that probe is decided, no
    /// other request is let through.
    pub fn admit(&self, now: Instant) -> Option<Admission> {
        self.admit_with(|| now)
    }

    /// [`NodeHealth::admit`], reading the clock only for a dead node.
    pub fn admit_with(&self, now: impl FnOnce() -> Instant) -> Option<Admission> {
        match self.state.load(Ordering::Acquire) {
            LIVE => Some(Admission::Normal),
            PROBING => None,
            _ => {
                if self.nanos(now()) < self.dead_until.load(Ordering::Acquire) {
                    return None;
                }
                match self.state.compare_exchange(
                    DEAD,
                    PROBING,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        self.probes.fetch_add(1, Ordering::Relaxed);
                        Some(Admission::Probe)
                    }
                    Err(LIVE) => Some(Admission::Normal),
                    Err(_) => None,
                }
            }
        }
    }

    /// The outcome of a request admitted as `admission`. Failures past the
    /// policy's threshold remove the node for the next backoff; a probe's
    /// success revives it, a probe's failure removes it again.
    pub fn record(&self, admission: Admission, success: bool, now: Instant) -> Option<Transition> {
        self.record_with(admission, success, || now)
    }

    /// [`NodeHealth::record`], reading the clock only when needed.
    pub fn record_with(
        &self,
        admission: Admission,
        success: bool,
        now: impl FnOnce() -> Instant,
    ) -> Option<Transition> {
        if admission == Admission::Probe {
            return self.settle_probe(success, now());
        }
        if !self.is_live() {
            // Sent before the node was removed: it says nothing new.
            return None;
        }
        match &self.config.policy {
            AccrualPolicy::None => None,
            AccrualPolicy::ConsecutiveFailures { failures } => {
                if success {
                    if self.consecutive.load(Ordering::Relaxed) != 0 {
                        self.consecutive.store(0, Ordering::Relaxed);
                    }
                    None
                } else if self.consecutive.fetch_add(1, Ordering::AcqRel) + 1 >= *failures {
                    self.remove(now())
                } else {
                    None
                }
            }
            AccrualPolicy::SuccessRate { .. } | AccrualPolicy::SuccessRateWindowed { .. } => {
                let now = now();
                let mut slow = self.lock();
                let failed_too_much = slow
                    .rate
                    .as_mut()
                    .is_some_and(|rate| rate.observe(success, now));
                if failed_too_much && self.is_live() {
                    Some(self.remove_locked(&mut slow, now))
                } else {
                    None
                }
            }
        }
    }

    /// `failFast`: a connection failure removes a live node at once.
    pub fn mark_dead(&self, now: Instant) -> Option<Transition> {
        self.remove(now)
    }

    /// Gives back a probe whose request ended with no outcome (cancelled):
    /// the next request is the probe instead.
    pub fn cancel(&self, admission: Admission) {
        if admission == Admission::Probe {
            let _ = self
                .state
                .compare_exchange(PROBING, DEAD, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// How many times the node was removed (a failed probe counts again).
    pub fn removals(&self) -> u64 {
        self.removals.load(Ordering::Relaxed)
    }

    /// How many times a probe revived the node.
    pub fn revivals(&self) -> u64 {
        self.revivals.load(Ordering::Relaxed)
    }

    /// How many probes were let through.
    pub fn probes(&self) -> u64 {
        self.probes.load(Ordering::Relaxed)
    }

    fn remove(&self, now: Instant) -> Option<Transition> {
        let mut slow = self.lock();
        // Another outcome may have removed it while we waited.
        if !self.is_live() {
            return None;
        }
        Some(self.remove_locked(&mut slow, now))
    }

    fn remove_locked(&self, slow: &mut Slow, now: Instant) -> Transition {
        let pause = slow.backoff.next();
        self.dead_until
            .store(self.nanos(now + pause), Ordering::Release);
        self.state.store(DEAD, Ordering::Release);
        self.consecutive.store(0, Ordering::Relaxed);
        self.removals.fetch_add(1, Ordering::Relaxed);
        Transition::Removed { for_: pause }
    }

    fn settle_probe(&self, success: bool, now: Instant) -> Option<Transition> {
        let mut slow = self.lock();
        if self.state.load(Ordering::Acquire) != PROBING {
            return None;
        }
        if !success {
            return Some(self.remove_locked(&mut slow, now));
        }
        slow.backoff.reset();
        if let Some(rate) = &mut slow.rate {
            rate.reset();
        }
        self.consecutive.store(0, Ordering::Relaxed);
        self.state.store(LIVE, Ordering::Release);
        self.revivals.fetch_add(1, Ordering::Relaxed);
        Some(Transition::Revived)
    }

    fn lock(&self) -> MutexGuard<'_, Slow> {
        // The state behind the lock stays consistent even if a holder
        // panicked: every write is a whole field.
        self.slow.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }
}

/// The moving average of success behind the success-rate policies.
#[derive(Debug)]
struct SuccessAverage {
    required: f64,
    ema: Ema,
    window: Window,
}

#[derive(Debug)]
enum Window {
    /// Stamped by outcome count.
    Requests { size: u32, seen: u64 },
    /// Stamped by time since the first outcome.
    Time {
        size: Duration,
        started: Option<Instant>,
        recent: RecentCount,
    },
}

impl SuccessAverage {
    fn for_policy(policy: &AccrualPolicy) -> Option<SuccessAverage> {
        let (required, window) = match *policy {
            AccrualPolicy::SuccessRate {
                success_rate,
                requests,
            } => (
                success_rate,
                Window::Requests {
                    size: requests,
                    seen: 0,
                },
            ),
            AccrualPolicy::SuccessRateWindowed {
                success_rate,
                window,
            } => (
                success_rate,
                Window::Time {
                    size: window,
                    started: None,
                    recent: RecentCount::new(window),
                },
            ),
            _ => return None,
        };
        Some(SuccessAverage {
            required,
            ema: Ema::default(),
            window,
        })
    }

    /// Adds an outcome; true when it is a failure that should remove the
    /// node.
    fn observe(&mut self, success: bool, now: Instant) -> bool {
        let x = if success { 1.0 } else { 0.0 };
        let (rate, window_full) = match &mut self.window {
            Window::Requests { size, seen } => {
                *seen += 1;
                let rate = self.ema.update(*seen as f64, x, f64::from(*size));
                (rate, *seen >= u64::from(*size))
            }
            Window::Time {
                size,
                started,
                recent,
            } => {
                let started = *started.get_or_insert(now);
                let elapsed = now.saturating_duration_since(started);
                recent.add(elapsed);
                let rate = self
                    .ema
                    .update(elapsed.as_secs_f64(), x, size.as_secs_f64());
                let full = elapsed >= *size && recent.sum() >= WINDOWED_MIN_REQUESTS;
                (rate, full)
            }
        };
        !success && window_full && rate < self.required
    }

    fn reset(&mut self) {
        self.ema = Ema::default();
        match &mut self.window {
            Window::Requests { seen, .. } => *seen = 0,
            Window::Time {
                started, recent, ..
            } => {
                *started = None;
                recent.clear();
            }
        }
    }
}

/// Finagle's `Ema`: each value counts `1 - exp(-Δstamp / window)`.
#[derive(Debug, Default)]
struct Ema {
    last: Option<f64>,
    value: f64,
}

impl Ema {
    fn update(&mut self, stamp: f64, x: f64, window: f64) -> f64 {
        self.value = match self.last {
            None => x,
            Some(last) => {
                let kept = (-(stamp - last).max(0.0) / window).exp();
                x * (1.0 - kept) + self.value * kept
            }
        };
        self.last = Some(stamp);
        self.value
    }
}

/// Outcomes in the last window, in five slices (Finagle's `WindowedAdder`).
#[derive(Debug)]
struct RecentCount {
    slice: Duration,
    counts: [u32; 5],
    /// The slice number `counts` ends at.
    current: u64,
}

impl RecentCount {
    fn new(window: Duration) -> RecentCount {
        RecentCount {
            slice: (window / 5).max(Duration::from_millis(1)),
            counts: [0; 5],
            current: 0,
        }
    }

    fn add(&mut self, elapsed: Duration) {
        let slice = u64::try_from(elapsed.as_nanos() / self.slice.as_nanos()).unwrap_or(u64::MAX);
        // Clear the slices that fell out of the window.
        let stale = slice.saturating_sub(self.current).min(5);
        for n in 1..=stale {
            self.counts[((self.current + n) % 5) as usize] = 0;
        }
        self.current = self.current.max(slice);
        let at = (self.current % 5) as usize;
        self.counts[at] = self.counts[at].saturating_add(1);
    }

    fn sum(&self) -> u32 {
        self.counts.iter().sum()
    }

    fn clear(&mut self) {
        self.counts = [0; 5];
        self.current = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECOND: Duration = Duration::from_secs(1);

    fn node(policy: AccrualPolicy, backoff: BackoffConfig) -> NodeHealth {
        NodeHealth::new(Arc::new(AccrualConfig { policy, backoff }))
    }

    fn consecutive(failures: u32) -> NodeHealth {
        node(
            AccrualPolicy::ConsecutiveFailures { failures },
            BackoffConfig::Jittered {
                min_ms: 5_000,
                max_ms: 300_000,
            },
        )
    }

    fn fail(health: &NodeHealth, now: Instant) -> Option<Transition> {
        health.record(Admission::Normal, false, now)
    }

    fn succeed(health: &NodeHealth, now: Instant) -> Option<Transition> {
        health.record(Admission::Normal, true, now)
    }

    #[test]
    fn consecutive_failures_remove_at_the_threshold() {
        let health = consecutive(3);
        let t0 = Instant::now();
        assert_eq!(fail(&health, t0), None);
        assert_eq!(fail(&health, t0), None);
        assert_eq!(
            fail(&health, t0),
            Some(Transition::Removed { for_: 5 * SECOND })
        );
        assert_eq!(
            health.state(t0),
            HealthState::Dead {
                until: t0 + 5 * SECOND
            }
        );
        assert_eq!(health.admit(t0 + SECOND), None);
        assert_eq!(health.removals(), 1);
    }

    #[test]
    fn a_success_clears_the_failure_count() {
        let health = consecutive(3);
        let t0 = Instant::now();
        fail(&health, t0);
        fail(&health, t0);
        assert_eq!(succeed(&health, t0), None);
        assert_eq!(fail(&health, t0), None);
        assert_eq!(fail(&health, t0), None);
        assert!(health.is_live());
        assert!(fail(&health, t0).is_some());
    }

    #[test]
    fn one_probe_after_the_backoff_decides() {
        let health = consecutive(1);
        let t0 = Instant::now();
        fail(&health, t0);
        let open = t0 + 5 * SECOND;
        assert_eq!(health.admit(open - Duration::from_millis(1)), None);
        assert_eq!(health.state(open), HealthState::Probing);
        assert_eq!(health.admit(open), Some(Admission::Probe));
        // Until the probe is decided, nothing else goes through.
        assert_eq!(health.admit(open), None);
        assert_eq!(health.admit(open + 100 * SECOND), None);
        assert_eq!(health.probes(), 1);
        // A failed probe removes it again, for at least as long.
        let Some(Transition::Removed { for_ }) =
            health.record(Admission::Probe, false, open + SECOND)
        else {
            panic!("a failed probe removes the node");
        };
        assert!(for_ >= 5 * SECOND && for_ <= 15 * SECOND, "{for_:?}");
        let open = open + SECOND + for_;
        assert_eq!(health.admit(open - Duration::from_millis(1)), None);
        assert_eq!(health.admit(open), Some(Admission::Probe));
        assert_eq!(
            health.record(Admission::Probe, true, open),
            Some(Transition::Revived)
        );
        assert_eq!(health.state(open), HealthState::Live);
        assert_eq!(health.admit(open), Some(Admission::Normal));
        assert_eq!(
            (health.removals(), health.revivals(), health.probes()),
            (2, 1, 2)
        );
        // Revival starts the backoff afresh.
        assert_eq!(
            fail(&health, open),
            Some(Transition::Removed { for_: 5 * SECOND })
        );
    }

    #[test]
    fn outcomes_of_requests_sent_before_removal_are_ignored() {
        let health = consecutive(1);
        let t0 = Instant::now();
        fail(&health, t0);
        assert_eq!(fail(&health, t0), None);
        assert_eq!(succeed(&health, t0), None);
        assert_eq!(health.removals(), 1);
        assert!(matches!(health.state(t0), HealthState::Dead { .. }));
        // And they do not settle the probe either.
        assert_eq!(health.admit(t0 + 5 * SECOND), Some(Admission::Probe));
        assert_eq!(succeed(&health, t0 + 5 * SECOND), None);
        assert_eq!(health.state(t0 + 5 * SECOND), HealthState::Probing);
    }

    #[test]
    fn a_cancelled_probe_lets_the_next_request_probe() {
        let health = consecutive(1);
        let t0 = Instant::now();
        fail(&health, t0);
        let open = t0 + 5 * SECOND;
        assert_eq!(health.admit(open), Some(Admission::Probe));
        health.cancel(Admission::Probe);
        assert_eq!(health.admit(open), Some(Admission::Probe));
        assert_eq!(health.probes(), 2);
    }

    #[test]
    fn mark_dead_removes_a_live_node_at_once() {
        let health = consecutive(5);
        let t0 = Instant::now();
        assert_eq!(
            health.mark_dead(t0),
            Some(Transition::Removed { for_: 5 * SECOND })
        );
        assert_eq!(health.mark_dead(t0), None);
        assert_eq!(health.removals(), 1);
    }

    #[test]
    fn constant_backoff_pauses_the_same_each_removal() {
        let health = node(
            AccrualPolicy::ConsecutiveFailures { failures: 1 },
            BackoffConfig::Constant { ms: 700 },
        );
        let t0 = Instant::now();
        let pause = Duration::from_millis(700);
        assert_eq!(fail(&health, t0), Some(Transition::Removed { for_: pause }));
        assert_eq!(health.admit(t0 + pause), Some(Admission::Probe));
        assert_eq!(
            health.record(Admission::Probe, false, t0 + pause),
            Some(Transition::Removed { for_: pause })
        );
    }

    #[test]
    fn success_rate_waits_for_a_full_window_of_requests() {
        let health = node(
            AccrualPolicy::SuccessRate {
                success_rate: 0.9,
                requests: 10,
            },
            BackoffConfig::Constant { ms: 1_000 },
        );
        let t0 = Instant::now();
        for _ in 0..9 {
            assert_eq!(fail(&health, t0), None);
        }
        assert!(fail(&health, t0).is_some());
    }

    #[test]
    fn success_rate_removes_when_the_average_drops_below_the_target() {
        let health = node(
            AccrualPolicy::SuccessRate {
                success_rate: 0.9,
                requests: 10,
            },
            BackoffConfig::Constant { ms: 1_000 },
        );
        let t0 = Instant::now();
        for _ in 0..100 {
            succeed(&health, t0);
        }
        // One failure keeps the average at exp(-1/10) = 0.905; a second
        // takes it to 0.82.
        assert_eq!(fail(&health, t0), None);
        assert!(fail(&health, t0).is_some());
        // Revival forgets the history: a full window again before removal.
        let open = t0 + SECOND;
        assert_eq!(health.admit(open), Some(Admission::Probe));
        assert_eq!(
            health.record(Admission::Probe, true, open),
            Some(Transition::Revived)
        );
        for _ in 0..9 {
            assert_eq!(fail(&health, open), None);
        }
        assert!(fail(&health, open).is_some());
    }

    fn windowed(success_rate: f64, window: Duration) -> NodeHealth {
        node(
            AccrualPolicy::SuccessRateWindowed {
                success_rate,
                window,
            },
            BackoffConfig::Constant { ms: 1_000 },
        )
    }

    #[test]
    fn windowed_success_rate_waits_for_a_full_window_of_time() {
        let health = windowed(0.5, 10 * SECOND);
        let t0 = Instant::now();
        for i in 0..10 {
            assert_eq!(fail(&health, t0 + i * Duration::from_millis(900)), None);
        }
        assert!(fail(&health, t0 + 10 * SECOND).is_some());
    }

    #[test]
    fn windowed_success_rate_needs_enough_recent_requests() {
        let health = windowed(0.5, 10 * SECOND);
        let t0 = Instant::now();
        for _ in 0..10 {
            succeed(&health, t0);
        }
        // Long after: few requests in the last window do not remove it,
        // however bad they are.
        let later = t0 + 60 * SECOND;
        for i in 0..4 {
            assert_eq!(fail(&health, later + i * SECOND), None, "failure {i}");
        }
        assert!(fail(&health, later + 4 * SECOND).is_some());
    }

    #[test]
    fn windowed_success_rate_tolerates_occasional_failures() {
        let health = windowed(0.8, 10 * SECOND);
        let t0 = Instant::now();
        for i in 0..200u32 {
            let at = t0 + i * Duration::from_millis(100);
            // One failure in ten: a 90% success rate. (The first outcome
            // sets the average, so it is a success here.)
            assert_eq!(health.record(Admission::Normal, i % 10 != 9, at), None);
        }
        assert!(health.is_live());
    }

    #[test]
    fn policy_none_never_removes_on_outcomes() {
        let health = node(AccrualPolicy::None, BackoffConfig::Constant { ms: 10 });
        let t0 = Instant::now();
        for _ in 0..100 {
            assert_eq!(fail(&health, t0), None);
        }
        assert!(health.is_live());
        assert!(health.mark_dead(t0).is_some());
    }

    fn from_kind(value: serde_json::Value) -> Result<AccrualConfig, String> {
        let config: KindConfig = serde_json::from_value(value).map_err(|e| e.to_string())?;
        AccrualConfig::from_kind("routers[0].client.failureAccrual", &config)
    }

    #[test]
    fn reads_every_kind() {
        assert_eq!(
            from_kind(json!({"kind": "io.l5d.consecutiveFailures", "failures": 3})),
            Ok(AccrualConfig {
                policy: AccrualPolicy::ConsecutiveFailures { failures: 3 },
                backoff: default_backoff(),
            })
        );
        assert_eq!(
            from_kind(json!({
                "kind": "io.l5d.successRate", "successRate": 0.9, "requests": 1000,
                "backoff": {"kind": "jittered", "minMs": 5000, "maxMs": 300000},
            })),
            Ok(AccrualConfig {
                policy: AccrualPolicy::SuccessRate {
                    success_rate: 0.9,
                    requests: 1000
                },
                backoff: default_backoff(),
            })
        );
        assert_eq!(
            from_kind(json!({
                "kind": "io.l5d.successRateWindowed", "successRate": 0.5, "window": 30,
                "backoff": {"kind": "constant", "ms": 100},
            })),
            Ok(AccrualConfig {
                policy: AccrualPolicy::SuccessRateWindowed {
                    success_rate: 0.5,
                    window: 30 * SECOND
                },
                backoff: BackoffConfig::Constant { ms: 100 },
            })
        );
        assert_eq!(
            from_kind(json!({"kind": "none"})).map(|c| c.policy),
            Ok(AccrualPolicy::None)
        );
        let default = AccrualConfig::default();
        assert_eq!(
            default.policy,
            AccrualPolicy::ConsecutiveFailures { failures: 5 }
        );
        assert_eq!(default.backoff, default_backoff());
    }

    #[test]
    fn errors_name_the_key() {
        let at = "routers[0].client.failureAccrual";
        let cases = [
            (
                json!({"kind": "io.l5d.consecutiveFailures"}),
                "failures: missing field",
            ),
            (
                json!({"kind": "io.l5d.consecutiveFailures", "failures": 0}),
                "failures: must be at least 1",
            ),
            (
                json!({"kind": "io.l5d.successRate", "successRate": 1.5, "requests": 10}),
                "successRate: must be in (0, 1] (got 1.5)",
            ),
            (
                json!({"kind": "io.l5d.successRate", "successRate": 0.0, "requests": 10}),
                "successRate: must be in (0, 1] (got 0)",
            ),
            (
                json!({"kind": "io.l5d.successRate", "successRate": 0.9}),
                "requests: missing field",
            ),
            (
                json!({"kind": "io.l5d.successRateWindowed", "successRate": 0.9, "window": 0}),
                "window: must be at least 1 (seconds)",
            ),
            (
                json!({"kind": "io.l5d.consecutiveFailures", "failures": 2,
                       "backoff": {"kind": "jittered", "minMs": 10, "maxMs": 5}}),
                "backoff.minMs: must not exceed maxMs (10 > 5)",
            ),
        ];
        for (value, why) in cases {
            assert_eq!(from_kind(value), Err(format!("{at}: {why}")));
        }
        let unknown_key = from_kind(json!({"kind": "none", "failures": 1})).unwrap_err();
        assert!(
            unknown_key.starts_with(at) && unknown_key.contains("unknown field `failures`"),
            "{unknown_key}"
        );
        let bad_backoff =
            from_kind(json!({"kind": "none", "backoff": {"kind": "linear"}})).unwrap_err();
        assert!(
            bad_backoff.contains("backoff") && bad_backoff.contains("unknown variant `linear`"),
            "{bad_backoff}"
        );
        let unknown_kind = from_kind(json!({"kind": "io.l5d.flaky"})).unwrap_err();
        assert_eq!(
            unknown_kind,
            namers::config::linkerd::unknown_kind(at, "failureAccrual", "io.l5d.flaky", KINDS)
        );
    }
}
