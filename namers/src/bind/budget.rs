//! How much work one bind may do.
//!
//! The depth limit alone bounds chains of lookups, not their breadth: a dtab
//! of 22 entries like `/a0 => /a1 & /a1` asks for 2^22 leaves. Each bind
//! (and each delegation) therefore counts its path steps and the leaves it
//! builds across the whole tree, and watches the clock. Going over any limit
//! fails the whole bind with [`crate::NamingError::OverBudget`]; unlike a
//! failed union branch, it is never ignored.

use std::time::{Duration, Instant};

/// Finagle's default limit on lookups in one chain.
pub const DEFAULT_MAX_DEPTH: usize = 100;
/// Default limit on path steps across the whole tree of one bind.
pub const DEFAULT_MAX_LOOKUPS: usize = 10_000;
/// Default limit on leaves built by one bind.
pub const DEFAULT_MAX_LEAVES: usize = 1_000;
/// Default limit on the time one bind may take.
pub const DEFAULT_MAX_BIND_TIME: Duration = Duration::from_millis(100);

/// The clock is read once per this many path steps: reading it costs about
/// as much as a step of a small dtab.
const CLOCK_EVERY: usize = 16;

/// The work limits of one bind. Every limit is at least 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindLimits {
    /// Lookups in one chain (Finagle's recursion limit). Going over it is an
    /// ordinary failure: a union ignores it while another branch answers.
    pub max_depth: usize,
    /// Path steps across the whole tree, a repeated path included (it is
    /// looked up once and its result reused, but still counted).
    pub max_lookups: usize,
    /// Leaves built: bound names and `$`, a reused result counting all of
    /// its leaves again. This caps the size of the bound tree (and of a
    /// delegation, where every leaf of the explanation counts).
    pub max_leaves: usize,
    /// Time spent on one bind.
    pub max_time: Duration,
}

impl Default for BindLimits {
    fn default() -> Self {
        BindLimits {
            max_depth: DEFAULT_MAX_DEPTH,
            max_lookups: DEFAULT_MAX_LOOKUPS,
            max_leaves: DEFAULT_MAX_LEAVES,
            max_time: DEFAULT_MAX_BIND_TIME,
        }
    }
}

/// Which work limit a bind went over; the message names its config key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Exceeded {
    /// More path steps than [`BindLimits::max_lookups`].
    #[error("took more than {0} lookups (limit bindingLimits.maxLookups)")]
    Lookups(usize),
    /// More leaves than [`BindLimits::max_leaves`].
    #[error("built more than {0} leaves (limit bindingLimits.maxLeaves)")]
    Leaves(usize),
    /// Longer than [`BindLimits::max_time`].
    #[error("took more than {} ms (limit bindingLimits.maxBindMs)", .0.as_millis())]
    Time(Duration),
}

/// The work done so far by one bind, against its limits.
pub(crate) struct Budget<'c> {
    limits: BindLimits,
    lookups: usize,
    leaves: usize,
    started: Instant,
    clock: &'c dyn Fn() -> Instant,
    exceeded: Option<Exceeded>,
}

impl<'c> Budget<'c> {
    /// A fresh budget; time counts from now on `clock`.
    pub(crate) fn new(limits: &BindLimits, clock: &'c dyn Fn() -> Instant) -> Budget<'c> {
        Budget {
            limits: *limits,
            lookups: 0,
            leaves: 0,
            started: clock(),
            clock,
            exceeded: None,
        }
    }

    /// Counts one path step.
    pub(crate) fn lookup(&mut self) -> Result<(), Exceeded> {
        self.check()?;
        self.lookups += 1;
        if self.lookups > self.limits.max_lookups {
            return self.exceed(Exceeded::Lookups(self.limits.max_lookups));
        }
        if self.lookups.is_multiple_of(CLOCK_EVERY)
            && (self.clock)().saturating_duration_since(self.started) > self.limits.max_time
        {
            return self.exceed(Exceeded::Time(self.limits.max_time));
        }
        Ok(())
    }

    /// Counts `n` leaves.
    pub(crate) fn leaves(&mut self, n: usize) -> Result<(), Exceeded> {
        self.check()?;
        self.leaves = self.leaves.saturating_add(n);
        if self.leaves > self.limits.max_leaves {
            return self.exceed(Exceeded::Leaves(self.limits.max_leaves));
        }
        Ok(())
    }

    /// Whether the budget is still there.
    pub(crate) fn check(&self) -> Result<(), Exceeded> {
        match self.exceeded {
            Some(exceeded) => Err(exceeded),
            None => Ok(()),
        }
    }

    fn exceed(&mut self, exceeded: Exceeded) -> Result<(), Exceeded> {
        self.exceeded = Some(exceeded);
        Err(exceeded)
    }

    /// The leaves counted so far.
    pub(crate) fn leaves_so_far(&self) -> usize {
        self.leaves
    }

    /// The error for a bind of `name` that went over the limit `exceeded`.
    pub(crate) fn error(name: &str, exceeded: Exceeded) -> crate::NamingError {
        crate::NamingError::OverBudget {
            name: shorten(name),
            exceeded,
        }
    }
}

/// How much of the bound name an error quotes.
const QUOTED_CHARS: usize = 100;

fn shorten(name: &str) -> String {
    let mut chars = name.chars();
    let mut out: String = chars.by_ref().take(QUOTED_CHARS).collect();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}
