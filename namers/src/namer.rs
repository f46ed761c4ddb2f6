//! The namer interface: how `/#/<prefix>/...` and `/$/...` paths are looked up.

use dtab::{NameTree, Path};

use crate::{Activity, Live, Name};

/// The live answer to one namer lookup.
pub type Lookup = Live<Activity<NameTree<Name>>>;

/// Looks up paths below a prefix (e.g. the files of an `io.l5d.fs`
/// directory) and answers with a live name tree.
///
/// `lookup` must return at once: a namer that needs I/O answers
/// [`Activity::Pending`] first and publishes the answer when it has it.
/// Namers should share one live value between lookups of the same path and
/// stop watching their backend once nobody holds it any more.
pub trait Namer: Send + Sync + 'static {
    /// Looks up `path`, given without the namer's prefix.
    fn lookup(&self, path: &Path) -> Lookup;

    /// The namer's counters (watches, errors, changes between reaching its
    /// backend and not), for the metrics endpoints; none by default.
    fn counters(&self) -> Vec<NamerCounter> {
        Vec::new()
    }
}

/// One counter a namer reports. Exported as `namer_<name>_total` with the
/// namer's prefix as the `namer` label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamerCounter {
    /// The metric's name without `namer_` and `_total`, e.g. `state_changes`.
    pub name: &'static str,
    /// What it counts.
    pub help: &'static str,
    /// Its value now.
    pub value: u64,
}

impl NamerCounter {
    /// Changes between reaching the backend and not; the counter every namer
    /// with a backend reports.
    pub fn state_changes(value: u64) -> NamerCounter {
        NamerCounter {
            name: "state_changes",
            help: "Times a namer's backend went from answering to failing or back",
            value,
        }
    }

    /// Backend watches started.
    pub fn watches_started(value: u64) -> NamerCounter {
        NamerCounter {
            name: "watches_started",
            help: "Backend watches a namer started",
            value,
        }
    }

    /// Backend watches ended because nothing used them any more.
    pub fn watches_ended(value: u64) -> NamerCounter {
        NamerCounter {
            name: "watches_ended",
            help: "Backend watches a namer ended because nothing used them",
            value,
        }
    }

    /// Failed calls to the backend (each retry counts).
    pub fn errors(value: u64) -> NamerCounter {
        NamerCounter {
            name: "errors",
            help: "Failed calls to a namer's backend, retries included",
            value,
        }
    }

    /// New answers published (endpoints, or absence).
    pub fn updates(value: u64) -> NamerCounter {
        NamerCounter {
            name: "updates",
            help: "New answers a namer published",
            value,
        }
    }
}
