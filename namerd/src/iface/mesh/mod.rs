//! `io.l5d.mesh`: namerd's gRPC interface, Linkerd's mesh protos
//! (`namerd/idl/linkerd/mesh/`), served with tonic over h2.
//!
//! Four services, as Linkerd's namerd serves them: the Interpreter binds a
//! name in a namespace (`root` is the one-element path `/<namespace>`), the
//! Resolver streams the endpoints of a bound id, the Delegator serves the
//! stored dtabs and delegate trees, and the Codec parses and prints dtabs
//! and paths. Everything comes from the [`Namerd`](crate::Namerd) the HTTP
//! API serves, so a binding watched through both is the same live binding.
//!
//! A stream sends the current value once it is not pending, then each
//! change; it ends with the binding's error if binding fails (a namer's
//! outage after a first answer keeps the last good value, as the HTTP API
//! does), and with UNAVAILABLE when namerd stops.

mod codec;
mod config;
mod delegator;
mod interpreter;
mod metrics;
mod request;
mod resolver;
mod stream;

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use namerd_client::mesh::proto::codec_server::CodecServer;
use namerd_client::mesh::proto::delegator_server::DelegatorServer;
use namerd_client::mesh::proto::interpreter_server::InterpreterServer;
use namerd_client::mesh::proto::resolver_server::ResolverServer;
use namers::tls::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tonic::transport::server::{Connected, TcpConnectInfo};

pub use config::MeshConfig;
pub use metrics::MeshStats;

use super::IfaceContext;

/// The interface's `kind`.
pub const KIND: &str = "io.l5d.mesh";

/// What every service of the interface shares.
#[derive(Clone)]
pub(crate) struct Mesh {
    ctx: IfaceContext,
    stats: Arc<MeshStats>,
}

/// Serves the mesh services on `listener` (over TLS when `ctx.tls` is set)
/// until `ctx.stopping` turns true: then it stops accepting, open streams
/// end with UNAVAILABLE, and it returns once every connection is closed.
pub async fn serve(
    listener: TcpListener,
    ctx: IfaceContext,
    stats: Arc<MeshStats>,
) -> io::Result<()> {
    let mesh = Mesh {
        ctx: ctx.clone(),
        stats,
    };
    let mut stopping = ctx.stopping.clone();
    let stop = async move {
        // A dropped sender means namerd is gone: stop too.
        let _ = stopping.wait_for(|stopping| *stopping).await;
    };
    tonic::transport::Server::builder()
        .add_service(InterpreterServer::new(mesh.clone()))
        .add_service(ResolverServer::new(mesh.clone()))
        .add_service(DelegatorServer::new(mesh.clone()))
        .add_service(CodecServer::new(mesh))
        .serve_with_incoming_shutdown(incoming(listener, ctx), stop)
        .await
        .map_err(io::Error::other)
}

/// The connections accepted on `listener`, after their TLS handshake when
/// the interface has TLS. Handshakes run beside the accept loop, so a slow
/// client does not hold up others. Ends when namerd stops.
fn incoming(
    listener: TcpListener,
    ctx: IfaceContext,
) -> impl futures_util::Stream<Item = io::Result<Conn>> {
    let (tx, rx) = mpsc::channel::<Conn>(16);
    tokio::spawn(async move {
        let mut stopping = ctx.stopping.clone();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stopping.wait_for(|stopping| *stopping) => break,
            };
            let tcp = match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    tracing::debug!(error = %e, "accepting a mesh connection failed");
                    // Usually out of file descriptors: wait instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let tx = tx.clone();
            let tls = ctx.tls.clone();
            tokio::spawn(async move {
                let stream = match tls {
                    None => Stream::Plain(tcp),
                    Some(tls) => {
                        match namers::handshake::accept(&tls, tcp, namers::handshake::TIMEOUT).await
                        {
                            Ok(stream) => stream,
                            Err(e) => {
                                tracing::debug!(error = %e, "closing a connection to the mesh TLS port");
                                return;
                            }
                        }
                    }
                };
                let _ = tx.send(Conn(stream)).await;
            });
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|conn| (Ok(conn), rx))
    })
}

/// A served connection, plain or TLS.
struct Conn(Stream);

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.0.tcp().connect_info()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}
