//! namerd's API vocabulary (namespaces, dtab versions) and a client for
//! its HTTP API (`/api/1/...`), as served by namerd's
//! `io.l5d.httpController` interface and by Linkerd's namerd.
//!
//! Used by `namerctl` and by the router's `io.l5d.namerd.http`
//! interpreter. Every call has a timeout; watches return a [`Watch`] that
//! yields each change and leaves reconnecting to the caller. An `https://`
//! base URL is reached over TLS with the settings given to
//! [`Client::with_tls`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use namerd_client::{BaseUrl, Client, Namespace};
//!
//! let client = Client::new(BaseUrl::parse("http://127.0.0.1:4180")?);
//! let current = client.get_dtab(&Namespace::new("default")?).await?;
//! println!("version {} has {} dentries", current.version, current.dtab.len());
//! # Ok(())
//! # }
//! ```

mod base_url;
mod error;
/// A fake namerd for tests of API clients (namerctl's among them).
#[cfg(any(test, feature = "fake"))]
#[doc(hidden)]
pub mod fake;
/// Linkerd's mesh gRPC API: generated client and server, and conversions.
pub mod mesh;
mod namespace;
#[cfg(test)]
mod tests;
pub mod thrift;
mod tls;
mod version;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dtab::{Dtab, Path};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, ETAG, IF_MATCH};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use base_url::{BaseUrl, BaseUrlError};
pub use error::ClientError;
pub use namespace::{MAX_NAMESPACE_LEN, Namespace, NamespaceError};
pub use tls::{TlsFailure, TlsSettings};
pub use version::{Version, VersionedDtab};
pub use watch::Watch;

/// The largest non-streaming response body read (a delegate tree of a big
/// dtab is the largest answer namerd gives).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// A namerd HTTP API client. Cheap to clone; clones share connections.
#[derive(Clone, Debug)]
pub struct Client {
    base: BaseUrl,
    server: String,
    http: HttpClient<tls::Connector, Full<Bytes>>,
    timeout: Duration,
    /// Sent as `Authorization: Bearer <token>` with writes.
    token: Option<HeaderValue>,
    /// A TLS failure a connection read after its handshake.
    late_tls_failures: Arc<tls::LateTlsFailure>,
}

/// One update from [`Client::watch_dtab`]: the dtab, and its version when
/// the server sends one (Linkerd's namerd streams bare dtabs).
#[derive(Clone, Debug, PartialEq)]
pub struct DtabUpdate {
    /// The dtab as it is now.
    pub dtab: Dtab,
    /// Its version, if the stream carries it.
    pub version: Option<Version>,
}

impl<'de> Deserialize<'de> for DtabUpdate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<DtabUpdate, D::Error> {
        /// A bare dtab, or `{"version": <etag>, "dtab": [...]}`.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Bare(Dtab),
            Versioned { version: Option<String>, dtab: Dtab },
        }
        Ok(match Wire::deserialize(d)? {
            Wire::Bare(dtab) => DtabUpdate {
                dtab,
                version: None,
            },
            Wire::Versioned { version, dtab } => DtabUpdate {
                dtab,
                version: version.as_deref().and_then(Version::from_etag),
            },
        })
    }
}

/// How a call's answer is used.
struct Answer {
    headers: HeaderMap,
    body: Bytes,
}

impl Client {
    /// How long a call may take unless set otherwise: connecting, sending
    /// and reading the whole answer (for a watch: until the answer starts).
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    /// A client for the namerd at `base`.
    pub fn new(base: BaseUrl) -> Client {
        Client::with_connector(base, None)
    }

    /// A client for the namerd at `base` that speaks TLS to an `https://`
    /// base URL with `tls`.
    pub fn with_tls(base: BaseUrl, tls: TlsSettings) -> Client {
        Client::with_connector(base, Some(tls))
    }

    fn with_connector(base: BaseUrl, tls: Option<TlsSettings>) -> Client {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Client::DEFAULT_TIMEOUT));
        // `https://` URLs are the connector's to handle.
        http.enforce_http(false);
        let late_tls_failures = Arc::new(tls::LateTlsFailure::default());
        let connector = tls::Connector {
            http,
            tls,
            late_failures: late_tls_failures.clone(),
        };
        let http = HttpClient::builder(TokioExecutor::new()).build(connector);
        Client {
            server: base.to_string(),
            base,
            http,
            timeout: Client::DEFAULT_TIMEOUT,
            token: None,
            late_tls_failures,
        }
    }

    /// The same client, sending `token` as a bearer token with every write
    /// (create, update, delete), for a namerd configured with a write
    /// token. Fails if the token cannot be a header value.
    pub fn with_bearer_token(
        mut self,
        token: &str,
    ) -> Result<Client, http::header::InvalidHeaderValue> {
        let mut value = HeaderValue::from_str(&format!("Bearer {token}"))?;
        value.set_sensitive(true);
        self.token = Some(value);
        Ok(self)
    }

    /// The same client with another per-call timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// Where this client sends its requests.
    pub fn base_url(&self) -> &BaseUrl {
        &self.base
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `GET /api/1/dtabs`: the namespace names, as the server sent them.
    pub async fn list_dtabs(&self) -> Result<Vec<String>, ClientError> {
        let req = self.request(Method::GET, "/api/1/dtabs", "", None)?;
        let what = describe(&req);
        let answer = self.call(req).await?;
        self.json(&answer.body, &what)
    }

    /// `GET /api/1/dtabs/<ns>`: the dtab and its version (from the ETag).
    pub async fn get_dtab(&self, ns: &Namespace) -> Result<VersionedDtab, ClientError> {
        let mut req = self.request(Method::GET, &dtab_path(ns), "", None)?;
        req.headers_mut()
            .insert(ACCEPT, HeaderValue::from_static("application/json"));
        let what = describe(&req);
        let answer = self.call(req).await?;
        let etag = answer
            .headers
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| self.protocol(&what, "the answer has no ETag header".into()))?;
        let version = Version::from_etag(etag)
            .ok_or_else(|| self.protocol(&what, format!("the ETag {etag:?} is not base64")))?;
        let dtab = self.json(&answer.body, &what)?;
        Ok(VersionedDtab { dtab, version })
    }

    /// `POST /api/1/dtabs/<ns>`: creates the namespace. Fails with
    /// [`ClientError::Conflict`] (409) if it exists. Returns the new
    /// version when the server tells it.
    pub async fn create_dtab(
        &self,
        ns: &Namespace,
        dtab: &Dtab,
    ) -> Result<Option<Version>, ClientError> {
        let req = self.request(Method::POST, &dtab_path(ns), "", Some(dtab_json(dtab)))?;
        let answer = self.call(req).await?;
        Ok(etag_version(&answer.headers))
    }

    /// `PUT /api/1/dtabs/<ns>`: replaces the dtab. With a version, only if
    /// the stored dtab still has it (`If-Match`; 412 is
    /// [`ClientError::Conflict`], a missing namespace
    /// [`ClientError::NotFound`]); without one, creates or replaces.
    pub async fn update_dtab(
        &self,
        ns: &Namespace,
        dtab: &Dtab,
        version: Option<&Version>,
    ) -> Result<Option<Version>, ClientError> {
        let mut req = self.request(Method::PUT, &dtab_path(ns), "", Some(dtab_json(dtab)))?;
        if let Some(version) = version {
            let value = HeaderValue::from_str(&version.to_etag())
                .map_err(|e| self.protocol(&describe(&req), e.to_string()))?;
            req.headers_mut().insert(IF_MATCH, value);
        }
        let answer = self.call(req).await?;
        Ok(etag_version(&answer.headers))
    }

    /// `DELETE /api/1/dtabs/<ns>`.
    pub async fn delete_dtab(&self, ns: &Namespace) -> Result<(), ClientError> {
        let req = self.request(Method::DELETE, &dtab_path(ns), "", None)?;
        self.call(req).await.map(drop)
    }

    /// `GET /api/1/delegate/<ns>?path=..&dtab=..`: how `path` resolves
    /// through the stored dtab followed by `extra`, as Linkerd's delegate
    /// tree JSON.
    pub async fn delegate(
        &self,
        ns: &Namespace,
        path: &Path,
        extra: &Dtab,
    ) -> Result<Value, ClientError> {
        self.get_json(&format!("/api/1/delegate/{ns}"), path, extra)
            .await
    }

    /// `GET /api/1/resolve/<ns>?path=..&dtab=..`: the address set `path`
    /// resolves to (Linkerd's addr JSON: `{"type":"bound","addrs":[...]}`,
    /// `neg`, `failed`...).
    pub async fn resolve(
        &self,
        ns: &Namespace,
        path: &Path,
        extra: &Dtab,
    ) -> Result<Value, ClientError> {
        self.get_json(&format!("/api/1/resolve/{ns}"), path, extra)
            .await
    }

    /// `GET /api/1/bind/<ns>?path=..&dtab=..`: the bound tree of `path`.
    pub async fn bind(
        &self,
        ns: &Namespace,
        path: &Path,
        extra: &Dtab,
    ) -> Result<Value, ClientError> {
        self.get_json(&format!("/api/1/bind/{ns}"), path, extra)
            .await
    }

    /// `GET /api/1/addr/<ns>?path=<id>`: the address of a bound id.
    pub async fn addr(&self, ns: &Namespace, id: &Path) -> Result<Value, ClientError> {
        self.get_json(&format!("/api/1/addr/{ns}"), id, &Dtab::empty())
            .await
    }

    /// `GET /api/1/dtabs?watch=true`: the namespace names, on every change.
    pub async fn watch_list(&self) -> Result<Watch<Vec<String>>, ClientError> {
        self.watch("/api/1/dtabs", Vec::new()).await
    }

    /// `GET /api/1/dtabs/<ns>?watch=true`: the dtab, on every change.
    pub async fn watch_dtab(&self, ns: &Namespace) -> Result<Watch<DtabUpdate>, ClientError> {
        self.watch(&dtab_path(ns), Vec::new()).await
    }

    /// `GET /api/1/bind/<ns>?watch=true`: the bound tree, on every change.
    pub async fn watch_bind(
        &self,
        ns: &Namespace,
        path: &Path,
        extra: &Dtab,
    ) -> Result<Watch<Value>, ClientError> {
        self.watch(&format!("/api/1/bind/{ns}"), name_params(path, extra))
            .await
    }

    /// `GET /api/1/addr/<ns>?watch=true`: a bound id's address, on every
    /// change.
    pub async fn watch_addr(&self, ns: &Namespace, id: &Path) -> Result<Watch<Value>, ClientError> {
        self.watch(
            &format!("/api/1/addr/{ns}"),
            name_params(id, &Dtab::empty()),
        )
        .await
    }

    /// `GET /api/1/resolve/<ns>?watch=true`: the resolved address, on every
    /// change.
    pub async fn watch_resolve(
        &self,
        ns: &Namespace,
        path: &Path,
        extra: &Dtab,
    ) -> Result<Watch<Value>, ClientError> {
        self.watch(&format!("/api/1/resolve/{ns}"), name_params(path, extra))
            .await
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        api_path: &str,
        name: &Path,
        extra: &Dtab,
    ) -> Result<T, ClientError> {
        let params = name_params(name, extra);
        let query = base_url::query(&pairs(&params));
        let req = self.request(Method::GET, api_path, &query, None)?;
        let what = describe(&req);
        let answer = self.call(req).await?;
        self.json(&answer.body, &what)
    }

    async fn watch<T: DeserializeOwned>(
        &self,
        api_path: &str,
        mut params: Vec<(&'static str, String)>,
    ) -> Result<Watch<T>, ClientError> {
        params.push(("watch", "true".to_string()));
        let query = base_url::query(&pairs(&params));
        let mut req = self.request(Method::GET, api_path, &query, None)?;
        req.headers_mut()
            .insert(ACCEPT, HeaderValue::from_static("application/json"));
        let what = describe(&req);
        let deadline = tokio::time::Instant::now() + self.timeout;
        let rsp = tokio::time::timeout_at(deadline, self.http.request(req))
            .await
            .map_err(|_| self.timed_out(&what))?
            .map_err(|e| self.connect_error(&what, &e))?;
        if !rsp.status().is_success() {
            let status = rsp.status();
            let body = tokio::time::timeout_at(deadline, read_body(rsp.into_body()))
                .await
                .unwrap_or_else(|_| Ok(Bytes::new()))
                .unwrap_or_default();
            return Err(self.status_error(&what, status, &body));
        }
        Ok(Watch::new(self.server.clone(), what, rsp.into_body()))
    }

    /// A request to `api_path` (which starts with `/api/1`) under the base
    /// URL, with a JSON body if given.
    fn request(
        &self,
        method: Method,
        api_path: &str,
        query: &str,
        json_body: Option<Bytes>,
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let what = format!("{method} {api_path}");
        let uri = self
            .base
            .uri(api_path, query)
            .map_err(|e| self.protocol(&what, format!("cannot build the request URI: {e}")))?;
        let is_write = method != Method::GET && method != Method::HEAD;
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(token) = self.token.as_ref().filter(|_| is_write) {
            builder = builder.header(AUTHORIZATION, token.clone());
        }
        let body = match json_body {
            Some(body) => {
                builder = builder.header(CONTENT_TYPE, "application/json");
                body
            }
            None => Bytes::new(),
        };
        builder
            .body(Full::new(body))
            .map_err(|e| self.protocol(&what, format!("cannot build the request: {e}")))
    }

    /// Sends `req` and reads the whole answer within the timeout; a non-2xx
    /// status is an error.
    async fn call(&self, req: Request<Full<Bytes>>) -> Result<Answer, ClientError> {
        let what = describe(&req);
        let exchange = async {
            let rsp = self
                .http
                .request(req)
                .await
                .map_err(|e| self.connect_error(&what, &e))?;
            let (parts, body) = rsp.into_parts();
            let body = read_body(body)
                .await
                .map_err(|e| ClientError::Unreachable {
                    server: self.server.clone(),
                    request: what.clone(),
                    cause: format!("reading the answer failed: {e}"),
                })?;
            Ok::<_, ClientError>((parts, body))
        };
        let (parts, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| self.timed_out(&what))??;
        if !parts.status.is_success() {
            return Err(self.status_error(&what, parts.status, &body));
        }
        Ok(Answer {
            headers: parts.headers,
            body,
        })
    }

    fn json<T: DeserializeOwned>(&self, body: &[u8], what: &str) -> Result<T, ClientError> {
        serde_json::from_slice(body).map_err(|e| {
            let text = String::from_utf8_lossy(body);
            let shown: String = text.chars().take(200).collect();
            self.protocol(what, format!("{e} in {shown:?}"))
        })
    }

    fn status_error(&self, what: &str, status: StatusCode, body: &[u8]) -> ClientError {
        let message = String::from_utf8_lossy(body).trim().to_string();
        ClientError::from_status(self.server.clone(), what.to_string(), status, message)
    }

    fn protocol(&self, what: &str, message: String) -> ClientError {
        ClientError::Protocol {
            server: self.server.clone(),
            request: what.to_string(),
            message,
        }
    }

    fn timed_out(&self, what: &str) -> ClientError {
        ClientError::Timeout {
            server: self.server.clone(),
            request: what.to_string(),
            after: self.timeout,
        }
    }

    fn connect_error(&self, what: &str, e: &hyper_util::client::legacy::Error) -> ClientError {
        // A failure the connection read before this request could use it
        // (TLS 1.3's late refusal of a client certificate) is the cause.
        if let Some((failure, cause)) = tls::failure_of(e).or_else(|| self.late_tls_failures.take())
        {
            return ClientError::Tls {
                server: self.server.clone(),
                request: what.to_string(),
                failure,
                cause,
            };
        }
        // The legacy client's own message is generic; the cause says why.
        let mut cause = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            cause = format!("{cause}: {s}");
            source = s.source();
        }
        ClientError::Unreachable {
            server: self.server.clone(),
            request: what.to_string(),
            cause,
        }
    }
}

/// `/api/1/dtabs/<ns>`. Namespace names need no escaping.
fn dtab_path(ns: &Namespace) -> String {
    format!("/api/1/dtabs/{ns}")
}

/// The JSON body of a dtab: `[{"prefix":..,"dst":..}]`.
fn dtab_json(dtab: &Dtab) -> Bytes {
    // A Dtab always serializes; an empty array is the only fallback needed.
    Bytes::from(serde_json::to_vec(dtab).unwrap_or_else(|_| b"[]".to_vec()))
}

/// `path=<path>` and, when not empty, `dtab=<extra>`.
fn name_params(path: &Path, extra: &Dtab) -> Vec<(&'static str, String)> {
    let mut params = vec![("path", path.show())];
    if !extra.is_empty() {
        params.push(("dtab", extra.show()));
    }
    params
}

fn pairs<'a>(params: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    params.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn etag_version(headers: &HeaderMap) -> Option<Version> {
    headers
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .and_then(Version::from_etag)
}

/// `METHOD /path?query`, without the base URL.
fn describe<B>(req: &Request<B>) -> String {
    let uri = req.uri();
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    format!("{} {}", req.method(), path)
}

async fn read_body(body: Incoming) -> Result<Bytes, String> {
    Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| e.to_string())
}
