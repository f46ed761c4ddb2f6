//! The few calls of Consul's KV HTTP API that the store makes, each with a
//! timeout.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::{ConsistencyMode, Timing};

/// The largest answer read from Consul (a value is at most 512 KiB; a
/// listing of many keys can be larger).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How much of an error body goes into an error message.
const MAX_ERROR_TEXT: usize = 200;

/// Whether a read waits for a change.
#[derive(Clone, Copy, Debug)]
pub(super) enum Blocking {
    /// Answer at once.
    No,
    /// Answer once the index passes `index`, or after `wait`.
    Since { index: u64, wait: Duration },
}

/// One KV entry: what the store needs of it.
#[derive(Debug)]
pub(super) struct KvEntry {
    pub(super) modify_index: u64,
    pub(super) value: Vec<u8>,
}

/// An entry in Consul's JSON, with the base64 value.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EntryJson {
    modify_index: u64,
    /// Consul sends an empty value as `null`.
    value: Option<String>,
}

/// An HTTP client for one Consul agent's KV endpoints.
pub(super) struct KvClient {
    http: Client<HttpConnector, Full<Bytes>>,
    authority: String,
    token: Option<HeaderValue>,
    datacenter: Option<String>,
    timing: Timing,
}

struct Reply {
    status: StatusCode,
    index: Option<u64>,
    body: Bytes,
}

impl KvClient {
    /// Checks `host`, `port` and `token` and makes a client.
    pub(super) fn new(
        host: &str,
        port: u16,
        token: Option<&str>,
        datacenter: Option<String>,
        timing: Timing,
    ) -> Result<KvClient, String> {
        let bad_host = host.is_empty()
            || host
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "/?#@[]".contains(c));
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        if bad_host || authority.parse::<http::uri::Authority>().is_err() {
            return Err(format!("host: {host:?} is not a host name or IP address"));
        }
        let token = token
            .map(|t| match HeaderValue::from_str(t) {
                Ok(v) if !t.is_empty() => {
                    let mut v = v;
                    v.set_sensitive(true);
                    Ok(v)
                }
                _ => Err("token: must be non-empty printable text".to_string()),
            })
            .transpose()?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timing.request_timeout));
        connector.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(KvClient {
            http,
            authority,
            token,
            datacenter,
            timing,
        })
    }

    /// `host:port`, as used in URLs.
    #[cfg(test)]
    pub(super) fn authority(&self) -> &str {
        &self.authority
    }

    /// Reads one key: the index Consul answered with and the entry, if the
    /// key exists.
    pub(super) async fn get(
        &self,
        key: &str,
        mode: ConsistencyMode,
        blocking: Blocking,
    ) -> Result<(u64, Option<KvEntry>), String> {
        let reply = self
            .send(Method::GET, key, &[], mode, blocking, Bytes::new())
            .await?;
        let describe = |what: &str| format!("GET {key}: {what}");
        let index = self.index_of(&reply, blocking, key)?;
        match reply.status {
            StatusCode::NOT_FOUND => Ok((index, None)),
            StatusCode::OK => {
                let entries: Vec<EntryJson> = serde_json::from_slice(&reply.body)
                    .map_err(|e| self.error(&describe(&format!("unreadable answer: {e}"))))?;
                let Some(entry) = entries.into_iter().next() else {
                    return Ok((index, None));
                };
                let value = match entry.value {
                    None => Vec::new(),
                    Some(text) => base64::engine::general_purpose::STANDARD
                        .decode(text)
                        .map_err(|e| self.error(&describe(&format!("bad base64 value: {e}"))))?,
                };
                Ok((
                    index,
                    Some(KvEntry {
                        modify_index: entry.modify_index,
                        value,
                    }),
                ))
            }
            _ => Err(self.status_error("GET", key, &reply)),
        }
    }

    /// Lists the keys under `prefix`, one level deep (`?keys&separator=/`).
    pub(super) async fn keys(
        &self,
        prefix: &str,
        mode: ConsistencyMode,
        blocking: Blocking,
    ) -> Result<(u64, Vec<String>), String> {
        let reply = self
            .send(
                Method::GET,
                prefix,
                &[("keys", None), ("separator", Some("/"))],
                mode,
                blocking,
                Bytes::new(),
            )
            .await?;
        let index = self.index_of(&reply, blocking, prefix)?;
        match reply.status {
            StatusCode::NOT_FOUND => Ok((index, Vec::new())),
            StatusCode::OK => serde_json::from_slice(&reply.body)
                .map(|keys| (index, keys))
                .map_err(|e| self.error(&format!("GET {prefix}?keys: unreadable answer: {e}"))),
            _ => Err(self.status_error("GET", prefix, &reply)),
        }
    }

    /// Writes `value` at `key`; with `cas`, only if the key's ModifyIndex
    /// is still `cas` (0: only if absent). Says whether it wrote. (Writes
    /// always go through the leader: they take no consistency mode.)
    pub(super) async fn put(
        &self,
        key: &str,
        value: String,
        cas: Option<u64>,
    ) -> Result<bool, String> {
        let cas = cas.map(|c| c.to_string());
        let query: &[(&str, Option<&str>)] = match &cas {
            Some(c) => &[("cas", Some(c))],
            None => &[],
        };
        let reply = self
            .send(
                Method::PUT,
                key,
                query,
                ConsistencyMode::Default,
                Blocking::No,
                value.into(),
            )
            .await?;
        self.boolean("PUT", key, &reply)
    }

    /// Deletes `key` if its ModifyIndex is still `cas`; says whether it did
    /// (Consul also says yes when the key is already gone).
    pub(super) async fn delete(&self, key: &str, cas: u64) -> Result<bool, String> {
        let cas = cas.to_string();
        let reply = self
            .send(
                Method::DELETE,
                key,
                &[("cas", Some(&cas))],
                ConsistencyMode::Default,
                Blocking::No,
                Bytes::new(),
            )
            .await?;
        self.boolean("DELETE", key, &reply)
    }

    fn boolean(&self, method: &str, key: &str, reply: &Reply) -> Result<bool, String> {
        if reply.status != StatusCode::OK {
            return Err(self.status_error(method, key, reply));
        }
        match reply.body.trim_ascii() {
            b"true" => Ok(true),
            b"false" => Ok(false),
            other => Err(self.error(&format!(
                "{method} {key}: expected true or false, got {:?}",
                String::from_utf8_lossy(other)
            ))),
        }
    }

    /// The `X-Consul-Index` of a reply; a blocking query cannot go on
    /// without it.
    fn index_of(&self, reply: &Reply, blocking: Blocking, key: &str) -> Result<u64, String> {
        match (reply.index, reply.status) {
            (Some(index), _) => Ok(index),
            (None, StatusCode::OK | StatusCode::NOT_FOUND)
                if matches!(blocking, Blocking::Since { .. }) =>
            {
                Err(self.error(&format!("GET {key}: the answer has no X-Consul-Index")))
            }
            (None, _) => Ok(0),
        }
    }

    fn error(&self, what: &str) -> String {
        format!("Consul at {}: {what}", self.authority)
    }

    fn status_error(&self, method: &str, key: &str, reply: &Reply) -> String {
        let text = String::from_utf8_lossy(&reply.body);
        let mut text = text.trim().to_string();
        if text.len() > MAX_ERROR_TEXT {
            let mut cut = MAX_ERROR_TEXT;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        let hint = if reply.status == StatusCode::FORBIDDEN {
            " (check the storage token)"
        } else {
            ""
        };
        self.error(&format!(
            "{method} {key}: answered {}{hint}: {text}",
            reply.status
        ))
    }

    async fn send(
        &self,
        method: Method,
        key: &str,
        extra: &[(&str, Option<&str>)],
        mode: ConsistencyMode,
        blocking: Blocking,
        body: Bytes,
    ) -> Result<Reply, String> {
        let mut query: Vec<String> = Vec::new();
        if let Some(dc) = &self.datacenter {
            query.push(format!("dc={dc}"));
        }
        if let Some(flag) = mode.flag() {
            query.push(flag.to_string());
        }
        for (name, value) in extra {
            match value {
                Some(value) => query.push(format!("{name}={value}")),
                None => query.push((*name).to_string()),
            }
        }
        let mut limit = self.timing.request_timeout;
        if let Blocking::Since { index, wait } = blocking {
            query.push(format!("index={index}"));
            query.push(format!("wait={}ms", wait.as_millis()));
            // Consul adds up to wait/16 to spread wake-ups.
            limit += wait + wait / 16;
        }
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{}", query.join("&"))
        };
        let uri = format!("http://{}/v1/kv/{key}{query}", self.authority);
        let mut request = Request::builder()
            .method(method.clone())
            .uri(&uri)
            .body(Full::new(body))
            .map_err(|e| self.error(&format!("{method} {key}: bad request: {e}")))?;
        if let Some(token) = &self.token {
            request
                .headers_mut()
                .insert("X-Consul-Token", token.clone());
        }
        let call = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| self.error(&format!("{method} {key}: {}", describe_error(&e))))?;
            let status = response.status();
            let index = response
                .headers()
                .get("X-Consul-Index")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|e| self.error(&format!("{method} {key}: reading the answer: {e}")))?
                .to_bytes();
            Ok(Reply {
                status,
                index,
                body,
            })
        };
        tokio::time::timeout(limit, call)
            .await
            .map_err(|_| self.error(&format!("{method} {key}: no answer within {limit:?}")))?
    }
}

/// The error and its causes on one line ("client error (Connect): tcp
/// connect error: Connection refused").
fn describe_error(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
