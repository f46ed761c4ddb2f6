//! The `io.l5d.consul.interpreter` interpreter: the default interpreter's
//! namers, with a dtab kept in Consul's KV store where namerd's
//! `io.l5d.consul` store keeps it, at `<pathPrefix>/<namespace>`.
//!
//! The key is followed with Consul blocking queries (`X-Consul-Index`,
//! through `namers::consul::kv::poll`, the loop namerd's store uses), so an
//! edit reaches live bindings as soon as Consul commits it. Names are bound
//! through its dtab followed by the router's (`watched` has the rules every
//! watched-dtab interpreter shares):
//!
//! - a value that does not parse is logged with the key, line and column
//!   and the last good dtab stays;
//! - a key that does not exist is the empty dtab, as in Linkerd, until it
//!   has held a dtab; after that, its deletion is logged and the last good
//!   dtab stays;
//! - a Consul outage keeps the last good dtab, and the queries resume after
//!   a jittered pause (`backoff`); an index that goes backwards (a restore
//!   from a snapshot) reads the key afresh; a Consul that never answered
//!   makes bindings fail with why.

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use namers::Interpreter;
use namers::backoff::ExponentialBackoff;
use namers::consul::kv::{self, PollTiming, Polled};
use namers::consul::{Agent, Blocking, ConsistencyMode, ConsulClient, KvEntry};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::params;
use super::watched::{DtabSource, Read, SourceUpdates, WatchedDtab, parse_dtab};
use crate::policy::backoff::BackoffConfig;

/// The interpreter's `kind`.
pub const KIND: &str = "io.l5d.consul.interpreter";

/// `interpreter: {kind: io.l5d.consul.interpreter, ...}`, with Linkerd's
/// keys. Every key is optional.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConsulInterpreterConfig {
    /// The Consul agent's host name or IP address; `localhost` by default.
    pub host: Option<String>,
    /// The agent's HTTP port; 8500 by default.
    pub port: Option<u16>,
    /// The KV folder holding one key per namespace; `/namerd/dtabs` by
    /// default, as namerd's store.
    pub path_prefix: Option<String>,
    /// The namespace whose dtab is used (the key under `pathPrefix`);
    /// `default` by default.
    pub namespace: Option<String>,
    /// The ACL token sent with every query (`X-Consul-Token`).
    pub token: Option<String>,
    /// The datacenter whose KV store is read; the agent's own by default.
    pub datacenter: Option<String>,
    /// The consistency of reads; `default` by default.
    pub read_consistency_mode: Option<ConsistencyMode>,
    /// Accepted for Linkerd configs: this interpreter never writes.
    pub write_consistency_mode: Option<ConsistencyMode>,
    /// Accepted for Linkerd configs: a query to an unreachable agent fails
    /// at once here, and is retried after `backoff`.
    pub fail_fast: Option<bool>,
    /// The pauses between failed queries: `{kind: jittered, minMs, maxMs}`
    /// doubles from `minMs` up to `maxMs` with jitter, `{kind: constant,
    /// ms}` always waits `ms`; 100 ms doubling up to 30 s by default.
    pub backoff: Option<BackoffConfig>,
    /// TLS to the agent: not supported yet, and refused rather than ignored.
    pub tls: Option<Value>,
}

/// Timeouts not set by the config file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// How long Consul may hold one blocking query.
    pub wait: Duration,
    /// The limit on a query beyond its wait.
    pub request_timeout: Duration,
    /// The shortest time between the starts of two queries.
    pub min_query_interval: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            wait: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            min_query_interval: Duration::from_millis(50),
        }
    }
}

/// The `io.l5d.consul.interpreter` interpreter. Cheap to clone.
pub type ConsulInterpreter = WatchedDtab<ConsulSource>;

/// A Consul KV key holding a dtab, followed with blocking queries.
pub struct ConsulSource {
    client: ConsulClient,
    key: String,
    datacenter: Option<String>,
    read: ConsistencyMode,
    timing: PollTiming,
}

impl ConsulInterpreterConfig {
    /// Checks the keys; the error names the one at fault.
    pub fn source(&self, timing: Timing) -> Result<ConsulSource, String> {
        let invalid = |key: &str, why: String| params::invalid(KIND, key, why);
        if self.tls.is_some() {
            return Err(invalid(
                "tls",
                "TLS to Consul is not supported yet".to_string(),
            ));
        }
        let agent = Agent::new(
            self.host.as_deref().unwrap_or("localhost"),
            self.port.unwrap_or(8500),
            self.token.as_deref(),
        )
        .map_err(|e| invalid(&e.key, e.why))?;
        let prefix = kv::path_prefix(self.path_prefix.as_deref().unwrap_or("/namerd/dtabs"))
            .map_err(|e| invalid("pathPrefix", e))?;
        let namespace = self.namespace.as_deref().unwrap_or("default");
        namerd_client::Namespace::new(namespace)
            .map_err(|e| invalid("namespace", e.to_string()))?;
        if let Some(dc) = &self.datacenter {
            kv::datacenter(dc).map_err(|e| invalid("datacenter", e))?;
        }
        let backoff = match &self.backoff {
            None => ExponentialBackoff::new(Duration::from_millis(100), Duration::from_secs(30)),
            Some(config) => {
                config.validate().map_err(|e| invalid("backoff", e))?;
                let (min, max, jitter) = match *config {
                    BackoffConfig::Constant { ms } => (ms, ms, 0.0),
                    BackoffConfig::Jittered { min_ms, max_ms } => {
                        (min_ms, max_ms, ExponentialBackoff::HALF)
                    }
                };
                ExponentialBackoff::try_new(
                    Duration::from_millis(min),
                    Duration::from_millis(max),
                    jitter,
                )
                .map_err(|e| invalid("backoff", e.to_string()))?
            }
        };
        let key = if prefix.is_empty() {
            namespace.to_string()
        } else {
            format!("{prefix}/{namespace}")
        };
        Ok(ConsulSource {
            client: ConsulClient::new(agent, timing.request_timeout),
            key,
            datacenter: self.datacenter.clone(),
            read: self.read_consistency_mode.unwrap_or_default(),
            timing: PollTiming {
                wait: timing.wait,
                backoff,
                min_query_interval: timing.min_query_interval,
            },
        })
    }
}

/// Builds the interpreter from the keys of its `interpreter:` block.
pub fn from_params(
    params: &Map<String, Value>,
    default: &Interpreter,
) -> Result<ConsulInterpreter, String> {
    let config: ConsulInterpreterConfig = params::parse(KIND, params)?;
    Ok(WatchedDtab::with_source(
        config.source(Timing::default())?,
        default.clone(),
    ))
}

impl ConsulSource {
    /// The Consul key read.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// What a round of blocking queries means for the dtab; `None` for a
    /// failure already reported.
    fn reading(&self, polled: Polled<Option<KvEntry>>) -> Option<Read> {
        let at = format!("Consul key {}", self.key);
        Some(match polled {
            Polled::Answer { value: None, .. } => Read::Absent(format!("{at} does not exist")),
            Polled::Answer {
                value: Some(entry), ..
            } => match std::str::from_utf8(&entry.value) {
                Ok(text) => match parse_dtab(text, &at) {
                    Ok(dtab) => Read::Dtab(dtab),
                    Err(error) => Read::Failed(error),
                },
                Err(_) => Read::Failed(format!("{at}: the value is not UTF-8 text")),
            },
            Polled::Failed { why, first: true } => Read::Failed(why),
            Polled::Failed { first: false, .. } => return None,
        })
    }
}

impl DtabSource for ConsulSource {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn describe(&self) -> String {
        format!("Consul key {}", self.key)
    }

    fn watch(self: Arc<Self>, updates: SourceUpdates) -> BoxFuture<'static, ()> {
        async move {
            let this = &*self;
            let query = move |blocking: Blocking| async move {
                this.client
                    .get(&this.key, this.datacenter.as_deref(), this.read, blocking)
                    .await
                    .map_err(|e| e.to_string())
            };
            let sink = |polled| {
                if let Some(read) = this.reading(polled) {
                    updates.apply(read);
                }
            };
            kv::poll(&this.describe(), this.timing, query, sink).await;
        }
        .boxed()
    }
}
