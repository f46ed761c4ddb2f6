//! What the server stage checks and changes in a request before it is
//! named: `clearContext` and the `Via` hop limit.

use http::header;

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

impl ServerSettings {
    /// Applies `clearContext` and refuses a request that has passed more
    /// proxies than `maxCallDepth` (a routing loop).
    pub(crate) fn admit(&self, parts: &mut http::request::Parts) -> Result<(), RouterError> {
        if self.clear_context {
            clear_context(&mut parts.headers);
        }
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
