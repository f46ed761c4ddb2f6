//! The HPACK decoder: a header block in, its fields out, the dynamic
//! table kept in step with the peer's encoder.

use bytes::{Bytes, BytesMut};

use super::huffman::{self, HuffmanError};
use super::table::{Dynamic, STATIC};
use super::{Field, Name};

/// Why a header block could not be decoded. Every one is a connection
/// error (COMPRESSION_ERROR): the dynamic table is no longer known to
/// match the peer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The block ends inside a representation.
    #[error("header block ends inside a field")]
    Truncated,
    /// An integer does not fit the limits we keep (2^28).
    #[error("integer in header block too large")]
    IntegerOverflow,
    /// An index names no entry.
    #[error("header block refers to table entry {0}, which does not exist")]
    BadIndex(usize),
    /// A size update above the maximum we allowed, or after a field.
    #[error("invalid dynamic table size update to {0}")]
    BadSizeUpdate(usize),
    /// A Huffman-coded string is invalid.
    #[error(transparent)]
    Huffman(#[from] HuffmanError),
}

/// Decodes the header blocks of one direction of a connection.
#[derive(Debug)]
pub struct Decoder {
    table: Dynamic,
    /// The largest table the peer may use: our SETTINGS_HEADER_TABLE_SIZE.
    allowed: usize,
    /// Where Huffman-coded strings are decoded; each one is split off.
    scratch: BytesMut,
}

impl Decoder {
    /// A decoder whose peer may use a table of up to `allowed` bytes (the
    /// SETTINGS_HEADER_TABLE_SIZE we send; 4,096 by default).
    pub fn new(allowed: usize) -> Self {
        Decoder {
            table: Dynamic::new(allowed),
            allowed,
            scratch: BytesMut::new(),
        }
    }

    /// Decodes one whole header block (a HEADERS frame's fragment with
    /// its CONTINUATIONs), handing each field to `each` in order.
    ///
    /// Every field is decoded and kept in the table even when the caller
    /// has seen enough: the table must follow the peer's. The work is
    /// bounded by the block's length (at most one field per byte).
    pub fn decode(
        &mut self,
        block: &Bytes,
        mut each: impl FnMut(Field),
    ) -> Result<(), DecodeError> {
        let mut at = 0;
        let mut fields_seen = false;
        while let Some(&first) = block.get(at) {
            if first & 0x80 != 0 {
                // Indexed field (section 6.1).
                let index = integer(block, &mut at, 7)?;
                each(self.indexed(index)?);
            } else if first & 0xc0 == 0x40 {
                // Literal with incremental indexing (6.2.1).
                let (name, name_len, value) = self.literal(block, &mut at, 6)?;
                self.table.insert(name.clone(), name_len, value.clone());
                each(Field {
                    name,
                    value,
                    sensitive: false,
                });
            } else if first & 0xe0 == 0x20 {
                // Dynamic table size update (6.3): only before any field.
                let size = integer(block, &mut at, 5)?;
                if fields_seen || size > self.allowed {
                    return Err(DecodeError::BadSizeUpdate(size));
                }
                self.table.resize(size);
                continue;
            } else {
                // Literal without indexing (6.2.2) or never indexed (6.2.3).
                let sensitive = first & 0x10 != 0;
                let (name, _, value) = self.literal(block, &mut at, 4)?;
                each(Field {
                    name,
                    value,
                    sensitive,
                });
            }
            fields_seen = true;
        }
        Ok(())
    }

    fn indexed(&self, index: usize) -> Result<Field, DecodeError> {
        let (name, value) = self.lookup(index)?;
        Ok(Field {
            name,
            value,
            sensitive: false,
        })
    }

    /// The name and value at `index` of the combined index space.
    fn lookup(&self, index: usize) -> Result<(Name, Bytes), DecodeError> {
        if let Some(entry) = index.checked_sub(1).and_then(|i| STATIC.get(i)) {
            return Ok((entry.name.clone(), Bytes::from_static(entry.value)));
        }
        match self.table.get(index) {
            Some(entry) => Ok((entry.name.clone(), entry.value.clone())),
            None => Err(DecodeError::BadIndex(index)),
        }
    }

    /// A literal field: its name (indexed or literal; with its length on
    /// the wire) and its value.
    fn literal(
        &mut self,
        block: &Bytes,
        at: &mut usize,
        prefix: u8,
    ) -> Result<(Name, usize, Bytes), DecodeError> {
        let index = integer(block, at, prefix)?;
        let name = if index == 0 {
            Name::parse(self.string(block, at)?)
        } else {
            self.lookup(index)?.0
        };
        let name_len = name.len();
        let value = self.string(block, at)?;
        Ok((name, name_len, value))
    }

    /// A string literal (section 5.2): a slice of the block, or decoded
    /// from Huffman code.
    fn string(&mut self, block: &Bytes, at: &mut usize) -> Result<Bytes, DecodeError> {
        let huffman_coded = block.get(*at).ok_or(DecodeError::Truncated)? & 0x80 != 0;
        let len = integer(block, at, 7)?;
        let end = at
            .checked_add(len)
            .filter(|&end| end <= block.len())
            .ok_or(DecodeError::Truncated)?;
        let raw = block.slice(*at..end);
        *at = end;
        if !huffman_coded {
            return Ok(raw);
        }
        huffman::decode(&raw, &mut self.scratch)?;
        Ok(self.scratch.split().freeze())
    }

    #[cfg(test)]
    pub(super) fn table(&self) -> &Dynamic {
        &self.table
    }
}

/// The largest integer we take: far above any size or index a peer can
/// need, and small enough that no sum of them overflows.
const INTEGER_LIMIT: usize = 1 << 28;

/// An integer with an N-bit prefix (section 5.1), starting at `block[*at]`.
fn integer(block: &[u8], at: &mut usize, prefix: u8) -> Result<usize, DecodeError> {
    let max_prefix = (1usize << prefix) - 1;
    let first = usize::from(*block.get(*at).ok_or(DecodeError::Truncated)?) & max_prefix;
    *at += 1;
    if first < max_prefix {
        return Ok(first);
    }
    let mut value = max_prefix;
    let mut shift = 0;
    loop {
        let byte = *block.get(*at).ok_or(DecodeError::Truncated)?;
        *at += 1;
        value += usize::from(byte & 0x7f) << shift;
        if value > INTEGER_LIMIT {
            return Err(DecodeError::IntegerOverflow);
        }
        if byte & 0x80 == 0 {
            return Ok(value);
        }
        shift += 7;
        if shift > 28 {
            return Err(DecodeError::IntegerOverflow);
        }
    }
}

#[cfg(test)]
pub(super) fn test_integer(block: &[u8], prefix: u8) -> Result<(usize, usize), DecodeError> {
    let mut at = 0;
    integer(block, &mut at, prefix).map(|value| (value, at))
}
