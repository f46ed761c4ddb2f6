//! The server stage's config: one entry of a router's `servers:`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

use super::session::SessionLimits;

fn loopback() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

/// One entry of `servers:`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerConfig {
    /// Port (4140 for http, 4142 for h2, 4114 for thrift).
    #[serde(default)]
    pub port: Option<u16>,
    /// Address (loopback by default).
    #[serde(default = "loopback")]
    pub ip: IpAddr,
    /// Strip every `l5d-*` request header (an untrusted edge).
    #[serde(default)]
    pub clear_context: bool,
    /// Most `Via` hops a request may have passed (default 10).
    #[serde(default)]
    pub max_call_depth: Option<usize>,
    /// Requests served at once before answering 503.
    #[serde(default)]
    pub max_concurrent_requests: Option<usize>,
    /// How long a client connection may be idle or live.
    #[serde(default)]
    pub server_session: Option<ServerSessionConfig>,
    /// Streams an HTTP/2 client may open at once on one connection
    /// (`h2` routers; default 200).
    #[serde(default)]
    pub max_concurrent_streams_per_connection: Option<NonZeroU32>,
    /// TLS on this server's connections.
    #[serde(default)]
    pub tls: Option<namers::tls::ServerTlsConfig>,
    /// An RFC 7239 `Forwarded` header on every request (Linkerd's
    /// `addForwardedHeader`; none by default).
    #[serde(default)]
    pub add_forwarded_header: Option<super::forwarded::AddForwardedConfig>,
    /// The name of every connection (`tcp` routers; linkerd-tcp's key).
    #[serde(default)]
    pub dst_name: Option<String>,
    /// Names each connection `<dstPrefix>/<host>` from the server name
    /// (SNI) of the client's TLS hello, which passes through untouched
    /// (`tcp` routers; our own key).
    #[serde(default)]
    pub dst_from_sni: Option<bool>,
    /// Time limit for opening the upstream connection, in ms, over the
    /// client's `connectTimeoutMs` (`tcp` routers; linkerd-tcp's key).
    #[serde(default)]
    pub connect_timeout_ms: Option<NonZeroU64>,
    /// Connections spliced at once; more are closed at accept (`tcp`
    /// routers; linkerd-tcp's key).
    #[serde(default)]
    pub max_concurrency: Option<std::num::NonZeroUsize>,
    /// Framed transport for incoming requests, else buffered (`thrift`
    /// routers; Linkerd's key, default true).
    #[serde(default)]
    pub thrift_framed: Option<bool>,
}

/// `serverSession:`, Linkerd's limits on a client connection's time.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerSessionConfig {
    /// Milliseconds a connection may go without a request in flight
    /// (default 60,000).
    #[serde(default)]
    pub idle_time_ms: Option<NonZeroU64>,
    /// Milliseconds a connection may live; then it is closed once its
    /// requests in flight are done (default: no limit).
    #[serde(default)]
    pub life_time_ms: Option<NonZeroU64>,
    /// Requests a connection may carry; the last one's answer closes it
    /// (`Connection: close`, or a `GOAWAY` for HTTP/2). Our own key
    /// (default: no limit).
    #[serde(default)]
    pub max_requests: Option<NonZeroU64>,
}

impl ServerConfig {
    /// The limits on this server's connections' time.
    pub fn session(&self) -> SessionLimits {
        let default = SessionLimits::default();
        let session = self.server_session.as_ref();
        let ms = |ms: NonZeroU64| Duration::from_millis(ms.get());
        SessionLimits {
            idle: session
                .and_then(|s| s.idle_time_ms)
                .map_or(default.idle, ms),
            life: session.and_then(|s| s.life_time_ms).map(ms),
            head: default.head,
            max_requests: session.and_then(|s| s.max_requests).map(NonZeroU64::get),
        }
    }

    /// Streams an HTTP/2 client may open at once on one connection.
    pub fn max_concurrent_streams(&self) -> u32 {
        self.max_concurrent_streams_per_connection.map_or(
            crate::server::DEFAULT_MAX_CONCURRENT_STREAMS,
            NonZeroU32::get,
        )
    }
}

impl ServerConfig {
    /// This server's TLS, built (its files read and checked), when it has
    /// some. ALPN offers the router's protocol.
    pub fn tls(
        &self,
        protocol: crate::identify::Protocol,
    ) -> Result<Option<namers::tls::ServerTls>, String> {
        let Some(tls) = self.tls.as_ref().filter(|tls| tls.is_enabled()) else {
            return Ok(None);
        };
        let alpn: &[&[u8]] = match protocol {
            crate::identify::Protocol::Http => &[namers::tls::ALPN_HTTP11],
            crate::identify::Protocol::H2 => &[namers::tls::ALPN_H2],
        };
        tls.build(alpn).map(Some).map_err(|e| format!("tls: {e}"))
    }

    /// This server's `addForwardedHeader`, checked for a router of
    /// `protocol` labelled `router`, when it has one.
    pub fn forwarded(
        &self,
        protocol: crate::identify::Protocol,
        router: &str,
    ) -> Result<Option<super::forwarded::AddForwarded>, String> {
        let tls = self.tls.as_ref().is_some_and(|tls| tls.is_enabled());
        self.add_forwarded_header
            .as_ref()
            .map(|config| super::forwarded::AddForwarded::new(config, protocol, router, tls))
            .transpose()
    }

    /// Where this server listens; the default port depends on the protocol.
    pub fn addr(&self, protocol: crate::identify::Protocol) -> SocketAddr {
        let default = match protocol {
            crate::identify::Protocol::Http => 4140,
            crate::identify::Protocol::H2 => 4142,
        };
        SocketAddr::new(self.ip, self.port.unwrap_or(default))
    }
}
