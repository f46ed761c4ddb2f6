//! Why a request was not forwarded, who is to blame, and how that is told
//! to the client: a status code, an `l5d-err` header and a plain-text body.

use http::{HeaderValue, StatusCode};

/// A request the router could not complete.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RouterError {
    /// No identifier could name the request (the client's fault).
    #[error("{0}")]
    Unidentified(String),
    /// An `l5d-dtab` / `l5d-ctx-dtab` header does not parse.
    #[error("{0}")]
    BadDtabHeader(String),
    /// The request has passed through too many routers (a routing loop?).
    #[error(
        "maximum call depth {max} exceeded: the request has already passed {seen} routers (routing loop?)"
    )]
    MaxCallDepth {
        /// The configured limit.
        max: usize,
        /// How many `Via` hops the request carried.
        seen: usize,
    },
    /// The name did not bind within `bindingTimeoutMs`.
    #[error("{0}")]
    BindingTimeout(String),
    /// Binding failed (a namer error, the depth limit, ...).
    #[error("{0}")]
    BindingFailed(String),
    /// The request's own dtab (`l5d-dtab` / `l5d-ctx-dtab`) asks for more
    /// binding work than the router's `bindingLimits` allow (the client's
    /// fault; the same request would fail again).
    #[error("{0}")]
    BindingLimit(String),
    /// The name resolved to nothing usable (`~`, `!`, or no endpoints).
    #[error("{0}")]
    NoEndpoints(String),
    /// Connecting to or talking with the chosen endpoint failed.
    #[error("{0}")]
    Upstream(String),
    /// No connection to any endpoint tried could be had: the request was
    /// never sent, so a retry is safe.
    #[error("{0}")]
    Unsent(String),
    /// No response within the service's total timeout.
    #[error("{0}")]
    Timeout(String),
    /// The router is shutting down or overloaded.
    #[error("{0}")]
    Unavailable(String),
    /// The request line is longer than `maxInitialLineKB` (the client's
    /// fault; the connection is closed after the answer).
    #[error("{0}")]
    LineTooLong(String),
    /// The request's header fields are larger than `maxHeadersKB` (the
    /// client's fault; the connection is closed after the answer).
    #[error("{0}")]
    FieldsTooLarge(String),
    /// Access control denies the request (`accessControl`).
    #[error("{0}")]
    Forbidden(String),
    /// The request is over a rate limit (`rateLimits`); it may be sent
    /// again after `retry_after_secs`.
    #[error("{reason}")]
    RateLimited {
        /// Which limit, and for whom.
        reason: String,
        /// Seconds until a request would be admitted (`Retry-After`).
        retry_after_secs: u64,
    },
    /// The request head could be read as more than one request (two
    /// `Host`s, `Content-Length` with `Transfer-Encoding`, lengths that
    /// disagree); the connection is closed after the answer.
    #[error("{0}")]
    AmbiguousRequest(String),
}

impl RouterError {
    /// The status Linkerd answers with for this kind of failure.
    pub fn status(&self) -> StatusCode {
        match self {
            RouterError::Unidentified(_)
            | RouterError::BadDtabHeader(_)
            | RouterError::BindingLimit(_)
            | RouterError::MaxCallDepth { .. }
            | RouterError::AmbiguousRequest(_) => StatusCode::BAD_REQUEST,
            RouterError::LineTooLong(_) => StatusCode::URI_TOO_LONG,
            RouterError::Forbidden(_) => StatusCode::FORBIDDEN,
            RouterError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            RouterError::FieldsTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            RouterError::BindingFailed(_)
            | RouterError::NoEndpoints(_)
            | RouterError::Upstream(_)
            | RouterError::Unsent(_) => StatusCode::BAD_GATEWAY,
            RouterError::BindingTimeout(_)
            | RouterError::Timeout(_)
            | RouterError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `failures/<kind>` scope this failure is counted in.
    pub(crate) fn failure_kind(&self) -> crate::stats::FailureKind {
        use crate::stats::FailureKind;
        match self {
            RouterError::Unsent(_) => FailureKind::NotSent,
            RouterError::Upstream(_) => FailureKind::Upstream,
            RouterError::Timeout(_) | RouterError::BindingTimeout(_) => FailureKind::Timeout,
            RouterError::NoEndpoints(_) | RouterError::BindingFailed(_) => FailureKind::NoEndpoints,
            RouterError::Unidentified(_)
            | RouterError::BadDtabHeader(_)
            | RouterError::MaxCallDepth { .. }
            | RouterError::BindingLimit(_)
            | RouterError::Unavailable(_)
            | RouterError::LineTooLong(_)
            | RouterError::FieldsTooLarge(_)
            | RouterError::AmbiguousRequest(_)
            | RouterError::Forbidden(_)
            | RouterError::RateLimited { .. } => FailureKind::Refused,
        }
    }

    /// Whether the request never reached an upstream, so a retry elsewhere
    /// is safe (`l5d-retryable`).
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            RouterError::NoEndpoints(_)
                | RouterError::Unavailable(_)
                | RouterError::BindingTimeout(_)
                | RouterError::Unsent(_)
        )
    }

    /// The message URL-encoded for the `l5d-err` header.
    pub fn header_value(&self) -> HeaderValue {
        let encoded = url_encode(&self.to_string());
        HeaderValue::from_str(&encoded).unwrap_or_else(|_| HeaderValue::from_static("error"))
    }
}

/// Percent-encodes everything but unreserved characters (spaces as `+`,
/// as Java's URLEncoder does).
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'*' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_linkerd() {
        assert_eq!(
            RouterError::Unidentified("x".into()).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            RouterError::NoEndpoints("x".into()).status(),
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(
            RouterError::Timeout("x".into()).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let over = RouterError::BindingLimit("x".into());
        assert_eq!(over.status(), StatusCode::BAD_REQUEST);
        assert!(!over.retryable());
        assert_eq!(
            RouterError::LineTooLong("x".into()).status(),
            StatusCode::URI_TOO_LONG
        );
        assert_eq!(
            RouterError::FieldsTooLarge("x".into()).status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        assert_eq!(
            RouterError::AmbiguousRequest("x".into()).status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn header_is_url_encoded() {
        let e = RouterError::NoEndpoints("no endpoints for /svc/web: ~".into());
        assert_eq!(e.header_value(), "no+endpoints+for+%2Fsvc%2Fweb%3A+%7E");
    }
}
