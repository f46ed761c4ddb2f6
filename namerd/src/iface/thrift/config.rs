//! The `io.l5d.thriftNameInterpreter` block: Linkerd's keys.

use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

/// `interfaces: [{kind: io.l5d.thriftNameInterpreter, ...}]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ThriftConfig {
    /// Address to listen on (loopback by default).
    #[serde(default = "super::super::loopback")]
    pub ip: IpAddr,
    /// Port (4100 by default, as Linkerd's).
    #[serde(default = "default_port")]
    pub port: u16,
    /// Linkerd's hint to clients of how long to wait before retrying a
    /// failed request (Linkerd ignored it since 1.0; accepted for its
    /// configs).
    #[serde(default = "default_retry_base")]
    pub retry_base_secs: u64,
    /// The jitter added to `retryBaseSecs` (accepted, as above).
    #[serde(default = "default_retry_jitter")]
    pub retry_jitter_secs: u64,
    /// How many bindings and addresses are kept, active and inactive.
    #[serde(default)]
    pub cache: ThriftCacheConfig,
    /// Serve over TLS (Linkerd's server `tls:` block).
    #[serde(default)]
    pub tls: Option<namers::tls::ServerTlsConfig>,
}

/// The `cache:` block: Linkerd's capacities of its observation caches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ThriftCacheConfig {
    /// Bindings watched by at least one client.
    #[serde(default = "default_active")]
    pub binding_cache_active: usize,
    /// Bindings no client watches any more, kept for a returning one.
    #[serde(default = "default_inactive")]
    pub binding_cache_inactive: usize,
    /// How long an inactive binding is kept, in seconds.
    #[serde(
        default = "default_inactive_ttl",
        rename = "bindingCacheInactiveTTLSecs"
    )]
    pub binding_cache_inactive_ttl_secs: u64,
    /// Addresses watched by at least one client.
    #[serde(default = "default_active")]
    pub addr_cache_active: usize,
    /// Addresses no client watches any more.
    #[serde(default = "default_inactive")]
    pub addr_cache_inactive: usize,
    /// How long an inactive address is kept, in seconds.
    #[serde(default = "default_inactive_ttl", rename = "addrCacheInactiveTTLSecs")]
    pub addr_cache_inactive_ttl_secs: u64,
}

impl Default for ThriftCacheConfig {
    fn default() -> ThriftCacheConfig {
        ThriftCacheConfig {
            binding_cache_active: default_active(),
            binding_cache_inactive: default_inactive(),
            binding_cache_inactive_ttl_secs: default_inactive_ttl(),
            addr_cache_active: default_active(),
            addr_cache_inactive: default_inactive(),
            addr_cache_inactive_ttl_secs: default_inactive_ttl(),
        }
    }
}

impl ThriftConfig {
    /// The address to listen on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }
}

fn default_port() -> u16 {
    4100
}

fn default_retry_base() -> u64 {
    600
}

fn default_retry_jitter() -> u64 {
    60
}

fn default_active() -> usize {
    1000
}

fn default_inactive() -> usize {
    100
}

fn default_inactive_ttl() -> u64 {
    600
}
