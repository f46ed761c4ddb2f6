//! Finagle's mux framing, as far as a ThriftMux server and client need
//! it. A frame is a 4-byte big-endian size, then a 1-byte type and a
//! 3-byte tag, then the body; the tag's top bit marks a fragment whose
//! message continues in the next frame with the same tag.
//!
//! [`is_mux`] tells a mux session from plain framed Thrift by its first
//! frame, as Finagle's ThriftMux server does: a strict Thrift call starts
//! with `0x80 0x01 0x00 0x01`, which reads as an `Rerr` with tag 0x010001,
//! something no mux client sends first.

use super::protocol::DecodeError;

/// Message type codes.
pub mod kind {
    /// A request (the old form, without contexts).
    pub const TREQ: i8 = 1;
    /// Answer to a `Treq`.
    pub const RREQ: i8 = -1;
    /// A request with contexts, destination and dtab.
    pub const TDISPATCH: i8 = 2;
    /// Answer to a `Tdispatch`.
    pub const RDISPATCH: i8 = -2;
    /// The server asks the client to send no more requests.
    pub const TDRAIN: i8 = 64;
    /// The client's answer to a `Tdrain`.
    pub const RDRAIN: i8 = -64;
    /// Liveness check.
    pub const TPING: i8 = 65;
    /// Answer to a `Tping`.
    pub const RPING: i8 = -65;
    /// The client gave up on a request.
    pub const TDISCARDED: i8 = 66;
    /// The server dropped the discarded request.
    pub const RDISCARDED: i8 = -66;
    /// A lease (server to client).
    pub const TLEASE: i8 = 67;
    /// Session negotiation.
    pub const TINIT: i8 = 68;
    /// Answer to a `Tinit`.
    pub const RINIT: i8 = -68;
    /// An error answer to any message.
    pub const RERR: i8 = -128;
    /// The `Tdiscarded` code older implementations send.
    pub const BAD_TDISCARDED: i8 = -62;
    /// The `Rerr` code older implementations send (Finagle still sends it).
    pub const BAD_RERR: i8 = 127;
}

/// Reply status of an `Rdispatch` or `Rreq`.
pub mod status {
    /// The body is the answer.
    pub const OK: u8 = 0;
    /// The body is an error message.
    pub const ERROR: u8 = 1;
    /// The request was refused and may be retried elsewhere.
    pub const NACK: u8 = 2;
}

/// The tag a client's `Tinit` and the `Rerr` probe before it use.
pub const TINIT_TAG: u32 = 1;
/// The message of the `Rerr` a client sends to ask whether the server
/// can take a `Tinit`; a server that can echoes it.
pub const CAN_TINIT: &str = "tinit check";
/// The tag of control messages (`Tdrain`, pings).
pub const CONTROL_TAG: u32 = 1;
/// The largest tag.
pub const MAX_TAG: u32 = (1 << 23) - 1;
/// The version of mux this side speaks in `Tinit`/`Rinit`.
pub const VERSION: u16 = 1;
const FRAGMENT_BIT: u32 = 1 << 23;

/// A mux message.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// A request in the old form; `body` is the Thrift message.
    Treq {
        /// The request's tag.
        tag: u32,
        /// The Thrift message.
        body: Vec<u8>,
    },
    /// Answer to a `Treq`.
    Rreq {
        /// The request's tag.
        tag: u32,
        /// One of [`status`].
        status: u8,
        /// The Thrift reply, or an error message.
        body: Vec<u8>,
    },
    /// A request.
    Tdispatch {
        /// The request's tag.
        tag: u32,
        /// Broadcast contexts (deadline, retries, trace ids...).
        contexts: Vec<(Vec<u8>, Vec<u8>)>,
        /// The destination path (text), often empty.
        dst: String,
        /// The request's dtab, as (prefix, tree) texts.
        dtab: Vec<(String, String)>,
        /// The Thrift message.
        body: Vec<u8>,
    },
    /// Answer to a `Tdispatch`.
    Rdispatch {
        /// The request's tag.
        tag: u32,
        /// One of [`status`].
        status: u8,
        /// Contexts sent back.
        contexts: Vec<(Vec<u8>, Vec<u8>)>,
        /// The Thrift reply, or an error message.
        body: Vec<u8>,
    },
    /// The server asks the client to send no more requests.
    Tdrain {
        /// Its tag.
        tag: u32,
    },
    /// The client will send no more requests.
    Rdrain {
        /// Its tag.
        tag: u32,
    },
    /// Liveness check.
    Tping {
        /// Its tag.
        tag: u32,
    },
    /// Answer to a `Tping`.
    Rping {
        /// Its tag.
        tag: u32,
    },
    /// The client gave up on request `which`.
    Tdiscarded {
        /// The tag of the request given up.
        which: u32,
        /// Why.
        why: String,
    },
    /// The server dropped request `tag`.
    Rdiscarded {
        /// The tag of the request dropped.
        tag: u32,
    },
    /// A lease.
    Tlease {
        /// 0: `how_long` is a duration in milliseconds.
        unit: u8,
        /// The lease.
        how_long: i64,
    },
    /// Session negotiation.
    Tinit {
        /// Its tag.
        tag: u32,
        /// The mux version.
        version: u16,
        /// Negotiation headers.
        headers: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// Answer to a `Tinit`.
    Rinit {
        /// Its tag.
        tag: u32,
        /// The mux version.
        version: u16,
        /// Negotiation headers.
        headers: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// An error answer.
    Rerr {
        /// The tag of the message answered.
        tag: u32,
        /// What went wrong.
        message: String,
    },
}

/// A frame's header: type, tag, and whether more fragments follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The message type.
    pub kind: i8,
    /// The tag, without the fragment bit.
    pub tag: u32,
    /// Another frame with the rest of the message follows.
    pub fragment: bool,
}

/// Splits a frame (without its size) into header and body.
pub fn split(frame: &[u8]) -> Result<(Header, &[u8]), DecodeError> {
    let Some((head, body)) = frame.split_first_chunk::<4>() else {
        return Err(DecodeError {
            offset: 0,
            reason: format!("a mux frame of {} bytes has no header", frame.len()),
        });
    };
    let tag = u32::from_be_bytes([0, head[1], head[2], head[3]]);
    Ok((
        Header {
            kind: i8::from_be_bytes([head[0]]),
            tag: tag & !FRAGMENT_BIT,
            fragment: tag & FRAGMENT_BIT != 0,
        },
        body,
    ))
}

/// Whether the first frame of a connection (without its size) opens a mux
/// session rather than plain framed Thrift.
pub fn is_mux(first: &[u8]) -> bool {
    let Ok((header, _)) = split(first) else {
        return false;
    };
    if matches!(header.kind, kind::RERR | kind::BAD_RERR)
        && (header.tag == 0x01_0001 || header.tag == 0x01_0004)
        && !header.fragment
    {
        // A strict Thrift CALL or ONEWAY header.
        return false;
    }
    header.fragment || decode(first).is_ok()
}

/// Key-value pairs (contexts, init headers).
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Reads a frame body.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn error(&self, reason: String) -> DecodeError {
        // Offsets count from the frame's type byte.
        DecodeError {
            offset: self.pos + 4,
            reason,
        }
    }

    fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        let left = self.buf.len() - self.pos;
        if left < len {
            return Err(self.error(format!("{what} needs {len} bytes, {left} left")));
        }
        let out = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, DecodeError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Bytes preceded by a 2-byte length.
    fn short_bytes(&mut self, what: &str) -> Result<&'a [u8], DecodeError> {
        let len = self.u16(what)?;
        self.take(usize::from(len), what)
    }

    /// Bytes preceded by a 4-byte length.
    fn long_bytes(&mut self, what: &str) -> Result<&'a [u8], DecodeError> {
        let len = self.u32(what)?;
        let len = usize::try_from(len).map_err(|_| self.error(format!("{what} too long")))?;
        self.take(len, what)
    }

    fn text(&mut self, bytes: &[u8], what: &str) -> Result<String, DecodeError> {
        String::from_utf8(bytes.to_vec()).map_err(|_| self.error(format!("{what} is not UTF-8")))
    }

    fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    fn pairs(&mut self, count: usize, what: &str) -> Result<Pairs, DecodeError> {
        // Each pair takes at least 4 bytes: bound the allocation by what
        // is there.
        let mut out = Vec::with_capacity(count.min((self.buf.len() - self.pos) / 4));
        for _ in 0..count {
            let k = self.short_bytes(what)?.to_vec();
            let v = self.short_bytes(what)?.to_vec();
            out.push((k, v));
        }
        Ok(out)
    }
}

/// Reads a whole message from a frame (without its size). Fragments must
/// have been joined first (see [`split`]).
pub fn decode(frame: &[u8]) -> Result<Message, DecodeError> {
    let (header, body) = split(frame)?;
    if header.fragment {
        return Err(DecodeError {
            offset: 1,
            reason: "a fragment where a whole message was expected".into(),
        });
    }
    decode_body(header.kind, header.tag, body)
}

/// Reads a message from its type, tag and body.
pub fn decode_body(kind: i8, tag: u32, body: &[u8]) -> Result<Message, DecodeError> {
    let mut c = Cursor { buf: body, pos: 0 };
    Ok(match kind {
        kind::TREQ => {
            let keys = c.u8("Treq keys")?;
            for _ in 0..keys {
                c.u8("Treq key")?;
                let len = c.u8("Treq value size")?;
                c.take(usize::from(len), "Treq value")?;
            }
            Message::Treq {
                tag,
                body: c.rest().to_vec(),
            }
        }
        kind::RREQ => Message::Rreq {
            tag,
            status: c.u8("Rreq status")?,
            body: c.rest().to_vec(),
        },
        kind::TDISPATCH => {
            let n = c.u16("Tdispatch contexts")?;
            let contexts = c.pairs(usize::from(n), "a Tdispatch context")?;
            let dst = c.short_bytes("Tdispatch dst")?;
            let dst = c.text(dst, "Tdispatch dst")?;
            let n = c.u16("Tdispatch dtab")?;
            let mut dtab = Vec::new();
            for (k, v) in c.pairs(usize::from(n), "a Tdispatch dentry")? {
                let k = c.text(&k, "a dentry prefix")?;
                let v = c.text(&v, "a dentry tree")?;
                dtab.push((k, v));
            }
            Message::Tdispatch {
                tag,
                contexts,
                dst,
                dtab,
                body: c.rest().to_vec(),
            }
        }
        kind::RDISPATCH => {
            let status = c.u8("Rdispatch status")?;
            let n = c.u16("Rdispatch contexts")?;
            let contexts = c.pairs(usize::from(n), "an Rdispatch context")?;
            Message::Rdispatch {
                tag,
                status,
                contexts,
                body: c.rest().to_vec(),
            }
        }
        kind::TDRAIN => Message::Tdrain { tag },
        kind::RDRAIN => Message::Rdrain { tag },
        kind::TPING => Message::Tping { tag },
        kind::RPING => Message::Rping { tag },
        kind::TDISCARDED | kind::BAD_TDISCARDED => {
            let which = c.take(3, "Tdiscarded tag")?;
            let which = u32::from_be_bytes([0, which[0], which[1], which[2]]);
            let why = c.rest();
            let why = String::from_utf8_lossy(why).into_owned();
            Message::Tdiscarded { which, why }
        }
        kind::RDISCARDED => Message::Rdiscarded { tag },
        kind::TLEASE => {
            let unit = c.u8("Tlease unit")?;
            let b = c.take(8, "Tlease length")?;
            let mut eight = [0; 8];
            eight.copy_from_slice(b);
            Message::Tlease {
                unit,
                how_long: i64::from_be_bytes(eight),
            }
        }
        kind::TINIT | kind::RINIT => {
            let version = c.u16("init version")?;
            let mut headers = Vec::new();
            while c.pos < body.len() {
                let k = c.long_bytes("an init header key")?.to_vec();
                let v = c.long_bytes("an init header value")?.to_vec();
                headers.push((k, v));
            }
            if kind == kind::TINIT {
                Message::Tinit {
                    tag,
                    version,
                    headers,
                }
            } else {
                Message::Rinit {
                    tag,
                    version,
                    headers,
                }
            }
        }
        kind::RERR | kind::BAD_RERR => Message::Rerr {
            tag,
            message: String::from_utf8_lossy(c.rest()).into_owned(),
        },
        other => {
            return Err(DecodeError {
                offset: 0,
                reason: format!("unknown mux message type {other}"),
            });
        }
    })
}

fn put_short(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes[..usize::from(len)]);
}

fn put_long(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

fn put_pairs(out: &mut Vec<u8>, pairs: &[(Vec<u8>, Vec<u8>)]) {
    let n = u16::try_from(pairs.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&n.to_be_bytes());
    for (k, v) in pairs.iter().take(usize::from(n)) {
        put_short(out, k);
        put_short(out, v);
    }
}

impl Message {
    /// The message's type code (`Rerr` and `Tdiscarded` in the codes
    /// Finagle sends).
    pub fn kind(&self) -> i8 {
        match self {
            Message::Treq { .. } => kind::TREQ,
            Message::Rreq { .. } => kind::RREQ,
            Message::Tdispatch { .. } => kind::TDISPATCH,
            Message::Rdispatch { .. } => kind::RDISPATCH,
            Message::Tdrain { .. } => kind::TDRAIN,
            Message::Rdrain { .. } => kind::RDRAIN,
            Message::Tping { .. } => kind::TPING,
            Message::Rping { .. } => kind::RPING,
            Message::Tdiscarded { .. } => kind::BAD_TDISCARDED,
            Message::Rdiscarded { .. } => kind::RDISCARDED,
            Message::Tlease { .. } => kind::TLEASE,
            Message::Tinit { .. } => kind::TINIT,
            Message::Rinit { .. } => kind::RINIT,
            Message::Rerr { .. } => kind::BAD_RERR,
        }
    }

    /// The message's tag (0 for `Tdiscarded` and `Tlease`).
    pub fn tag(&self) -> u32 {
        match self {
            Message::Treq { tag, .. }
            | Message::Rreq { tag, .. }
            | Message::Tdispatch { tag, .. }
            | Message::Rdispatch { tag, .. }
            | Message::Tdrain { tag }
            | Message::Rdrain { tag }
            | Message::Tping { tag }
            | Message::Rping { tag }
            | Message::Rdiscarded { tag }
            | Message::Tinit { tag, .. }
            | Message::Rinit { tag, .. }
            | Message::Rerr { tag, .. } => *tag,
            Message::Tdiscarded { .. } | Message::Tlease { .. } => 0,
        }
    }

    /// The whole frame, its 4-byte size first. Lengths that do not fit
    /// their fields are cut (nothing this side sends comes near).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![0; 4];
        out.push(self.kind().to_be_bytes()[0]);
        out.extend_from_slice(&(self.tag() & MAX_TAG).to_be_bytes()[1..]);
        match self {
            Message::Treq { body, .. } => {
                out.push(0);
                out.extend_from_slice(body);
            }
            Message::Rreq { status, body, .. } => {
                out.push(*status);
                out.extend_from_slice(body);
            }
            Message::Tdispatch {
                contexts,
                dst,
                dtab,
                body,
                ..
            } => {
                put_pairs(&mut out, contexts);
                put_short(&mut out, dst.as_bytes());
                let n = u16::try_from(dtab.len()).unwrap_or(u16::MAX);
                out.extend_from_slice(&n.to_be_bytes());
                for (k, v) in dtab.iter().take(usize::from(n)) {
                    put_short(&mut out, k.as_bytes());
                    put_short(&mut out, v.as_bytes());
                }
                out.extend_from_slice(body);
            }
            Message::Rdispatch {
                status,
                contexts,
                body,
                ..
            } => {
                out.push(*status);
                put_pairs(&mut out, contexts);
                out.extend_from_slice(body);
            }
            Message::Tdrain { .. }
            | Message::Rdrain { .. }
            | Message::Tping { .. }
            | Message::Rping { .. }
            | Message::Rdiscarded { .. } => {}
            Message::Tdiscarded { which, why } => {
                out.extend_from_slice(&(which & MAX_TAG).to_be_bytes()[1..]);
                out.extend_from_slice(why.as_bytes());
            }
            Message::Tlease { unit, how_long } => {
                out.push(*unit);
                out.extend_from_slice(&how_long.to_be_bytes());
            }
            Message::Tinit {
                version, headers, ..
            }
            | Message::Rinit {
                version, headers, ..
            } => {
                out.extend_from_slice(&version.to_be_bytes());
                for (k, v) in headers {
                    put_long(&mut out, k);
                    put_long(&mut out, v);
                }
            }
            Message::Rerr { message, .. } => out.extend_from_slice(message.as_bytes()),
        }
        let size = u32::try_from(out.len() - 4).unwrap_or(u32::MAX);
        out[..4].copy_from_slice(&size.to_be_bytes());
        out
    }
}
