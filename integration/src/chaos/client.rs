//! A plain HTTP/1.1 client for namerd's `/api/1/dtabs`: one keep-alive
//! connection, made again after any failure, and streaming watches.
//!
//! A failed request says whether it can have reached namerd: a request
//! that never left (no connection, or the connection was closed before
//! it was sent) cannot have changed anything; one that failed later may
//! or may not have.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long one request may take, answer included. namerd's own calls to
/// its backend give up after 5 s.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// An answer from namerd.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The `ETag` header, if any.
    pub etag: Option<String>,
    /// The body, as text.
    pub body: String,
}

/// Why a request got no answer.
#[derive(Clone, Debug)]
pub enum Failure {
    /// It was never sent: namerd cannot have acted on it.
    NotSent(String),
    /// It was sent (or may have been) and the answer was lost: namerd may
    /// or may not have acted on it.
    Lost(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NotSent(why) => write!(f, "not sent: {why}"),
            Failure::Lost(why) => write!(f, "answer lost: {why}"),
        }
    }
}

/// One keep-alive connection to namerd's HTTP API, made when needed.
pub struct Client {
    addr: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Client {
    /// A client of the namerd listening on `addr`; it connects on first use.
    pub fn new(addr: SocketAddr) -> Client {
        Client { addr, sender: None }
    }

    /// The address it talks to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends one request. After a failure the connection is dropped and
    /// the next request makes a new one.
    pub async fn request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: String,
    ) -> Result<Answer, Failure> {
        let result = self.try_request(method, target, headers, body).await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }

    async fn try_request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: String,
    ) -> Result<Answer, Failure> {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(target)
            .header(hyper::header::HOST, "namerd");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Failure::NotSent(format!("bad request: {e}")))?;
        let sender = self.ready().await?;
        let exchange = async {
            let response = sender.try_send_request(request).await.map_err(|mut e| {
                // The request comes back only if none of it was written.
                if e.take_message().is_some() {
                    Failure::NotSent(e.error().to_string())
                } else {
                    Failure::Lost(e.error().to_string())
                }
            })?;
            let status = response.status().as_u16();
            let etag = response
                .headers()
                .get(hyper::header::ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| Failure::Lost(format!("reading the body: {e}")))?
                .to_bytes();
            Ok(Answer {
                status,
                etag,
                body: String::from_utf8_lossy(&body).into_owned(),
            })
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Lost(format!(
                "no answer within {REQUEST_TIMEOUT:?}"
            ))),
        }
    }

    /// The connection, ready for a request; made if there is none.
    async fn ready(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, Failure> {
        if let Some(sender) = &mut self.sender
            && sender.ready().await.is_err()
        {
            // Closed while idle (namerd went away): nothing was sent on it.
            self.sender = None;
        }
        if self.sender.is_none() {
            self.sender = Some(connect(self.addr).await?);
        }
        self.sender
            .as_mut()
            .ok_or_else(|| Failure::NotSent("no connection".to_string()))
    }
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, Failure> {
    let connecting = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| Failure::NotSent(format!("cannot connect to {addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Failure::NotSent(format!("handshake with {addr}: {e}")))?;
        tokio::spawn(async move {
            // Its end (namerd gone) shows in the next request.
            let _ = connection.await;
        });
        Ok(sender)
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, connecting).await {
        Ok(result) => result,
        Err(_) => Err(Failure::NotSent(format!(
            "cannot connect to {addr} within {REQUEST_TIMEOUT:?}"
        ))),
    }
}

/// `GET /api/1/dtabs/{ns}` in the dtab text form, with its `ETag`.
pub async fn get_dtab(client: &mut Client, ns: &str) -> Result<Answer, Failure> {
    client
        .request(
            "GET",
            &format!("/api/1/dtabs/{ns}"),
            &[("Accept", "application/dtab")],
            String::new(),
        )
        .await
}

/// `PUT /api/1/dtabs/{ns}`: with `if_match`, a compare-and-set.
pub async fn put_dtab(
    client: &mut Client,
    ns: &str,
    dtab: &str,
    if_match: Option<&str>,
) -> Result<Answer, Failure> {
    let mut headers = vec![("Content-Type", "application/dtab")];
    if let Some(etag) = if_match {
        headers.push(("If-Match", etag));
    }
    client
        .request(
            "PUT",
            &format!("/api/1/dtabs/{ns}"),
            &headers,
            dtab.to_string(),
        )
        .await
}

/// A `watch=true` stream: each line of its body as it arrives (JSON
/// documents, or the message of an error that ends the stream).
pub struct Watch {
    lines: mpsc::UnboundedReceiver<String>,
    reader: JoinHandle<()>,
}

impl Watch {
    /// Opens `GET /api/1/dtabs/{ns}?watch=true` on its own connection;
    /// fails unless namerd answers 200.
    pub async fn open(addr: SocketAddr, ns: &str) -> Result<Watch, String> {
        let mut sender = connect(addr).await.map_err(|e| e.to_string())?;
        let request = hyper::Request::builder()
            .uri(format!("/api/1/dtabs/{ns}?watch=true"))
            .header(hyper::header::HOST, "namerd")
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(REQUEST_TIMEOUT, sender.send_request(request))
            .await
            .map_err(|_| format!("no answer to the watch within {REQUEST_TIMEOUT:?}"))?
            .map_err(|e| format!("the watch failed: {e}"))?;
        if response.status() != hyper::StatusCode::OK {
            return Err(format!("the watch was answered {}", response.status()));
        }
        let (tx, lines) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            // Keeps the connection's sender alive as long as the stream.
            let _sender = sender;
            let mut body = response.into_body();
            let mut pending = Vec::new();
            while let Some(Ok(frame)) = body.frame().await {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                pending.extend_from_slice(&data);
                while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    let line = String::from_utf8_lossy(&line).trim().to_string();
                    if !line.is_empty() && tx.send(line).is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Watch { lines, reader })
    }

    /// The next line, if one comes within `limit`; `Err` when the stream
    /// has ended.
    pub async fn next(&mut self, limit: Duration) -> Result<Option<String>, String> {
        match tokio::time::timeout(limit, self.lines.recv()).await {
            Ok(Some(line)) => Ok(Some(line)),
            Ok(None) => Err("the watch stream ended".to_string()),
            Err(_) => Ok(None),
        }
    }

    /// Waits up to `limit` for a line that `wanted` accepts, skipping
    /// others; the lines seen meanwhile are in the error.
    pub async fn wait_for(
        &mut self,
        limit: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Ok(Some(line)) if wanted(&line) => return Ok(line),
                Ok(Some(line)) => seen.push(line),
                Ok(None) => {
                    return Err(format!(
                        "not seen within {limit:?}; seen meanwhile: {seen:?}"
                    ));
                }
                Err(e) => return Err(format!("{e}; seen before it ended: {seen:?}")),
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.reader.abort();
    }
}
