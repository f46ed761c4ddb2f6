//! The HPACK encoder: fields in, a header block out.
//!
//! It never indexes, so the peer's dynamic table stays empty and ours
//! needs no state but one flag; see the module above for why.

use bytes::{BufMut, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{Method, StatusCode};

use super::Pseudo;
use super::table::static_name_index;

/// Encodes the header blocks of one direction of a connection.
#[derive(Debug, Default)]
pub struct Encoder {
    /// The peer's SETTINGS_HEADER_TABLE_SIZE changed: the next block
    /// starts with a size update. It sets the table to 0 bytes, which any
    /// limit allows and which is all this encoder uses.
    size_update_due: bool,
}

/// First bytes of the representations used (section 6).
const INDEXED: u8 = 0x80;
const WITHOUT_INDEXING: u8 = 0x00;
const NEVER_INDEXED: u8 = 0x10;
const SIZE_UPDATE: u8 = 0x20;

impl Encoder {
    /// An encoder for a new connection.
    pub fn new() -> Self {
        Encoder::default()
    }

    /// The peer sent SETTINGS_HEADER_TABLE_SIZE.
    pub fn peer_table_size_changed(&mut self) {
        self.size_update_due = true;
    }

    /// Starts a header block in `dst`: call before its first field.
    pub fn start_block(&mut self, dst: &mut BytesMut) {
        if std::mem::take(&mut self.size_update_due) {
            dst.put_u8(SIZE_UPDATE);
        }
    }

    /// Encodes `:method`.
    pub fn method(&self, method: &Method, dst: &mut BytesMut) {
        match *method {
            Method::GET => dst.put_u8(INDEXED | 2),
            Method::POST => dst.put_u8(INDEXED | 3),
            _ => self.pseudo(Pseudo::Method, method.as_str().as_bytes(), dst),
        }
    }

    /// Encodes `:status`.
    pub fn status(&self, status: StatusCode, dst: &mut BytesMut) {
        let index = match status.as_u16() {
            200 => 8,
            204 => 9,
            206 => 10,
            304 => 11,
            400 => 12,
            404 => 13,
            500 => 14,
            _ => {
                // `:status` is static entry 8's name.
                integer(WITHOUT_INDEXING, 4, 8, dst);
                string(status.as_str().as_bytes(), dst);
                return;
            }
        };
        dst.put_u8(INDEXED | index);
    }

    /// Encodes a pseudo-header field other than `:status`.
    pub fn pseudo(&self, pseudo: Pseudo, value: &[u8], dst: &mut BytesMut) {
        let exact = match (pseudo, value) {
            (Pseudo::Method, b"GET") => Some(2),
            (Pseudo::Method, b"POST") => Some(3),
            (Pseudo::Path, b"/") => Some(4),
            (Pseudo::Scheme, b"http") => Some(6),
            (Pseudo::Scheme, b"https") => Some(7),
            _ => None,
        };
        if let Some(index) = exact {
            dst.put_u8(INDEXED | index);
            return;
        }
        let name_index = match pseudo {
            Pseudo::Authority => 1,
            Pseudo::Method => 2,
            Pseudo::Path => 4,
            Pseudo::Scheme => 6,
            Pseudo::Status => 8,
            Pseudo::Protocol => 0,
        };
        integer(WITHOUT_INDEXING, 4, name_index, dst);
        if name_index == 0 {
            string(pseudo.as_str().as_bytes(), dst);
        }
        string(value, dst);
    }

    /// Encodes a regular field; a sensitive value as never indexed.
    pub fn header(&self, name: &HeaderName, value: &HeaderValue, dst: &mut BytesMut) {
        let kind = if value.is_sensitive() {
            NEVER_INDEXED
        } else {
            WITHOUT_INDEXING
        };
        match static_name_index(name) {
            Some(index) => integer(kind, 4, usize::from(index), dst),
            None => {
                dst.put_u8(kind);
                string(name.as_str().as_bytes(), dst);
            }
        }
        string(value.as_bytes(), dst);
    }
}

/// A string literal, not Huffman-coded.
fn string(bytes: &[u8], dst: &mut BytesMut) {
    integer(0, 7, bytes.len(), dst);
    dst.extend_from_slice(bytes);
}

/// An integer with an N-bit prefix (section 5.1), after the bits `flags`
/// sets in its first byte: a literal's kind with its name's index, say.
fn integer(flags: u8, prefix: u8, value: usize, dst: &mut BytesMut) {
    let max_prefix = (1usize << prefix) - 1;
    if value < max_prefix {
        dst.put_u8(flags | value as u8);
        return;
    }
    dst.put_u8(flags | max_prefix as u8);
    let mut rest = value - max_prefix;
    while rest >= 0x80 {
        dst.put_u8(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    dst.put_u8(rest as u8);
}

#[cfg(test)]
pub(super) fn test_integer(prefix: u8, value: usize) -> Vec<u8> {
    let mut dst = BytesMut::new();
    integer(0, prefix, value, &mut dst);
    dst.to_vec()
}
