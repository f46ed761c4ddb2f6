//! Accepting connections until the router stops, then waiting for those
//! open (dropping the loop, at the end of the grace period, closes them).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::futures::OwnedNotified;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

/// Tells a connection that the router is stopping: one that waits
/// between requests can close rather than hold the stop up.
#[derive(Debug, Clone)]
pub(crate) struct Stopping(watch::Receiver<bool>);

impl Stopping {
    /// Waits until the router stops accepting.
    pub(crate) async fn wait(&mut self) {
        // An error means the loop is gone, which is a stop too.
        let _ = self.0.wait_for(|stopping| *stopping).await;
    }
}

/// Accepts on `listener` until `stop`, spawning `serve` for each
/// connection. With `limit`, a connection over that many open is closed
/// at once and given to `refused`.
pub(crate) async fn accept_loop<S, F>(
    listener: TcpListener,
    stop: OwnedNotified,
    limit: Option<usize>,
    refused: impl Fn(SocketAddr),
    serve: S,
) where
    S: Fn(TcpStream, SocketAddr, Stopping) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    tokio::pin!(stop);
    let limit = limit.map(|n| Arc::new(Semaphore::new(n)));
    let (stopping, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut stop => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let permit: Option<OwnedSemaphorePermit> = match &limit {
            Some(limit) => match limit.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    refused(peer);
                    continue;
                }
            },
            None => None,
        };
        let _ = stream.set_nodelay(true);
        let serving = serve(stream, peer, Stopping(stopped.clone()));
        connections.spawn(async move {
            let _permit = permit;
            serving.await;
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    while connections.join_next().await.is_some() {}
}
