//! `io.l5d.thriftNameInterpreter`: namerd's thrift interface, Linkerd's
//! `namer.thrift` (`namerd/idl/linkerd/`), served to ThriftMux clients
//! (Linkerd's `io.l5d.namerd` interpreter) and to plain framed Thrift
//! clients on the same port, as Finagle's ThriftMux server does.

mod config;
mod conn;
mod observe;
mod service;
mod stats;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;

pub use config::{ThriftCacheConfig, ThriftConfig};
pub use conn::{FRAME_TIMEOUT, MAX_FRAME, MAX_PENDING};
pub use stats::ThriftStats;

use super::IfaceContext;
use service::NamerService;

/// The interface's `kind`.
pub const KIND: &str = "io.l5d.thriftNameInterpreter";

/// Serves the interface on `listener` until `ctx.stopping` becomes true,
/// then closes plain connections, drains mux ones and returns once every
/// connection is closed.
pub async fn serve(
    listener: TcpListener,
    config: ThriftConfig,
    ctx: IfaceContext,
    stats: Arc<ThriftStats>,
) -> std::io::Result<()> {
    let mut stopping = ctx.stopping.clone();
    let tls = ctx.tls.clone();
    let service = NamerService::new(ctx, &config.cache, stats.clone());
    stats.serving(&service);
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = conn::stopped(&mut stopping) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        match accepted {
            Ok((tcp, _)) => {
                connections.spawn(conn::serve(
                    tcp,
                    service.clone(),
                    tls.clone(),
                    stopping.clone(),
                ));
            }
            Err(e) => {
                // Usually out of file descriptors: wait instead of spinning.
                tracing::warn!(error = %e, "the thrift interface could not accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    Ok(())
}
