//! Conversions between the mesh messages and our values: paths, dtabs,
//! name trees, bound trees, delegate trees and replica sets.
//!
//! Converting to a message cannot fail. Converting from one checks what the
//! protos cannot say: labels are not empty, a tree node is set, an address
//! is 4 or 16 bytes, a port fits 16 bits, a weight is a finite number, and
//! trees are at most [`MAX_TREE_DEPTH`] deep. Errors say where, as a path
//! into the message (`dtab.dentries[2].dst.alt[1]: no node set`).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use dtab::WeightedDelegate;
use dtab::{DelegateTree, Dentry, Dtab, Label, NameTree, Path, Prefix, PrefixElem, Weighted};

use super::proto;
use super::proto::bound_delegate_tree as bdt;
use super::proto::bound_name_tree as bnt;
use super::proto::path_name_tree as pnt;
use crate::{Version, VersionedDtab};

/// The deepest tree accepted from a message. Linkerd's binding stops at 100
/// dtab lookups, and prost refuses messages nested more than 100 deep, so a
/// tree this deep only comes from a hostile or broken peer.
pub const MAX_TREE_DEPTH: usize = 100;

/// A message that does not describe one of our values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertError {
    at: String,
    problem: String,
}

impl ConvertError {
    fn new(problem: impl Into<String>) -> ConvertError {
        ConvertError {
            at: String::new(),
            problem: problem.into(),
        }
    }

    /// A bad `root` field.
    pub(crate) fn within_root(problem: String) -> ConvertError {
        ConvertError::new(problem).within("root")
    }

    /// The same error, found inside the field `outer` of a larger message.
    pub fn within(mut self, outer: &str) -> ConvertError {
        self.at = match (self.at.is_empty(), self.at.starts_with('[')) {
            (true, _) => outer.to_string(),
            (false, true) => format!("{outer}{}", self.at),
            (false, false) => format!("{outer}.{}", self.at),
        };
        self
    }

    /// Where in the message the problem is (`dst.alt[1]`); empty at the top.
    pub fn at(&self) -> &str {
        &self.at
    }

    /// What is wrong there.
    pub fn problem(&self) -> &str {
        &self.problem
    }
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.is_empty() {
            f.write_str(&self.problem)
        } else {
            write!(f, "{}: {}", self.at, self.problem)
        }
    }
}

impl std::error::Error for ConvertError {}

type Result<T> = std::result::Result<T, ConvertError>;

/// `Err` with the error's location prefixed by `outer`.
trait Within<T> {
    fn within(self, outer: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Within<T> for Result<T> {
    fn within(self, outer: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| e.within(&outer()))
    }
}

fn depth_check(depth: usize) -> Result<()> {
    if depth > MAX_TREE_DEPTH {
        return Err(ConvertError::new(format!(
            "the tree is nested more than {MAX_TREE_DEPTH} deep"
        )));
    }
    Ok(())
}

fn weight_from(weight: f64) -> Result<f64> {
    if weight.is_finite() && weight >= 0.0 {
        Ok(weight)
    } else {
        Err(ConvertError::new(format!(
            "weight {weight} is not a finite number >= 0"
        )))
    }
}

// ---- paths ----

/// A path as a message.
pub fn path_to_proto(path: &Path) -> proto::Path {
    proto::Path {
        elems: path.elems().iter().map(|l| l.as_bytes().to_vec()).collect(),
    }
}

/// A path from a message; every element must be non-empty (any bytes).
pub fn path_from_proto(path: &proto::Path) -> Result<Path> {
    let labels = path
        .elems
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            Label::new(bytes).ok_or_else(|| ConvertError::new(format!("elems[{i}] is empty")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Path::from_labels(labels))
}

/// An optional path field: absent is the empty path, as proto3 has it.
fn opt_path_from(path: Option<&proto::Path>, field: &str) -> Result<Path> {
    path.map_or(Ok(Path::empty()), |p| {
        path_from_proto(p).within(|| field.into())
    })
}

/// A required path field.
fn req_path_from(path: Option<&proto::Path>, field: &str) -> Result<Path> {
    match path {
        Some(p) => path_from_proto(p).within(|| field.into()),
        None => Err(ConvertError::new("missing").within(field)),
    }
}

// ---- name trees of paths ----

/// A tree of paths (a dentry's destination) as a message.
pub fn name_tree_to_proto(tree: &NameTree<Path>) -> proto::PathNameTree {
    let node = match tree {
        NameTree::Neg => pnt::Node::Neg(pnt::Neg {}),
        NameTree::Fail => pnt::Node::Fail(pnt::Fail {}),
        NameTree::Empty => pnt::Node::Empty(pnt::Empty {}),
        NameTree::Leaf(path) => pnt::Node::Leaf(pnt::Leaf {
            id: Some(path_to_proto(path)),
        }),
        NameTree::Alt(trees) => pnt::Node::Alt(pnt::Alt {
            trees: trees.iter().map(name_tree_to_proto).collect(),
        }),
        NameTree::Union(trees) => pnt::Node::Union(pnt::Union {
            trees: trees
                .iter()
                .map(|w| pnt::union::Weighted {
                    weight: w.weight,
                    tree: Some(name_tree_to_proto(&w.tree)),
                })
                .collect(),
        }),
    };
    proto::PathNameTree { node: Some(node) }
}

/// A tree of paths from a message.
pub fn name_tree_from_proto(tree: &proto::PathNameTree) -> Result<NameTree<Path>> {
    name_tree_from(tree, 0)
}

fn name_tree_from(tree: &proto::PathNameTree, depth: usize) -> Result<NameTree<Path>> {
    depth_check(depth)?;
    Ok(match &tree.node {
        None => return Err(ConvertError::new("no node set")),
        Some(pnt::Node::Neg(_)) => NameTree::Neg,
        Some(pnt::Node::Fail(_)) => NameTree::Fail,
        Some(pnt::Node::Empty(_)) => NameTree::Empty,
        Some(pnt::Node::Leaf(leaf)) => NameTree::Leaf(req_path_from(leaf.id.as_ref(), "leaf.id")?),
        Some(pnt::Node::Alt(alt)) => NameTree::Alt(
            alt.trees
                .iter()
                .enumerate()
                .map(|(i, t)| name_tree_from(t, depth + 1).within(|| format!("alt[{i}]")))
                .collect::<Result<_>>()?,
        ),
        Some(pnt::Node::Union(union)) => NameTree::Union(
            union
                .trees
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    let tree = match &w.tree {
                        Some(t) => name_tree_from(t, depth + 1).within(|| "tree".into()),
                        None => Err(ConvertError::new("tree is missing")),
                    };
                    tree.and_then(|tree| Ok(Weighted::new(weight_from(w.weight)?, tree)))
                        .within(|| format!("union[{i}]"))
                })
                .collect::<Result<_>>()?,
        ),
    })
}

// ---- dtabs ----

/// A dentry as a message.
pub fn dentry_to_proto(dentry: &Dentry) -> proto::dtab::Dentry {
    use proto::dtab::dentry::prefix::{
        Elem,
        elem::{Value, Wildcard},
    };
    let elems = dentry
        .prefix
        .elems()
        .iter()
        .map(|e| Elem {
            value: Some(match e {
                PrefixElem::Label(l) => Value::Label(l.as_bytes().to_vec()),
                PrefixElem::Any => Value::Wildcard(Wildcard {}),
            }),
        })
        .collect();
    proto::dtab::Dentry {
        prefix: Some(proto::dtab::dentry::Prefix { elems }),
        dst: Some(name_tree_to_proto(&dentry.dst)),
    }
}

/// A dentry from a message. A missing prefix is the empty prefix `/`
/// (proto3 peers may leave an empty message out); the destination is
/// required.
pub fn dentry_from_proto(dentry: &proto::dtab::Dentry) -> Result<Dentry> {
    use proto::dtab::dentry::prefix::elem::Value;
    let elems = dentry
        .prefix
        .as_ref()
        .map(|p| p.elems.as_slice())
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, e)| match &e.value {
            Some(Value::Label(bytes)) => Label::new(bytes)
                .map(PrefixElem::Label)
                .ok_or_else(|| ConvertError::new(format!("prefix.elems[{i}] is an empty label"))),
            Some(Value::Wildcard(_)) => Ok(PrefixElem::Any),
            None => Err(ConvertError::new(format!(
                "prefix.elems[{i}] is neither a label nor a wildcard"
            ))),
        })
        .collect::<Result<Vec<_>>>()?;
    let dst = match &dentry.dst {
        Some(dst) => name_tree_from_proto(dst).within(|| "dst".into())?,
        None => return Err(ConvertError::new("dst is missing")),
    };
    Ok(Dentry::new(Prefix::new(elems), dst))
}

/// A dtab as a message.
pub fn dtab_to_proto(dtab: &Dtab) -> proto::Dtab {
    proto::Dtab {
        dentries: dtab.iter().map(dentry_to_proto).collect(),
    }
}

/// A dtab from a message.
pub fn dtab_from_proto(dtab: &proto::Dtab) -> Result<Dtab> {
    let dentries = dtab
        .dentries
        .iter()
        .enumerate()
        .map(|(i, d)| dentry_from_proto(d).within(|| format!("dentries[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    Ok(Dtab::new(dentries))
}

/// A stored dtab and its version as a message.
pub fn versioned_dtab_to_proto(found: &VersionedDtab) -> proto::VersionedDtab {
    proto::VersionedDtab {
        version: Some(proto::versioned_dtab::Version {
            id: found.version.0.clone(),
        }),
        dtab: Some(dtab_to_proto(&found.dtab)),
    }
}

/// A stored dtab and its version from a message (an absent version is an
/// empty one; an absent dtab is the empty dtab).
pub fn versioned_dtab_from_proto(found: &proto::VersionedDtab) -> Result<VersionedDtab> {
    let dtab = match &found.dtab {
        Some(d) => dtab_from_proto(d).within(|| "dtab".into())?,
        None => Dtab::empty(),
    };
    let version = Version(
        found
            .version
            .as_ref()
            .map(|v| v.id.clone())
            .unwrap_or_default(),
    );
    Ok(VersionedDtab { dtab, version })
}

// ---- bound trees ----

/// A bound name as the mesh API carries it: its id and residual path. Its
/// addresses come separately, from the Resolver service, by id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BoundLeaf {
    /// The bound id (e.g. `/#/io.l5d.fs/web`).
    pub id: Path,
    /// What the namer did not consume.
    pub residual: Path,
}

/// A bound tree as a message.
pub fn bound_tree_to_proto(tree: &NameTree<BoundLeaf>) -> proto::BoundNameTree {
    let node = match tree {
        NameTree::Neg => bnt::Node::Neg(bnt::Neg {}),
        NameTree::Fail => bnt::Node::Fail(bnt::Fail {}),
        NameTree::Empty => bnt::Node::Empty(bnt::Empty {}),
        NameTree::Leaf(leaf) => bnt::Node::Leaf(bnt::Leaf {
            id: Some(path_to_proto(&leaf.id)),
            residual: Some(path_to_proto(&leaf.residual)),
        }),
        NameTree::Alt(trees) => bnt::Node::Alt(bnt::Alt {
            trees: trees.iter().map(bound_tree_to_proto).collect(),
        }),
        NameTree::Union(trees) => bnt::Node::Union(bnt::Union {
            trees: trees
                .iter()
                .map(|w| bnt::union::Weighted {
                    weight: w.weight,
                    tree: Some(bound_tree_to_proto(&w.tree)),
                })
                .collect(),
        }),
    };
    proto::BoundNameTree { node: Some(node) }
}

/// A bound tree from a message. A leaf needs its id; an absent residual is
/// the empty path.
pub fn bound_tree_from_proto(tree: &proto::BoundNameTree) -> Result<NameTree<BoundLeaf>> {
    bound_tree_from(tree, 0)
}

fn bound_tree_from(tree: &proto::BoundNameTree, depth: usize) -> Result<NameTree<BoundLeaf>> {
    depth_check(depth)?;
    Ok(match &tree.node {
        None => return Err(ConvertError::new("no node set")),
        Some(bnt::Node::Neg(_)) => NameTree::Neg,
        Some(bnt::Node::Fail(_)) => NameTree::Fail,
        Some(bnt::Node::Empty(_)) => NameTree::Empty,
        Some(bnt::Node::Leaf(leaf)) => NameTree::Leaf(BoundLeaf {
            id: req_path_from(leaf.id.as_ref(), "leaf.id")?,
            residual: opt_path_from(leaf.residual.as_ref(), "leaf.residual")?,
        }),
        Some(bnt::Node::Alt(alt)) => NameTree::Alt(
            alt.trees
                .iter()
                .enumerate()
                .map(|(i, t)| bound_tree_from(t, depth + 1).within(|| format!("alt[{i}]")))
                .collect::<Result<_>>()?,
        ),
        Some(bnt::Node::Union(union)) => NameTree::Union(
            union
                .trees
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    let tree = match &w.tree {
                        Some(t) => bound_tree_from(t, depth + 1).within(|| "tree".into()),
                        None => Err(ConvertError::new("tree is missing")),
                    };
                    tree.and_then(|tree| Ok(Weighted::new(weight_from(w.weight)?, tree)))
                        .within(|| format!("union[{i}]"))
                })
                .collect::<Result<_>>()?,
        ),
    })
}

// ---- delegate trees ----

/// A delegate tree as a message. Every node carries its dentry, the no-op
/// one included, as Linkerd's namerd sends them; a transformation carries
/// none.
pub fn delegate_tree_to_proto(tree: &DelegateTree<BoundLeaf>) -> proto::BoundDelegateTree {
    let leaf = |b: &BoundLeaf| bdt::Leaf {
        id: Some(path_to_proto(&b.id)),
        residual: Some(path_to_proto(&b.residual)),
    };
    let (path, dentry, node) = match tree {
        DelegateTree::Exception {
            path,
            dentry,
            message,
        } => (
            path,
            Some(dentry),
            bdt::Node::Exception(format!("BoundDelegateTree Exception: {message}")),
        ),
        DelegateTree::Empty { path, dentry } => {
            (path, Some(dentry), bdt::Node::Empty(bdt::Empty {}))
        }
        DelegateTree::Fail { path, dentry } => (path, Some(dentry), bdt::Node::Fail(bdt::Fail {})),
        DelegateTree::Neg { path, dentry } => (path, Some(dentry), bdt::Node::Neg(bdt::Neg {})),
        DelegateTree::Delegate { path, dentry, tree } => (
            path,
            Some(dentry),
            bdt::Node::Delegate(Box::new(delegate_tree_to_proto(tree))),
        ),
        DelegateTree::Leaf {
            path,
            dentry,
            value,
        } => (path, Some(dentry), bdt::Node::Leaf(leaf(value))),
        DelegateTree::Alt {
            path,
            dentry,
            trees,
        } => (
            path,
            Some(dentry),
            bdt::Node::Alt(bdt::Alt {
                trees: trees.iter().map(delegate_tree_to_proto).collect(),
            }),
        ),
        DelegateTree::Union {
            path,
            dentry,
            trees,
        } => (
            path,
            Some(dentry),
            bdt::Node::Union(bdt::Union {
                trees: trees
                    .iter()
                    .map(|w| bdt::union::Weighted {
                        weight: w.weight,
                        tree: Some(delegate_tree_to_proto(&w.tree)),
                    })
                    .collect(),
            }),
        ),
        DelegateTree::Transformation {
            path,
            name,
            value,
            tree,
        } => (
            path,
            None,
            bdt::Node::Transformation(Box::new(bdt::Transformation {
                name: name.clone(),
                leaf: Some(leaf(value)),
                tree: Some(Box::new(delegate_tree_to_proto(tree))),
            })),
        ),
    };
    proto::BoundDelegateTree {
        path: Some(path_to_proto(path)),
        dentry: dentry.map(dentry_to_proto),
        node: Some(node),
    }
}

/// A delegate tree from a message. An absent dentry is the no-op one; an
/// exception's text loses the `BoundDelegateTree Exception: ` prefix
/// Linkerd's namerd puts on it.
pub fn delegate_tree_from_proto(
    tree: &proto::BoundDelegateTree,
) -> Result<DelegateTree<BoundLeaf>> {
    delegate_tree_from(tree, 0)
}

fn delegate_leaf_from(leaf: &bdt::Leaf) -> Result<BoundLeaf> {
    Ok(BoundLeaf {
        id: req_path_from(leaf.id.as_ref(), "id")?,
        residual: opt_path_from(leaf.residual.as_ref(), "residual")?,
    })
}

fn delegate_tree_from(
    tree: &proto::BoundDelegateTree,
    depth: usize,
) -> Result<DelegateTree<BoundLeaf>> {
    depth_check(depth)?;
    let path = opt_path_from(tree.path.as_ref(), "path")?;
    let dentry = match &tree.dentry {
        Some(d) => dentry_from_proto(d).within(|| "dentry".into())?,
        None => Dentry::nop(),
    };
    let sub = |t: &proto::BoundDelegateTree, field: &str| {
        delegate_tree_from(t, depth + 1).within(|| field.into())
    };
    Ok(match &tree.node {
        None => return Err(ConvertError::new("no node set")),
        Some(bdt::Node::Neg(_)) => DelegateTree::Neg { path, dentry },
        Some(bdt::Node::Fail(_)) => DelegateTree::Fail { path, dentry },
        Some(bdt::Node::Empty(_)) => DelegateTree::Empty { path, dentry },
        Some(bdt::Node::Exception(message)) => DelegateTree::Exception {
            path,
            dentry,
            message: message
                .strip_prefix("BoundDelegateTree Exception: ")
                .unwrap_or(message)
                .to_string(),
        },
        Some(bdt::Node::Leaf(leaf)) => DelegateTree::Leaf {
            path,
            dentry,
            value: delegate_leaf_from(leaf).within(|| "leaf".into())?,
        },
        Some(bdt::Node::Delegate(inner)) => DelegateTree::Delegate {
            path,
            dentry,
            tree: Box::new(sub(inner, "delegate")?),
        },
        Some(bdt::Node::Alt(alt)) => DelegateTree::Alt {
            path,
            dentry,
            trees: alt
                .trees
                .iter()
                .enumerate()
                .map(|(i, t)| sub(t, &format!("alt[{i}]")))
                .collect::<Result<_>>()?,
        },
        Some(bdt::Node::Union(union)) => DelegateTree::Union {
            path,
            dentry,
            trees: union
                .trees
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    let tree = match &w.tree {
                        Some(t) => sub(t, "tree"),
                        None => Err(ConvertError::new("tree is missing")),
                    };
                    tree.and_then(|tree| {
                        Ok(WeightedDelegate {
                            weight: weight_from(w.weight)?,
                            tree,
                        })
                    })
                    .within(|| format!("union[{i}]"))
                })
                .collect::<Result<_>>()?,
        },
        Some(bdt::Node::Transformation(t)) => {
            let value = match &t.leaf {
                Some(leaf) => delegate_leaf_from(leaf).within(|| "transformation.leaf".into())?,
                None => return Err(ConvertError::new("transformation.leaf is missing")),
            };
            let inner = match &t.tree {
                Some(inner) => sub(inner, "transformation.tree")?,
                None => return Err(ConvertError::new("transformation.tree is missing")),
            };
            DelegateTree::Transformation {
                path,
                name: t.name.clone(),
                value,
                tree: Box::new(inner),
            }
        }
    })
}

// ---- replicas ----

/// One endpoint of a replica set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshEndpoint {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The scheduler's node the endpoint runs on, when known (`meta.nodeName`).
    pub node_name: Option<String>,
    /// The endpoint's metadata, every value as text (Linkerd's namerd
    /// sends `endpoint_addr_weight` among them).
    pub metadata: BTreeMap<String, String>,
}

/// What a bound id resolves to (Linkerd's `Addr`), as the Resolver
/// service carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Replicas {
    /// Not known yet.
    Pending,
    /// The id does not exist.
    Neg,
    /// Resolution failed, with why.
    Failed(String),
    /// The endpoints, and metadata of the set as a whole.
    Bound {
        /// The endpoints.
        endpoints: Vec<MeshEndpoint>,
        /// Metadata of the set, every value as text.
        metadata: BTreeMap<String, String>,
    },
}

/// A replica set as a message.
pub fn replicas_to_proto(replicas: &Replicas) -> proto::Replicas {
    use proto::replicas::{Bound, Failed, Neg, Pending, Result as R};
    let result = match replicas {
        Replicas::Pending => R::Pending(Pending {}),
        Replicas::Neg => R::Neg(Neg {}),
        Replicas::Failed(message) => R::Failed(Failed {
            message: message.clone(),
        }),
        Replicas::Bound {
            endpoints,
            metadata,
        } => R::Bound(Bound {
            endpoints: endpoints.iter().map(endpoint_to_proto).collect(),
            metadata: hash_map(metadata),
        }),
    };
    proto::Replicas {
        result: Some(result),
    }
}

/// A replica set from a message. A message with no result is `Neg`, as
/// Linkerd's router reads it.
pub fn replicas_from_proto(replicas: &proto::Replicas) -> Result<Replicas> {
    use proto::replicas::Result as R;
    Ok(match &replicas.result {
        None | Some(R::Neg(_)) => Replicas::Neg,
        Some(R::Pending(_)) => Replicas::Pending,
        Some(R::Failed(f)) => Replicas::Failed(f.message.clone()),
        Some(R::Bound(bound)) => Replicas::Bound {
            endpoints: bound
                .endpoints
                .iter()
                .enumerate()
                .map(|(i, e)| endpoint_from_proto(e).within(|| format!("bound.endpoints[{i}]")))
                .collect::<Result<_>>()?,
            metadata: bound
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        },
    })
}

fn hash_map(map: &BTreeMap<String, String>) -> HashMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// An endpoint as a message.
pub fn endpoint_to_proto(endpoint: &MeshEndpoint) -> proto::Endpoint {
    use proto::endpoint::AddressFamily;
    let (family, address) = match endpoint.addr.ip() {
        IpAddr::V4(ip) => (AddressFamily::Inet4, ip.octets().to_vec()),
        IpAddr::V6(ip) => (AddressFamily::Inet6, ip.octets().to_vec()),
    };
    proto::Endpoint {
        inet_af: family as i32,
        address,
        port: i32::from(endpoint.addr.port()),
        meta: Some(proto::endpoint::Meta {
            node_name: endpoint.node_name.clone().unwrap_or_default(),
        }),
        metadata: hash_map(&endpoint.metadata),
    }
}

/// An endpoint from a message. The address's length decides its family
/// (Linkerd's router does the same); a family that disagrees is an error.
pub fn endpoint_from_proto(endpoint: &proto::Endpoint) -> Result<MeshEndpoint> {
    use proto::endpoint::AddressFamily;
    let ip = match <[u8; 4]>::try_from(endpoint.address.as_slice()) {
        Ok(v4) => IpAddr::V4(Ipv4Addr::from(v4)),
        Err(_) => match <[u8; 16]>::try_from(endpoint.address.as_slice()) {
            Ok(v6) => IpAddr::V6(Ipv6Addr::from(v6)),
            Err(_) => {
                return Err(ConvertError::new(format!(
                    "address is {} bytes; an IPv4 address is 4 and an IPv6 one 16",
                    endpoint.address.len()
                )));
            }
        },
    };
    let family = AddressFamily::try_from(endpoint.inet_af).map_err(|_| {
        ConvertError::new(format!(
            "inet_af {} is not INET4 (0) or INET6 (1)",
            endpoint.inet_af
        ))
    })?;
    if (family == AddressFamily::Inet6) != ip.is_ipv6() {
        return Err(ConvertError::new(format!(
            "inet_af is {} but the address is {} bytes",
            family.as_str_name(),
            endpoint.address.len()
        )));
    }
    let port = u16::try_from(endpoint.port)
        .map_err(|_| ConvertError::new(format!("port {} is not from 0 to 65535", endpoint.port)))?;
    Ok(MeshEndpoint {
        addr: SocketAddr::new(ip, port),
        node_name: endpoint
            .meta
            .as_ref()
            .map(|m| m.node_name.clone())
            .filter(|n| !n.is_empty()),
        metadata: endpoint
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    })
}

#[cfg(test)]
mod tests;
