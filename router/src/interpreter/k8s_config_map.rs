//! The `io.l5d.k8s.configMap` interpreter: the default interpreter's
//! namers, with a dtab kept under one key of a Kubernetes ConfigMap and
//! read through the API server.
//!
//! The ConfigMap is followed with a list + watch of that one object
//! (`namers::k8s::ConfigMapWatch`), so an edit reaches live bindings as
//! soon as the API server sends it. Names are bound through its dtab
//! followed by the router's (`watched` has the rules every watched-dtab
//! interpreter shares):
//!
//! - a value that does not parse is logged with where it is (`ConfigMap
//!   <ns>/<name> key <key>:<line>:<col>`) and the last good dtab stays;
//! - a ConfigMap or key that does not exist is the empty dtab, as in
//!   Linkerd, until it has held a dtab; after that, its deletion is logged
//!   and the last good dtab stays (Linkerd switched to the empty dtab);
//! - an API server outage keeps the last good dtab, and the watch
//!   reconnects with jittered backoff; a server that never answered makes
//!   bindings fail with why.
//!
//! With neither `host` nor `port` and the router in a pod, the in-cluster
//! API server is used with the pod's service account, as the `io.l5d.k8s`
//! namer does; otherwise `host:port` over plain HTTP (a `kubectl proxy`).

#[cfg(test)]
mod tests;

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use namers::Interpreter;
use namers::k8s::{ApiServer, ConfigMapEvent, ConfigMapWatch, Timing, api_server};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::params;
use super::watched::{DtabSource, Read, SourceUpdates, WatchedDtab, parse_dtab};

/// The interpreter's `kind`.
pub const KIND: &str = "io.l5d.k8s.configMap";

/// The environment variable the in-cluster API server's host is read from.
const IN_CLUSTER_HOST: &str = "KUBERNETES_SERVICE_HOST";

/// `interpreter: {kind: io.l5d.k8s.configMap, name, filename, ...}`
/// (Linkerd's keys; its `experimental: true` is accepted, not required).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigMapConfig {
    /// The ConfigMap holding the dtab.
    pub name: String,
    /// The key of its `data` whose value is the dtab.
    pub filename: String,
    /// The API server's host (plain HTTP); `localhost` unless the router
    /// runs in a pod and `port` is not set either.
    pub host: Option<String>,
    /// The API server's port; 8001 (`kubectl proxy`'s) by default.
    pub port: Option<u16>,
    /// The ConfigMap's namespace; `default` by default.
    pub namespace: Option<String>,
}

/// The `io.l5d.k8s.configMap` interpreter. Cheap to clone.
pub type ConfigMapInterpreter = WatchedDtab<ConfigMapSource>;

/// A key of a ConfigMap, watched.
pub struct ConfigMapSource {
    watch: ConfigMapWatch,
    key: String,
}

impl ConfigMapConfig {
    /// Checks the keys; the error names the one at fault.
    pub fn source(&self, timing: Timing) -> Result<ConfigMapSource, String> {
        self.source_in(
            timing,
            std::env::var_os(IN_CLUSTER_HOST).is_some_and(|h| !h.is_empty()),
        )
    }

    fn source_in(&self, timing: Timing, in_cluster: bool) -> Result<ConfigMapSource, String> {
        let namespace = self.namespace.as_deref().unwrap_or("default");
        check_name("namespace", namespace, false)?;
        check_name("name", &self.name, true)?;
        let key_ok = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
        if self.filename.is_empty()
            || self.filename.len() > 253
            || !self.filename.chars().all(key_ok)
        {
            return Err(params::invalid(
                KIND,
                "filename",
                format!(
                    "{:?} is not a ConfigMap key (letters, digits, '-', '_' and '.')",
                    self.filename
                ),
            ));
        }
        let api = api_server(self.host.as_deref(), self.port, in_cluster)
            .map_err(|e| params::invalid(KIND, &e.key, e.why))?;
        Ok(ConfigMapSource {
            watch: ConfigMapWatch {
                api,
                namespace: namespace.to_string(),
                name: self.name.clone(),
                timing,
            },
            key: self.filename.clone(),
        })
    }
}

/// Checks a Kubernetes object or namespace name: lower-case letters,
/// digits and `-` (and `.` in object names), starting and ending with a
/// letter or digit.
fn check_name(key: &str, name: &str, dots: bool) -> Result<(), String> {
    let ok =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (dots && c == '.');
    let edge = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let max = if dots { 253 } else { 63 };
    let valid = !name.is_empty()
        && name.len() <= max
        && name.chars().all(ok)
        && name.starts_with(edge)
        && name.ends_with(edge);
    if valid {
        Ok(())
    } else {
        Err(params::invalid(
            KIND,
            key,
            format!("{name:?} is not a Kubernetes name (lower-case letters, digits and '-')"),
        ))
    }
}

/// Builds the interpreter from the keys of its `interpreter:` block.
pub fn from_params(
    params: &Map<String, Value>,
    default: &Interpreter,
) -> Result<ConfigMapInterpreter, String> {
    let config: ConfigMapConfig = params::parse(KIND, params)?;
    Ok(WatchedDtab::with_source(
        config.source(Timing::default())?,
        default.clone(),
    ))
}

impl ConfigMapSource {
    /// Where the API server is.
    pub fn api(&self) -> &ApiServer {
        &self.watch.api
    }

    /// What an event of the ConfigMap's watch means for the dtab.
    fn reading(&self, event: ConfigMapEvent) -> Read {
        let map = self.watch.describe();
        match event {
            ConfigMapEvent::Data(data) => match data.get(&self.key) {
                Some(text) => match parse_dtab(text, &format!("{map} key {}", self.key)) {
                    Ok(dtab) => Read::Dtab(dtab),
                    Err(error) => Read::Failed(error),
                },
                None => Read::Absent(format!("{map} has no key {}", self.key)),
            },
            ConfigMapEvent::Absent => Read::Absent(format!("{map} does not exist")),
            ConfigMapEvent::Failing(why) => Read::Failed(why),
            ConfigMapEvent::Recovered => Read::Recovered,
        }
    }
}

impl DtabSource for ConfigMapSource {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn describe(&self) -> String {
        format!("key {} of {}", self.key, self.watch.describe())
    }

    fn watch(self: Arc<Self>, updates: SourceUpdates) -> BoxFuture<'static, ()> {
        async move {
            let source = self.clone();
            self.watch
                .run(move |event| updates.apply(source.reading(event)))
                .await;
        }
        .boxed()
    }
}
