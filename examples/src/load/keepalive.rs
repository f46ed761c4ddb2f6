//! HTTP/1.1 from the harness to a router or namerd: a kept-alive
//! connection that asks for a name by its `Host` header, as a router's
//! clients do, and single requests on a connection of their own for admin
//! and API calls.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long one request may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// One kept-alive connection; a closed one is opened again on the next
/// request.
pub struct KeepAlive {
    addr: SocketAddr,
    sender: Option<SendRequest<Empty<Bytes>>>,
}

impl KeepAlive {
    /// A client of `addr`; the connection opens with the first request.
    pub fn new(addr: SocketAddr) -> KeepAlive {
        KeepAlive { addr, sender: None }
    }

    /// Where it sends requests.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    async fn connect(addr: SocketAddr) -> Result<SendRequest<Empty<Bytes>>> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(sender)
    }

    /// `GET /` with `Host: host`: the status and the body.
    pub async fn get(&mut self, host: &str) -> Result<(u16, String)> {
        match tokio::time::timeout(CALL_TIMEOUT, self.try_get(host)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                self.sender = None;
                bail!(
                    "GET {host} via {}: no answer in {CALL_TIMEOUT:?}",
                    self.addr
                )
            }
        }
    }

    async fn try_get(&mut self, host: &str) -> Result<(u16, String)> {
        let mut sender = match self.sender.take() {
            Some(sender) if !sender.is_closed() => sender,
            _ => KeepAlive::connect(self.addr).await?,
        };
        sender.ready().await?;
        let request = hyper::Request::get("/")
            .header(hyper::header::HOST, host)
            .body(Empty::new())?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        self.sender = Some(sender);
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// One request on a connection of its own: the status and the body.
pub async fn call(
    addr: SocketAddr,
    method: hyper::Method,
    path: &str,
    content_type: Option<&str>,
    body: String,
) -> Result<(u16, String)> {
    let what = format!("{method} {path} at {addr}");
    let exchange = async {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, addr.to_string());
        if let Some(content_type) = content_type {
            request = request.header(hyper::header::CONTENT_TYPE, content_type);
        }
        let response = sender
            .send_request(request.body(Full::new(Bytes::from(body)))?)
            .await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    match tokio::time::timeout(CALL_TIMEOUT, exchange).await {
        Ok(answer) => answer.with_context(|| what.clone()),
        Err(_) => bail!("{what}: no answer in {CALL_TIMEOUT:?}"),
    }
}

/// `GET /admin/metrics.json` of a router or namerd admin port, flat.
pub async fn metrics(admin: SocketAddr) -> Result<serde_json::Value> {
    let (status, body) = call(
        admin,
        hyper::Method::GET,
        "/admin/metrics.json",
        None,
        String::new(),
    )
    .await?;
    if status != 200 {
        bail!("metrics of {admin}: status {status}: {body}");
    }
    serde_json::from_str(&body).with_context(|| format!("metrics of {admin}"))
}

/// The sum of every metric whose key ends with `suffix` (a number each).
pub fn metric_sum(metrics: &serde_json::Value, suffix: &str) -> f64 {
    metrics
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(key, _)| key.ends_with(suffix))
        .filter_map(|(_, value)| value.as_f64())
        .sum()
}
