//! The dtab language of Finagle and Linkerd 1.x.
//!
//! A *dtab* (delegation table) is a list of rewrite rules, *dentries*, such
//! as `/svc => /#/io.l5d.fs`. Resolving a name applies the dtab one step at a
//! time ([`Dtab::lookup`]); each step yields a [`NameTree`] of further names.
//! This crate holds the values, their text syntax ([`parse`]) and printing
//! (`show`, byte-for-byte Finagle's), the tree algebra, and the annotated
//! [`DelegateTree`] that explains a resolution. It is pure: no I/O, no async.
//!
//! ```
//! use dtab::{Dtab, Path};
//!
//! let dtab = Dtab::read("/svc => /#/io.l5d.fs; /svc/web => /srv/web-v2 | /srv/web")?;
//! let step = dtab.lookup(&Path::read("/svc/web/api")?);
//! // Later dentries are tried first; the earlier one is the fall-back.
//! assert_eq!(step.show(), "(/srv/web-v2/api | /srv/web/api) | /#/io.l5d.fs/web/api");
//! # Ok::<(), dtab::ParseError>(())
//! ```

mod delegate;
mod dentry;
pub mod parse;
mod path;
mod serde_forms;
mod table;
mod tree;
mod weight;

pub use delegate::{DelegateTree, WeightedDelegate};
pub use dentry::{Dentry, Prefix, PrefixElem};
pub use parse::ParseError;
pub use path::{Label, Path, is_showable};
pub use table::Dtab;
pub use tree::{NameTree, ShowLeaf, Weighted};
pub use weight::format_weight;
