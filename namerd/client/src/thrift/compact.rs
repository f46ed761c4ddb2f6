//! Thrift's compact protocol (`TCompactProtocol`): the writer, and a
//! reader with the same bounds as the binary one's (nesting depth,
//! collection sizes checked against the bytes left, [`Reader::wanted`]
//! for input cut short).
//!
//! Both take and give the binary protocol's type codes
//! ([`ttype`](super::protocol::ttype)), as Thrift's protocol interface
//! does, so code that reads or writes values works with either protocol;
//! the compact codes stay inside this module.
//!
//! The encoding, from Thrift's `doc/specs/thrift-compact-protocol.md`:
//! integers are ULEB128 varints of their zigzag form (`i16`, `i32`,
//! `i64`), except the message's sequence id, a plain varint; a `double`
//! is 8 bytes little-endian; a field header is one byte, `delta << 4 |
//! type`, when the field id is 1 to 15 above the previous one in the same
//! struct, else the type byte and the id as a zigzag varint; a `bool`
//! field has its value in its type (1 true, 2 false) and no body; a list
//! or set header is `size << 4 | type` for up to 14 elements, else
//! `0xf0 | type` and the size as a varint; a map header is one zero byte
//! when empty, else the size as a varint and `key << 4 | value`.

use super::protocol::{DecodeError, MAX_DEPTH, MessageHeader, ttype};

/// The first byte of every compact message.
pub const PROTOCOL_ID: u8 = 0x82;

/// The protocol version this module speaks.
const VERSION: u8 = 1;
const VERSION_MASK: u8 = 0x1f;
const TYPE_SHIFT: u8 = 5;

/// The compact protocol's own type codes.
mod ctype {
    pub(super) const STOP: u8 = 0;
    pub(super) const BOOL_TRUE: u8 = 1;
    pub(super) const BOOL_FALSE: u8 = 2;
    pub(super) const BYTE: u8 = 3;
    pub(super) const I16: u8 = 4;
    pub(super) const I32: u8 = 5;
    pub(super) const I64: u8 = 6;
    pub(super) const DOUBLE: u8 = 7;
    pub(super) const BINARY: u8 = 8;
    pub(super) const LIST: u8 = 9;
    pub(super) const SET: u8 = 10;
    pub(super) const MAP: u8 = 11;
    pub(super) const STRUCT: u8 = 12;
    pub(super) const UUID: u8 = 13;
}

/// The compact code of a binary type code (`STOP` for one it has none
/// of).
fn to_compact(ttype: u8) -> u8 {
    match ttype {
        ttype::BOOL => ctype::BOOL_TRUE,
        ttype::BYTE => ctype::BYTE,
        ttype::I16 => ctype::I16,
        ttype::I32 => ctype::I32,
        ttype::I64 => ctype::I64,
        ttype::DOUBLE => ctype::DOUBLE,
        ttype::STRING => ctype::BINARY,
        ttype::LIST => ctype::LIST,
        ttype::SET => ctype::SET,
        ttype::MAP => ctype::MAP,
        ttype::STRUCT => ctype::STRUCT,
        ttype::UUID => ctype::UUID,
        _ => ctype::STOP,
    }
}

/// The binary type code of a compact one, if it is one.
fn from_compact(ctype: u8) -> Option<u8> {
    Some(match ctype {
        ctype::BOOL_TRUE | ctype::BOOL_FALSE => ttype::BOOL,
        ctype::BYTE => ttype::BYTE,
        ctype::I16 => ttype::I16,
        ctype::I32 => ttype::I32,
        ctype::I64 => ttype::I64,
        ctype::DOUBLE => ttype::DOUBLE,
        ctype::BINARY => ttype::STRING,
        ctype::LIST => ttype::LIST,
        ctype::SET => ttype::SET,
        ctype::MAP => ttype::MAP,
        ctype::STRUCT => ttype::STRUCT,
        ctype::UUID => ttype::UUID,
        _ => return None,
    })
}

fn zigzag32(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag32(v: u32) -> i32 {
    ((v >> 1) as i32) ^ -((v & 1) as i32)
}

fn unzigzag64(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Writes the compact protocol into a byte buffer.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
    /// The last field id written in the struct being written.
    last_field: i16,
    /// The last field ids of the structs around it.
    outer: Vec<i16>,
    /// A `bool` field whose header waits for its value.
    bool_field: Option<i16>,
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

    /// A message header.
    pub fn message_begin(&mut self, name: &str, kind: u8, seq_id: i32) {
        self.buf.push(PROTOCOL_ID);
        self.buf.push(VERSION | (kind << TYPE_SHIFT));
        self.varint(u64::from(u32::from_ne_bytes(seq_id.to_ne_bytes())));
        self.string(name);
    }

    /// The start of a struct (field ids count from 0 again inside it).
    pub fn struct_begin(&mut self) {
        self.outer.push(self.last_field);
        self.last_field = 0;
    }

    /// The end of a struct, after its [`Writer::field_stop`].
    pub fn struct_end(&mut self) {
        self.last_field = self.outer.pop().unwrap_or(0);
    }

    /// A field's header; a `bool` field's is written with its value.
    pub fn field_begin(&mut self, ttype: u8, id: i16) {
        if ttype == ttype::BOOL {
            self.bool_field = Some(id);
        } else {
            self.field_header(to_compact(ttype), id);
        }
    }

    fn field_header(&mut self, ctype: u8, id: i16) {
        let delta = i32::from(id) - i32::from(self.last_field);
        if (1..=15).contains(&delta) {
            self.buf.push(((delta as u8) << 4) | ctype);
        } else {
            self.buf.push(ctype);
            self.varint(u64::from(zigzag32(i32::from(id))));
        }
        self.last_field = id;
    }

    /// The end of a struct's fields.
    pub fn field_stop(&mut self) {
        self.buf.push(ctype::STOP);
    }

    /// A list or set header.
    pub fn list_begin(&mut self, elem: u8, len: usize) {
        let elem = to_compact(elem);
        match u8::try_from(len) {
            Ok(small) if small <= 14 => self.buf.push((small << 4) | elem),
            _ => {
                self.buf.push(0xf0 | elem);
                self.len(len);
            }
        }
    }

    /// A map header.
    pub fn map_begin(&mut self, key: u8, value: u8, len: usize) {
        if len == 0 {
            self.buf.push(0);
            return;
        }
        self.len(len);
        self.buf.push((to_compact(key) << 4) | to_compact(value));
    }

    /// A `bool`: a field's value (in its header) or an element.
    pub fn bool(&mut self, v: bool) {
        let ctype = if v {
            ctype::BOOL_TRUE
        } else {
            ctype::BOOL_FALSE
        };
        match self.bool_field.take() {
            Some(id) => self.field_header(ctype, id),
            None => self.buf.push(ctype),
        }
    }

    /// A `byte`.
    pub fn byte(&mut self, v: i8) {
        self.buf.push(v.to_ne_bytes()[0]);
    }

    /// An `i16`.
    pub fn i16(&mut self, v: i16) {
        self.varint(u64::from(zigzag32(i32::from(v))));
    }

    /// An `i32`.
    pub fn i32(&mut self, v: i32) {
        self.varint(u64::from(zigzag32(v)));
    }

    /// An `i64`.
    pub fn i64(&mut self, v: i64) {
        self.varint(zigzag64(v));
    }

    /// A `double`.
    pub fn double(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_bits().to_le_bytes());
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

    /// A `uuid`.
    pub fn uuid(&mut self, v: [u8; 16]) {
        self.buf.extend_from_slice(&v);
    }

    /// A length; what does not fit an `i32` is written as `i32::MAX`,
    /// which no reader accepts.
    fn len(&mut self, len: usize) {
        let len = u32::try_from(len)
            .ok()
            .filter(|len| *len <= i32::MAX as u32)
            .unwrap_or(i32::MAX as u32);
        self.varint(u64::from(len));
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }
}

/// Reads the compact protocol from a byte slice.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    depth: usize,
    wanted: Option<usize>,
    /// The last field id read in the struct being read.
    last_field: i16,
    /// The value of the `bool` field whose header was just read.
    bool_value: Option<bool>,
}

impl<'a> Reader<'a> {
    /// A reader of `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            depth: 0,
            wanted: None,
            last_field: 0,
            bool_value: None,
        }
    }

    /// The offset of the next byte.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// How many bytes are left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// When the last read failed for want of bytes: how many the input
    /// would need to have, from its start, for that read to go on (at
    /// least; more may be needed after them).
    pub fn wanted(&self) -> Option<usize> {
        self.wanted
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

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1, "a byte")?[0])
    }

    /// A varint of at most `bits` (32 or 64) bits.
    fn varint(&mut self, bits: u32) -> Result<u64, DecodeError> {
        let at = self.pos;
        let too_long = || DecodeError {
            offset: at,
            reason: format!("a varint longer than {bits} bits"),
        };
        let mut value: u64 = 0;
        for i in 0..bits.div_ceil(7) {
            let byte = self.u8()?;
            let part = u64::from(byte & 0x7f);
            let shift = 7 * i;
            if shift == 63 && part > 1 {
                return Err(too_long());
            }
            value |= part << shift;
            if byte & 0x80 == 0 {
                if bits < 64 && value >> bits != 0 {
                    return Err(too_long());
                }
                return Ok(value);
            }
        }
        Err(too_long())
    }

    fn varint32(&mut self) -> Result<u32, DecodeError> {
        let v = self.varint(32)?;
        // `varint(32)` keeps to 32 bits.
        Ok(u32::try_from(v).unwrap_or(u32::MAX))
    }

    /// A `bool`: the value of the field whose header was just read, or an
    /// element of a collection.
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.bool_value.take() {
            Some(v) => Ok(v),
            None => Ok(self.u8()? == ctype::BOOL_TRUE),
        }
    }

    /// A `byte`.
    pub fn byte(&mut self) -> Result<i8, DecodeError> {
        Ok(i8::from_ne_bytes([self.u8()?]))
    }

    /// An `i16`.
    pub fn i16(&mut self) -> Result<i16, DecodeError> {
        let at = self.pos;
        let v = unzigzag32(self.varint32()?);
        i16::try_from(v).map_err(|_| DecodeError {
            offset: at,
            reason: format!("{v} does not fit an i16"),
        })
    }

    /// An `i32`.
    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(unzigzag32(self.varint32()?))
    }

    /// An `i64`.
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(unzigzag64(self.varint(64)?))
    }

    /// A `double`.
    pub fn double(&mut self) -> Result<f64, DecodeError> {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(self.take(8, "a double")?);
        Ok(f64::from_bits(u64::from_le_bytes(bytes)))
    }

    /// A `uuid`.
    pub fn uuid(&mut self) -> Result<[u8; 16], DecodeError> {
        let mut bytes = [0; 16];
        bytes.copy_from_slice(self.take(16, "a uuid")?);
        Ok(bytes)
    }

    /// A size that must fit an `i32` and, at `min_size` bytes per item,
    /// fit in what is left.
    fn size(&mut self, min_size: usize, what: &str) -> Result<usize, DecodeError> {
        let at = self.pos;
        let len = self.varint32()?;
        let len = usize::try_from(len)
            .ok()
            .filter(|len| *len <= i32::MAX as usize)
            .ok_or_else(|| DecodeError {
                offset: at,
                reason: format!("{what} length {len} is over 2^31 - 1"),
            })?;
        let needed = len.saturating_mul(min_size);
        if needed > self.remaining() {
            self.wanted = Some(self.pos.saturating_add(needed));
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
        let len = self.size(1, "binary")?;
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

    /// A message header.
    pub fn message_begin(&mut self) -> Result<MessageHeader, DecodeError> {
        let start = self.pos;
        let id = self.u8()?;
        if id != PROTOCOL_ID {
            return Err(DecodeError {
                offset: start,
                reason: format!("protocol id {id:#04x} is not the compact protocol's (0x82)"),
            });
        }
        let byte = self.u8()?;
        if byte & VERSION_MASK != VERSION {
            return Err(DecodeError {
                offset: start + 1,
                reason: format!("bad compact protocol version {}", byte & VERSION_MASK),
            });
        }
        let kind = byte >> TYPE_SHIFT;
        let seq_id = i32::from_ne_bytes(self.varint32()?.to_ne_bytes());
        let name = self.string()?;
        Ok(MessageHeader { name, kind, seq_id })
    }

    /// Reads a struct: `field` is given each field's id and (binary) type
    /// code and says whether it read the value; fields it does not read
    /// are skipped. A `bool` field's value is read with [`Reader::bool`].
    pub fn read_struct(
        &mut self,
        mut field: impl FnMut(&mut Reader<'a>, i16, u8) -> Result<bool, DecodeError>,
    ) -> Result<(), DecodeError> {
        self.enter()?;
        let outer = std::mem::replace(&mut self.last_field, 0);
        loop {
            let at = self.pos;
            let byte = self.u8()?;
            if byte == ctype::STOP {
                break;
            }
            let ctype = byte & 0x0f;
            let Some(ttype) = from_compact(ctype) else {
                return Err(DecodeError {
                    offset: at,
                    reason: format!("unknown compact type code {ctype}"),
                });
            };
            let delta = byte >> 4;
            let id = if delta == 0 {
                self.i16()?
            } else {
                self.last_field
                    .checked_add(i16::from(delta))
                    .ok_or_else(|| DecodeError {
                        offset: at,
                        reason: "a field id over 32767".into(),
                    })?
            };
            self.last_field = id;
            if ttype == ttype::BOOL {
                self.bool_value = Some(ctype == ctype::BOOL_TRUE);
            }
            if !field(self, id, ttype)? {
                self.skip(ttype)?;
            }
            self.bool_value = None;
        }
        self.last_field = outer;
        self.depth -= 1;
        Ok(())
    }

    /// A list or set header: (binary) element type and count.
    pub fn list_begin(&mut self) -> Result<(u8, usize), DecodeError> {
        let at = self.pos;
        let byte = self.u8()?;
        let elem = self.elem_type(byte & 0x0f, at)?;
        let short = usize::from(byte >> 4);
        let len = if short == 15 {
            self.size(min_size(elem), "list")?
        } else {
            let needed = short * min_size(elem);
            if needed > self.remaining() {
                self.wanted = Some(self.pos.saturating_add(needed));
                return Err(self.error(format!(
                    "list of {short} items cannot fit in the {} bytes left",
                    self.remaining()
                )));
            }
            short
        };
        Ok((elem, len))
    }

    /// A map header: (binary) key type, value type and count; an empty
    /// map's types are unknown (`STOP`).
    pub fn map_begin(&mut self) -> Result<(u8, u8, usize), DecodeError> {
        let at = self.pos;
        let len = self.varint32()?;
        if len == 0 {
            return Ok((ttype::STOP, ttype::STOP, 0));
        }
        let types_at = self.pos;
        let types = self.u8()?;
        let key = self.elem_type(types >> 4, types_at)?;
        let value = self.elem_type(types & 0x0f, types_at)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|len| *len <= i32::MAX as usize)
            .ok_or_else(|| DecodeError {
                offset: at,
                reason: format!("map length {len} is over 2^31 - 1"),
            })?;
        let needed = len.saturating_mul(min_size(key) + min_size(value));
        if needed > self.remaining() {
            self.wanted = Some(self.pos.saturating_add(needed));
            return Err(DecodeError {
                offset: at,
                reason: format!(
                    "map of {len} items cannot fit in the {} bytes left",
                    self.remaining()
                ),
            });
        }
        Ok((key, value, len))
    }

    fn elem_type(&self, ctype: u8, at: usize) -> Result<u8, DecodeError> {
        from_compact(ctype).ok_or_else(|| DecodeError {
            offset: at,
            reason: format!("unknown compact element type {ctype}"),
        })
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

    /// Skips a value of (binary) type `ttype`.
    pub fn skip(&mut self, ttype: u8) -> Result<(), DecodeError> {
        match ttype {
            ttype::BOOL => self.bool().map(drop),
            ttype::BYTE => self.take(1, "a byte").map(drop),
            ttype::I16 | ttype::I32 => self.varint(32).map(drop),
            ttype::I64 => self.varint(64).map(drop),
            ttype::DOUBLE => self.take(8, "a double").map(drop),
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

/// The fewest bytes a value of (binary) type `ttype` takes.
fn min_size(ttype: u8) -> usize {
    match ttype {
        ttype::DOUBLE => 8,
        ttype::UUID => 16,
        _ => 1,
    }
}

/// A `TApplicationException` reply to `method`'s call `seq_id`.
pub fn encode_exception(
    method: &str,
    seq_id: i32,
    e: &super::types::ApplicationException,
) -> Vec<u8> {
    let mut w = Writer::new();
    w.message_begin(method, super::protocol::message_type::EXCEPTION, seq_id);
    w.struct_begin();
    w.field_begin(ttype::STRING, 1);
    w.string(&e.message);
    w.field_begin(ttype::I32, 2);
    w.i32(e.kind);
    w.field_stop();
    w.struct_end();
    w.into_bytes()
}

#[cfg(test)]
mod tests;
