//! Response classifiers (`service.responseClassifier`): whether an answer
//! is a success, and whether a failure may be retried.
//!
//! The kinds are Linkerd's: `io.l5d.http.*` for http routers, `io.l5d.h2.*`
//! and `io.l5d.h2.grpc.*` for h2 routers. Every classifier is wrapped as in
//! Linkerd: an `l5d-success-class` header decides first, `l5d-retryable:
//! true` makes a non-retryable failure retryable (an upstream router said
//! so), and a request whose body was streamed is never retried, since it
//! cannot be replayed.

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use namers::config::KindConfig;
use serde_json::{Map, Value};

/// Written by routers, read back from upstream routers: `1.0` or `0.0`.
pub const SUCCESS_CLASS_HEADER: &str = "l5d-success-class";
/// Set by an upstream router on a failure that is safe to retry.
pub const RETRYABLE_HEADER: &str = "l5d-retryable";
const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// The same names, ready to look up (a `&str` is parsed at each lookup).
const SUCCESS_CLASS: HeaderName = HeaderName::from_static(SUCCESS_CLASS_HEADER);
const RETRYABLE: HeaderName = HeaderName::from_static(RETRYABLE_HEADER);

/// gRPC's OK.
const GRPC_OK: i32 = 0;
/// gRPC's UNKNOWN, which a `grpc-status` that is not a number is taken for.
const GRPC_UNKNOWN: i32 = 2;
/// gRPC's UNAVAILABLE, the one status gRPC says may be retried.
const GRPC_UNAVAILABLE: i32 = 14;

/// How an answer (or its absence) is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseClass {
    /// Counts toward the success rate.
    Success,
    /// Counts against it; `retryable` when the request may be sent again.
    Failure {
        /// Whether a retry is allowed (budget permitting).
        retryable: bool,
    },
}

impl ResponseClass {
    const RETRYABLE: ResponseClass = ResponseClass::Failure { retryable: true };
    const NON_RETRYABLE: ResponseClass = ResponseClass::Failure { retryable: false };

    /// Whether this is a success.
    pub fn is_success(&self) -> bool {
        matches!(self, ResponseClass::Success)
    }

    /// Whether this is a failure that may be retried.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ResponseClass::Failure { retryable: true })
    }

    /// The value of `l5d-success-class` for this class: `1.0` or `0.0`.
    pub fn header_value(&self) -> HeaderValue {
        HeaderValue::from_static(if self.is_success() { "1.0" } else { "0.0" })
    }

    /// A failure `l5d-retryable: true` makes retryable.
    fn retryable_if(self, yes: bool) -> ResponseClass {
        match self {
            ResponseClass::Failure { retryable: false } if yes => ResponseClass::RETRYABLE,
            other => other,
        }
    }

    fn never_retryable(self) -> ResponseClass {
        match self {
            ResponseClass::Failure { .. } => ResponseClass::NON_RETRYABLE,
            ResponseClass::Success => ResponseClass::Success,
        }
    }
}

/// What a classifier needs of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFacts {
    /// The request's method: the 5XX classifiers retry only some.
    pub method: Method,
    /// Whether the body was streamed (chunked, or an h2 body of unknown
    /// length) rather than buffered, so it cannot be sent again.
    pub chunked: bool,
}

/// Why no response came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No answer in time.
    Timeout,
    /// The connection was reset or closed, or a write failed, after sending
    /// began: the request may have been seen.
    Connection,
    /// The peer refused the h2 stream (`REFUSED_STREAM`) before handling it.
    Refused,
    /// Anything else.
    Other,
}

/// Which of a classifier's methods may be retried after a 5XX or an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Methods {
    /// GET, HEAD, OPTIONS, TRACE.
    Read,
    /// Read, and PUT and DELETE.
    Idempotent,
    /// Idempotent, and POST and PATCH.
    All,
}

impl Methods {
    fn contain(self, method: &Method) -> bool {
        let read = [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE];
        let idempotent = [Method::PUT, Method::DELETE];
        let all = [Method::POST, Method::PATCH];
        read.contains(method)
            || (self != Methods::Read && idempotent.contains(method))
            || (self == Methods::All && all.contains(method))
    }
}

/// Which failed gRPC statuses may be retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrpcRetryable {
    /// UNAVAILABLE (14) only (`io.l5d.h2.grpc.default`).
    Unavailable,
    /// UNAVAILABLE, refused streams and HTTP 429, 502, 503 and 504, as the
    /// gRPC spec says (`io.l5d.h2.grpc.compliant`).
    Compliant,
    /// Every failed status (`io.l5d.h2.grpc.alwaysRetryable`).
    Always,
    /// None (`io.l5d.h2.grpc.neverRetryable`).
    Never,
    /// The statuses listed (`io.l5d.h2.grpc.retryableStatusCodes`).
    Codes(Vec<i32>),
}

impl GrpcRetryable {
    fn status(&self, code: i32) -> bool {
        match self {
            GrpcRetryable::Unavailable | GrpcRetryable::Compliant => code == GRPC_UNAVAILABLE,
            GrpcRetryable::Always => true,
            GrpcRetryable::Never => false,
            GrpcRetryable::Codes(codes) => codes.contains(&code),
        }
    }

    /// An HTTP error answer carrying no gRPC status.
    fn http(&self, status: StatusCode) -> bool {
        *self == GrpcRetryable::Compliant && matches!(status.as_u16(), 429 | 502 | 503 | 504)
    }

    fn error(&self, error: ErrorKind) -> bool {
        *self == GrpcRetryable::Compliant && error == ErrorKind::Refused
    }
}

/// A response classifier, built from a `responseClassifier:` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classifier {
    /// 5XX and errors are failures, none retryable (the default).
    NonRetryable5xx,
    /// 5XX, timeouts and connection failures of GET, HEAD, OPTIONS and
    /// TRACE may be retried.
    RetryableRead5xx,
    /// As [`Classifier::RetryableRead5xx`], and PUT and DELETE.
    RetryableIdempotent5xx,
    /// As [`Classifier::RetryableIdempotent5xx`], and POST and PATCH.
    RetryableAll5xx,
    /// Every answer is a success; errors are non-retryable failures.
    AllSuccessful,
    /// By `grpc-status`, in the headers of a trailers-only answer or in the
    /// trailers.
    Grpc {
        /// Statuses that are successes (default: OK).
        success_codes: Vec<i32>,
        /// Which failures may be retried.
        retryable: GrpcRetryable,
    },
}

/// Builds a classifier from a kind's own keys.
type Build = fn(&Map<String, Value>) -> Result<Classifier, String>;

/// One classifier kind and the routers that take it.
struct Kind {
    name: &'static str,
    h2: bool,
    build: Build,
}

/// Every classifier kind this build knows.
const KINDS: &[Kind] = &[
    Kind {
        name: "io.l5d.http.nonRetryable5XX",
        h2: false,
        build: |p| no_keys(p, Classifier::NonRetryable5xx),
    },
    Kind {
        name: "io.l5d.http.retryableRead5XX",
        h2: false,
        build: |p| no_keys(p, Classifier::RetryableRead5xx),
    },
    Kind {
        name: "io.l5d.http.retryableIdempotent5XX",
        h2: false,
        build: |p| no_keys(p, Classifier::RetryableIdempotent5xx),
    },
    Kind {
        name: "io.l5d.http.retryableAll5XX",
        h2: false,
        build: |p| no_keys(p, Classifier::RetryableAll5xx),
    },
    Kind {
        name: "io.l5d.http.allSuccessful",
        h2: false,
        build: |p| no_keys(p, Classifier::AllSuccessful),
    },
    Kind {
        name: "io.l5d.h2.nonRetryable5XX",
        h2: true,
        build: |p| no_keys(p, Classifier::NonRetryable5xx),
    },
    Kind {
        name: "io.l5d.h2.retryableRead5XX",
        h2: true,
        build: |p| no_keys(p, Classifier::RetryableRead5xx),
    },
    Kind {
        name: "io.l5d.h2.retryableIdempotent5XX",
        h2: true,
        build: |p| no_keys(p, Classifier::RetryableIdempotent5xx),
    },
    Kind {
        name: "io.l5d.h2.retryableAll5XX",
        h2: true,
        build: |p| no_keys(p, Classifier::RetryableAll5xx),
    },
    Kind {
        name: "io.l5d.h2.allSuccessful",
        h2: true,
        build: |p| no_keys(p, Classifier::AllSuccessful),
    },
    Kind {
        name: "io.l5d.h2.grpc.default",
        h2: true,
        build: |p| grpc(p, GrpcRetryable::Unavailable),
    },
    Kind {
        name: "io.l5d.h2.grpc.compliant",
        h2: true,
        build: |p| grpc(p, GrpcRetryable::Compliant),
    },
    Kind {
        name: "io.l5d.h2.grpc.alwaysRetryable",
        h2: true,
        build: |p| grpc(p, GrpcRetryable::Always),
    },
    Kind {
        name: "io.l5d.h2.grpc.neverRetryable",
        h2: true,
        build: |p| grpc(p, GrpcRetryable::Never),
    },
    Kind {
        name: "io.l5d.h2.grpc.retryableStatusCodes",
        h2: true,
        build: grpc_codes,
    },
];

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NoKeys {}

fn no_keys(params: &Map<String, Value>, classifier: Classifier) -> Result<Classifier, String> {
    let NoKeys {} = namers::config::kind_params(params)?;
    Ok(classifier)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GrpcKeys {
    #[serde(default)]
    success_status_codes: Option<Vec<i32>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GrpcCodesKeys {
    retryable_status_codes: Vec<i32>,
    #[serde(default)]
    success_status_codes: Option<Vec<i32>>,
}

fn grpc(params: &Map<String, Value>, retryable: GrpcRetryable) -> Result<Classifier, String> {
    let keys: GrpcKeys = namers::config::kind_params(params)?;
    Ok(Classifier::Grpc {
        success_codes: success_codes(keys.success_status_codes)?,
        retryable,
    })
}

fn grpc_codes(params: &Map<String, Value>) -> Result<Classifier, String> {
    let keys: GrpcCodesKeys = namers::config::kind_params(params)?;
    Ok(Classifier::Grpc {
        success_codes: success_codes(keys.success_status_codes)?,
        retryable: GrpcRetryable::Codes(keys.retryable_status_codes),
    })
}

fn success_codes(codes: Option<Vec<i32>>) -> Result<Vec<i32>, String> {
    match codes {
        None => Ok(vec![GRPC_OK]),
        // Linkerd takes it, but then even OK fails: surely a mistake.
        Some(codes) if codes.is_empty() => {
            Err("successStatusCodes: must list at least one status (0 is OK)".to_string())
        }
        Some(codes) => Ok(codes),
    }
}

/// The classifier kinds an h2 (`h2: true`) or http router takes.
pub fn classifier_kinds(h2: bool) -> Vec<&'static str> {
    KINDS
        .iter()
        .filter(|k| k.h2 == h2)
        .map(|k| k.name)
        .collect()
}

fn router_name(h2: bool) -> &'static str {
    if h2 { "h2" } else { "http" }
}

impl Classifier {
    /// From a `responseClassifier:` block; `at` is its key path, `h2`
    /// whether the router is an h2 router. Errors start with `at`, and name
    /// the kind and the key when a key is wrong.
    pub fn from_kind(at: &str, config: &KindConfig, h2: bool) -> Result<Classifier, String> {
        let name = config.kind.as_str();
        match KINDS.iter().find(|k| k.name == name) {
            Some(kind) if kind.h2 == h2 => {
                (kind.build)(&config.params).map_err(|e| format!("{at} ({name}): {e}"))
            }
            Some(kind) => {
                let theirs = router_name(kind.h2);
                let ours = router_name(h2);
                let mut err = format!(
                    "{at}: responseClassifier kind {name:?} is for {theirs} routers, and this is \
                     an {ours} router"
                );
                let counterpart =
                    name.replacen(&format!("io.l5d.{theirs}."), &format!("io.l5d.{ours}."), 1);
                if KINDS.iter().any(|k| k.name == counterpart && k.h2 == h2) {
                    err.push_str(&format!("; use {counterpart:?}"));
                }
                Err(err)
            }
            None => Err(namers::config::linkerd::unknown_kind(
                at,
                "responseClassifier",
                name,
                &classifier_kinds(h2),
            )),
        }
    }

    /// The classifier of a service that configures none: nonRetryable5XX.
    pub fn default_for(_h2: bool) -> Classifier {
        // Linkerd's default is the same for both protocols.
        Classifier::NonRetryable5xx
    }

    /// Classifies a response head. `None` only when the class depends on
    /// the trailers: a gRPC classifier given no `grpc-status` and no HTTP
    /// error; then [`Classifier::classify_trailers`] decides.
    pub fn classify_response(
        &self,
        request: &RequestFacts,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Option<ResponseClass> {
        let class = match success_class(headers) {
            Some(class) => class,
            None => self.classify_head(status, headers, &request.method)?,
        };
        Some(wrap(request, class, Some(headers)))
    }

    /// Classifies a response by its trailers, once its head left the class
    /// open; `trailers` is `None` when the stream ended without any.
    pub fn classify_trailers(
        &self,
        request: &RequestFacts,
        status: StatusCode,
        trailers: Option<&HeaderMap>,
    ) -> ResponseClass {
        let class = match trailers.and_then(success_class) {
            Some(class) => class,
            None => self.classify_end(status, trailers, &request.method),
        };
        wrap(request, class, trailers)
    }

    /// Classifies a request that got no response.
    pub fn classify_error(&self, request: &RequestFacts, error: ErrorKind) -> ResponseClass {
        let retryable = match self {
            Classifier::NonRetryable5xx | Classifier::AllSuccessful => false,
            Classifier::Grpc { retryable, .. } => retryable.error(error),
            other => {
                // Finagle retries timeouts, failed writes and closed
                // channels; a refused stream was not even handled.
                let transient = matches!(
                    error,
                    ErrorKind::Timeout | ErrorKind::Connection | ErrorKind::Refused
                );
                transient && other.retried_methods(&request.method)
            }
        };
        wrap(request, ResponseClass::Failure { retryable }, None)
    }

    /// Whether this classifier may call a failure of `request` retryable
    /// by itself (an upstream's `l5d-retryable` aside): what decides
    /// whether the request's body is kept for a retry.
    pub fn may_retry(&self, request: &RequestFacts) -> bool {
        if request.chunked {
            return false;
        }
        match self {
            Classifier::Grpc { retryable, .. } => !matches!(retryable, GrpcRetryable::Never),
            other => other.retried_methods(&request.method),
        }
    }

    /// Whether a 5XX or an error of a request of `method` may be retried.
    fn retried_methods(&self, method: &Method) -> bool {
        let methods = match self {
            Classifier::RetryableRead5xx => Methods::Read,
            Classifier::RetryableIdempotent5xx => Methods::Idempotent,
            Classifier::RetryableAll5xx => Methods::All,
            _ => return false,
        };
        methods.contain(method)
    }

    /// The class a head gives, before the wrappers.
    fn classify_head(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        method: &Method,
    ) -> Option<ResponseClass> {
        match self {
            Classifier::Grpc {
                success_codes,
                retryable,
            } => match grpc_status(headers) {
                // A trailers-only answer.
                Some(code) => Some(grpc_class(code, success_codes, retryable)),
                None if status.is_client_error() || status.is_server_error() => {
                    Some(ResponseClass::Failure {
                        retryable: retryable.http(status),
                    })
                }
                None => None,
            },
            Classifier::AllSuccessful => Some(ResponseClass::Success),
            http if status.is_server_error() => Some(ResponseClass::Failure {
                retryable: http.retried_methods(method),
            }),
            _ => Some(ResponseClass::Success),
        }
    }

    /// The class the end of a stream gives, before the wrappers.
    fn classify_end(
        &self,
        status: StatusCode,
        trailers: Option<&HeaderMap>,
        method: &Method,
    ) -> ResponseClass {
        let empty = HeaderMap::new();
        let trailers = trailers.unwrap_or(&empty);
        match self.classify_head(status, trailers, method) {
            Some(class) => class,
            // A gRPC stream that ended without a status failed somewhere.
            None => ResponseClass::NON_RETRYABLE,
        }
    }
}

fn grpc_class(code: i32, success_codes: &[i32], retryable: &GrpcRetryable) -> ResponseClass {
    if success_codes.contains(&code) {
        ResponseClass::Success
    } else {
        ResponseClass::Failure {
            retryable: retryable.status(code),
        }
    }
}

/// The gRPC status in `headers`; one that is not a number is UNKNOWN.
fn grpc_status(headers: &HeaderMap) -> Option<i32> {
    let value = headers.get(GRPC_STATUS)?;
    Some(
        value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(GRPC_UNKNOWN),
    )
}

/// The class an upstream router gave in `l5d-success-class`: a success when
/// above 0, a failure otherwise or when it is not a number.
fn success_class(headers: &HeaderMap) -> Option<ResponseClass> {
    // Most answers carry no `l5d-*` field at all.
    if headers.is_empty() {
        return None;
    }
    let value = headers.get(SUCCESS_CLASS)?;
    let success = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    Some(if success > 0.0 {
        ResponseClass::Success
    } else {
        ResponseClass::NON_RETRYABLE
    })
}

/// Linkerd's wrappers around every classifier: `l5d-retryable: true` in
/// `headers` makes a failure retryable, and a streamed request is never
/// retried.
fn wrap(
    request: &RequestFacts,
    class: ResponseClass,
    headers: Option<&HeaderMap>,
) -> ResponseClass {
    // Only a failure that is not retryable yet needs the header looked up.
    let class = match class {
        ResponseClass::Failure { retryable: false } => {
            class.retryable_if(headers.is_some_and(says_retryable))
        }
        class => class,
    };
    if request.chunked {
        class.never_retryable()
    } else {
        class
    }
}

fn says_retryable(headers: &HeaderMap) -> bool {
    // Scala's `toBoolean`, which Linkerd reads it with, ignores case.
    headers
        .get(RETRYABLE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const S: ResponseClass = ResponseClass::Success;
    const R: ResponseClass = ResponseClass::RETRYABLE;
    const N: ResponseClass = ResponseClass::NON_RETRYABLE;

    const METHODS: [&str; 9] = [
        "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE", "POST", "PATCH", "CONNECT",
    ];

    fn request(method: &str) -> RequestFacts {
        RequestFacts {
            method: method.parse().unwrap(),
            chunked: false,
        }
    }

    fn chunked(method: &str) -> RequestFacts {
        RequestFacts {
            chunked: true,
            ..request(method)
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    fn status(code: u16) -> StatusCode {
        StatusCode::from_u16(code).unwrap()
    }

    fn config(json: Value) -> KindConfig {
        serde_json::from_value(json).unwrap()
    }

    fn build(json: Value, h2: bool) -> Result<Classifier, String> {
        Classifier::from_kind("routers[0].service.responseClassifier", &config(json), h2)
    }

    fn grpc(retryable: GrpcRetryable) -> Classifier {
        Classifier::Grpc {
            success_codes: vec![0],
            retryable,
        }
    }

    /// The methods whose 5XX (and timeouts) each HTTP classifier retries.
    fn http_cases() -> Vec<(Classifier, &'static [&'static str])> {
        vec![
            (Classifier::NonRetryable5xx, &[]),
            (
                Classifier::RetryableRead5xx,
                &["GET", "HEAD", "OPTIONS", "TRACE"],
            ),
            (
                Classifier::RetryableIdempotent5xx,
                &["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"],
            ),
            (
                Classifier::RetryableAll5xx,
                &[
                    "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE", "POST", "PATCH",
                ],
            ),
        ]
    }

    #[test]
    fn http_classifiers_fail_5xx_and_retry_their_methods() {
        let none = HeaderMap::new();
        for (classifier, retried) in http_cases() {
            for method in METHODS {
                let req = request(method);
                let failure = ResponseClass::Failure {
                    retryable: retried.contains(&method),
                };
                for code in [200, 204, 302, 400, 404, 429, 500, 502, 503, 599] {
                    let expected = if code >= 500 { failure } else { S };
                    assert_eq!(
                        classifier.classify_response(&req, status(code), &none),
                        Some(expected),
                        "{classifier:?} {method} {code}"
                    );
                }
            }
        }
    }

    #[test]
    fn http_classifiers_retry_timeouts_and_connection_failures_of_their_methods() {
        for (classifier, retried) in http_cases() {
            for method in METHODS {
                let req = request(method);
                let transient = ResponseClass::Failure {
                    retryable: retried.contains(&method),
                };
                for (error, expected) in [
                    (ErrorKind::Timeout, transient),
                    (ErrorKind::Connection, transient),
                    (ErrorKind::Refused, transient),
                    (ErrorKind::Other, N),
                ] {
                    assert_eq!(
                        classifier.classify_error(&req, error),
                        expected,
                        "{classifier:?} {method} {error:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn all_successful_counts_every_answer_and_fails_every_error() {
        let classifier = Classifier::AllSuccessful;
        for method in METHODS {
            for code in [200, 404, 500, 503] {
                assert_eq!(
                    classifier.classify_response(&request(method), status(code), &HeaderMap::new()),
                    Some(S),
                    "{method} {code}"
                );
            }
            for error in [
                ErrorKind::Timeout,
                ErrorKind::Connection,
                ErrorKind::Refused,
                ErrorKind::Other,
            ] {
                assert_eq!(classifier.classify_error(&request(method), error), N);
            }
        }
    }

    #[test]
    fn http_classifiers_ignore_trailers() {
        let trailers = headers(&[("grpc-status", "14")]);
        let req = request("GET");
        let classifier = Classifier::RetryableRead5xx;
        assert_eq!(
            classifier.classify_trailers(&req, status(200), Some(&trailers)),
            S
        );
        assert_eq!(classifier.classify_trailers(&req, status(503), None), R);
    }

    #[test]
    fn success_class_header_decides_first() {
        let get = request("GET");
        let cases = [
            // (classifier, status, l5d-success-class, expected)
            (Classifier::RetryableRead5xx, 500, "1.0", S),
            (Classifier::RetryableRead5xx, 503, "0.5", S),
            (Classifier::RetryableRead5xx, 200, "0.0", N),
            (Classifier::RetryableRead5xx, 500, "0.0", N),
            (Classifier::NonRetryable5xx, 200, "-1", N),
            (Classifier::NonRetryable5xx, 200, "1e-9", S),
            (Classifier::NonRetryable5xx, 200, "yes", N),
            (Classifier::NonRetryable5xx, 200, "", N),
            (Classifier::NonRetryable5xx, 200, "NaN", N),
            (Classifier::NonRetryable5xx, 200, " 1.0 ", S),
            (Classifier::AllSuccessful, 200, "0", N),
            // A gRPC head with the header needs no trailers.
            (grpc(GrpcRetryable::Unavailable), 200, "1", S),
            (grpc(GrpcRetryable::Always), 200, "0", N),
        ];
        for (classifier, code, value, expected) in cases {
            let head = headers(&[("l5d-success-class", value)]);
            assert_eq!(
                classifier.classify_response(&get, status(code), &head),
                Some(expected),
                "{classifier:?} {code} {value:?}"
            );
        }
        let mut bytes = HeaderMap::new();
        bytes.insert(
            SUCCESS_CLASS_HEADER,
            HeaderValue::from_bytes(b"\xff1.0").unwrap(),
        );
        assert_eq!(
            Classifier::NonRetryable5xx.classify_response(&get, status(200), &bytes),
            Some(N),
            "a value that is not text is a failure"
        );
    }

    #[test]
    fn retryable_header_makes_failures_retryable() {
        let post = request("POST");
        let cases = [
            // (classifier, status, extra headers, expected)
            (
                Classifier::NonRetryable5xx,
                502,
                vec![("l5d-retryable", "true")],
                R,
            ),
            (
                Classifier::RetryableRead5xx,
                502,
                vec![("l5d-retryable", "TRUE")],
                R,
            ),
            (
                Classifier::RetryableRead5xx,
                502,
                vec![("l5d-retryable", "True")],
                R,
            ),
            (
                Classifier::RetryableRead5xx,
                502,
                vec![("l5d-retryable", "false")],
                N,
            ),
            (
                Classifier::RetryableRead5xx,
                502,
                vec![("l5d-retryable", "1")],
                N,
            ),
            (
                Classifier::RetryableRead5xx,
                502,
                vec![("l5d-retryable", "yes")],
                N,
            ),
            (Classifier::RetryableRead5xx, 502, vec![], N),
            (
                Classifier::NonRetryable5xx,
                200,
                vec![("l5d-retryable", "true")],
                S,
            ),
            // An upstream router's failed answer carries both headers.
            (
                Classifier::NonRetryable5xx,
                502,
                vec![("l5d-success-class", "0.0"), ("l5d-retryable", "true")],
                R,
            ),
            (
                grpc(GrpcRetryable::Never),
                200,
                vec![("grpc-status", "13"), ("l5d-retryable", "true")],
                R,
            ),
        ];
        for (classifier, code, pairs, expected) in cases {
            assert_eq!(
                classifier.classify_response(&post, status(code), &headers(&pairs)),
                Some(expected),
                "{classifier:?} {code} {pairs:?}"
            );
        }
    }

    #[test]
    fn streamed_requests_are_never_retried() {
        let get = chunked("GET");
        let retry = headers(&[("l5d-retryable", "true")]);
        let all = Classifier::RetryableAll5xx;
        assert_eq!(
            all.classify_response(&get, status(503), &HeaderMap::new()),
            Some(N)
        );
        assert_eq!(all.classify_response(&get, status(503), &retry), Some(N));
        assert_eq!(all.classify_response(&get, status(200), &retry), Some(S));
        assert_eq!(all.classify_error(&get, ErrorKind::Timeout), N);
        assert_eq!(all.classify_error(&get, ErrorKind::Connection), N);
        let compliant = grpc(GrpcRetryable::Compliant);
        let unavailable = headers(&[("grpc-status", "14")]);
        assert_eq!(
            compliant.classify_response(&get, status(200), &unavailable),
            Some(N)
        );
        assert_eq!(
            compliant.classify_response(&get, status(503), &HeaderMap::new()),
            Some(N)
        );
        assert_eq!(
            compliant.classify_trailers(&get, status(200), Some(&unavailable)),
            N
        );
        assert_eq!(compliant.classify_error(&get, ErrorKind::Refused), N);
        let ok = headers(&[("grpc-status", "0")]);
        assert_eq!(compliant.classify_trailers(&get, status(200), Some(&ok)), S);
    }

    /// gRPC statuses each gRPC classifier retries, among 0..=16 and 100.
    fn grpc_cases() -> Vec<(Classifier, Vec<i32>)> {
        let every: Vec<i32> = (1..=16).chain([100]).collect();
        vec![
            (grpc(GrpcRetryable::Unavailable), vec![14]),
            (grpc(GrpcRetryable::Compliant), vec![14]),
            (grpc(GrpcRetryable::Always), every),
            (grpc(GrpcRetryable::Never), vec![]),
            (
                grpc(GrpcRetryable::Codes(vec![2, 5, 14, 100])),
                vec![2, 5, 14, 100],
            ),
        ]
    }

    #[test]
    fn grpc_classifiers_read_the_status_from_trailers_or_a_trailers_only_head() {
        let req = request("POST");
        for (classifier, retried) in grpc_cases() {
            for code in (0..=16).chain([100]) {
                let expected = if code == 0 {
                    S
                } else {
                    ResponseClass::Failure {
                        retryable: retried.contains(&code),
                    }
                };
                let status_headers = headers(&[("grpc-status", &code.to_string())]);
                assert_eq!(
                    classifier.classify_response(&req, status(200), &status_headers),
                    Some(expected),
                    "{classifier:?} trailers-only {code}"
                );
                assert_eq!(
                    classifier.classify_response(&req, status(200), &HeaderMap::new()),
                    None,
                    "{classifier:?} waits for the trailers"
                );
                assert_eq!(
                    classifier.classify_trailers(&req, status(200), Some(&status_headers)),
                    expected,
                    "{classifier:?} trailers {code}"
                );
            }
        }
    }

    #[test]
    fn grpc_streams_without_a_status_fail() {
        let req = request("POST");
        for (classifier, _) in grpc_cases() {
            let other = headers(&[("x-other", "1")]);
            assert_eq!(classifier.classify_trailers(&req, status(200), None), N);
            assert_eq!(
                classifier.classify_trailers(&req, status(200), Some(&other)),
                N
            );
        }
    }

    #[test]
    fn grpc_status_that_is_not_a_number_is_unknown() {
        let req = request("POST");
        let codes = grpc(GrpcRetryable::Codes(vec![GRPC_UNKNOWN]));
        let never = grpc(GrpcRetryable::Never);
        for value in ["x", "", "1.5", "99999999999"] {
            let bad = headers(&[("grpc-status", value)]);
            assert_eq!(
                codes.classify_response(&req, status(200), &bad),
                Some(R),
                "{value:?}"
            );
            assert_eq!(
                codes.classify_trailers(&req, status(200), Some(&bad)),
                R,
                "{value:?}"
            );
            assert_eq!(
                never.classify_trailers(&req, status(200), Some(&bad)),
                N,
                "{value:?}"
            );
        }
        let spaced = headers(&[("grpc-status", " 0 ")]);
        assert_eq!(never.classify_trailers(&req, status(200), Some(&spaced)), S);
    }

    #[test]
    fn grpc_http_errors_fail_and_only_compliant_retries_some() {
        let req = request("POST");
        let none = HeaderMap::new();
        for (classifier, _) in grpc_cases() {
            let compliant = classifier == grpc(GrpcRetryable::Compliant);
            for code in [400, 404, 429, 500, 501, 502, 503, 504] {
                let retryable = compliant && [429, 502, 503, 504].contains(&code);
                let expected = ResponseClass::Failure { retryable };
                assert_eq!(
                    classifier.classify_response(&req, status(code), &none),
                    Some(expected),
                    "{classifier:?} {code}"
                );
                assert_eq!(
                    classifier.classify_trailers(&req, status(code), None),
                    expected,
                    "{classifier:?} {code} ended without trailers"
                );
            }
            // A gRPC status wins over the HTTP one.
            let ok = headers(&[("grpc-status", "0")]);
            assert_eq!(
                classifier.classify_response(&req, status(503), &ok),
                Some(S)
            );
        }
    }

    #[test]
    fn grpc_errors_are_retried_only_when_refused_by_compliant() {
        let req = request("GET");
        for (classifier, _) in grpc_cases() {
            let compliant = classifier == grpc(GrpcRetryable::Compliant);
            for error in [ErrorKind::Timeout, ErrorKind::Connection, ErrorKind::Other] {
                assert_eq!(
                    classifier.classify_error(&req, error),
                    N,
                    "{classifier:?} {error:?}"
                );
            }
            assert_eq!(
                classifier.classify_error(&req, ErrorKind::Refused),
                ResponseClass::Failure {
                    retryable: compliant
                },
                "{classifier:?}"
            );
        }
    }

    #[test]
    fn grpc_success_codes_replace_ok() {
        let classifier = Classifier::Grpc {
            success_codes: vec![0, 3, 5],
            retryable: GrpcRetryable::Always,
        };
        let req = request("POST");
        for (code, expected) in [("0", S), ("3", S), ("5", S), ("4", R), ("14", R)] {
            let trailers = headers(&[("grpc-status", code)]);
            assert_eq!(
                classifier.classify_trailers(&req, status(200), Some(&trailers)),
                expected
            );
        }
        let without_ok = Classifier::Grpc {
            success_codes: vec![5],
            retryable: GrpcRetryable::Never,
        };
        let ok = headers(&[("grpc-status", "0")]);
        assert_eq!(
            without_ok.classify_trailers(&req, status(200), Some(&ok)),
            N
        );
    }

    #[test]
    fn success_class_in_trailers_decides_first() {
        let req = request("POST");
        let classifier = grpc(GrpcRetryable::Always);
        let trailers = headers(&[("grpc-status", "14"), ("l5d-success-class", "1.0")]);
        assert_eq!(
            classifier.classify_trailers(&req, status(200), Some(&trailers)),
            S
        );
        let trailers = headers(&[
            ("grpc-status", "0"),
            ("l5d-success-class", "0.0"),
            ("l5d-retryable", "true"),
        ]);
        assert_eq!(
            classifier.classify_trailers(&req, status(200), Some(&trailers)),
            R
        );
    }

    #[test]
    fn classes_have_header_values() {
        assert_eq!(S.header_value(), "1.0");
        assert_eq!(R.header_value(), "0.0");
        assert_eq!(N.header_value(), "0.0");
        assert!(S.is_success() && !S.is_retryable());
        assert!(!R.is_success() && R.is_retryable());
        assert!(!N.is_success() && !N.is_retryable());
    }

    #[test]
    fn default_is_non_retryable_5xx() {
        assert_eq!(Classifier::default_for(false), Classifier::NonRetryable5xx);
        assert_eq!(Classifier::default_for(true), Classifier::NonRetryable5xx);
    }

    #[test]
    fn every_kind_builds_on_its_routers() {
        use serde_json::json;
        let http = [
            ("io.l5d.http.nonRetryable5XX", Classifier::NonRetryable5xx),
            ("io.l5d.http.retryableRead5XX", Classifier::RetryableRead5xx),
            (
                "io.l5d.http.retryableIdempotent5XX",
                Classifier::RetryableIdempotent5xx,
            ),
            ("io.l5d.http.retryableAll5XX", Classifier::RetryableAll5xx),
            ("io.l5d.http.allSuccessful", Classifier::AllSuccessful),
        ];
        let h2 = [
            ("io.l5d.h2.nonRetryable5XX", Classifier::NonRetryable5xx),
            ("io.l5d.h2.retryableRead5XX", Classifier::RetryableRead5xx),
            (
                "io.l5d.h2.retryableIdempotent5XX",
                Classifier::RetryableIdempotent5xx,
            ),
            ("io.l5d.h2.retryableAll5XX", Classifier::RetryableAll5xx),
            ("io.l5d.h2.allSuccessful", Classifier::AllSuccessful),
            ("io.l5d.h2.grpc.default", grpc(GrpcRetryable::Unavailable)),
            ("io.l5d.h2.grpc.compliant", grpc(GrpcRetryable::Compliant)),
            (
                "io.l5d.h2.grpc.alwaysRetryable",
                grpc(GrpcRetryable::Always),
            ),
            ("io.l5d.h2.grpc.neverRetryable", grpc(GrpcRetryable::Never)),
        ];
        for (on_h2, kinds) in [(false, &http[..]), (true, &h2[..])] {
            for (kind, expected) in kinds {
                assert_eq!(
                    build(json!({"kind": kind}), on_h2).as_ref(),
                    Ok(expected),
                    "{kind}"
                );
            }
            let names: Vec<_> = kinds.iter().map(|(kind, _)| *kind).collect();
            let mut listed = classifier_kinds(on_h2);
            if on_h2 {
                listed.retain(|k| *k != "io.l5d.h2.grpc.retryableStatusCodes");
            }
            assert_eq!(listed, names);
        }
        assert_eq!(
            build(
                json!({"kind": "io.l5d.h2.grpc.retryableStatusCodes",
                       "retryableStatusCodes": [2, 5, 14, 100]}),
                true
            ),
            Ok(grpc(GrpcRetryable::Codes(vec![2, 5, 14, 100])))
        );
        assert_eq!(
            build(
                json!({"kind": "io.l5d.h2.grpc.default", "successStatusCodes": [0, 3, 5]}),
                true
            ),
            Ok(Classifier::Grpc {
                success_codes: vec![0, 3, 5],
                retryable: GrpcRetryable::Unavailable
            })
        );
        assert_eq!(
            build(
                json!({"kind": "io.l5d.h2.grpc.retryableStatusCodes",
                       "retryableStatusCodes": [], "successStatusCodes": [0, 1]}),
                true
            ),
            Ok(Classifier::Grpc {
                success_codes: vec![0, 1],
                retryable: GrpcRetryable::Codes(vec![])
            })
        );
        // Linkerd's flag for experimental kinds is taken and ignored.
        assert_eq!(
            build(
                json!({"kind": "io.l5d.h2.grpc.default", "experimental": true}),
                true
            ),
            Ok(grpc(GrpcRetryable::Unavailable))
        );
    }

    #[test]
    fn config_mistakes_name_their_key_and_kind() {
        use serde_json::json;
        let at = "routers[0].service.responseClassifier";
        let cases: &[(Value, bool, &str)] = &[
            (
                json!({"kind": "io.l5d.h2.grpc.default"}),
                false,
                "routers[0].service.responseClassifier: responseClassifier kind \
                 \"io.l5d.h2.grpc.default\" is for h2 routers, and this is an http router",
            ),
            (
                json!({"kind": "io.l5d.h2.retryableRead5XX"}),
                false,
                "routers[0].service.responseClassifier: responseClassifier kind \
                 \"io.l5d.h2.retryableRead5XX\" is for h2 routers, and this is an http router; \
                 use \"io.l5d.http.retryableRead5XX\"",
            ),
            (
                json!({"kind": "io.l5d.http.allSuccessful"}),
                true,
                "routers[0].service.responseClassifier: responseClassifier kind \
                 \"io.l5d.http.allSuccessful\" is for http routers, and this is an h2 router; \
                 use \"io.l5d.h2.allSuccessful\"",
            ),
        ];
        for (json, h2, expected) in cases {
            assert_eq!(build(json.clone(), *h2).unwrap_err(), *expected);
        }

        let unknown = build(json!({"kind": "io.l5d.http.retryable5XX"}), false).unwrap_err();
        assert_eq!(
            unknown,
            namers::config::linkerd::unknown_kind(
                at,
                "responseClassifier",
                "io.l5d.http.retryable5XX",
                &classifier_kinds(false)
            )
        );
        assert!(unknown.starts_with(at), "{unknown}");
        assert!(
            unknown.contains("io.l5d.http.retryableRead5XX"),
            "{unknown}"
        );
        assert!(!unknown.contains("io.l5d.h2."), "{unknown}");

        let prefixed = |kind: &str, rest: &str| format!("{at} ({kind}): {rest}");
        let key_errors: &[(Value, &str)] = &[
            (
                json!({"kind": "io.l5d.h2.retryableRead5XX", "methods": ["GET"]}),
                "methods: unknown field `methods`",
            ),
            (
                json!({"kind": "io.l5d.h2.grpc.default", "retryableStatusCodes": [14]}),
                "retryableStatusCodes: unknown field `retryableStatusCodes`",
            ),
            (
                json!({"kind": "io.l5d.h2.grpc.retryableStatusCodes"}),
                "missing field `retryableStatusCodes`",
            ),
            (
                json!({"kind": "io.l5d.h2.grpc.retryableStatusCodes",
                       "retryableStatusCodes": ["UNAVAILABLE"]}),
                "retryableStatusCodes[0]: invalid type",
            ),
            (
                json!({"kind": "io.l5d.h2.grpc.neverRetryable", "successStatusCodes": []}),
                "successStatusCodes: must list at least one status (0 is OK)",
            ),
        ];
        for (json, start) in key_errors {
            let kind = json["kind"].as_str().unwrap();
            let err = build(json.clone(), true).unwrap_err();
            assert!(err.starts_with(&prefixed(kind, start)), "{err}");
        }
    }
}
