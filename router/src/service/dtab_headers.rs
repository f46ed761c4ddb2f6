//! Per-request dtabs carried in headers.
//!
//! A request's local dtab is every `l5d-ctx-dtab` value (written by routers
//! upstream) followed by every `l5d-dtab` value (written by users), each
//! value read whole as a dtab: unlike Finagle's `Dtab-Local`, values are not
//! split on `,`. The router binds with `base ++ local`, so later dentries,
//! and so user overrides, win. Downstream, the local dtab travels on as one
//! `l5d-ctx-dtab`. `dtab-local` is deprecated and ignored: it passes through
//! untouched.
//!
//! The headers are bounded ([`DtabHeaderLimits`]): their bytes are counted
//! before anything is parsed, and the dentries as each value is read.

use dtab::{Dtab, ParseError};
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// The dtab a router forwards with a request.
pub const L5D_CTX_DTAB: HeaderName = HeaderName::from_static("l5d-ctx-dtab");

/// The dtab a user adds to a request; consumed by the first router.
pub const L5D_DTAB: HeaderName = HeaderName::from_static("l5d-dtab");

/// How much of a bad header value an error quotes.
const QUOTED_CHARS: usize = 100;

pub use namers::config::{
    DEFAULT_LOCAL_DTAB_MAX_BYTES as DEFAULT_MAX_BYTES,
    DEFAULT_LOCAL_DTAB_MAX_DENTRIES as DEFAULT_MAX_DENTRIES,
};

/// How large a request's local dtab may be: bytes of every `l5d-ctx-dtab`
/// and `l5d-dtab` value together, and dentries of the local dtab they
/// make (the limits namerd puts on its `dtab` parameter too).
pub type DtabHeaderLimits = namers::config::LocalDtabLimits;

/// A dtab header that could not be read: the request is answered `400` with
/// this as `l5d-err`; the sender is to blame and a retry cannot help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {header} header {value:?}: {reason}")]
pub struct DtabHeaderError {
    /// `l5d-ctx-dtab` or `l5d-dtab`.
    pub header: HeaderName,
    /// The value, shortened when long.
    pub value: String,
    /// What is wrong with it.
    pub reason: DtabHeaderReason,
}

/// Why a dtab header value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtabHeaderReason {
    /// The value is not UTF-8 (dtab text always is).
    #[error("not UTF-8 at byte {offset}")]
    NotUtf8 {
        /// Where the first invalid byte is.
        offset: usize,
    },
    /// The value is not a dtab; the error says where and what was expected.
    #[error("{0}")]
    Parse(ParseError),
    /// With this value the dtab headers hold more bytes than allowed.
    #[error("the dtab headers hold more than {max} bytes (limit dtabHeaderLimits.maxBytes)")]
    TooManyBytes {
        /// The limit.
        max: usize,
    },
    /// With this value the local dtab has more dentries than allowed.
    #[error("the local dtab has more than {max} dentries (limit dtabHeaderLimits.maxDentries)")]
    TooManyDentries {
        /// The limit.
        max: usize,
    },
}

/// The request's local dtab: all `l5d-ctx-dtab` values, then all `l5d-dtab`
/// values, each read with [`Dtab::read`], in order, within `limits`.
pub fn local_dtab(headers: &HeaderMap, limits: &DtabHeaderLimits) -> Result<Dtab, DtabHeaderError> {
    let mut local = Dtab::empty();
    // Most requests carry neither header: one pass over the names costs
    // less than a hashed lookup of each.
    if !headers.keys().any(|n| n == L5D_CTX_DTAB || n == L5D_DTAB) {
        return Ok(local);
    }
    // Sized up before anything is parsed.
    let mut bytes = 0usize;
    for header in [L5D_CTX_DTAB, L5D_DTAB] {
        for value in headers.get_all(&header) {
            bytes = bytes.saturating_add(value.len());
            if bytes > limits.max_bytes {
                return Err(header_error(
                    &header,
                    value,
                    DtabHeaderReason::TooManyBytes {
                        max: limits.max_bytes,
                    },
                ));
            }
        }
    }
    for header in [L5D_CTX_DTAB, L5D_DTAB] {
        for value in headers.get_all(&header) {
            local = local.concat(&read_value(&header, value)?);
            if local.len() > limits.max_dentries {
                return Err(header_error(
                    &header,
                    value,
                    DtabHeaderReason::TooManyDentries {
                        max: limits.max_dentries,
                    },
                ));
            }
        }
    }
    Ok(local)
}

fn header_error(
    header: &HeaderName,
    value: &HeaderValue,
    reason: DtabHeaderReason,
) -> DtabHeaderError {
    DtabHeaderError {
        header: header.clone(),
        value: quote(value.as_bytes()),
        reason,
    }
}

fn read_value(header: &HeaderName, value: &HeaderValue) -> Result<Dtab, DtabHeaderError> {
    let bytes = value.as_bytes();
    let error = |reason| header_error(header, value, reason);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        error(DtabHeaderReason::NotUtf8 {
            offset: e.valid_up_to(),
        })
    })?;
    Dtab::read(text).map_err(|e| error(DtabHeaderReason::Parse(e)))
}

/// The start of a header value, for an error message: at most
/// [`QUOTED_CHARS`] characters, invalid UTF-8 replaced, `…` when cut.
fn quote(bytes: &[u8]) -> String {
    // Four bytes per character at most: never decode a huge value whole.
    let head = &bytes[..bytes.len().min(QUOTED_CHARS * 4)];
    let text = String::from_utf8_lossy(head);
    let mut chars = text.chars();
    let mut out: String = chars.by_ref().take(QUOTED_CHARS).collect();
    if chars.next().is_some() || head.len() < bytes.len() {
        out.push('…');
    }
    out
}

/// Prepares a request's headers for the next hop: drops `l5d-dtab` and
/// carries `local` (ctx ++ user) as a single `l5d-ctx-dtab`, or none when
/// it is empty. Other headers, `dtab-local` included, are left alone.
pub fn forward_headers(headers: &mut HeaderMap, local: &Dtab) {
    if local.is_empty() {
        // The common case: no dtab headers came, so there is nothing to
        // remove, and a pass over the names costs less than two lookups.
        if headers.keys().any(|n| n == L5D_DTAB || n == L5D_CTX_DTAB) {
            headers.remove(L5D_DTAB);
            headers.remove(L5D_CTX_DTAB);
        }
        return;
    }
    headers.remove(L5D_DTAB);
    // `show` prints only visible ASCII, which is always a valid value.
    match HeaderValue::try_from(local.show()) {
        Ok(value) => {
            headers.insert(L5D_CTX_DTAB, value);
        }
        Err(_) => {
            headers.remove(L5D_CTX_DTAB);
        }
    }
}

/// Removes every `l5d-*` request header, for servers with
/// `clearContext: true` that accept requests from untrusted clients.
pub fn clear_context(headers: &mut HeaderMap) {
    let context: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("l5d-"))
        .cloned()
        .collect();
    for name in context {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use dtab::{NameTree, Path};

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    const LIMITS: DtabHeaderLimits = DtabHeaderLimits {
        max_bytes: DEFAULT_MAX_BYTES,
        max_dentries: DEFAULT_MAX_DENTRIES,
    };

    /// For the tests of the parser on values larger than any limit.
    const UNLIMITED: DtabHeaderLimits = DtabHeaderLimits {
        max_bytes: usize::MAX,
        max_dentries: usize::MAX,
    };

    fn dtab(text: &str) -> Dtab {
        Dtab::read(text).unwrap()
    }

    fn path(text: &str) -> Path {
        Path::read(text).unwrap()
    }

    #[test]
    fn no_headers_is_the_empty_dtab() {
        assert!(local_dtab(&HeaderMap::new(), &LIMITS).unwrap().is_empty());
        assert!(
            local_dtab(&headers(&[("l5d-dtab", "")]), &LIMITS)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn ctx_values_then_user_values_in_order() {
        // Header order in the request does not matter; kind of header does.
        let map = headers(&[
            ("l5d-dtab", "/u1=>/x"),
            ("l5d-ctx-dtab", "/c1=>/x;/c2=>/x"),
            ("l5d-dtab", "/u2=>/x"),
            ("l5d-ctx-dtab", "/c3=>/x"),
        ]);
        assert_eq!(
            local_dtab(&map, &LIMITS).unwrap(),
            dtab("/c1=>/x;/c2=>/x;/c3=>/x;/u1=>/x;/u2=>/x")
        );
    }

    #[test]
    fn user_dentries_win_when_bound() {
        let map = headers(&[
            ("l5d-dtab", "/svc/web => /#/io.l5d.fs/web-v2"),
            ("l5d-ctx-dtab", "/svc/web => /#/io.l5d.fs/web-v1"),
        ]);
        let base = dtab("/svc => /#/io.l5d.fs");
        let effective = base.concat(&local_dtab(&map, &LIMITS).unwrap());
        // Lookup lists matches last first; binding takes the first that binds.
        let NameTree::Alt(choices) = effective.lookup(&path("/svc/web/x")) else {
            panic!("expected an alt of all three matches");
        };
        assert_eq!(
            choices,
            [
                NameTree::Leaf(path("/#/io.l5d.fs/web-v2/x")),
                NameTree::Leaf(path("/#/io.l5d.fs/web-v1/x")),
                NameTree::Leaf(path("/#/io.l5d.fs/web/x")),
            ]
        );
    }

    #[test]
    fn commas_are_not_separators() {
        // Finagle's Dtab-Local would split this into two dtabs; l5d-dtab
        // reads the value whole, where `,` is not valid.
        let err = local_dtab(&headers(&[("l5d-dtab", "/a=>/b,/c=>/d")]), &LIMITS).unwrap_err();
        let DtabHeaderReason::Parse(e) = &err.reason else {
            panic!("{err}");
        };
        assert_eq!(e.offset, "/a=>/b".len());
        // Separate header lines are separate values.
        assert_eq!(
            local_dtab(
                &headers(&[("l5d-dtab", "/a=>/b"), ("l5d-dtab", "/c=>/d")]),
                &LIMITS
            )
            .unwrap(),
            dtab("/a=>/b;/c=>/d")
        );
    }

    #[test]
    fn malformed_value_names_header_value_and_position() {
        let map = headers(&[("l5d-ctx-dtab", "/ok=>/fine"), ("l5d-dtab", "/svc =>> /a")]);
        let err = local_dtab(&map, &LIMITS).unwrap_err();
        assert_eq!(err.header, L5D_DTAB);
        assert_eq!(err.value, "/svc =>> /a");
        let DtabHeaderReason::Parse(e) = &err.reason else {
            panic!("{err}");
        };
        assert_eq!((e.line, e.column), (1, 8));
        let message = err.to_string();
        assert!(
            message.starts_with("invalid l5d-dtab header \"/svc =>> /a\": expected "),
            "{message}"
        );
        assert!(message.contains("at 1:8"), "{message}");

        let err = local_dtab(&headers(&[("l5d-ctx-dtab", "nope")]), &LIMITS).unwrap_err();
        assert_eq!(err.header, L5D_CTX_DTAB);
    }

    #[test]
    fn non_utf8_value_is_an_error_not_a_panic() {
        let mut map = HeaderMap::new();
        map.insert(
            L5D_DTAB,
            HeaderValue::from_bytes(b"/a=>/b\xff\xfe").unwrap(),
        );
        let err = local_dtab(&map, &LIMITS).unwrap_err();
        assert_eq!(err.reason, DtabHeaderReason::NotUtf8 { offset: 6 });
        assert_eq!(err.value, "/a=>/b\u{fffd}\u{fffd}");
        assert!(err.to_string().contains("not UTF-8 at byte 6"), "{err}");
    }

    #[test]
    fn megabyte_values_are_read_or_rejected_with_a_short_message() {
        let big_ok = "/a=>/b;".repeat(150_000);
        let local = local_dtab(&headers(&[("l5d-dtab", &big_ok)]), &UNLIMITED).unwrap();
        assert_eq!(local.len(), 150_000);

        let big_bad = format!("{}/x=>", "/a=>/b;".repeat(150_000));
        let err = local_dtab(&headers(&[("l5d-dtab", &big_bad)]), &UNLIMITED).unwrap_err();
        assert!(
            err.value.chars().count() <= QUOTED_CHARS + 1,
            "{}",
            err.value
        );
        assert!(err.value.ends_with('…'));
        let DtabHeaderReason::Parse(e) = &err.reason else {
            panic!("{err}");
        };
        assert_eq!(e.offset, big_bad.len());
        assert!(err.to_string().len() < 400, "{}", err.to_string().len());

        let mut map = HeaderMap::new();
        let mut huge_binary = vec![b'/'; 1 << 20];
        huge_binary.push(0xff);
        map.insert(L5D_DTAB, HeaderValue::from_bytes(&huge_binary).unwrap());
        let err = local_dtab(&map, &UNLIMITED).unwrap_err();
        assert_eq!(err.reason, DtabHeaderReason::NotUtf8 { offset: 1 << 20 });
        assert!(err.to_string().len() < 400);
    }

    #[test]
    fn limits_count_bytes_first_then_dentries_and_name_their_key() {
        let limits = DtabHeaderLimits {
            max_bytes: 20,
            max_dentries: 2,
        };
        // 12 bytes of context, then 12 of user dtab: the user value is the
        // one that goes over.
        let map = headers(&[
            ("l5d-ctx-dtab", "/a=>/b;/c=>/d"),
            ("l5d-dtab", "/e=>/f;/g=>/h"),
        ]);
        let err = local_dtab(&map, &limits).unwrap_err();
        assert_eq!(err.header, L5D_DTAB);
        assert_eq!(err.reason, DtabHeaderReason::TooManyBytes { max: 20 });
        assert_eq!(
            err.to_string(),
            "invalid l5d-dtab header \"/e=>/f;/g=>/h\": the dtab headers hold more than 20 bytes (limit dtabHeaderLimits.maxBytes)"
        );
        // Bytes are counted before parsing: an oversized value that does
        // not parse is still refused for its size.
        let map = headers(&[("l5d-dtab", "this is not a dtab at all")]);
        let err = local_dtab(&map, &limits).unwrap_err();
        assert_eq!(err.reason, DtabHeaderReason::TooManyBytes { max: 20 });

        let map = headers(&[("l5d-ctx-dtab", "/a=>/b;/c=>/d"), ("l5d-dtab", "/e=>/f")]);
        let err = local_dtab(&map, &limits).unwrap_err();
        assert_eq!(err.header, L5D_DTAB);
        assert_eq!(err.reason, DtabHeaderReason::TooManyDentries { max: 2 });
        assert!(
            err.to_string()
                .ends_with("more than 2 dentries (limit dtabHeaderLimits.maxDentries)"),
            "{err}"
        );
        // At the limits exactly, the dtab is read.
        let map = headers(&[("l5d-ctx-dtab", "/a=>/b"), ("l5d-dtab", "/e=>/f")]);
        assert_eq!(local_dtab(&map, &limits).unwrap().len(), 2);
    }

    #[test]
    fn the_default_limits_admit_a_large_real_dtab() {
        // 1,000 dentries of a realistic shape fit the defaults.
        let text: String = (0..1000)
            .map(|i| format!("/s/{i}=>/#/k8s/{i}|/$/fail;"))
            .collect();
        assert!(text.len() <= DEFAULT_MAX_BYTES, "{}", text.len());
        let local = local_dtab(&headers(&[("l5d-dtab", &text)]), &LIMITS).unwrap();
        assert_eq!(local.len(), 1000);
    }

    #[test]
    fn forward_replaces_user_and_ctx_headers_with_one_ctx_dtab() {
        let mut map = headers(&[
            ("l5d-ctx-dtab", "/c=>/x"),
            ("l5d-dtab", "/u=>/y"),
            ("l5d-dtab", "/v=>/z"),
            ("dtab-local", "/d=>/w"),
            ("x-other", "kept"),
        ]);
        let local = local_dtab(&map, &LIMITS).unwrap();
        forward_headers(&mut map, &local);
        assert!(map.get(L5D_DTAB).is_none());
        let ctx: Vec<_> = map.get_all(L5D_CTX_DTAB).iter().collect();
        assert_eq!(ctx, ["/c=>/x;/u=>/y;/v=>/z"]);
        assert_eq!(map.get("dtab-local").unwrap(), "/d=>/w");
        assert_eq!(map.get("x-other").unwrap(), "kept");
        // What is forwarded reads back as the same local dtab downstream.
        assert_eq!(local_dtab(&map, &LIMITS).unwrap(), local);
    }

    #[test]
    fn forward_removes_ctx_dtab_when_local_is_empty() {
        let mut map = headers(&[("l5d-ctx-dtab", ""), ("l5d-dtab", "  ")]);
        let local = local_dtab(&map, &LIMITS).unwrap();
        assert!(local.is_empty());
        forward_headers(&mut map, &local);
        assert!(map.get(L5D_CTX_DTAB).is_none());
        assert!(map.get(L5D_DTAB).is_none());
    }

    #[test]
    fn forward_escapes_unshowable_labels() {
        let local = Dtab::new(vec![dtab::Dentry::new(
            dtab::Prefix::new(vec![dtab::PrefixElem::Label(
                dtab::Label::new("a b").unwrap(),
            )]),
            NameTree::Leaf(path("/c")),
        )]);
        let mut map = HeaderMap::new();
        forward_headers(&mut map, &local);
        assert_eq!(map.get(L5D_CTX_DTAB).unwrap(), r"/\x61\x20\x62=>/c");
        assert_eq!(local_dtab(&map, &LIMITS).unwrap(), local);
    }

    #[test]
    fn clear_context_removes_every_l5d_header_and_nothing_else() {
        let mut map = headers(&[
            ("l5d-dtab", "/a=>/b"),
            ("l5d-ctx-dtab", "/a=>/b"),
            ("l5d-ctx-trace", "abc"),
            ("l5d-ctx-deadline", "1 2"),
            ("l5d-sample", "1.0"),
            ("L5D-Dst-Service", "/svc/x"),
            ("dtab-local", "/a=>/b"),
            ("host", "web"),
            ("l5dx", "kept"),
        ]);
        clear_context(&mut map);
        let mut left: Vec<_> = map.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["dtab-local", "host", "l5dx"]);
    }
}
