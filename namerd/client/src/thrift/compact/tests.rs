#![allow(clippy::unwrap_used)]

use super::*;
use crate::thrift::protocol::{self, message_type};
use crate::thrift::types::{APP_INTERNAL_ERROR, ApplicationException};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A Thrift value of any type, to write and read back.
#[derive(Clone, Debug, PartialEq)]
enum V {
    Bool(bool),
    Byte(i8),
    I16(i16),
    I32(i32),
    I64(i64),
    Double(f64),
    Str(String),
    Uuid([u8; 16]),
    List(u8, Vec<V>),
    Set(u8, Vec<V>),
    Map(u8, u8, Vec<(V, V)>),
    Struct(Vec<(i16, V)>),
}

impl V {
    fn ttype(&self) -> u8 {
        match self {
            V::Bool(_) => ttype::BOOL,
            V::Byte(_) => ttype::BYTE,
            V::I16(_) => ttype::I16,
            V::I32(_) => ttype::I32,
            V::I64(_) => ttype::I64,
            V::Double(_) => ttype::DOUBLE,
            V::Str(_) => ttype::STRING,
            V::Uuid(_) => ttype::UUID,
            V::List(..) => ttype::LIST,
            V::Set(..) => ttype::SET,
            V::Map(..) => ttype::MAP,
            V::Struct(_) => ttype::STRUCT,
        }
    }

    fn write(&self, w: &mut Writer) {
        match self {
            V::Bool(v) => w.bool(*v),
            V::Byte(v) => w.byte(*v),
            V::I16(v) => w.i16(*v),
            V::I32(v) => w.i32(*v),
            V::I64(v) => w.i64(*v),
            V::Double(v) => w.double(*v),
            V::Str(v) => w.string(v),
            V::Uuid(v) => w.uuid(*v),
            V::List(elem, items) | V::Set(elem, items) => {
                w.list_begin(*elem, items.len());
                for item in items {
                    item.write(w);
                }
            }
            V::Map(k, v, items) => {
                w.map_begin(*k, *v, items.len());
                for (key, value) in items {
                    key.write(w);
                    value.write(w);
                }
            }
            V::Struct(fields) => {
                w.struct_begin();
                for (id, value) in fields {
                    w.field_begin(value.ttype(), *id);
                    value.write(w);
                }
                w.field_stop();
                w.struct_end();
            }
        }
    }

    /// Reads a value shaped like `self` (its type, and for collections
    /// their element types).
    fn read_like(&self, r: &mut Reader<'_>) -> Result<V, DecodeError> {
        Ok(match self {
            V::Bool(_) => V::Bool(r.bool()?),
            V::Byte(_) => V::Byte(r.byte()?),
            V::I16(_) => V::I16(r.i16()?),
            V::I32(_) => V::I32(r.i32()?),
            V::I64(_) => V::I64(r.i64()?),
            V::Double(_) => V::Double(r.double()?),
            V::Str(_) => V::Str(r.string()?),
            V::Uuid(_) => V::Uuid(r.uuid()?),
            V::List(elem, items) | V::Set(elem, items) => {
                let (found, len) = r.list_begin()?;
                assert!(found == *elem || len == 0, "{found} {elem}");
                let mut out = Vec::new();
                for item in items.iter().take(len) {
                    out.push(item.read_like(r)?);
                }
                if matches!(self, V::Set(..)) {
                    V::Set(*elem, out)
                } else {
                    V::List(*elem, out)
                }
            }
            V::Map(k, v, items) => {
                let (fk, fv, len) = r.map_begin()?;
                if len > 0 {
                    assert_eq!((fk, fv), (*k, *v));
                }
                let mut out = Vec::new();
                for (key, value) in items.iter().take(len) {
                    out.push((key.read_like(r)?, value.read_like(r)?));
                }
                V::Map(*k, *v, out)
            }
            V::Struct(fields) => {
                let mut out = Vec::new();
                r.read_struct(|r, id, ttype| {
                    let Some((_, like)) = fields.iter().find(|(i, _)| *i == id) else {
                        return Ok(false);
                    };
                    assert_eq!(ttype, like.ttype(), "field {id}");
                    out.push((id, like.read_like(r)?));
                    Ok(true)
                })?;
                V::Struct(out)
            }
        })
    }
}

/// A struct with every type, edge values, field ids that jump both ways,
/// long and empty collections, and nesting.
fn every_type() -> V {
    let inner = V::Struct(vec![
        (1, V::Bool(false)),
        (2, V::Str(String::new())),
        (-5, V::I32(-1)),
    ]);
    V::Struct(vec![
        (1, V::Bool(true)),
        (2, V::Bool(false)),
        (3, V::Byte(-128)),
        (4, V::I16(i16::MIN)),
        (5, V::I16(i16::MAX)),
        (20, V::I32(i32::MIN)),
        (21, V::I32(i32::MAX)),
        (7, V::I64(i64::MIN)),
        (8, V::I64(i64::MAX)),
        (9, V::I64(0)),
        (10, V::Double(-0.5)),
        (11, V::Double(f64::MAX)),
        (12, V::Str("héllo".into())),
        (13, V::Str("x".repeat(300))),
        (14, V::Uuid([7; 16])),
        (
            15,
            V::List(
                ttype::I32,
                (0..14).map(|i| V::I32(i * 1000 - 7000)).collect(),
            ),
        ),
        (
            16,
            V::List(ttype::I64, (0..15).map(|i| V::I64(i << 40)).collect()),
        ),
        (17, V::List(ttype::STRING, Vec::new())),
        (18, V::Set(ttype::BOOL, vec![V::Bool(true), V::Bool(false)])),
        (19, V::Map(ttype::STRING, ttype::I32, Vec::new())),
        (
            300,
            V::Map(
                ttype::STRING,
                ttype::STRUCT,
                vec![
                    (V::Str("a".into()), inner.clone()),
                    (V::Str("b".into()), inner.clone()),
                ],
            ),
        ),
        (
            -1,
            V::List(
                ttype::LIST,
                vec![V::List(ttype::DOUBLE, vec![V::Double(1.5)])],
            ),
        ),
        (i16::MAX, inner),
        (i16::MIN, V::Bool(true)),
    ])
}

fn message(value: &V) -> Vec<u8> {
    let mut w = Writer::new();
    w.message_begin("getThings", message_type::CALL, -3);
    value.write(&mut w);
    w.into_bytes()
}

#[test]
fn values_of_every_type_read_back_as_written() {
    let value = every_type();
    let bytes = message(&value);
    let mut r = Reader::new(&bytes);
    let header = r.message_begin().unwrap();
    assert_eq!(header.name, "getThings");
    assert_eq!(header.kind, message_type::CALL);
    assert_eq!(header.seq_id, -3);
    assert_eq!(value.read_like(&mut r).unwrap(), value);
    assert_eq!(r.remaining(), 0);
    // Skipping the body ends exactly at the end too.
    let mut r = Reader::new(&bytes);
    r.message_begin().unwrap();
    r.skip(ttype::STRUCT).unwrap();
    assert_eq!(r.position(), bytes.len());
}

#[test]
fn integers_round_trip_through_zigzag_varints() {
    let mut values = vec![0, 1, -1, 63, -64, 64, 8191, -8192, 1 << 31, -(1 << 31)];
    values.extend([i64::MIN, i64::MAX, i64::MIN + 1, i64::MAX - 1]);
    for shift in 0..63 {
        values.push(1 << shift);
        values.push(-(1 << shift));
        values.push((1 << shift) - 1);
    }
    for v in values {
        let mut w = Writer::new();
        w.i64(v);
        if let Ok(v32) = i32::try_from(v) {
            w.i32(v32);
        }
        if let Ok(v16) = i16::try_from(v) {
            w.i16(v16);
        }
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.i64().unwrap(), v);
        if let Ok(v32) = i32::try_from(v) {
            assert_eq!(r.i32().unwrap(), v32);
        }
        if let Ok(v16) = i16::try_from(v) {
            assert_eq!(r.i16().unwrap(), v16);
        }
        assert_eq!(r.remaining(), 0, "{v}");
    }
}

#[test]
fn encodings_are_byte_exact() {
    // A call header: protocol id, version 1 with type 1, seq id 1, name.
    let mut w = Writer::new();
    w.message_begin("ping", message_type::CALL, 1);
    let mut expected = hex("82 21 01 04");
    expected.extend_from_slice(b"ping");
    assert_eq!(w.into_bytes(), expected);
    // A oneway header with a negative seq id: a 5-byte varint.
    let mut w = Writer::new();
    w.message_begin("", message_type::ONEWAY, -1);
    assert_eq!(w.into_bytes(), hex("82 81 ffffffff0f 00"));
    // Field 1 i32 1 (delta form), field 20 i32 (long form), a true bool
    // field 21, a list of 3 i32s, an empty and a one-entry map.
    let mut w = Writer::new();
    w.struct_begin();
    w.field_begin(ttype::I32, 1);
    w.i32(1);
    w.field_begin(ttype::I32, 20);
    w.i32(-1);
    w.field_begin(ttype::BOOL, 21);
    w.bool(true);
    w.field_begin(ttype::LIST, 22);
    w.list_begin(ttype::I32, 3);
    for i in 0..3 {
        w.i32(i);
    }
    w.field_begin(ttype::MAP, 23);
    w.map_begin(ttype::STRING, ttype::I32, 0);
    w.field_begin(ttype::MAP, 24);
    w.map_begin(ttype::STRING, ttype::I32, 1);
    w.string("k");
    w.i32(2);
    w.field_stop();
    w.struct_end();
    assert_eq!(
        w.into_bytes(),
        hex("15 02  05 28 01  11  19 35 00 02 04  1b 00  1b 01 85 01 6b 04  00")
    );
}

#[test]
fn an_application_exception_reads_back() {
    let e = ApplicationException {
        message: "no endpoints".into(),
        kind: APP_INTERNAL_ERROR,
    };
    let bytes = encode_exception("echo", 9, &e);
    let mut r = Reader::new(&bytes);
    let header = r.message_begin().unwrap();
    assert_eq!(
        (header.name.as_str(), header.kind, header.seq_id),
        ("echo", message_type::EXCEPTION, 9)
    );
    let (mut message, mut kind) = (String::new(), 0);
    r.read_struct(|r, id, ttype| match (id, ttype) {
        (1, ttype::STRING) => {
            message = r.string()?;
            Ok(true)
        }
        (2, ttype::I32) => {
            kind = r.i32()?;
            Ok(true)
        }
        _ => Ok(false),
    })
    .unwrap();
    assert_eq!(
        (message.as_str(), kind),
        ("no endpoints", APP_INTERNAL_ERROR)
    );
    assert_eq!(r.remaining(), 0);
}

/// Every prefix of a whole message fails to skip for want of bytes, and
/// says it wants more than it has but no more than the whole message.
#[test]
fn a_message_cut_short_wants_more_bytes_and_never_too_many() {
    let bytes = message(&every_type());
    for cut in 0..bytes.len() {
        let prefix = &bytes[..cut];
        let mut r = Reader::new(prefix);
        let skipped = r.message_begin().and_then(|_| r.skip(ttype::STRUCT));
        assert!(skipped.is_err(), "a prefix of {cut} bytes");
        let wanted = r
            .wanted()
            .unwrap_or_else(|| panic!("cut at {cut}: {skipped:?}"));
        assert!(
            wanted > cut && wanted <= bytes.len(),
            "cut at {cut}: {wanted}"
        );
    }
}

/// The same for the binary protocol's reader.
#[test]
fn a_binary_message_cut_short_wants_more_bytes_and_never_too_many() {
    let mut w = protocol::Writer::new();
    w.message_begin("echo", message_type::CALL, 5);
    w.field_begin(ttype::STRING, 1);
    w.string("hello");
    w.field_begin(ttype::LIST, 2);
    w.list_begin(ttype::I64, 3);
    for i in 0..3 {
        w.i64(i);
    }
    w.field_begin(ttype::MAP, 3);
    w.map_begin(ttype::I32, ttype::STRUCT, 1);
    w.i32(1);
    w.field_begin(ttype::DOUBLE, 1);
    w.double(0.25);
    w.field_stop();
    w.field_stop();
    let bytes = w.into_bytes();
    let mut r = protocol::Reader::new(&bytes);
    r.message_begin().unwrap();
    r.skip(ttype::STRUCT).unwrap();
    assert_eq!(r.position(), bytes.len());
    for cut in 0..bytes.len() {
        let mut r = protocol::Reader::new(&bytes[..cut]);
        let skipped = r.message_begin().and_then(|_| r.skip(ttype::STRUCT));
        assert!(skipped.is_err(), "a prefix of {cut} bytes");
        let wanted = r
            .wanted()
            .unwrap_or_else(|| panic!("cut at {cut}: {skipped:?}"));
        assert!(
            wanted > cut && wanted <= bytes.len(),
            "cut at {cut}: {wanted}"
        );
    }
}

#[test]
fn malformed_input_is_refused_not_waited_for() {
    let refused = |bytes: &[u8]| {
        let mut r = Reader::new(bytes);
        let e = r
            .message_begin()
            .and_then(|_| r.skip(ttype::STRUCT))
            .unwrap_err();
        (e, r.wanted())
    };
    // Not the compact protocol (a binary header, an HTTP request).
    let (e, wanted) = refused(&hex("80010001 00000004"));
    assert!(e.reason.contains("protocol id"), "{e}");
    assert_eq!(wanted, None);
    let (e, _) = refused(b"GET / HTTP/1.1\r\n");
    assert!(e.reason.contains("protocol id"), "{e}");
    // Version 2.
    let (e, _) = refused(&hex("82 22 01 00"));
    assert!(e.reason.contains("version"), "{e}");
    // A varint that never ends.
    let (e, wanted) = refused(&hex("82 21 ffffffffffffff 00"));
    assert!(e.reason.contains("varint longer than 32 bits"), "{e}");
    assert_eq!(wanted, None);
    // An i64 varint of 11 bytes.
    let bytes = hex("ffffffffffffffffffff01");
    let mut r = Reader::new(&bytes);
    assert!(r.i64().unwrap_err().reason.contains("64 bits"));
    // An unknown field type (14).
    let (e, wanted) = refused(&hex("82 21 01 00 1e 00"));
    assert!(e.reason.contains("unknown compact type code 14"), "{e}");
    assert_eq!(wanted, None);
    // A list of an unknown element type.
    let (e, _) = refused(&hex("82 21 01 00 19 3e 00"));
    assert!(e.reason.contains("element type"), "{e}");
    // A string whose length is over 2^31 - 1.
    let (e, _) = refused(&hex("82 21 01 00 18 ffffffff0f"));
    assert!(e.reason.contains("over 2^31"), "{e}");
    // Lists nested 10,000 deep: an error, not a stack overflow.
    let mut deep = hex("82 21 01 00 19");
    deep.extend(std::iter::repeat_n(0x19, 10_000));
    let (e, _) = refused(&deep);
    assert!(e.reason.contains("nested deeper"), "{e}");
    // An i16 field id past 32767 by delta.
    let mut w = Writer::new();
    w.struct_begin();
    w.field_begin(ttype::BYTE, i16::MAX);
    w.byte(1);
    let mut bytes = w.into_bytes();
    bytes.extend(hex("13 01 00"));
    let e = Reader::new(&bytes).skip(ttype::STRUCT).unwrap_err();
    assert!(e.reason.contains("field id"), "{e}");
}

#[test]
fn hostile_sizes_want_the_bytes_they_announce() {
    // A list announcing 2^30 strings in a few bytes: the reader wants
    // them (a stream reader compares that with its size limit) and
    // allocates nothing.
    let bytes = hex("f8 8080808004");
    let mut r = Reader::new(&bytes);
    let e = r.list_begin().unwrap_err();
    assert!(e.reason.contains("cannot fit"), "{e}");
    assert_eq!(r.wanted(), Some(6 + (1 << 30)));
    // A map of 2^20 i32 to double entries: 9 bytes each at least.
    let bytes = hex("808040 57");
    let mut r = Reader::new(&bytes);
    r.map_begin().unwrap_err();
    assert_eq!(r.wanted(), Some(4 + 9 * (1 << 20)));
}
