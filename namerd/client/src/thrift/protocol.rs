//! Thrift's binary protocol: the writer, and a reader that bounds what
//! hostile bytes can make it do (nesting depth, collection sizes checked
//! against the bytes left, so nothing is allocated for data that is not
//! there). A reader that stops for want of bytes says how many the input
//! would need ([`Reader::wanted`]), so a caller reading a stream can tell
//! a message cut short from a malformed one.

/// Field and element type codes of the binary protocol.
pub mod ttype {
    /// End of a struct's fields.
    pub const STOP: u8 = 0;
    /// `bool`.
    pub const BOOL: u8 = 2;
    /// `byte`.
    pub const BYTE: u8 = 3;
    /// `double`.
    pub const DOUBLE: u8 = 4;
    /// `i16`.
    pub const I16: u8 = 6;
    /// `i32`.
    pub const I32: u8 = 8;
    /// `i64`.
    pub const I64: u8 = 10;
    /// `string` and `binary`.
    pub const STRING: u8 = 11;
    /// A struct, union or exception.
    pub const STRUCT: u8 = 12;
    /// `map`.
    pub const MAP: u8 = 13;
    /// `set`.
    pub const SET: u8 = 14;
    /// `list`.
    pub const LIST: u8 = 15;
    /// `uuid` (16 bytes).
    pub const UUID: u8 = 16;
}

/// Message types of a message header.
pub mod message_type {
    /// A request.
    pub const CALL: u8 = 1;
    /// A successful answer, or one carrying a declared exception.
    pub const REPLY: u8 = 2;
    /// A `TApplicationException`.
    pub const EXCEPTION: u8 = 3;
    /// A request that expects no answer.
    pub const ONEWAY: u8 = 4;
}

/// The version bits of a strict message header.
const VERSION_1: u32 = 0x8001_0000;
const VERSION_MASK: u32 = 0xffff_0000;

/// How deeply structs and collections may nest in what is read: far more
/// than `namer.thrift` needs (its trees are flat maps of nodes), far less
/// than what would exhaust a stack.
pub const MAX_DEPTH: usize = 64;

/// Bytes read could not be decoded: where, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {reason}")]
pub struct DecodeError {
    /// Offset in the message where the problem was found.
    pub offset: usize,
    /// What was wrong.
    pub reason: String,
}

/// A message header: method name, message type and sequence id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageHeader {
    /// The method.
    pub name: String,
    /// One of [`message_type`].
    pub kind: u8,
    /// Matches an answer to its call.
    pub seq_id: i32,
}

/// Writes the binary protocol into a byte buffer.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Writer {
        Writer::default()
    }

    /// The bytes written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// A strict message header (the form every current implementation
    /// writes).
    pub fn message_begin(&mut self, name: &str, kind: u8, seq_id: i32) {
        self.buf
            .extend_from_slice(&(VERSION_1 | u32::from(kind)).to_be_bytes());
        self.string(name);
        self.i32(seq_id);
    }

    /// A field's header.
    pub fn field_begin(&mut self, ttype: u8, id: i16) {
        self.buf.push(ttype);
        self.i16(id);
    }

    /// The end of a struct.
    pub fn field_stop(&mut self) {
        self.buf.push(ttype::STOP);
    }

    /// A list or set header.
    pub fn list_begin(&mut self, elem: u8, len: usize) {
        self.buf.push(elem);
        self.len(len);
    }

    /// A map header.
    pub fn map_begin(&mut self, key: u8, value: u8, len: usize) {
        self.buf.push(key);
        self.buf.push(value);
        self.len(len);
    }

    /// An `i16`.
    pub fn i16(&mut self, v: i16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// An `i32`.
    pub fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// An `i64`.
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// A `double`.
    pub fn double(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_bits().to_be_bytes());
    }

    /// A `binary`.
    pub fn binary(&mut self, v: &[u8]) {
        self.len(v.len());
        self.buf.extend_from_slice(v);
    }

    /// A `string`.
    pub fn string(&mut self, v: &str) {
        self.binary(v.as_bytes());
    }

    /// A length; what does not fit an `i32` is written as `i32::MAX`,
    /// which no reader accepts (nothing this crate writes comes near).
    fn len(&mut self, len: usize) {
        self.i32(i32::try_from(len).unwrap_or(i32::MAX));
    }
}

/// Reads the binary protocol from a byte slice.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    depth: usize,
    wanted: Option<usize>,
}

impl<'a> Reader<'a> {
    /// A reader of `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            depth: 0,
            wanted: None,
        }
    }

    /// When the last read failed for want of bytes: how many the input
    /// would need to have, from its start, for that read to go on (at
    /// least; more may be needed after them).
    pub fn wanted(&self) -> Option<usize> {
        self.wanted
    }

    /// The offset of the next byte.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// How many bytes are left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// An error at the current position.
    pub fn error(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError {
            offset: self.pos,
            reason: reason.into(),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            self.wanted = Some(self.pos.saturating_add(n));
            return Err(self.error(format!("{what} needs {n} bytes, {} left", self.remaining())));
        }
        let bytes = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    /// A `byte` (or a type code).
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>("a byte")?[0])
    }

    /// An `i16`.
    pub fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array("an i16")?))
    }

    /// An `i32`.
    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array("an i32")?))
    }

    /// An `i64`.
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array("an i64")?))
    }

    /// A `double`.
    pub fn double(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_bits(u64::from_be_bytes(self.array("a double")?)))
    }

    /// A `bool`.
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.u8()? != 0)
    }

    /// A length that must be non-negative and, at `min_size` bytes per
    /// item, fit in what is left.
    fn len(&mut self, min_size: usize, what: &str) -> Result<usize, DecodeError> {
        let at = self.pos;
        let len = self.i32()?;
        let len = usize::try_from(len).map_err(|_| DecodeError {
            offset: at,
            reason: format!("negative {what} length {len}"),
        })?;
        if len.saturating_mul(min_size) > self.remaining() {
            self.wanted = Some(self.pos.saturating_add(len.saturating_mul(min_size)));
            return Err(DecodeError {
                offset: at,
                reason: format!(
                    "{what} of {len} items cannot fit in the {} bytes left",
                    self.remaining()
                ),
            });
        }
        Ok(len)
    }

    /// A `binary`.
    pub fn binary(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.len(1, "binary")?;
        self.take(len, "binary")
    }

    /// A `string`, which must be UTF-8.
    pub fn string(&mut self) -> Result<String, DecodeError> {
        let at = self.pos;
        let bytes = self.binary()?;
        String::from_utf8(bytes.to_vec()).map_err(|e| DecodeError {
            offset: at,
            reason: format!("a string is not UTF-8: {e}"),
        })
    }

    /// A message header, strict or not.
    pub fn message_begin(&mut self) -> Result<MessageHeader, DecodeError> {
        let start = self.pos;
        let first = self.i32()?;
        if first < 0 {
            let word = u32::from_be_bytes(first.to_be_bytes());
            if word & VERSION_MASK != VERSION_1 {
                return Err(DecodeError {
                    offset: start,
                    reason: format!("bad message version {:#010x}", word & VERSION_MASK),
                });
            }
            let kind = (word & 0xff) as u8;
            let name = self.string()?;
            let seq_id = self.i32()?;
            Ok(MessageHeader { name, kind, seq_id })
        } else {
            // The old form: the name's length comes first, the type after
            // the name.
            self.pos = start;
            let name = self.string()?;
            let kind = self.u8()?;
            let seq_id = self.i32()?;
            Ok(MessageHeader { name, kind, seq_id })
        }
    }

    /// Reads a struct: `field` is given each field's id and type and
    /// says whether it read the value; fields it does not read (unknown
    /// ids, or a known id with another type) are skipped.
    pub fn read_struct(
        &mut self,
        mut field: impl FnMut(&mut Reader<'a>, i16, u8) -> Result<bool, DecodeError>,
    ) -> Result<(), DecodeError> {
        self.enter()?;
        loop {
            let ttype = self.u8()?;
            if ttype == ttype::STOP {
                break;
            }
            let id = self.i16()?;
            if !field(self, id, ttype)? {
                self.skip(ttype)?;
            }
        }
        self.depth -= 1;
        Ok(())
    }

    /// A list or set header: element type and count.
    pub fn list_begin(&mut self) -> Result<(u8, usize), DecodeError> {
        let elem = self.u8()?;
        let len = self.len(min_size(elem), "list")?;
        Ok((elem, len))
    }

    /// A map header: key type, value type and count.
    pub fn map_begin(&mut self) -> Result<(u8, u8, usize), DecodeError> {
        let key = self.u8()?;
        let value = self.u8()?;
        let len = self.len(min_size(key) + min_size(value), "map")?;
        Ok((key, value, len))
    }

    /// Reads a list (or set) of `elem`s with `item`; a list of another
    /// element type is an error.
    pub fn list<T>(
        &mut self,
        elem: u8,
        mut item: impl FnMut(&mut Reader<'a>) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let at = self.pos;
        let (found, len) = self.list_begin()?;
        if found != elem && len > 0 {
            return Err(DecodeError {
                offset: at,
                reason: format!("a list of type {found} where type {elem} was expected"),
            });
        }
        self.enter()?;
        let mut out = Vec::with_capacity(len);
        for _ in 0..len {
            out.push(item(self)?);
        }
        self.depth -= 1;
        Ok(out)
    }

    fn enter(&mut self) -> Result<(), DecodeError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error(format!("nested deeper than {MAX_DEPTH}")));
        }
        self.depth += 1;
        Ok(())
    }

    /// Skips a value of type `ttype`.
    pub fn skip(&mut self, ttype: u8) -> Result<(), DecodeError> {
        match ttype {
            ttype::BOOL | ttype::BYTE => self.take(1, "a byte").map(drop),
            ttype::I16 => self.take(2, "an i16").map(drop),
            ttype::I32 => self.take(4, "an i32").map(drop),
            ttype::DOUBLE | ttype::I64 => self.take(8, "an i64").map(drop),
            ttype::UUID => self.take(16, "a uuid").map(drop),
            ttype::STRING => self.binary().map(drop),
            ttype::STRUCT => self.read_struct(|_, _, _| Ok(false)),
            ttype::LIST | ttype::SET => {
                let (elem, len) = self.list_begin()?;
                self.enter()?;
                for _ in 0..len {
                    self.skip(elem)?;
                }
                self.depth -= 1;
                Ok(())
            }
            ttype::MAP => {
                let (key, value, len) = self.map_begin()?;
                self.enter()?;
                for _ in 0..len {
                    self.skip(key)?;
                    self.skip(value)?;
                }
                self.depth -= 1;
                Ok(())
            }
            other => Err(self.error(format!("unknown type code {other}"))),
        }
    }
}

/// The fewest bytes a value of `ttype` takes (an unknown type counts one
/// byte; skipping it fails anyway).
fn min_size(ttype: u8) -> usize {
    match ttype {
        ttype::I16 => 2,
        ttype::I32 | ttype::STRING | ttype::LIST | ttype::SET => 4,
        ttype::DOUBLE | ttype::I64 => 8,
        ttype::MAP => 6,
        ttype::UUID => 16,
        _ => 1,
    }
}
