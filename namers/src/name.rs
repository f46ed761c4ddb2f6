//! Names: a path still to be resolved, or a name bound to a live address.

use dtab::{Path, ShowLeaf};

use crate::{Addr, Live};

/// A bound name: a stable id, the unconsumed rest of the path, and the live
/// address behind it.
#[derive(Clone, Debug)]
pub struct Bound {
    /// Identifies the bound name (e.g. `/#/io.l5d.fs/web`); clients are
    /// shared by id.
    pub id: Path,
    /// What the namer did not consume (e.g. `/api/v1`).
    pub residual: Path,
    /// The endpoints, updated live without rebinding.
    pub addr: Live<Addr>,
    /// The weight of the innermost union branch this name was reached
    /// through, if any (Finagle's `namer_nametree_weight`).
    pub weight: Option<f64>,
}

impl Bound {
    /// A bound name with no union weight.
    pub fn new(id: Path, residual: Path, addr: Live<Addr>) -> Bound {
        Bound {
            id,
            residual,
            addr,
            weight: None,
        }
    }
}

/// Two bound names are the same when their id, residual and weight are; the
/// address is a live handle, not part of the identity.
impl PartialEq for Bound {
    fn eq(&self, other: &Bound) -> bool {
        self.id == other.id && self.residual == other.residual && self.weight == other.weight
    }
}

impl ShowLeaf for Bound {
    fn write_leaf(&self, out: &mut String) {
        self.id.write_show(out);
    }
}

/// What a namer answers at a leaf: a path to keep resolving, or a bound name.
#[derive(Clone, Debug, PartialEq)]
pub enum Name {
    /// Resolve this path further.
    Path(Path),
    /// Resolution is done.
    Bound(Bound),
}

impl ShowLeaf for Name {
    fn write_leaf(&self, out: &mut String) {
        match self {
            Name::Path(p) => p.write_show(out),
            Name::Bound(b) => b.write_leaf(out),
        }
    }
}
