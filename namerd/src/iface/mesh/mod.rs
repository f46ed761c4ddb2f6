//! `io.l5d.mesh`: namerd's gRPC interface, Linkerd's mesh protos
//! (`namerd/idl/linkerd/mesh/`).

mod config;

pub use config::MeshConfig;

/// The interface's `kind`.
pub const KIND: &str = "io.l5d.mesh";
