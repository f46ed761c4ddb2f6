//! The calls of Consul's HTTP API the namer makes, each with a timeout
//! longer than its wait: the service queries of the catalog and health
//! endpoints, and `/v1/agent/self`.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Deserialize;

use super::config::{HealthStatus, Settings};

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

/// Why a service query failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum QueryError {
    /// Consul cannot reach the datacenter (or does not know it).
    NoDatacenter(String),
    /// Anything else: the agent is down, refuses, times out, or answers
    /// something unreadable.
    Failed(String),
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::NoDatacenter(why) | QueryError::Failed(why) => f.write_str(why),
        }
    }
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

/// An HTTP client for one Consul agent.
pub(super) struct ConsulClient {
    http: Client<HttpConnector, Empty<Bytes>>,
    settings: Settings,
}

impl ConsulClient {
    pub(super) fn new(settings: Settings) -> ConsulClient {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(settings.timing.request_timeout));
        connector.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            // Each watch holds a connection for its blocking query; a read
            // buffer that grew to fit the largest answer would stay that
            // large on every one of them.
            .http1_read_buf_exact_size(READ_BUFFER_BYTES)
            .build(connector);
        ConsulClient { http, settings }
    }

    pub(super) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Runs a service query; with a non-zero `index`, a blocking one that
    /// returns once the service's index passes it or the wait is over.
    pub(super) async fn service(
        &self,
        query: &ServiceQuery,
        index: u64,
    ) -> Result<Reply, QueryError> {
        let endpoint = if self.settings.health.is_some() {
            "health"
        } else {
            "catalog"
        };
        let mut uri = format!(
            "http://{}/v1/{endpoint}/service/{}?dc=",
            self.settings.authority,
            encode(&query.service)
        );
        uri.push_str(&encode(&query.dc));
        if let Some(tag) = &query.tag {
            uri.push_str("&tag=");
            uri.push_str(&encode(tag));
        }
        // Consul filters by passing checks itself when that is all we want.
        let passing_only = self
            .settings
            .health
            .as_ref()
            .is_some_and(|s| s.len() == 1 && s.contains(&HealthStatus::Passing));
        if passing_only {
            uri.push_str("&passing");
        }
        if let Some(flag) = self.settings.consistency.flag() {
            uri.push('&');
            uri.push_str(flag);
        }
        let timing = self.settings.timing;
        let mut limit = timing.request_timeout;
        if index > 0 {
            uri.push_str(&format!(
                "&index={index}&wait={}ms",
                timing.wait.as_millis()
            ));
            // Consul adds up to wait/16 to spread wake-ups.
            limit += timing.wait + timing.wait / 16;
        }
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
        let (status, headers, body) = self
            .get(&uri, limit)
            .await
            .map_err(|e| QueryError::Failed(self.error(&what, &e)))?;
        if status != StatusCode::OK {
            let text = error_text(&body);
            if status == StatusCode::INTERNAL_SERVER_ERROR && text.contains(NO_PATH_TO_DATACENTER) {
                return Err(QueryError::NoDatacenter(
                    self.error(&what, &format!("answered {status}: {text}")),
                ));
            }
            let hint = if status == StatusCode::FORBIDDEN {
                " (check the token)"
            } else {
                ""
            };
            return Err(QueryError::Failed(
                self.error(&what, &format!("answered {status}{hint}: {text}")),
            ));
        }
        let index = headers
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| {
                QueryError::Failed(self.error(&what, "the answer has no X-Consul-Index"))
            })?;
        let filtered = headers
            .get("X-Consul-Results-Filtered-By-ACLs")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        Ok(Reply {
            index,
            body,
            filtered,
        })
    }

    /// Reads the agent's datacenter and DNS domain.
    pub(super) async fn agent(&self) -> Result<AgentInfo, String> {
        let uri = format!("http://{}/v1/agent/self", self.settings.authority);
        let what = "agent/self";
        let (status, _, body) = self
            .get(&uri, self.settings.timing.request_timeout)
            .await
            .map_err(|e| self.error(what, &e))?;
        if status != StatusCode::OK {
            let hint = if status == StatusCode::FORBIDDEN {
                " (the token needs agent:read)"
            } else {
                ""
            };
            return Err(self.error(
                what,
                &format!("answered {status}{hint}: {}", error_text(&body)),
            ));
        }
        parse_agent(&body).map_err(|e| self.error(what, &e))
    }

    fn error(&self, what: &str, why: &str) -> String {
        format!(
            "io.l5d.consul at {}: {what}: {why}",
            self.settings.authority
        )
    }

    async fn get(
        &self,
        uri: &str,
        limit: Duration,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), String> {
        let mut request = Request::builder()
            .method(Method::GET)
            .uri(uri)
            .body(Empty::new())
            .map_err(|e| format!("bad request: {e}"))?;
        if let Some(token) = &self.settings.token {
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
            Ok((parts.status, parts.headers, body))
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
