//! The router's HTTP/2 server connection (RFC 9113).
//!
//! One task serves a connection and everything on it: it reads frames,
//! starts each request's future, polls the futures and the answers'
//! bodies, and writes frames. A stream costs no task of its own, no
//! channel to one, and no header map conversion beyond the one into the
//! `http` request the router routes. Which stream to poll comes from
//! per-stream wakers ([`wake`]).

mod frames;
mod request;
mod stream;

pub use crate::http2::inbound::{Broken, Inbound};
pub use request::Malformed;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http::Response;
use hyper::body::Body as HttpBody;
use tokio::io::{AsyncRead, AsyncWrite};

use super::frame::{self, FrameError, Reason, setting};
use super::hpack::{Decoder, Encoder};
use super::send::WRITE_HIGH_WATER;
use super::wake::{Queued, Signals};
use stream::Stream;

/// A connection's limits, sent to the client in our SETTINGS.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub max_concurrent_streams: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE: a request whose fields add up to
    /// more is answered 431.
    pub max_header_list_size: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE: how much of a request body may wait
    /// unread.
    pub stream_window: u32,
    /// The connection's window, for all request bodies together.
    pub connection_window: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_concurrent_streams: 200,
            max_header_list_size: 16 * 1024,
            stream_window: 1024 * 1024,
            connection_window: 1024 * 1024,
        }
    }
}

/// A request's body as the server hands it over.
pub enum RequestBody {
    /// There is none: the request's HEADERS ended the stream.
    Empty,
    /// It had all arrived when the request was started.
    Whole(Bytes),
    /// Still arriving.
    Streaming(Inbound),
}

/// What answers each request of a connection.
pub trait Service {
    /// The answer's body.
    type Body: HttpBody<Data = Bytes, Error: std::fmt::Display> + Unpin;
    /// The answer.
    type Future: Future<Output = Response<Self::Body>> + Unpin;
    /// Starts answering a request.
    fn call(&mut self, head: http::request::Parts, body: RequestBody) -> Self::Future;
}

/// Why a connection ended other than by a clean close.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The socket failed.
    #[error("HTTP/2 connection: {0}")]
    Io(#[from] io::Error),
    /// The client broke the protocol; a GOAWAY said so.
    #[error("HTTP/2 connection: {0}")]
    Protocol(FrameError),
    /// The client did not start with the HTTP/2 preface.
    #[error("HTTP/2 connection: no connection preface")]
    Preface,
    /// The client reset more streams than it let us answer.
    #[error("HTTP/2 connection: too many streams reset by the client")]
    TooManyResets,
}

/// How much room a read is given.
const READ_SIZE: usize = 16 * 1024;
/// Rounds of reading, polling streams and writing in one poll of the
/// connection before it yields to other tasks.
const ROUNDS_PER_POLL: usize = 32;
/// Streams the client may reset before we answer them, beyond those it
/// let us answer, before the connection is closed (the "rapid reset"
/// attack, CVE-2023-44487).
const RESET_ALLOWANCE: u64 = 1000;

/// One HTTP/2 server connection. A future that ends when the connection
/// does.
pub struct Connection<I, S: Service> {
    io: I,
    service: S,
    config: Config,
    read_buf: BytesMut,
    write_buf: BytesMut,
    decoder: Decoder,
    encoder: Encoder,
    streams: HashMap<u32, Stream<S>, foldhash::fast::RandomState>,
    signals: Arc<Signals>,
    queued: Queued,
    /// The preface has been read.
    started: bool,
    /// `read_buf` holds bytes not yet looked at.
    unread: bool,
    /// The highest stream id the client has used.
    last_stream: u32,
    /// A header block continued by CONTINUATION frames.
    continuing: Option<Continuing>,
    /// Streams opened by the frames read last, to start once those have
    /// all been taken in (so that a body that came with its head is
    /// handed over whole).
    to_start: Vec<u32>,
    /// Streams to poll: started, or given window.
    ready: Vec<u32>,
    /// Streams with data held back by the connection's window or a full
    /// write buffer.
    blocked: Vec<u32>,
    peer_initial_window: i64,
    peer_max_frame_size: u32,
    /// What we may still send, all streams together.
    send_window: i64,
    /// What the client may still send, all streams together.
    recv_window: i64,
    /// Read but not yet given back to the connection's window.
    recv_credit: u32,
    /// A GOAWAY was sent: no stream above this id is served.
    going_away: Option<u32>,
    /// The client sent GOAWAY or closed its side.
    peer_done: bool,
    read_closed: bool,
    /// Streams the client reset before their answer, and answers sent.
    early_resets: u64,
    answered: u64,
    /// A connection error to report once its GOAWAY is written.
    failed: Option<ConnectionError>,
}

struct Continuing {
    stream: u32,
    end_stream: bool,
    block: BytesMut,
}

impl<I, S> Connection<I, S>
where
    I: AsyncRead + AsyncWrite + Unpin,
    S: Service,
{
    /// Serves `io`, whose first bytes, already read, are `read`.
    pub fn new(io: I, read: BytesMut, service: S, config: Config) -> Self {
        let mut write_buf = BytesMut::with_capacity(READ_SIZE);
        frame::write_settings(
            &mut write_buf,
            &[
                (
                    setting::MAX_CONCURRENT_STREAMS,
                    config.max_concurrent_streams,
                ),
                (setting::INITIAL_WINDOW_SIZE, config.stream_window),
                (setting::MAX_HEADER_LIST_SIZE, config.max_header_list_size),
            ],
        );
        let connection_window = config
            .connection_window
            .clamp(frame::DEFAULT_WINDOW, frame::MAX_WINDOW);
        if connection_window > frame::DEFAULT_WINDOW {
            frame::write_window_update(
                &mut write_buf,
                0,
                connection_window - frame::DEFAULT_WINDOW,
            );
        }
        Connection {
            io,
            service,
            config,
            unread: !read.is_empty(),
            read_buf: read,
            write_buf,
            decoder: Decoder::new(4096),
            encoder: Encoder::new(),
            streams: HashMap::default(),
            signals: Arc::new(Signals::default()),
            queued: Queued::default(),
            started: false,
            last_stream: 0,
            continuing: None,
            to_start: Vec::new(),
            ready: Vec::new(),
            blocked: Vec::new(),
            peer_initial_window: i64::from(frame::DEFAULT_WINDOW),
            peer_max_frame_size: frame::DEFAULT_MAX_FRAME_SIZE,
            send_window: i64::from(frame::DEFAULT_WINDOW),
            recv_window: i64::from(connection_window),
            recv_credit: 0,
            going_away: None,
            peer_done: false,
            read_closed: false,
            early_resets: 0,
            answered: 0,
            failed: None,
        }
    }

    /// Stops taking new streams: a GOAWAY tells the client which ones
    /// will still be answered, and the connection ends once they are.
    pub fn graceful_shutdown(&mut self) {
        if self.going_away.is_none() {
            frame::write_goaway(&mut self.write_buf, self.last_stream, Reason::NO_ERROR);
            self.going_away = Some(self.last_stream);
            self.signals.wake_task();
        }
    }

    /// Ends the connection with a GOAWAY carrying `error`'s code.
    fn fail(&mut self, error: ConnectionError) {
        if self.failed.is_some() {
            return;
        }
        let reason = match &error {
            ConnectionError::Protocol(e) => e.reason,
            ConnectionError::TooManyResets => Reason::ENHANCE_YOUR_CALM,
            ConnectionError::Io(_) | ConnectionError::Preface => Reason::PROTOCOL_ERROR,
        };
        tracing::debug!(error = %error, "HTTP/2 connection failed");
        frame::write_goaway(&mut self.write_buf, self.last_stream, reason);
        self.going_away = Some(self.last_stream);
        self.failed = Some(error);
        for (_, stream) in self.streams.drain() {
            stream.break_off("connection closed");
        }
    }

    fn poll_connection(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConnectionError>> {
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
            self.start_streams();
            if self.failed.is_none() {
                progress |= self.poll_streams();
            }
            // Send what there is; the socket taking it is progress only
            // when something waits on room in the buffer.
            let was_full = self.write_buf.len() >= WRITE_HIGH_WATER;
            match self.poll_flush(cx) {
                Poll::Ready(Ok(())) => progress |= was_full,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                Poll::Pending => {}
            }
            if self.write_buf.is_empty() {
                if let Some(error) = self.failed.take() {
                    return Poll::Ready(Err(error));
                }
                let draining = self.going_away.is_some() || self.peer_done || self.read_closed;
                if draining && self.streams.is_empty() && self.continuing.is_none() {
                    return Poll::Ready(Ok(()));
                }
            }
            if !progress {
                return Poll::Pending;
            }
        }
        // Still busy: let the runtime's other tasks run first.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Reads what the socket has and takes in every whole frame.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConnectionError>> {
        if self.unread {
            // Bytes read before the connection was made over to us.
            self.unread = false;
            self.take_frames()?;
            return Poll::Ready(Ok(()));
        }
        self.read_buf.reserve(READ_SIZE);
        let n = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut self.io),
            cx,
            &mut self.read_buf
        ))?;
        if n == 0 {
            self.read_closed = true;
            // Streams still arriving will not end now; answers still
            // going out may finish.
            for stream in self.streams.values_mut() {
                stream.recv_lost();
            }
            return Poll::Ready(Ok(()));
        }
        self.take_frames()?;
        Poll::Ready(Ok(()))
    }

    /// Takes in the preface and every whole frame in the read buffer.
    fn take_frames(&mut self) -> Result<(), ConnectionError> {
        if !self.started {
            if self.read_buf.len() < frame::PREFACE.len() {
                return if frame::PREFACE.starts_with(&self.read_buf) {
                    Ok(())
                } else {
                    Err(ConnectionError::Preface)
                };
            }
            if !self.read_buf.starts_with(frame::PREFACE) {
                return Err(ConnectionError::Preface);
            }
            let _ = self.read_buf.split_to(frame::PREFACE.len());
            self.started = true;
        }
        loop {
            match frame::read(&mut self.read_buf, frame::DEFAULT_MAX_FRAME_SIZE) {
                Ok(Some(frame)) => self.on_frame(frame)?,
                Ok(None) => return Ok(()),
                Err(error) => match error.stream {
                    Some(stream) if self.continuing.is_none() => {
                        self.on_stream_error(&error, stream)
                    }
                    _ => return Err(ConnectionError::Protocol(error)),
                },
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
        ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        Poll::Ready(Ok(()))
    }
}

impl<I, S> Future for Connection<I, S>
where
    I: AsyncRead + AsyncWrite + Unpin,
    S: Service + Unpin,
{
    type Output = Result<(), ConnectionError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().poll_connection(cx)
    }
}

#[cfg(test)]
mod tests;
