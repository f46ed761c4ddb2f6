//! Finagle's `Namer.global`: the `/$/...` system paths.

use std::collections::HashMap;
use std::sync::Arc;

use dtab::{NameTree, Path};

use super::inet::{InetResolver, parse_java_int, port_from_int};
use crate::{Activity, Addr, Bound, Live, Lookup, Name, Namer, NamingError};

/// The system namers under `/$/`: `inet`, `fixedinet`, `fail`, `nil`, and
/// named namers (Linkerd's `io.buoyant.*`, registered by name).
#[derive(Clone)]
pub struct SystemNamers {
    inet: Arc<InetResolver>,
    classes: HashMap<String, Arc<dyn Namer>>,
}

impl SystemNamers {
    /// `inet`, `fixedinet`, `fail` and `nil` only.
    pub fn new(inet: Arc<InetResolver>) -> SystemNamers {
        SystemNamers {
            inet,
            classes: HashMap::new(),
        }
    }

    /// The built-in set plus Linkerd's `io.buoyant.*` namers.
    pub fn with_linkerd_namers(inet: Arc<InetResolver>) -> SystemNamers {
        let mut namers = SystemNamers::new(inet.clone());
        for (name, namer) in super::buoyant::linkerd_system_namers(inet) {
            namers.register(name, namer);
        }
        namers
    }

    /// Makes `/$/<name>/...` paths go to `namer`.
    pub fn register(&mut self, name: &str, namer: Arc<dyn Namer>) {
        self.classes.insert(name.to_string(), namer);
    }

    /// The resolver behind `/$/inet`.
    pub fn inet(&self) -> &Arc<InetResolver> {
        &self.inet
    }

    /// Looks up a path. Paths outside `/$/` are `~`; an unknown
    /// `/$/<name>` fails with [`NamingError::UnknownSystemNamer`].
    pub fn lookup(&self, path: &Path) -> Lookup {
        let elems = path.elems();
        if elems.first().map(|l| l.as_bytes()) != Some(b"$") {
            return constant(NameTree::Neg);
        }
        let Some(name) = elems.get(1) else {
            return constant(NameTree::Neg);
        };
        let name = String::from_utf8_lossy(name.as_bytes());
        let rest = &elems[2..];
        if (name == "inet" || name == "fixedinet")
            && let Some(bound) = self.inet_bound(path, &name, rest)
        {
            return constant(NameTree::Leaf(Name::Bound(bound)));
        }
        match &*name {
            "fail" => constant(NameTree::Fail),
            "nil" => constant(NameTree::Empty),
            _ => match self.classes.get(&*name) {
                Some(namer) => namer.lookup(&Path::from_labels(rest.to_vec())),
                None => Live::constant(Activity::Failed(NamingError::UnknownSystemNamer {
                    name: name.into_owned(),
                })),
            },
        }
    }

    /// `/$/inet/<host>/<port>/...` or `/$/inet/<port>/...` (host `""`); the
    /// id is the consumed part and the rest is the residual.
    fn inet_bound(&self, path: &Path, scheme: &str, rest: &[dtab::Label]) -> Option<Bound> {
        let text = |i: usize| rest.get(i).map(|l| String::from_utf8_lossy(l.as_bytes()));
        let (host, port, consumed) = match (text(0), text(1).and_then(|p| parse_java_int(&p))) {
            (Some(host), Some(port)) => (host.into_owned(), port, 2),
            (Some(port), None) => (String::new(), parse_java_int(&port)?, 1),
            (None, _) => return None,
        };
        let id = path.take(2 + consumed);
        let residual = Path::from_labels(rest[consumed..].to_vec());
        let addr = match port_from_int(port) {
            Ok(port) if scheme == "fixedinet" => self.inet.resolve_fixed(&host, port),
            Ok(port) => self.inet.resolve(&host, port),
            Err(why) => Live::constant(Addr::Failed(why.into())),
        };
        Some(Bound::new(id, residual, addr))
    }
}

fn constant(tree: NameTree<Name>) -> Lookup {
    Live::constant(Activity::Ok(tree))
}
