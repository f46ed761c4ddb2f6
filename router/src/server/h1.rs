//! The client side of an `http` router's connections: a small HTTP/1.1
//! server for the most common requests, a bodiless one and one with a
//! small body of declared length.
//!
//! Such a request is parsed here, routed, and its upstream answer copied to
//! the client as the upstream wrote it, less its hop-by-hop fields: no
//! header map is built for the response, and its head and a small body
//! leave in one write. A bodiless request whose method may be repeated
//! goes upstream on the direct path ([`crate::endpoint::h1_direct`]); a
//! body (`Content-Length`, at most [`WHOLE_BODY_LIMIT`] bytes) is read
//! whole before the request is routed, as nginx buffers one, and goes
//! through hyper's client. Anything else a connection sends first or later
//! (a chunked or larger body, an upgrade, `Expect`, HTTP/1.0, HTTP/2 prior
//! knowledge, a malformed head) hands the connection, with the bytes
//! already read, to hyper's server for the rest of its life.
//!
//! The limits of [`super::session`] are kept here with one timer per
//! connection, reset only when it fires; a head over `maxInitialLineKB` or
//! `maxHeadersKB`, or with two `Host` fields, is refused and the
//! connection closed. Heads with bodies are checked as hyper reads them
//! ([`super::head_watch`]).

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri, Version, request};
use http_body_util::BodyExt;
use hyper::body::Body as HttpBody;
use smallvec::SmallVec;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio::time::Sleep;

use super::io::ServerIo;
use super::spare::ConnBuffers;
use crate::body::Body;
use crate::endpoint::h1_direct::{Place, place_in, push_field, range, tokens};
use crate::errors::RouterError;
use crate::server::limits::{self, HeadLimits, Refusal};
use crate::server::session::SessionLimits;
use crate::service::replay::Arriving;
use crate::stack::{Downstream, Routed, RouterStack, ServerSettings, error_response};

/// The most request headers accepted here (hyper's default too); a request
/// with more goes to hyper, which refuses it.
const MAX_HEADERS: usize = 100;
/// How much room a read asks for at least.
const READ_RESERVE: usize = 8 * 1024;

/// Above this many open connections on a server, a connection is served
/// to hold little while it waits: it gives its read and write buffers back
/// (16 KiB) while idle, and a connection accepted then keeps each request's
/// routing state on the heap for the request's life ([`OnHeap`]) rather
/// than in its task, which is otherwise sized for the largest request
/// (some 6 KiB). With thousands of mostly idle connections these would be
/// most of the router's memory; below the mark, keeping them saves an
/// allocation and a copy of the state per request.
pub(crate) const MANY_CONNECTIONS: i64 = 512;
/// How long a refused client's remaining bytes are read and dropped before
/// its connection closes, so that closing does not reset the answer away.
const LINGER: Duration = Duration::from_secs(1);
/// Bodies are gathered up to this size before they are written.
const WRITE_BATCH: usize = 64 * 1024;
/// The largest request body this server reads whole; a larger one, and
/// one without a declared length, go to hyper's server, which streams it.
pub const WHOLE_BODY_LIMIT: usize = 64 * 1024;
/// How much more room than has arrived a body read whole is given at once.
const BODY_READ: usize = 16 * 1024;

/// Who is at the other end of a connection; it counts as open while this
/// lives.
pub struct Peer {
    /// The client: its address, its certificate's identity and the
    /// connection's `Forwarded` labels.
    pub downstream: Downstream,
    /// Held for the connection's life.
    pub _open: crate::stats::OpenConnection,
}

/// What a connection needs of its server.
pub struct Served {
    /// The router the connection's requests go to.
    pub router: Arc<RouterStack>,
    /// The listening server's settings.
    pub settings: Arc<ServerSettings>,
    /// The server's limit of concurrent requests, if any.
    pub limit: Option<Arc<Semaphore>>,
    /// How long its connections may stay open and wait for heads.
    pub session: SessionLimits,
    /// How large a request head may be.
    pub head: HeadLimits,
}

/// Serves one client connection until it closes, `stopping` turns true
/// while it is idle, it is idle or lives for too long, or it is handed to
/// `fallback` (hyper's server).
///
/// `W` says where each request's state lives while it is answered: in the
/// connection's task ([`InTask`]) or on the heap ([`OnHeap`]).
pub async fn serve<W, S, F, Fut>(
    mut stream: S,
    peer: Peer,
    served: Arc<Served>,
    mut stopping: watch::Receiver<bool>,
    fallback: F,
) where
    W: RequestState,
    S: ServerIo,
    F: FnOnce(Prefixed<S>) -> Fut,
    Fut: Future<Output = ()>,
{
    // Read before each answer: a stopping server says it closes.
    let stopping_now = stopping.clone();
    // One wait for the whole connection: registering a new one at every
    // idle moment would cost more than the rest of reading a request.
    let stopped = async move {
        let _ = stopping.changed().await;
    };
    tokio::pin!(stopped);
    let session = served.session;
    let accepted = tokio::time::Instant::now();
    let life_ends = session.life.map(|life| accepted + life);
    // The connection's timer for idle waits; see `Idle`.
    let timer = tokio::time::sleep_until(life_ends.map_or(accepted + session.idle, |end| {
        end.min(accepted + session.idle)
    }));
    tokio::pin!(timer);
    let mut buffers = ConnBuffers::take(READ_RESERVE);
    let ConnBuffers {
        read: buf,
        write: out,
        ..
    } = &mut buffers;
    // Requests the connection may still carry (`serverSession.maxRequests`).
    let mut requests_left = session.max_requests.unwrap_or(u64::MAX);
    let downstream = &peer.downstream;
    loop {
        // Set when a head has started to arrive but is not complete.
        let mut head_deadline = None;
        let request = loop {
            match parse_request(buf) {
                Parsed::Request(request) => break request,
                Parsed::Partial if buf.is_empty() => {}
                // The limits bound how much of a head is read.
                Parsed::Partial => {
                    if let Some(refusal) = served.head.check_partial(buf) {
                        return Box::pin(refuse(&served, refusal, stream, out)).await;
                    }
                }
                Parsed::NotHere => {
                    // A stopping server closes it through hyper's graceful
                    // shutdown now. (Boxed, like a refusal: both are rare,
                    // and their state would otherwise size every
                    // connection's task.)
                    let read = std::mem::take(buf).freeze();
                    return Box::pin(fallback(Prefixed::new(read, stream, accepted))).await;
                }
                Parsed::Bad => {
                    if stream.write_all(BAD_REQUEST).await.is_ok() {
                        let _ = stream.shutdown().await;
                    }
                    return;
                }
            }
            if !buf.is_empty() && head_deadline.is_none() {
                head_deadline = Some(tokio::time::Instant::now() + session.head);
            }
            let idle = Idle {
                timer: timer.as_mut(),
                idle: session.idle,
                life_ends,
            };
            let buffers = Buffers {
                read: buf,
                write: out,
                release_when_idle: peer._open.open_now() > MANY_CONNECTIONS,
            };
            if !read_more(&mut stream, buffers, stopped.as_mut(), head_deadline, idle).await {
                return;
            }
        };
        let refusal = served
            .head
            .check(request.line, request.line_end, request.head)
            .or((request.hosts > 1).then_some(Refusal::TwoHosts));
        if let Some(refusal) = refusal {
            return Box::pin(refuse(&served, refusal, stream, out)).await;
        }
        let body = match request.body {
            0 => None,
            length => match read_body(&mut stream, buf, length, session.idle).await {
                Some(body) => Some(body),
                None => return,
            },
        };
        let mut request = request;
        request.close |= stopping_now.has_changed().unwrap_or(true);
        if let Some(end) = life_ends {
            request.close |= tokio::time::Instant::now() >= end;
        }
        requests_left = requests_left.saturating_sub(1);
        request.close |= requests_left == 0;
        let close = request.close;
        out.reserve(READ_RESERVE);
        let kept = W::respond(&served, request, body, &mut stream, out, downstream).await;
        // A long answer or head may have grown the buffers; an idle
        // connection keeps only their usual size.
        out.clear();
        out.shrink_to(READ_RESERVE);
        if buf.is_empty() && buf.capacity() > 2 * READ_RESERVE {
            *buf = BytesMut::with_capacity(READ_RESERVE);
        }
        match kept {
            Ok(true) if !close => {}
            Ok(true) => {
                // Closing with a clean FIN, so the response is not lost to a
                // reset.
                let _ = stream.shutdown().await;
                return;
            }
            _ => return,
        }
    }
}

/// Answers a refused request head and closes the connection.
async fn refuse<S: ServerIo>(served: &Served, refusal: Refusal, mut stream: S, out: &mut Vec<u8>) {
    let started = Instant::now();
    let error = refusal.error();
    tracing::debug!(router = %served.router.label(), error = %error, "request head refused");
    let (parts, body) = error_response(&error).into_parts();
    served
        .settings
        .stats
        .record(parts.status.as_u16(), started.elapsed());
    if let Ok(true) = write_response(&mut stream, out, Head::Parts(parts), body, false, true).await
    {
        let _ = stream.shutdown().await;
        // What the client still sends is read and dropped for a moment:
        // closing with unread bytes would reset the connection, which may
        // lose the answer.
        let mut scratch = [0u8; 4096];
        let _ = tokio::time::timeout(LINGER, async {
            while let Ok(1..) = stream.read(&mut scratch).await {}
        })
        .await;
    }
}

/// What closes a connection between requests: its idle time from now on,
/// and the end of its life. The timer is the connection's own, kept across
/// requests: it is reset only when it fires before the time is up, so an
/// idle wait costs no timer registration.
struct Idle<'a> {
    timer: Pin<&'a mut Sleep>,
    idle: Duration,
    life_ends: Option<tokio::time::Instant>,
}

/// A connection's buffers, as [`read_more`] sees them.
struct Buffers<'a> {
    read: &'a mut BytesMut,
    write: &'a mut Vec<u8>,
    /// Whether to give both back while waiting for a next request (see
    /// [`MANY_CONNECTIONS`]).
    release_when_idle: bool,
}

/// Reads more of the connection into its read buffer; false once it is
/// closed, when the server is stopping and nothing of a next request has
/// come, when nothing came for the idle time or the connection's life is
/// over, or when a started head is not complete by `head_deadline`.
async fn read_more<S: ServerIo>(
    stream: &mut S,
    buffers: Buffers<'_>,
    mut stopped: Pin<&mut impl Future<Output = ()>>,
    head_deadline: Option<tokio::time::Instant>,
    mut idle: Idle<'_>,
) -> bool {
    let buf = buffers.read;
    // When an idle wait must end; set at the first one.
    let mut idle_ends = None;
    loop {
        // Allocates only when the buffer was given back while idle.
        buf.reserve(READ_RESERVE);
        match stream.try_read_buf(buf) {
            Ok(0) => return false,
            Ok(_) => return true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return false,
        }
        let ready = if buf.is_empty() {
            if buffers.release_when_idle {
                *buf = BytesMut::new();
                *buffers.write = Vec::new();
            }
            // Idle between requests: a stopping server closes it, and so do
            // the idle and life times.
            let ends = *idle_ends.get_or_insert_with(|| {
                let idle_ends = tokio::time::Instant::now() + idle.idle;
                idle.life_ends.map_or(idle_ends, |end| end.min(idle_ends))
            });
            loop {
                tokio::select! {
                    biased;
                    ready = stream.readable() => break ready.is_ok(),
                    () = &mut stopped => return false,
                    () = idle.timer.as_mut() => {
                        if tokio::time::Instant::now() >= ends {
                            return false;
                        }
                        idle.timer.as_mut().reset(ends);
                    }
                }
            }
        } else {
            let readable = stream.readable();
            match head_deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, readable)
                    .await
                    .is_ok_and(|ready| ready.is_ok()),
                None => readable.await.is_ok(),
            }
        };
        if !ready {
            return false;
        }
    }
}

/// Reads a body of `length` bytes, the first of them already in `buf`
/// (which keeps whatever follows the body); `None` when the client closes,
/// fails, or sends nothing for `idle` first. (A request in flight is
/// finished when the server is stopping, so that does not end it.)
async fn read_body<S: ServerIo>(
    stream: &mut S,
    buf: &mut BytesMut,
    length: usize,
    idle: Duration,
) -> Option<Bytes> {
    if buf.len() >= length {
        return Some(buf.split_to(length).freeze());
    }
    // A buffer of its own: growing `buf` would copy what it holds, and its
    // memory is shared with the head's fields. It is sized for what has
    // come and one more read, and grows (at most doubling) as the rest
    // comes, so that a client that sends a head and then waits holds
    // little; a body of up to 16 KiB past its first read is one buffer.
    let mut body = BytesMut::with_capacity(length.min(buf.len() + BODY_READ));
    body.extend_from_slice(buf);
    buf.clear();
    while body.len() < length {
        if body.len() == body.capacity() {
            body.reserve((length - body.len()).min(body.len().max(BODY_READ)));
        }
        match stream.try_read_buf(&mut body) {
            Ok(0) => return None,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return None,
        }
        match tokio::time::timeout(idle, stream.readable()).await {
            Ok(Ok(())) => {}
            _ => return None,
        }
    }
    // A read may fill more than the body when the buffer came out larger:
    // what follows is the next request's.
    if body.len() > length {
        buf.extend_from_slice(&body.split_off(length));
    }
    Some(body.freeze())
}

/// A request head taken off the connection.
#[doc(hidden)] // Public for the fuzz target only.
pub struct ClientRequest {
    pub parts: request::Parts,
    /// The client sent `Connection: close`, or the server is stopping:
    /// the connection closes after the answer.
    pub close: bool,
    /// Bytes of the request line, without its line end.
    line: usize,
    /// Bytes of the request line's line end.
    line_end: usize,
    /// Bytes of the whole head, from the request line on.
    head: usize,
    /// How many `Host` fields came.
    hosts: u32,
    /// The bytes of body that follow the head (its `Content-Length`).
    body: usize,
}

impl ClientRequest {
    /// The bytes of body that follow the head.
    pub fn body_len(&self) -> usize {
        self.body
    }
}

// Boxing the request would cost an allocation per request; a `Parsed` is
// moved once.
#[allow(clippy::large_enum_variant)]
#[doc(hidden)] // Public for the fuzz target only.
pub enum Parsed {
    Request(ClientRequest),
    Partial,
    /// Not a request this server takes: hyper's serves the connection.
    NotHere,
    /// Parsed as a request this server takes, but not a valid one.
    Bad,
}

const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// Parses the request head at the start of `buf` and, if this server takes
/// it, takes it off. Header values share the head's memory.
#[doc(hidden)] // Public for the fuzz target only.
pub fn parse_request(buf: &mut BytesMut) -> Parsed {
    if buf.is_empty() {
        return Parsed::Partial;
    }
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    let config = httparse::ParserConfig::default();
    let len = match config.parse_request_with_uninit_headers(&mut parsed, buf, &mut headers) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::NotHere,
    };
    if parsed.version != Some(1) {
        return Parsed::NotHere;
    }
    let method = match parsed.method {
        Some("GET") => Method::GET,
        Some("HEAD") => Method::HEAD,
        Some("OPTIONS") => Method::OPTIONS,
        Some("DELETE") => Method::DELETE,
        Some("TRACE") => Method::TRACE,
        Some("POST") => Method::POST,
        Some("PUT") => Method::PUT,
        Some("PATCH") => Method::PATCH,
        _ => return Parsed::NotHere,
    };
    let base = buf.as_ptr() as usize;
    let target = place_in(base, parsed.path.unwrap_or("").as_bytes());
    // Empty lines before the request line are skipped.
    let start = place_in(base, parsed.method.unwrap_or("").as_bytes()).0 as usize;
    // httparse takes one space before "HTTP/1.1".
    let line_ends_at = target.1 as usize + 9;
    let line_end = if buf.get(line_ends_at) == Some(&b'\r') {
        2
    } else {
        1
    };
    let mut close = false;
    let mut hosts = 0;
    let mut body = None;
    let mut fields: SmallVec<[(HeaderName, Place); 16]> = SmallVec::new();
    for h in parsed.headers.iter() {
        let name = h.name.as_bytes();
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => hosts += 1,
            // One length, small enough to read whole; two lengths are
            // taken only when both are 0 (as before bodies were read here).
            // Anything else hyper's server handles or refuses.
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                match (body, whole_body_length(h.value)) {
                    (None, Some(length)) => body = Some(length),
                    (Some(0), Some(0)) => {}
                    _ => return Parsed::NotHere,
                }
            }
            // A chunked body, an upgrade or an expectation: hyper's server
            // handles those.
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => return Parsed::NotHere,
            7 if name.eq_ignore_ascii_case(b"upgrade") => return Parsed::NotHere,
            6 if name.eq_ignore_ascii_case(b"expect") => return Parsed::NotHere,
            10 if name.eq_ignore_ascii_case(b"connection") => {
                close |= tokens(h.value).any(|t| t.eq_ignore_ascii_case(b"close"));
                // A hop-by-hop field, taken out before the request goes on
                // anyway. When it names no other field (`close`, or
                // `keep-alive`, itself hop-by-hop), it need not be kept.
                let names_nothing = tokens(h.value).all(|t| {
                    t.eq_ignore_ascii_case(b"close") || t.eq_ignore_ascii_case(b"keep-alive")
                });
                if names_nothing {
                    continue;
                }
            }
            _ => {}
        }
        let Ok(name) = HeaderName::from_bytes(name) else {
            return Parsed::NotHere;
        };
        fields.push((name, place_in(base, h.value)));
    }
    let head = buf.split_to(len).freeze();
    let Ok(uri) = Uri::from_maybe_shared(head.slice(range(target))) else {
        return Parsed::Bad;
    };
    let mut headers = HeaderMap::with_capacity(fields.len() + 6);
    for (name, value) in fields {
        // httparse accepts the same value bytes HeaderValue does.
        let Ok(value) = HeaderValue::from_maybe_shared(head.slice(range(value))) else {
            return Parsed::Bad;
        };
        headers.append(name, value);
    }
    let (mut parts, ()) = request::Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    parts.headers = headers;
    Parsed::Request(ClientRequest {
        parts,
        close,
        line: line_ends_at.saturating_sub(start),
        line_end,
        head: len - start,
        hosts,
        body: body.unwrap_or(0),
    })
}

/// A `Content-Length` value (read as hyper reads one) this server reads
/// the body of: at most [`WHOLE_BODY_LIMIT`] bytes.
fn whole_body_length(value: &[u8]) -> Option<usize> {
    limits::digits(value)
        .and_then(|length| usize::try_from(length).ok())
        .filter(|&length| length <= WHOLE_BODY_LIMIT)
}

/// Where a connection keeps a request's state while answering it: the
/// connection's task is sized for the largest state it may hold, idle or not.
pub trait RequestState {
    /// Answers one request (see [`respond`]).
    fn respond<'a, S: ServerIo>(
        served: &'a Served,
        request: ClientRequest,
        body: Option<Bytes>,
        stream: &'a mut S,
        out: &'a mut Vec<u8>,
        downstream: &'a Downstream,
    ) -> impl Future<Output = io::Result<bool>> + 'a;
}

/// In the connection's task: no allocation per request, a larger task.
pub struct InTask;

/// On the heap for the request's life: an allocation per request, a task
/// of about 1.6 KiB.
pub struct OnHeap;

impl RequestState for InTask {
    fn respond<'a, S: ServerIo>(
        served: &'a Served,
        request: ClientRequest,
        body: Option<Bytes>,
        stream: &'a mut S,
        out: &'a mut Vec<u8>,
        downstream: &'a Downstream,
    ) -> impl Future<Output = io::Result<bool>> + 'a {
        respond(served, request, body, stream, out, downstream)
    }
}

impl RequestState for OnHeap {
    fn respond<'a, S: ServerIo>(
        served: &'a Served,
        request: ClientRequest,
        body: Option<Bytes>,
        stream: &'a mut S,
        out: &'a mut Vec<u8>,
        downstream: &'a Downstream,
    ) -> impl Future<Output = io::Result<bool>> + 'a {
        Box::pin(respond(served, request, body, stream, out, downstream))
    }
}

/// Routes one request (with `body`, read whole) and writes its response;
/// whether the connection may take another request.
async fn respond<S: ServerIo>(
    served: &Served,
    request: ClientRequest,
    body: Option<Bytes>,
    stream: &mut S,
    out: &mut Vec<u8>,
    downstream: &Downstream,
) -> io::Result<bool> {
    let started = Instant::now();
    let router = &served.router;
    let head_only = request.parts.method == Method::HEAD;
    // Held until the answer has been written.
    let permit = served
        .limit
        .as_ref()
        .map(|limit| limit.clone().try_acquire_owned());
    let mut trace = None;
    let routed = match &permit {
        Some(Err(_)) => Err(RouterError::Unavailable(
            "too many concurrent requests".into(),
        )),
        _ => {
            router
                .route(
                    &served.settings,
                    request.parts,
                    body.map_or(Arriving::Empty, Arriving::Whole),
                    started,
                    downstream,
                    &mut trace,
                )
                .await
        }
    };
    let mut failure = None;
    let (head, body) = match routed {
        Ok(Routed::Direct {
            answer,
            body,
            picked,
        }) => (Head::Raw(answer), Body::direct(body, picked)),
        Ok(Routed::Response(response)) => {
            let (parts, body) = response.into_parts();
            (Head::Parts(parts), body)
        }
        Err(e) => {
            tracing::debug!(router = %router.label(), error = %e, "request failed");
            failure = trace.is_some().then(|| e.to_string());
            let (parts, body) = error_response(&e).into_parts();
            (Head::Parts(parts), body)
        }
    };
    if let Some(trace) = trace {
        trace.end(head.status().as_u16(), failure.as_deref());
    }
    served
        .settings
        .stats
        .record(head.status().as_u16(), started.elapsed());
    write_response(stream, out, head, body, head_only, request.close).await
}

/// A response head to write: the upstream's, or one of the router's own.
// The upstream's is the common one; boxing it would cost an allocation.
#[allow(clippy::large_enum_variant)]
enum Head {
    Raw(crate::endpoint::h1_direct::Answer),
    Parts(http::response::Parts),
}

impl Head {
    fn status(&self) -> StatusCode {
        match self {
            Head::Raw(answer) => answer.status(),
            Head::Parts(parts) => parts.status,
        }
    }

    fn declares_length(&self) -> bool {
        match self {
            Head::Raw(answer) => answer.declares_length(),
            Head::Parts(parts) => {
                parts.headers.contains_key(header::CONTENT_LENGTH)
                    && !parts.headers.contains_key(header::TRANSFER_ENCODING)
            }
        }
    }

    /// Writes the status line and fields, without the blank line.
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Head::Raw(answer) => answer.write_head(out),
            Head::Parts(parts) => {
                out.extend_from_slice(b"HTTP/1.1 ");
                out.extend_from_slice(parts.status.as_str().as_bytes());
                out.push(b' ');
                let reason = parts.status.canonical_reason().unwrap_or("");
                out.extend_from_slice(reason.as_bytes());
                out.extend_from_slice(b"\r\n");
                write_fields(&parts.headers, out);
            }
        }
    }
}

fn write_fields(fields: &HeaderMap, out: &mut Vec<u8>) {
    for (name, value) in fields {
        push_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
}

/// How the body goes to the client.
#[derive(PartialEq)]
enum Framing {
    /// No body: the answer to `HEAD`, a 204 or a 304.
    None,
    /// The head says how long the body is.
    Length,
    Chunked,
}

/// Writes a response head and streams its body; whether the connection may
/// take another request. Small bodies leave with their head in one write;
/// whatever is gathered is written before waiting for more of the body.
async fn write_response<S: ServerIo>(
    stream: &mut S,
    out: &mut Vec<u8>,
    head: Head,
    mut body: Body,
    head_only: bool,
    close: bool,
) -> io::Result<bool> {
    out.clear();
    head.write(out);
    let status = head.status();
    let own_length = match head {
        // The router's own answers (errors) know their length; an
        // upstream's answer to HEAD keeps the length the upstream gave.
        Head::Parts(_) if !head.declares_length() => body.size_hint().exact(),
        _ => None,
    };
    let framing = if status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status.is_informational()
    {
        Framing::None
    } else if head_only {
        // The length a GET would have been told.
        if let Some(length) = own_length {
            push_content_length(out, length);
        }
        Framing::None
    } else if head.declares_length() {
        Framing::Length
    } else if let Some(length) = own_length.or_else(|| body.size_hint().exact()) {
        push_content_length(out, length);
        Framing::Length
    } else {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        Framing::Chunked
    };
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    drop(head);
    if framing == Framing::None {
        drop(body);
        stream.write_all(out).await?;
        stream.flush().await?;
        return Ok(true);
    }
    let mut trailers = None;
    loop {
        if framing == Framing::Length {
            match splice_rest(stream, out, &mut body).await? {
                // The body's next poll says it has ended.
                Spliced::No | Spliced::Done => {}
                Spliced::Cut => return Ok(false),
            }
        }
        let frame = match poll_now(&mut body) {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                flush(stream, out).await?;
                match next_frame_unless_hung_up(stream.tcp(), &mut body).await {
                    Some(frame) => frame,
                    // Dropping the body closes its upstream connection.
                    None => return Ok(false),
                }
            }
        };
        let frame = match frame {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                // The client sees the response cut short.
                tracing::debug!(error = %e, "response body failed");
                flush(stream, out).await?;
                return Ok(false);
            }
        };
        match frame.into_data() {
            Ok(data) => {
                if data.is_empty() {
                    continue;
                }
                if framing == Framing::Chunked {
                    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                }
                if data.len() >= WRITE_BATCH {
                    flush(stream, out).await?;
                    stream.write_all(&data).await?;
                    stream.flush().await?;
                } else {
                    out.extend_from_slice(&data);
                }
                if framing == Framing::Chunked {
                    out.extend_from_slice(b"\r\n");
                }
                if out.len() >= WRITE_BATCH {
                    flush(stream, out).await?;
                }
            }
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    if framing == Framing::Chunked {
        out.extend_from_slice(b"0\r\n");
        if let Some(trailers) = &trailers {
            write_fields(trailers, out);
        }
        out.extend_from_slice(b"\r\n");
    }
    flush(stream, out).await?;
    Ok(true)
}

/// What became of the rest of a body offered to [`splice_rest`].
enum Spliced {
    /// It cannot be spliced: it is copied.
    No,
    Done,
    /// The answer was cut short: the connection closes.
    Cut,
}

/// Moves the rest of a large upstream body to the client with `splice`,
/// when both sides are plain TCP and the body's length is known (see
/// [`super::splice`]); what was gathered in `out` is written first.
async fn splice_rest<S: ServerIo>(
    stream: &mut S,
    out: &mut Vec<u8>,
    body: &mut Body,
) -> io::Result<Spliced> {
    #[cfg(target_os = "linux")]
    {
        use super::splice::{Cut, MIN_SPLICED, forward};
        let spliceable = stream.plain_tcp().is_some()
            && body
                .direct_mut()
                .is_some_and(|direct| direct.unread_rest(MIN_SPLICED).is_some());
        if !spliceable {
            return Ok(Spliced::No);
        }
        flush(stream, out).await?;
        let (Some(client), Some(direct)) = (stream.plain_tcp(), body.direct_mut()) else {
            return Ok(Spliced::No);
        };
        let Some((upstream, left)) = direct.unread_rest(MIN_SPLICED) else {
            return Ok(Spliced::No);
        };
        // Boxed: only large bodies pay for its room, not every connection.
        match Box::pin(forward(upstream, client, left)).await {
            Ok(()) => {
                direct.moved();
                Ok(Spliced::Done)
            }
            Err(Cut::Client(e)) => Err(e),
            Err(Cut::Upstream(e)) => {
                tracing::debug!(error = %e, "response body failed");
                Ok(Spliced::Cut)
            }
            Err(Cut::HungUp) => Ok(Spliced::Cut),
            Err(Cut::NoPipe(e)) => {
                tracing::debug!(error = %e, "no pipe to splice with; copying");
                Ok(Spliced::No)
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (stream, out, body);
        Ok(Spliced::No)
    }
}

/// Waits for the body's next frame; `None` if the client closes its
/// connection first, so that a stream nobody reads is not kept open
/// upstream.
async fn next_frame_unless_hung_up(
    stream: &TcpStream,
    body: &mut Body,
) -> Option<Option<Result<hyper::body::Frame<Bytes>, crate::body::BodyError>>> {
    let mut watching = true;
    loop {
        tokio::select! {
            biased;
            hung_up = hung_up(stream), if watching => {
                if hung_up {
                    return None;
                }
                // The client sent its next request already: it is read
                // once this response is done.
                watching = false;
            }
            frame = body.frame() => return Some(frame),
        }
    }
}

/// Whether the client closed its connection; false as soon as it sends
/// anything.
pub(super) async fn hung_up(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    !matches!(stream.peek(&mut probe).await, Ok(n) if n > 0)
}

fn push_content_length(out: &mut Vec<u8>, length: u64) {
    push_field(out, b"content-length", length.to_string().as_bytes());
}

/// The body's next frame if it is there without waiting.
fn poll_now(
    body: &mut Body,
) -> Poll<Option<Result<hyper::body::Frame<Bytes>, crate::body::BodyError>>> {
    let mut cx = Context::from_waker(Waker::noop());
    Pin::new(body).poll_frame(&mut cx)
}

/// Writes what `out` gathered. (TLS may keep written bytes until it is
/// flushed; plain TCP has nothing to flush.)
async fn flush<S: ServerIo>(stream: &mut S, out: &mut Vec<u8>) -> io::Result<()> {
    if !out.is_empty() {
        stream.write_all(out).await?;
        out.clear();
        stream.flush().await?;
    }
    Ok(())
}

/// A connection handed to hyper's server, with the bytes this server read
/// from it first.
pub struct Prefixed<S> {
    read: Bytes,
    stream: S,
    accepted: tokio::time::Instant,
}

impl<S> Prefixed<S> {
    pub(crate) fn new(read: Bytes, stream: S, accepted: tokio::time::Instant) -> Prefixed<S> {
        Prefixed {
            read,
            stream,
            accepted,
        }
    }

    /// When the connection was accepted.
    pub fn accepted(&self) -> tokio::time::Instant {
        self.accepted
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.read.is_empty() {
            return Pin::new(&mut self.stream).poll_read(cx, buf);
        }
        let n = self.read.len().min(buf.remaining());
        buf.put_slice(&self.read.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_is_read_whole_and_what_follows_it_is_kept() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        // 40,000 bytes: the buffer grows twice on the way, and may come out
        // larger than the body, so a read can take the next request too.
        let body: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        let next = b"GET /next HTTP/1.1\r\n\r\n";
        let writer = {
            let body = body.clone();
            tokio::spawn(async move {
                client.write_all(&body[100..20_000]).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
                let mut rest = body[20_000..].to_vec();
                rest.extend_from_slice(next);
                client.write_all(&rest).await.unwrap();
                client
            })
        };
        let mut buf = BytesMut::from(&body[..100]);
        let read = read_body(&mut server, &mut buf, body.len(), Duration::from_secs(5)).await;
        assert_eq!(read.as_deref(), Some(&body[..]));
        let _client = writer.await.unwrap();
        // What came after the body stays for the next request, whether the
        // last read took it or it is still to be read.
        while buf.len() < next.len() {
            buf.reserve(64);
            server.readable().await.unwrap();
            let _ = server.try_read_buf(&mut buf);
        }
        assert_eq!(&buf[..], next);

        // A client that goes away before the end: nothing.
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        client.write_all(b"abc").await.unwrap();
        drop(client);
        let mut buf = BytesMut::new();
        assert_eq!(
            read_body(&mut server, &mut buf, 10, Duration::from_secs(5)).await,
            None
        );
    }

    fn parse(text: &str) -> (Parsed, BytesMut) {
        let mut buf = BytesMut::from(text.as_bytes());
        (parse_request(&mut buf), buf)
    }

    #[test]
    fn bodiless_requests_are_taken_and_leave_what_follows() {
        let (parsed, rest) = parse(
            "GET /a?b=1 HTTP/1.1\r\nHost: web\r\nx-empty:\r\nConnection: keep-alive, Close\r\n\r\nGET /",
        );
        let Parsed::Request(request) = parsed else {
            panic!("taken here");
        };
        assert!(request.close);
        assert_eq!(request.parts.uri, "/a?b=1");
        assert_eq!(request.parts.headers["host"], "web");
        assert_eq!(request.parts.headers["x-empty"], "");
        // A `Connection` that names no other field is not kept.
        assert!(!request.parts.headers.contains_key("connection"));
        assert_eq!(&rest[..], b"GET /");
        // One that does is kept, for the endpoint stage to take out what it
        // names.
        let Parsed::Request(request) =
            parse("GET / HTTP/1.1\r\nHost: web\r\nConnection: close, x-private\r\n\r\n").0
        else {
            panic!("taken here");
        };
        assert!(request.close);
        assert_eq!(request.parts.headers["connection"], "close, x-private");
        assert!(matches!(
            parse("GET / HTTP/1.1\r\nHost: w").0,
            Parsed::Partial
        ));
        let (empty_body, _) = parse("DELETE /x HTTP/1.1\r\ncontent-length: 0\r\n\r\n");
        assert!(matches!(empty_body, Parsed::Request(_)));
    }

    #[test]
    fn the_head_s_sizes_and_hosts_are_counted() {
        let (parsed, _) = parse("\r\nGET /abc HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n");
        let Parsed::Request(request) = parsed else {
            panic!("taken here");
        };
        assert_eq!(request.line, "GET /abc HTTP/1.1".len());
        assert_eq!(request.line_end, 2);
        assert_eq!(
            request.head,
            "GET /abc HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n".len()
        );
        assert_eq!(request.hosts, 2);
        let (parsed, _) = parse("GET / HTTP/1.1\nx: y\n\n");
        let Parsed::Request(request) = parsed else {
            panic!("taken here");
        };
        assert_eq!((request.line, request.line_end, request.head), (14, 1, 21));
    }

    #[test]
    fn bodies_of_a_declared_small_length_are_taken_head_first() {
        for (text, length) in [
            ("POST / HTTP/1.1\r\ncontent-length: 1\r\n\r\nx", 1),
            ("PUT /a HTTP/1.1\r\nContent-Length:  003 \r\n\r\nabc", 3),
            ("PATCH / HTTP/1.1\r\ncontent-length: 65536\r\n\r\n", 65536),
            ("GET / HTTP/1.1\r\ncontent-length: 2\r\n\r\nab", 2),
            ("POST / HTTP/1.1\r\n\r\n", 0),
            (
                "POST / HTTP/1.1\r\ncontent-length: 0\r\ncontent-length: 0\r\n\r\n",
                0,
            ),
            (
                "POST / HTTP/1.1\r\ncontent-length: 00\r\ncontent-length: 0\r\n\r\n",
                0,
            ),
        ] {
            let (parsed, rest) = parse(text);
            let Parsed::Request(request) = parsed else {
                panic!("taken here: {text:?}");
            };
            assert_eq!(request.body_len(), length, "{text:?}");
            // Only the head is taken off; the body is read after it.
            let head_end = text.find("\r\n\r\n").unwrap() + 4;
            assert_eq!(&rest[..], &text.as_bytes()[head_end..], "{text:?}");
        }
    }

    #[test]
    fn everything_else_goes_to_hyper_untouched() {
        for text in [
            "POST / HTTP/1.1\r\ncontent-length: 65537\r\n\r\n",
            "POST / HTTP/1.1\r\ncontent-length: 1000000\r\n\r\n",
            "POST / HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 1\r\n\r\nx",
            "POST / HTTP/1.1\r\ncontent-length: 1, 1\r\n\r\nx",
            "POST / HTTP/1.1\r\ncontent-length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\ncontent-length: +1\r\n\r\nx",
            "POST / HTTP/1.1\r\ncontent-length:\r\n\r\n",
            "POST / HTTP/1.1\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n",
            "CONNECT a:1 HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
            "GET / HTTP/1.1\r\nexpect: 100-continue\r\n\r\n",
            "GET / HTTP/1.0\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET / HTTP/1.1\r\nbad header\r\n\r\n",
        ] {
            let (parsed, rest) = parse(text);
            assert!(matches!(parsed, Parsed::NotHere), "{text:?}");
            assert_eq!(&rest[..], text.as_bytes(), "nothing is taken off");
        }
    }
}
