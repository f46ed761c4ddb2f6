//! A lock-free histogram of whole numbers (milliseconds, mostly), summarised
//! the way Linkerd's admin showed a stat: count, sum, min, max, average and
//! the 50th to 99.99th percentiles.
//!
//! Values below 32 have a bucket each; above, each power of two is split
//! into 16 buckets, so a percentile is off by at most 1/32 of its value.
//! The buckets are allocated on the first value, so the many scopes that
//! never see a request cost a few words each.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Values below this have a bucket each.
const EXACT: u64 = 32;
/// Buckets per power of two above `EXACT`.
const SUB: u64 = 16;
/// Powers of two covered above `EXACT` (32 ms to about 67 million ms);
/// larger values land in the last bucket (their `max` stays exact).
const OCTAVES: u64 = 21;
const BUCKETS: usize = (EXACT + SUB * OCTAVES) as usize;

/// A histogram that many threads record into at once.
// In this order, so that what every value touches shares a cache line.
#[repr(C)]
#[derive(Debug)]
pub struct Histogram {
    count: AtomicU64,
    sum: AtomicU64,
    min: AtomicU64,
    max: AtomicU64,
    /// A thin pointer, so that the totals and it fit 48 bytes.
    buckets: OnceLock<Box<[AtomicU32; BUCKETS]>>,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            buckets: OnceLock::new(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
        }
    }
}

/// What a histogram held over one interval.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Summary {
    /// Values recorded.
    pub count: u64,
    /// Their sum.
    pub sum: u64,
    /// The smallest.
    pub min: u64,
    /// The largest.
    pub max: u64,
    /// `sum / count`.
    pub avg: f64,
    /// The median.
    pub p50: u64,
    /// The 90th percentile.
    pub p90: u64,
    /// The 95th percentile.
    pub p95: u64,
    /// The 99th percentile.
    pub p99: u64,
    /// The 99.9th percentile.
    pub p9990: u64,
    /// The 99.99th percentile.
    pub p9999: u64,
}

impl Histogram {
    /// Records one value.
    pub fn record(&self, value: u64) {
        let buckets = self.buckets.get_or_init(new_buckets);
        buckets[bucket_of(value)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
        // A read first: most values are neither, and the read shares the
        // cache line where a read-modify-write would take it.
        if value < self.min.load(Ordering::Relaxed) {
            self.min.fetch_min(value, Ordering::Relaxed);
        }
        if value > self.max.load(Ordering::Relaxed) {
            self.max.fetch_max(value, Ordering::Relaxed);
        }
    }

    /// Records `value` `n` times.
    pub fn record_many(&self, value: u64, n: u64) {
        if n == 0 {
            return;
        }
        let buckets = self.buckets.get_or_init(new_buckets);
        let n32 = u32::try_from(n).unwrap_or(u32::MAX);
        buckets[bucket_of(value)].fetch_add(n32, Ordering::Relaxed);
        self.count.fetch_add(n, Ordering::Relaxed);
        self.sum
            .fetch_add(value.saturating_mul(n), Ordering::Relaxed);
        self.min.fetch_min(value, Ordering::Relaxed);
        self.max.fetch_max(value, Ordering::Relaxed);
    }

    /// Values recorded since the last [`Histogram::take`].
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The summary of the values recorded since the last call, which
    /// starts the next interval. (Values recorded during the call go to one
    /// interval or the next.)
    pub fn take(&self) -> Summary {
        let count = self.count.swap(0, Ordering::Relaxed);
        let sum = self.sum.swap(0, Ordering::Relaxed);
        let min = self.min.swap(u64::MAX, Ordering::Relaxed);
        let max = self.max.swap(0, Ordering::Relaxed);
        let Some(buckets) = self.buckets.get() else {
            return Summary::default();
        };
        let counts: Vec<u64> = buckets
            .iter()
            .map(|b| u64::from(b.swap(0, Ordering::Relaxed)))
            .collect();
        if count == 0 {
            return Summary::default();
        }
        let bucketed: u64 = counts.iter().sum();
        let percentile = |p: f64| -> u64 {
            // The smallest bucket holding the value of rank ⌈p·n⌉.
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let rank = ((p * bucketed as f64).ceil() as u64).max(1);
            let mut seen = 0;
            for (index, n) in counts.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    return representative(index).clamp(min.min(max), max);
                }
            }
            max
        };
        #[allow(clippy::cast_precision_loss)]
        let avg = sum as f64 / count as f64;
        Summary {
            count,
            sum,
            min: min.min(max),
            max,
            avg,
            p50: percentile(0.5),
            p90: percentile(0.9),
            p95: percentile(0.95),
            p99: percentile(0.99),
            p9990: percentile(0.999),
            p9999: percentile(0.9999),
        }
    }
}

impl Histogram {
    /// The values recorded since the last call, as (value, how many) by
    /// bucket, smallest first; starts the next interval.
    pub fn take_samples(&self) -> Vec<(u64, u64)> {
        self.count.store(0, Ordering::Relaxed);
        self.sum.store(0, Ordering::Relaxed);
        self.min.store(u64::MAX, Ordering::Relaxed);
        self.max.store(0, Ordering::Relaxed);
        let Some(buckets) = self.buckets.get() else {
            return Vec::new();
        };
        buckets
            .iter()
            .enumerate()
            .filter_map(|(index, b)| {
                let n = u64::from(b.swap(0, Ordering::Relaxed));
                (n > 0).then(|| (representative(index), n))
            })
            .collect()
    }
}

fn new_buckets() -> Box<[AtomicU32; BUCKETS]> {
    Box::new(std::array::from_fn(|_| AtomicU32::new(0)))
}

fn bucket_of(value: u64) -> usize {
    if value < EXACT {
        return usize::try_from(value).unwrap_or(0);
    }
    let octave = u64::from(63 - value.leading_zeros()); // ≥ 5
    let octave_index = octave - EXACT.trailing_zeros() as u64;
    if octave_index >= OCTAVES {
        return BUCKETS - 1;
    }
    let sub = (value >> (octave - SUB.trailing_zeros() as u64)) & (SUB - 1);
    usize::try_from(EXACT + octave_index * SUB + sub).unwrap_or(BUCKETS - 1)
}

/// The value a bucket stands for: itself below `EXACT`, else the middle of
/// its range.
fn representative(index: usize) -> u64 {
    let index = index as u64;
    if index < EXACT {
        return index;
    }
    let octave_index = (index - EXACT) / SUB;
    let sub = (index - EXACT) % SUB;
    let octave = octave_index + EXACT.trailing_zeros() as u64;
    let width = 1u64 << (octave - SUB.trailing_zeros() as u64);
    let low = (SUB + sub) * width;
    low + width / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_exact() {
        let h = Histogram::default();
        for v in 1..=10 {
            h.record(v);
        }
        let s = h.take();
        assert_eq!((s.count, s.sum, s.min, s.max), (10, 55, 1, 10));
        assert!((s.avg - 5.5).abs() < 1e-9);
        assert_eq!((s.p50, s.p90, s.p99, s.p9999), (5, 9, 10, 10));
    }

    #[test]
    fn large_values_are_within_a_thirty_second() {
        for value in [33, 100, 1_000, 12_345, 999_999, 40_000_000] {
            let h = Histogram::default();
            h.record(value);
            h.record(value);
            let s = h.take();
            assert_eq!(s.max, value);
            let error = s.p50.abs_diff(value);
            assert!(error * 32 <= value, "{value}: p50 {}", s.p50);
        }
    }

    #[test]
    fn a_bucket_covers_what_it_stands_for() {
        for value in [32u64, 47, 48, 63, 64, 1023, 1024, 5_000_000] {
            let index = bucket_of(value);
            let middle = representative(index);
            assert_eq!(bucket_of(middle), index, "value {value}");
        }
    }

    #[test]
    fn take_starts_a_new_interval() {
        let h = Histogram::default();
        h.record(7);
        assert_eq!(h.take().count, 1);
        assert_eq!(h.take(), Summary::default());
        h.record(3);
        let s = h.take();
        assert_eq!((s.count, s.min, s.max, s.p50), (1, 3, 3, 3));
    }

    #[test]
    fn percentiles_follow_the_distribution() {
        let h = Histogram::default();
        for _ in 0..990 {
            h.record(2);
        }
        for _ in 0..10 {
            h.record(500);
        }
        let s = h.take();
        assert_eq!((s.p50, s.p90, s.p99), (2, 2, 2));
        assert!(s.p9990.abs_diff(500) * 32 <= 500, "{s:?}");
        assert_eq!(s.max, 500);
    }

    #[test]
    fn samples_are_the_buckets_values_with_their_counts() {
        let h = Histogram::default();
        for v in [3, 3, 7, 1000] {
            h.record(v);
        }
        let samples = h.take_samples();
        assert_eq!(samples[..2], [(3, 2), (7, 1)]);
        assert_eq!(samples[2].1, 1);
        assert!(samples[2].0.abs_diff(1000) * 32 <= 1000);
        assert!(h.take_samples().is_empty());
    }

    #[test]
    fn huge_values_do_not_overflow_the_buckets() {
        let h = Histogram::default();
        h.record(u64::MAX / 4);
        let s = h.take();
        assert_eq!(s.max, u64::MAX / 4);
        assert_eq!(s.p50, s.max);
    }
}
