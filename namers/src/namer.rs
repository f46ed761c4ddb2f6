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
}
