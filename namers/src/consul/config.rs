//! The `io.l5d.consul` namer's config block, with Linkerd's keys and
//! defaults, and its validation into the settings the namer runs with.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use dtab::Path;
use http::HeaderValue;
use serde::Deserialize;

use super::ConsulNamer;

/// The `io.l5d.consul` namer config (its `kind` and `prefix` are read by
/// the namer registry). Every key is optional.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConsulConfig {
    /// The Consul agent's host name or IP address; `localhost` by default.
    pub host: Option<String>,
    /// The agent's HTTP port; 8500 by default.
    pub port: Option<u16>,
    /// Whether paths name a tag: `/<dc>/<tag>/<service>`; false by default
    /// (`/<dc>/<service>`).
    pub include_tag: Option<bool>,
    /// Whether to ask the health endpoint and keep only instances whose
    /// checks are in `healthStatuses`; false by default (the catalog, every
    /// registered instance).
    pub use_health_check: Option<bool>,
    /// The statuses an instance may have to be used, with `useHealthCheck`;
    /// `[passing]` by default.
    pub health_statuses: Option<Vec<HealthStatus>>,
    /// The ACL token sent with every call (`X-Consul-Token`).
    pub token: Option<String>,
    /// Whether bound addresses carry the `authority` metadata
    /// `<service>.service.<dc>.<domain>` (with a tag:
    /// `<tag>.<service>.service.<dc>.<domain>`), which sets the Host of
    /// requests; false by default.
    pub set_host: Option<bool>,
    /// The consistency of reads; `default` by default.
    pub consistency_mode: Option<ConsistencyMode>,
    /// Accepted for compatibility with Linkerd: a call to an unreachable
    /// agent always fails at once here, and watches retry with backoff.
    pub fail_fast: Option<bool>,
    /// Whether an instance's own address (`ServiceAddress`) is used when it
    /// has one, rather than its node's (`Address`); true by default.
    pub prefer_service_address: Option<bool>,
    /// Weights of instances by tag: an instance's weight is the highest
    /// weight of its tags listed here, else 1.
    pub weights: Option<Vec<TagWeight>>,
    /// TLS to the agent: not supported yet, and refused rather than ignored.
    pub tls: Option<serde_json::Value>,
}

/// A status a Consul health check reports; an instance's status is the
/// worst of its checks' (maintenance is worse than critical, which is worse
/// than warning, which is worse than passing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// The check passes.
    Passing,
    /// The check warns.
    Warning,
    /// The check fails.
    Critical,
    /// The instance or its node is in maintenance mode.
    Maintenance,
}

/// Which of Consul's consistency modes a read uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsistencyMode {
    /// The leader answers without checking that it still leads.
    #[default]
    Default,
    /// Any server answers, possibly with slightly old data (`?stale`).
    Stale,
    /// The leader checks with a quorum before answering (`?consistent`).
    Consistent,
}

impl ConsistencyMode {
    /// The query flag Consul expects, if any.
    pub(crate) fn flag(self) -> Option<&'static str> {
        match self {
            ConsistencyMode::Default => None,
            ConsistencyMode::Stale => Some("stale"),
            ConsistencyMode::Consistent => Some("consistent"),
        }
    }
}

/// One entry of `weights`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagWeight {
    /// The tag.
    pub tag: String,
    /// The weight of instances with the tag.
    pub weight: f64,
}

/// Timeouts and retry pacing; not part of the config file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// How long one blocking query may wait for a change.
    pub wait: Duration,
    /// The limit on a call beyond its wait (a blocking query may take
    /// `wait`, plus Consul's random extra of up to `wait / 16`, plus this).
    pub request_timeout: Duration,
    /// The first pause of a watch after a failed query.
    pub backoff_min: Duration,
    /// The longest pause of a watch between failed queries.
    pub backoff_max: Duration,
    /// The shortest time between the starts of two queries of one watch,
    /// so that a service that changes all the time cannot make it spin.
    pub min_query_interval: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            wait: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            min_query_interval: Duration::from_millis(50),
        }
    }
}

/// Why an `io.l5d.consul` config is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {why}")]
pub struct ConsulConfigError {
    /// The key at fault, e.g. `weights[1].weight`.
    pub key: String,
    /// What is wrong with it.
    pub why: String,
}

impl ConsulConfigError {
    fn new(key: impl Into<String>, why: impl Into<String>) -> ConsulConfigError {
        ConsulConfigError {
            key: key.into(),
            why: why.into(),
        }
    }
}

/// A Consul agent to call: its checked address and ACL token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agent {
    /// `host:port` as used in URLs.
    authority: String,
    token: Option<HeaderValue>,
}

impl Agent {
    /// Checks the agent's `host`, `port` and `token` as a config gives
    /// them; the error names the key at fault.
    pub fn new(host: &str, port: u16, token: Option<&str>) -> Result<Agent, ConsulConfigError> {
        if port == 0 {
            return Err(ConsulConfigError::new("port", "must be 1 to 65535"));
        }
        let authority = authority(host, port).ok_or_else(|| {
            ConsulConfigError::new("host", format!("{host:?} is not a host name or IP address"))
        })?;
        let token = match token {
            None => None,
            Some(t) => match HeaderValue::from_str(t) {
                Ok(mut value) if !t.is_empty() => {
                    value.set_sensitive(true);
                    Some(value)
                }
                _ => {
                    return Err(ConsulConfigError::new(
                        "token",
                        "must be non-empty printable text",
                    ));
                }
            },
        };
        Ok(Agent { authority, token })
    }

    /// `host:port`, as used in URLs.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The ACL token sent as `X-Consul-Token`, if any.
    pub fn token(&self) -> Option<&HeaderValue> {
        self.token.as_ref()
    }
}

/// The validated config the namer runs with.
#[derive(Clone, Debug)]
pub(super) struct Settings {
    pub(super) agent: Agent,
    pub(super) include_tag: bool,
    /// The statuses to keep, when the health endpoint is used.
    pub(super) health: Option<BTreeSet<HealthStatus>>,
    pub(super) set_host: bool,
    pub(super) consistency: ConsistencyMode,
    pub(super) prefer_service_address: bool,
    pub(super) weights: HashMap<String, f64>,
    pub(super) timing: Timing,
}

impl ConsulConfig {
    /// Builds the namer, serving paths below `prefix` (usually
    /// `/#/io.l5d.consul`).
    pub fn build(&self, prefix: Path) -> Result<Arc<ConsulNamer>, ConsulConfigError> {
        self.build_with(prefix, Timing::default())
    }

    /// [`ConsulConfig::build`] with other timeouts and retry pacing.
    pub fn build_with(
        &self,
        prefix: Path,
        timing: Timing,
    ) -> Result<Arc<ConsulNamer>, ConsulConfigError> {
        Ok(ConsulNamer::new(prefix, self.validate(timing)?))
    }

    pub(super) fn validate(&self, timing: Timing) -> Result<Settings, ConsulConfigError> {
        if self.tls.is_some() {
            return Err(ConsulConfigError::new(
                "tls",
                "TLS to the Consul agent is not supported yet",
            ));
        }
        let agent = Agent::new(
            self.host.as_deref().unwrap_or("localhost"),
            self.port.unwrap_or(8500),
            self.token.as_deref(),
        )?;
        let statuses: BTreeSet<HealthStatus> = match &self.health_statuses {
            None => BTreeSet::from([HealthStatus::Passing]),
            Some(list) if list.is_empty() => {
                return Err(ConsulConfigError::new(
                    "healthStatuses",
                    "must list at least one status (passing, warning, critical, maintenance)",
                ));
            }
            Some(list) => list.iter().copied().collect(),
        };
        let mut weights = HashMap::new();
        for (i, entry) in self.weights.iter().flatten().enumerate() {
            if !entry.weight.is_finite() || entry.weight < 0.0 {
                return Err(ConsulConfigError::new(
                    format!("weights[{i}].weight"),
                    format!("{} is not a finite, non-negative number", entry.weight),
                ));
            }
            // As in Linkerd, a tag listed twice takes its last weight.
            weights.insert(entry.tag.clone(), entry.weight);
        }
        Ok(Settings {
            agent,
            include_tag: self.include_tag.unwrap_or(false),
            health: self.use_health_check.unwrap_or(false).then_some(statuses),
            set_host: self.set_host.unwrap_or(false),
            consistency: self.consistency_mode.unwrap_or_default(),
            prefer_service_address: self.prefer_service_address.unwrap_or(true),
            weights,
            timing,
        })
    }
}

/// `host:port` for a URL, if `host` is a plausible host name or IP address.
fn authority(host: &str, port: u16) -> Option<String> {
    let bad = host.is_empty()
        || host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "/?#@[]".contains(c));
    if bad {
        return None;
    }
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    authority
        .parse::<http::uri::Authority>()
        .is_ok()
        .then_some(authority)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::config::kind_params;

    fn parse(yaml: &str) -> Result<Settings, String> {
        let value: serde_json::Value = serde_saphyr::from_str(yaml).unwrap();
        let serde_json::Value::Object(params) = value else {
            panic!("not a map")
        };
        let config: ConsulConfig = kind_params(&params)?;
        config
            .validate(Timing::default())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_linkerds() {
        let settings = parse("{}").unwrap();
        assert_eq!(settings.agent.authority(), "localhost:8500");
        assert!(settings.agent.token().is_none());
        assert!(!settings.include_tag);
        assert!(settings.health.is_none(), "the catalog by default");
        assert!(!settings.set_host);
        assert_eq!(settings.consistency, ConsistencyMode::Default);
        assert!(settings.prefer_service_address);
        assert!(settings.weights.is_empty());
    }

    #[test]
    fn every_key_is_read() {
        let settings = parse(
            "host: 10.0.0.1\nport: 8501\nincludeTag: true\nuseHealthCheck: true\n\
             healthStatuses: [passing, warning]\ntoken: s3cret\nsetHost: true\n\
             consistencyMode: stale\nfailFast: true\npreferServiceAddress: false\n\
             weights:\n- tag: primary\n  weight: 100\n- tag: canary\n  weight: 0.5\n",
        )
        .unwrap();
        assert_eq!(settings.agent.authority(), "10.0.0.1:8501");
        assert_eq!(settings.agent.token().unwrap(), "s3cret");
        assert!(settings.include_tag && settings.set_host);
        assert_eq!(
            settings.health.unwrap(),
            BTreeSet::from([HealthStatus::Passing, HealthStatus::Warning])
        );
        assert_eq!(settings.consistency, ConsistencyMode::Stale);
        assert!(!settings.prefer_service_address);
        assert_eq!(settings.weights["primary"], 100.0);
        assert_eq!(settings.weights["canary"], 0.5);
        assert_eq!(parse("host: ::1").unwrap().agent.authority(), "[::1]:8500");
    }

    #[test]
    fn bad_configs_name_the_key() {
        let err = parse("hosts: x").unwrap_err();
        assert!(err.contains("unknown field `hosts`"), "{err}");
        let err = parse("healthStatuses: [sick]").unwrap_err();
        assert!(err.starts_with("healthStatuses[0]: "), "{err}");
        let err = parse("healthStatuses: []").unwrap_err();
        assert!(err.starts_with("healthStatuses: "), "{err}");
        let err = parse("consistencyMode: strong").unwrap_err();
        assert!(err.starts_with("consistencyMode: "), "{err}");
        let err = parse("weights:\n- tag: a\n  weight: -1\n").unwrap_err();
        assert!(err.starts_with("weights[0].weight: "), "{err}");
        let err = parse("weights:\n- tag: a\n  wieght: 1\n").unwrap_err();
        assert!(err.contains("unknown field `wieght`"), "{err}");
        let err = parse("port: 0").unwrap_err();
        assert!(err.starts_with("port: "), "{err}");
        let err = parse("port: 70000").unwrap_err();
        assert!(err.starts_with("port: "), "{err}");
        let err = parse("host: 'a b'").unwrap_err();
        assert!(err.starts_with("host: "), "{err}");
        let err = parse("token: ''").unwrap_err();
        assert!(err.starts_with("token: "), "{err}");
        let err = parse("tls:\n  disableValidation: true\n").unwrap_err();
        assert!(err.contains("not supported"), "{err}");
    }
}
