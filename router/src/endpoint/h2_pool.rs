//! Upstream HTTP/2 connections for `h2` routers, one per endpoint.
//!
//! The pooled HTTP/1 client dials whatever authority the request URI names,
//! which for HTTP/2 would also replace the request's `:authority`. Here the
//! endpoint is chosen separately, so the backend sees the authority the
//! client sent. HTTP/2 multiplexes, so one connection per endpoint carries
//! all its requests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::body::Body;

/// Open HTTP/2 connections by endpoint.
pub struct H2Pool {
    connections: Mutex<HashMap<SocketAddr, SendRequest<Body>>>,
    connect_timeout: Duration,
}

impl H2Pool {
    /// An empty pool.
    pub fn new(connect_timeout: Duration) -> H2Pool {
        H2Pool {
            connections: Mutex::default(),
            connect_timeout,
        }
    }

    /// Sends `request` to `endpoint`, opening a connection if needed.
    pub async fn send(
        &self,
        endpoint: SocketAddr,
        request: Request<Body>,
    ) -> Result<Response<Incoming>, String> {
        let mut sender = self.connection(endpoint).await?;
        sender
            .ready()
            .await
            .map_err(|e| format!("connection to {endpoint} failed: {e}"))?;
        sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())
    }

    async fn connection(&self, endpoint: SocketAddr) -> Result<SendRequest<Body>, String> {
        let existing = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&endpoint)
            .filter(|s| !s.is_closed())
            .cloned();
        if let Some(sender) = existing {
            return Ok(sender);
        }
        let stream = tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect(endpoint),
        )
        .await
        .map_err(|_| {
            format!(
                "connecting to {endpoint} timed out after {:?}",
                self.connect_timeout
            )
        })?
        .map_err(|e| format!("tcp connect error: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP/2 handshake with {endpoint} failed: {e}"))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%endpoint, error = %e, "upstream HTTP/2 connection ended");
            }
        });
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(endpoint, sender.clone());
        Ok(sender)
    }
}
