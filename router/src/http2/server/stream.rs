//! A stream's state, and how its answer goes out: the head once the
//! request's future is done, then the body's data as the windows allow,
//! then its trailers.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use http::header::{self, HeaderMap, HeaderValue};
use hyper::body::Body as HttpBody;

use super::{Connection, RequestBody, Service};
use crate::http2::frame::{self, Reason};
use crate::http2::inbound::{Inbound, Sender};
use crate::http2::send::{self, Added, Out, Polled, Sending, WRITE_HIGH_WATER};
use crate::http2::wake::StreamWake;

/// One open stream.
pub(super) struct Stream<S: Service> {
    pub(super) wake: Arc<StreamWake>,
    pub(super) waker: Waker,
    pub(super) answer: Answer<S>,
    /// What we may still send on it.
    pub(super) send_window: i64,
    pub(super) recv: Recv,
    /// The request, until it is started.
    pub(super) request: Option<(http::request::Parts, Option<Inbound>)>,
}

pub(super) enum Answer<S: Service> {
    NotStarted,
    Waiting(S::Future),
    Sending(Sending<S::Body>),
}

/// The request body's side of the stream.
pub(super) enum Recv {
    Open {
        sender: Sender,
        /// What the client may still send.
        window: i64,
        /// Read, not yet given back in a WINDOW_UPDATE.
        credit: u32,
        /// What `content-length` announced.
        length: Option<u64>,
        received: u64,
    },
    Closed,
}

impl<S: Service> Stream<S> {
    pub(super) fn new(
        id: u32,
        signals: Arc<crate::http2::wake::Signals>,
        send_window: i64,
        recv: Recv,
        request: (http::request::Parts, Option<Inbound>),
    ) -> Self {
        let wake = StreamWake::new(id, signals);
        Stream {
            waker: Waker::from(wake.clone()),
            wake,
            answer: Answer::NotStarted,
            send_window,
            recv,
            request: Some(request),
        }
    }

    /// The request body will not end well.
    pub(super) fn break_off(&self, why: &'static str) {
        if let Recv::Open { sender, .. } = &self.recv {
            sender.break_off(why);
        }
    }

    /// The connection's reading side closed.
    pub(super) fn recv_lost(&mut self) {
        self.break_off("connection closed before the request body ended");
        self.recv = Recv::Closed;
    }

    /// Its answer's head has gone out.
    pub(super) fn answering(&self) -> bool {
        matches!(self.answer, Answer::Sending(_))
    }
}

impl<I, S: Service> Connection<I, S> {
    /// Starts the streams opened by the last frames read.
    pub(super) fn start_streams(&mut self) {
        let mut to_start = std::mem::take(&mut self.to_start);
        for id in to_start.drain(..) {
            let Some(stream) = self.streams.get_mut(&id) else {
                continue;
            };
            let Some((head, inbound)) = stream.request.take() else {
                continue;
            };
            let body = match inbound {
                None => RequestBody::Empty,
                Some(inbound) => match (&stream.recv, inbound.take_whole()) {
                    (Recv::Closed, Some(bytes)) => {
                        self.recv_credit += bytes.len() as u32;
                        RequestBody::Whole(bytes)
                    }
                    _ => RequestBody::Streaming(inbound),
                },
            };
            stream.answer = Answer::Waiting(self.service.call(head, body));
            self.ready.push(id);
        }
        self.to_start = to_start;
    }

    /// Polls the streams that were woken, given window, or started.
    /// Whether any was.
    pub(super) fn poll_streams(&mut self) -> bool {
        let mut queued = std::mem::take(&mut self.queued);
        self.signals.take(&mut queued);
        for &(id, n) in &queued.consumed {
            self.give_back(id, n);
        }
        let mut ready = std::mem::take(&mut self.ready);
        let mut progress = !queued.woken.is_empty() || !ready.is_empty();
        for id in queued.woken.drain(..).chain(ready.drain(..)) {
            self.poll_stream(id);
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
                self.poll_stream(id);
            }
            // Anything blocked again was pushed back meanwhile.
            blocked.append(&mut self.blocked);
            self.blocked = blocked;
        }
        self.send_credit();
        progress
    }

    fn poll_stream(&mut self, id: u32) {
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        stream.wake.polling();
        let polled = poll_answer(
            id,
            stream,
            &mut Out {
                buf: &mut self.write_buf,
                encoder: &mut self.encoder,
                send_window: &mut self.send_window,
                max_frame_size: self.peer_max_frame_size,
            },
        );
        match polled {
            Polled::Pending => {}
            Polled::Blocked => self.blocked.push(id),
            Polled::Finished => {
                self.answered += 1;
                if let Some(stream) = self.streams.remove(&id)
                    && let Recv::Open { sender, .. } = &stream.recv
                {
                    // Answered before the request ended: the rest of it
                    // is not wanted (RFC 9113, section 8.1).
                    sender.break_off("answered before the request body ended");
                    frame::write_reset(&mut self.write_buf, id, Reason::NO_ERROR);
                }
            }
            Polled::Failed => self.reset(id, Reason::INTERNAL_ERROR),
        }
    }

    /// Answers stream `id` with a head and nothing else.
    pub(super) fn write_answer_head(
        &mut self,
        id: u32,
        status: http::StatusCode,
        headers: &HeaderMap,
    ) {
        let mut out = Out {
            buf: &mut self.write_buf,
            encoder: &mut self.encoder,
            send_window: &mut self.send_window,
            max_frame_size: self.peer_max_frame_size,
        };
        send::write_head(
            &mut out,
            id,
            |encoder, buf| encoder.status(status, buf),
            headers,
            &Added::default(),
            true,
        );
    }

    /// Ends stream `id` with RST_STREAM.
    pub(super) fn reset(&mut self, id: u32, reason: Reason) {
        frame::write_reset(&mut self.write_buf, id, reason);
        if let Some(stream) = self.streams.remove(&id) {
            stream.break_off("stream reset");
        }
    }

    /// `n` bytes of stream `id`'s request body have been read: the
    /// client may send as much again.
    fn give_back(&mut self, id: u32, n: u32) {
        self.recv_credit += n;
        if let Some(Stream {
            recv: Recv::Open { window, credit, .. },
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

    /// Gives the connection's window back once half of it is used up.
    fn send_credit(&mut self) {
        if self.recv_credit >= self.config.connection_window / 2 {
            frame::write_window_update(&mut self.write_buf, 0, self.recv_credit);
            self.recv_window += i64::from(self.recv_credit);
            self.recv_credit = 0;
        }
    }

    /// The client's SETTINGS_INITIAL_WINDOW_SIZE moved every stream's
    /// window by `delta`.
    pub(super) fn shift_send_windows(&mut self, delta: i64) -> bool {
        for (&id, stream) in &mut self.streams {
            stream.send_window += delta;
            if stream.send_window > i64::from(frame::MAX_WINDOW) {
                return false;
            }
            if delta > 0 && stream.answering() {
                self.ready.push(id);
            }
        }
        true
    }
}

fn poll_answer<S: Service>(id: u32, stream: &mut Stream<S>, out: &mut Out<'_>) -> Polled {
    let mut cx = Context::from_waker(&stream.waker);
    if let Answer::Waiting(future) = &mut stream.answer {
        let Poll::Ready(response) = Pin::new(future).poll(&mut cx) else {
            return Polled::Pending;
        };
        let (mut head, body) = response.into_parts();
        let ended = body.is_end_stream();
        if !head.headers.contains_key(header::CONTENT_LENGTH)
            && let Some(length) = body.size_hint().exact()
        {
            head.headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        send::write_head(
            out,
            id,
            |encoder, buf| encoder.status(head.status, buf),
            &head.headers,
            &Added::default(),
            ended,
        );
        if ended {
            return Polled::Finished;
        }
        stream.answer = Answer::Sending(Sending::new(body));
    }
    let Answer::Sending(sending) = &mut stream.answer else {
        return Polled::Pending;
    };
    send::poll_sending(id, sending, &mut stream.send_window, out, &mut cx)
}
