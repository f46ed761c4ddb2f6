//! namerd: stores dtabs per namespace and serves bindings over HTTP.

pub mod admin;
pub mod api;
pub mod client;
pub mod config;
mod conn;
pub mod ctl;
mod live_cache;
pub mod metrics;
mod namespace;
mod naming;
pub mod server;
pub mod store;

pub use live_cache::LiveCache;
pub use namespace::{MAX_NAMESPACE_LEN, Namespace, NamespaceError};
pub use naming::{DelegateError, Namerd};
