//! The `io.l5d.namerd.http` interpreter: names are bound by namerd, through
//! its HTTP API's streaming watches (`GET /api/1/bind/<ns>?watch=true` and
//! `GET /api/1/addr/<ns>?watch=true`), kept going by [`super::remote`].
//!
//! With `tls` (Linkerd's client TLS block), namerd is reached over TLS:
//! its certificate must be valid for `commonName` (also sent as SNI), and
//! `clientAuth` is shown when namerd asks for a certificate. The files are
//! read again when they change.

#[cfg(test)]
mod tests;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dtab::{Dtab, NameTree, Path};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use namerd_client::{BaseUrl, Client, ClientError, Namespace, TlsSettings};
use namers::tls::{ALPN_HTTP11, ClientTlsConfig};
use namers::{Addr, Interpreter};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::params;
use super::remote::target::Target;
use super::remote::{Remote, RemoteLeaf, RemoteNamerd, RetryConfig, Updates, WatchError};

pub use super::remote::{Retry, WatchStatus};

/// The interpreter's `kind`.
pub const KIND: &str = "io.l5d.namerd.http";

/// The `io.l5d.namerd.http` interpreter. Cheap to clone; clones share their
/// watches.
pub type NamerdHttpInterpreter = RemoteNamerd<HttpRemote>;

/// `interpreter: {kind: io.l5d.namerd.http, dst, namespace, retry}`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamerdHttpConfig {
    /// Where namerd's HTTP API is: a path bound with the default
    /// interpreter (`/$/inet/<host>/<port>`), `host:port`, or
    /// `http://host:port[/prefix]` (`https://` with `tls`).
    pub dst: String,
    /// The namerd namespace whose dtab binds names (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Reconnection backoff.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Linkerd required `experimental: true`; accepted and not required.
    #[serde(default)]
    pub experimental: bool,
    /// TLS to namerd (Linkerd's client TLS block).
    #[serde(default)]
    pub tls: Option<ClientTlsConfig>,
}

fn default_namespace() -> String {
    "default".to_string()
}

#[cfg(test)]
fn retry_of(config: &RetryConfig) -> Result<Retry, String> {
    config.retry(KIND)
}

/// Builds the interpreter from the keys of its `interpreter:` block;
/// `default` binds `dst` when it is a path. A name nobody uses any more
/// keeps its streams to namerd for `idle_ttl`.
pub fn from_params(
    params: &Map<String, Value>,
    default: &Interpreter,
    idle_ttl: Duration,
) -> Result<NamerdHttpInterpreter, String> {
    let config: NamerdHttpConfig = params::parse(KIND, params)?;
    let namespace =
        Namespace::new(&config.namespace).map_err(|e| params::invalid(KIND, "namespace", e))?;
    let retry = config.retry.retry(KIND)?;
    let tls = match config.tls.as_ref().filter(|tls| tls.is_enabled()) {
        Some(tls) => Some(tls_settings(tls).map_err(|e| params::invalid(KIND, "tls", e))?),
        None => None,
    };
    let target =
        target(&config.dst, default, tls.as_ref()).map_err(|e| params::invalid(KIND, "dst", e))?;
    let remote = HttpRemote {
        namespace,
        target,
        tls,
    };
    Ok(RemoteNamerd::new(remote, retry, idle_ttl))
}

impl NamerdHttpInterpreter {
    /// As [`from_params`].
    pub fn from_params(
        params: &Map<String, Value>,
        default: &Interpreter,
        idle_ttl: Duration,
    ) -> Result<NamerdHttpInterpreter, String> {
        from_params(params, default, idle_ttl)
    }

    /// An interpreter asking the namerd at `base` about `namespace`, that
    /// keeps a name's watch for `inactive_ttl` after it is last used.
    pub fn with_base_url(
        base: BaseUrl,
        namespace: Namespace,
        retry: Retry,
        inactive_ttl: Duration,
    ) -> NamerdHttpInterpreter {
        let shown = base.to_string();
        let remote = HttpRemote {
            namespace,
            target: Target::Fixed {
                client: Client::new(base),
                shown,
            },
            tls: None,
        };
        RemoteNamerd::new(remote, retry, inactive_ttl)
    }
}

/// namerd's HTTP API as a [`Remote`].
pub struct HttpRemote {
    namespace: Namespace,
    target: Target<Client>,
    tls: Option<TlsSettings>,
}

fn target(
    dst: &str,
    default: &Interpreter,
    tls: Option<&TlsSettings>,
) -> Result<Target<Client>, String> {
    if let Some(named) = Target::named(dst, default) {
        return named;
    }
    let dst = dst.trim();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = if dst.contains("://") {
        dst.to_string()
    } else {
        format!("{scheme}://{dst}")
    };
    let base = BaseUrl::parse(&url)
        .map_err(|e| format!("{e} (write a path such as /$/inet/<host>/<port>, or host:port)"))?;
    let shown = base.to_string();
    let client = match (base.is_https(), tls) {
        (true, Some(tls)) => Client::with_tls(base, tls.clone()),
        (false, None) => Client::new(base),
        (true, None) => {
            return Err(format!(
                "{url:?} is https:// but the interpreter has no tls block (commonName, trustCertsBundle)"
            ));
        }
        (false, Some(_)) => {
            return Err(format!(
                "{url:?} is plain http:// but the interpreter has a tls block; write https:// or host:port"
            ));
        }
    };
    Ok(Target::Fixed { client, shown })
}

/// The client TLS of a `tls:` block: its files read now, and again when
/// they change.
fn tls_settings(config: &ClientTlsConfig) -> Result<TlsSettings, String> {
    // namerd's API is HTTP/1.1.
    let tls = Arc::new(config.build(&[ALPN_HTTP11])?);
    if tokio::runtime::Handle::try_current().is_ok() {
        tls.watch();
    }
    // Without a commonName (only with disableValidation), the name sent is
    // namerd's address.
    let server_name = match &config.common_name {
        Some(name) => Some(
            rustls_pki_types::ServerName::try_from(name.clone())
                .map_err(|_| format!("commonName: `{name}` is not a DNS name or an IP address"))?,
        ),
        None => None,
    };
    Ok(TlsSettings::new(move || tls.rustls_config(), server_name))
}

impl HttpRemote {
    async fn client(&self) -> Result<Client, String> {
        let tls = self.tls.clone();
        self.target
            .client(move |addr: SocketAddr| {
                let (scheme, tls) = match &tls {
                    Some(tls) => ("https", Some(tls.clone())),
                    None => ("http", None),
                };
                let base =
                    BaseUrl::parse(&format!("{scheme}://{addr}")).map_err(|e| e.to_string())?;
                Ok(match tls {
                    Some(tls) => Client::with_tls(base, tls),
                    None => Client::new(base),
                })
            })
            .await
    }
}

impl Remote for HttpRemote {
    const KIND: &'static str = KIND;

    fn namespace(&self) -> &str {
        self.namespace.as_str()
    }

    fn target(&self) -> String {
        self.target.to_string()
    }

    fn watch_bind(
        &self,
        dtab: &Dtab,
        path: &Path,
    ) -> BoxFuture<'_, Result<Updates<NameTree<RemoteLeaf>>, WatchError>> {
        let (dtab, path) = (dtab.clone(), path.clone());
        async move {
            let client = self.client().await.map_err(WatchError::Unreachable)?;
            let watch = client
                .watch_bind(&self.namespace, &path, &dtab)
                .await
                .map_err(|error| match error {
                    ClientError::BadRequest { message, .. } => WatchError::Refused(message),
                    error => watch_error(&error),
                })?;
            Ok(updates(watch, |doc| {
                wire::bound_tree(doc).map_err(|e| format!("unreadable bound tree: {e}"))
            }))
        }
        .boxed()
    }

    fn watch_addr(&self, id: &Path) -> BoxFuture<'_, Result<Updates<Addr>, WatchError>> {
        let id = id.clone();
        async move {
            let client = self.client().await.map_err(WatchError::Unreachable)?;
            let watch = client
                .watch_addr(&self.namespace, &id)
                .await
                .map_err(|error| watch_error(&error))?;
            Ok(updates(watch, |doc| {
                wire::addr(doc).map_err(|e| format!("unreadable address: {e}"))
            }))
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
            client
                .delegate(&self.namespace, path, dtab)
                .await
                .map_err(|e| e.to_string())
        }
        .boxed()
    }

    fn probe(&self) -> BoxFuture<'_, Result<bool, String>> {
        async move {
            let client = self.client().await?;
            match client.get_dtab(&self.namespace).await {
                Ok(_) => Ok(true),
                Err(ClientError::NotFound { .. }) => Ok(false),
                Err(e) => Err(e.to_string()),
            }
        }
        .boxed()
    }
}

/// A watch's documents, read by `read`, as updates: an unreadable document
/// or a failed stream is the last item.
fn updates<T: Send + 'static>(
    watch: namerd_client::Watch<Value>,
    read: fn(&Value) -> Result<T, String>,
) -> Updates<T> {
    let stream = futures_util::stream::unfold(Some(watch), move |watch| async move {
        let mut watch = watch?;
        match watch.next().await {
            Some(Ok(doc)) => match read(&doc) {
                Ok(value) => Some((Ok(value), Some(watch))),
                Err(e) => Some((
                    Err(WatchError::Failed(format!("{}: {e}", watch.describe()))),
                    None,
                )),
            },
            Some(Err(error)) => Some((Err(watch_error(&error)), None)),
            None => None,
        }
    });
    Box::pin(stream)
}

/// Whether namerd itself answered that the name cannot be served (as
/// opposed to being unreachable, slow, restarting or cut off).
fn watch_error(error: &ClientError) -> WatchError {
    let message = error.to_string();
    let namerd_said = match error {
        ClientError::Unreachable { .. }
        | ClientError::Timeout { .. }
        | ClientError::Server { .. } => false,
        // The client reports a connection cut mid-stream with this message;
        // any other message on a watch is namerd's own error line.
        ClientError::WatchFailed { message, .. } => !message.starts_with("the stream broke"),
        // Not namerd's answer, but every attempt fails the same way until
        // certificates change: a name never answered fails with why
        // rather than waiting for its binding timeout.
        ClientError::Tls { .. } => true,
        _ => true,
    };
    if namerd_said {
        WatchError::Failed(message)
    } else {
        WatchError::Unreachable(message)
    }
}
