//! POSTing a JSON batch over plain HTTP, gzipped when asked, for the
//! exporters whose collectors take HTTP (Zipkin's v2 API, OTLP/HTTP).

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, HOST, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// How much of a collector's answer is read (to reuse the connection, and
/// to quote an error).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// How much of an error answer goes into an error message.
const QUOTED: usize = 200;

/// A collector's URI and the client that posts to it.
pub(super) struct JsonPoster {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    host: Option<HeaderValue>,
    gzip: bool,
}

impl JsonPoster {
    /// Posts to `uri`, with `host` as the `Host` header instead of the
    /// URI's authority when given.
    pub(super) fn new(uri: Uri, host: Option<HeaderValue>) -> JsonPoster {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(2)
            .build(connector);
        JsonPoster {
            client,
            uri,
            host,
            gzip: false,
        }
    }

    /// Whether bodies are sent gzipped (`Content-Encoding: gzip`).
    pub(super) fn gzipped(mut self, gzip: bool) -> JsonPoster {
        self.gzip = gzip;
        self
    }

    /// Where batches go, for logs.
    pub(super) fn target(&self) -> String {
        self.uri.to_string()
    }

    /// POSTs `body` as JSON; any 2xx is success.
    pub(super) async fn post(&self, body: Vec<u8>) -> Result<(), String> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(CONTENT_TYPE, "application/json");
        let body = if self.gzip {
            request = request.header(CONTENT_ENCODING, "gzip");
            gzip(&body)
        } else {
            body
        };
        if let Some(host) = &self.host {
            request = request.header(HOST, host.clone());
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot make the request: {e}"))?;
        let answer = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("cannot post: {}", error_chain(&e)))?;
        let status = answer.status();
        let body = Limited::new(answer.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if status.is_success() {
            return Ok(());
        }
        let text: String = String::from_utf8_lossy(&body)
            .chars()
            .take(QUOTED)
            .collect();
        Err(format!("the collector answered {status}: {}", text.trim()))
    }
}

/// `body` gzipped, at the fast level: the exporter's task does it, and a
/// batch of spans compresses well at any level.
fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

/// An error and its causes, `: `-joined (hyper's own message is terse).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}
