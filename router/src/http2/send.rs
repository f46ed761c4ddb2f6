//! Sending a message on a stream, for both ends of a connection: its head
//! as HEADERS, then its body's data as the windows allow, then its
//! trailers.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};
use hyper::body::Body as HttpBody;

use super::frame;
use super::hpack::Encoder;

/// The write buffer's size past which a connection produces no more until
/// the socket has taken some.
pub(crate) const WRITE_HIGH_WATER: usize = 128 * 1024;

/// A connection's output, lent to one stream.
pub(crate) struct Out<'a> {
    pub(crate) buf: &'a mut BytesMut,
    pub(crate) encoder: &'a mut Encoder,
    /// The connection's send window.
    pub(crate) send_window: &'a mut i64,
    /// The peer's SETTINGS_MAX_FRAME_SIZE.
    pub(crate) max_frame_size: u32,
}

/// Fields a sender adds to a message's head as it is encoded, after the
/// head's own: cheaper than putting them in its header map first, which
/// hashes each name and may grow the map.
#[derive(Default)]
pub struct Added {
    fields: Vec<(HeaderName, HeaderValue, Adding)>,
}

/// Whether an added field stands in for the head's fields of its name.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Adding {
    /// The head's fields of this name are left out.
    Replacing,
    /// Sent after the head's fields of this name.
    Appending,
}

impl Added {
    /// Room for `n` fields.
    pub fn with_capacity(n: usize) -> Added {
        Added {
            fields: Vec::with_capacity(n),
        }
    }

    /// Adds `name: value`, replacing the head's fields of that name or
    /// after them.
    pub fn push(&mut self, name: HeaderName, value: HeaderValue, adding: Adding) {
        self.fields.push((name, value, adding));
    }

    /// Whether a field of the head named `name` gives way to one added.
    fn replaces(&self, name: &HeaderName) -> bool {
        self.fields
            .iter()
            .any(|(added, _, adding)| *adding == Adding::Replacing && added == name)
    }

    /// The fields, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.fields.iter().map(|(name, value, _)| (name, value))
    }
}

/// What sending a stream's body came to.
pub(crate) enum Polled {
    /// Waiting on the body or on the stream's own window.
    Pending,
    /// Waiting for room in the connection's window or write buffer.
    Blocked,
    /// The stream has ended on our side.
    Finished,
    /// The body failed.
    Failed,
}

/// A body being sent.
pub(crate) struct Sending<B> {
    body: B,
    /// Data taken from the body that the windows have not let out yet.
    held: Bytes,
    /// The body has nothing after `held` but, perhaps, `trailers`.
    ended: bool,
    trailers: Option<HeaderMap>,
}

impl<B> Sending<B> {
    pub(crate) fn new(body: B) -> Self {
        Sending {
            body,
            held: Bytes::new(),
            ended: false,
            trailers: None,
        }
    }
}

/// Sends what `sending`'s body has, within `stream_window` and the
/// connection's window, polling the body with `cx`.
pub(crate) fn poll_sending<B>(
    id: u32,
    sending: &mut Sending<B>,
    stream_window: &mut i64,
    out: &mut Out<'_>,
    cx: &mut Context<'_>,
) -> Polled
where
    B: HttpBody<Data = Bytes, Error: std::fmt::Display> + Unpin,
{
    loop {
        if !sending.held.is_empty() {
            let room = (*stream_window)
                .min(*out.send_window)
                .min(i64::from(out.max_frame_size));
            if room <= 0 {
                // The stream's own window reopens with its WINDOW_UPDATE,
                // which polls it again.
                return if *out.send_window <= 0 {
                    Polled::Blocked
                } else {
                    Polled::Pending
                };
            }
            let n = (room as usize).min(sending.held.len());
            let chunk = sending.held.split_to(n);
            let last = sending.held.is_empty() && sending.ended && sending.trailers.is_none();
            frame::write_data_head(out.buf, id, last, n);
            out.buf.extend_from_slice(&chunk);
            *stream_window -= n as i64;
            *out.send_window -= n as i64;
            if last {
                return Polled::Finished;
            }
            if out.buf.len() >= WRITE_HIGH_WATER {
                return Polled::Blocked;
            }
            continue;
        }
        if sending.ended {
            match sending.trailers.take() {
                Some(trailers) => {
                    write_head(out, id, |_, _| {}, &trailers, &Added::default(), true)
                }
                None => frame::write_data_head(out.buf, id, true, 0),
            }
            return Polled::Finished;
        }
        if out.buf.len() >= WRITE_HIGH_WATER {
            return Polled::Blocked;
        }
        match Pin::new(&mut sending.body).poll_frame(cx) {
            Poll::Pending => return Polled::Pending,
            Poll::Ready(None) => sending.ended = true,
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    sending.held = data;
                    sending.ended = sending.body.is_end_stream();
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        sending.trailers = Some(trailers);
                        sending.ended = true;
                    }
                }
            },
            Poll::Ready(Some(Err(e))) => {
                tracing::debug!(stream = id, error = %e, "body failed; resetting the stream");
                return Polled::Failed;
            }
        }
    }
}

/// Encodes a header block (the pseudo-header fields `pseudo` writes, then
/// `headers` without those HTTP/2 forbids or `added` replaces, then
/// `added`) into HEADERS, and CONTINUATIONs when it does not fit one frame.
pub(crate) fn write_head(
    out: &mut Out<'_>,
    id: u32,
    pseudo: impl FnOnce(&Encoder, &mut BytesMut),
    headers: &HeaderMap,
    added: &Added,
    end_stream: bool,
) {
    let at = out.buf.len();
    out.buf.put_bytes(0, frame::HEAD_LEN);
    out.encoder.start_block(out.buf);
    pseudo(out.encoder, out.buf);
    let some_added = !added.fields.is_empty();
    for (name, value) in headers {
        if is_connection_specific(name, value.as_bytes()) || (some_added && added.replaces(name)) {
            continue;
        }
        out.encoder.header(name, value, out.buf);
    }
    for (name, value) in added.iter() {
        if !is_connection_specific(name, value.as_bytes()) {
            out.encoder.header(name, value, out.buf);
        }
    }
    let len = out.buf.len() - at - frame::HEAD_LEN;
    if len <= out.max_frame_size as usize {
        frame::patch_headers_head(&mut out.buf[at..], len, id, end_stream);
    } else {
        let block = out.buf.split_off(at + frame::HEAD_LEN);
        out.buf.truncate(at);
        frame::write_headers(out.buf, id, end_stream, &block, out.max_frame_size);
    }
}

/// Fields HTTP/2 forbids (RFC 9113, section 8.2.2); `te` may only say
/// `trailers`.
pub(crate) fn is_connection_specific(name: &http::HeaderName, value: &[u8]) -> bool {
    match name.as_str() {
        "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "upgrade" => true,
        "te" => value != b"trailers",
        _ => false,
    }
}
