//! Linkerd's `namer.thrift` (the interface of namerd's
//! `io.l5d.thriftNameInterpreter`): the binary protocol, framed and mux
//! transports, the IDL's types, and a client.
//!
//! - [`protocol`]: Thrift's binary protocol, with limits on what hostile
//!   input can make a reader do.
//! - [`compact`]: Thrift's compact protocol, with the same limits.
//! - [`framed`]: the 4-byte size prefix shared by framed Thrift and mux.
//! - [`mux`]: Finagle's mux messages (what ThriftMux clients speak).
//! - [`types`], [`service`]: the IDL's structs and the `Namer` service's
//!   calls and replies.
//! - [`convert`]: to and from paths, name trees and socket addresses.
//! - [`NamerClient`]: calls over plain framed Thrift, one per connection.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use namerd_client::thrift::{NamerClient, types::{BindReq, NameRef}, convert};
//!
//! let client = NamerClient::new("127.0.0.1:4100");
//! let path = dtab::Path::read("/svc/web")?;
//! let mut req = BindReq {
//!     name: NameRef { name: convert::path_to_thrift(&path), ns: "default".into(), ..NameRef::default() },
//!     ..BindReq::default()
//! };
//! let first = client.bind(req.clone()).await?;
//! // Waits until the tree changes.
//! req.name.stamp = first.stamp;
//! let next = client.bind(req).await?;
//! println!("{:?}", next.tree.to_name_tree()?);
//! # Ok(())
//! # }
//! ```

mod client;
pub mod compact;
pub mod convert;
pub mod framed;
pub mod mux;
pub mod protocol;
pub mod service;
#[cfg(test)]
mod tests;
pub mod types;

pub use client::{DEFAULT_TIMEOUT, NamerClient, ThriftError};
