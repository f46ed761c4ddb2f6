//! Backends that report what they received.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, UPGRADE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::{Body, STEP, channel_body, empty, full, within};

/// Request headers that select what a backend does.
pub mod mode {
    /// `x-test-delay-ms: N`: answer (an echo) after N ms.
    pub const DELAY_MS: &str = "x-test-delay-ms";
    /// `x-test-mode: <one of the constants below>`.
    pub const HEADER: &str = "x-test-mode";
    /// Signal "received", wait for [`super::Backend::release`], then echo.
    pub const GATE: &str = "gate";
    /// Answer `first\n` at once, then `rest\n` after a release.
    pub const STREAM: &str = "stream";
    /// Answer just `200` and `x-backend`, as cheaply as possible.
    pub const NAME: &str = "name";
    /// Answer as soon as the first body chunk is in, stop reading until a
    /// release, then read the rest and report `received <bytes> <sum>`.
    pub const UPLOAD: &str = "upload";
}

/// A backend: an HTTP/1.1 and h2 (prior knowledge) server on 127.0.0.1:0.
///
/// By default it answers `200` with a JSON echo of the request (see
/// [`Reply::seen_header`]) and `x-backend: <name>`. `gRPC` requests
/// (`content-type: application/grpc`) get every request data frame echoed
/// back as it arrives, then `grpc-status: 0` trailers (or the status of
/// `x-test-grpc-status`). `Upgrade` requests
/// get `101`, a greeting line, then an echo of every byte. The
/// [`mode`] headers ask for delays, gates and streaming.
pub struct Backend {
    /// The name it reports.
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<BackendState>,
    task: JoinHandle<()>,
}

struct BackendState {
    name: String,
    requests: AtomicUsize,
    connections: AtomicUsize,
    gate: Notify,
    received: Notify,
}

impl Backend {
    /// Starts a backend called `name`.
    pub async fn start(name: &str) -> Backend {
        Backend::start_with(name, None).await
    }

    /// Starts a backend called `name` that speaks TLS with `tls`.
    #[allow(dead_code)]
    pub async fn start_tls(name: &str, tls: namers::tls::ServerTls) -> Backend {
        Backend::start_with(name, Some(Arc::new(tls))).await
    }

    async fn start_with(name: &str, tls: Option<Arc<namers::tls::ServerTls>>) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let addr = listener.local_addr().expect("backend address");
        let state = Arc::new(BackendState {
            name: name.to_string(),
            requests: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            gate: Notify::new(),
            received: Notify::new(),
        });
        let serving = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                serving.connections.fetch_add(1, Ordering::SeqCst);
                let state = serving.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let stream = match &tls {
                        None => namers::tls::Stream::Plain(stream),
                        Some(tls) => match tls.acceptor().accept(stream).await {
                            Ok(tls) => namers::tls::Stream::Server(Box::new(tls)),
                            Err(_) => return,
                        },
                    };
                    let service = service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(state.handle(request).await) }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Backend {
            name: name.to_string(),
            addr,
            state,
            task,
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Lets one gated request (or stream, or upload) go on.
    pub fn release(&self) {
        self.state.gate.notify_one();
    }

    /// Waits until a gated request has arrived.
    pub async fn wait_received(&self) {
        within(
            STEP,
            &format!("backend {} to receive the gated request", self.name),
            self.state.received.notified(),
        )
        .await;
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl BackendState {
    async fn handle(self: Arc<Self>, mut request: Request<Incoming>) -> Response<Body> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        if request.headers().contains_key(UPGRADE) {
            return self.upgrade(&mut request);
        }
        let is_grpc = request
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        if is_grpc {
            return self.grpc(request);
        }
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        match header(mode::HEADER).as_deref() {
            Some(mode::GATE) => {
                self.received.notify_one();
                let _ = tokio::time::timeout(STEP, self.gate.notified()).await;
            }
            Some(mode::STREAM) => return self.stream(),
            Some(mode::UPLOAD) => return self.upload(request).await,
            Some(mode::NAME) => return self.response(StatusCode::OK).body(empty()).expect("name"),
            _ => {}
        }
        if let Some(ms) = header(mode::DELAY_MS).and_then(|v| v.parse().ok()) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        self.echo(request).await
    }

    fn response(&self, status: StatusCode) -> http::response::Builder {
        Response::builder()
            .status(status)
            .header("x-backend", self.name.as_str())
    }

    async fn echo(&self, request: Request<Incoming>) -> Response<Body> {
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let mut headers = serde_json::Map::new();
        for name in parts.headers.keys() {
            let values: Vec<serde_json::Value> = parts
                .headers
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned().into())
                .collect();
            headers.insert(name.as_str().to_string(), values.into());
        }
        let echo = serde_json::json!({
            "backend": self.name,
            "method": parts.method.as_str(),
            "uri": parts.uri.path_and_query().map_or("/", |pq| pq.as_str()),
            "authority": parts.uri.authority().map(|a| a.as_str().to_string()),
            "version": format!("{:?}", parts.version),
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
        });
        self.response(StatusCode::OK)
            .header(CONTENT_TYPE, "application/json")
            .body(full(echo.to_string()))
            .expect("echo response")
    }

    fn stream(self: Arc<Self>) -> Response<Body> {
        let (tx, body) = channel_body(1);
        let response = self.response(StatusCode::OK);
        tokio::spawn(async move {
            let _ = tx.send(Frame::data(Bytes::from_static(b"first\n"))).await;
            if tokio::time::timeout(STEP, self.gate.notified())
                .await
                .is_ok()
            {
                let _ = tx.send(Frame::data(Bytes::from_static(b"rest\n"))).await;
            }
        });
        response.body(body).expect("stream")
    }

    async fn upload(self: Arc<Self>, request: Request<Incoming>) -> Response<Body> {
        let mut incoming = request.into_body();
        let mut tally = Tally::default();
        // The head goes out once the first chunk is in, not the whole body.
        match tokio::time::timeout(STEP, incoming.frame()).await {
            Ok(Some(Ok(frame))) => tally.add(frame.data_ref()),
            _ => {
                return self
                    .response(StatusCode::BAD_REQUEST)
                    .body(full("no first chunk\n"))
                    .expect("upload error");
            }
        }
        let (tx, body) = channel_body(1);
        let response = self.response(StatusCode::OK);
        tokio::spawn(async move {
            // Hold the rest of the body until released: the sender must
            // then be held back by flow control, not buffered for.
            let _ = tokio::time::timeout(STEP, self.gate.notified()).await;
            while let Some(Ok(frame)) = incoming.frame().await {
                tally.add(frame.data_ref());
            }
            let report = format!("received {} {}\n", tally.bytes, tally.sum);
            let _ = tx.send(Frame::data(Bytes::from(report))).await;
        });
        response.body(body).expect("upload")
    }

    fn grpc(self: Arc<Self>, request: Request<Incoming>) -> Response<Body> {
        let (parts, mut incoming) = request.into_parts();
        let mut response = self
            .response(StatusCode::OK)
            .header(CONTENT_TYPE, "application/grpc");
        // What the backend saw, for assertions on the client side.
        for (name, value) in &parts.headers {
            if name.as_str().starts_with("l5d-") || name == "te" {
                response = response.header(format!("x-seen-{name}"), value);
            }
        }
        if let Some(authority) = parts.uri.authority() {
            response = response.header("x-seen-authority", authority.as_str());
        }
        // `x-test-grpc-status: N` asks for that status in the trailers.
        let status = parts
            .headers
            .get("x-test-grpc-status")
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static("0"));
        let (tx, body) = channel_body(1);
        tokio::spawn(async move {
            while let Some(Ok(frame)) = incoming.frame().await {
                if let Ok(data) = frame.into_data()
                    && tx.send(Frame::data(data)).await.is_err()
                {
                    return;
                }
            }
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", status);
            trailers.insert("grpc-message", HeaderValue::from_static("echoed"));
            let _ = tx.send(Frame::trailers(trailers)).await;
        });
        response.body(body).expect("grpc response")
    }

    fn upgrade(self: &Arc<Self>, request: &mut Request<Incoming>) -> Response<Body> {
        let protocol = request
            .headers()
            .get(UPGRADE)
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static("websocket"));
        let on_upgrade = hyper::upgrade::on(request);
        let greeting = format!("hello from {}\n", self.name);
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            let mut io = TokioIo::new(upgraded);
            if io.write_all(greeting.as_bytes()).await.is_err() {
                return;
            }
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match io.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if io.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        self.response(StatusCode::SWITCHING_PROTOCOLS)
            .header(CONNECTION, "upgrade")
            .header(UPGRADE, protocol)
            .body(empty())
            .expect("101 response")
    }
}

/// Bytes received and their sum, to check a body arrived whole.
#[derive(Default)]
struct Tally {
    bytes: u64,
    sum: u64,
}

impl Tally {
    fn add(&mut self, data: Option<&Bytes>) {
        if let Some(data) = data {
            self.bytes += data.len() as u64;
            self.sum = data
                .iter()
                .fold(self.sum, |s, b| s.wrapping_add(u64::from(*b)));
        }
    }
}

/// An address nothing listens on (bound, then closed).
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("address")
}

/// A backend on a raw socket, for answers hyper would not write: `serve`
/// runs for each connection. Also gives the number of connections taken.
pub async fn raw_backend<F, Fut>(serve: F) -> (SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    let addr = listener.local_addr().expect("backend address");
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(stream));
        }
    });
    (addr, connections)
}

/// The next request head on `stream`, taken off `pending` (bytes read but
/// not yet used); `None` once the client closes.
pub async fn read_head(stream: &mut TcpStream, pending: &mut Vec<u8>) -> Option<String> {
    let mut buf = [0u8; 1024];
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).to_string();
            pending.drain(..end + 4);
            return Some(head);
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
        }
    }
}
