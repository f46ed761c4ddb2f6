//! The `Namer` service over namerd's naming service: `bind`, `addr` and
//! `dtab` are long polls on shared stamped observations
//! ([`super::observe`]); `delegate` is answered once.

use std::sync::Arc;
use std::time::Duration;

use dtab::{Dtab, NameTree, Path};
use namerd_client::thrift::convert::{
    DelegateLeaves, bound_name, bound_tree, delegate_tree, path_from_thrift, path_to_thrift,
};
use namerd_client::thrift::protocol::{DecodeError, message_type};
use namerd_client::thrift::service::{
    Call, ReplyField, decode_call, encode_exception, encode_reply,
};
use namerd_client::thrift::types::{
    Addr, AddrFailure, AddrMeta, AddrReq, AddrVal, BindFailure, BindReq, Bound, BoundAddr,
    BoundName, BoundTree, DelegateContents, DelegateReq, Delegation, DelegationFailure,
    DtabFailure, DtabRef, DtabReq, ThriftStruct, TransportAddress,
};
use namers::{Activity, Metadata, Name, WEIGHT_KEY};

use super::ThriftCacheConfig;
use super::observe::{Capacity, Observations, Stamper, follow};
use super::stats::ThriftStats;
use crate::iface::IfaceContext;
use crate::{DelegateError, Namespace};

/// How long a delegation may take (as the HTTP API's).
const DELEGATE_TIMEOUT: Duration = Duration::from_secs(2);

type BindKey = (Namespace, Path, String);

/// The service one interface serves.
pub(crate) struct NamerService {
    ctx: IfaceContext,
    stamper: Arc<Stamper>,
    bindings: Observations<BindKey, BoundTree>,
    addrs: Observations<Path, AddrVal>,
    dtabs: Observations<Namespace, String>,
    pub(crate) stats: Arc<ThriftStats>,
}

impl NamerService {
    pub(crate) fn new(
        ctx: IfaceContext,
        cache: &ThriftCacheConfig,
        stats: Arc<ThriftStats>,
    ) -> Arc<NamerService> {
        let bindings = Capacity {
            active: cache.binding_cache_active,
            inactive: cache.binding_cache_inactive,
            inactive_ttl: Duration::from_secs(cache.binding_cache_inactive_ttl_secs),
        };
        let addrs = Capacity {
            active: cache.addr_cache_active,
            inactive: cache.addr_cache_inactive,
            inactive_ttl: Duration::from_secs(cache.addr_cache_inactive_ttl_secs),
        };
        Arc::new(NamerService {
            ctx,
            stamper: Stamper::new(),
            bindings: Observations::new(bindings),
            addrs: Observations::new(addrs),
            // Linkerd gives no keys for its dtab observations; they take
            // the bindings' capacities.
            dtabs: Observations::new(bindings),
            stats,
        })
    }

    /// (kept, active) observations of bindings, addresses and dtabs.
    pub(crate) fn cache_sizes(&self) -> [(&'static str, usize, usize); 3] {
        [
            ("bindingcache", self.bindings.len(), self.bindings.active()),
            ("addrcache", self.addrs.len(), self.addrs.active()),
            ("dtabcache", self.dtabs.len(), self.dtabs.active()),
        ]
    }

    /// The reply to a Thrift message (`None` for a one-way message). A
    /// message whose header cannot be read is an error: the connection
    /// cannot go on.
    pub(crate) async fn answer(&self, message: &[u8]) -> Result<Option<Vec<u8>>, DecodeError> {
        let incoming = decode_call(message)?;
        let header = incoming.header;
        if header.kind == message_type::ONEWAY {
            return Ok(None);
        }
        let (name, seq) = (header.name.as_str(), header.seq_id);
        let call = match incoming.call {
            Ok(call) => call,
            Err(e) => {
                self.stats.unknown();
                return Ok(Some(encode_exception(name, seq, &e)));
            }
        };
        let long_poll = match &call {
            Call::Bind(req) => !req.name.stamp.is_empty(),
            Call::Addr(req) => !req.name.stamp.is_empty(),
            Call::Dtab(req) => !req.stamp.is_empty(),
            Call::Delegate(req) => !req.delegation.stamp.is_empty(),
        };
        let mut request = self.stats.request(call.method(), long_poll);
        let reply = match call {
            Call::Bind(req) => reply(name, seq, self.bind(req).await),
            Call::Addr(req) => reply(name, seq, self.addr(req).await),
            Call::Dtab(req) => reply(name, seq, self.dtab(req).await),
            Call::Delegate(req) => reply(name, seq, self.delegate(req).await),
        };
        request.answered(reply.1);
        Ok(Some(reply.0))
    }

    async fn bind(&self, req: BindReq) -> Result<Bound, BindFailure> {
        let fail = |reason: String| BindFailure {
            reason,
            retry_in_seconds: 0,
            name: req.name.clone(),
            ns: req.name.ns.clone(),
        };
        let ns = Namespace::new(&req.name.ns).map_err(|e| fail(e.to_string()))?;
        let path = path_from_thrift(&req.name.name).map_err(|e| fail(e.0))?;
        if path.is_empty() {
            return Err(fail("empty path".into()));
        }
        let local = self.local_dtab(&req.dtab).map_err(fail)?;
        let key = (ns.clone(), path.clone(), local.show());
        let (namerd, stamper) = (self.ctx.namerd.clone(), self.stamper.clone());
        let mut watching = self
            .bindings
            .watch(key, move |publisher| {
                // namerd's own binding, shared with the HTTP API.
                let binding = namerd.bind(&ns, &path, &local);
                follow(binding, publisher, stamper.clone(), |state| match state {
                    Activity::Pending => None,
                    Activity::Ok(tree) => Some(Ok(wire_tree(tree))),
                    Activity::Failed(e) => Some(Err(e.to_string())),
                })
            })
            .map_err(fail)?;
        let observed = watching.next(&req.name.stamp).await;
        match observed.value {
            Ok(tree) => Ok(Bound {
                stamp: observed.stamp,
                tree,
                ns: req.name.ns.clone(),
            }),
            Err(reason) => Err(fail(reason)),
        }
    }

    async fn addr(&self, req: AddrReq) -> Result<Addr, AddrFailure> {
        let fail = |reason: String| AddrFailure {
            reason,
            retry_in_seconds: 0,
            name: req.name.clone(),
        };
        let id = path_from_thrift(&req.name.name).map_err(|e| fail(e.0))?;
        if id.is_empty() {
            return Err(fail("empty path".into()));
        }
        let (namerd, stamper) = (self.ctx.namerd.clone(), self.stamper.clone());
        let key = id.clone();
        let mut watching = self
            .addrs
            .watch(key, move |publisher| {
                let addr = namerd.addr(&id);
                follow(addr, publisher, stamper.clone(), wire_addr)
            })
            .map_err(fail)?;
        let observed = watching.next(&req.name.stamp).await;
        match observed.value {
            Ok(value) => Ok(Addr {
                stamp: observed.stamp,
                value,
            }),
            Err(reason) => Err(fail(reason)),
        }
    }

    async fn dtab(&self, req: DtabReq) -> Result<DtabRef, DtabFailure> {
        let fail = |reason: String| DtabFailure { reason };
        let ns = Namespace::new(&req.ns).map_err(|e| fail(e.to_string()))?;
        let (store, stamper) = (self.ctx.namerd.store().clone(), self.stamper.clone());
        let mut watching = self
            .dtabs
            .watch(ns.clone(), move |publisher| {
                follow(store.watch(&ns), publisher, stamper.clone(), |state| {
                    match state {
                        Activity::Pending => None,
                        Activity::Ok(found) => Some(Ok(found
                            .as_ref()
                            .map(|d| d.dtab.show())
                            // A namespace that does not exist is an empty
                            // dtab, as in Linkerd.
                            .unwrap_or_default())),
                        Activity::Failed(e) => Some(Err(e.to_string())),
                    }
                })
            })
            .map_err(fail)?;
        let observed = watching.next(&req.stamp).await;
        match observed.value {
            Ok(dtab) => Ok(DtabRef {
                stamp: observed.stamp,
                dtab,
            }),
            Err(reason) => Err(fail(reason)),
        }
    }

    async fn delegate(&self, req: DelegateReq) -> Result<Delegation, DelegationFailure> {
        let fail = |reason: String| DelegationFailure { reason };
        if !req.delegation.stamp.is_empty() {
            // Linkerd's answer to the old long-polling clients: delegate
            // is not long-polled, so a request with a stamp never ends
            // (until the client gives up or the connection closes).
            std::future::pending::<()>().await;
        }
        let ns = Namespace::new(&req.delegation.ns).map_err(|e| fail(e.to_string()))?;
        let path = req
            .delegation
            .tree
            .requested_path()
            .map_err(|e| fail(e.0))?;
        let local = self.local_dtab(&req.dtab).map_err(fail)?;
        let delegation = tokio::time::timeout(
            DELEGATE_TIMEOUT,
            self.ctx.namerd.delegate(&ns, &path, &local),
        )
        .await
        .map_err(|_| {
            fail(format!(
                "delegation of {} timed out after {DELEGATE_TIMEOUT:?}: a namer has not answered",
                path.show()
            ))
        })?
        .map_err(|e| match e {
            DelegateError::Store(e) => fail(e),
            DelegateError::Naming(e) => fail(e.to_string()),
        })?;
        let leaves = DelegateLeaves {
            contents: &|name: &Name| match name {
                Name::Path(p) => DelegateContents::PathLeaf(path_to_thrift(p)),
                Name::Bound(b) => DelegateContents::BoundLeaf(bound_name(&b.id, &b.residual)),
            },
            transformed: &|name: &Name| match name {
                Name::Path(p) => bound_name(p, &Path::empty()),
                Name::Bound(b) => bound_name(&b.id, &Path::empty()),
            },
        };
        Ok(Delegation {
            // Any non-empty stamp: an old client that polls again with it
            // is left waiting, as above.
            stamp: 1u64.to_be_bytes().to_vec(),
            tree: delegate_tree(&delegation, &leaves),
            ns: req.delegation.ns,
        })
    }

    /// A request's own dtab within `localDtabLimits`; the parser's message
    /// when it cannot be read.
    fn local_dtab(&self, text: &str) -> Result<Dtab, String> {
        if text.trim().is_empty() {
            return Ok(Dtab::empty());
        }
        self.ctx
            .local_dtab_limits
            .read(text, "localDtabLimits")
            .map_err(|e| format!("invalid dtab {text:?}: {e}"))
    }
}

/// The message answering call `seq` of `name`, and whether it succeeded.
fn reply<T: ThriftStruct, E: ThriftStruct>(
    name: &str,
    seq: i32,
    result: Result<T, E>,
) -> (Vec<u8>, bool) {
    match result {
        Ok(answer) => (encode_reply(name, seq, ReplyField::Success, &answer), true),
        Err(failure) => (
            encode_reply(name, seq, ReplyField::Exception, &failure),
            false,
        ),
    }
}

fn wire_tree(tree: &NameTree<namers::Bound>) -> BoundTree {
    bound_tree(tree, &|b: &namers::Bound| -> BoundName {
        bound_name(&b.id, &b.residual)
    })
}

fn wire_addr(addr: &namers::Addr) -> Option<Result<AddrVal, String>> {
    match addr {
        namers::Addr::Pending => None,
        namers::Addr::Neg => Some(Ok(AddrVal::Neg)),
        namers::Addr::Failed(e) => Some(Err(e.to_string())),
        namers::Addr::Bound(set) => Some(Ok(AddrVal::Bound(BoundAddr {
            addresses: set
                .endpoints()
                .iter()
                .map(|e| {
                    let weight = (e.weight != 1.0).then_some(e.weight);
                    TransportAddress::from_socket_addr(e.addr, wire_meta(&e.meta, weight))
                })
                .collect(),
            meta: wire_meta(&set.meta, None),
        }))),
    }
}

/// The metadata Linkerd sends: authority, node name and weight. Linkerd
/// sent none unless there was an authority or a node name; a weight other
/// than 1 is sent on its own too, so that weights reach the routers.
fn wire_meta(meta: &Metadata, weight: Option<f64>) -> Option<AddrMeta> {
    let text = |key: &str| meta.get(key).and_then(|v| v.as_str()).map(str::to_string);
    let weight = weight.or_else(|| meta.get(WEIGHT_KEY).and_then(serde_json::Value::as_f64));
    let meta = AddrMeta {
        authority: text("authority"),
        node_name: text("nodeName"),
        endpoint_addr_weight: weight,
    };
    (meta != AddrMeta::default()).then_some(meta)
}
