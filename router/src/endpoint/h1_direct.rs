//! The upstream side of the most common proxied requests, done in the
//! request's own task: a bodiless one with an idempotent method (`GET`,
//! `HEAD`, `OPTIONS`, `DELETE`, `TRACE`), and one whose body the router's
//! own server has already read whole (a `Content-Length` body, any method
//! but `CONNECT`).
//!
//! hyper's client drives every connection from a task of its own, so a
//! request crosses tasks three times: to that task, back with the response
//! head, and again with each body frame. A request with nothing more to
//! send once its head and body are written needs none of that: here both
//! go in one write and the answer is read by the task that serves the
//! client. Streamed bodies and upgrades still take hyper's client, which
//! can send and read at once.
//!
//! Responses are framed as RFC 9112 section 6 says: no body after `HEAD`,
//! 1xx, 204 and 304; chunked when `Transfer-Encoding` ends in `chunked`;
//! `Content-Length`; otherwise until the server closes. A connection goes
//! back to its pool once its body has been read to the end and the server
//! did not ask to close it.

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version, request, response};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use smallvec::SmallVec;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::body::BodyError;
use crate::endpoint::h1_pool::H1Pool;
use crate::socket_read;
use crate::stats::OpenConnection;

/// The most response headers accepted (hyper's default too).
const MAX_HEADERS: usize = 100;
/// The largest response head, or chunk-size or trailer line, accepted.
const MAX_HEAD_BYTES: usize = 400 * 1024;
/// How much room a read asks for at least.
const READ_RESERVE: usize = 8 * 1024;

/// An open upstream connection and what has been read from it but not used.
pub struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    /// Counts the connection open in its client's figures.
    _open: Option<OpenConnection>,
}

impl Conn {
    /// A new connection.
    pub fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buf: BytesMut::new(),
            _open: None,
        }
    }

    /// The connection, counted open while it lives.
    pub fn counted(mut self, open: OpenConnection) -> Conn {
        self._open = Some(open);
        self
    }

    /// Whether the server has neither closed the connection nor sent
    /// anything since the last response ended.
    pub fn looks_open(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(
            self.stream.try_read(&mut probe),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock
        )
    }

    async fn read_more(&mut self) -> io::Result<usize> {
        socket_read::read_buf(&self.stream, &mut self.buf, READ_RESERVE).await
    }

    fn poll_read_more(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        socket_read::poll_read_buf(&self.stream, &mut self.buf, READ_RESERVE, cx)
    }
}

/// What a request carries after its head, as far as this path cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carried {
    /// No body.
    Nothing,
    /// A body already in memory, whole, with its `Content-Length`.
    Whole,
    /// A body still arriving.
    Streamed,
}

/// Whether a request can take this path: no upgrade, and either no body
/// and a method that may be retried (RFC 9110 section 9.2.2), or a body
/// already whole and any method but `CONNECT`.
pub fn eligible(method: &Method, carried: Carried, upgrading: bool) -> bool {
    if upgrading {
        return false;
    }
    match carried {
        Carried::Nothing => matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::DELETE | Method::TRACE
        ),
        Carried::Whole => *method != Method::CONNECT,
        Carried::Streamed => false,
    }
}

/// Whether a request with `method` may be sent again after its connection
/// failed with no answer (RFC 9110 section 9.2.2): the server may have
/// acted on it, but acting twice has the same effect as once.
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::DELETE | Method::TRACE | Method::PUT
    )
}

/// Writes the request line (origin-form URI) and the fields of `parts`
/// that `keep` accepts to `out`, as HTTP/1.1. The caller adds any further
/// fields ([`push_field`]) and the blank line that ends the head.
pub fn encode_head(
    parts: &request::Parts,
    out: &mut Vec<u8>,
    mut keep: impl FnMut(&HeaderName) -> bool,
) {
    out.clear();
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        if keep(name) {
            push_field(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
}

/// Writes one `name: value` line to `out`.
pub fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Why an exchange failed, and whether the request may be sent again on
/// another connection.
#[derive(Debug)]
pub struct ExchangeError {
    /// What went wrong, for `l5d-err`.
    pub message: String,
    /// The connection ended before any of the answer arrived: a reused
    /// connection the server had closed while idle.
    pub stale: bool,
    /// The request could not be written whole, so the server cannot have
    /// acted on it.
    pub unwritten: bool,
}

impl ExchangeError {
    fn new(message: impl Into<String>) -> ExchangeError {
        ExchangeError {
            message: message.into(),
            stale: false,
            unwritten: false,
        }
    }

    /// Whether the request may go again on another connection: the server
    /// cannot have seen it whole, or it may be repeated anyway.
    pub fn may_resend(&self, method: &Method) -> bool {
        self.stale && (self.unwritten || is_idempotent(method))
    }
}

/// Sends `head`, then `body`, on `conn`, and reads the response head. On
/// success the connection is inside the returned body.
pub async fn exchange(
    mut conn: Conn,
    head: &[u8],
    body: &[u8],
    method: &Method,
    release: Release,
) -> Result<(Answer, DirectBody), ExchangeError> {
    write_request(&mut conn.stream, head, body)
        .await
        .map_err(|e| ExchangeError {
            message: format!("connection error: {e}"),
            stale: true,
            unwritten: true,
        })?;
    let mut received_any = false;
    loop {
        let head = loop {
            if let Some(head) = parse_head(&mut conn.buf)? {
                break head;
            }
            if conn.buf.len() >= MAX_HEAD_BYTES {
                return Err(ExchangeError::new(format!(
                    "response head larger than {MAX_HEAD_BYTES} bytes"
                )));
            }
            let read = conn.read_more().await;
            match read {
                Ok(0) | Err(_) if !received_any => {
                    return Err(ExchangeError {
                        message: "connection closed before message completed".into(),
                        stale: true,
                        unwritten: false,
                    });
                }
                Ok(0) => {
                    return Err(ExchangeError::new(
                        "connection closed before message completed",
                    ));
                }
                Ok(_) => received_any = true,
                Err(e) => return Err(ExchangeError::new(format!("connection error: {e}"))),
            }
        };
        if head.status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(ExchangeError::new(
                "101 Switching Protocols to a request that asked for no upgrade",
            ));
        }
        if head.status.is_informational() {
            // 100 Continue, 103 Early Hints: the final answer follows.
            continue;
        }
        let (framing, keep_alive) = framing_of(&head, method);
        let body = DirectBody {
            conn: Some(conn),
            framing,
            keep_alive,
            trailers: None,
            release,
        };
        let mut body = body;
        body.finish_if_done();
        return Ok((head, body));
    }
}

/// Writes `head` and `body` in as few system calls as the socket allows:
/// one, usually.
async fn write_request(stream: &mut TcpStream, head: &[u8], body: &[u8]) -> io::Result<()> {
    if body.is_empty() {
        return stream.write_all(head).await;
    }
    let mut sent = 0;
    while sent < head.len() {
        let parts = [IoSlice::new(&head[sent..]), IoSlice::new(body)];
        match stream.write_vectored(&parts).await? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => sent += n,
        }
    }
    stream.write_all(&body[sent - head.len()..]).await
}

/// A response head as the upstream sent it, without its hop-by-hop
/// fields: the head's bytes, where each kept field sits in them, and what
/// the hop-by-hop fields said about framing. It is turned into an HTTP
/// response only when hyper's server is the one answering; the router's
/// own HTTP/1 server copies the fields to the client as they are.
pub struct Answer {
    bytes: Bytes,
    status: StatusCode,
    version: Version,
    reason: Place,
    fields: SmallVec<[Span; 16]>,
    /// `Connection: close` was sent.
    close: bool,
    /// `Connection: keep-alive` was sent.
    keep_alive: bool,
    /// `Transfer-Encoding` was sent; whether its last coding is `chunked`.
    transfer_chunked: Option<bool>,
    /// The `Content-Length`, if one was sent.
    content_length: Option<u64>,
    /// The router's `l5d-success-class`, which replaces the upstream's.
    success_class: Option<HeaderValue>,
}

/// Where some bytes sit in a head: start and end offsets. (Heads are far
/// smaller than 4 GiB; 32-bit offsets keep an [`Answer`] small to move.)
pub(crate) type Place = (u32, u32);

/// Where `part`, a slice of the buffer that starts at address `base`,
/// sits in that buffer.
pub(crate) fn place_in(base: usize, part: &[u8]) -> Place {
    match part.len() {
        // An empty slice may not point into the buffer at all.
        0 => (0, 0),
        n => {
            let at = part.as_ptr() as usize - base;
            (at as u32, (at + n) as u32)
        }
    }
}

/// The byte range of `place`.
pub(crate) fn range(place: Place) -> std::ops::Range<usize> {
    place.0 as usize..place.1 as usize
}

/// Where one field's name and value sit in the head.
#[derive(Clone, Copy)]
struct Span {
    name: Place,
    value: Place,
}

/// What a response field means to a proxy.
enum Field {
    Connection,
    TransferEncoding,
    ContentLength,
    /// `Keep-Alive`, `Proxy-Connection`, `Upgrade`: dropped.
    OtherHopByHop,
    EndToEnd,
}

fn classify(name: &[u8]) -> Field {
    let is = |known: &[u8]| name.eq_ignore_ascii_case(known);
    match name.len() {
        10 if is(b"connection") => Field::Connection,
        17 if is(b"transfer-encoding") => Field::TransferEncoding,
        14 if is(b"content-length") => Field::ContentLength,
        10 if is(b"keep-alive") => Field::OtherHopByHop,
        16 if is(b"proxy-connection") => Field::OtherHopByHop,
        7 if is(b"upgrade") => Field::OtherHopByHop,
        _ => Field::EndToEnd,
    }
}

impl Answer {
    fn at(&self, place: Place) -> &[u8] {
        &self.bytes[range(place)]
    }

    /// The response status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The answer's `l5d-success-class` and `l5d-retryable` fields, which
    /// classifiers read; empty (and not allocated) for most answers.
    pub fn classifier_fields(&self) -> http::HeaderMap {
        let mut found = http::HeaderMap::new();
        for span in &self.fields {
            let name = self.at(span.name);
            if name.len() < 13 || !name[..4].eq_ignore_ascii_case(b"l5d-") {
                continue;
            }
            let known = [
                crate::endpoint::L5D_SUCCESS_CLASS,
                HeaderName::from_static("l5d-retryable"),
            ];
            for known in known {
                if name.eq_ignore_ascii_case(known.as_str().as_bytes())
                    && let Ok(value) = HeaderValue::from_bytes(self.at(span.value))
                {
                    found.append(known, value);
                }
            }
        }
        found
    }

    /// Sets the `l5d-success-class` the client gets, in place of any the
    /// upstream sent.
    pub fn set_success_class(&mut self, value: HeaderValue) {
        self.success_class = Some(value);
    }

    fn is_replaced(&self, name: &[u8]) -> bool {
        self.success_class.is_some()
            && name.eq_ignore_ascii_case(crate::endpoint::L5D_SUCCESS_CLASS.as_str().as_bytes())
    }

    /// The answer's `Content-Length`, if it has one.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// Whether the kept fields frame the body with `Content-Length`.
    pub fn declares_length(&self) -> bool {
        self.content_length.is_some() && self.transfer_chunked.is_none()
    }

    /// The head as HTTP response parts (for hyper's server).
    pub fn into_parts(self) -> Result<response::Parts, String> {
        let (mut parts, ()) = response::Response::new(()).into_parts();
        parts.status = self.status;
        parts.version = self.version;
        parts.headers.reserve(self.fields.len() + 1);
        for span in &self.fields {
            let name_bytes = self.at(span.name);
            if self.is_replaced(name_bytes) {
                continue;
            }
            let name = HeaderName::from_bytes(name_bytes).map_err(|_| {
                format!(
                    "invalid header name {:?}",
                    String::from_utf8_lossy(name_bytes)
                )
            })?;
            let value = HeaderValue::from_maybe_shared(
                self.bytes
                    .slice(span.value.0 as usize..span.value.1 as usize),
            )
            .map_err(|_| format!("invalid value of header {name}"))?;
            parts.headers.append(name, value);
        }
        if let Some(class) = &self.success_class {
            parts
                .headers
                .insert(crate::endpoint::L5D_SUCCESS_CLASS, class.clone());
        }
        Ok(parts)
    }

    /// Writes the status line and the kept fields, as HTTP/1.1, to `out`;
    /// the caller adds framing fields and the blank line.
    pub fn write_head(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(self.status.as_str().as_bytes());
        out.push(b' ');
        match self.status.canonical_reason() {
            Some(reason) => out.extend_from_slice(reason.as_bytes()),
            None => out.extend_from_slice(self.at(self.reason)),
        }
        out.extend_from_slice(b"\r\n");
        for span in &self.fields {
            if self.is_replaced(self.at(span.name)) {
                continue;
            }
            push_field(out, self.at(span.name), self.at(span.value));
        }
        if let Some(class) = &self.success_class {
            push_field(out, b"l5d-success-class", class.as_bytes());
        }
    }
}

/// Parses a complete response head at the start of `buf` and takes it off.
/// Nothing is copied: fields are kept as places in the head's bytes.
/// Hop-by-hop fields are read for framing but not kept, so that the
/// client's side gets only end-to-end ones.
fn parse_head(buf: &mut BytesMut) -> Result<Option<Answer>, ExchangeError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let config = httparse::ParserConfig::default();
    let len = match config.parse_response_with_uninit_headers(&mut parsed, buf, &mut headers) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(ExchangeError::new(format!("invalid response head: {e}"))),
    };
    let status = parsed
        .code
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| ExchangeError::new("invalid response status"))?;
    let base = buf.as_ptr() as usize;
    let span_of = |s: &[u8]| place_in(base, s);
    let mut answer = Answer {
        bytes: Bytes::new(),
        status,
        version: match parsed.version {
            Some(0) => Version::HTTP_10,
            _ => Version::HTTP_11,
        },
        reason: span_of(parsed.reason.unwrap_or("").as_bytes()),
        fields: SmallVec::new(),
        close: false,
        keep_alive: false,
        transfer_chunked: None,
        content_length: None,
        success_class: None,
    };
    // Fields named by `Connection`, dropped once all fields are seen.
    let mut listed: SmallVec<[Place; 2]> = SmallVec::new();
    for h in parsed.headers.iter() {
        let (name, raw) = (h.name.as_bytes(), h.value);
        let span = Span {
            name: span_of(name),
            value: span_of(raw),
        };
        match classify(name) {
            Field::Connection => {
                for token in tokens(raw) {
                    if token.eq_ignore_ascii_case(b"close") {
                        answer.close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        answer.keep_alive = true;
                    } else {
                        listed.push(span_of(token));
                    }
                }
            }
            Field::TransferEncoding => {
                answer.transfer_chunked = Some(
                    tokens(raw)
                        .last()
                        .is_some_and(|last| last.eq_ignore_ascii_case(b"chunked")),
                );
            }
            Field::OtherHopByHop => {}
            Field::ContentLength => {
                for item in raw.split(|b| *b == b',') {
                    let n = parse_decimal(item.trim_ascii())
                        .ok_or_else(|| ExchangeError::new("invalid Content-Length"))?;
                    if answer.content_length.is_some_and(|l| l != n) {
                        return Err(ExchangeError::new("conflicting Content-Length values"));
                    }
                    answer.content_length = Some(n);
                }
                answer.fields.push(span);
            }
            Field::EndToEnd => answer.fields.push(span),
        }
    }
    answer.bytes = buf.split_to(len).freeze();
    let chunked = answer.transfer_chunked.is_some();
    if chunked || !listed.is_empty() {
        let bytes = &answer.bytes;
        let at = |place: Place| &bytes[range(place)];
        answer.fields.retain(|f| {
            let name = at(f.name);
            // With a transfer coding, Content-Length does not frame the body.
            let drop = (chunked && matches!(classify(name), Field::ContentLength))
                || listed.iter().any(|l| at(*l).eq_ignore_ascii_case(name));
            !drop
        });
    }
    Ok(Some(answer))
}

/// A non-empty run of ASCII digits as a number.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

/// The comma-separated, trimmed, non-empty items of a field value.
pub(crate) fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// How the body of a response is delimited, and whether its connection may
/// take another request afterwards.
fn framing_of(head: &Answer, method: &Method) -> (Framing, bool) {
    let mut keep_alive = match head.version {
        Version::HTTP_10 => head.keep_alive && !head.close,
        _ => !head.close,
    };
    let status = head.status;
    if *method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return (Framing::Length(0), keep_alive);
    }
    if let Some(chunked) = head.transfer_chunked {
        // With Content-Length as well the message is suspect: use the
        // transfer coding and close afterwards.
        if head.content_length.is_some() {
            keep_alive = false;
        }
        return if chunked {
            (Framing::Chunked(Chunked::Size), keep_alive)
        } else {
            (Framing::UntilClose, false)
        };
    }
    match head.content_length {
        Some(n) => (Framing::Length(n), keep_alive),
        None => (Framing::UntilClose, false),
    }
}

enum Framing {
    /// This many bytes are left.
    Length(u64),
    Chunked(Chunked),
    UntilClose,
}

enum Chunked {
    /// Expecting a chunk-size line.
    Size,
    /// This many bytes of chunk data are left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// Reading trailer fields until an empty line.
    Trailers,
    Done,
}

/// Where a connection goes once its response body has been read.
pub struct Release {
    /// The pool to go back to.
    pub pool: Arc<H1Pool>,
    /// The endpoint the connection is open to.
    pub endpoint: SocketAddr,
    /// The connection's place under `hostConnectionPool.maxSize`, held
    /// while it is busy.
    pub permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// A response body read from its connection as the client is sent it.
pub struct DirectBody {
    /// `None` once the body is complete or the connection failed.
    conn: Option<Conn>,
    framing: Framing,
    keep_alive: bool,
    trailers: Option<HeaderMap>,
    release: Release,
}

impl DirectBody {
    fn done(&self) -> bool {
        matches!(
            self.framing,
            Framing::Length(0) | Framing::Chunked(Chunked::Done)
        )
    }

    /// Gives the connection back to the pool once the body is complete.
    fn finish_if_done(&mut self) {
        if !self.done() {
            return;
        }
        if let Some(conn) = self.conn.take() {
            // Bytes beyond the body mean the server is out of step.
            if self.keep_alive && conn.buf.is_empty() {
                self.release.pool.put_direct(self.release.endpoint, conn);
            }
        }
    }

    /// The upstream connection and how many bytes of body are still to
    /// come on it, when the body is framed by `Content-Length`, none of
    /// the rest has been read yet, and at least `at_least` bytes are left:
    /// the rest may then be moved without reading it here
    /// ([`DirectBody::moved`] says when it has been).
    pub fn unread_rest(&self, at_least: u64) -> Option<(&TcpStream, u64)> {
        let conn = self.conn.as_ref()?;
        match self.framing {
            Framing::Length(left) if left >= at_least && conn.buf.is_empty() => {
                Some((&conn.stream, left))
            }
            _ => None,
        }
    }

    /// The rest of the body has been moved to the client from the socket.
    pub fn moved(&mut self) {
        self.framing = Framing::Length(0);
        self.finish_if_done();
    }

    fn fail(&mut self, why: impl Into<String>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.conn = None;
        self.framing = Framing::Length(0);
        Poll::Ready(Some(Err(why.into().into())))
    }
}

impl HttpBody for DirectBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        loop {
            if this.done() {
                this.finish_if_done();
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let need_more = match &mut this.framing {
                Framing::Length(left) => {
                    if conn.buf.is_empty() {
                        true
                    } else {
                        let take = conn
                            .buf
                            .len()
                            .min(usize::try_from(*left).unwrap_or(usize::MAX));
                        *left -= take as u64;
                        let data = conn.buf.split_to(take).freeze();
                        this.finish_if_done();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                Framing::UntilClose => {
                    if conn.buf.is_empty() {
                        true
                    } else {
                        let data = conn.buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                Framing::Chunked(state) => {
                    match step_chunked(state, &mut conn.buf, &mut this.trailers) {
                        Ok(Step::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                        Ok(Step::Again) => false,
                        Ok(Step::NeedMore) => true,
                        Err(why) => return this.fail(why),
                    }
                }
            };
            if need_more {
                let Some(conn) = this.conn.as_mut() else {
                    return Poll::Ready(None);
                };
                match ready!(conn.poll_read_more(cx)) {
                    Ok(0) => {
                        if matches!(this.framing, Framing::UntilClose) {
                            this.conn = None;
                            return Poll::Ready(None);
                        }
                        return this
                            .fail("connection closed before the response body was complete");
                    }
                    Ok(_) => {}
                    Err(e) => return this.fail(format!("reading the response body: {e}")),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        (self.done() || self.conn.is_none()) && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(left) => SizeHint::with_exact(left),
            _ => SizeHint::default(),
        }
    }
}

enum Step {
    Data(Bytes),
    /// The state moved on; go round again.
    Again,
    NeedMore,
}

/// One step of decoding a chunked body from `buf`.
fn step_chunked(
    state: &mut Chunked,
    buf: &mut BytesMut,
    trailers: &mut Option<HeaderMap>,
) -> Result<Step, String> {
    match state {
        Chunked::Size => {
            let Some(line) = take_line(buf)? else {
                return Ok(Step::NeedMore);
            };
            // chunk-size [; extensions]
            let size = line.split(|b| *b == b';').next().unwrap_or(&[]);
            let size = std::str::from_utf8(size)
                .ok()
                .map(str::trim)
                .filter(|s| !s.is_empty() && s.len() <= 16)
                .and_then(|s| u64::from_str_radix(s, 16).ok())
                .ok_or("invalid chunk size line")?;
            *state = if size == 0 {
                Chunked::Trailers
            } else {
                Chunked::Data(size)
            };
            Ok(Step::Again)
        }
        Chunked::Data(left) => {
            if buf.is_empty() {
                return Ok(Step::NeedMore);
            }
            let take = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
            *left -= take as u64;
            if *left == 0 {
                *state = Chunked::DataEnd;
            }
            Ok(Step::Data(buf.split_to(take).freeze()))
        }
        Chunked::DataEnd => {
            if buf.len() < 2 {
                return Ok(Step::NeedMore);
            }
            if &buf[..2] != b"\r\n" {
                return Err("chunk data not followed by CRLF".into());
            }
            buf.advance(2);
            *state = Chunked::Size;
            Ok(Step::Again)
        }
        Chunked::Trailers => {
            let Some(line) = take_line(buf)? else {
                return Ok(Step::NeedMore);
            };
            if line.is_empty() {
                *state = Chunked::Done;
                return Ok(Step::Again);
            }
            let colon = line
                .iter()
                .position(|b| *b == b':')
                .ok_or("invalid trailer field")?;
            let name =
                HeaderName::from_bytes(&line[..colon]).map_err(|_| "invalid trailer field name")?;
            let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii())
                .map_err(|_| "invalid trailer field value")?;
            let map = trailers.get_or_insert_with(HeaderMap::new);
            if map.len() >= MAX_HEADERS {
                return Err("too many trailer fields".into());
            }
            map.append(name, value);
            Ok(Step::Again)
        }
        Chunked::Done => Ok(Step::Again),
    }
}

/// Takes one CRLF-terminated line off the front of `buf`, without its CRLF.
fn take_line(buf: &mut BytesMut) -> Result<Option<Bytes>, String> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(end) => {
            let line = buf.split_to(end).freeze();
            buf.advance(2);
            Ok(Some(line))
        }
        None if buf.len() > MAX_HEAD_BYTES => Err("chunk-size or trailer line too long".into()),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Answer {
        let mut buf = BytesMut::from(text.as_bytes());
        let head = parse_head(&mut buf).unwrap().unwrap();
        assert!(buf.is_empty(), "the head is taken off the buffer");
        head
    }

    #[test]
    fn heads_parse_in_pieces_and_leave_the_body() {
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nx-a: 1"[..]);
        assert!(parse_head(&mut buf).unwrap().is_none());
        buf.extend_from_slice(b"\r\nX-B:  two \r\n\r\nbody");
        let parts = parse_head(&mut buf).unwrap().unwrap().into_parts().unwrap();
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(parts.headers["x-a"], "1");
        assert_eq!(parts.headers["x-b"], "two");
        assert_eq!(&buf[..], b"body");
        let mut bad = BytesMut::from(&b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n"[..]);
        assert!(parse_head(&mut bad).is_err());
    }

    #[test]
    fn hop_by_hop_fields_are_read_but_not_kept() {
        let parsed = head(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, x-private\r\nkeep-alive: timeout=5\r\n\
             transfer-encoding: chunked\r\nupgrade: h2c\r\nx-private: 1\r\nx-public: 2\r\n\r\n",
        );
        assert!(parsed.keep_alive && !parsed.close);
        assert_eq!(parsed.transfer_chunked, Some(true));
        let mut written = Vec::new();
        parsed.write_head(&mut written);
        assert_eq!(written, b"HTTP/1.1 200 OK\r\nx-public: 2\r\n");
        let names: Vec<String> = parsed
            .into_parts()
            .unwrap()
            .headers
            .keys()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names, ["x-public"]);
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let get = Method::GET;
        let ok = "HTTP/1.1 200 OK\r\n";
        let cases = [
            ("content-length: 5\r\n\r\n", "length 5", true),
            ("transfer-encoding: gzip, chunked\r\n\r\n", "chunked", true),
            ("transfer-encoding: chunked, gzip\r\n\r\n", "close", false),
            (
                "transfer-encoding: chunked\r\ncontent-length: 4\r\n\r\n",
                "chunked",
                false,
            ),
            ("\r\n", "close", false),
            (
                "connection: close\r\ncontent-length: 1\r\n\r\n",
                "length 1",
                false,
            ),
            ("content-length: 3, 3\r\n\r\n", "length 3", true),
        ];
        for (rest, want, want_keep) in cases {
            let (framing, keep) = framing_of(&head(&format!("{ok}{rest}")), &get);
            let got = match framing {
                Framing::Length(n) => format!("length {n}"),
                Framing::Chunked(_) => "chunked".into(),
                Framing::UntilClose => "close".into(),
            };
            assert_eq!((got.as_str(), keep), (want, want_keep), "{rest:?}");
        }
        for bad in [
            "content-length: 3\r\ncontent-length: 4",
            "content-length: -1",
        ] {
            let mut buf = BytesMut::from(format!("{ok}{bad}\r\n\r\n").as_bytes());
            assert!(parse_head(&mut buf).is_err(), "{bad}");
        }
        let nine = head("HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n");
        assert!(matches!(
            framing_of(&nine, &Method::HEAD).0,
            Framing::Length(0)
        ));
        let old = head("HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n");
        assert!(!framing_of(&old, &get).1);
        let old_kept =
            head("HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 1\r\n\r\n");
        assert!(framing_of(&old_kept, &get).1);
    }

    #[test]
    fn chunked_bodies_decode_with_trailers() {
        let mut buf =
            BytesMut::from(&b"5;ext=1\r\nhello\r\n1\r\n!\r\n0\r\ngrpc-status: 0\r\n\r\n"[..]);
        let mut state = Chunked::Size;
        let mut trailers = None;
        let mut data = Vec::new();
        while !matches!(state, Chunked::Done) {
            match step_chunked(&mut state, &mut buf, &mut trailers).unwrap() {
                Step::Data(d) => data.extend_from_slice(&d),
                Step::Again => {}
                Step::NeedMore => panic!("the whole body is there"),
            }
        }
        assert_eq!(data, b"hello!");
        assert_eq!(trailers.unwrap()["grpc-status"], "0");
        assert!(buf.is_empty());

        let mut state = Chunked::Size;
        let mut partial = BytesMut::from(&b"1"[..]);
        assert!(matches!(
            step_chunked(&mut state, &mut partial, &mut None),
            Ok(Step::NeedMore)
        ));
        let mut bad = BytesMut::from(&b"zz\r\n"[..]);
        assert!(step_chunked(&mut state, &mut bad, &mut None).is_err());
    }

    #[test]
    fn request_heads_are_written_in_origin_form() {
        let request = http::Request::get("/a?b=1")
            .header("host", "web")
            .header("x-a", "1")
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        let mut out = Vec::new();
        encode_head(&parts, &mut out, |name| name != "x-a");
        push_field(&mut out, b"x-b", b"2");
        assert_eq!(out, b"GET /a?b=1 HTTP/1.1\r\nhost: web\r\nx-b: 2\r\n");
    }

    #[test]
    fn bodiless_retryable_requests_and_whole_bodies_are_eligible() {
        use Carried::{Nothing, Streamed, Whole};
        assert!(eligible(&Method::GET, Nothing, false));
        assert!(eligible(&Method::DELETE, Nothing, false));
        assert!(!eligible(&Method::GET, Streamed, false));
        assert!(!eligible(&Method::GET, Nothing, true));
        // A bodiless POST or PUT still goes through hyper's client.
        assert!(!eligible(&Method::POST, Nothing, false));
        assert!(!eligible(&Method::PUT, Nothing, false));
        assert!(eligible(&Method::POST, Whole, false));
        assert!(eligible(&Method::PATCH, Whole, false));
        assert!(!eligible(&Method::POST, Whole, true));
        assert!(!eligible(&Method::POST, Streamed, false));
        assert!(!eligible(&Method::CONNECT, Whole, false));
    }

    #[test]
    fn only_requests_the_server_cannot_have_acted_on_or_may_repeat_are_resent() {
        let error = |stale, unwritten| ExchangeError {
            message: String::new(),
            stale,
            unwritten,
        };
        assert!(error(true, false).may_resend(&Method::GET));
        assert!(error(true, false).may_resend(&Method::PUT));
        assert!(!error(true, false).may_resend(&Method::POST));
        assert!(error(true, true).may_resend(&Method::POST));
        assert!(!error(false, false).may_resend(&Method::GET));
    }
}
