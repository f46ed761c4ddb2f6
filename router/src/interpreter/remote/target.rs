//! Where namerd is: a fixed address, or a path bound with the router's
//! default interpreter whose endpoints are tried in turn.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use dtab::{Dtab, Path};
use namers::resolve::{Resolved, choose, pick_by_weight};
use namers::{Activity, Addr, Binding, Interpreter, NameInterpreter};
use tokio::time::Instant;

/// How long finding namerd's address (binding `dst`) may take.
const DST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where namerd is, and a client for each of its addresses.
pub(crate) enum Target<C> {
    /// One address, with its client made up front.
    Fixed {
        /// The client.
        client: C,
        /// How `dst` is shown in messages.
        shown: String,
    },
    /// A path bound with the default interpreter; each attempt connects
    /// to the next of its endpoints.
    Name {
        path: Path,
        default: Interpreter,
        binding: OnceLock<Binding>,
        clients: Mutex<HashMap<SocketAddr, C>>,
        turn: AtomicUsize,
    },
}

impl<C> std::fmt::Display for Target<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Fixed { shown, .. } => f.write_str(shown),
            Target::Name { path, .. } => write!(f, "{}", path.show()),
        }
    }
}

impl<C: Clone> Target<C> {
    /// `dst` when it is a path (`/$/inet/<host>/<port>`, `/#/...`); `None`
    /// for anything else, which each kind reads its own way.
    pub(crate) fn named(dst: &str, default: &Interpreter) -> Option<Result<Target<C>, String>> {
        let dst = dst.trim();
        if !dst.starts_with('/') {
            return None;
        }
        Some(match Path::read(dst) {
            Ok(path) => Ok(Target::Name {
                path,
                default: default.clone(),
                binding: OnceLock::new(),
                clients: Mutex::default(),
                turn: AtomicUsize::new(0),
            }),
            Err(e) => Err(format!("{dst:?}: {e}")),
        })
    }

    /// A client for namerd, waiting (a bounded time) for `dst` to bind;
    /// `connect` makes the client of an address seen for the first time.
    pub(crate) async fn client(
        &self,
        connect: impl Fn(SocketAddr) -> Result<C, String>,
    ) -> Result<C, String> {
        let (path, default, binding, clients, turn) = match self {
            Target::Fixed { client, .. } => return Ok(client.clone()),
            Target::Name {
                path,
                default,
                binding,
                clients,
                turn,
            } => (path, default, binding, clients, turn),
        };
        let mut binding = binding
            .get_or_init(|| NameInterpreter::bind(default, &Dtab::empty(), path))
            .clone();
        let deadline = Instant::now() + DST_TIMEOUT;
        loop {
            let mut addr = match &*binding.load() {
                Activity::Pending => None,
                Activity::Failed(e) => return Err(format!("dst {path}: {e}")),
                Activity::Ok(tree) => match choose(tree, &mut pick_by_weight) {
                    Resolved::Leaf(bound) => Some(bound.addr.clone()),
                    Resolved::Empty | Resolved::Neg => {
                        return Err(format!("dst {path}: no address ({})", tree.show()));
                    }
                },
            };
            if let Some(live) = &addr {
                match &*live.load() {
                    Addr::Bound(set) if !set.is_empty() => {
                        let endpoints = set.endpoints();
                        let at = turn.fetch_add(1, Ordering::Relaxed) % endpoints.len();
                        let addr = endpoints[at].addr;
                        let mut clients = clients.lock().unwrap_or_else(PoisonError::into_inner);
                        if let Some(client) = clients.get(&addr) {
                            return Ok(client.clone());
                        }
                        let client = connect(addr)?;
                        clients.insert(addr, client.clone());
                        return Ok(client);
                    }
                    Addr::Bound(_) => return Err(format!("dst {path}: no endpoints")),
                    Addr::Neg => return Err(format!("dst {path}: no such name")),
                    Addr::Failed(e) => return Err(format!("dst {path}: {e}")),
                    Addr::Pending => {}
                }
            }
            let changed = async {
                match addr.as_mut() {
                    Some(live) => tokio::select! {
                        () = live.changed() => {}
                        () = binding.changed() => {}
                    },
                    None => binding.changed().await,
                }
            };
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(format!("dst {path}: still pending after {DST_TIMEOUT:?}"));
            }
        }
    }
}
