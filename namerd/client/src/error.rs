//! What can go wrong talking to namerd, and whose fault it was.

use std::time::Duration;

use http::StatusCode;

/// A failed call to namerd. Every variant names the server and the request
/// (`GET /api/1/dtabs/default`), so a message is useful on its own.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// 404: the namespace (or the API path) does not exist.
    #[error("namerd at {server}: 404 Not Found: {request}{}", detail(message))]
    NotFound {
        /// The base URL.
        server: String,
        /// Method and path.
        request: String,
        /// The response body, if any.
        message: String,
    },
    /// 409 (the namespace already exists) or 412 (the version given with
    /// `If-Match` is no longer the stored one).
    #[error("namerd at {server}: {status}: {request}{}", detail(message))]
    Conflict {
        /// The base URL.
        server: String,
        /// Method and path.
        request: String,
        /// 409 or 412.
        status: StatusCode,
        /// The response body, if any.
        message: String,
    },
    /// 400: namerd refused the request; `message` is its explanation
    /// (e.g. the dtab parser's error).
    #[error("namerd at {server}: 400 Bad Request: {request}{}", detail(message))]
    BadRequest {
        /// The base URL.
        server: String,
        /// Method and path.
        request: String,
        /// The response body.
        message: String,
    },
    /// 401 or 403: the write needs namerd's write token, or a different
    /// one.
    #[error("namerd at {server}: {status}: {request}{}", detail(message))]
    Unauthorized {
        /// The base URL.
        server: String,
        /// Method and path.
        request: String,
        /// 401 or 403.
        status: StatusCode,
        /// The response body, if any.
        message: String,
    },
    /// 5xx: namerd or its storage failed.
    #[error("namerd at {server}: {status}: {request}{}", detail(message))]
    Server {
        /// The base URL.
        server: String,
        /// Method and path.
        request: String,
        /// The status.
        status: StatusCode,
        /// The response body, if any.
        message: String,
    },
    /// Any other status namerd should not answer with (403, 405, 415...).
    #[error(
        "namerd at {server}: unexpected response: {status}: {request}{}",
        detail(message)
    )]
    Unexpected {
        /// The base URL.
        server: String,
        /// Method and path.
        request: String,
        /// The status.
        status: StatusCode,
        /// The response body, if any.
        message: String,
    },
    /// No connection could be made, or it broke before an answer came.
    #[error("namerd at {server}: unreachable: {request}: {cause}")]
    Unreachable {
        /// The base URL.
        server: String,
        /// Method and path.
        request: String,
        /// The connection error.
        cause: String,
    },
    /// TLS with namerd failed: its certificate was not trusted or not for
    /// the name asked for, it refused this side's certificate, or it does
    /// not speak TLS on that port.
    #[error("namerd at {server}: TLS failed: {request}: {failure} ({cause})")]
    Tls {
        /// The base URL.
        server: String,
        /// Method and path.
        request: String,
        /// What went wrong.
        failure: crate::TlsFailure,
        /// rustls's own account of it.
        cause: String,
    },
    /// No complete answer within the client's timeout.
    #[error("namerd at {server}: no answer within {after:?}: {request}")]
    Timeout {
        /// The base URL.
        server: String,
        /// Method and path.
        request: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// A watch stream ended with an error: namerd wrote an error message
    /// instead of a value, or the connection broke mid-stream.
    #[error("namerd at {server}: watch failed: {request}: {message}")]
    WatchFailed {
        /// The base URL.
        server: String,
        /// Method and path.
        request: String,
        /// What namerd said, or how the stream broke.
        message: String,
    },
    /// namerd answered 2xx with a body or header this client cannot read.
    #[error("namerd at {server}: unreadable response: {request}: {message}")]
    Protocol {
        /// The base URL.
        server: String,
        /// Method and path.
        request: String,
        /// What was wrong with it.
        message: String,
    },
}

/// `": <message>"`, or nothing for an empty body.
fn detail(message: &str) -> String {
    let message = message.trim();
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

impl ClientError {
    /// Whether retrying the same call later may succeed: the server was
    /// unreachable, slow, failing, or a watch broke. A TLS failure is not:
    /// the same certificates fail the same way.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ClientError::Unreachable { .. }
                | ClientError::Timeout { .. }
                | ClientError::Server { .. }
                | ClientError::WatchFailed { .. }
        )
    }

    /// The HTTP status namerd answered with, if it answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::NotFound { .. } => Some(StatusCode::NOT_FOUND),
            ClientError::BadRequest { .. } => Some(StatusCode::BAD_REQUEST),
            ClientError::Conflict { status, .. }
            | ClientError::Unauthorized { status, .. }
            | ClientError::Server { status, .. }
            | ClientError::Unexpected { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The error for a non-2xx answer.
    pub(crate) fn from_status(
        server: String,
        request: String,
        status: StatusCode,
        message: String,
    ) -> ClientError {
        match status {
            StatusCode::NOT_FOUND => ClientError::NotFound {
                server,
                request,
                message,
            },
            StatusCode::CONFLICT | StatusCode::PRECONDITION_FAILED => ClientError::Conflict {
                server,
                request,
                status,
                message,
            },
            StatusCode::BAD_REQUEST => ClientError::BadRequest {
                server,
                request,
                message,
            },
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ClientError::Unauthorized {
                server,
                request,
                status,
                message,
            },
            s if s.is_server_error() => ClientError::Server {
                server,
                request,
                status,
                message,
            },
            _ => ClientError::Unexpected {
                server,
                request,
                status,
                message,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_server_the_status_and_the_request() {
        let e = ClientError::from_status(
            "http://127.0.0.1:4180".into(),
            "GET /api/1/dtabs/nope".into(),
            StatusCode::NOT_FOUND,
            String::new(),
        );
        assert_eq!(
            e.to_string(),
            "namerd at http://127.0.0.1:4180: 404 Not Found: GET /api/1/dtabs/nope"
        );
        let e = ClientError::from_status(
            "http://h:1".into(),
            "PUT /api/1/dtabs/x".into(),
            StatusCode::BAD_REQUEST,
            "expected '=>' at 1:6\n".into(),
        );
        assert_eq!(
            e.to_string(),
            "namerd at http://h:1: 400 Bad Request: PUT /api/1/dtabs/x: expected '=>' at 1:6"
        );
        let e = ClientError::from_status(
            "http://h:1".into(),
            "PUT /api/1/dtabs/x".into(),
            StatusCode::PRECONDITION_FAILED,
            String::new(),
        );
        assert!(matches!(e, ClientError::Conflict { .. }));
        assert_eq!(e.status(), Some(StatusCode::PRECONDITION_FAILED));
        let e = ClientError::from_status(
            "http://h:1".into(),
            "GET /x".into(),
            StatusCode::SERVICE_UNAVAILABLE,
            String::new(),
        );
        assert!(matches!(e, ClientError::Server { .. }) && e.is_transient());
        let e = ClientError::from_status(
            "http://h:1".into(),
            "GET /x".into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            String::new(),
        );
        assert!(e.to_string().contains("unexpected response: 415"), "{e}");
    }
}
