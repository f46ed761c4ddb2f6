//! One connection: TLS if configured, then mux or plain framed Thrift as
//! its first frame says ([`mux::is_mux`]).
//!
//! A reader task reads frames (each must complete within
//! [`FRAME_TIMEOUT`] once begun, and be at most [`MAX_FRAME`] bytes) and
//! hands them over a channel, so that waiting for an answer never loses a
//! half-read frame and a client that leaves is noticed at once.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::Arc;
use std::time::Duration;

use namerd_client::thrift::framed::{self, FrameError};
use namerd_client::thrift::mux::{self, Message, status};
use namers::tls::{ServerTls, Stream};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};

use super::service::NamerService;

/// The largest frame (or fragmented mux message) a client may send.
pub const MAX_FRAME: usize = 4 * 1024 * 1024;
/// How long a frame that has begun may take to complete.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// How many requests one mux connection may have waiting (long polls
/// included); more are answered with an error.
pub const MAX_PENDING: usize = 1000;
/// How many calls a plain connection may send ahead of their answers.
const MAX_PIPELINED: usize = 16;
/// How long a write to a client may take before the connection is cut.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a mux client gets to answer `Tdrain` once namerd stops.
const DRAIN_WAIT: Duration = Duration::from_secs(1);

type Frames = mpsc::Receiver<Result<Vec<u8>, FrameError>>;

/// Completes once namerd stops (or whoever stops it is gone).
pub(crate) async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|s| *s).await;
}

/// Serves one accepted connection until it closes or namerd stops.
pub(crate) async fn serve(
    tcp: TcpStream,
    service: Arc<NamerService>,
    tls: Option<Arc<ServerTls>>,
    mut stopping: watch::Receiver<bool>,
) {
    let _counted = service.stats.connection();
    let _ = tcp.set_nodelay(true);
    let stream = match tls {
        None => Stream::Plain(tcp),
        Some(tls) => {
            let handshake = namers::handshake::accept(&tls, tcp, namers::handshake::TIMEOUT);
            tokio::select! {
                accepted = handshake => match accepted {
                    Ok(stream) => stream,
                    Err(e) => {
                        tracing::debug!(error = %e, "closing a connection to the thrift interface's TLS port");
                        return;
                    }
                },
                () = stopped(&mut stopping) => return,
            }
        }
    };
    let (read, write) = tokio::io::split(stream);
    let (tx, mut frames) = mpsc::channel(4);
    let reader = tokio::spawn(read_frames(read, tx));
    let first = tokio::select! {
        first = frames.recv() => first,
        () = stopped(&mut stopping) => None,
    };
    match first {
        Some(Ok(first)) => {
            let is_mux = mux::is_mux(&first);
            service.stats.protocol(is_mux);
            if is_mux {
                MuxSession::new(service, write)
                    .run(first, frames, stopping)
                    .await;
            } else {
                framed_session(service, write, first, frames, stopping).await;
            }
        }
        Some(Err(e)) => tracing::debug!(error = %e, "closing a thrift connection"),
        None => {}
    }
    reader.abort();
}

async fn read_frames<R: AsyncRead + Unpin>(
    mut read: R,
    tx: mpsc::Sender<Result<Vec<u8>, FrameError>>,
) {
    loop {
        let frame = framed::read_frame(&mut read, MAX_FRAME, Some(FRAME_TIMEOUT)).await;
        let done = !matches!(frame, Ok(Some(_)));
        let item = match frame {
            Ok(Some(frame)) => Ok(frame),
            Ok(None) => return,
            Err(e) => Err(e),
        };
        if tx.send(item).await.is_err() || done {
            return;
        }
    }
}

async fn write_all<W: AsyncWrite + Unpin>(write: &mut W, bytes: &[u8]) -> io::Result<()> {
    tokio::time::timeout(WRITE_TIMEOUT, async {
        write.write_all(bytes).await?;
        write.flush().await
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the client does not read"))?
}

/// Plain framed Thrift: one call at a time, answered in order.
async fn framed_session<W: AsyncWrite + Unpin>(
    service: Arc<NamerService>,
    mut write: W,
    first: Vec<u8>,
    mut frames: Frames,
    mut stopping: watch::Receiver<bool>,
) {
    let mut queued = VecDeque::from([first]);
    loop {
        let frame = match queued.pop_front() {
            Some(frame) => frame,
            None => tokio::select! {
                next = frames.recv() => match next {
                    Some(Ok(frame)) => frame,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "closing a thrift connection");
                        return;
                    }
                    None => return,
                },
                () = stopped(&mut stopping) => return,
            },
        };
        let answer = service.answer(&frame);
        tokio::pin!(answer);
        let answer = loop {
            tokio::select! {
                answer = &mut answer => break answer,
                // A plain connection has no way to ask the client to go:
                // closing it ends its long poll.
                () = stopped(&mut stopping) => return,
                next = frames.recv() => match next {
                    Some(Ok(frame)) if queued.len() < MAX_PIPELINED => queued.push_back(frame),
                    // Gone, or too far ahead: the long poll ends with it.
                    _ => return,
                },
            }
        };
        match answer {
            Ok(Some(reply)) => {
                let mut framed = Vec::with_capacity(reply.len() + 4);
                framed.extend_from_slice(
                    &u32::try_from(reply.len()).unwrap_or(u32::MAX).to_be_bytes(),
                );
                framed.extend_from_slice(&reply);
                if write_all(&mut write, &framed).await.is_err() {
                    return;
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(error = %e, "closing a thrift connection that sent no Thrift message");
                return;
            }
        }
    }
}

/// How a request came: its answer is an `Rdispatch` or an `Rreq`.
#[derive(Clone, Copy)]
enum Kind {
    Dispatch,
    Req,
}

fn answer(kind: Kind, tag: u32, status: u8, body: Vec<u8>) -> Message {
    match kind {
        Kind::Dispatch => Message::Rdispatch {
            tag,
            status,
            contexts: Vec::new(),
            body,
        },
        Kind::Req => Message::Rreq { tag, status, body },
    }
}

/// A mux session: many requests at once, answered as they complete.
struct MuxSession<W> {
    service: Arc<NamerService>,
    write: W,
    pending: HashMap<u32, (Kind, AbortHandle)>,
    tasks: JoinSet<(u32, Message)>,
    /// The bodies of fragmented messages so far, by tag.
    fragments: HashMap<u32, Vec<u8>>,
    /// namerd stops: `Tdrain` was sent.
    draining: bool,
    /// The client answered `Tdrain`.
    drained: bool,
}

impl<S: AsyncRead + AsyncWrite> MuxSession<WriteHalf<S>> {
    fn new(service: Arc<NamerService>, write: WriteHalf<S>) -> Self {
        MuxSession {
            service,
            write,
            pending: HashMap::new(),
            tasks: JoinSet::new(),
            fragments: HashMap::new(),
            draining: false,
            drained: false,
        }
    }

    async fn send(&mut self, message: &Message) -> io::Result<()> {
        write_all(&mut self.write, &message.encode()).await
    }

    async fn run(
        mut self,
        first: Vec<u8>,
        mut frames: Frames,
        mut stopping: watch::Receiver<bool>,
    ) {
        if self.frame(first).await.is_err() {
            return;
        }
        let drain_deadline = tokio::time::sleep(Duration::MAX / 4);
        tokio::pin!(drain_deadline);
        loop {
            let step = tokio::select! {
                next = frames.recv() => match next {
                    Some(Ok(frame)) => self.frame(frame).await,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "closing a mux connection");
                        return;
                    }
                    None => return,
                },
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => match done {
                    Ok((tag, reply)) if self.pending.remove(&tag).is_some() => self.send(&reply).await,
                    // Discarded meanwhile, or aborted.
                    _ => Ok(()),
                },
                () = stopped(&mut stopping), if !self.draining => {
                    drain_deadline.as_mut().reset(tokio::time::Instant::now() + DRAIN_WAIT);
                    self.drain().await
                },
                () = &mut drain_deadline, if self.draining => return,
            };
            if step.is_err() {
                return;
            }
            if self.drained && self.pending.is_empty() {
                return;
            }
        }
    }

    /// Namerd stops: ask the client to send no more (`Tdrain`), and end
    /// every waiting request with a nack, which tells the client it may
    /// send it again elsewhere.
    async fn drain(&mut self) -> io::Result<()> {
        self.draining = true;
        self.send(&Message::Tdrain {
            tag: mux::CONTROL_TAG,
        })
        .await?;
        let pending: Vec<_> = self.pending.drain().collect();
        for (tag, (kind, abort)) in pending {
            abort.abort();
            self.send(&answer(kind, tag, status::NACK, Vec::new()))
                .await?;
        }
        Ok(())
    }

    /// One frame: a whole message, or a fragment of one.
    async fn frame(&mut self, frame: Vec<u8>) -> io::Result<()> {
        let bad = |e: &dyn std::fmt::Display| {
            io::Error::new(io::ErrorKind::InvalidData, format!("a bad mux frame: {e}"))
        };
        let (header, body) = mux::split(&frame).map_err(|e| bad(&e))?;
        if header.fragment || self.fragments.contains_key(&header.tag) {
            let so_far = self.fragments.entry(header.tag).or_default();
            let total: usize = so_far.len() + body.len();
            let all: usize = self.fragments.values().map(Vec::len).sum::<usize>() + body.len();
            if total > MAX_FRAME || all > MAX_FRAME {
                return Err(bad(&format!("fragments over {MAX_FRAME} bytes")));
            }
            self.fragments
                .entry(header.tag)
                .or_default()
                .extend_from_slice(body);
            if header.fragment {
                return Ok(());
            }
            let whole = self.fragments.remove(&header.tag).unwrap_or_default();
            let message = mux::decode_body(header.kind, header.tag, &whole).map_err(|e| bad(&e))?;
            return self.message(message).await;
        }
        let message = mux::decode_body(header.kind, header.tag, body).map_err(|e| bad(&e))?;
        self.message(message).await
    }

    async fn message(&mut self, message: Message) -> io::Result<()> {
        match message {
            Message::Tdispatch { tag, body, .. } => self.request(Kind::Dispatch, tag, body).await,
            Message::Treq { tag, body } => self.request(Kind::Req, tag, body).await,
            Message::Tping { tag } => self.send(&Message::Rping { tag }).await,
            Message::Tdiscarded { which, .. } => {
                if let Some((_, abort)) = self.pending.remove(&which) {
                    // Dropping the request ends its long poll.
                    abort.abort();
                    self.send(&Message::Rdiscarded { tag: which }).await?;
                }
                Ok(())
            }
            // The client asks whether it may negotiate: echo the probe.
            Message::Rerr { tag, message }
                if tag == mux::TINIT_TAG && message == mux::CAN_TINIT =>
            {
                self.send(&Message::Rerr { tag, message }).await
            }
            Message::Tinit { tag, version, .. } if version == mux::VERSION => {
                // No headers: no compression, no opportunistic TLS, no
                // fragmentation asked of the client.
                self.send(&Message::Rinit {
                    tag,
                    version: mux::VERSION,
                    headers: Vec::new(),
                })
                .await
            }
            Message::Tinit { tag, version, .. } => {
                self.send(&Message::Rerr {
                    tag,
                    message: format!("unsupported mux version {version}"),
                })
                .await?;
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "unsupported mux version",
                ))
            }
            Message::Rdrain { .. } => {
                self.drained = true;
                Ok(())
            }
            // Answers to messages this side never sends, and leases.
            Message::Rping { .. }
            | Message::Rerr { .. }
            | Message::Rinit { .. }
            | Message::Rdispatch { .. }
            | Message::Rreq { .. }
            | Message::Rdiscarded { .. }
            | Message::Tlease { .. } => Ok(()),
            other @ Message::Tdrain { .. } => {
                self.send(&Message::Rerr {
                    tag: other.tag(),
                    message: format!("unexpected mux message type {}", other.kind()),
                })
                .await
            }
        }
    }

    async fn request(&mut self, kind: Kind, tag: u32, body: Vec<u8>) -> io::Result<()> {
        if self.draining {
            return self
                .send(&answer(kind, tag, status::NACK, Vec::new()))
                .await;
        }
        if tag < 2 || self.pending.contains_key(&tag) {
            return self
                .send(&Message::Rerr {
                    tag,
                    message: format!("tag {tag} is reserved or already in use"),
                })
                .await;
        }
        if self.pending.len() >= MAX_PENDING {
            let message = format!("more than {MAX_PENDING} requests in flight on one connection");
            return self
                .send(&answer(kind, tag, status::ERROR, message.into_bytes()))
                .await;
        }
        let service = self.service.clone();
        let abort = self.tasks.spawn(async move {
            let reply = match service.answer(&body).await {
                Ok(reply) => answer(kind, tag, status::OK, reply.unwrap_or_default()),
                Err(e) => answer(
                    kind,
                    tag,
                    status::ERROR,
                    format!("not a Thrift message: {e}").into_bytes(),
                ),
            };
            (tag, reply)
        });
        self.pending.insert(tag, (kind, abort));
        Ok(())
    }
}
