//! What the server stage checks and changes in a request before it is
//! named: `clearContext`, the `Via` hop limit and a client's claim of a
//! certificate; and who sent the request.

use std::sync::Arc;

use http::header::{self, HeaderName};
use namers::tls::PeerIdentity;

use super::forwarded::Hop;
use crate::endpoint::limit::SpareTimer;
use crate::errors::RouterError;
use crate::service::dtab_headers::clear_context;

/// Settings of one listening server of a router.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// The address the server listens on.
    pub address: std::net::SocketAddr,
    /// Strip `l5d-*` request headers.
    pub clear_context: bool,
    /// Most `Via` hops accepted.
    pub max_call_depth: usize,
    /// `rt/<router>/server/<ip>/<port>`.
    pub stats: std::sync::Arc<crate::server::stats::ServerStats>,
}

/// `x-forwarded-client-cert`: the identity of the certificate the client
/// showed this router's server (`forwardClientCert`).
pub const X_FORWARDED_CLIENT_CERT: HeaderName = HeaderName::from_static("x-forwarded-client-cert");

/// Who sent a request: the client's address and, over mutual TLS, the
/// identity in its certificate.
#[derive(Debug, Clone, Default)]
pub struct Downstream {
    /// The client's address.
    pub remote: Option<std::net::SocketAddr>,
    /// The identity of its verified certificate.
    pub identity: Option<Arc<PeerIdentity>>,
    /// The connection's `Forwarded` labels, on a server with
    /// `addForwardedHeader`.
    pub forwarded: Option<Arc<Hop>>,
    /// The attempt timer its requests reuse.
    pub(crate) timer: SpareTimer,
}

impl Downstream {
    /// A client at `remote` without a certificate.
    pub fn plain(remote: std::net::SocketAddr) -> Downstream {
        Downstream {
            remote: Some(remote),
            identity: None,
            forwarded: None,
            timer: SpareTimer::default(),
        }
    }

    /// The same client, its requests labelled by `forwarded`.
    pub fn with_forwarded(self, forwarded: Option<Arc<Hop>>) -> Downstream {
        Downstream { forwarded, ..self }
    }
}

impl ServerSettings {
    /// Applies `clearContext`, drops a client's own
    /// `x-forwarded-client-cert` (only this router vouches for a
    /// certificate) and refuses a request that has passed more proxies than
    /// `maxCallDepth` (a routing loop).
    pub(crate) fn admit(&self, parts: &mut http::request::Parts) -> Result<(), RouterError> {
        if self.clear_context {
            clear_context(&mut parts.headers);
        }
        parts.headers.remove(X_FORWARDED_CLIENT_CERT);
        let hops = via_hops(&parts.headers);
        if hops >= self.max_call_depth {
            return Err(RouterError::MaxCallDepth {
                max: self.max_call_depth,
                seen: hops,
            });
        }
        Ok(())
    }
}

/// How many proxies the request has passed, from its `Via` headers.
fn via_hops(headers: &http::HeaderMap) -> usize {
    headers
        .get_all(header::VIA)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(',').filter(|hop| !hop.trim().is_empty()).count())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn via_hops_count_every_entry() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(via_hops(&headers), 0);
        headers.append(header::VIA, HeaderValue::from_static("1.1 a, 1.1 b"));
        headers.append(header::VIA, HeaderValue::from_static("1.1 c"));
        assert_eq!(via_hops(&headers), 3);
    }
}
