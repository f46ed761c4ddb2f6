//! The client side: requests to the router and whole answers.

use std::net::SocketAddr;

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as LegacyClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::{Body, STEP, empty, within};

/// A pooling (keep-alive) HTTP/1.1 client.
pub type Client = LegacyClient<HttpConnector, Body>;

/// A new pooling client.
pub fn client() -> Client {
    LegacyClient::builder(TokioExecutor::new()).build_http()
}

/// A request to the router at `addr` for `host` and `path`.
pub fn request(addr: SocketAddr, host: &str, path: &str) -> http::request::Builder {
    Request::builder()
        .uri(format!("http://{addr}{path}"))
        .header(HOST, host)
}

/// A whole answer.
#[derive(Debug)]
pub struct Reply {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
}

/// Sends `request` and collects the answer.
pub async fn send(client: &Client, request: Request<Body>) -> Reply {
    let what = format!("{} {}", request.method(), request.uri());
    within(STEP, &format!("the answer to {what}"), async {
        let response = client
            .request(request)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        collect(response).await
    })
    .await
}

/// `GET path` with `Host: host` and `headers`, through the router at `addr`.
pub async fn get(
    client: &Client,
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut builder = request(addr, host, path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    send(client, builder.body(empty()).expect("request")).await
}

/// Collects a response.
pub async fn collect(response: Response<Incoming>) -> Reply {
    let (parts, body) = response.into_parts();
    let body = within(STEP, "a response body", body.collect())
        .await
        .expect("response body")
        .to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

impl Reply {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// The backend that answered (`x-backend`), or `-` for the router.
    pub fn backend(&self) -> String {
        self.header("x-backend").unwrap_or_else(|| "-".into())
    }

    /// `l5d-err`, decoded.
    pub fn l5d_err(&self) -> String {
        let raw = self
            .header("l5d-err")
            .unwrap_or_else(|| panic!("no l5d-err in {self:?}"));
        url_decode(&raw)
    }

    /// The backend's JSON echo.
    pub fn echo(&self) -> serde_json::Value {
        assert_eq!(self.status, StatusCode::OK, "not an echo: {}", self.text());
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("echo is not JSON ({e}): {}", self.text()))
    }

    /// Every value of a request header as the backend saw it.
    pub fn seen_headers(&self, name: &str) -> Vec<String> {
        self.echo()["headers"][name]
            .as_array()
            .map(|values| {
                values
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first value of a request header as the backend saw it.
    pub fn seen_header(&self, name: &str) -> Option<String> {
        self.seen_headers(name).into_iter().next()
    }

    /// The request path and query as the backend saw them.
    pub fn seen_uri(&self) -> String {
        self.echo()["uri"].as_str().unwrap_or_default().to_string()
    }

    /// The request method as the backend saw it.
    pub fn seen_method(&self) -> String {
        self.echo()["method"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// Decodes `%XX` escapes and `+` (as Java's URLDecoder does).
pub fn url_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
