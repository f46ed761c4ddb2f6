//! The examples of RFC 7541's Appendix C, the errors a peer can cause, and
//! round trips through the encoder.

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{Method, StatusCode};
use proptest::prelude::*;

use super::decode::test_integer as decode_integer;
use super::encode::test_integer as encode_integer;
use super::*;

fn hex(text: &str) -> Bytes {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let bytes = digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).unwrap();
            u8::from_str_radix(pair, 16).unwrap()
        })
        .collect::<Vec<u8>>();
    Bytes::from(bytes)
}

/// A field as text: `(name, value)`.
fn text(field: &Field) -> (String, String) {
    let name = match &field.name {
        Name::Pseudo(pseudo) => pseudo.as_str().to_owned(),
        Name::Header(name) => name.as_str().to_owned(),
        Name::Malformed(bytes) => format!("malformed:{}", String::from_utf8_lossy(bytes)),
    };
    (name, String::from_utf8_lossy(&field.value).into_owned())
}

fn decode(decoder: &mut Decoder, block: &Bytes) -> Result<Vec<Field>, DecodeError> {
    let mut fields = Vec::new();
    decoder.decode(block, |field| fields.push(field))?;
    Ok(fields)
}

fn decode_text(decoder: &mut Decoder, block: &str) -> Vec<(String, String)> {
    decode(decoder, &hex(block))
        .unwrap()
        .iter()
        .map(text)
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

#[test]
fn integers_of_section_c1() {
    assert_eq!(encode_integer(5, 10), [0x0a]);
    assert_eq!(encode_integer(5, 1337), [0x1f, 0x9a, 0x0a]);
    assert_eq!(encode_integer(8, 42), [0x2a]);
    assert_eq!(decode_integer(&[0x0a], 5), Ok((10, 1)));
    assert_eq!(decode_integer(&[0x1f, 0x9a, 0x0a], 5), Ok((1337, 3)));
    assert_eq!(decode_integer(&[0x2a], 8), Ok((42, 1)));
    // The prefix's other bits are not part of the value.
    assert_eq!(decode_integer(&[0xea], 5), Ok((10, 1)));
    for value in [0, 30, 31, 127, 128, 255, 16_383, 16_384, 1 << 20] {
        for prefix in [4, 5, 6, 7] {
            let bytes = encode_integer(prefix, value);
            assert_eq!(decode_integer(&bytes, prefix), Ok((value, bytes.len())));
        }
    }
}

#[test]
fn integers_a_peer_can_break() {
    assert_eq!(decode_integer(&[], 5), Err(DecodeError::Truncated));
    assert_eq!(decode_integer(&[0x1f], 5), Err(DecodeError::Truncated));
    assert_eq!(
        decode_integer(&[0x1f, 0x80], 5),
        Err(DecodeError::Truncated)
    );
    assert_eq!(
        decode_integer(&[0x1f, 0xff, 0xff, 0xff, 0xff, 0x0f], 5),
        Err(DecodeError::IntegerOverflow)
    );
    // Zero-valued continuation bytes cannot make a long integer either.
    assert_eq!(
        decode_integer(&[0x1f, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], 5),
        Err(DecodeError::IntegerOverflow)
    );
}

#[test]
fn field_representations_of_section_c2() {
    let mut decoder = Decoder::new(4096);
    let fields = decode(
        &mut decoder,
        &hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"),
    )
    .unwrap();
    assert_eq!(
        fields.iter().map(text).collect::<Vec<_>>(),
        pairs(&[("custom-key", "custom-header")])
    );
    assert_eq!(decoder.table().size(), 55);

    let mut decoder = Decoder::new(4096);
    let fields = decode(&mut decoder, &hex("040c 2f73 616d 706c 652f 7061 7468")).unwrap();
    assert_eq!(
        fields.iter().map(text).collect::<Vec<_>>(),
        pairs(&[(":path", "/sample/path")])
    );
    assert_eq!(decoder.table().len(), 0);

    let mut decoder = Decoder::new(4096);
    let fields = decode(
        &mut decoder,
        &hex("1008 7061 7373 776f 7264 0673 6563 7265 74"),
    )
    .unwrap();
    assert_eq!(
        fields.iter().map(text).collect::<Vec<_>>(),
        pairs(&[("password", "secret")])
    );
    assert!(fields[0].sensitive);
    assert_eq!(decoder.table().len(), 0);

    let mut decoder = Decoder::new(4096);
    assert_eq!(
        decode_text(&mut decoder, "82"),
        pairs(&[(":method", "GET")])
    );
}

/// C.3 (plain strings) and C.4 (Huffman-coded): three requests on one
/// connection, the table carried over.
#[test]
fn requests_of_sections_c3_and_c4() {
    let blocks = [
        [
            "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
            "8286 84be 5808 6e6f 2d63 6163 6865",
            "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
        ],
        [
            "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
            "8286 84be 5886 a8eb 1064 9cbf",
            "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
        ],
    ];
    for blocks in blocks {
        let mut decoder = Decoder::new(4096);
        assert_eq!(
            decode_text(&mut decoder, blocks[0]),
            pairs(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com")
            ])
        );
        assert_eq!(decoder.table().size(), 57);
        assert_eq!(
            decode_text(&mut decoder, blocks[1]),
            pairs(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
                ("cache-control", "no-cache"),
            ])
        );
        assert_eq!(decoder.table().size(), 110);
        assert_eq!(
            decode_text(&mut decoder, blocks[2]),
            pairs(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value"),
            ])
        );
        assert_eq!(decoder.table().size(), 164);
        assert_eq!(decoder.table().len(), 3);
    }
}

/// C.5 (plain strings) and C.6 (Huffman-coded): three responses with a
/// 256-byte table, so that entries are evicted.
#[test]
fn responses_of_sections_c5_and_c6() {
    let blocks = [
        [
            "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 \
             2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 \
             6c65 2e63 6f6d",
            "4803 3330 37c1 c0bf",
            "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d \
             54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 \
             5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e \
             3d31",
        ],
        [
            "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 \
             2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
            "4883 640e ffc1 c0bf",
            "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab \
             77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f \
             9587 3160 65c0 03ed 4ee5 b106 3d50 07",
        ],
    ];
    let date = "Mon, 21 Oct 2013 20:13:21 GMT";
    let location = "https://www.example.com";
    for blocks in blocks {
        let mut decoder = Decoder::new(256);
        assert_eq!(
            decode_text(&mut decoder, blocks[0]),
            pairs(&[
                (":status", "302"),
                ("cache-control", "private"),
                ("date", date),
                ("location", location)
            ])
        );
        assert_eq!(decoder.table().size(), 222);
        assert_eq!(
            decode_text(&mut decoder, blocks[1]),
            pairs(&[
                (":status", "307"),
                ("cache-control", "private"),
                ("date", date),
                ("location", location)
            ])
        );
        assert_eq!(decoder.table().size(), 222);
        assert_eq!(
            decode_text(&mut decoder, blocks[2]),
            pairs(&[
                (":status", "200"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
                ("location", location),
                ("content-encoding", "gzip"),
                (
                    "set-cookie",
                    "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"
                ),
            ])
        );
        assert_eq!(decoder.table().size(), 215);
        assert_eq!(decoder.table().len(), 3);
    }
}

#[test]
fn indexes_must_name_an_entry() {
    let mut decoder = Decoder::new(4096);
    assert_eq!(
        decode(&mut decoder, &hex("80")),
        Err(DecodeError::BadIndex(0))
    );
    assert_eq!(
        decode(&mut decoder, &hex("be")),
        Err(DecodeError::BadIndex(62))
    );
    // A literal naming a missing entry.
    assert_eq!(
        decode(&mut decoder, &hex("7f00 0161")),
        Err(DecodeError::BadIndex(63))
    );
    // After one insertion, 62 is there and 63 is not.
    decode(&mut decoder, &hex("4001 6101 62")).unwrap();
    assert_eq!(decode_text(&mut decoder, "be"), pairs(&[("a", "b")]));
    assert_eq!(
        decode(&mut decoder, &hex("bf")),
        Err(DecodeError::BadIndex(63))
    );
}

#[test]
fn strings_must_fit_the_block() {
    let mut decoder = Decoder::new(4096);
    assert_eq!(
        decode(&mut decoder, &hex("0005 6162")),
        Err(DecodeError::Truncated)
    );
    assert_eq!(
        decode(&mut decoder, &hex("0001 61")),
        Err(DecodeError::Truncated)
    );
    assert_eq!(
        decode(&mut decoder, &hex("40")),
        Err(DecodeError::Truncated)
    );
    // A Huffman-coded value with bad padding.
    assert_eq!(
        decode(&mut decoder, &hex("0001 6181 18")),
        Err(DecodeError::Huffman(huffman::HuffmanError::Padding))
    );
}

#[test]
fn size_updates_come_first_and_within_the_limit() {
    let mut decoder = Decoder::new(4096);
    decode(&mut decoder, &hex("4001 6101 62")).unwrap();
    assert_eq!(decoder.table().len(), 1);
    // To 0 and back to 4096 before a field: the entry is gone.
    assert_eq!(
        decode_text(&mut decoder, "20 3fe1 1f 82"),
        pairs(&[(":method", "GET")])
    );
    assert_eq!(decoder.table().len(), 0);
    // After a field.
    assert_eq!(
        decode(&mut decoder, &hex("82 20")),
        Err(DecodeError::BadSizeUpdate(0))
    );
    // Above what we allowed.
    let mut decoder = Decoder::new(256);
    assert_eq!(
        decode(&mut decoder, &hex("3fe1 1f")),
        Err(DecodeError::BadSizeUpdate(4096))
    );
}

#[test]
fn an_entry_larger_than_the_table_empties_it() {
    let mut decoder = Decoder::new(64);
    decode(&mut decoder, &hex("4001 6101 62")).unwrap();
    assert_eq!(decoder.table().size(), 34);
    // 1 + 40 + 32 bytes > 64.
    let mut block = BytesMut::from(&hex("4001 6128")[..]);
    block.extend_from_slice(&[b'x'; 40]);
    let fields = decode(&mut decoder, &block.freeze()).unwrap();
    assert_eq!(fields.len(), 1);
    assert_eq!(decoder.table().len(), 0);
    assert_eq!(decoder.table().size(), 0);
}

#[test]
fn names_http2_forbids_are_marked_and_still_indexed() {
    let mut decoder = Decoder::new(4096);
    // "Custom-Key: v" and ":foo: v", both with incremental indexing.
    let fields = decode(
        &mut decoder,
        &hex("400a 4375 7374 6f6d 2d4b 6579 0176 4004 3a66 6f6f 0176"),
    )
    .unwrap();
    assert_eq!(
        fields.iter().map(text).collect::<Vec<_>>(),
        pairs(&[("malformed:Custom-Key", "v"), ("malformed::foo", "v")])
    );
    assert_eq!(decoder.table().len(), 2);
    // The table still answers for them.
    assert_eq!(
        decode_text(&mut decoder, "bf"),
        pairs(&[("malformed:Custom-Key", "v")])
    );
    // Known pseudo-headers are recognised from literals as well.
    assert_eq!(
        decode_text(
            &mut decoder,
            "0009 3a70 726f 746f 636f 6c09 7765 6273 6f63 6b65 74"
        ),
        pairs(&[(":protocol", "websocket")])
    );
}

#[test]
fn the_encoder_uses_static_entries_and_literals() {
    let encoder = Encoder::new();
    let mut dst = BytesMut::new();
    encoder.method(&Method::GET, &mut dst);
    encoder.status(StatusCode::OK, &mut dst);
    encoder.pseudo(Pseudo::Path, b"/", &mut dst);
    assert_eq!(&dst[..], [0x82, 0x88, 0x84]);
    dst.clear();
    encoder.header(
        &http::header::CONTENT_TYPE,
        &HeaderValue::from_static("application/grpc"),
        &mut dst,
    );
    // Without indexing, name index 31 (15 + 16), a 16-byte value.
    assert_eq!(&dst[..3], [0x0f, 0x10, 0x10]);
    assert_eq!(&dst[3..], b"application/grpc");
    dst.clear();
    let mut secret = HeaderValue::from_static("s");
    secret.set_sensitive(true);
    encoder.header(&HeaderName::from_static("x-token"), &secret, &mut dst);
    assert_eq!(&dst[..], b"\x10\x07x-token\x01s");
}

#[test]
fn the_encoder_answers_a_table_size_change_once() {
    let mut encoder = Encoder::new();
    let mut dst = BytesMut::new();
    encoder.start_block(&mut dst);
    assert!(dst.is_empty());
    encoder.peer_table_size_changed();
    encoder.start_block(&mut dst);
    encoder.method(&Method::GET, &mut dst);
    encoder.start_block(&mut dst);
    assert_eq!(&dst[..], [0x20, 0x82]);
    // A decoder that allowed only 0 bytes takes it.
    let mut decoder = Decoder::new(0);
    assert_eq!(decode(&mut decoder, &dst.freeze()).unwrap().len(), 1);
}

fn header_name() -> impl Strategy<Value = HeaderName> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,20}".prop_map(|name| HeaderName::from_bytes(name.as_bytes()).unwrap()),
        Just(http::header::CONTENT_TYPE),
        Just(http::header::USER_AGENT),
        Just(http::header::WWW_AUTHENTICATE),
    ]
}

fn header_value() -> impl Strategy<Value = HeaderValue> {
    (
        proptest::collection::vec(
            prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff],
            0..200,
        ),
        any::<bool>(),
    )
        .prop_map(|(bytes, sensitive)| {
            let mut value = HeaderValue::from_bytes(&bytes).unwrap();
            value.set_sensitive(sensitive);
            value
        })
}

proptest! {
    #[test]
    fn what_the_encoder_writes_decodes_to_the_same_fields(
        method in prop_oneof![Just(Method::GET), Just(Method::POST), Just(Method::PATCH)],
        status in 100u16..600,
        path in "/[!-~]{0,300}",
        authority in prop_oneof![Just(String::new()), "[a-z0-9.:-]{1,40}"],
        headers in proptest::collection::vec((header_name(), header_value()), 0..20),
        table_changed in any::<bool>(),
    ) {
        let mut encoder = Encoder::new();
        if table_changed {
            encoder.peer_table_size_changed();
        }
        let mut dst = BytesMut::new();
        encoder.start_block(&mut dst);
        encoder.method(&method, &mut dst);
        encoder.status(StatusCode::from_u16(status).unwrap(), &mut dst);
        encoder.pseudo(Pseudo::Path, path.as_bytes(), &mut dst);
        encoder.pseudo(Pseudo::Authority, authority.as_bytes(), &mut dst);
        for (name, value) in &headers {
            encoder.header(name, value, &mut dst);
        }
        let mut decoder = Decoder::new(4096);
        let fields = decode(&mut decoder, &dst.freeze()).unwrap();
        let mut expected = vec![
            Field { name: Name::Pseudo(Pseudo::Method), value: Bytes::from(method.as_str().to_owned()), sensitive: false },
            Field { name: Name::Pseudo(Pseudo::Status), value: Bytes::from(status.to_string()), sensitive: false },
            Field { name: Name::Pseudo(Pseudo::Path), value: Bytes::from(path), sensitive: false },
            Field { name: Name::Pseudo(Pseudo::Authority), value: Bytes::from(authority), sensitive: false },
        ];
        for (name, value) in headers {
            expected.push(Field {
                name: Name::Header(name),
                value: Bytes::copy_from_slice(value.as_bytes()),
                sensitive: value.is_sensitive(),
            });
        }
        prop_assert_eq!(fields, expected);
        // Nothing was added to the peer's table.
        prop_assert_eq!(decoder.table().len(), 0);
    }

    #[test]
    fn any_block_decodes_or_fails_cleanly(blocks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..8)) {
        let mut decoder = Decoder::new(256);
        for block in blocks {
            let _ = decode(&mut decoder, &Bytes::from(block));
            prop_assert!(decoder.table().size() <= 256);
        }
    }
}
