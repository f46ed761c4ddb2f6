//! Following the request heads in the bytes hyper reads from an HTTP/1
//! connection, to check each one as the router's own server checks its own
//! ([`super::limits`]).
//!
//! hyper does not show a request's raw head: it drops a `Content-Length`
//! that comes with `Transfer-Encoding`, keeps two `Host` fields, and cannot
//! tell a long request line from a large header section. So the bytes are
//! watched on their way in: a head is parsed, its body skipped (by
//! `Content-Length` or chunk by chunk), and the next head parsed, as hyper
//! does. A head found wrong is reported with its number on the connection;
//! the service refuses that request before routing it. After an upgrade,
//! HTTP/2, or a head hyper will refuse itself, nothing more is followed.

use super::limits::{Framing, HeadLimits, Refusal};

/// The most fields a head may have (hyper's limit, which answers 431).
const MAX_FIELDS: usize = 100;

/// How an HTTP/2 connection starts (RFC 9113 §3.4).
const H2_PREFACE_START: &[u8] = b"PRI * HTTP/2";

/// What the watch reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// The head of the connection's request number `ordinal` (from 0) is
    /// refused.
    Refused {
        /// Which request.
        ordinal: u64,
        /// Why.
        refusal: Refusal,
    },
    /// The connection speaks HTTP/2.
    Http2,
}

/// The state of one connection's incoming bytes.
pub(crate) struct HeadWatch {
    limits: HeadLimits,
    /// The most bytes a head may take before hyper refuses it.
    max_head: usize,
    state: State,
    /// The head read so far.
    head: Vec<u8>,
    /// Heads seen so far.
    heads: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    /// This many bytes of a body are still to come.
    Body(u64),
    Chunked(Chunk),
    /// Nothing more is followed.
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// A chunk's size line: the size so far, whether a digit came, and
    /// whether the rest of the line is to be skipped (an extension).
    Size { size: u64, digits: bool, skip: bool },
    /// This many bytes of a chunk's data are still to come.
    Data(u64),
    /// The line end after a chunk's data.
    DataEnd,
    /// The trailer section; how many bytes the current line has.
    Trailer { line: usize },
}

const NEW_CHUNK: Chunk = Chunk::Size {
    size: 0,
    digits: false,
    skip: false,
};

impl HeadWatch {
    /// A watch for a connection whose heads may be `max_head` bytes before
    /// hyper refuses them.
    pub(crate) fn new(limits: HeadLimits, max_head: usize) -> HeadWatch {
        HeadWatch {
            limits,
            max_head,
            state: State::Head,
            head: Vec::new(),
            heads: 0,
        }
    }

    /// Follows `bytes`, the next bytes read from the connection.
    pub(crate) fn feed(&mut self, mut bytes: &[u8], events: &mut impl FnMut(Event)) {
        while !bytes.is_empty() && self.state != State::Off {
            let used = self.step(bytes, events);
            bytes = &bytes[used..];
        }
    }

    /// Takes what it can of `bytes` in the current state; how many.
    fn step(&mut self, bytes: &[u8], events: &mut impl FnMut(Event)) -> usize {
        match self.state {
            State::Off => bytes.len(),
            State::Head => self.head_bytes(bytes, events),
            State::Body(left) => {
                let used = usize::try_from(left).map_or(bytes.len(), |l| l.min(bytes.len()));
                let left = left - used as u64;
                self.state = if left == 0 {
                    State::Head
                } else {
                    State::Body(left)
                };
                used
            }
            State::Chunked(Chunk::Data(left)) => {
                let used = usize::try_from(left).map_or(bytes.len(), |l| l.min(bytes.len()));
                let left = left - used as u64;
                self.state = State::Chunked(if left == 0 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left)
                });
                used
            }
            State::Chunked(chunk) => {
                self.state = chunk_byte(chunk, bytes[0]);
                1
            }
        }
    }

    fn head_bytes(&mut self, bytes: &[u8], events: &mut impl FnMut(Event)) -> usize {
        if self.head.is_empty() {
            // A head usually comes whole in one read: it is parsed where it
            // is, and only a partial one is kept. (Copying every read would
            // copy the body that came with the head, 16 KiB of a POST.)
            let (used, done) = self.parse_head(bytes, 0, events);
            if !done {
                self.head.extend_from_slice(bytes);
            }
            return used;
        }
        let before = self.head.len();
        self.head.extend_from_slice(bytes);
        let head = std::mem::take(&mut self.head);
        let (used, done) = self.parse_head(&head, before, events);
        self.head = head;
        if done {
            // A large head gives its memory back.
            self.head.clear();
            if self.head.capacity() > 4096 {
                self.head = Vec::new();
            }
        }
        used
    }

    /// Parses `head`, whose first `before` bytes came in earlier reads;
    /// how many of the new bytes it used, and whether the head is done
    /// with (complete, or not followed further).
    fn parse_head(
        &mut self,
        head: &[u8],
        before: usize,
        events: &mut impl FnMut(Event),
    ) -> (usize, bool) {
        let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
        let mut request = httparse::Request::new(&mut fields);
        let new_bytes = head.len() - before;
        match request.parse(head) {
            Ok(httparse::Status::Complete(len)) => {
                self.state = self.head_done(&request, &head[..len], events);
                (len.saturating_sub(before), true)
            }
            Ok(httparse::Status::Partial) => {
                if head.starts_with(H2_PREFACE_START) {
                    events(Event::Http2);
                    self.state = State::Off;
                    (new_bytes, true)
                } else if head.len() > self.max_head {
                    // hyper answers 431 and closes.
                    self.state = State::Off;
                    (new_bytes, true)
                } else {
                    self.state = State::Head;
                    (new_bytes, false)
                }
            }
            Err(_) => {
                if head.starts_with(H2_PREFACE_START) {
                    events(Event::Http2);
                }
                // hyper answers 400 (or 431) and closes.
                self.state = State::Off;
                (new_bytes, true)
            }
        }
    }

    /// Checks a whole head and says what follows it.
    fn head_done(
        &mut self,
        request: &httparse::Request<'_, '_>,
        head: &[u8],
        events: &mut impl FnMut(Event),
    ) -> State {
        let ordinal = self.heads;
        self.heads += 1;
        // Empty lines before the request line are skipped, as hyper does.
        let start = head
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .unwrap_or(0);
        let head = &head[start..];
        let line_at = head.iter().position(|&b| b == b'\n').unwrap_or(0);
        let line_end = if line_at > 0 && head[line_at - 1] == b'\r' {
            2
        } else {
            1
        };
        let mut framing = Framing::default();
        let mut upgrade = request.method == Some("CONNECT");
        for field in request.headers.iter() {
            framing.field(field.name.as_bytes(), field.value);
            upgrade |= field.name.eq_ignore_ascii_case("upgrade");
        }
        let refusal = self
            .limits
            .check(line_at + 1 - line_end, line_end, head.len())
            .or_else(|| framing.refusal());
        if let Some(refusal) = refusal {
            events(Event::Refused { ordinal, refusal });
            // The connection closes after the answer.
            return State::Off;
        }
        if upgrade || framing.bad_length() {
            return State::Off;
        }
        if framing.transfer_encoding() {
            // hyper refuses a coding other than chunked, and any coding in
            // HTTP/1.0.
            return if framing.chunked() && request.version == Some(1) {
                State::Chunked(NEW_CHUNK)
            } else {
                State::Off
            };
        }
        match framing.length() {
            Some(n) if n > 0 => State::Body(n),
            _ => State::Head,
        }
    }
}

/// The state after one byte of a chunked body outside chunk data.
fn chunk_byte(chunk: Chunk, b: u8) -> State {
    let next = match chunk {
        Chunk::Size { size, digits, skip } => match b {
            b'\n' if !digits => return State::Off,
            b'\n' if size == 0 => Chunk::Trailer { line: 0 },
            b'\n' => Chunk::Data(size),
            _ if skip => chunk,
            b'\r' | b' ' | b'\t' | b';' => Chunk::Size {
                size,
                digits,
                skip: true,
            },
            _ => match char::from(b).to_digit(16) {
                Some(d) => match size.checked_mul(16) {
                    Some(size) => Chunk::Size {
                        size: size + u64::from(d),
                        digits: true,
                        skip,
                    },
                    None => return State::Off,
                },
                None => return State::Off,
            },
        },
        Chunk::DataEnd => match b {
            b'\r' => Chunk::DataEnd,
            b'\n' => NEW_CHUNK,
            _ => return State::Off,
        },
        Chunk::Trailer { line } => match b {
            b'\n' if line == 0 => return State::Head,
            b'\n' => Chunk::Trailer { line: 0 },
            b'\r' => chunk,
            _ => Chunk::Trailer { line: line + 1 },
        },
        Chunk::Data(_) => chunk,
    };
    State::Chunked(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `piece` bytes; the events seen.
    fn watch(input: &str, piece: usize) -> (Vec<Event>, State, u64) {
        let mut watch = HeadWatch::new(
            HeadLimits {
                max_line: 64,
                max_fields: 128,
            },
            1024,
        );
        let mut events = Vec::new();
        for part in input.as_bytes().chunks(piece) {
            watch.feed(part, &mut |e| events.push(e));
        }
        (events, watch.state, watch.heads)
    }

    fn every_split(input: &str) -> (Vec<Event>, State, u64) {
        let whole = watch(input, input.len().max(1));
        for piece in 1..input.len() {
            assert_eq!(watch(input, piece), whole, "in pieces of {piece}");
        }
        whole
    }

    #[test]
    fn bodies_are_skipped_and_every_head_is_seen() {
        let input = "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nHost:\
                     POST /b HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n\
                     5;ext=1\r\nHost:\r\n0\r\nx-trailer: 1\r\n\r\n\
                     \r\nGET /c HTTP/1.1\r\nHost: c\r\n\r\n";
        assert_eq!(every_split(input), (vec![], State::Head, 3));
    }

    #[test]
    fn a_bad_head_after_good_ones_is_reported_by_its_number() {
        let input = "POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc\
                     GET /b HTTP/1.1\r\nHost: b\r\n\r\n\
                     POST /c HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
                     GET /d HTTP/1.1\r\nHost: d\r\nHost: e\r\n\r\n";
        let refused = Event::Refused {
            ordinal: 2,
            refusal: Refusal::LengthAndChunked,
        };
        assert_eq!(every_split(input), (vec![refused], State::Off, 3));
    }

    #[test]
    fn sizes_are_checked_on_the_raw_head() {
        let long_line = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(64));
        let (events, _, _) = watch(&long_line, 1000);
        assert_eq!(
            events,
            vec![Event::Refused {
                ordinal: 0,
                refusal: Refusal::LineTooLong(64)
            }]
        );
        let many_fields = format!("GET / HTTP/1.1\r\nx: {}\r\n\r\n", "b".repeat(130));
        let (events, _, _) = watch(&many_fields, 1000);
        assert_eq!(
            events,
            vec![Event::Refused {
                ordinal: 0,
                refusal: Refusal::FieldsTooLarge(128)
            }]
        );
    }

    #[test]
    fn upgrades_http2_and_what_hyper_refuses_end_the_watch() {
        let upgrade = "GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: ws\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n";
        assert_eq!(every_split(upgrade), (vec![], State::Off, 1));
        let h2 = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        let (events, state, _) = watch(h2, 5);
        assert_eq!((events, state), (vec![Event::Http2], State::Off));
        let folded = "GET / HTTP/1.1\r\nx: a\r\n b\r\n\r\n";
        assert_eq!(every_split(folded).1, State::Off);
        let gzip = "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert_eq!(every_split(gzip), (vec![], State::Off, 1));
    }
}
