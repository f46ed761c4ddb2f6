//! The `io.l5d.mesh` interpreter: names are bound by namerd through
//! Linkerd's gRPC mesh API (`namerd/idl/linkerd/mesh/`): a bound tree per
//! (dtab, path) from `Interpreter.StreamBoundTree`, the endpoints of each
//! bound id from `Resolver.StreamReplicas`. All streams share one HTTP/2
//! connection per namerd address. [`super::remote`] keeps them going.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use dtab::{DelegateTree, Dtab, NameTree, Path};
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use hyper_util::rt::TokioIo;
use namerd_client::mesh::{self, BoundLeaf, MeshEndpoint, Replicas, proto};
use namers::tls::{ALPN_H2, ClientTls, ClientTlsConfig};
use namers::{Addr, AddrSet, Bound, Endpoint, Interpreter, Live, Metadata, Name, WEIGHT_KEY};
use serde::Deserialize;
use serde_json::{Map, Value};
use tonic::transport::{Channel, Endpoint as ChannelEndpoint, Uri};
use tonic::{Code, Status};

use super::params;
use super::remote::target::Target;
use super::remote::{Remote, RemoteLeaf, RemoteNamerd, RetryConfig, Updates, WatchError};

/// The interpreter's `kind`.
pub const KIND: &str = "io.l5d.mesh";

/// The `io.l5d.mesh` interpreter. Cheap to clone; clones share their
/// streams.
pub type MeshInterpreter = RemoteNamerd<MeshRemote>;

/// `interpreter: {kind: io.l5d.mesh, dst, root, tls, retry, ...}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MeshConfig {
    /// Where namerd's mesh interface is: a path bound with the default
    /// interpreter (`/$/inet/<host>/<port>`) or `host:port`.
    dst: String,
    /// The namerd namespace, as a one-element path (`/default`).
    #[serde(default = "default_root")]
    root: String,
    /// Reconnection backoff (Linkerd's mesh default: 1 s to 10 min).
    #[serde(default = "default_retry")]
    retry: RetryConfig,
    /// TLS to namerd (Linkerd's client TLS block); ALPN offers `h2`.
    #[serde(default)]
    tls: Option<ClientTlsConfig>,
    /// HTTP/2 pings that find a dead connection to namerd.
    #[serde(default)]
    failure_threshold: Option<FailureThreshold>,
    /// The HTTP/2 flow-control window of each stream, in KiB.
    #[serde(default = "default_window_kb", rename = "initialStreamWindowSizeKB")]
    initial_stream_window_size_kb: u32,
    /// Accepted wherever Linkerd takes it.
    #[serde(default)]
    #[allow(dead_code)]
    experimental: bool,
}

/// `failureThreshold: {minPeriodMs, closeTimeoutMs}`: Linkerd's session
/// pings, here HTTP/2 PING frames.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FailureThreshold {
    /// How often to ping.
    #[serde(default = "default_ping_ms")]
    min_period_ms: u64,
    /// How long a ping may go unanswered before the connection is closed.
    #[serde(default = "default_close_ms")]
    close_timeout_ms: u64,
}

fn default_root() -> String {
    "/default".to_string()
}

fn default_retry() -> RetryConfig {
    RetryConfig {
        base_seconds: 1.0,
        max_seconds: 600.0,
    }
}

fn default_window_kb() -> u32 {
    10240
}

fn default_ping_ms() -> u64 {
    5000
}

fn default_close_ms() -> u64 {
    6000
}

/// Builds the interpreter from the keys of its `interpreter:` block;
/// `default` binds `dst` when it is a path.
pub fn from_params(
    params: &Map<String, Value>,
    default: &Interpreter,
    idle_ttl: Duration,
) -> Result<MeshInterpreter, String> {
    let config: MeshConfig = params::parse(KIND, params)?;
    let root = root_of(&config.root).map_err(|e| params::invalid(KIND, "root", e))?;
    let retry = config.retry.retry(KIND)?;
    let tls = match config.tls.as_ref().filter(|tls| tls.is_enabled()) {
        Some(tls) => Some(Arc::new(
            MeshTls::new(tls).map_err(|e| params::invalid(KIND, "tls", e))?,
        )),
        None => None,
    };
    if config.initial_stream_window_size_kb == 0 || config.initial_stream_window_size_kb > 2097151 {
        return Err(params::invalid(
            KIND,
            "initialStreamWindowSizeKB",
            format!(
                "{} is not from 1 to 2097151 (HTTP/2's largest window)",
                config.initial_stream_window_size_kb
            ),
        ));
    }
    let dial = Dial {
        tls,
        window: config.initial_stream_window_size_kb * 1024,
        pings: config.failure_threshold.as_ref().map(|f| {
            (
                Duration::from_millis(f.min_period_ms.max(1)),
                Duration::from_millis(f.close_timeout_ms.max(1)),
            )
        }),
    };
    // An `ip:port` is bound as `/$/inet/<ip>/<port>`, so that the channel
    // (which starts a task) is made on first use, within the runtime.
    let dst = match config.dst.trim().parse::<SocketAddr>() {
        Ok(addr) => format!("/$/inet/{}/{}", addr.ip(), addr.port()),
        Err(_) => config.dst.clone(),
    };
    let target = Target::named(&dst, default)
        .unwrap_or_else(|| {
            Err(format!(
                "{:?}: write a path such as /$/inet/<host>/<port>, or an IP address and port",
                config.dst
            ))
        })
        .map_err(|e| params::invalid(KIND, "dst", e))?;
    let remote = MeshRemote { root, target, dial };
    Ok(RemoteNamerd::new(remote, retry, idle_ttl))
}

/// `root` must be one element naming the namespace, as Linkerd's.
fn root_of(text: &str) -> Result<(String, proto::Path), String> {
    let path = Path::read(text.trim()).map_err(|e| format!("{text:?}: {e}"))?;
    match path.elems() {
        [ns] => {
            let ns = ns
                .as_str()
                .ok_or_else(|| format!("{text:?}: the namespace is not UTF-8"))?;
            Ok((
                ns.to_string(),
                proto::Path {
                    elems: vec![ns.as_bytes().to_vec()],
                },
            ))
        }
        _ => Err(format!(
            "{text:?} must be a single path element naming the namespace, e.g. /default"
        )),
    }
}

/// How channels to namerd are made.
struct Dial {
    tls: Option<Arc<MeshTls>>,
    window: u32,
    pings: Option<(Duration, Duration)>,
}

impl Dial {
    /// A channel to `addr` that connects when first used and reconnects
    /// by itself after the connection breaks.
    fn channel(&self, addr: SocketAddr) -> Result<Channel, String> {
        // With TLS, the connector below makes the connection; the scheme
        // only goes into requests' `:scheme`.
        let mut endpoint = ChannelEndpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(5))
            .initial_stream_window_size(self.window);
        if let Some((interval, timeout)) = self.pings {
            endpoint = endpoint
                .http2_keep_alive_interval(interval)
                .keep_alive_timeout(timeout)
                .keep_alive_while_idle(true);
        }
        Ok(match &self.tls {
            Some(tls) => endpoint.connect_with_connector_lazy(TlsConnector {
                tls: tls.clone(),
                addr,
            }),
            None => endpoint.connect_lazy(),
        })
    }
}

/// The `tls:` block, read now and again when its files change.
struct MeshTls {
    tls: ClientTls,
    server_name: Option<rustls_pki_types::ServerName<'static>>,
}

impl MeshTls {
    fn new(config: &ClientTlsConfig) -> Result<MeshTls, String> {
        let tls = config.build(&[ALPN_H2])?;
        if tokio::runtime::Handle::try_current().is_ok() {
            tls.watch();
        }
        let server_name = match &config.common_name {
            Some(name) => Some(
                rustls_pki_types::ServerName::try_from(name.clone()).map_err(|_| {
                    format!("commonName: `{name}` is not a DNS name or an IP address")
                })?,
            ),
            None => None,
        };
        Ok(MeshTls { tls, server_name })
    }
}

/// Dials namerd over TLS for the gRPC channel.
#[derive(Clone)]
struct TlsConnector {
    tls: Arc<MeshTls>,
    addr: SocketAddr,
}

type TlsIo = TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

impl tower_service::Service<Uri> for TlsConnector {
    type Response = TlsIo;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<TlsIo, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let (tls, addr) = (self.tls.clone(), self.addr);
        Box::pin(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            let _ = tcp.set_nodelay(true);
            let name = tls
                .server_name
                .clone()
                .unwrap_or_else(|| rustls_pki_types::ServerName::IpAddress(addr.ip().into()));
            let connector = tokio_rustls::TlsConnector::from(tls.tls.rustls_config());
            let stream = connector.connect(name, tcp).await.map_err(|e| {
                std::io::Error::other(HandshakeFailed(format!(
                    "TLS handshake with namerd at {addr}: {e}"
                )))
            })?;
            Ok(TokioIo::new(stream))
        })
    }
}

/// A TLS handshake with namerd failed: every attempt fails the same way
/// until certificates change, so a name namerd never answered fails with
/// this rather than waiting.
#[derive(Debug)]
struct HandshakeFailed(String);

impl std::fmt::Display for HandshakeFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HandshakeFailed {}

/// Whether `status` came from a failed TLS handshake.
fn handshake_failed(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        // An io::Error's `source` skips the error it wraps; look inside.
        let wrapped = cause
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref);
        if cause.is::<HandshakeFailed>() || wrapped.is_some_and(|e| e.is::<HandshakeFailed>()) {
            return true;
        }
        source = cause.source();
    }
    false
}

/// namerd's mesh interface as a [`Remote`].
pub struct MeshRemote {
    /// The namespace, and the `root` that names it.
    root: (String, proto::Path),
    target: Target<Channel>,
    dial: Dial,
}

impl MeshRemote {
    async fn channel(&self) -> Result<Channel, String> {
        self.target.client(|addr| self.dial.channel(addr)).await
    }
}

impl Remote for MeshRemote {
    const KIND: &'static str = KIND;

    fn namespace(&self) -> &str {
        &self.root.0
    }

    fn target(&self) -> String {
        self.target.to_string()
    }

    fn watch_bind(
        &self,
        dtab: &Dtab,
        path: &Path,
    ) -> BoxFuture<'_, Result<Updates<NameTree<RemoteLeaf>>, WatchError>> {
        let request = proto::BindReq {
            root: Some(self.root.1.clone()),
            name: Some(mesh::convert::path_to_proto(path)),
            dtab: Some(mesh::convert::dtab_to_proto(dtab)),
        };
        async move {
            let channel = self.channel().await.map_err(WatchError::Unreachable)?;
            let mut client = proto::interpreter_client::InterpreterClient::new(channel);
            let stream = client
                .stream_bound_tree(request)
                .await
                .map_err(|status| watch_error(&status))?
                .into_inner();
            Ok(updates(stream, |rsp: proto::BoundTreeRsp| {
                let tree = rsp.tree.ok_or("a bound tree response without a tree")?;
                let tree = mesh::convert::bound_tree_from_proto(&tree)
                    .map_err(|e| format!("unreadable bound tree: {e}"))?;
                Ok(tree.map(&mut |leaf: &BoundLeaf| {
                    RemoteLeaf::new(leaf.id.clone(), leaf.residual.clone())
                }))
            }))
        }
        .boxed()
    }

    fn watch_addr(&self, id: &Path) -> BoxFuture<'_, Result<Updates<Addr>, WatchError>> {
        let request = proto::ReplicasReq {
            id: Some(mesh::convert::path_to_proto(id)),
        };
        async move {
            let channel = self.channel().await.map_err(WatchError::Unreachable)?;
            let mut client = proto::resolver_client::ResolverClient::new(channel);
            let stream = client
                .stream_replicas(request)
                .await
                .map_err(|status| watch_error(&status))?
                .into_inner();
            Ok(updates(stream, |replicas: proto::Replicas| {
                let replicas = mesh::convert::replicas_from_proto(&replicas)
                    .map_err(|e| format!("unreadable replicas: {e}"))?;
                Ok(addr_of(replicas))
            }))
        }
        .boxed()
    }

    fn delegate<'a>(
        &'a self,
        dtab: &'a Dtab,
        path: &'a Path,
    ) -> BoxFuture<'a, Result<Value, String>> {
        let request = proto::DelegateTreeReq {
            root: Some(self.root.1.clone()),
            tree: Some(mesh::convert::name_tree_to_proto(&NameTree::Leaf(
                path.clone(),
            ))),
            dtab: Some(mesh::convert::dtab_to_proto(dtab)),
        };
        async move {
            let channel = self.channel().await?;
            let mut client = proto::delegator_client::DelegatorClient::new(channel);
            let rsp = client
                .get_delegate_tree(request)
                .await
                .map_err(|status| status_message(&status))?
                .into_inner();
            let tree = rsp.tree.ok_or("namerd sent no delegate tree")?;
            let tree = mesh::convert::delegate_tree_from_proto(&tree)
                .map_err(|e| format!("unreadable delegate tree: {e}"))?;
            Ok(namers::json::delegate_tree(&delegate_names(&tree)))
        }
        .boxed()
    }

    fn probe(&self) -> BoxFuture<'_, Result<bool, String>> {
        let request = proto::DtabReq {
            root: Some(self.root.1.clone()),
        };
        async move {
            let channel = self.channel().await?;
            let mut client = proto::delegator_client::DelegatorClient::new(channel);
            match client.get_dtab(request).await {
                Ok(_) => Ok(true),
                Err(status) if status.code() == Code::NotFound => Ok(false),
                Err(status) => Err(status_message(&status)),
            }
        }
        .boxed()
    }
}

/// The mesh API's delegate tree, with bound leaves as the delegator JSON
/// shows them. The mesh API sends no addresses with it.
fn delegate_names(tree: &DelegateTree<BoundLeaf>) -> DelegateTree<Name> {
    tree.map(&mut |leaf: &BoundLeaf| {
        Name::Bound(Bound::new(
            leaf.id.clone(),
            leaf.residual.clone(),
            Live::constant(Addr::Pending),
        ))
    })
}

/// A replica set as an address: Linkerd's namerd carries each endpoint's
/// weight as `endpoint_addr_weight` in its metadata, as text.
fn addr_of(replicas: Replicas) -> Addr {
    match replicas {
        Replicas::Pending => Addr::Pending,
        Replicas::Neg => Addr::Neg,
        Replicas::Failed(why) => Addr::Failed(why.into()),
        Replicas::Bound {
            endpoints,
            metadata,
        } => {
            let mut set = AddrSet::new(endpoints.into_iter().map(endpoint_of).collect());
            set.meta = metadata_of(metadata);
            Addr::Bound(set)
        }
    }
}

fn endpoint_of(endpoint: MeshEndpoint) -> Endpoint {
    let weight = endpoint
        .metadata
        .get(WEIGHT_KEY)
        .and_then(|w| w.parse::<f64>().ok())
        .filter(|w| w.is_finite() && *w >= 0.0)
        .unwrap_or(1.0);
    let mut meta = metadata_of(endpoint.metadata);
    if let Some(node) = endpoint.node_name {
        meta.insert("nodeName".into(), node.into());
    }
    if weight != 1.0 {
        meta.insert(WEIGHT_KEY.into(), weight.into());
    }
    Endpoint {
        addr: endpoint.addr,
        weight,
        meta,
    }
}

fn metadata_of(metadata: std::collections::BTreeMap<String, String>) -> Metadata {
    metadata
        .into_iter()
        .filter(|(key, _)| key != WEIGHT_KEY)
        .map(|(key, value)| (key, Value::String(value)))
        .collect()
}

/// A gRPC stream's messages, read by `read`, as updates: an unreadable
/// message or a failed stream is the last item.
fn updates<M: Send + 'static, T: Send + 'static>(
    stream: tonic::Streaming<M>,
    read: fn(M) -> Result<T, String>,
) -> Updates<T> {
    let stream = futures_util::stream::unfold(Some(stream), move |stream| async move {
        let mut stream = stream?;
        match stream.next().await {
            Some(Ok(message)) => match read(message) {
                Ok(value) => Some((Ok(value), Some(stream))),
                Err(e) => Some((Err(WatchError::Failed(e)), None)),
            },
            Some(Err(status)) => Some((Err(watch_error(&status)), None)),
            None => None,
        }
    });
    Box::pin(stream)
}

/// What a gRPC status means for a watch: namerd refusing the request,
/// namerd failing the name, or namerd not being there.
fn watch_error(status: &Status) -> WatchError {
    let message = status_message(status);
    if handshake_failed(status) {
        return WatchError::Failed(message);
    }
    match status.code() {
        Code::InvalidArgument => WatchError::Refused(message),
        Code::Unavailable
        | Code::Unknown
        | Code::Cancelled
        | Code::DeadlineExceeded
        | Code::ResourceExhausted
        | Code::Aborted
        | Code::Internal => WatchError::Unreachable(message),
        _ => WatchError::Failed(message),
    }
}

/// The status's code and message, and the causes under it that say
/// something the message does not.
fn status_message(status: &Status) -> String {
    let mut message = format!("{:?}: {}", status.code(), status.message());
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) && !text.contains(status.message()) {
            message.push_str(&format!(": {text}"));
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use namers::system::SystemNamers;
    use namers::system::inet::InetResolver;

    fn build(params: Value) -> Result<MeshInterpreter, String> {
        let inet = Arc::new(InetResolver::system().unwrap());
        let default = Interpreter::new(Vec::new(), SystemNamers::with_linkerd_namers(inet));
        let Value::Object(params) = params else {
            panic!("not an object")
        };
        from_params(&params, &default, Duration::from_secs(600))
    }

    // Outside a runtime, as `router --check` may build it: nothing is
    // started until a name is bound.
    #[test]
    fn keys_are_checked_without_a_runtime() {
        build(serde_json::json!({"dst": "127.0.0.1:4321"})).unwrap();
        build(serde_json::json!({"dst": "[::1]:4321", "root": "/web"})).unwrap();
        build(serde_json::json!({"dst": "/$/inet/namerd/4321",
            "failureThreshold": {"minPeriodMs": 1000}, "initialStreamWindowSizeKB": 64}))
        .unwrap();
        for (params, says) in [
            (serde_json::json!({}), "dst: missing field"),
            (
                serde_json::json!({"dst": "namerd:4321"}),
                "write a path such as",
            ),
            (
                serde_json::json!({"dst": "127.0.0.1:4321", "root": "/a/b"}),
                "root: ",
            ),
            (
                serde_json::json!({"dst": "127.0.0.1:4321", "initialStreamWindowSizeKB": 0}),
                "initialStreamWindowSizeKB",
            ),
            (
                serde_json::json!({"dst": "127.0.0.1:4321", "retry": {"baseSeconds": 9, "maxSeconds": 1}}),
                "retry.maxSeconds",
            ),
            (
                serde_json::json!({"dst": "127.0.0.1:4321", "h2AccessLog": "x"}),
                "h2AccessLog",
            ),
        ] {
            let e = build(params.clone())
                .err()
                .unwrap_or_else(|| panic!("{params} was taken"));
            assert!(e.contains(says), "{params}: {e}");
        }
    }
}
