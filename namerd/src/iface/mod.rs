//! namerd's interfaces for routers other than the HTTP API: Linkerd's
//! thrift name interpreter (`io.l5d.thriftNameInterpreter`) and its gRPC
//! mesh interface (`io.l5d.mesh`). Each serves the same naming service as
//! `/api/1`, so a binding watched through any of them is shared.

pub mod mesh;
pub mod thrift;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use namers::config::LocalDtabLimits;
use namers::tls::ServerTls;

use crate::Namerd;

/// What an interface serves from.
#[derive(Clone)]
pub struct IfaceContext {
    /// The naming service.
    pub namerd: Arc<Namerd>,
    /// Becomes true when namerd stops: stop accepting, end open streams
    /// and long polls.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// How large a request's own dtab may be (`localDtabLimits:`).
    pub local_dtab_limits: LocalDtabLimits,
    /// The interface's TLS, when its `tls:` block is enabled; every
    /// connection is then TLS.
    pub tls: Option<Arc<ServerTls>>,
}

/// Interfaces listen on loopback unless `ip` says otherwise, as Linkerd's do.
pub(crate) fn loopback() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}
