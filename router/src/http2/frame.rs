//! HTTP/2 frames (RFC 9113, sections 4 and 6): read out of a connection's
//! buffer without copying their payloads, and written into its output
//! buffer.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The connection preface a client sends first (section 3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The length of a frame's header.
pub const HEAD_LEN: usize = 9;

/// The smallest SETTINGS_MAX_FRAME_SIZE, which every peer accepts.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;

/// The largest flow-control window (section 6.9.1).
pub const MAX_WINDOW: u32 = (1 << 31) - 1;

/// The window every stream and connection starts with (section 6.9.2).
pub const DEFAULT_WINDOW: u32 = 65_535;

/// Error codes (section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reason(pub u32);

impl Reason {
    /// NO_ERROR
    pub const NO_ERROR: Reason = Reason(0x0);
    /// PROTOCOL_ERROR
    pub const PROTOCOL_ERROR: Reason = Reason(0x1);
    /// INTERNAL_ERROR
    pub const INTERNAL_ERROR: Reason = Reason(0x2);
    /// FLOW_CONTROL_ERROR
    pub const FLOW_CONTROL_ERROR: Reason = Reason(0x3);
    /// STREAM_CLOSED
    pub const STREAM_CLOSED: Reason = Reason(0x5);
    /// FRAME_SIZE_ERROR
    pub const FRAME_SIZE_ERROR: Reason = Reason(0x6);
    /// REFUSED_STREAM
    pub const REFUSED_STREAM: Reason = Reason(0x7);
    /// CANCEL
    pub const CANCEL: Reason = Reason(0x8);
    /// COMPRESSION_ERROR
    pub const COMPRESSION_ERROR: Reason = Reason(0x9);
    /// ENHANCE_YOUR_CALM
    pub const ENHANCE_YOUR_CALM: Reason = Reason(0xb);
}

/// A frame the peer got wrong: the connection ends with `reason` in a
/// GOAWAY, or, when `stream` is set, only that stream with RST_STREAM.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} (HTTP/2 error {code:#x})", code = reason.0)]
pub struct FrameError {
    /// The error code to send.
    pub reason: Reason,
    /// The stream to reset, when the error is the stream's alone.
    pub stream: Option<u32>,
    /// What was wrong, for the log.
    pub what: &'static str,
}

impl FrameError {
    fn connection(reason: Reason, what: &'static str) -> Self {
        FrameError {
            reason,
            stream: None,
            what,
        }
    }

    fn stream(stream: u32, reason: Reason, what: &'static str) -> Self {
        FrameError {
            reason,
            stream: Some(stream),
            what,
        }
    }
}

/// Frame types (section 6).
mod kind {
    pub(super) const DATA: u8 = 0x0;
    pub(super) const HEADERS: u8 = 0x1;
    pub(super) const PRIORITY: u8 = 0x2;
    pub(super) const RST_STREAM: u8 = 0x3;
    pub(super) const SETTINGS: u8 = 0x4;
    pub(super) const PUSH_PROMISE: u8 = 0x5;
    pub(super) const PING: u8 = 0x6;
    pub(super) const GOAWAY: u8 = 0x7;
    pub(super) const WINDOW_UPDATE: u8 = 0x8;
    pub(super) const CONTINUATION: u8 = 0x9;
}

/// Frame flags.
mod flag {
    pub(super) const END_STREAM: u8 = 0x1;
    pub(super) const ACK: u8 = 0x1;
    pub(super) const END_HEADERS: u8 = 0x4;
    pub(super) const PADDED: u8 = 0x8;
    pub(super) const PRIORITY: u8 = 0x20;
}

/// SETTINGS identifiers (section 6.5.2).
pub mod setting {
    /// SETTINGS_HEADER_TABLE_SIZE
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    /// SETTINGS_ENABLE_PUSH
    pub const ENABLE_PUSH: u16 = 0x2;
    /// SETTINGS_MAX_CONCURRENT_STREAMS
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    /// SETTINGS_INITIAL_WINDOW_SIZE
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    /// SETTINGS_MAX_FRAME_SIZE
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    /// SETTINGS_MAX_HEADER_LIST_SIZE
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
}

/// The settings a peer sent in one SETTINGS frame; `None` for those it
/// left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settings {
    /// SETTINGS_HEADER_TABLE_SIZE
    pub header_table_size: Option<u32>,
    /// SETTINGS_ENABLE_PUSH
    pub enable_push: Option<bool>,
    /// SETTINGS_MAX_CONCURRENT_STREAMS
    pub max_concurrent_streams: Option<u32>,
    /// SETTINGS_INITIAL_WINDOW_SIZE
    pub initial_window_size: Option<u32>,
    /// SETTINGS_MAX_FRAME_SIZE
    pub max_frame_size: Option<u32>,
    /// SETTINGS_MAX_HEADER_LIST_SIZE
    pub max_header_list_size: Option<u32>,
}

/// One frame as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// DATA: `flow_len` is what the frame counts against flow control,
    /// padding included.
    Data {
        /// Its stream.
        stream: u32,
        /// END_STREAM was set.
        end_stream: bool,
        /// The payload without padding.
        data: Bytes,
        /// The whole payload's length.
        flow_len: u32,
    },
    /// HEADERS, its priority fields and padding taken off.
    Headers {
        /// Its stream.
        stream: u32,
        /// END_STREAM was set.
        end_stream: bool,
        /// END_HEADERS was set: no CONTINUATION follows.
        end_headers: bool,
        /// The header block fragment.
        fragment: Bytes,
    },
    /// CONTINUATION.
    Continuation {
        /// Its stream.
        stream: u32,
        /// END_HEADERS was set.
        end_headers: bool,
        /// The header block fragment.
        fragment: Bytes,
    },
    /// RST_STREAM.
    Reset {
        /// Its stream.
        stream: u32,
        /// The error code.
        reason: Reason,
    },
    /// SETTINGS without ACK.
    Settings(Settings),
    /// SETTINGS with ACK.
    SettingsAck,
    /// PING.
    Ping {
        /// ACK was set.
        ack: bool,
        /// The opaque data to echo.
        payload: [u8; 8],
    },
    /// GOAWAY.
    GoAway {
        /// The last stream the peer may have acted on.
        last_stream: u32,
        /// The error code.
        reason: Reason,
    },
    /// WINDOW_UPDATE; stream 0 is the connection.
    WindowUpdate {
        /// Its stream.
        stream: u32,
        /// The increment, never 0.
        increment: u32,
    },
    /// PUSH_PROMISE: a server's, which this router never allows.
    PushPromise {
        /// Its stream.
        stream: u32,
    },
    /// PRIORITY, and frames of unknown types: read and ignored.
    Ignored,
}

/// Reads the next whole frame off the front of `buf`, or `Ok(None)` when
/// `buf` does not hold one yet. `max_frame_size` is the
/// SETTINGS_MAX_FRAME_SIZE we sent.
pub fn read(buf: &mut BytesMut, max_frame_size: u32) -> Result<Option<Frame>, FrameError> {
    if buf.len() < HEAD_LEN {
        return Ok(None);
    }
    let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]);
    if len > max_frame_size {
        return Err(FrameError::connection(
            Reason::FRAME_SIZE_ERROR,
            "frame larger than SETTINGS_MAX_FRAME_SIZE",
        ));
    }
    if buf.len() < HEAD_LEN + len as usize {
        buf.reserve(HEAD_LEN + len as usize - buf.len());
        return Ok(None);
    }
    let kind = buf[3];
    let flags = buf[4];
    let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & MAX_WINDOW;
    buf.advance(HEAD_LEN);
    let payload = buf.split_to(len as usize).freeze();
    parse(kind, flags, stream, payload).map(Some)
}

fn parse(kind: u8, flags: u8, stream: u32, mut payload: Bytes) -> Result<Frame, FrameError> {
    let on_stream = |what| {
        if stream == 0 {
            Err(FrameError::connection(Reason::PROTOCOL_ERROR, what))
        } else {
            Ok(())
        }
    };
    let on_connection = |what| {
        if stream != 0 {
            Err(FrameError::connection(Reason::PROTOCOL_ERROR, what))
        } else {
            Ok(())
        }
    };
    Ok(match kind {
        kind::DATA => {
            on_stream("DATA on stream 0")?;
            let flow_len = payload.len() as u32;
            let data = unpad(flags, payload)?;
            Frame::Data {
                stream,
                end_stream: flags & flag::END_STREAM != 0,
                data,
                flow_len,
            }
        }
        kind::HEADERS => {
            on_stream("HEADERS on stream 0")?;
            let mut fragment = unpad(flags, payload)?;
            if flags & flag::PRIORITY != 0 {
                if fragment.len() < 5 {
                    return Err(FrameError::connection(
                        Reason::FRAME_SIZE_ERROR,
                        "HEADERS too short for its priority",
                    ));
                }
                let depends_on =
                    u32::from_be_bytes([fragment[0], fragment[1], fragment[2], fragment[3]])
                        & MAX_WINDOW;
                if depends_on == stream {
                    return Err(FrameError::stream(
                        stream,
                        Reason::PROTOCOL_ERROR,
                        "stream depends on itself",
                    ));
                }
                fragment.advance(5);
            }
            Frame::Headers {
                stream,
                end_stream: flags & flag::END_STREAM != 0,
                end_headers: flags & flag::END_HEADERS != 0,
                fragment,
            }
        }
        kind::PRIORITY => {
            on_stream("PRIORITY on stream 0")?;
            if payload.len() != 5 {
                return Err(FrameError::stream(
                    stream,
                    Reason::FRAME_SIZE_ERROR,
                    "PRIORITY not 5 bytes",
                ));
            }
            let depends_on =
                u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & MAX_WINDOW;
            if depends_on == stream {
                return Err(FrameError::stream(
                    stream,
                    Reason::PROTOCOL_ERROR,
                    "stream depends on itself",
                ));
            }
            Frame::Ignored
        }
        kind::RST_STREAM => {
            on_stream("RST_STREAM on stream 0")?;
            if payload.len() != 4 {
                return Err(FrameError::connection(
                    Reason::FRAME_SIZE_ERROR,
                    "RST_STREAM not 4 bytes",
                ));
            }
            Frame::Reset {
                stream,
                reason: Reason(payload.get_u32()),
            }
        }
        kind::SETTINGS => {
            on_connection("SETTINGS on a stream")?;
            if flags & flag::ACK != 0 {
                if !payload.is_empty() {
                    return Err(FrameError::connection(
                        Reason::FRAME_SIZE_ERROR,
                        "SETTINGS ACK with a payload",
                    ));
                }
                Frame::SettingsAck
            } else {
                Frame::Settings(settings(payload)?)
            }
        }
        kind::PUSH_PROMISE => Frame::PushPromise { stream },
        kind::PING => {
            on_connection("PING on a stream")?;
            let payload: [u8; 8] = payload[..].try_into().map_err(|_| {
                FrameError::connection(Reason::FRAME_SIZE_ERROR, "PING not 8 bytes")
            })?;
            Frame::Ping {
                ack: flags & flag::ACK != 0,
                payload,
            }
        }
        kind::GOAWAY => {
            on_connection("GOAWAY on a stream")?;
            if payload.len() < 8 {
                return Err(FrameError::connection(
                    Reason::FRAME_SIZE_ERROR,
                    "GOAWAY shorter than 8 bytes",
                ));
            }
            Frame::GoAway {
                last_stream: payload.get_u32() & MAX_WINDOW,
                reason: Reason(payload.get_u32()),
            }
        }
        kind::WINDOW_UPDATE => {
            if payload.len() != 4 {
                return Err(FrameError::connection(
                    Reason::FRAME_SIZE_ERROR,
                    "WINDOW_UPDATE not 4 bytes",
                ));
            }
            let increment = payload.get_u32() & MAX_WINDOW;
            if increment == 0 {
                let what = "WINDOW_UPDATE of 0";
                return Err(if stream == 0 {
                    FrameError::connection(Reason::PROTOCOL_ERROR, what)
                } else {
                    FrameError::stream(stream, Reason::PROTOCOL_ERROR, what)
                });
            }
            Frame::WindowUpdate { stream, increment }
        }
        kind::CONTINUATION => {
            on_stream("CONTINUATION on stream 0")?;
            Frame::Continuation {
                stream,
                end_headers: flags & flag::END_HEADERS != 0,
                fragment: payload,
            }
        }
        _ => Frame::Ignored,
    })
}

/// Takes a padded payload's length byte and padding off.
fn unpad(flags: u8, mut payload: Bytes) -> Result<Bytes, FrameError> {
    if flags & flag::PADDED == 0 {
        return Ok(payload);
    }
    let Some(&pad) = payload.first() else {
        return Err(FrameError::connection(
            Reason::FRAME_SIZE_ERROR,
            "padded frame without its pad length",
        ));
    };
    let pad = usize::from(pad);
    if pad >= payload.len() {
        return Err(FrameError::connection(
            Reason::PROTOCOL_ERROR,
            "padding longer than the frame",
        ));
    }
    payload.advance(1);
    payload.truncate(payload.len() - pad);
    Ok(payload)
}

fn settings(mut payload: Bytes) -> Result<Settings, FrameError> {
    if !payload.len().is_multiple_of(6) {
        return Err(FrameError::connection(
            Reason::FRAME_SIZE_ERROR,
            "SETTINGS not a multiple of 6 bytes",
        ));
    }
    let mut settings = Settings::default();
    while payload.has_remaining() {
        let id = payload.get_u16();
        let value = payload.get_u32();
        match id {
            setting::HEADER_TABLE_SIZE => settings.header_table_size = Some(value),
            setting::ENABLE_PUSH => {
                settings.enable_push = Some(match value {
                    0 => false,
                    1 => true,
                    _ => {
                        return Err(FrameError::connection(
                            Reason::PROTOCOL_ERROR,
                            "SETTINGS_ENABLE_PUSH not 0 or 1",
                        ));
                    }
                });
            }
            setting::MAX_CONCURRENT_STREAMS => settings.max_concurrent_streams = Some(value),
            setting::INITIAL_WINDOW_SIZE => {
                if value > MAX_WINDOW {
                    return Err(FrameError::connection(
                        Reason::FLOW_CONTROL_ERROR,
                        "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1",
                    ));
                }
                settings.initial_window_size = Some(value);
            }
            setting::MAX_FRAME_SIZE => {
                if !(DEFAULT_MAX_FRAME_SIZE..=(1 << 24) - 1).contains(&value) {
                    return Err(FrameError::connection(
                        Reason::PROTOCOL_ERROR,
                        "SETTINGS_MAX_FRAME_SIZE out of range",
                    ));
                }
                settings.max_frame_size = Some(value);
            }
            setting::MAX_HEADER_LIST_SIZE => settings.max_header_list_size = Some(value),
            // Unknown settings are ignored (section 6.5.2).
            _ => {}
        }
    }
    Ok(settings)
}

fn head(dst: &mut BytesMut, len: usize, kind: u8, flags: u8, stream: u32) {
    // Callers keep `len` below 2^24.
    dst.put_uint(len as u64, 3);
    dst.put_u8(kind);
    dst.put_u8(flags);
    dst.put_u32(stream);
}

/// Writes a header block as HEADERS and as many CONTINUATIONs as
/// `max_frame_size` needs.
pub fn write_headers(
    dst: &mut BytesMut,
    stream: u32,
    end_stream: bool,
    block: &[u8],
    max_frame_size: u32,
) {
    let max = max_frame_size as usize;
    let mut chunks = block.chunks(max).peekable();
    let first = chunks.next().unwrap_or(&[]);
    let mut flags = if end_stream { flag::END_STREAM } else { 0 };
    if chunks.peek().is_none() {
        flags |= flag::END_HEADERS;
    }
    head(dst, first.len(), kind::HEADERS, flags, stream);
    dst.extend_from_slice(first);
    while let Some(chunk) = chunks.next() {
        let flags = if chunks.peek().is_none() {
            flag::END_HEADERS
        } else {
            0
        };
        head(dst, chunk.len(), kind::CONTINUATION, flags, stream);
        dst.extend_from_slice(chunk);
    }
}

/// Writes a HEADERS frame's head over the 9 bytes at the start of `dst`,
/// kept free for it while its header block was encoded after them.
pub fn patch_headers_head(dst: &mut [u8], len: usize, stream: u32, end_stream: bool) {
    let flags = flag::END_HEADERS | if end_stream { flag::END_STREAM } else { 0 };
    let len = (len as u32).to_be_bytes();
    dst[..3].copy_from_slice(&len[1..]);
    dst[3] = kind::HEADERS;
    dst[4] = flags;
    dst[5..HEAD_LEN].copy_from_slice(&stream.to_be_bytes());
}

/// Writes the head of a DATA frame whose `len` bytes of payload the caller
/// sends next (at most the peer's SETTINGS_MAX_FRAME_SIZE).
pub fn write_data_head(dst: &mut BytesMut, stream: u32, end_stream: bool, len: usize) {
    head(
        dst,
        len,
        kind::DATA,
        if end_stream { flag::END_STREAM } else { 0 },
        stream,
    );
}

/// Writes SETTINGS with the given values.
pub fn write_settings(dst: &mut BytesMut, values: &[(u16, u32)]) {
    head(dst, values.len() * 6, kind::SETTINGS, 0, 0);
    for &(id, value) in values {
        dst.put_u16(id);
        dst.put_u32(value);
    }
}

/// Writes a SETTINGS ACK.
pub fn write_settings_ack(dst: &mut BytesMut) {
    head(dst, 0, kind::SETTINGS, flag::ACK, 0);
}

/// Writes a PING, or its answer.
pub fn write_ping(dst: &mut BytesMut, ack: bool, payload: [u8; 8]) {
    head(dst, 8, kind::PING, if ack { flag::ACK } else { 0 }, 0);
    dst.extend_from_slice(&payload);
}

/// Writes a WINDOW_UPDATE; stream 0 is the connection's window.
pub fn write_window_update(dst: &mut BytesMut, stream: u32, increment: u32) {
    head(dst, 4, kind::WINDOW_UPDATE, 0, stream);
    dst.put_u32(increment);
}

/// Writes RST_STREAM.
pub fn write_reset(dst: &mut BytesMut, stream: u32, reason: Reason) {
    head(dst, 4, kind::RST_STREAM, 0, stream);
    dst.put_u32(reason.0);
}

/// Writes GOAWAY.
pub fn write_goaway(dst: &mut BytesMut, last_stream: u32, reason: Reason) {
    head(dst, 8, kind::GOAWAY, 0, 0);
    dst.put_u32(last_stream);
    dst.put_u32(reason.0);
}

#[cfg(test)]
mod tests;
