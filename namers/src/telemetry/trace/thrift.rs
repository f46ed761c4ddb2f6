//! The little of Thrift's binary protocol that Zipkin's scribe transport
//! needs: writing structs, lists and a call, and reading a call's reply.
//! Strict messages only (the version word first), as Finagle and Zipkin's
//! collector both send.

/// Field and element types of the binary protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Type {
    Stop = 0,
    Bool = 2,
    Byte = 3,
    Double = 4,
    I16 = 6,
    I32 = 8,
    I64 = 10,
    String = 11,
    Struct = 12,
    Map = 13,
    Set = 14,
    List = 15,
}

/// The version word's high half, before the message type.
const VERSION_1: u32 = 0x8001_0000;

/// Message types.
pub(super) const CALL: u8 = 1;
pub(super) const REPLY: u8 = 2;
pub(super) const EXCEPTION: u8 = 3;

/// Writes the binary protocol into a buffer.
#[derive(Debug, Default)]
pub(super) struct Writer {
    pub(super) buf: Vec<u8>,
}

impl Writer {
    pub(super) fn message_begin(&mut self, name: &str, kind: u8, seqid: i32) {
        self.buf
            .extend_from_slice(&(VERSION_1 | u32::from(kind)).to_be_bytes());
        self.string(name);
        self.i32(seqid);
    }

    pub(super) fn field(&mut self, kind: Type, id: i16) {
        self.buf.push(kind as u8);
        self.buf.extend_from_slice(&id.to_be_bytes());
    }

    pub(super) fn stop(&mut self) {
        self.buf.push(Type::Stop as u8);
    }

    pub(super) fn list_begin(&mut self, element: Type, len: usize) {
        self.buf.push(element as u8);
        self.i32(i32::try_from(len).unwrap_or(i32::MAX));
    }

    pub(super) fn bool(&mut self, value: bool) {
        self.buf.push(u8::from(value));
    }

    pub(super) fn i16(&mut self, value: i16) {
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    pub(super) fn i32(&mut self, value: i32) {
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    pub(super) fn i64(&mut self, value: i64) {
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    pub(super) fn binary(&mut self, value: &[u8]) {
        self.i32(i32::try_from(value.len()).unwrap_or(i32::MAX));
        self.buf.extend_from_slice(value);
    }

    pub(super) fn string(&mut self, value: &str) {
        self.binary(value.as_bytes());
    }
}

/// Reads the binary protocol from a buffer; every read checks the length
/// left, so a short or hostile reply is an error, never a panic.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
}

/// How deep structs may nest in what is skipped.
const MAX_DEPTH: usize = 32;

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() < n {
            return Err("the reply ends too soon".into());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    pub(super) fn i32(&mut self) -> Result<i32, String> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(i32::from_be_bytes(b))
    }

    pub(super) fn binary(&mut self) -> Result<&'a [u8], String> {
        let len = usize::try_from(self.i32()?).map_err(|_| "a negative length".to_string())?;
        self.take(len)
    }

    /// A strict message header: (name, type, seqid).
    pub(super) fn message_begin(&mut self) -> Result<(String, u8, i32), String> {
        let word = self.i32()? as u32;
        if word & 0xffff_0000 != VERSION_1 {
            return Err(format!(
                "not a strict Thrift message (first word {word:#010x})"
            ));
        }
        let name = String::from_utf8_lossy(self.binary()?).into_owned();
        let seqid = self.i32()?;
        Ok((name, (word & 0xff) as u8, seqid))
    }

    /// The next field's (type, id); type `Stop` ends the struct.
    pub(super) fn field(&mut self) -> Result<(u8, i16), String> {
        let kind = self.u8()?;
        if kind == Type::Stop as u8 {
            return Ok((kind, 0));
        }
        let mut b = [0u8; 2];
        b.copy_from_slice(self.take(2)?);
        Ok((kind, i16::from_be_bytes(b)))
    }

    /// Passes over a value of type `kind`.
    pub(super) fn skip(&mut self, kind: u8) -> Result<(), String> {
        self.skip_at(kind, 0)
    }

    fn skip_at(&mut self, kind: u8, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("values nest too deep".into());
        }
        let fixed = |n: usize| Some(n);
        let size = match kind {
            k if k == Type::Bool as u8 || k == Type::Byte as u8 => fixed(1),
            k if k == Type::I16 as u8 => fixed(2),
            k if k == Type::I32 as u8 => fixed(4),
            k if k == Type::I64 as u8 || k == Type::Double as u8 => fixed(8),
            _ => None,
        };
        if let Some(n) = size {
            self.take(n)?;
            return Ok(());
        }
        match kind {
            k if k == Type::String as u8 => {
                self.binary()?;
            }
            k if k == Type::Struct as u8 => loop {
                let (field, _) = self.field()?;
                if field == Type::Stop as u8 {
                    break;
                }
                self.skip_at(field, depth + 1)?;
            },
            k if k == Type::List as u8 || k == Type::Set as u8 => {
                let element = self.u8()?;
                let len = self.i32()?;
                for _ in 0..len.max(0) {
                    self.skip_at(element, depth + 1)?;
                }
            }
            k if k == Type::Map as u8 => {
                let key = self.u8()?;
                let value = self.u8()?;
                let len = self.i32()?;
                for _ in 0..len.max(0) {
                    self.skip_at(key, depth + 1)?;
                    self.skip_at(value, depth + 1)?;
                }
            }
            other => return Err(format!("unknown Thrift type {other}")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_message_reads_back() {
        let mut w = Writer::default();
        w.message_begin("Log", REPLY, 7);
        w.field(Type::List, 3);
        w.list_begin(Type::Struct, 1);
        w.field(Type::String, 1);
        w.string("x");
        w.stop();
        w.field(Type::I32, 0);
        w.i32(1);
        w.stop();
        assert_eq!(&w.buf[..4], &[0x80, 0x01, 0x00, 0x02]);
        let mut r = Reader::new(&w.buf);
        assert_eq!(r.message_begin(), Ok(("Log".to_string(), REPLY, 7)));
        assert_eq!(r.field(), Ok((Type::List as u8, 3)));
        r.skip(Type::List as u8).unwrap();
        assert_eq!(r.field(), Ok((Type::I32 as u8, 0)));
        assert_eq!(r.i32(), Ok(1));
        assert_eq!(r.field(), Ok((0, 0)));
    }

    #[test]
    fn short_and_strange_input_is_an_error() {
        assert!(Reader::new(&[0x80, 0x01]).message_begin().is_err());
        assert!(Reader::new(&[0, 0, 0, 3, b'L']).message_begin().is_err());
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff]);
        assert!(r.binary().is_err());
        assert!(Reader::new(&[]).skip(99).is_err());
        // A list that claims more elements than there are bytes.
        let mut r = Reader::new(&[Type::I64 as u8, 0x7f, 0xff, 0xff, 0xff]);
        assert!(r.skip(Type::List as u8).is_err());
    }
}
