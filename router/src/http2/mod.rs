//! The router's own HTTP/2: the pieces of RFC 9113 it implements itself
//! rather than through the `h2` crate, built for a proxy's two connections
//! per request and measured against that crate in docs/performance.md.

pub mod client;
pub mod frame;
pub mod hpack;
pub(crate) mod inbound;
pub(crate) mod send;
pub mod server;
pub(crate) mod wake;

pub use send::{Added, Adding};
