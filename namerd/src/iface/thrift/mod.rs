//! `io.l5d.thriftNameInterpreter`: namerd's thrift interface, Linkerd's
//! `namer.thrift` (`namerd/idl/linkerd/`).

mod config;

pub use config::{ThriftCacheConfig, ThriftConfig};

/// The interface's `kind`.
pub const KIND: &str = "io.l5d.thriftNameInterpreter";
