//! The interface's figures, under `interface/io.l5d.thriftNameInterpreter/`
//! (`…/<n>/` for the n-th further interface of the kind):
//!
//! - `<method>/requests`, `success`, `failures` (a declared exception),
//!   `interrupted` (the client left or namerd stopped first) and the
//!   `pending` gauge, per method (`bind`, `addr`, `delegate`, `dtab`);
//!   `unknown_method/requests` for calls of other methods;
//! - `long_polls`: requests with a stamp now waiting for a change;
//! - `connects` (with `connects/mux` and `connects/framed`) and the
//!   `connections` gauge;
//! - `{bindingcache,addrcache,dtabcache}/{size,active}`: observations
//!   kept, and those a request waits on (Linkerd's `active`).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use namerd_client::thrift::service::Method;
use namers::telemetry::{Counter, Scope, Source};

use super::service::NamerService;

#[derive(Debug, Default)]
struct MethodStats {
    requests: Counter,
    success: Counter,
    failures: Counter,
    interrupted: Counter,
    pending: AtomicI64,
}

/// The figures of one thrift interface.
#[derive(Default)]
pub struct ThriftStats {
    nth: usize,
    methods: [MethodStats; 4],
    unknown: Counter,
    long_polls: AtomicI64,
    connects: Counter,
    mux_connects: Counter,
    framed_connects: Counter,
    connections: AtomicI64,
    service: OnceLock<Weak<NamerService>>,
}

fn index(method: Method) -> usize {
    match method {
        Method::Bind => 0,
        Method::Addr => 1,
        Method::Delegate => 2,
        Method::Dtab => 3,
    }
}

impl ThriftStats {
    /// The figures of the `nth` interface of the kind (0 for the first).
    pub fn new(nth: usize) -> Arc<ThriftStats> {
        Arc::new(ThriftStats {
            nth,
            ..ThriftStats::default()
        })
    }

    pub(crate) fn serving(&self, service: &Arc<NamerService>) {
        let _ = self.service.set(Arc::downgrade(service));
    }

    pub(crate) fn unknown(&self) {
        self.unknown.incr();
    }

    /// Counts a request until the returned guard is dropped.
    pub(crate) fn request(&self, method: Method, long_poll: bool) -> Request<'_> {
        let figures = &self.methods[index(method)];
        figures.requests.incr();
        figures.pending.fetch_add(1, Ordering::Relaxed);
        if long_poll {
            self.long_polls.fetch_add(1, Ordering::Relaxed);
        }
        Request {
            stats: self,
            figures,
            long_poll,
            answered: None,
        }
    }

    /// Counts a connection until the returned guard is dropped.
    pub(crate) fn connection(self: &Arc<Self>) -> Connection {
        self.connects.incr();
        self.connections.fetch_add(1, Ordering::Relaxed);
        Connection(self.clone())
    }

    pub(crate) fn protocol(&self, mux: bool) {
        if mux {
            self.mux_connects.incr();
        } else {
            self.framed_connects.incr();
        }
    }
}

/// A request being served.
pub(crate) struct Request<'a> {
    stats: &'a ThriftStats,
    figures: &'a MethodStats,
    long_poll: bool,
    answered: Option<bool>,
}

impl Request<'_> {
    /// The request was answered, successfully or with its exception.
    pub(crate) fn answered(&mut self, success: bool) {
        self.answered = Some(success);
    }
}

impl Drop for Request<'_> {
    fn drop(&mut self) {
        self.figures.pending.fetch_sub(1, Ordering::Relaxed);
        if self.long_poll {
            self.stats.long_polls.fetch_sub(1, Ordering::Relaxed);
        }
        match self.answered {
            Some(true) => self.figures.success.incr(),
            Some(false) => self.figures.failures.incr(),
            None => self.figures.interrupted.incr(),
        }
    }
}

/// An open connection.
pub(crate) struct Connection(Arc<ThriftStats>);

impl Drop for Connection {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

#[allow(clippy::cast_precision_loss)]
fn gauge(v: i64) -> f64 {
    v as f64
}

impl Source for ThriftStats {
    fn list(&self, root: &mut Scope<'_>) {
        if root.is_rolling() {
            return;
        }
        let mut interface = root.scope("interface");
        let mut kind = interface.scope(super::KIND);
        if self.nth == 0 {
            self.list_into(&mut kind);
        } else {
            self.list_into(&mut kind.scope(&self.nth.to_string()));
        }
    }
}

impl ThriftStats {
    fn list_into(&self, scope: &mut Scope<'_>) {
        for method in Method::ALL {
            let f = &self.methods[index(method)];
            let mut m = scope.scope(method.name());
            m.counter("requests", f.requests.get());
            m.counter("success", f.success.get());
            m.counter("failures", f.failures.get());
            m.counter("interrupted", f.interrupted.get());
            m.gauge("pending", gauge(f.pending.load(Ordering::Relaxed)));
        }
        scope.counter("unknown_method/requests", self.unknown.get());
        scope.gauge("long_polls", gauge(self.long_polls.load(Ordering::Relaxed)));
        scope.counter("connects", self.connects.get());
        scope.counter("connects/mux", self.mux_connects.get());
        scope.counter("connects/framed", self.framed_connects.get());
        scope.gauge(
            "connections",
            gauge(self.connections.load(Ordering::Relaxed)),
        );
        if let Some(service) = self.service.get().and_then(Weak::upgrade) {
            #[allow(clippy::cast_precision_loss)]
            for (cache, size, active) in service.cache_sizes() {
                let mut c = scope.scope(cache);
                c.gauge("size", size as f64);
                c.gauge("active", active as f64);
            }
        }
    }
}
