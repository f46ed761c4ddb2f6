//! HPACK (RFC 7541): the header compression of HTTP/2.
//!
//! The decoder keeps the full dynamic table a peer may use. The encoder is
//! made for a proxy: it never adds to the peer's table and never uses
//! Huffman coding, so encoding a field is a table lookup for its name and a
//! copy of its value. That spends a few more bytes on the wire than an
//! indexing encoder, over connections that usually stay within one data
//! centre, for much less CPU per field.

mod decode;
mod encode;
pub mod huffman;
mod table;

pub use decode::{DecodeError, Decoder};
pub use encode::Encoder;

use bytes::Bytes;
use http::header::HeaderName;

/// The pseudo-header fields of RFC 9113, section 8.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pseudo {
    /// `:authority`
    Authority,
    /// `:method`
    Method,
    /// `:path`
    Path,
    /// `:scheme`
    Scheme,
    /// `:status`
    Status,
    /// `:protocol` (RFC 8441's extended CONNECT)
    Protocol,
}

impl Pseudo {
    /// The field's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Pseudo::Authority => ":authority",
            Pseudo::Method => ":method",
            Pseudo::Path => ":path",
            Pseudo::Scheme => ":scheme",
            Pseudo::Status => ":status",
            Pseudo::Protocol => ":protocol",
        }
    }

    fn from_bytes(name: &[u8]) -> Option<Pseudo> {
        Some(match name {
            b":authority" => Pseudo::Authority,
            b":method" => Pseudo::Method,
            b":path" => Pseudo::Path,
            b":scheme" => Pseudo::Scheme,
            b":status" => Pseudo::Status,
            b":protocol" => Pseudo::Protocol,
            _ => return None,
        })
    }
}

/// A decoded field's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    /// A pseudo-header field.
    Pseudo(Pseudo),
    /// A regular field with a valid, lowercase name.
    Header(HeaderName),
    /// A name HTTP/2 does not allow: not a token, with uppercase letters,
    /// or an unknown pseudo-header. The field still takes its place in
    /// the dynamic table; the message it arrives in is malformed.
    Malformed(Bytes),
}

impl Name {
    /// Parses a name sent as a literal.
    fn parse(name: Bytes) -> Name {
        if name.first() == Some(&b':') {
            return match Pseudo::from_bytes(&name) {
                Some(pseudo) => Name::Pseudo(pseudo),
                None => Name::Malformed(name),
            };
        }
        match HeaderName::from_lowercase(&name) {
            Ok(header) => Name::Header(header),
            Err(_) => Name::Malformed(name),
        }
    }

    /// The name's length on the wire.
    fn len(&self) -> usize {
        match self {
            Name::Pseudo(pseudo) => pseudo.as_str().len(),
            Name::Header(name) => name.as_str().len(),
            Name::Malformed(bytes) => bytes.len(),
        }
    }
}

/// One decoded header field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Its name.
    pub name: Name,
    /// Its value, not yet checked for the bytes HTTP forbids.
    pub value: Bytes,
    /// Sent as "never indexed": a proxy must forward it the same way
    /// (RFC 7541, section 7.1.3).
    pub sensitive: bool,
}

impl Field {
    /// The field's size as SETTINGS_MAX_HEADER_LIST_SIZE counts it.
    pub fn size(&self) -> usize {
        self.name.len() + self.value.len() + 32
    }
}

#[cfg(test)]
mod tests;
