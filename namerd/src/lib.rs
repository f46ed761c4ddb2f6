//! namerd: stores dtabs per namespace and serves bindings over HTTP.

pub mod admin;
pub mod api;
pub mod config;
mod conn;
pub mod iface;
pub mod metrics;
mod naming;
pub mod server;
pub mod store;

/// The client of namerd's HTTP API, for namerctl and tests.
pub use namerd_client as client;
pub use namerd_client::{MAX_NAMESPACE_LEN, Namespace, NamespaceError};
pub use naming::{DelegateError, Namerd};
