//! Reading dtabs from request bodies in the content types namerd accepts.

use axum::http::{HeaderMap, header};
use dtab::Dtab;

/// Why a request body is not a dtab.
pub enum BodyError {
    /// No `Content-Type` header.
    MissingContentType,
    /// A content type that is not JSON, `application/dtab` or `text/plain`.
    UnsupportedContentType(String),
    /// The body does not parse.
    Invalid(String),
}

impl BodyError {
    pub fn message(&self) -> String {
        match self {
            BodyError::MissingContentType => {
                "missing Content-Type: send application/json, application/dtab or text/plain\n"
                    .to_string()
            }
            BodyError::UnsupportedContentType(ct) => format!(
                "Invalid Content-Type \"{ct}\". Send application/json, application/dtab or text/plain.\n"
            ),
            BodyError::Invalid(why) => format!("{why}\n"),
        }
    }
}

/// Parses `body` as a dtab according to the request's `Content-Type`.
pub fn dtab_from_body(headers: &HeaderMap, body: &[u8]) -> Result<Dtab, BodyError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .ok_or(BodyError::MissingContentType)?
        .to_str()
        .map_err(|_| BodyError::UnsupportedContentType("<not text>".to_string()))?;
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let text = std::str::from_utf8(body)
        .map_err(|_| BodyError::Invalid("the body is not UTF-8".to_string()))?;
    match media.as_str() {
        "application/json" => serde_json::from_str::<Dtab>(text)
            .map_err(|e| BodyError::Invalid(format!("invalid dtab JSON: {e}"))),
        "application/dtab" | "text/plain" => {
            Dtab::read(text).map_err(|e| BodyError::Invalid(format!("invalid dtab: {e}")))
        }
        _ => Err(BodyError::UnsupportedContentType(content_type.to_string())),
    }
}
