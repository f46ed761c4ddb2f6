//! The router's HTTP/2 client connection (RFC 9113), for `h2` routers'
//! upstream connections.
//!
//! One task runs a connection and everything on it, as on the server side:
//! requests are queued by whoever sends them ([`SendRequest`]), opened as
//! streams when the upstream's SETTINGS_MAX_CONCURRENT_STREAMS allows,
//! their bodies sent by the task as the windows allow, and their answers'
//! heads handed back through an [`Exchange`] and their bodies through an
//! inbox ([`Inbound`]).

mod exchange;
mod frames;

pub use exchange::{ResponseFuture, SendError};

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};

use bytes::{Bytes, BytesMut};
use http::Request;
use hyper::body::Body as HttpBody;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};

use super::frame::{self, FrameError, Reason, setting};
use super::hpack::{Decoder, Encoder};
use super::inbound::Sender;
use super::send::{self, Added, Out, Polled, Sending, WRITE_HIGH_WATER};
use super::wake::{Queued, Signals, StreamWake};
use exchange::Exchange;

pub use super::inbound::Inbound;

/// A connection's limits, sent to the upstream in our SETTINGS.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// SETTINGS_INITIAL_WINDOW_SIZE: how much of an answer's body may wait
    /// unread.
    pub stream_window: u32,
    /// The connection's window, for all answers together.
    pub connection_window: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE.
    pub max_header_list_size: u32,
}

/// What a body must be to be sent.
pub trait RequestBody: HttpBody<Data = Bytes, Error: std::fmt::Display> + Unpin + Send {}
impl<B: HttpBody<Data = Bytes, Error: std::fmt::Display> + Unpin + Send> RequestBody for B {}

/// Sends requests on a connection; cheap to clone.
pub struct SendRequest<B> {
    shared: Arc<Shared<B>>,
}

impl<B> Clone for SendRequest<B> {
    fn clone(&self) -> Self {
        SendRequest {
            shared: self.shared.clone(),
        }
    }
}

/// Keeps a connection taking requests; once it is dropped, the connection
/// ends when its streams have.
pub struct Owner<B> {
    shared: Arc<Shared<B>>,
}

impl<B> Drop for Owner<B> {
    fn drop(&mut self) {
        self.shared.state.lock().owned = false;
        self.shared.signals.wake_task();
    }
}

struct Shared<B> {
    state: Mutex<State<B>>,
    signals: Arc<Signals>,
}

struct State<B> {
    /// Requests waiting for a stream, with the fields added to their heads.
    queue: VecDeque<(Request<B>, Added, Arc<Exchange<B>>)>,
    /// Why no new request is taken, once none is.
    closed: Option<SendError<B>>,
    owned: bool,
}

impl<B: RequestBody> SendRequest<B> {
    /// Sends `request`; the future gives its answer's head and body.
    pub fn send(&self, request: Request<B>) -> ResponseFuture<B> {
        self.send_with(request, Added::default())
    }

    /// Sends `request` with `added` fields in its head (after its own, in
    /// place of those `added` replaces). A request that comes back unsent
    /// comes back without them.
    pub fn send_with(&self, request: Request<B>, added: Added) -> ResponseFuture<B> {
        let exchange = Arc::new(Exchange::default());
        let mut state = self.shared.state.lock();
        if let Some(closed) = &state.closed {
            exchange.answer(Err(closed.again(Some(Box::new(request)))));
        } else {
            state.queue.push_back((request, added, exchange.clone()));
            drop(state);
            self.shared.signals.wake_task();
        }
        ResponseFuture::new(exchange, self.shared.signals.clone())
    }

    /// Whether the connection takes no more requests.
    pub fn is_closed(&self) -> bool {
        self.shared.state.lock().closed.is_some()
    }
}

/// One open stream.
struct Stream<B> {
    exchange: Arc<Exchange<B>>,
    wake: Arc<StreamWake>,
    waker: Waker,
    /// The request's body, until it has all gone.
    sending: Option<Sending<B>>,
    send_window: i64,
    recv: Recv,
}

enum Recv {
    /// No answer's head yet.
    Head,
    /// The answer's body is arriving.
    Body {
        sender: Sender,
        window: i64,
        credit: u32,
    },
    Closed,
}

/// One HTTP/2 client connection. A future that ends when the connection
/// does; run it on a task of its own.
pub struct Connection<I, B> {
    io: I,
    shared: Arc<Shared<B>>,
    signals: Arc<Signals>,
    config: Config,
    read_buf: BytesMut,
    write_buf: BytesMut,
    decoder: Decoder,
    /// The fields of the header block being read (kept for its capacity).
    fields: Vec<super::hpack::Field>,
    encoder: Encoder,
    streams: HashMap<u32, Stream<B>, foldhash::fast::RandomState>,
    queued: Queued,
    ready: Vec<u32>,
    blocked: Vec<u32>,
    next_stream: u32,
    /// A header block continued by CONTINUATION frames.
    continuing: Option<(u32, bool, BytesMut)>,
    peer_max_streams: usize,
    /// The upstream's first SETTINGS have come.
    settled: bool,
    peer_initial_window: i64,
    peer_max_frame_size: u32,
    send_window: i64,
    recv_window: i64,
    recv_credit: u32,
    /// The upstream's GOAWAY: the last stream it will answer.
    going_away: Option<u32>,
    read_closed: bool,
    failed: Option<String>,
}

/// Starts a connection on `io`: what sends on it, what keeps it taking
/// requests, and the connection itself.
pub fn handshake<I, B>(io: I, config: Config) -> (SendRequest<B>, Owner<B>, Connection<I, B>)
where
    I: AsyncRead + AsyncWrite + Unpin,
    B: RequestBody,
{
    let signals = Arc::new(Signals::default());
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            closed: None,
            owned: true,
        }),
        signals: signals.clone(),
    });
    let mut write_buf = BytesMut::with_capacity(16 * 1024);
    write_buf.extend_from_slice(frame::PREFACE);
    frame::write_settings(
        &mut write_buf,
        &[
            (setting::ENABLE_PUSH, 0),
            (setting::INITIAL_WINDOW_SIZE, config.stream_window),
            (setting::MAX_HEADER_LIST_SIZE, config.max_header_list_size),
        ],
    );
    let connection_window = config
        .connection_window
        .clamp(frame::DEFAULT_WINDOW, frame::MAX_WINDOW);
    if connection_window > frame::DEFAULT_WINDOW {
        frame::write_window_update(&mut write_buf, 0, connection_window - frame::DEFAULT_WINDOW);
    }
    let connection = Connection {
        io,
        shared: shared.clone(),
        signals,
        config,
        read_buf: BytesMut::new(),
        write_buf,
        decoder: Decoder::new(4096),
        fields: Vec::new(),
        encoder: Encoder::new(),
        streams: HashMap::default(),
        queued: Queued::default(),
        ready: Vec::new(),
        blocked: Vec::new(),
        next_stream: 1,
        continuing: None,
        // None until the upstream's first SETTINGS (its preface) says how
        // many it takes: a stream it would refuse costs a round trip.
        peer_max_streams: 0,
        settled: false,
        peer_initial_window: i64::from(frame::DEFAULT_WINDOW),
        peer_max_frame_size: frame::DEFAULT_MAX_FRAME_SIZE,
        send_window: i64::from(frame::DEFAULT_WINDOW),
        recv_window: i64::from(connection_window),
        recv_credit: 0,
        going_away: None,
        read_closed: false,
        failed: None,
    };
    (
        SendRequest {
            shared: shared.clone(),
        },
        Owner { shared },
        connection,
    )
}

/// Rounds of reading, opening and polling streams and writing in one
/// poll before the connection yields to other tasks.
const ROUNDS_PER_POLL: usize = 32;

impl<I, B> Connection<I, B>
where
    I: AsyncRead + AsyncWrite + Unpin,
    B: RequestBody,
{
    fn poll_connection(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), String>> {
        self.signals.register(cx.waker());
        for _ in 0..ROUNDS_PER_POLL {
            let mut progress = false;
            if self.failed.is_none() && !self.read_closed && self.write_buf.len() < WRITE_HIGH_WATER
            {
                match self.poll_read(cx) {
                    Poll::Ready(Ok(())) => progress = true,
                    Poll::Ready(Err(e)) => self.fail(e),
                    Poll::Pending => {}
                }
            }
            if self.failed.is_none() {
                progress |= self.open_streams();
                progress |= self.poll_streams();
            }
            let was_full = self.write_buf.len() >= WRITE_HIGH_WATER;
            match self.poll_flush(cx) {
                Poll::Ready(Ok(())) => progress |= was_full,
                Poll::Ready(Err(e)) => {
                    self.fail(format!("writing to the upstream failed: {e}"));
                    return Poll::Ready(Err(e.to_string()));
                }
                Poll::Pending => {}
            }
            if self.write_buf.is_empty() {
                if let Some(why) = self.failed.take() {
                    return Poll::Ready(Err(why));
                }
                if self.streams.is_empty() && self.continuing.is_none() {
                    let state = self.shared.state.lock();
                    let done = state.queue.is_empty()
                        && (!state.owned || state.closed.is_some() || self.read_closed);
                    if done {
                        return Poll::Ready(Ok(()));
                    }
                }
            }
            if !progress {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), String>> {
        self.read_buf.reserve(16 * 1024);
        let read = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut self.io),
            cx,
            &mut self.read_buf
        ));
        let n = read.map_err(|e| format!("reading from the upstream failed: {e}"))?;
        if n == 0 {
            self.read_closed = true;
            self.fail("the upstream closed the connection".to_owned());
            return Poll::Ready(Ok(()));
        }
        loop {
            match frame::read(&mut self.read_buf, frame::DEFAULT_MAX_FRAME_SIZE) {
                Ok(Some(frame)) => self.on_frame(frame)?,
                Ok(None) => return Poll::Ready(Ok(())),
                Err(FrameError {
                    stream: Some(stream),
                    reason,
                    ..
                }) if self.continuing.is_none() => self.reset(stream, reason, "stream error"),
                Err(error) => {
                    frame::write_goaway(&mut self.write_buf, 0, error.reason);
                    return Poll::Ready(Err(format!("upstream broke HTTP/2: {error}")));
                }
            }
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.write_buf.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.write_buf))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let _ = self.write_buf.split_to(n);
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// The connection is lost: every request still waiting or in flight
    /// fails, and no new one is taken.
    fn fail(&mut self, why: String) {
        if self.failed.is_some() {
            return;
        }
        tracing::debug!(error = %why, "upstream HTTP/2 connection ended");
        self.close_to_new(&why);
        for (_, stream) in self.streams.drain() {
            stream.fail(&why);
        }
        self.failed = Some(why);
    }

    /// Opens streams for queued requests while the upstream allows more.
    fn open_streams(&mut self) -> bool {
        if self.going_away.is_some() {
            return false;
        }
        let mut opened = false;
        while self.streams.len() < self.peer_max_streams {
            let Some((request, added, exchange)) = self.shared.state.lock().queue.pop_front()
            else {
                break;
            };
            if exchange.is_abandoned() {
                continue;
            }
            let id = self.next_stream;
            if id > frame::MAX_WINDOW - 2 {
                // Stream ids are used up: a new connection takes over.
                self.shared
                    .state
                    .lock()
                    .queue
                    .push_front((request, added, exchange));
                self.going_away = Some(id - 2);
                self.close_to_new("stream ids used up");
                break;
            }
            self.next_stream += 2;
            opened = true;
            self.open(id, request, &added, exchange);
        }
        opened
    }

    fn open(&mut self, id: u32, request: Request<B>, added: &Added, exchange: Arc<Exchange<B>>) {
        let (head, body) = request.into_parts();
        let ended = body.is_end_stream();
        let mut out = Out {
            buf: &mut self.write_buf,
            encoder: &mut self.encoder,
            send_window: &mut self.send_window,
            max_frame_size: self.peer_max_frame_size,
        };
        send::write_head(
            &mut out,
            id,
            |encoder, buf| {
                use super::hpack::Pseudo;
                encoder.method(&head.method, buf);
                let scheme = head.uri.scheme_str().unwrap_or("http");
                encoder.pseudo(Pseudo::Scheme, scheme.as_bytes(), buf);
                if let Some(authority) = head.uri.authority() {
                    encoder.pseudo(Pseudo::Authority, authority.as_str().as_bytes(), buf);
                }
                let path = head.uri.path_and_query().map_or("/", |p| p.as_str());
                encoder.pseudo(Pseudo::Path, path.as_bytes(), buf);
            },
            &head.headers,
            added,
            ended,
        );
        exchange.opened(id);
        let wake = StreamWake::new(id, self.signals.clone());
        let stream = Stream {
            exchange,
            waker: Waker::from(wake.clone()),
            wake,
            sending: (!ended).then(|| Sending::new(body)),
            send_window: self.peer_initial_window,
            recv: Recv::Head,
        };
        self.streams.insert(id, stream);
        if !ended {
            self.ready.push(id);
        }
    }

    /// Polls the request bodies that were woken or given window, and takes
    /// what the answers' readers have done.
    fn poll_streams(&mut self) -> bool {
        let mut queued = std::mem::take(&mut self.queued);
        self.signals.take(&mut queued);
        for &(id, n) in &queued.consumed {
            self.give_back(id, n);
        }
        for &id in &queued.dropped {
            // Nobody reads the answer any more.
            if self.streams.contains_key(&id) {
                self.reset(id, Reason::CANCEL, "answer dropped");
            }
        }
        let mut ready = std::mem::take(&mut self.ready);
        let mut progress =
            !queued.woken.is_empty() || !ready.is_empty() || !queued.dropped.is_empty();
        for id in queued.woken.drain(..).chain(ready.drain(..)) {
            self.poll_body(id);
        }
        self.ready = ready;
        self.queued = queued;
        if self.send_window > 0
            && self.write_buf.len() < WRITE_HIGH_WATER
            && !self.blocked.is_empty()
        {
            let mut blocked = std::mem::take(&mut self.blocked);
            progress = true;
            for id in blocked.drain(..) {
                self.poll_body(id);
            }
            blocked.append(&mut self.blocked);
            self.blocked = blocked;
        }
        if self.recv_credit >= self.config.connection_window / 2 {
            frame::write_window_update(&mut self.write_buf, 0, self.recv_credit);
            self.recv_window += i64::from(self.recv_credit);
            self.recv_credit = 0;
        }
        progress
    }

    fn poll_body(&mut self, id: u32) {
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        stream.wake.polling();
        let Some(sending) = &mut stream.sending else {
            return;
        };
        let mut cx = Context::from_waker(&stream.waker);
        let mut out = Out {
            buf: &mut self.write_buf,
            encoder: &mut self.encoder,
            send_window: &mut self.send_window,
            max_frame_size: self.peer_max_frame_size,
        };
        match send::poll_sending(id, sending, &mut stream.send_window, &mut out, &mut cx) {
            Polled::Pending => {}
            Polled::Blocked => self.blocked.push(id),
            Polled::Finished => {
                stream.sending = None;
                if matches!(stream.recv, Recv::Closed) {
                    self.streams.remove(&id);
                }
            }
            Polled::Failed => self.reset(id, Reason::CANCEL, "the request body failed"),
        }
    }

    /// `n` bytes of stream `id`'s answer have been read.
    fn give_back(&mut self, id: u32, n: u32) {
        self.recv_credit += n;
        if let Some(Stream {
            recv: Recv::Body { window, credit, .. },
            ..
        }) = self.streams.get_mut(&id)
        {
            *credit += n;
            if *credit >= self.config.stream_window / 2 {
                frame::write_window_update(&mut self.write_buf, id, *credit);
                *window += i64::from(*credit);
                *credit = 0;
            }
        }
    }

    /// Ends stream `id` with RST_STREAM; its exchange fails with `why`.
    fn reset(&mut self, id: u32, reason: Reason, why: &str) {
        frame::write_reset(&mut self.write_buf, id, reason);
        if let Some(stream) = self.streams.remove(&id) {
            stream.fail(why);
        }
    }

    /// Takes no new request: the pool opens another connection for them,
    /// and those still queued, never sent, come back whole.
    fn close_to_new(&mut self, why: &str) {
        let queue = {
            let mut state = self.shared.state.lock();
            state.closed.get_or_insert(SendError::Unprocessed {
                why: why.to_owned(),
                going_away: true,
                request: None,
            });
            std::mem::take(&mut state.queue)
        };
        for (request, _, exchange) in queue {
            exchange.answer(Err(SendError::Unprocessed {
                why: why.to_owned(),
                going_away: true,
                request: Some(Box::new(request)),
            }));
        }
    }
}

impl<B> Stream<B> {
    /// The stream ended without its answer, or with its answer's body cut.
    fn fail(&self, why: &str) {
        match &self.recv {
            Recv::Head => self.exchange.answer(Err(SendError::Failed(why.to_owned()))),
            Recv::Body { sender, .. } => sender.break_off("the upstream stream ended early"),
            Recv::Closed => {}
        }
    }
}

impl<I, B> Future for Connection<I, B>
where
    I: AsyncRead + AsyncWrite + Unpin,
    B: RequestBody,
{
    type Output = Result<(), String>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().poll_connection(cx)
    }
}

#[cfg(test)]
mod tests;
