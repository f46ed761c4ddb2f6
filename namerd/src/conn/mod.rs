//! Accepting and serving HTTP/1 connections for the API and admin servers.
//!
//! Most connections go to hyper. A connection whose first request is a
//! bodiless `GET …?watch=true` is served by [`lean`] instead: a watch keeps
//! its connection open for as long as the watcher lives, and hyper holds
//! about 24 KB of read and write buffers per connection, which is most of
//! what a thousand open watches cost.
//!
//! Every connection closes after a minute with no request in flight, and
//! a request head must arrive whole within 30 s of its first byte
//! ([`namers::session`]).
//!
//! On a TLS port each connection first completes its handshake (within
//! 10 s); a client that does not start one is closed unanswered
//! ([`namers::handshake`]).

mod lean;

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use namers::session::{self, Activity, SessionLimits, Watched};
use namers::tls::{ServerTls, Stream};

use crate::metrics::HttpStats;

/// Serves `app` on `listener` until `stop` completes, then lets open
/// connections finish: idle ones close, hyper ones finish their request,
/// watch streams end once namerd's `stopping` flag is set. With `stats`,
/// connections are counted there; with `tls`, every connection is TLS.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    stop: impl Future<Output = ()>,
    stats: Option<Arc<HttpStats>>,
    tls: Option<Arc<ServerTls>>,
) -> io::Result<()> {
    // Dropping `drain_tx` tells every connection to wind down; each holds an
    // `open_rx` clone until it is done, so `open_tx.closed()` waits for all.
    // Turn every handler into a route once, not on each request.
    let app = app.with_state(());
    let (drain_tx, drain_rx) = watch::channel(());
    let (open_tx, open_rx) = watch::channel(());
    let mut stop = pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Usually out of file descriptors: wait instead of spinning.
                tracing::error!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let (app, drain, open) = (app.clone(), drain_rx.clone(), open_rx.clone());
        let counted = stats.as_ref().map(HttpStats::connection_opened);
        let tls = tls.clone();
        tokio::spawn(async move {
            let accepted = Instant::now();
            if let Some(stream) = secure(tcp, tls.as_deref(), drain.clone()).await {
                connection(stream, app, drain, accepted).await;
            }
            drop((open, counted));
        });
    }
    drop(listener);
    drop(drain_tx);
    drop((drain_rx, open_rx));
    open_tx.closed().await;
    Ok(())
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The connection as served: plain, or TLS once its handshake is done.
/// `None` when the handshake failed or namerd began to stop meanwhile.
async fn secure(
    tcp: TcpStream,
    tls: Option<&ServerTls>,
    mut drain: watch::Receiver<()>,
) -> Option<Stream> {
    let Some(tls) = tls else {
        return Some(Stream::Plain(tcp));
    };
    let handshake = namers::handshake::accept(tls, tcp, namers::handshake::TIMEOUT);
    tokio::select! {
        handshake = handshake => match handshake {
            Ok(stream) => Some(stream),
            Err(e) => {
                tracing::debug!(error = %e, "closing a connection to a TLS port");
                None
            }
        },
        _ = drain.changed() => None,
    }
}

async fn connection(
    mut tcp: Stream,
    app: Router,
    mut drain: watch::Receiver<()>,
    accepted: Instant,
) {
    let first = tokio::select! {
        first = lean::read_first_head(&mut tcp, accepted) => first,
        // Nothing asked yet: close, as hyper does with idle connections.
        _ = drain.changed() => return,
    };
    match first {
        Ok(lean::First::Watch(request)) => lean::serve_watch(tcp, *request, app).await,
        // Boxed so that the hyper connection's large state is not part of
        // every lean connection's task.
        Ok(lean::First::Other(read)) => {
            Box::pin(with_hyper(tcp, read, app, drain, accepted)).await;
        }
        Ok(lean::First::Closed) => {}
        Ok(lean::First::TimedOut) => {
            tracing::debug!("no request head in time; closing");
        }
        Err(e) => tracing::debug!(error = %e, "reading a request failed"),
    }
}

/// Serves the connection with hyper, replaying the bytes already read.
async fn with_hyper(
    tcp: Stream,
    read: Vec<u8>,
    app: Router,
    mut drain: watch::Receiver<()>,
    accepted: Instant,
) {
    let activity = Activity::new(accepted);
    if !read.is_empty() {
        activity.bytes_read();
    }
    let io = TokioIo::new(Watched::new(Replay { read, at: 0, tcp }, activity.clone()));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The session's timer counts the head time (see `session`).
    builder.http1().header_read_timeout(None);
    let service = session::track(TowerToHyperService::new(app), activity.clone());
    let conn = builder.serve_connection_with_upgrades(io, service);
    let stop = async move {
        let _ = drain.changed().await;
    };
    session::drive(
        conn,
        |conn| conn.graceful_shutdown(),
        &activity,
        &SessionLimits::default(),
        stop,
    )
    .await;
}

/// A connection whose reads first return bytes already read from it.
struct Replay {
    read: Vec<u8>,
    at: usize,
    tcp: Stream,
}

impl AsyncRead for Replay {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.read.len() {
            let n = buf.remaining().min(this.read.len() - this.at);
            buf.put_slice(&this.read[this.at..this.at + n]);
            this.at += n;
            if this.at == this.read.len() {
                // Replayed: give the memory back.
                this.read = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}
