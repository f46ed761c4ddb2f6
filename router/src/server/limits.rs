//! What a request head may be: Linkerd's `maxInitialLineKB` and
//! `maxHeadersKB`, and the framing rules of RFC 9112 that keep two readers
//! of the same bytes from seeing different requests (request smuggling).
//!
//! The router's own HTTP/1 server checks the heads it serves itself
//! ([`super::h1`]); every head hyper reads is checked by [`super::head_watch`]
//! as the bytes go by, and the request is refused before it is routed.

use crate::errors::RouterError;

/// Linkerd's default `maxInitialLineKB`.
pub const DEFAULT_MAX_INITIAL_LINE_KB: usize = 4;
/// Linkerd's default `maxHeadersKB`.
pub const DEFAULT_MAX_HEADERS_KB: usize = 8;

/// The size limits of a request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Bytes of the request line, without its line end.
    pub max_line: usize,
    /// Bytes of the header section: the fields and the blank line that
    /// ends them, line ends included.
    pub max_fields: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_line: DEFAULT_MAX_INITIAL_LINE_KB * 1024,
            max_fields: DEFAULT_MAX_HEADERS_KB * 1024,
        }
    }
}

impl HeadLimits {
    /// The limits of `maxInitialLineKB` and `maxHeadersKB`.
    pub fn from_kb(line_kb: usize, headers_kb: usize) -> HeadLimits {
        HeadLimits {
            max_line: line_kb.saturating_mul(1024),
            max_fields: headers_kb.saturating_mul(1024),
        }
    }

    /// The longest head both limits allow.
    pub fn max_head(&self) -> usize {
        self.max_line
            .saturating_add(2)
            .saturating_add(self.max_fields)
    }

    /// The limit on a whole head given to hyper, which refuses a longer
    /// one with 431 whatever part of it is long. It is at least 64 KiB, so
    /// that a head a little over the limits arrives whole and is refused
    /// with the status that says which part is long.
    pub(crate) fn for_hyper(&self) -> usize {
        self.max_head().saturating_add(2).max(64 * 1024)
    }

    /// Checks a whole head of `head` bytes whose request line is `line`
    /// bytes long, without its line end of `line_end` bytes.
    pub(crate) fn check(&self, line: usize, line_end: usize, head: usize) -> Option<Refusal> {
        if line > self.max_line {
            Some(Refusal::LineTooLong(self.max_line))
        } else if head.saturating_sub(line + line_end) > self.max_fields {
            Some(Refusal::FieldsTooLarge(self.max_fields))
        } else {
            None
        }
    }

    /// Checks the start of a head that has not all arrived: whether it is
    /// over a limit already.
    pub(crate) fn check_partial(&self, read: &[u8]) -> Option<Refusal> {
        match read.iter().position(|&b| b == b'\n') {
            // The line end may be `\r\n`, of which the `\r` has come.
            None if read.len() > self.max_line + 1 => Some(Refusal::LineTooLong(self.max_line)),
            None => None,
            Some(at) => {
                let line_end = if at > 0 && read[at - 1] == b'\r' {
                    2
                } else {
                    1
                };
                self.check(at + 1 - line_end, line_end, read.len())
            }
        }
    }
}

/// Why a request head is refused before it is routed. The connection is
/// closed after the answer: what follows the head cannot be trusted to
/// start a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The request line is longer than `maxInitialLineKB` (414).
    LineTooLong(usize),
    /// The header section is larger than `maxHeadersKB` (431).
    FieldsTooLarge(usize),
    /// More than one `Host` field (400, RFC 9112 §3.2).
    TwoHosts,
    /// Both `Content-Length` and `Transfer-Encoding` (400, RFC 9112 §6.1).
    LengthAndChunked,
    /// `Content-Length` fields that disagree (400, RFC 9112 §6.3).
    LengthsDiffer,
}

impl Refusal {
    /// The error the client is answered with.
    pub fn error(self) -> RouterError {
        match self {
            Refusal::LineTooLong(max) => RouterError::LineTooLong(format!(
                "the request line is longer than {max} bytes (limit maxInitialLineKB)"
            )),
            Refusal::FieldsTooLarge(max) => RouterError::FieldsTooLarge(format!(
                "the request header fields take more than {max} bytes (limit maxHeadersKB)"
            )),
            Refusal::TwoHosts => {
                RouterError::AmbiguousRequest("the request has more than one Host field".into())
            }
            Refusal::LengthAndChunked => RouterError::AmbiguousRequest(
                "the request has both Content-Length and Transfer-Encoding".into(),
            ),
            Refusal::LengthsDiffer => {
                RouterError::AmbiguousRequest("the request's Content-Length fields disagree".into())
            }
        }
    }
}

/// The fields of a head that say where its body ends, and `Host`, seen one
/// by one.
#[derive(Debug, Default)]
pub(crate) struct Framing {
    hosts: u32,
    /// The first `Content-Length`, if it is a number.
    length: Option<u64>,
    /// A `Content-Length` that is not a number (hyper refuses it).
    bad_length: bool,
    lengths_differ: bool,
    /// A `Transfer-Encoding` field came.
    transfer_encoding: bool,
    /// The last `Transfer-Encoding` ends with `chunked`.
    chunked: bool,
}

impl Framing {
    /// Notes one field; `name` in any case.
    pub(crate) fn field(&mut self, name: &[u8], value: &[u8]) {
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => self.hosts += 1,
            14 if name.eq_ignore_ascii_case(b"content-length") => match digits(value) {
                Some(n) => match self.length {
                    Some(first) if first != n => self.lengths_differ = true,
                    Some(_) => {}
                    None => self.length = Some(n),
                },
                None => self.bad_length = true,
            },
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                self.transfer_encoding = true;
                self.chunked = value
                    .rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            }
            _ => {}
        }
    }

    /// What is wrong with the head, if anything.
    pub(crate) fn refusal(&self) -> Option<Refusal> {
        if self.hosts > 1 {
            Some(Refusal::TwoHosts)
        } else if self.transfer_encoding && (self.length.is_some() || self.bad_length) {
            Some(Refusal::LengthAndChunked)
        } else if self.lengths_differ {
            Some(Refusal::LengthsDiffer)
        } else {
            None
        }
    }

    /// Whether a `Transfer-Encoding` came.
    pub(crate) fn transfer_encoding(&self) -> bool {
        self.transfer_encoding
    }

    /// Whether the body is chunked (hyper refuses any other coding).
    pub(crate) fn chunked(&self) -> bool {
        self.chunked
    }

    /// The body's length, if `Content-Length` gives one that hyper reads.
    pub(crate) fn length(&self) -> Option<u64> {
        if self.bad_length { None } else { self.length }
    }

    /// Whether a `Content-Length` could not be read (hyper answers 400).
    pub(crate) fn bad_length(&self) -> bool {
        self.bad_length
    }
}

/// A `Content-Length` value as hyper reads one: decimal digits only.
pub(crate) fn digits(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing(fields: &[(&str, &str)]) -> Framing {
        let mut framing = Framing::default();
        for (name, value) in fields {
            framing.field(name.as_bytes(), value.as_bytes());
        }
        framing
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        assert_eq!(
            framing(&[("Host", "a"), ("host", "a")]).refusal(),
            Some(Refusal::TwoHosts)
        );
        assert_eq!(
            framing(&[("Content-Length", "3"), ("Transfer-Encoding", "chunked")]).refusal(),
            Some(Refusal::LengthAndChunked)
        );
        assert_eq!(
            framing(&[("transfer-encoding", "chunked"), ("content-length", "x")]).refusal(),
            Some(Refusal::LengthAndChunked)
        );
        assert_eq!(
            framing(&[("Content-Length", "3"), ("Content-Length", "4")]).refusal(),
            Some(Refusal::LengthsDiffer)
        );
        let same = framing(&[
            ("Host", "a"),
            ("Content-Length", "3"),
            ("content-length", " 03"),
        ]);
        assert_eq!(same.refusal(), None);
        assert_eq!(same.length(), Some(3));
        assert!(framing(&[("content-length", "1, 1")]).bad_length());
    }

    #[test]
    fn sizes_are_checked_whole_and_in_part() {
        let limits = HeadLimits {
            max_line: 10,
            max_fields: 20,
        };
        assert_eq!(limits.check(10, 2, 10 + 2 + 20), None);
        assert_eq!(limits.check(11, 2, 20), Some(Refusal::LineTooLong(10)));
        assert_eq!(
            limits.check(10, 2, 10 + 2 + 21),
            Some(Refusal::FieldsTooLarge(20))
        );
        assert_eq!(limits.check_partial(b"GET /abcde"), None);
        assert_eq!(limits.check_partial(b"GET /abcde\r"), None);
        assert_eq!(
            limits.check_partial(b"GET /abcdef\r"),
            Some(Refusal::LineTooLong(10))
        );
        assert_eq!(
            limits.check_partial(b"GET /abcde\r\nx: 0123456789abcd"),
            None
        );
        assert_eq!(
            limits.check_partial(b"GET /abcde\r\nx: 0123456789abcdefghi"),
            Some(Refusal::FieldsTooLarge(20))
        );
        assert_eq!(
            limits.check_partial(b"GET /abcdefg\nx"),
            Some(Refusal::LineTooLong(10))
        );
    }
}
