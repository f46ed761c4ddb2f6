//! Retry budgets: how many retries a service (`service.retries.budget`) or
//! requeues a client (`client.requeueBudget`) may make, as a share of the
//! requests it sent lately plus a reserve for quiet periods.
//!
//! This is Finagle's token retry budget: each request deposits, each retry
//! withdraws `1 / percentCanRetry` deposits' worth, deposits and withdrawals
//! are forgotten after `ttlSecs`, and `minRetriesPerSec * ttlSecs` retries
//! are always on top. Finagle's arithmetic is kept (a deposit is worth 1000
//! tokens, a retry costs `1000 / percentCanRetry` of them, truncated), so a
//! budget allows the same number of retries as Linkerd's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// A `budget:` block: `{minRetriesPerSec: 10, percentCanRetry: 0.2,
/// ttlSecs: 10}`, every key optional with Linkerd's default.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct BudgetConfig {
    /// Retries per second allowed however few requests are sent; 0 for none.
    pub min_retries_per_sec: u32,
    /// Retries allowed per request sent: 0.2 is one retry per five
    /// requests, 2.0 two retries per request.
    pub percent_can_retry: f64,
    /// How long a request (or a retry) counts toward the budget.
    pub ttl_secs: u64,
}

impl Default for BudgetConfig {
    fn default() -> BudgetConfig {
        BudgetConfig {
            min_retries_per_sec: 10,
            percent_can_retry: 0.2,
            ttl_secs: 10,
        }
    }
}

/// Finagle's bounds.
const MAX_PERCENT_CAN_RETRY: f64 = 1000.0;
const MIN_TTL_SECS: u64 = 1;
const MAX_TTL_SECS: u64 = 60;

impl BudgetConfig {
    /// Checks the values against Finagle's bounds; the error starts with
    /// the key it is about.
    pub fn validate(&self) -> Result<(), String> {
        // Written so that NaN is refused too.
        if !(0.0..=MAX_PERCENT_CAN_RETRY).contains(&self.percent_can_retry) {
            return Err("percentCanRetry: must be between 0 and 1000".to_string());
        }
        if !(MIN_TTL_SECS..=MAX_TTL_SECS).contains(&self.ttl_secs) {
            return Err("ttlSecs: must be between 1 and 60".to_string());
        }
        Ok(())
    }
}

/// Tokens one request deposits (Finagle's scale factor).
const DEPOSIT_TOKENS: i128 = 1000;

/// The most tokens a retry costs.
const MAX_WITHDRAWAL_TOKENS: i128 = 1_000_000_000_000;

/// A ttl is cut into this many slices; a deposit is forgotten when its
/// slice leaves the window, so between 0.9 and 1 ttl after it was made.
const SLICES: u32 = 10;

/// The retries one service or one client may make. Shared by all its
/// requests, so every call is a few atomic operations and no lock.
#[derive(Debug)]
pub struct RetryBudget {
    /// `None` when the config allows no retries at all.
    bucket: Option<Bucket>,
}

impl RetryBudget {
    /// A budget for `config`, which should be validated; out-of-range
    /// values are brought within Finagle's bounds rather than refused.
    pub fn new(config: &BudgetConfig) -> RetryBudget {
        let percent = if config.percent_can_retry.is_nan() {
            0.0
        } else {
            config.percent_can_retry.clamp(0.0, MAX_PERCENT_CAN_RETRY)
        };
        let ttl_secs = config.ttl_secs.clamp(MIN_TTL_SECS, MAX_TTL_SECS);
        if percent == 0.0 && config.min_retries_per_sec == 0 {
            return RetryBudget { bucket: None };
        }
        // With no percentage a deposit is worth nothing and a retry costs one
        // token, so only the reserve is spent.
        let (deposit, withdrawal) = if percent == 0.0 {
            (0, 1)
        } else {
            // Capping the cost keeps every token count far from overflow;
            // it only matters below one retry per billion requests.
            let cost = (DEPOSIT_TOKENS as f64 / percent) as i128;
            (DEPOSIT_TOKENS, cost.clamp(1, MAX_WITHDRAWAL_TOKENS))
        };
        let reserve = i128::from(config.min_retries_per_sec) * i128::from(ttl_secs) * withdrawal;
        RetryBudget {
            bucket: Some(Bucket {
                deposit,
                withdrawal,
                reserve,
                slice: Duration::from_secs(ttl_secs) / SLICES,
                start: Instant::now(),
                deposits: Window::default(),
                withdrawals: Window::default(),
            }),
        }
    }

    /// Records a request sent for the first time.
    pub fn deposit(&self) {
        self.deposit_at(Instant::now());
    }

    /// [`RetryBudget::deposit`] for a request that arrived at `now` (a
    /// time the caller has read anyway: the clock is not free).
    pub fn deposit_at(&self, now: Instant) {
        if let Some(bucket) = &self.bucket {
            bucket.deposits.add(bucket.epoch(now));
        }
    }

    /// Takes one retry from the budget; `false` when it is spent and the
    /// retry must not be made.
    ///
    /// Two withdrawals racing for the last retry may both get it, as in
    /// Finagle: a budget bounds retry storms, it is not a quota.
    pub fn try_withdraw(&self) -> bool {
        let Some(bucket) = &self.bucket else {
            return false;
        };
        let epoch = bucket.epoch(Instant::now());
        if bucket.tokens(epoch) < bucket.withdrawal {
            return false;
        }
        bucket.withdrawals.add(epoch);
        true
    }

    /// How many retries the budget allows now, for metrics and the admin
    /// page.
    pub fn balance(&self) -> u64 {
        let Some(bucket) = &self.bucket else {
            return 0;
        };
        let retries = bucket.tokens(bucket.epoch(Instant::now())) / bucket.withdrawal;
        u64::try_from(retries.max(0)).unwrap_or(u64::MAX)
    }
}

/// Finagle's leaky token bucket, keeping counts of deposits and withdrawals
/// rather than tokens so that no count can overflow.
#[derive(Debug)]
struct Bucket {
    /// Tokens a deposit adds.
    deposit: i128,
    /// Tokens a retry takes.
    withdrawal: i128,
    /// Tokens that never expire: `minRetriesPerSec * ttlSecs` retries.
    reserve: i128,
    slice: Duration,
    start: Instant,
    deposits: Window,
    withdrawals: Window,
}

impl Bucket {
    /// Which slice `now` falls in, counted from the budget's creation.
    fn epoch(&self, now: Instant) -> u32 {
        let elapsed = now.saturating_duration_since(self.start).as_nanos();
        let slice = self.slice.as_nanos().max(1);
        // Wraps after 2^32 slices, over 13 years at the shortest ttl.
        (elapsed / slice) as u32
    }

    /// Tokens in the bucket; negative when recent retries were paid with
    /// deposits that have expired since.
    fn tokens(&self, epoch: u32) -> i128 {
        let deposited = i128::from(self.deposits.sum(epoch)) * self.deposit;
        let withdrawn = i128::from(self.withdrawals.sum(epoch)) * self.withdrawal;
        self.reserve + deposited - withdrawn
    }
}

/// Event counts for the last [`SLICES`] slices. Each slot packs the slice it
/// counts (high 32 bits) with its count (low 32 bits), so moving a slot to a
/// new slice and counting in it is one compare-and-swap.
#[derive(Debug, Default)]
struct Window {
    slots: [AtomicU64; SLICES as usize],
}

impl Window {
    fn add(&self, epoch: u32) {
        let slot = &self.slots[(epoch % SLICES) as usize];
        let mut current = slot.load(Ordering::Relaxed);
        loop {
            let (slot_epoch, count) = unpack(current);
            let next = if slot_epoch == epoch {
                pack(epoch, count.saturating_add(1))
            } else {
                pack(epoch, 1)
            };
            match slot.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// Events in the slices still inside the window at `epoch`.
    fn sum(&self, epoch: u32) -> u64 {
        self.slots
            .iter()
            .map(|slot| unpack(slot.load(Ordering::Relaxed)))
            .filter(|&(slot_epoch, _)| epoch.wrapping_sub(slot_epoch) < SLICES)
            .map(|(_, count)| u64::from(count))
            .sum()
    }
}

fn pack(epoch: u32, count: u32) -> u64 {
    (u64::from(epoch) << 32) | u64::from(count)
}

fn unpack(slot: u64) -> (u32, u32) {
    ((slot >> 32) as u32, slot as u32)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tokio::time::advance;

    fn budget(min_retries_per_sec: u32, percent_can_retry: f64, ttl_secs: u64) -> RetryBudget {
        RetryBudget::new(&BudgetConfig {
            min_retries_per_sec,
            percent_can_retry,
            ttl_secs,
        })
    }

    /// Withdraws until refused, and says how many were allowed.
    fn drain(budget: &RetryBudget) -> u64 {
        let mut n = 0;
        while budget.try_withdraw() {
            n += 1;
            assert!(n < 1_000_000, "the budget never ran out");
        }
        n
    }

    #[test]
    fn config_defaults_are_linkerds() {
        let config: BudgetConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, BudgetConfig::default());
        assert_eq!(config.min_retries_per_sec, 10);
        assert_eq!(config.percent_can_retry, 0.2);
        assert_eq!(config.ttl_secs, 10);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn config_keys_are_camel_case_and_strict() {
        let config: BudgetConfig = serde_json::from_str(
            r#"{"minRetriesPerSec": 5, "percentCanRetry": 0.5, "ttlSecs": 15}"#,
        )
        .unwrap();
        assert_eq!(
            config,
            BudgetConfig {
                min_retries_per_sec: 5,
                percent_can_retry: 0.5,
                ttl_secs: 15
            }
        );
        let err = serde_json::from_str::<BudgetConfig>(r#"{"ttl": 15}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `ttl`"), "{err}");
        let err = serde_json::from_str::<BudgetConfig>(r#"{"minRetriesPerSec": -1}"#).unwrap_err();
        assert!(err.to_string().contains("-1"), "{err}");
    }

    #[test]
    fn validation_uses_finagles_bounds() {
        let with = |percent_can_retry: f64, ttl_secs: u64| BudgetConfig {
            min_retries_per_sec: 10,
            percent_can_retry,
            ttl_secs,
        };
        for ok in [with(0.0, 1), with(1000.0, 60), with(2.0, 10)] {
            assert_eq!(ok.validate(), Ok(()), "{ok:?}");
        }
        let percent = Err("percentCanRetry: must be between 0 and 1000".to_string());
        let ttl = Err("ttlSecs: must be between 1 and 60".to_string());
        let cases = [
            (with(-0.1, 10), &percent),
            (with(1000.5, 10), &percent),
            (with(f64::NAN, 10), &percent),
            (with(0.2, 0), &ttl),
            (with(0.2, 61), &ttl),
        ];
        for (config, expected) in cases {
            assert_eq!(&config.validate(), expected, "{config:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_fifth_of_requests_may_be_retried_on_top_of_the_reserve() {
        let budget = budget(1, 0.2, 10);
        // The reserve: 1 retry a second over 10 seconds.
        assert_eq!(budget.balance(), 10);
        for _ in 0..100 {
            budget.deposit();
        }
        assert_eq!(budget.balance(), 30);
        assert_eq!(drain(&budget), 30);
        assert_eq!(budget.balance(), 0);
        assert!(!budget.try_withdraw());
        // One more request is not yet worth a retry; five are.
        budget.deposit();
        assert!(!budget.try_withdraw());
        for _ in 0..4 {
            budget.deposit();
        }
        assert!(budget.try_withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn without_reserve_only_deposits_pay_for_retries() {
        let budget = budget(0, 0.2, 10);
        assert_eq!(budget.balance(), 0);
        assert!(!budget.try_withdraw());
        for _ in 0..100 {
            budget.deposit();
        }
        assert_eq!(drain(&budget), 20);
    }

    #[tokio::test(start_paused = true)]
    async fn fractions_of_a_retry_accumulate() {
        // 1000 / 0.3 = 3333 tokens a retry: 100 requests pay for 30.
        let budget = budget(0, 0.3, 10);
        for _ in 0..100 {
            budget.deposit();
        }
        assert_eq!(drain(&budget), 30);
    }

    #[tokio::test(start_paused = true)]
    async fn deposits_expire_after_the_ttl() {
        let budget = budget(0, 0.5, 10);
        for _ in 0..10 {
            budget.deposit();
        }
        assert_eq!(budget.balance(), 5);
        advance(Duration::from_millis(9_999)).await;
        assert_eq!(budget.balance(), 5);
        advance(Duration::from_millis(1)).await;
        assert_eq!(budget.balance(), 0);
        assert!(!budget.try_withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn deposits_of_each_slice_expire_on_their_own() {
        let budget = budget(0, 1.0, 10);
        budget.deposit();
        advance(Duration::from_secs(5)).await;
        budget.deposit();
        budget.deposit();
        assert_eq!(budget.balance(), 3);
        advance(Duration::from_secs(5)).await;
        assert_eq!(budget.balance(), 2);
        advance(Duration::from_secs(5)).await;
        assert_eq!(budget.balance(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_reserve_does_not_expire_and_comes_back() {
        let budget = budget(2, 0.0, 5);
        assert_eq!(budget.balance(), 10);
        assert_eq!(drain(&budget), 10);
        // Requests add nothing when percentCanRetry is 0.
        for _ in 0..100 {
            budget.deposit();
        }
        assert!(!budget.try_withdraw());
        // Withdrawals expire like deposits, which refills the reserve.
        advance(Duration::from_secs(5)).await;
        assert_eq!(budget.balance(), 10);
        advance(Duration::from_secs(3600)).await;
        assert_eq!(budget.balance(), 10);
        assert_eq!(drain(&budget), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_paid_by_expired_deposits_are_owed() {
        let budget = budget(0, 1.0, 10);
        for _ in 0..4 {
            budget.deposit();
        }
        advance(Duration::from_secs(5)).await;
        assert_eq!(drain(&budget), 4);
        // The deposits expire before the retries they paid for.
        advance(Duration::from_secs(5)).await;
        assert_eq!(budget.balance(), 0);
        budget.deposit();
        assert!(!budget.try_withdraw(), "four retries are still counted");
        advance(Duration::from_secs(5)).await;
        assert!(budget.try_withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn zero_budget_allows_no_retry() {
        let budget = budget(0, 0.0, 10);
        for _ in 0..1000 {
            budget.deposit();
        }
        assert_eq!(budget.balance(), 0);
        assert!(!budget.try_withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn a_percentage_over_one_allows_several_retries_per_request() {
        let twice = budget(0, 2.0, 10);
        twice.deposit();
        assert_eq!(twice.balance(), 2);
        assert_eq!(drain(&twice), 2);
        let most = budget(0, 1000.0, 10);
        most.deposit();
        assert_eq!(most.balance(), 1000);
    }

    #[tokio::test(start_paused = true)]
    async fn default_budget_has_a_reserve_of_a_hundred() {
        let budget = RetryBudget::new(&BudgetConfig::default());
        assert_eq!(budget.balance(), 100);
        for _ in 0..50 {
            budget.deposit();
        }
        assert_eq!(budget.balance(), 110);
    }

    #[tokio::test(start_paused = true)]
    async fn out_of_range_configs_are_clamped_not_panicked_on() {
        let huge = budget(u32::MAX, 1e12, 1000);
        assert!(huge.try_withdraw());
        assert_eq!(huge.balance(), u64::from(u32::MAX) * 60 - 1);
        let tiny = budget(0, 1e-300, 0);
        for _ in 0..1000 {
            tiny.deposit();
        }
        assert!(!tiny.try_withdraw());
        let nan = budget(1, f64::NAN, 10);
        assert_eq!(nan.balance(), 10);
    }

    #[test]
    fn slots_pack_the_slice_with_its_count() {
        for (epoch, count) in [(0, 0), (1, 2), (u32::MAX, u32::MAX), (7, 0)] {
            assert_eq!(unpack(pack(epoch, count)), (epoch, count));
        }
        let window = Window::default();
        window.add(3);
        window.add(3);
        window.add(13);
        // Slice 13 reuses slice 3's slot and starts its count afresh.
        assert_eq!(window.sum(13), 1);
        assert_eq!(window.sum(22), 1);
        assert_eq!(window.sum(23), 0);
    }

    #[test]
    fn works_outside_a_runtime() {
        let budget = RetryBudget::new(&BudgetConfig::default());
        budget.deposit();
        assert!(budget.try_withdraw());
    }

    #[test]
    fn is_shared_between_threads() {
        let budget = std::sync::Arc::new(budget(0, 1.0, 60));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let budget = budget.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        budget.deposit();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(budget.balance(), 4000);
    }
}
