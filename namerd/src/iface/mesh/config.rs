//! The `io.l5d.mesh` block: Linkerd's keys.

use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

/// `interfaces: [{kind: io.l5d.mesh, ...}]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MeshConfig {
    /// Address to listen on (loopback by default).
    #[serde(default = "super::super::loopback")]
    pub ip: IpAddr,
    /// Port (4321 by default, as Linkerd's).
    #[serde(default = "default_port")]
    pub port: u16,
    /// Serve over TLS (Linkerd's server `tls:` block); ALPN offers `h2`.
    #[serde(default)]
    pub tls: Option<namers::tls::ServerTlsConfig>,
}

impl MeshConfig {
    /// The address to listen on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }
}

fn default_port() -> u16 {
    4321
}
