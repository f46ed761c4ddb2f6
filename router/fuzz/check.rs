//! Checks shared by the router's fuzz targets and by `tests/fuzz_corpus.rs`,
//! which replays the committed corpora through them under `cargo test`.
//! Each check takes the raw fuzz input and panics when something is wrong.

#![allow(dead_code)]

use bytes::BytesMut;
use dtab::Dtab;
use http::header::{HeaderMap, HeaderValue};
use http::{Method, Version};
use router::server::h1::{Parsed, parse_request};
use router::service::dtab_headers::{
    DtabHeaderLimits, DtabHeaderReason, L5D_CTX_DTAB, L5D_DTAB, local_dtab,
};

/// The name config errors must give: what `router::config::load` would
/// give for a file of that name.
pub(crate) const CONFIG_FILE: &str = "linkerd.yaml";

/// How long a dtab header error may be, whatever the value: the value is
/// quoted to 100 characters and the parse error to a short context.
const MAX_HEADER_ERROR: usize = 2048;

/// Input layout: byte 0 says how many values (1 + low two bits mod 3) and,
/// in bits 4–6, whether value i is an `l5d-dtab` (set) or an
/// `l5d-ctx-dtab`; byte 1 picks the limits (high bit clear: the defaults;
/// set: at most `4 * (b & 0x7f)` bytes and `b & 0x0f` dentries); the rest
/// is the values, separated by `\n`. A value `HeaderValue` refuses cannot
/// arrive in a request and is left out.
pub(crate) fn check_dtab_headers(data: &[u8]) {
    let [b0, b1, rest @ ..] = data else {
        return;
    };
    let count = 1 + usize::from(b0 & 3) % 3;
    let limits = if b1 & 0x80 == 0 {
        DtabHeaderLimits::default()
    } else {
        DtabHeaderLimits {
            max_bytes: 4 * usize::from(b1 & 0x7f),
            max_dentries: usize::from(b1 & 0x0f),
        }
    };
    let mut headers = HeaderMap::new();
    let mut ctx: Vec<&[u8]> = Vec::new();
    let mut user: Vec<&[u8]> = Vec::new();
    for (i, value) in rest.splitn(count, |&b| b == b'\n').enumerate() {
        let Ok(header_value) = HeaderValue::from_bytes(value) else {
            continue;
        };
        let is_user = b0 & (0x10 << i) != 0;
        let name = if is_user { L5D_DTAB } else { L5D_CTX_DTAB };
        headers.append(name, header_value);
        if is_user {
            user.push(value);
        } else {
            ctx.push(value);
        }
    }
    let values: Vec<&[u8]> = ctx.iter().chain(&user).copied().collect();
    let bytes: usize = values.iter().map(|v| v.len()).sum();
    match local_dtab(&headers, &limits) {
        Ok(local) => {
            assert!(bytes <= limits.max_bytes, "{bytes} bytes over {limits:?}");
            assert!(
                local.len() <= limits.max_dentries,
                "{} dentries over {limits:?}",
                local.len()
            );
            // The same as reading each value alone, ctx values first.
            let mut expected = Dtab::empty();
            for value in &values {
                let text = match std::str::from_utf8(value) {
                    Ok(text) => text,
                    Err(e) => panic!("accepted a value that is not UTF-8: {e}"),
                };
                match Dtab::read(text) {
                    Ok(d) => expected = expected.concat(&d),
                    Err(e) => panic!("accepted {text:?}, which does not read alone: {e}"),
                }
            }
            assert_eq!(local, expected);
        }
        Err(e) => {
            assert!(e.header == L5D_DTAB || e.header == L5D_CTX_DTAB, "{e:?}");
            assert!(e.value.chars().count() <= 101, "quoted too long: {e:?}");
            match &e.reason {
                DtabHeaderReason::TooManyBytes { max } => {
                    assert_eq!(*max, limits.max_bytes);
                    assert!(bytes > limits.max_bytes, "{bytes} bytes refused: {e}");
                }
                DtabHeaderReason::TooManyDentries { max } => {
                    assert_eq!(*max, limits.max_dentries);
                    assert!(bytes <= limits.max_bytes, "bytes are counted first: {e}");
                }
                DtabHeaderReason::NotUtf8 { offset } => {
                    assert!(
                        values
                            .iter()
                            .any(|v| std::str::from_utf8(v).err().map(|e| e.valid_up_to())
                                == Some(*offset)),
                        "no value is invalid at {offset}: {e}"
                    );
                }
                DtabHeaderReason::Parse(p) => {
                    assert!(
                        values.iter().any(|v| p.offset <= v.len()),
                        "offset past every value: {e}"
                    );
                }
            }
            let message = e.to_string();
            assert!(
                message.starts_with(&format!("invalid {} header ", e.header)),
                "{message}"
            );
            assert!(message.len() <= MAX_HEADER_ERROR, "{}", message.len());
        }
    }
}

/// The methods the router's own HTTP/1 server takes; everything else goes
/// to hyper's.
const OWN_METHODS: [Method; 8] = [
    Method::GET,
    Method::HEAD,
    Method::OPTIONS,
    Method::DELETE,
    Method::TRACE,
    Method::POST,
    Method::PUT,
    Method::PATCH,
];

/// The whole input is what a connection has read so far.
pub(crate) fn check_h1_head(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    let parsed = parse_request(&mut buf);
    let taken = data.len() - buf.len();
    assert_eq!(&buf[..], &data[taken..], "only a head is taken off");
    match parsed {
        // Waiting for more, or hyper's: nothing is taken off.
        Parsed::Partial | Parsed::NotHere => assert_eq!(taken, 0),
        // Answered 400: the head is taken off, and the connection closed.
        Parsed::Bad => assert!(taken > 0),
        Parsed::Request(request) => {
            assert!(taken > 0);
            let head = &data[..taken];
            assert!(
                head.ends_with(b"\n\r\n") || head.ends_with(b"\n\n"),
                "{head:?}"
            );
            let parts = &request.parts;
            assert!(OWN_METHODS.contains(&parts.method), "{:?}", parts.method);
            assert_eq!(parts.version, Version::HTTP_11);
            // The head as httparse reads it alone: the same fields, values
            // cut from the right place in the buffer.
            let mut fields = [httparse::EMPTY_HEADER; 100];
            let mut again = httparse::Request::new(&mut fields);
            match again.parse(head) {
                Ok(httparse::Status::Complete(len)) => assert_eq!(len, taken),
                other => panic!("the head taken does not parse alone: {other:?}"),
            }
            assert_eq!(again.method, Some(parts.method.as_str()));
            // Less a `Connection` field that names no other field (only
            // `close` or `keep-alive`): the server does not keep it.
            let names_nothing = |value: &[u8]| {
                value
                    .split(|b| *b == b',')
                    .map(<[u8]>::trim_ascii)
                    .filter(|t| !t.is_empty())
                    .all(|t| {
                        t.eq_ignore_ascii_case(b"close") || t.eq_ignore_ascii_case(b"keep-alive")
                    })
            };
            let expected: Vec<(String, &[u8])> = again
                .headers
                .iter()
                .map(|h| (h.name.to_ascii_lowercase(), h.value))
                .filter(|(name, value)| !(name == "connection" && names_nothing(value)))
                .collect();
            let got: Vec<(String, &[u8])> = parts
                .headers
                .iter()
                .map(|(n, v)| (n.as_str().to_string(), v.as_bytes()))
                .collect();
            // A HeaderMap groups values by name; compare in that order.
            let mut expected_sorted = expected.clone();
            expected_sorted.sort_by(|a, b| a.0.cmp(&b.0));
            let mut got_sorted = got;
            got_sorted.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(got_sorted, expected_sorted);
            for name in ["transfer-encoding", "upgrade", "expect"] {
                assert!(!parts.headers.contains_key(name), "{name} is hyper's");
            }
            // A body is taken only with one declared length, small enough
            // to read whole (or lengths that are all 0).
            let lengths: Vec<&[u8]> = parts
                .headers
                .get_all(http::header::CONTENT_LENGTH)
                .iter()
                .map(|v| v.as_bytes().trim_ascii())
                .collect();
            let number = |l: &[u8]| std::str::from_utf8(l).unwrap().parse::<usize>().unwrap();
            let declared = match lengths.as_slice() {
                [] => 0,
                [one] => number(one),
                // Several are taken only when each says 0 ("00" as well).
                all => {
                    assert!(all.iter().all(|l| number(l) == 0), "{all:?}");
                    0
                }
            };
            assert_eq!(request.body_len(), declared);
            assert!(declared <= router::server::h1::WHOLE_BODY_LIMIT);
            // Read off the fields as sent: a `Connection: close` the server
            // dropped (it names no other field) still closes.
            let close = again
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("connection"))
                .any(|h| {
                    h.value
                        .split(|&b| b == b',')
                        .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
                });
            assert_eq!(request.close, close);
        }
    }
}

/// Parses the input as a router config file and validates it, as
/// `router::config::load` does. An error must name the file.
pub(crate) fn check_router_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let source = namers::config::Source::new(CONFIG_FILE, text.as_ref());
    let result = source
        .parse::<router::config::Config>()
        .and_then(|config| config.validate().map(drop).map_err(|e| source.error(&e)));
    if let Err(e) = result {
        check_config_error(&e);
    }
}

fn check_config_error(e: &namers::config::ConfigError) {
    assert_eq!(e.file, CONFIG_FILE, "{e}");
    assert!(!e.message.trim().is_empty(), "an error says why: {e:?}");
    assert!(e.to_string().starts_with("linkerd.yaml: "), "{e}");
}

/// The input is what a client might send after the HTTP/2 preface: frames
/// are read off it as the router's server reads them, and every header
/// block (HEADERS with its CONTINUATIONs) is decoded with one HPACK
/// decoder, as one connection would. Reading stops at the first frame
/// error, as the connection would. Each decoded field HTTP allows is
/// encoded again by the router's encoder, and that block must decode to the
/// same fields.
pub(crate) fn check_h2_frames(data: &[u8]) {
    use router::http2::frame::{self, Frame};
    use router::http2::hpack::{Decoder, Encoder, Field, Name};

    const TABLE: usize = 4096;
    let mut buf = BytesMut::from(data);
    let mut decoder = Decoder::new(TABLE);
    let mut block: Option<BytesMut> = None;
    loop {
        let frame = match frame::read(&mut buf, frame::DEFAULT_MAX_FRAME_SIZE) {
            Ok(Some(frame)) => frame,
            Ok(None) | Err(_) => return,
        };
        let (fragment, end_headers) = match frame {
            Frame::Headers {
                fragment,
                end_headers,
                ..
            } => {
                block = Some(BytesMut::new());
                (fragment, end_headers)
            }
            Frame::Continuation {
                fragment,
                end_headers,
                ..
            } => (fragment, end_headers),
            Frame::Data { data, flow_len, .. } => {
                assert!(data.len() <= flow_len as usize);
                continue;
            }
            _ => continue,
        };
        let Some(pending) = &mut block else {
            return;
        };
        pending.extend_from_slice(&fragment);
        if !end_headers {
            continue;
        }
        let whole = block.take().unwrap_or_default().freeze();
        let mut fields: Vec<Field> = Vec::new();
        if decoder.decode(&whole, |field| fields.push(field)).is_err() {
            return;
        }
        // Again through the router's encoder.
        let encoder = Encoder::new();
        let mut encoded = BytesMut::new();
        let mut kept = Vec::new();
        for field in fields {
            if let Name::Header(name) = &field.name
                && let Ok(mut value) = HeaderValue::from_maybe_shared(field.value.clone())
            {
                value.set_sensitive(field.sensitive);
                encoder.header(name, &value, &mut encoded);
                kept.push(field);
            }
        }
        let mut again = Vec::new();
        Decoder::new(TABLE)
            .decode(&encoded.freeze(), |field| again.push(field))
            .expect("the encoder's block decodes");
        assert_eq!(again, kept, "fields changed on the way through the encoder");
    }
}
