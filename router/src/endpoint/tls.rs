//! TLS to a client's endpoints (`client.tls`): the settings, the name the
//! endpoints' certificates must carry, and the connection pools that speak
//! TLS for that client. Plain endpoints keep the router's own pools.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use namers::tls::{ClientTls, Stream};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

use super::h1_pool::H1Pool;
use super::h2_pool::H2Pool;

/// The name an endpoint's certificate is checked against.
#[derive(Debug, Clone)]
pub(crate) enum PeerName {
    /// `commonName` (with the prefix's captures filled in); also sent as
    /// SNI.
    Named(ServerName<'static>),
    /// No `commonName` (`disableValidation`): the endpoint's address.
    EndpointAddress,
    /// The `commonName` did not make a name: every connection fails with
    /// this.
    Invalid(String),
}

/// Opens TLS on new connections to a client's endpoints.
#[derive(Clone)]
pub(crate) struct Securer {
    tls: Arc<ClientTls>,
    name: PeerName,
}

impl Securer {
    /// The TLS settings.
    pub(crate) fn settings(&self) -> &ClientTls {
        &self.tls
    }

    /// Starts reloading the settings' files when they change.
    pub(crate) fn watch(&self) {
        self.tls.watch();
    }

    /// Handshakes over `tcp` to `endpoint`, within `timeout`.
    pub(crate) async fn secure(
        &self,
        endpoint: SocketAddr,
        tcp: TcpStream,
        timeout: Duration,
    ) -> Result<Stream, String> {
        let name = match &self.name {
            PeerName::Named(name) => name.clone(),
            PeerName::EndpointAddress => ServerName::IpAddress(endpoint.ip().into()),
            PeerName::Invalid(why) => return Err(why.clone()),
        };
        let tls = tokio::time::timeout(timeout, self.tls.connect(name, tcp))
            .await
            .map_err(|_| format!("TLS handshake timed out after {timeout:?}"))??;
        Ok(Stream::Client(Box::new(tls)))
    }
}

/// A client's TLS and, once it has sent a request, its pools.
pub(crate) struct UpstreamTls {
    securer: Securer,
    pools: OnceLock<Arc<TlsPools>>,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("name", &self.securer.name)
            .finish_non_exhaustive()
    }
}

/// Connections that speak TLS to one client's endpoints.
pub(crate) struct TlsPools {
    pub(crate) h1: Arc<H1Pool>,
    pub(crate) h2: Option<H2Pool>,
}

impl UpstreamTls {
    /// TLS with `tls` to endpoints whose certificates carry `common_name`
    /// (`None`: not checked against a name).
    pub(crate) fn new(tls: Arc<ClientTls>, common_name: Option<&str>) -> UpstreamTls {
        let name = match common_name {
            None => PeerName::EndpointAddress,
            Some(name) => match ServerName::try_from(name.to_string()) {
                Ok(name) => PeerName::Named(name),
                Err(_) => PeerName::Invalid(format!(
                    "client.tls.commonName: `{name}` is not a DNS name or an IP address"
                )),
            },
        };
        UpstreamTls {
            securer: Securer { tls, name },
            pools: OnceLock::new(),
        }
    }

    /// What opens TLS on a new connection.
    pub(crate) fn securer(&self) -> &Securer {
        &self.securer
    }

    /// The pools, made by `make` on first use.
    pub(crate) fn pools(&self, make: impl FnOnce() -> Arc<TlsPools>) -> &Arc<TlsPools> {
        self.pools.get_or_init(make)
    }
}
