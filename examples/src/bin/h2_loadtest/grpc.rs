//! gRPC on the wire, without generated code: the five-byte message
//! framing, the small protobuf messages the load sends and answers, and
//! the upstream server, written on the `h2` crate as tonic's transport is.
//!
//! The server is not a full gRPC implementation: it knows two methods,
//! reads the request to its end without decoding it, never compresses and
//! ignores deadlines (`grpc-timeout`). A proxy sees what it would see from
//! a real server: `content-type: application/grpc`, one DATA frame per
//! message, and `grpc-status` in the trailers.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use bytes::{BufMut as _, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use tokio::net::{TcpListener, TcpStream};

/// The service both gRPC scenarios call.
pub(crate) const SERVICE: &str = "bench.Echo";
/// Receive windows of the server and the load client, per stream and per
/// connection: large enough that flow control never holds a call back.
pub(crate) const WINDOW: u32 = 1 << 20;

/// The two methods of [`SERVICE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Method {
    /// One request message, one answer message.
    Unary,
    /// One request message, `messages` answer messages.
    Stream,
}

impl Method {
    /// The request's `:path`.
    pub(crate) fn path(self) -> String {
        match self {
            Method::Unary => format!("/{SERVICE}/Unary"),
            Method::Stream => format!("/{SERVICE}/Stream"),
        }
    }

    fn from_path(path: &str) -> Option<Method> {
        let method = path.strip_prefix('/')?.strip_prefix(SERVICE)?;
        match method {
            "/Unary" => Some(Method::Unary),
            "/Stream" => Some(Method::Stream),
            _ => None,
        }
    }
}

/// One length-prefixed gRPC message (uncompressed) holding a protobuf
/// message whose field 1 is `size - 2` bytes, so that the protobuf message
/// is `size` bytes long (2 ≤ size ≤ 129, where the length fits one byte).
pub(crate) fn message(size: usize, fill: u8) -> Bytes {
    let size = size.clamp(2, 129);
    let mut out = BytesMut::with_capacity(5 + size);
    out.put_u8(0);
    out.put_u32(u32::try_from(size).unwrap_or(129));
    out.put_u8(0x0a); // field 1, length-delimited
    out.put_u8(u8::try_from(size - 2).unwrap_or(127));
    out.put_bytes(fill, size - 2);
    out.freeze()
}

/// Counts the gRPC messages of a response body that arrives in pieces of
/// any size.
#[derive(Debug, Default)]
pub(crate) struct Deframer {
    /// Bytes of the current message's five-byte header seen so far.
    header: Vec<u8>,
    /// Bytes of the current message's body still to come.
    remaining: usize,
    /// Messages completed.
    pub(crate) messages: u64,
}

impl Deframer {
    /// Takes the next piece of the body.
    pub(crate) fn push(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len());
                self.remaining -= n;
                data = &data[n..];
                if self.remaining == 0 {
                    self.messages += 1;
                }
                continue;
            }
            let n = (5 - self.header.len()).min(data.len());
            self.header.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.header.len() == 5 {
                let len = u32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]);
                self.header.clear();
                self.remaining = len as usize;
                if self.remaining == 0 {
                    self.messages += 1;
                }
            }
        }
    }

    /// Whether the body ended between messages.
    pub(crate) fn is_clean(&self) -> bool {
        self.header.is_empty() && self.remaining == 0
    }
}

/// The gRPC status of an answer: from the trailers, or from the head of a
/// trailers-only answer.
pub(crate) fn grpc_status(head: &HeaderMap, trailers: Option<&HeaderMap>) -> Option<String> {
    trailers
        .and_then(|t| t.get("grpc-status"))
        .or_else(|| head.get("grpc-status"))
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// What the upstream answers.
#[derive(Debug, Clone)]
struct Answers {
    unary: Bytes,
    stream: Bytes,
    stream_messages: u32,
}

/// The upstream: serves [`SERVICE`] with prior-knowledge h2c on `addr`
/// until killed, on one thread. `Unary` answers one message of 4 bytes,
/// `Stream` answers `messages` messages of `size` bytes each.
pub(crate) fn serve(addr: SocketAddr, messages: u32, size: usize) -> Result<()> {
    let answers = Answers {
        unary: message(4, b'k'),
        stream: message(size, b'x'),
        stream_messages: messages,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of descriptors, or reset before accept: keep serving.
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            };
            tokio::spawn(serve_connection(stream, answers.clone()));
        }
    })
}

async fn serve_connection(stream: TcpStream, answers: Answers) {
    let _ = stream.set_nodelay(true);
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(1000)
        .initial_window_size(WINDOW)
        .initial_connection_window_size(WINDOW)
        .handshake::<_, Bytes>(stream)
        .await;
    let Ok(mut connection) = handshake else {
        return;
    };
    while let Some(Ok((request, respond))) = connection.accept().await {
        tokio::spawn(answer(request, respond, answers.clone()));
    }
}

async fn answer(
    request: Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    answers: Answers,
) {
    let method = Method::from_path(request.uri().path());
    let mut body = request.into_body();
    while let Some(chunk) = body.data().await {
        let Ok(chunk) = chunk else {
            return;
        };
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let head = |status: Option<&'static str>| {
        let mut response = Response::new(());
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        headers.insert("content-type", HeaderValue::from_static("application/grpc"));
        if let Some(status) = status {
            headers.insert("grpc-status", HeaderValue::from_static(status));
        }
        response
    };
    let Some(method) = method else {
        // A trailers-only answer: UNIMPLEMENTED.
        let _ = respond.send_response(head(Some("12")), true);
        return;
    };
    let Ok(mut send) = respond.send_response(head(None), false) else {
        return;
    };
    let (message, count) = match method {
        Method::Unary => (&answers.unary, 1),
        Method::Stream => (&answers.stream, answers.stream_messages),
    };
    for _ in 0..count {
        if send.send_data(message.clone(), false).is_err() {
            return;
        }
    }
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let _ = send.send_trailers(trailers);
}

/// What one request answered: the status, the gRPC status and messages
/// (gRPC), or the body (plain h2).
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) grpc_status: Option<String>,
    pub(crate) messages: u64,
    pub(crate) body: Bytes,
    pub(crate) l5d_err: Option<String>,
}

/// One request over a new prior-knowledge h2c connection: a gRPC call of
/// `method`, or `GET /` when `method` is `None`. Used to tell when a proxy
/// is up and to check what it forwards.
pub(crate) async fn call_once(
    addr: SocketAddr,
    authority: &str,
    method: Option<Method>,
) -> Result<Answer> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (client, connection) = h2::client::handshake(tcp).await?;
    tokio::spawn(connection);
    let mut client = client.ready().await?;
    let (request, body) = match method {
        None => (Request::get(format!("http://{authority}/")).body(())?, None),
        Some(method) => (grpc_request(authority, method)?, Some(message(7, b'h'))),
    };
    let (response, mut send) = client.send_request(request, body.is_none())?;
    if let Some(body) = body {
        send.send_data(body, true)?;
    }
    let response = response.await?;
    let status = response.status().as_u16();
    let head = response.headers().clone();
    let mut recv = response.into_body();
    let mut bytes = BytesMut::new();
    let mut deframer = Deframer::default();
    while let Some(chunk) = recv.data().await {
        let chunk = chunk?;
        let _ = recv.flow_control().release_capacity(chunk.len());
        deframer.push(&chunk);
        bytes.extend_from_slice(&chunk);
    }
    let trailers = recv.trailers().await?;
    Ok(Answer {
        status,
        grpc_status: grpc_status(&head, trailers.as_ref()),
        messages: deframer.messages,
        body: bytes.freeze(),
        l5d_err: head
            .get("l5d-err")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
    })
}

/// The head of a gRPC call of `method` to `authority`.
pub(crate) fn grpc_request(authority: &str, method: Method) -> Result<Request<()>> {
    let request = Request::post(format!("http://{authority}{}", method.path()))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())?;
    Ok(request)
}

/// Checks an [`Answer`] to a call expecting `messages` messages.
pub(crate) fn check_grpc(answer: &Answer, messages: u64) -> Result<()> {
    if answer.status != 200 {
        bail!(
            "HTTP status {}{}",
            answer.status,
            answer
                .l5d_err
                .as_deref()
                .map(|e| format!(", l5d-err: {e}"))
                .unwrap_or_default()
        );
    }
    match answer.grpc_status.as_deref() {
        Some("0") => {}
        Some(other) => bail!("grpc-status {other}"),
        None => bail!("no grpc-status"),
    }
    if answer.messages != messages {
        bail!("{} messages, expected {messages}", answer.messages);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_counted_across_any_split() {
        let one = message(100, b'x');
        assert_eq!(one.len(), 105);
        assert_eq!(&one[..7], &[0, 0, 0, 0, 100, 0x0a, 98]);
        let body: Vec<u8> = one.iter().copied().cycle().take(105 * 3).collect();
        for split in [1, 2, 4, 5, 6, 104, 105, 106, 315] {
            let mut d = Deframer::default();
            for piece in body.chunks(split) {
                d.push(piece);
            }
            assert_eq!(d.messages, 3, "pieces of {split}");
            assert!(d.is_clean());
        }
        let mut d = Deframer::default();
        d.push(&body[..107]);
        assert_eq!(d.messages, 1);
        assert!(!d.is_clean());
    }

    #[test]
    fn status_from_trailers_or_a_trailers_only_head() {
        let mut head = HeaderMap::new();
        let mut trailers = HeaderMap::new();
        assert_eq!(grpc_status(&head, None), None);
        head.insert("grpc-status", HeaderValue::from_static("14"));
        assert_eq!(grpc_status(&head, None).as_deref(), Some("14"));
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        assert_eq!(grpc_status(&head, Some(&trailers)).as_deref(), Some("0"));
    }

    #[test]
    fn paths_name_the_methods() {
        assert_eq!(Method::from_path("/bench.Echo/Unary"), Some(Method::Unary));
        assert_eq!(
            Method::from_path(&Method::Stream.path()),
            Some(Method::Stream)
        );
        assert_eq!(Method::from_path("/bench.Echo/Other"), None);
        assert_eq!(Method::from_path("/other.Echo/Unary"), None);
    }
}
