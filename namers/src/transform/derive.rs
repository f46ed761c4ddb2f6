//! Addresses derived live from other addresses: what a transformed name
//! is bound to.

use futures_util::future::select_all;
use tokio::runtime::Handle;

use crate::{Activity, Addr, Endpoint, Live, Lookup, Name, Publisher};

/// A live address computed by `compute` from `source`, recomputed whenever
/// `source` changes, until nobody holds it.
pub fn derive_addr(
    mut source: Live<Addr>,
    compute: impl Fn(&Addr) -> Addr + Send + 'static,
) -> Live<Addr> {
    let publisher = Publisher::new(compute(&source.load()));
    let live = publisher.subscribe();
    let Ok(runtime) = Handle::try_current() else {
        return live;
    };
    runtime.spawn(async move {
        loop {
            tokio::select! {
                () = publisher.closed() => return,
                () = source.changed() => {}
            }
            publisher.publish_if_changed(compute(&source.load()));
        }
    });
    live
}

/// The endpoints a lookup is bound to, as far as they are known.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Gateways {
    /// The lookup or one of its addresses has no answer yet.
    Pending,
    /// The lookup failed.
    Failed(String),
    /// Every endpoint of every bound name of the lookup (none when it is
    /// `~`).
    Known(Vec<Endpoint>),
}

/// The bound addresses of a lookup's current tree.
fn gateway_addrs(lookup: &Lookup) -> Result<Vec<Live<Addr>>, Gateways> {
    match &*lookup.load() {
        Activity::Pending => Err(Gateways::Pending),
        Activity::Failed(e) => Err(Gateways::Failed(e.to_string())),
        Activity::Ok(tree) => Ok(tree
            .eval()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|name| match name {
                Name::Bound(bound) => {
                    // A fresh handle that only wakes for later changes.
                    let mut addr = bound.addr.clone();
                    addr.mark_seen();
                    Some(addr)
                }
                Name::Path(_) => None,
            })
            .collect()),
    }
}

fn gateways(addrs: &Result<Vec<Live<Addr>>, Gateways>) -> Gateways {
    let addrs = match addrs {
        Ok(addrs) => addrs,
        Err(state) => return state.clone(),
    };
    let mut endpoints = Vec::new();
    for addr in addrs {
        match &*addr.load() {
            Addr::Pending => return Gateways::Pending,
            Addr::Bound(set) => endpoints.extend(set.endpoints().iter().cloned()),
            Addr::Neg | Addr::Failed(_) => {}
        }
    }
    Gateways::Known(endpoints)
}

/// A live address computed from `source` and the endpoints `gateways` is
/// bound to, recomputed whenever either changes, until nobody holds it.
pub(super) fn derive_addr_with_gateways(
    mut source: Live<Addr>,
    mut lookup: Lookup,
    compute: impl Fn(&Addr, &Gateways) -> Addr + Send + 'static,
) -> Live<Addr> {
    let mut addrs = gateway_addrs(&lookup);
    let publisher = Publisher::new(compute(&source.load(), &gateways(&addrs)));
    let live = publisher.subscribe();
    let Ok(runtime) = Handle::try_current() else {
        return live;
    };
    runtime.spawn(async move {
        loop {
            let addr_changed = async {
                match &mut addrs {
                    Ok(addrs) if !addrs.is_empty() => {
                        select_all(addrs.iter_mut().map(|a| Box::pin(a.changed()))).await;
                    }
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                () = publisher.closed() => return,
                () = source.changed() => {}
                () = lookup.changed() => {}
                () = addr_changed => {}
            }
            addrs = gateway_addrs(&lookup);
            publisher.publish_if_changed(compute(&source.load(), &gateways(&addrs)));
        }
    });
    live
}
