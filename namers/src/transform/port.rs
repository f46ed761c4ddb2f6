//! `io.l5d.port`: sends every endpoint's traffic to another port of the
//! same host.

use dtab::Path;
use serde_json::{Map, Value};

use super::{SetPrefix, Transformer, derive_addr, percent, prefixed};
use crate::{Addr, AddrSet, Bound};

/// The `io.l5d.port` config.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PortConfig {
    port: u16,
}

/// Replaces the port of every endpoint.
pub struct PortTransformer {
    port: u16,
    prefix: Path,
}

impl PortTransformer {
    /// Sends every endpoint's traffic to `port`.
    pub fn new(port: u16) -> PortTransformer {
        let prefix = Path::from_strs(["%", "io.l5d.port", &port.to_string()]).unwrap_or_default();
        PortTransformer { port, prefix }
    }
}

impl SetPrefix for PortTransformer {
    fn set_prefix(&mut self, prefix: &Path) {
        self.prefix = percent(prefix);
    }
}

impl Transformer for PortTransformer {
    fn transform(&self, bound: &Bound) -> Bound {
        let port = self.port;
        let addr = derive_addr(bound.addr.clone(), move |addr| match addr {
            Addr::Bound(set) => {
                let endpoints = set
                    .endpoints()
                    .iter()
                    .map(|e| {
                        let mut e = e.clone();
                        e.addr.set_port(port);
                        e
                    })
                    .collect();
                let mut moved = AddrSet::new(endpoints);
                moved.meta = set.meta.clone();
                Addr::Bound(moved)
            }
            other => other.clone(),
        });
        Bound {
            id: prefixed(&self.prefix, bound),
            residual: bound.residual.clone(),
            addr,
            weight: bound.weight,
        }
    }
}

pub(super) fn build(params: &Map<String, Value>) -> Result<PortTransformer, String> {
    let config: PortConfig = crate::config::kind_params(params)?;
    if config.port == 0 {
        return Err("port: must be 1 to 65535".into());
    }
    Ok(PortTransformer::new(config.port))
}
