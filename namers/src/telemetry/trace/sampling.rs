//! Which traces are recorded: a rate, and a decision taken from the trace
//! id alone.
//!
//! Finagle compares a hash of the trace id with the rate, as here, but
//! salts the hash with a random number per process, so two routers at the
//! same rate record different traces. Here the hash is fixed, so every
//! router at the same rate picks the same traces, even those that reach
//! it without a decision.

use super::context::TraceId;

/// A proportion of traces to record, between 0 and 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleRate(f64);

impl SampleRate {
    /// Record every trace.
    pub const ALWAYS: SampleRate = SampleRate(1.0);

    /// Record none.
    pub const NEVER: SampleRate = SampleRate(0.0);

    /// `rate`, if it is between 0 and 1.
    pub fn new(rate: f64) -> Result<SampleRate, String> {
        if (0.0..=1.0).contains(&rate) {
            Ok(SampleRate(rate))
        } else {
            Err(format!("{rate} is not between 0 and 1"))
        }
    }

    /// `rate` brought into [0, 1], as Linkerd read `l5d-sample`; `None`
    /// for NaN.
    pub fn clamped(rate: f64) -> Option<SampleRate> {
        (!rate.is_nan()).then(|| SampleRate(rate.clamp(0.0, 1.0)))
    }

    /// The rate.
    pub fn get(self) -> f64 {
        self.0
    }

    /// Whether the trace `id` is among those recorded at this rate: the
    /// same answer every time, in every process.
    pub fn samples(self, id: TraceId) -> bool {
        if self.0 >= 1.0 {
            return true;
        }
        if self.0 <= 0.0 {
            return false;
        }
        // The top 53 bits of the hash as a fraction of one: an even
        // spread over [0, 1), whatever pattern the ids follow.
        let fraction = (mix(id.low()) >> 11) as f64 / (1u64 << 53) as f64;
        fraction < self.0
    }
}

/// SplitMix64's finaliser: every bit of the input moves every bit of the
/// output. Only the low 64 bits count, as in Finagle, so a trace keeps
/// its decision where a peer shortens its id to 64 bits.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng as _, SeedableRng as _, rngs::StdRng};

    fn ids(n: usize, seed: u64) -> Vec<TraceId> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| TraceId::new(rng.random_range(1..=u128::MAX)).unwrap())
            .collect()
    }

    #[test]
    fn a_rate_records_its_share_of_random_traces() {
        let ids = ids(10_000, 7);
        let rate = SampleRate::new(0.1).unwrap();
        let sampled = ids.iter().filter(|id| rate.samples(**id)).count();
        assert!((800..=1200).contains(&sampled), "{sampled}");
        let half = SampleRate::new(0.5).unwrap();
        let sampled = ids.iter().filter(|id| half.samples(**id)).count();
        assert!((4700..=5300).contains(&sampled), "{sampled}");
        assert!(ids.iter().all(|id| SampleRate::ALWAYS.samples(*id)));
        assert!(!ids.iter().any(|id| SampleRate::NEVER.samples(*id)));
    }

    #[test]
    fn sequential_ids_are_spread_too() {
        let rate = SampleRate::new(0.1).unwrap();
        let sampled = (1..=10_000u128)
            .filter(|i| rate.samples(TraceId::new(*i).unwrap()))
            .count();
        assert!((800..=1200).contains(&sampled), "{sampled}");
    }

    #[test]
    fn the_decision_depends_on_the_id_only() {
        let rate = SampleRate::new(0.3).unwrap();
        let first: Vec<bool> = ids(1000, 3).iter().map(|id| rate.samples(*id)).collect();
        let again: Vec<bool> = ids(1000, 3).iter().map(|id| rate.samples(*id)).collect();
        assert_eq!(first, again);
        // A trace sampled at a rate is sampled at every higher rate.
        let higher = SampleRate::new(0.6).unwrap();
        assert!(
            ids(1000, 3)
                .iter()
                .all(|id| !rate.samples(*id) || higher.samples(*id))
        );
        // The high half of a 128-bit id does not change the decision.
        let id = TraceId::new(0x1234_5678).unwrap();
        let long = TraceId::new((9u128 << 64) | 0x1234_5678).unwrap();
        for r in [0.1, 0.5, 0.9] {
            let r = SampleRate::new(r).unwrap();
            assert_eq!(r.samples(id), r.samples(long));
        }
    }

    #[test]
    fn rates_outside_zero_to_one_are_refused_or_clamped() {
        assert!(
            SampleRate::new(1.5)
                .unwrap_err()
                .contains("not between 0 and 1")
        );
        assert!(SampleRate::new(-0.1).is_err());
        assert!(SampleRate::new(f64::NAN).is_err());
        assert_eq!(SampleRate::clamped(7.0), Some(SampleRate::ALWAYS));
        assert_eq!(SampleRate::clamped(-1.0), Some(SampleRate::NEVER));
        assert_eq!(SampleRate::clamped(f64::NAN), None);
    }
}
