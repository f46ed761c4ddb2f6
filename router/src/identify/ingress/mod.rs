//! `io.l5d.ingress`: Kubernetes Ingress resources (`networking.k8s.io/v1`)
//! name requests, as Linkerd's ingress controller did. A request matched by
//! a rule's host and path is named `<dstPrefix>/<namespace>/<port>/<service>`
//! after the rule's backend, which a dtab usually sends to `io.l5d.k8s`
//! (`/svc => /#/io.l5d.k8s`).
//!
//! Hosts are compared exactly (case aside, the request's port left out):
//! `Host` on HTTP routers, `:authority` on h2 routers. Paths by their
//! `pathType`: `Exact`, `Prefix` (whole path elements), and for
//! `ImplementationSpecific` Linkerd's reading, a regular expression the whole
//! path must match. Ingresses are tried in Linkerd's order (as listed, then
//! each one added or changed since), each one's rules in order; then the
//! first default backend, unless `ignoreDefaultBackends`. Only Ingresses of
//! the configured class count (see [`rules::Filter::keep`]).
//!
//! The Ingresses are followed by one list + watch task per identifier
//! (resource versions, bookmarks, a fresh list after `410 Gone`, backoff
//! after failures, the last Ingresses kept through an outage); a request
//! reads the latest snapshot and never waits. Tested against the in-process
//! fake of the API server (`integration::k8s`), not a real cluster.

mod rules;
mod watch;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use dtab::Path;
use http::request::Parts;
use namers::k8s::{ApiServer, Timing, api_server};
use serde_json::{Map, Value};

use super::source::HeaderSource;
use super::{BuildContext, Identified, Identifier, Protocol, Unidentified};
use rules::Filter;
use watch::Snapshot;

pub(super) const KIND: &str = "io.l5d.ingress";

/// Linkerd's keys.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Config {
    /// The API server, as for the `io.l5d.k8s` namer.
    host: Option<String>,
    port: Option<u16>,
    /// The namespace whose Ingresses count; every namespace when absent.
    namespace: Option<String>,
    /// The ingress class this router serves (`linkerd`).
    ingress_class_annotation: Option<String>,
    /// Name only requests that match a rule, never by a default backend.
    #[serde(default)]
    ignore_default_backends: bool,
}

/// What the watch needs.
struct Settings {
    api: ApiServer,
    namespace: Option<String>,
    filter: Filter,
    timing: Timing,
}

pub(super) fn build(
    params: &Map<String, Value>,
    context: &BuildContext<'_>,
) -> Result<Box<dyn Identifier>, String> {
    let config: Config = namers::config::kind_params(params)?;
    Ok(Box::new(IngressIdentifier::new(
        config,
        context,
        Timing::default(),
    )?))
}

/// Names requests after the Ingress rules they match.
struct IngressIdentifier {
    prefix: Path,
    host: HeaderSource,
    settings: Arc<Settings>,
    state: Arc<ArcSwap<Snapshot>>,
    started: AtomicBool,
    /// The watch task, once started (it needs a runtime, which a config
    /// check does not have).
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl IngressIdentifier {
    fn new(
        config: Config,
        context: &BuildContext<'_>,
        timing: Timing,
    ) -> Result<IngressIdentifier, String> {
        let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some_and(|h| !h.is_empty());
        let api = api_server(config.host.as_deref(), config.port, in_cluster)
            .map_err(|e| e.to_string())?;
        let namespace = match config.namespace {
            Some(ns) if ns.is_empty() || ns.contains('/') => {
                return Err(format!("namespace: {ns:?} is not a namespace"));
            }
            other => other,
        };
        let header = match context.protocol {
            Protocol::Http => "Host",
            Protocol::H2 => ":authority",
        };
        let identifier = IngressIdentifier {
            prefix: context.dst_prefix.clone(),
            host: HeaderSource::new(header, context.protocol)?,
            settings: Arc::new(Settings {
                api,
                namespace,
                filter: Filter {
                    class: config
                        .ingress_class_annotation
                        .unwrap_or_else(|| "linkerd".into()),
                    ignore_default_backends: config.ignore_default_backends,
                },
                timing,
            }),
            state: Arc::new(ArcSwap::from_pointee(Snapshot::default())),
            started: AtomicBool::new(false),
            task: Mutex::new(None),
        };
        identifier.start();
        Ok(identifier)
    }

    /// Starts the watch if a runtime is at hand and it has not started.
    fn start(&self) {
        if self.started.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        if task.is_none() {
            let run = watch::run(self.settings.clone(), self.state.clone());
            *task = Some(runtime.spawn(run).abort_handle());
            self.started.store(true, Ordering::Release);
        }
    }
}

impl Drop for IngressIdentifier {
    fn drop(&mut self) {
        let task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = &*task {
            task.abort();
        }
    }
}

impl Identifier for IngressIdentifier {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn identify(&self, request: &Parts) -> Result<Identified, Unidentified> {
        self.start();
        let state = self.state.load();
        if !state.listed {
            return Err(Unidentified(match &state.failure {
                Some(why) => why.clone(),
                None => format!("{KIND}: the Ingresses are not listed yet"),
            }));
        }
        let host = self.host.read(request).and_then(rules::host_of);
        let ingresses = state.ingresses.iter().map(|(_, spec)| &**spec);
        let backend = rules::find(ingresses, host.as_deref(), request.uri.path())
            .ok_or_else(|| Unidentified("no ingress rule matches".to_string()))?;
        let labels = [&backend.namespace, &backend.port, &backend.service];
        let name = Path::from_strs(labels)
            .ok_or_else(|| Unidentified(format!("{KIND}: backend {labels:?} is not a name")))?;
        Ok(Identified::name(self.prefix.concat(&name)))
    }
}
