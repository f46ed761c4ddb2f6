//! The `io.l5d.namerd` interpreter: names are bound by namerd through
//! Linkerd's thrift interface (`namerd/idl/linkerd/namer.thrift`, served
//! by `io.l5d.thriftNameInterpreter`). Watches are long polls: each call
//! carries the stamp of the last answer, and namerd answers when the value
//! changes. Plain framed Thrift, one connection per open poll (Linkerd's
//! namerd serves framed clients beside ThriftMux ones).
//! [`super::remote`] keeps the polls going.

use std::sync::Arc;
use std::time::Duration;

use dtab::{Dtab, NameTree, Path, Weighted};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use namerd_client::TlsSettings;
use namerd_client::thrift::types::{
    AddrReq, AddrVal, BindReq, BoundName, DelegateContents, DelegateNode, DelegateReq,
    DelegateTree as ThriftDelegateTree, Delegation, DtabReq, NameRef, TransportAddress,
};
use namerd_client::thrift::{NamerClient, ThriftError, convert};
use namers::tls::ClientTlsConfig;
use namers::{Addr, AddrSet, Endpoint, Interpreter, Metadata, WEIGHT_KEY};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::params;
use super::remote::target::Target;
use super::remote::{Remote, RemoteLeaf, RemoteNamerd, RetryConfig, Updates, WatchError};

/// The interpreter's `kind`.
pub const KIND: &str = "io.l5d.namerd";

/// How long one long poll may wait before it is asked again: namerd
/// answers a poll only when the value changes, so a poll on a connection
/// that died silently would otherwise wait for ever.
const LONG_POLL_LIMIT: Duration = Duration::from_secs(300);

/// The client id sent with every call (namerd ignores it; Linkerd's
/// routers send their label).
const CLIENT_ID: &str = "switchboard";

/// The `io.l5d.namerd` interpreter. Cheap to clone; clones share their
/// polls.
pub type NamerdThriftInterpreter = RemoteNamerd<ThriftRemote>;

/// `interpreter: {kind: io.l5d.namerd, dst, namespace, retry, tls}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ThriftConfig {
    /// Where namerd's thrift interface is: a path bound with the default
    /// interpreter (`/$/inet/<host>/<port>`) or `host:port`.
    dst: String,
    /// The namerd namespace whose dtab binds names.
    #[serde(default = "default_namespace")]
    namespace: String,
    /// Reconnection backoff.
    #[serde(default)]
    retry: RetryConfig,
    /// TLS to namerd: Linkerd's namerd client TLS block.
    #[serde(default)]
    tls: Option<NamerdTls>,
    /// Linkerd's mux session pings: refused (framed Thrift has none).
    #[serde(default)]
    failure_threshold: Option<Value>,
    /// Accepted wherever Linkerd takes it.
    #[serde(default)]
    #[allow(dead_code)]
    experimental: bool,
}

/// `tls: {commonName, caCert}`: the shape Linkerd's `io.l5d.namerd` takes
/// (not the general client TLS block).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NamerdTls {
    /// The name namerd's certificate must be valid for (also sent as SNI).
    common_name: String,
    /// The CA that signed it; the system's roots when absent.
    #[serde(default)]
    ca_cert: Option<std::path::PathBuf>,
}

fn default_namespace() -> String {
    "default".to_string()
}

/// Builds the interpreter from the keys of its `interpreter:` block;
/// `default` binds `dst` when it is a path.
pub fn from_params(
    params: &Map<String, Value>,
    default: &Interpreter,
    idle_ttl: Duration,
) -> Result<NamerdThriftInterpreter, String> {
    let config: ThriftConfig = params::parse(KIND, params)?;
    if config.failure_threshold.is_some() {
        return Err(params::invalid(
            KIND,
            "failureThreshold",
            "not supported yet (Linkerd's ThriftMux session pings; this interpreter speaks \
             framed Thrift, where a poll is asked again after five minutes instead)",
        ));
    }
    let namespace = namerd_client::Namespace::new(&config.namespace)
        .map_err(|e| params::invalid(KIND, "namespace", e))?;
    let retry = config.retry.retry(KIND)?;
    let tls = match &config.tls {
        Some(tls) => Some(tls_settings(tls).map_err(|e| params::invalid(KIND, "tls", e))?),
        None => None,
    };
    let connect = move |server: String| {
        let client = NamerClient::new(server).with_long_poll_timeout(Some(LONG_POLL_LIMIT));
        Arc::new(match &tls {
            Some(tls) => client.with_tls(tls.clone()),
            None => client,
        })
    };
    let target = match Target::named(&config.dst, default) {
        Some(named) => named,
        None => {
            let dst = config.dst.trim();
            if dst
                .rsplit_once(':')
                .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
            {
                Err(format!(
                    "{dst:?}: write a path such as /$/inet/<host>/<port>, or host:port"
                ))
            } else {
                Ok(Target::Fixed {
                    client: connect(dst.to_string()),
                    shown: dst.to_string(),
                })
            }
        }
    }
    .map_err(|e| params::invalid(KIND, "dst", e))?;
    let remote = ThriftRemote {
        namespace: namespace.as_str().to_string(),
        target,
        connect: Box::new(connect),
    };
    Ok(RemoteNamerd::new(remote, retry, idle_ttl))
}

/// Linkerd's `{commonName, caCert}` as our client TLS.
fn tls_settings(config: &NamerdTls) -> Result<TlsSettings, String> {
    let mut block = json!({"commonName": config.common_name});
    if let Some(ca) = &config.ca_cert {
        block["trustCerts"] = json!([ca]);
    }
    let general: ClientTlsConfig =
        serde_json::from_value(block).map_err(|e| format!("tls: {e}"))?;
    // Thrift has no ALPN name.
    let tls = Arc::new(general.build(&[])?);
    if tokio::runtime::Handle::try_current().is_ok() {
        tls.watch();
    }
    let name =
        rustls_pki_types::ServerName::try_from(config.common_name.clone()).map_err(|_| {
            format!(
                "commonName: `{}` is not a DNS name or an IP address",
                config.common_name
            )
        })?;
    Ok(TlsSettings::new(move || tls.rustls_config(), Some(name)))
}

type Connect = dyn Fn(String) -> Arc<NamerClient> + Send + Sync;

/// namerd's thrift interface as a [`Remote`].
pub struct ThriftRemote {
    namespace: String,
    target: Target<Arc<NamerClient>>,
    connect: Box<Connect>,
}

impl ThriftRemote {
    async fn client(&self) -> Result<Arc<NamerClient>, String> {
        self.target
            .client(|addr| Ok((self.connect)(addr.to_string())))
            .await
    }

    fn name_ref(&self, path: &Path) -> NameRef {
        NameRef {
            stamp: Vec::new(),
            name: convert::path_to_thrift(path),
            ns: self.namespace.clone(),
        }
    }
}

fn client_id() -> Vec<Vec<u8>> {
    vec![CLIENT_ID.as_bytes().to_vec()]
}

impl Remote for ThriftRemote {
    const KIND: &'static str = KIND;

    fn namespace(&self) -> &str {
        &self.namespace
    }

    fn target(&self) -> String {
        self.target.to_string()
    }

    fn watch_bind(
        &self,
        dtab: &Dtab,
        path: &Path,
    ) -> BoxFuture<'_, Result<Updates<NameTree<RemoteLeaf>>, WatchError>> {
        let request = BindReq {
            dtab: dtab.show(),
            name: self.name_ref(path),
            client_id: client_id(),
        };
        async move {
            let client = self.client().await.map_err(WatchError::Unreachable)?;
            Ok(long_polls(
                client,
                request,
                |client, request| client.bind(request).boxed(),
                |request, bound| {
                    request.name.stamp = bound.stamp;
                    let tree = bound.tree.to_name_tree().map_err(|e| e.0)?;
                    remote_tree(&tree).map_err(|e| format!("unreadable bound tree: {e}"))
                },
            ))
        }
        .boxed()
    }

    fn watch_addr(&self, id: &Path) -> BoxFuture<'_, Result<Updates<Addr>, WatchError>> {
        let request = AddrReq {
            name: self.name_ref(id),
            client_id: client_id(),
        };
        async move {
            let client = self.client().await.map_err(WatchError::Unreachable)?;
            Ok(long_polls(
                client,
                request,
                |client, request| client.addr(request).boxed(),
                |request, addr| {
                    request.name.stamp = addr.stamp;
                    addr_of(addr.value).map_err(|e| format!("unreadable address: {e}"))
                },
            ))
        }
        .boxed()
    }

    fn delegate<'a>(
        &'a self,
        dtab: &'a Dtab,
        path: &'a Path,
    ) -> BoxFuture<'a, Result<Value, String>> {
        async move {
            let client = self.client().await?;
            let request = DelegateReq {
                dtab: dtab.show(),
                delegation: Delegation {
                    stamp: Vec::new(),
                    tree: ThriftDelegateTree::request(path),
                    ns: self.namespace.clone(),
                },
                client_id: client_id(),
            };
            let delegation = client.delegate(request).await.map_err(|e| e.to_string())?;
            delegate_json(&delegation.tree)
        }
        .boxed()
    }

    fn probe(&self) -> BoxFuture<'_, Result<bool, String>> {
        async move {
            let client = self.client().await?;
            let request = DtabReq {
                stamp: Vec::new(),
                ns: self.namespace.clone(),
                client_id: client_id(),
            };
            match client.dtab(request).await {
                Ok(_) => Ok(true),
                // namerd's answer: it has no such namespace (or cannot
                // read it).
                Err(ThriftError::Failed { .. }) => Ok(false),
                Err(e) => Err(e.to_string()),
            }
        }
        .boxed()
    }
}

/// A request that is asked again and again, each time with the stamp of
/// the last answer: `call` asks, `answer` takes the new stamp into the
/// request and reads the value. A poll that times out with a stamp (a
/// quiet value) is asked again; any other failure, or an answer that
/// cannot be read, is the last item.
fn long_polls<R, A, T>(
    client: Arc<NamerClient>,
    request: R,
    call: for<'c> fn(&'c NamerClient, R) -> BoxFuture<'c, Result<A, ThriftError>>,
    answer: fn(&mut R, A) -> Result<T, String>,
) -> Updates<T>
where
    R: Clone + Stamped + Send + 'static,
    A: Send + 'static,
    T: Send + 'static,
{
    let polls = futures_util::stream::unfold(Some((client, request)), move |state| async move {
        let (client, mut request) = state?;
        loop {
            match call(&client, request.clone()).await {
                Ok(answered) => {
                    let value = answer(&mut request, answered).map_err(|e| {
                        WatchError::Failed(format!("namerd at {}: {e}", client.server()))
                    });
                    let next = value.is_ok().then_some((client, request));
                    return Some((value, next));
                }
                // A quiet value: ask again.
                Err(ThriftError::Timeout { .. }) if request.has_stamp() => {}
                Err(error) => return Some((Err(watch_error(&error)), None)),
            }
        }
    });
    Box::pin(polls)
}

/// A long-poll request, which carries the stamp of the answer it has.
trait Stamped {
    fn has_stamp(&self) -> bool;
}

impl Stamped for BindReq {
    fn has_stamp(&self) -> bool {
        !self.name.stamp.is_empty()
    }
}

impl Stamped for AddrReq {
    fn has_stamp(&self) -> bool {
        !self.name.stamp.is_empty()
    }
}

/// What a failed call means for a watch.
fn watch_error(error: &ThriftError) -> WatchError {
    let message = error.to_string();
    match error {
        ThriftError::Unreachable { .. }
        | ThriftError::Timeout { .. }
        | ThriftError::Connection { .. } => WatchError::Unreachable(message),
        // namerd's own answer; or certificates that fail every attempt
        // the same way until they change.
        ThriftError::Failed { .. }
        | ThriftError::Application { .. }
        | ThriftError::Protocol { .. }
        | ThriftError::Tls { .. } => WatchError::Failed(message),
    }
}

/// A bound tree's leaves as paths.
fn remote_tree(tree: &NameTree<BoundName>) -> Result<NameTree<RemoteLeaf>, String> {
    Ok(match tree {
        NameTree::Leaf(name) => NameTree::Leaf(RemoteLeaf::new(
            name.id_path().map_err(|e| format!("a bound id: {}", e.0))?,
            name.residual_path()
                .map_err(|e| format!("a residual path: {}", e.0))?,
        )),
        NameTree::Alt(trees) => {
            NameTree::Alt(trees.iter().map(remote_tree).collect::<Result<_, _>>()?)
        }
        NameTree::Union(branches) => NameTree::Union(
            branches
                .iter()
                .map(|b| Ok(Weighted::new(b.weight, remote_tree(&b.tree)?)))
                .collect::<Result<_, String>>()?,
        ),
        NameTree::Neg => NameTree::Neg,
        NameTree::Fail => NameTree::Fail,
        NameTree::Empty => NameTree::Empty,
    })
}

/// An address as namerd's thrift interface sends it. Linkerd carries an
/// endpoint's weight, node and authority in its `AddrMeta`.
fn addr_of(value: AddrVal) -> Result<Addr, String> {
    match value {
        AddrVal::Neg => Ok(Addr::Neg),
        AddrVal::Bound(bound) => {
            let endpoints = bound
                .addresses
                .iter()
                .map(endpoint_of)
                .collect::<Result<Vec<_>, _>>()?;
            let mut set = AddrSet::new(endpoints);
            if let Some(meta) = &bound.meta {
                set.meta = meta_of(meta.authority.as_deref(), meta.node_name.as_deref());
            }
            Ok(Addr::Bound(set))
        }
    }
}

fn endpoint_of(address: &TransportAddress) -> Result<Endpoint, String> {
    let addr = address.socket_addr().map_err(|e| e.0)?;
    let meta = address.meta.as_ref();
    let weight = meta
        .and_then(|m| m.endpoint_addr_weight)
        .filter(|w| w.is_finite() && *w >= 0.0)
        .unwrap_or(1.0);
    let mut metadata = meta.map_or_else(Metadata::new, |m| {
        meta_of(m.authority.as_deref(), m.node_name.as_deref())
    });
    if weight != 1.0 {
        metadata.insert(WEIGHT_KEY.into(), weight.into());
    }
    Ok(Endpoint {
        addr,
        weight,
        meta: metadata,
    })
}

fn meta_of(authority: Option<&str>, node_name: Option<&str>) -> Metadata {
    let mut meta = Metadata::new();
    if let Some(authority) = authority {
        meta.insert("authority".into(), authority.into());
    }
    if let Some(node) = node_name {
        meta.insert("nodeName".into(), node.into());
    }
    meta
}

/// namerd's delegation tree as the delegator's JSON (the shape of
/// `namers::json::delegate_tree`). Node ids must each be reached once.
fn delegate_json(tree: &ThriftDelegateTree) -> Result<Value, String> {
    let mut seen = Vec::new();
    node_json(tree, &tree.root, 0, &mut seen)
}

fn node_json(
    tree: &ThriftDelegateTree,
    node: &DelegateNode,
    depth: usize,
    seen: &mut Vec<i32>,
) -> Result<Value, String> {
    if depth > 100 {
        return Err("a delegation tree nested more than 100 deep".into());
    }
    let mut child = |id: i32| -> Result<Value, String> {
        if seen.contains(&id) {
            return Err(format!("delegation node {id} is reached twice"));
        }
        seen.push(id);
        let node = tree
            .nodes
            .get(&id)
            .ok_or_else(|| format!("delegation node {id} is not in the tree"))?;
        node_json(tree, node, depth + 1, seen)
    };
    let path =
        convert::path_from_thrift(&node.path).map_err(|e| format!("a delegation path: {}", e.0))?;
    let mut out = Map::new();
    let kind = match &node.contents {
        DelegateContents::Error(message) => {
            out.insert("message".into(), message.as_str().into());
            "exception"
        }
        DelegateContents::Empty => "empty",
        DelegateContents::Fail => "fail",
        DelegateContents::Neg => "neg",
        DelegateContents::Delegate(id) => {
            out.insert("delegate".into(), child(*id)?);
            "delegate"
        }
        DelegateContents::BoundLeaf(name) => {
            out.insert("bound".into(), bound_json(name)?);
            "leaf"
        }
        DelegateContents::PathLeaf(leaf) => {
            let leaf = convert::path_from_thrift(leaf)
                .map_err(|e| format!("a delegation leaf: {}", e.0))?;
            out.insert("name".into(), leaf.show().into());
            "leaf"
        }
        DelegateContents::Alt(ids) => {
            let trees = ids
                .iter()
                .map(|id| child(*id))
                .collect::<Result<Vec<_>, _>>()?;
            out.insert("alt".into(), trees.into());
            "alt"
        }
        DelegateContents::Weighted(branches) => {
            let trees = branches
                .iter()
                .map(|b| Ok(json!({"weight": b.weight, "tree": child(b.id)?})))
                .collect::<Result<Vec<_>, String>>()?;
            out.insert("union".into(), trees.into());
            "union"
        }
        DelegateContents::Transformation(t) => {
            out.insert("name".into(), node.dentry.as_str().into());
            out.insert("bound".into(), bound_json(&t.value)?);
            out.insert("tree".into(), child(t.tree)?);
            "transformation"
        }
    };
    out.insert("type".into(), kind.into());
    out.insert("path".into(), path.show().into());
    if kind != "transformation"
        && let Some(dentry) = dentry_json(&node.dentry)
    {
        out.insert("dentry".into(), dentry);
    }
    Ok(Value::Object(out))
}

fn bound_json(name: &BoundName) -> Result<Value, String> {
    let id = name.id_path().map_err(|e| format!("a bound id: {}", e.0))?;
    let residual = name
        .residual_path()
        .map_err(|e| format!("a residual path: {}", e.0))?;
    Ok(json!({"id": id.show(), "path": residual.show()}))
}

/// `prefix=>dst` as the delegator's `{prefix, dst}`; none for the empty
/// (no-op) dentry.
fn dentry_json(text: &str) -> Option<Value> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    match dtab::Dentry::read(text) {
        Ok(dentry) if !dentry.is_nop() => {
            Some(json!({"prefix": dentry.prefix.show(), "dst": dentry.dst.show()}))
        }
        Ok(_) => None,
        Err(_) => Some(json!({"prefix": text, "dst": ""})),
    }
}
