//! One HTTP client for Consul, used by the `io.l5d.consul` namer and by
//! namerd's `io.l5d.consul` store: the service queries of the catalog and
//! health endpoints, `/v1/agent/self`, and the KV calls with
//! compare-and-set. Each call has a timeout longer than its wait; every
//! path part is percent-encoded. The agent's address and token are checked
//! by the config ([`Agent::new`]), not here.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Deserialize;

use super::config::{Agent, ConsistencyMode, HealthStatus, Settings};

/// The largest answer read from Consul.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// The read buffer of each connection to the agent (answers larger than
/// this are read in several turns).
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// How much of an error body goes into an error message.
const MAX_ERROR_TEXT: usize = 200;

/// Consul's answer when `?dc=` names a datacenter it cannot reach.
const NO_PATH_TO_DATACENTER: &str = "No path to datacenter";

/// One service query: which endpoint, datacenter, service and tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ServiceQuery {
    /// The datacenter's real name (`.local` already resolved).
    pub(super) dc: String,
    pub(super) service: String,
    pub(super) tag: Option<String>,
}

/// A service query's answer, not yet parsed.
pub(super) struct Reply {
    /// `X-Consul-Index`.
    pub(super) index: u64,
    pub(super) body: Bytes,
    /// Whether Consul says ACLs hid some entries.
    pub(super) filtered: bool,
}

/// Why a call to Consul failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Consul cannot reach the datacenter (or does not know it).
    #[error("{0}")]
    NoDatacenter(String),
    /// Anything else: the agent is down, refuses, times out, or answers
    /// something unreadable.
    #[error("{0}")]
    Failed(String),
}

/// Whether a read waits for a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocking {
    /// Answer at once.
    No,
    /// Answer once the index passes `index`, or after `wait`.
    Since {
        /// The `X-Consul-Index` of the last answer.
        index: u64,
        /// How long Consul may hold the query.
        wait: Duration,
    },
}

/// One KV entry: its `ModifyIndex` and its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvEntry {
    /// The index of the entry's last change.
    pub modify_index: u64,
    /// The value, decoded from base64.
    pub value: Vec<u8>,
}

/// An entry in Consul's KV JSON, with the base64 value.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KvEntryJson {
    modify_index: u64,
    /// Consul sends an empty value as `null`.
    value: Option<String>,
}

/// One service instance, as the namer needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Instance {
    pub(super) node_address: String,
    pub(super) service_address: String,
    pub(super) port: u16,
    pub(super) tags: Vec<String>,
    /// The worst status of its checks (always passing from the catalog).
    pub(super) status: HealthStatus,
}

/// What the namer needs of the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct AgentInfo {
    /// The agent's datacenter, which `.local` stands for.
    pub(super) datacenter: String,
    /// The DNS domain, without dots around it (`consul` by default).
    pub(super) domain: String,
}

/// What came back from one call.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    /// `X-Consul-Index`, if present and a number.
    fn index(&self) -> Option<u64> {
        self.headers
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
    }
}

/// An HTTP client for one Consul agent.
pub struct ConsulClient {
    http: Client<HttpConnector, Full<Bytes>>,
    agent: Agent,
    request_timeout: Duration,
}

impl ConsulClient {
    /// A client of `agent`; a call that does not block is given
    /// `request_timeout`, a blocking one its wait (and Consul's extra) more.
    pub fn new(agent: Agent, request_timeout: Duration) -> ConsulClient {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(request_timeout));
        connector.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            // Each watch holds a connection for its blocking query; a read
            // buffer that grew to fit the largest answer would stay that
            // large on every one of them.
            .http1_read_buf_exact_size(READ_BUFFER_BYTES)
            .build(connector);
        ConsulClient {
            http,
            agent,
            request_timeout,
        }
    }

    /// The agent this client calls.
    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    /// Runs a service query; with a non-zero `index`, a blocking one that
    /// returns once the service's index passes it or the wait is over.
    pub(super) async fn service(
        &self,
        settings: &Settings,
        query: &ServiceQuery,
        index: u64,
    ) -> Result<Reply, QueryError> {
        let endpoint = if settings.health.is_some() {
            "health"
        } else {
            "catalog"
        };
        let mut params = vec![("dc", Some(query.dc.as_str()))];
        if let Some(tag) = &query.tag {
            params.push(("tag", Some(tag)));
        }
        // Consul filters by passing checks itself when that is all we want.
        let passing_only = settings
            .health
            .as_ref()
            .is_some_and(|s| s.len() == 1 && s.contains(&HealthStatus::Passing));
        if passing_only {
            params.push(("passing", None));
        }
        let blocking = if index > 0 {
            Blocking::Since {
                index,
                wait: settings.timing.wait,
            }
        } else {
            Blocking::No
        };
        let what = format!(
            "{endpoint} of {}{} in {}",
            query.service,
            query
                .tag
                .as_deref()
                .map(|t| format!(" tagged {t}"))
                .unwrap_or_default(),
            query.dc
        );
        let path = format!("/v1/{endpoint}/service/{}", encode(&query.service));
        let answer = self
            .call(
                Method::GET,
                &path,
                &params,
                settings.consistency,
                blocking,
                Bytes::new(),
            )
            .await
            .map_err(|e| QueryError::Failed(self.error(&what, &e)))?;
        if answer.status != StatusCode::OK {
            return Err(self.status_error(&what, &answer, " (check the token)"));
        }
        let index = answer.index().ok_or_else(|| {
            QueryError::Failed(self.error(&what, "the answer has no X-Consul-Index"))
        })?;
        let filtered = answer
            .headers
            .get("X-Consul-Results-Filtered-By-ACLs")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        Ok(Reply {
            index,
            body: answer.body,
            filtered,
        })
    }

    /// Reads the agent's datacenter and DNS domain.
    pub(super) async fn agent_info(&self) -> Result<AgentInfo, QueryError> {
        let what = "agent/self";
        let answer = self
            .call(
                Method::GET,
                "/v1/agent/self",
                &[],
                ConsistencyMode::Default,
                Blocking::No,
                Bytes::new(),
            )
            .await
            .map_err(|e| QueryError::Failed(self.error(what, &e)))?;
        if answer.status != StatusCode::OK {
            return Err(self.status_error(what, &answer, " (the token needs agent:read)"));
        }
        parse_agent(&answer.body).map_err(|e| QueryError::Failed(self.error(what, &e)))
    }

    /// Reads one KV key in datacenter `dc` (the agent's own if `None`): the
    /// index Consul answered with and the entry, if the key exists.
    pub async fn get(
        &self,
        key: &str,
        dc: Option<&str>,
        mode: ConsistencyMode,
        blocking: Blocking,
    ) -> Result<(u64, Option<KvEntry>), QueryError> {
        let what = format!("GET {key}");
        let answer = self
            .kv(
                Method::GET,
                key,
                dc,
                &[],
                mode,
                blocking,
                Bytes::new(),
                &what,
            )
            .await?;
        let index = self.index_of(&answer, blocking, &what)?;
        match answer.status {
            StatusCode::NOT_FOUND => Ok((index, None)),
            StatusCode::OK => {
                let entries: Vec<KvEntryJson> = serde_json::from_slice(&answer.body)
                    .map_err(|e| self.failed(&what, format!("unreadable answer: {e}")))?;
                let Some(entry) = entries.into_iter().next() else {
                    return Ok((index, None));
                };
                let value = match entry.value {
                    None => Vec::new(),
                    Some(text) => base64::engine::general_purpose::STANDARD
                        .decode(text)
                        .map_err(|e| self.failed(&what, format!("bad base64 value: {e}")))?,
                };
                Ok((
                    index,
                    Some(KvEntry {
                        modify_index: entry.modify_index,
                        value,
                    }),
                ))
            }
            _ => Err(self.status_error(&what, &answer, " (check the token)")),
        }
    }

    /// Lists the KV keys under `prefix`, one level deep
    /// (`?keys&separator=/`).
    pub async fn keys(
        &self,
        prefix: &str,
        dc: Option<&str>,
        mode: ConsistencyMode,
        blocking: Blocking,
    ) -> Result<(u64, Vec<String>), QueryError> {
        let what = format!("GET {prefix}?keys");
        let params = [("keys", None), ("separator", Some("/"))];
        let answer = self
            .kv(
                Method::GET,
                prefix,
                dc,
                &params,
                mode,
                blocking,
                Bytes::new(),
                &what,
            )
            .await?;
        let index = self.index_of(&answer, blocking, &what)?;
        match answer.status {
            StatusCode::NOT_FOUND => Ok((index, Vec::new())),
            StatusCode::OK => serde_json::from_slice(&answer.body)
                .map(|keys| (index, keys))
                .map_err(|e| self.failed(&what, format!("unreadable answer: {e}"))),
            _ => Err(self.status_error(&what, &answer, " (check the token)")),
        }
    }

    /// Writes `value` at `key`; with `cas`, only if the key's ModifyIndex
    /// is still `cas` (0: only if absent). Says whether it wrote. (Writes
    /// always go through the leader: they take no consistency mode.)
    pub async fn put(
        &self,
        key: &str,
        dc: Option<&str>,
        value: impl Into<Bytes>,
        cas: Option<u64>,
    ) -> Result<bool, QueryError> {
        let what = format!("PUT {key}");
        let cas = cas.map(|c| c.to_string());
        let params: &[(&str, Option<&str>)] = match &cas {
            Some(c) => &[("cas", Some(c))],
            None => &[],
        };
        let answer = self
            .kv(
                Method::PUT,
                key,
                dc,
                params,
                ConsistencyMode::Default,
                Blocking::No,
                value.into(),
                &what,
            )
            .await?;
        self.boolean(&what, &answer)
    }

    /// Deletes `key` if its ModifyIndex is still `cas`; says whether it did
    /// (Consul also says yes when the key is already gone).
    pub async fn delete(&self, key: &str, dc: Option<&str>, cas: u64) -> Result<bool, QueryError> {
        let what = format!("DELETE {key}");
        let cas = cas.to_string();
        let answer = self
            .kv(
                Method::DELETE,
                key,
                dc,
                &[("cas", Some(&cas))],
                ConsistencyMode::Default,
                Blocking::No,
                Bytes::new(),
                &what,
            )
            .await?;
        self.boolean(&what, &answer)
    }

    /// One call to `/v1/kv/<key>`, each part of the key encoded.
    #[allow(clippy::too_many_arguments)]
    async fn kv(
        &self,
        method: Method,
        key: &str,
        dc: Option<&str>,
        params: &[(&str, Option<&str>)],
        mode: ConsistencyMode,
        blocking: Blocking,
        body: Bytes,
        what: &str,
    ) -> Result<Answer, QueryError> {
        let key: Vec<String> = key.split('/').map(encode).collect();
        let path = format!("/v1/kv/{}", key.join("/"));
        let mut all = Vec::with_capacity(params.len() + 1);
        if let Some(dc) = dc {
            all.push(("dc", Some(dc)));
        }
        all.extend_from_slice(params);
        self.call(method, &path, &all, mode, blocking, body)
            .await
            .map_err(|e| QueryError::Failed(self.error(what, &e)))
    }

    /// A KV write's `true` or `false`.
    fn boolean(&self, what: &str, answer: &Answer) -> Result<bool, QueryError> {
        if answer.status != StatusCode::OK {
            return Err(self.status_error(what, answer, " (check the token)"));
        }
        match answer.body.trim_ascii() {
            b"true" => Ok(true),
            b"false" => Ok(false),
            other => Err(self.failed(
                what,
                format!(
                    "expected true or false, got {:?}",
                    String::from_utf8_lossy(other)
                ),
            )),
        }
    }

    /// The `X-Consul-Index` of a KV answer; a blocking query cannot go on
    /// without it.
    fn index_of(&self, answer: &Answer, blocking: Blocking, what: &str) -> Result<u64, QueryError> {
        match (answer.index(), answer.status) {
            (Some(index), _) => Ok(index),
            (None, StatusCode::OK | StatusCode::NOT_FOUND)
                if matches!(blocking, Blocking::Since { .. }) =>
            {
                Err(self.failed(what, "the answer has no X-Consul-Index".to_string()))
            }
            (None, _) => Ok(0),
        }
    }

    fn error(&self, what: &str, why: &str) -> String {
        format!("io.l5d.consul at {}: {what}: {why}", self.agent.authority())
    }

    fn failed(&self, what: &str, why: String) -> QueryError {
        QueryError::Failed(self.error(what, &why))
    }

    /// The error of an answer that is not a success; `hint` follows a 403.
    fn status_error(&self, what: &str, answer: &Answer, hint: &str) -> QueryError {
        let status = answer.status;
        let text = error_text(&answer.body);
        if status == StatusCode::INTERNAL_SERVER_ERROR && text.contains(NO_PATH_TO_DATACENTER) {
            return QueryError::NoDatacenter(
                self.error(what, &format!("answered {status}: {text}")),
            );
        }
        let hint = if status == StatusCode::FORBIDDEN {
            hint
        } else {
            ""
        };
        self.failed(what, format!("answered {status}{hint}: {text}"))
    }

    /// One call: `path` (already encoded) with the query `params` (values
    /// encoded here), the consistency flag and the blocking parameters.
    async fn call(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, Option<&str>)],
        mode: ConsistencyMode,
        blocking: Blocking,
        body: Bytes,
    ) -> Result<Answer, String> {
        let mut query: Vec<String> = params
            .iter()
            .map(|(name, value)| match value {
                Some(value) => format!("{name}={}", encode(value)),
                None => (*name).to_string(),
            })
            .collect();
        if let Some(flag) = mode.flag() {
            query.push(flag.to_string());
        }
        let mut limit = self.request_timeout;
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
        let uri = format!("http://{}{path}{query}", self.agent.authority());
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Full::new(body))
            .map_err(|e| format!("bad request: {e}"))?;
        if let Some(token) = self.agent.token() {
            request
                .headers_mut()
                .insert("X-Consul-Token", token.clone());
        }
        let call = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| describe_error(&e))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|e| format!("reading the answer: {e}"))?
                .to_bytes();
            Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(limit, call)
            .await
            .map_err(|_| format!("no answer within {limit:?}"))?
    }
}

/// The start of an error body, on one line.
fn error_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.len() > MAX_ERROR_TEXT {
        let mut cut = MAX_ERROR_TEXT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
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

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// An entry of `/v1/catalog/service/<service>`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CatalogEntry {
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    service_address: Option<String>,
    #[serde(default)]
    service_port: Option<u16>,
    #[serde(default)]
    service_tags: Option<Vec<String>>,
}

/// An entry of `/v1/health/service/<service>`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HealthEntry {
    #[serde(default)]
    node: Option<HealthNode>,
    #[serde(default)]
    service: Option<HealthService>,
    #[serde(default)]
    checks: Option<Vec<HealthCheck>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HealthNode {
    #[serde(default)]
    address: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HealthService {
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HealthCheck {
    #[serde(rename = "CheckID", default)]
    check_id: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

impl HealthCheck {
    /// What the check says, with Consul's maintenance checks (critical
    /// checks with reserved ids) told apart.
    fn status(&self) -> HealthStatus {
        let id = self.check_id.as_deref().unwrap_or("");
        if id == "_node_maintenance" || id.starts_with("_service_maintenance:") {
            return HealthStatus::Maintenance;
        }
        match self.status.as_deref() {
            Some("passing") => HealthStatus::Passing,
            Some("warning") => HealthStatus::Warning,
            Some("maintenance") => HealthStatus::Maintenance,
            // Consul reports no other status; anything else is not healthy.
            _ => HealthStatus::Critical,
        }
    }
}

/// The instances of a catalog answer.
pub(super) fn parse_catalog(body: &[u8]) -> Result<Vec<Instance>, String> {
    let entries: Vec<CatalogEntry> =
        serde_json::from_slice(body).map_err(|e| format!("unreadable answer: {e}"))?;
    Ok(entries
        .into_iter()
        .map(|e| Instance {
            node_address: e.address.unwrap_or_default(),
            service_address: e.service_address.unwrap_or_default(),
            port: e.service_port.unwrap_or(0),
            tags: e.service_tags.unwrap_or_default(),
            status: HealthStatus::Passing,
        })
        .collect())
}

/// The instances of a health answer, each with the worst status of its
/// checks (node checks included; no check at all is passing).
pub(super) fn parse_health(body: &[u8]) -> Result<Vec<Instance>, String> {
    let entries: Vec<HealthEntry> =
        serde_json::from_slice(body).map_err(|e| format!("unreadable answer: {e}"))?;
    Ok(entries
        .into_iter()
        .map(|e| {
            let service = e.service;
            let status = e
                .checks
                .iter()
                .flatten()
                .map(HealthCheck::status)
                .max()
                .unwrap_or(HealthStatus::Passing);
            Instance {
                node_address: e.node.and_then(|n| n.address).unwrap_or_default(),
                service_address: service
                    .as_ref()
                    .and_then(|s| s.address.clone())
                    .unwrap_or_default(),
                port: service.as_ref().and_then(|s| s.port).unwrap_or(0),
                tags: service.and_then(|s| s.tags).unwrap_or_default(),
                status,
            }
        })
        .collect())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AgentSelf {
    #[serde(default)]
    config: Option<AgentConfig>,
    #[serde(default)]
    debug_config: Option<AgentDebugConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AgentConfig {
    #[serde(default)]
    datacenter: Option<String>,
    /// Reported by Consul before 1.0.
    #[serde(default)]
    domain: Option<String>,
}

#[derive(Deserialize)]
struct AgentDebugConfig {
    #[serde(rename = "DNSDomain", default)]
    dns_domain: Option<String>,
}

/// The datacenter and domain of an agent/self answer.
fn parse_agent(body: &[u8]) -> Result<AgentInfo, String> {
    let agent: AgentSelf =
        serde_json::from_slice(body).map_err(|e| format!("unreadable answer: {e}"))?;
    let config = agent.config;
    let datacenter = config
        .as_ref()
        .and_then(|c| c.datacenter.clone())
        .filter(|dc| !dc.is_empty())
        .ok_or("the answer has no Config.Datacenter")?;
    let domain = config
        .and_then(|c| c.domain)
        .or_else(|| agent.debug_config.and_then(|d| d.dns_domain))
        .map(|d| d.trim_matches('.').to_string())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "consul".to_string());
    Ok(AgentInfo { datacenter, domain })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn health_entries_take_their_worst_check() {
        let body = br#"[
          {"Node": {"Node": "n1", "Address": "10.0.0.1"},
           "Service": {"ID": "web1", "Service": "web", "Tags": ["a"], "Address": "", "Port": 80},
           "Checks": [{"CheckID": "serfHealth", "Status": "passing"},
                      {"CheckID": "service:web1", "Status": "warning"}]},
          {"Node": {"Node": "n2", "Address": "10.0.0.2"},
           "Service": {"ID": "web2", "Service": "web", "Tags": null, "Address": "192.168.0.2", "Port": 81},
           "Checks": [{"CheckID": "serfHealth", "Status": "passing"},
                      {"CheckID": "_service_maintenance:web2", "Status": "critical"}]},
          {"Node": {"Node": "n3", "Address": "10.0.0.3"},
           "Service": {"ID": "web3", "Service": "web", "Port": 82},
           "Checks": []}
        ]"#;
        let instances = parse_health(body).unwrap();
        assert_eq!(instances[0].status, HealthStatus::Warning);
        assert_eq!(instances[0].tags, ["a"]);
        assert_eq!(instances[1].status, HealthStatus::Maintenance);
        assert_eq!(instances[1].service_address, "192.168.0.2");
        assert!(instances[1].tags.is_empty());
        assert_eq!(instances[2].status, HealthStatus::Passing);
        assert_eq!(instances[2].port, 82);
    }

    #[test]
    fn catalog_entries_and_the_agent_parse() {
        let body = br#"[{"Node": "n1", "Address": "10.0.0.1", "ServiceAddress": "",
                         "ServicePort": 80, "ServiceTags": ["x"]}]"#;
        let instances = parse_catalog(body).unwrap();
        assert_eq!(instances[0].node_address, "10.0.0.1");
        assert_eq!(instances[0].tags, ["x"]);
        assert!(parse_catalog(b"{}").is_err());

        let agent = parse_agent(
            br#"{"Config": {"Datacenter": "east"}, "DebugConfig": {"DNSDomain": "corp."}}"#,
        )
        .unwrap();
        assert_eq!(agent.datacenter, "east");
        assert_eq!(agent.domain, "corp");
        let old = parse_agent(br#"{"Config": {"Datacenter": "dc1", "Domain": "consul."}}"#);
        assert_eq!(old.unwrap().domain, "consul");
        assert!(parse_agent(br#"{"Config": {}}"#).is_err());
    }

    #[test]
    fn path_parts_are_encoded() {
        assert_eq!(encode("web-1.v2_x~"), "web-1.v2_x~");
        assert_eq!(encode("a b/c&d"), "a%20b%2Fc%26d");
    }
}
