//! Serving a watch connection without hyper: the first request's head is
//! read into a small buffer, the response comes from the same axum router,
//! and its head and body chunks are written straight to the socket. The
//! connection closes when the body ends; nothing else is read from it.

use std::io::Write as _;
use std::time::SystemTime;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version, header,
};
use http_body_util::BodyExt as _;
use hyper::body::Body as _;
use hyper::service::Service as _;
use hyper_util::service::TowerToHyperService;
use namers::tls::Stream;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::time::Instant;

use namers::session::{DEFAULT_HEAD_TIMEOUT as HEAD_TIMEOUT, DEFAULT_IDLE_TIMEOUT as IDLE_TIMEOUT};

/// How much of a first request is read before giving it to hyper. A watch
/// request's head is about a hundred bytes.
const HEAD_LIMIT: usize = 4096;

/// The most header fields a request served here may have.
const MAX_HEADERS: usize = 32;

/// What the first request on a connection is.
pub(super) enum First {
    /// A watch request, served here.
    Watch(Box<Request<Body>>),
    /// Anything else, with the bytes read so far, for hyper.
    Other(Vec<u8>),
    /// The client closed the connection without sending anything.
    Closed,
    /// Nothing came for the idle time, or the head did not come whole
    /// within the head time of its first byte.
    TimedOut,
}

/// Reads until the first request's head is complete (or clearly not a
/// watch request) and says which path serves it. The connection was
/// accepted at `accepted`.
pub(super) async fn read_first_head(tcp: &mut Stream, accepted: Instant) -> std::io::Result<First> {
    let mut read = Vec::with_capacity(512);
    let mut deadline = accepted + IDLE_TIMEOUT;
    loop {
        let Ok(n) = tokio::time::timeout_at(deadline, tcp.read_buf(&mut read)).await else {
            return Ok(First::TimedOut);
        };
        let n = n?;
        if n == 0 {
            return Ok(if read.is_empty() {
                First::Closed
            } else {
                First::Other(read)
            });
        }
        if n == read.len() {
            // The first bytes: the head has begun.
            deadline = Instant::now() + HEAD_TIMEOUT;
        }
        match sniff(&read) {
            Sniffed::Watch(request) => return Ok(First::Watch(request)),
            Sniffed::Partial if read.len() < HEAD_LIMIT => {}
            Sniffed::Partial | Sniffed::Other => return Ok(First::Other(read)),
        }
    }
}

enum Sniffed {
    Watch(Box<Request<Body>>),
    Partial,
    Other,
}

/// Whether `read` is exactly one complete head of an HTTP/1.1 `GET` that
/// asks for a watch and has no body, and that request if so. Everything
/// unusual (another method or version, a body, `Expect`, `Upgrade`,
/// pipelined bytes, malformed fields) is left to hyper.
fn sniff(read: &[u8]) -> Sniffed {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut fields);
    let len = match parsed.parse(read) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Sniffed::Partial,
        Err(_) => return Sniffed::Other,
    };
    if len != read.len() || parsed.method != Some("GET") || parsed.version != Some(1) {
        return Sniffed::Other;
    }
    let Some(target) = parsed.path.filter(|t| asks_to_watch(t)) else {
        return Sniffed::Other;
    };
    let Ok(uri) = target.parse::<Uri>() else {
        return Sniffed::Other;
    };
    let mut headers = HeaderMap::with_capacity(parsed.headers.len());
    for field in parsed.headers.iter() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(field.name.as_bytes()),
            HeaderValue::from_bytes(field.value),
        ) else {
            return Sniffed::Other;
        };
        headers.append(name, value);
    }
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get_all(header::CONTENT_LENGTH)
            .iter()
            .any(|v| v.as_bytes() != b"0");
    if has_body || headers.contains_key(header::EXPECT) || headers.contains_key(header::UPGRADE) {
        return Sniffed::Other;
    }
    let mut request = Request::new(Body::empty());
    *request.method_mut() = Method::GET;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    Sniffed::Watch(Box::new(request))
}

/// Whether a request target's query has `watch=true` or `watch=1`, as the
/// API's handlers check. A miss only means hyper serves the watch.
fn asks_to_watch(target: &str) -> bool {
    target.split_once('?').is_some_and(|(_, query)| {
        query
            .split('&')
            .any(|pair| pair == "watch=true" || pair == "watch=1")
    })
}

/// Answers `request` with `app` and writes the response, then closes.
pub(super) async fn serve_watch(mut tcp: Stream, request: Request<Body>, app: Router) {
    // Updates are written one by one as they happen; none may wait for the
    // previous one's acknowledgement.
    let _ = tcp.tcp().set_nodelay(true);
    let response = match TowerToHyperService::new(app).call(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    if let Err(e) = write_response(&mut tcp, response).await {
        tracing::debug!(error = %e, "writing a watch response failed");
        return;
    }
    let _ = tcp.shutdown().await;
}

/// How the body of a response is delimited.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Framing {
    /// No body at all (1xx, 204, 304).
    None,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

fn framing(response: &Response<Body>) -> Framing {
    let status = response.status();
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Framing::None;
    }
    match response.body().size_hint().exact() {
        Some(len) => Framing::Length(len),
        None => Framing::Chunked,
    }
}

/// The status line and header fields, ending with the blank line. The
/// connection is always closed after the body.
fn head(response: &Response<Body>, framing: Framing) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let status = response.status();
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("")
    );
    for (name, value) in response.headers() {
        if name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::CONNECTION
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !response.headers().contains_key(header::DATE) {
        let _ = write!(
            out,
            "date: {}\r\n",
            httpdate::fmt_http_date(SystemTime::now())
        );
    }
    match framing {
        Framing::None => {}
        Framing::Length(len) => {
            let _ = write!(out, "content-length: {len}\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out
}

async fn write_response(tcp: &mut Stream, response: Response<Body>) -> std::io::Result<()> {
    let framing = framing(&response);
    tcp.write_all(&head(&response, framing)).await?;
    tcp.flush().await?;
    if framing == Framing::None {
        return Ok(());
    }
    let body = response.into_body();
    match tcp {
        // Borrowed halves: no allocation, no lock.
        Stream::Plain(tcp) => {
            let (reader, writer) = tcp.split();
            write_body(body, framing, reader, writer).await
        }
        // A TLS session is one state for both directions; tokio's halves
        // share it under a lock.
        tls => {
            let (reader, writer) = tokio::io::split(tls);
            write_body(body, framing, reader, writer).await
        }
    }
}

/// Writes `body` to `writer` until it ends or the client goes away (seen
/// on `reader`).
async fn write_body(
    mut body: Body,
    framing: Framing,
    mut reader: impl AsyncRead + Unpin,
    mut writer: impl AsyncWrite + Unpin,
) -> std::io::Result<()> {
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            () = client_gone(&mut reader) => return Ok(()),
        };
        let data = match frame {
            None => break,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                // Trailers are not sent.
                Err(_) => continue,
            },
            Some(Err(e)) => {
                // Without the last chunk the client sees an incomplete
                // response, as hyper would show it.
                return Err(std::io::Error::other(e));
            }
        };
        if data.is_empty() {
            continue;
        }
        match framing {
            Framing::Chunked => writer.write_all(&chunk(&data)).await?,
            _ => writer.write_all(&data).await?,
        }
        // Each update leaves now (over TLS, a write may stay in the
        // session's buffer until flushed; on TCP this costs nothing).
        writer.flush().await?;
    }
    if framing == Framing::Chunked {
        writer.write_all(b"0\r\n\r\n").await?;
    }
    writer.flush().await
}

/// One chunk of a chunked body, in one buffer so that it is one write.
fn chunk(data: &Bytes) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 12);
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// Completes when the client closes its side or the connection breaks.
/// Anything it sends meanwhile is dropped: no second request is served on
/// a watch connection.
async fn client_gone(reader: &mut (impl AsyncRead + Unpin)) {
    let mut scratch = [0u8; 64];
    while let Ok(1..) = reader.read(&mut scratch).await {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch_target(read: &str) -> Option<String> {
        match sniff(read.as_bytes()) {
            Sniffed::Watch(request) => Some(request.uri().to_string()),
            _ => None,
        }
    }

    #[test]
    fn a_bodiless_watch_get_is_served_here() {
        assert_eq!(
            watch_target("GET /api/1/dtabs/default?watch=true HTTP/1.1\r\nHost: n\r\n\r\n"),
            Some("/api/1/dtabs/default?watch=true".to_string())
        );
        assert!(
            watch_target(
                "GET /api/1/bind/default?path=/svc/web&watch=1 HTTP/1.1\r\nHost: n\r\nContent-Length: 0\r\n\r\n"
            )
            .is_some()
        );
    }

    #[test]
    fn everything_else_goes_to_hyper() {
        for read in [
            "GET /api/1/dtabs/default HTTP/1.1\r\nHost: n\r\n\r\n",
            "GET /api/1/dtabs/default?watch=false HTTP/1.1\r\n\r\n",
            "GET /api/1/dtabs/default?nowatch=true HTTP/1.1\r\n\r\n",
            "HEAD /api/1/dtabs/default?watch=true HTTP/1.1\r\n\r\n",
            "GET /api/1/dtabs/default?watch=true HTTP/1.0\r\n\r\n",
            "GET /api/1/dtabs/default?watch=true HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            "GET /api/1/dtabs/default?watch=true HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /api/1/dtabs/default?watch=true HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            "GET /api/1/dtabs/default?watch=true HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            // A pipelined second request.
            "GET /api/1/dtabs/default?watch=true HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "garbage\r\n\r\n",
        ] {
            assert!(matches!(sniff(read.as_bytes()), Sniffed::Other), "{read:?}");
        }
    }

    #[test]
    fn an_incomplete_head_waits_for_more() {
        assert!(matches!(
            sniff(b"GET /api/1/dtabs/default?watch=true HTTP/1.1\r\nHost"),
            Sniffed::Partial
        ));
    }

    fn response(status: StatusCode, body: Body) -> Response<Body> {
        let mut response = Response::new(body);
        *response.status_mut() = status;
        response
    }

    #[test]
    fn framing_follows_the_status_and_the_body() {
        assert_eq!(
            framing(&response(StatusCode::OK, Body::from("abc\n"))),
            Framing::Length(4)
        );
        assert_eq!(
            framing(&response(
                StatusCode::OK,
                Body::from_stream(futures_util::stream::empty::<Result<Bytes, std::io::Error>>())
            )),
            Framing::Chunked
        );
        assert_eq!(
            framing(&response(StatusCode::NO_CONTENT, Body::empty())),
            Framing::None
        );
    }

    #[test]
    fn the_head_replaces_framing_fields_and_closes() {
        let mut r = response(StatusCode::NOT_FOUND, Body::from("gone\n"));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("999"));
        let head = String::from_utf8(head(&r, Framing::Length(5))).unwrap();
        assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"), "{head}");
        assert!(head.contains("content-type: text/plain\r\n"), "{head}");
        assert!(head.contains("content-length: 5\r\n"), "{head}");
        assert!(!head.contains("999"), "{head}");
        assert!(head.contains("\r\ndate: "), "{head}");
        assert!(head.ends_with("connection: close\r\n\r\n"), "{head}");
    }

    #[test]
    fn a_chunk_is_its_hex_length_and_data() {
        assert_eq!(chunk(&Bytes::from(vec![b'x'; 26])), {
            let mut want = b"1a\r\n".to_vec();
            want.extend_from_slice(&[b'x'; 26]);
            want.extend_from_slice(b"\r\n");
            want
        });
    }
}
