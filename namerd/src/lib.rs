//! namerd: stores dtabs per namespace and serves bindings over HTTP.

mod namespace;
pub mod store;

pub use namespace::{MAX_NAMESPACE_LEN, Namespace, NamespaceError};
