//! The mesh interface's figures, under `interface/io.l5d.mesh/`:
//! `rpc/<service>/<method>/{requests,failures}` (a failure is a call that
//! ended with a status other than OK, a stream's end included) and
//! `streams/{opened,closed,open}`. Every `io.l5d.mesh` interface counts
//! into the one scope.

use std::sync::Arc;

use namers::telemetry::{Counter, Scope, Source};

use super::KIND;

/// The methods of the mesh services, in the order of [`METHODS`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Method {
    GetBoundTree,
    StreamBoundTree,
    GetReplicas,
    StreamReplicas,
    GetDtab,
    StreamDtab,
    GetDelegateTree,
    StreamDelegateTree,
    ReadDtab,
    ShowDtab,
    ReadPath,
    ShowPath,
}

/// Each method's service and name, as the metrics tree shows them.
const METHODS: [(&str, &str); 12] = [
    ("Interpreter", "GetBoundTree"),
    ("Interpreter", "StreamBoundTree"),
    ("Resolver", "GetReplicas"),
    ("Resolver", "StreamReplicas"),
    ("Delegator", "GetDtab"),
    ("Delegator", "StreamDtab"),
    ("Delegator", "GetDelegateTree"),
    ("Delegator", "StreamDelegateTree"),
    ("Codec", "ReadDtab"),
    ("Codec", "ShowDtab"),
    ("Codec", "ReadPath"),
    ("Codec", "ShowPath"),
];

#[derive(Debug, Default)]
struct MethodStats {
    requests: Counter,
    failures: Counter,
}

/// The figures of the mesh interfaces.
#[derive(Debug, Default)]
pub struct MeshStats {
    methods: [MethodStats; 12],
    streams_opened: Counter,
    streams_closed: Counter,
}

impl MeshStats {
    /// A call of `method` arrived.
    pub(crate) fn request(&self, method: Method) {
        self.methods[method as usize].requests.incr();
    }

    /// A call of `method` ended with an error status.
    pub(crate) fn failure(&self, method: Method) {
        self.methods[method as usize].failures.incr();
    }

    /// A response stream began; the guard ends it when dropped.
    pub(crate) fn stream_opened(self: &Arc<Self>) -> OpenStream {
        self.streams_opened.incr();
        OpenStream(self.clone())
    }
}

/// A response stream being sent.
pub(crate) struct OpenStream(Arc<MeshStats>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.streams_closed.incr();
    }
}

impl Source for MeshStats {
    fn list(&self, root: &mut Scope<'_>) {
        if root.is_rolling() {
            return;
        }
        let mut interface = root.scope("interface");
        let mut scope = interface.scope(KIND);
        {
            let mut rpc = scope.scope("rpc");
            for ((service, method), figures) in METHODS.iter().zip(&self.methods) {
                if figures.requests.get() == 0 {
                    continue;
                }
                let mut service = rpc.scope(service);
                let mut method = service.scope(method);
                method.counter("requests", figures.requests.get());
                method.counter("failures", figures.failures.get());
            }
        }
        let (opened, closed) = (self.streams_opened.get(), self.streams_closed.get());
        scope.counter("streams/opened", opened);
        scope.counter("streams/closed", closed);
        #[allow(clippy::cast_precision_loss)]
        scope.gauge("streams/open", opened.saturating_sub(closed) as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use namers::telemetry::{Value, collect};

    #[test]
    fn methods_and_streams_are_counted() {
        let stats = Arc::new(MeshStats::default());
        stats.request(Method::StreamBoundTree);
        stats.request(Method::GetDtab);
        stats.failure(Method::GetDtab);
        let open = stats.stream_opened();
        let _still = stats.stream_opened();
        drop(open);
        let source: Arc<dyn Source> = stats.clone();
        let figures: Vec<(String, Value)> = collect(&[source])
            .into_iter()
            .map(|e| (e.path.join("/"), e.value))
            .collect();
        let get = |key: &str| {
            figures
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no {key} in {figures:?}"))
        };
        let base = "interface/io.l5d.mesh";
        assert_eq!(
            get(&format!("{base}/rpc/Interpreter/StreamBoundTree/requests")),
            Value::Counter(1)
        );
        assert_eq!(
            get(&format!("{base}/rpc/Delegator/GetDtab/failures")),
            Value::Counter(1)
        );
        assert_eq!(get(&format!("{base}/streams/opened")), Value::Counter(2));
        assert_eq!(get(&format!("{base}/streams/open")), Value::Gauge(1.0));
        assert!(
            !figures.iter().any(|(k, _)| k.contains("Codec")),
            "methods nobody called are not listed: {figures:?}"
        );
    }
}
