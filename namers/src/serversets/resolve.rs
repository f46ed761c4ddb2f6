//! From a group's members to a live address: the namer picks the hosts and
//! ports it wants from the group's state, and host names among them are
//! resolved through DNS (IP addresses need none).
//!
//! One address is kept per (group, endpoint name), shared by every lookup
//! that uses it, and forgotten when its last handle goes.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::future::select_all;

use super::member::HostPort;
use super::watch::{GroupState, Groups};
use crate::system::inet::{InetResolver, fixed_host_ip};
use crate::{Addr, Endpoint, Live, LiveCache, Metadata, Publisher};

/// What a namer wants of a group's current state.
#[derive(Debug)]
pub(crate) enum Wanted {
    /// Nothing known yet.
    Pending,
    /// Nothing to bind to (no such group, or no usable member).
    Neg,
    /// The group could not be read, or its data is unusable.
    Failed(Arc<str>),
    /// These hosts and ports, each with the metadata of its endpoints.
    Endpoints(Vec<(HostPort, Metadata)>),
}

/// Picks what a namer wants from a group's state: given the group's znode
/// path (for messages), its state, and the endpoint name looked up.
pub(crate) type Select<M> = fn(&str, &GroupState<M>, Option<&str>) -> Wanted;

type Key = (String, Option<String>);

/// The live addresses of a namer's groups.
pub(crate) struct Addrs<M> {
    groups: Arc<Groups<M>>,
    inet: Arc<InetResolver>,
    select: Select<M>,
    addrs: LiveCache<Key, Addr>,
}

impl<M> Addrs<M>
where
    M: Clone + PartialEq + Send + Sync + 'static,
{
    pub(crate) fn new(
        groups: Arc<Groups<M>>,
        inet: Arc<InetResolver>,
        select: Select<M>,
    ) -> Addrs<M> {
        Addrs {
            groups,
            inet,
            select,
            addrs: LiveCache::default(),
        }
    }

    pub(crate) fn groups(&self) -> &Arc<Groups<M>> {
        &self.groups
    }

    /// The live address of `endpoint` (or the default one) of the group at
    /// znode `group`. Needs a tokio runtime.
    pub(crate) fn addr(self: &Arc<Self>, group: &str, endpoint: Option<&str>) -> Live<Addr> {
        let key = (group.to_string(), endpoint.map(str::to_string));
        let run = {
            let (addrs, key) = (self.clone(), key.clone());
            move |publisher| keep_resolving(addrs.clone(), key.clone(), publisher)
        };
        self.addrs.subscribe(key, || Addr::Pending, run)
    }
}

/// Keeps one address current until nobody holds it.
async fn keep_resolving<M>(addrs: Arc<Addrs<M>>, key: Key, publisher: Arc<Publisher<Addr>>)
where
    M: Clone + PartialEq + Send + Sync + 'static,
{
    let mut state = addrs.groups.watch(&key.0);
    let run = async {
        let mut hosts = Hosts::default();
        loop {
            state.mark_seen();
            let wanted = (addrs.select)(&key.0, &state.load(), key.1.as_deref());
            let addr = match wanted {
                Wanted::Endpoints(list) => hosts.resolve(&addrs.inet, list),
                other => {
                    hosts.names.clear();
                    match other {
                        Wanted::Pending => Addr::Pending,
                        Wanted::Failed(why) => Addr::Failed(why),
                        _ => Addr::Neg,
                    }
                }
            };
            publisher.publish_if_changed(addr);
            if hosts.names.is_empty() {
                state.changed().await;
            } else {
                let names = hosts.names.values_mut().map(|l| Box::pin(l.changed()));
                tokio::select! {
                    () = state.changed() => {}
                    _ = select_all(names) => {}
                }
            }
        }
    };
    tokio::select! {
        () = run => {}
        () = publisher.closed() => {}
    }
}

/// The DNS lookups of the host names an address needs (also used by the
/// `io.l5d.k8s.external` namer for load balancers named by host).
#[derive(Default)]
pub(crate) struct Hosts {
    names: HashMap<(String, u16), Live<Addr>>,
}

impl Hosts {
    /// Forgets every lookup.
    pub(crate) fn clear(&mut self) {
        self.names.clear();
    }

    /// Waits until one of the lookups changes; for ever, with none.
    pub(crate) async fn changed(&mut self) {
        if self.names.is_empty() {
            return std::future::pending().await;
        }
        let names = self.names.values_mut().map(|l| Box::pin(l.changed()));
        select_all(names).await;
    }

    /// The address of `list` as things stand: every endpoint found so far.
    /// It is pending while nothing is found and some names are still being
    /// looked up, and failed when no host could be found at all.
    pub(crate) fn resolve(&mut self, inet: &InetResolver, list: Vec<(HostPort, Metadata)>) -> Addr {
        let mut endpoints = Vec::new();
        let mut pending = false;
        let mut failures = Vec::new();
        let mut needed = HashSet::new();
        for (hp, meta) in list {
            if let Some(ip) = fixed_host_ip(&hp.host) {
                endpoints.push(endpoint(SocketAddr::new(ip, hp.port), meta));
                continue;
            }
            let key = (hp.host, hp.port);
            let live = self
                .names
                .entry(key.clone())
                .or_insert_with(|| inet.resolve(&key.0, key.1));
            live.mark_seen();
            match &*live.load() {
                Addr::Bound(set) => endpoints.extend(
                    set.endpoints()
                        .iter()
                        .map(|e| endpoint(e.addr, meta.clone())),
                ),
                Addr::Pending => pending = true,
                Addr::Neg => failures.push(format!("{}: no such host", key.0)),
                Addr::Failed(why) => failures.push(format!("{}: {why}", key.0)),
            }
            needed.insert(key);
        }
        self.names.retain(|key, _| needed.contains(key));
        if !endpoints.is_empty() {
            Addr::bound(endpoints)
        } else if pending {
            Addr::Pending
        } else {
            Addr::Failed(format!("cannot resolve any member: {}", failures.join("; ")).into())
        }
    }
}

fn endpoint(addr: SocketAddr, meta: Metadata) -> Endpoint {
    let mut endpoint = Endpoint::new(addr);
    endpoint.meta = meta;
    endpoint
}
