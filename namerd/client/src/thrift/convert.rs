//! Between the wire types of `namer.thrift` and ours: paths, bound trees
//! (numbered as Linkerd numbers them), delegation trees and socket
//! addresses.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use dtab::{DelegateTree as DtabDelegateTree, Label, NameTree, Path, Weighted};

use super::types::{
    AddrMeta, BoundName, BoundNode, BoundTree, DelegateContents, DelegateNode, DelegateTree, TPath,
    TransportAddress, WeightedNodeId,
};

/// A wire value that has no meaning as one of our types.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConvertError(pub String);

/// A path's labels as bytes.
pub fn path_to_thrift(path: &Path) -> TPath {
    path.elems().iter().map(|l| l.as_bytes().to_vec()).collect()
}

/// A path from its labels; an empty label has no meaning.
pub fn path_from_thrift(path: &TPath) -> Result<Path, ConvertError> {
    path.iter()
        .enumerate()
        .map(|(i, bytes)| {
            Label::new(bytes).ok_or_else(|| ConvertError(format!("label {i} of a path is empty")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Path::from_labels)
}

/// A bound name with its id and residual.
pub fn bound_name(id: &Path, residual: &Path) -> BoundName {
    BoundName {
        id: path_to_thrift(id),
        residual: path_to_thrift(residual),
    }
}

/// A bound tree on the wire, `leaf` giving each leaf's bound name. Nodes
/// are numbered as Linkerd's namerd numbers them: the root has none, and
/// the branches of an alternative or a union take the next id in order,
/// their own branches the ids after it.
pub fn bound_tree<T>(tree: &NameTree<T>, leaf: &impl Fn(&T) -> BoundName) -> BoundTree {
    let mut nodes = BTreeMap::new();
    let mut next = 0;
    let root = bound_node(tree, leaf, &mut next, &mut nodes);
    BoundTree { root, nodes }
}

fn bound_node<T>(
    tree: &NameTree<T>,
    leaf: &impl Fn(&T) -> BoundName,
    next: &mut i32,
    nodes: &mut BTreeMap<i32, BoundNode>,
) -> BoundNode {
    match tree {
        NameTree::Neg => BoundNode::Neg,
        NameTree::Empty => BoundNode::Empty,
        NameTree::Fail => BoundNode::Fail,
        NameTree::Leaf(value) => BoundNode::Leaf(leaf(value)),
        NameTree::Alt(trees) => {
            let mut ids = Vec::with_capacity(trees.len());
            for tree in trees {
                let id = *next;
                *next += 1;
                let node = bound_node(tree, leaf, next, nodes);
                nodes.insert(id, node);
                ids.push(id);
            }
            BoundNode::Alt(ids)
        }
        NameTree::Union(branches) => {
            let mut ids = Vec::with_capacity(branches.len());
            for branch in branches {
                let id = *next;
                *next += 1;
                let node = bound_node(&branch.tree, leaf, next, nodes);
                nodes.insert(id, node);
                ids.push(WeightedNodeId {
                    weight: branch.weight,
                    id,
                });
            }
            BoundNode::Weighted(ids)
        }
    }
}

impl BoundTree {
    /// The tree as a name tree of bound names. A node id that is missing,
    /// or reached twice (a cycle or a shared node), is an error.
    pub fn to_name_tree(&self) -> Result<NameTree<BoundName>, ConvertError> {
        let mut seen = vec![];
        self.node_tree(&self.root, 0, &mut seen)
    }

    fn node_tree(
        &self,
        node: &BoundNode,
        depth: usize,
        seen: &mut Vec<i32>,
    ) -> Result<NameTree<BoundName>, ConvertError> {
        if depth > super::protocol::MAX_DEPTH {
            return Err(ConvertError(format!(
                "a bound tree nested deeper than {}",
                super::protocol::MAX_DEPTH
            )));
        }
        let child = |id: i32, seen: &mut Vec<i32>| {
            if seen.contains(&id) {
                return Err(ConvertError(format!("node {id} is reached twice")));
            }
            seen.push(id);
            let node = self
                .nodes
                .get(&id)
                .ok_or_else(|| ConvertError(format!("node {id} is not in the tree")))?;
            self.node_tree(node, depth + 1, seen)
        };
        Ok(match node {
            BoundNode::Neg => NameTree::Neg,
            BoundNode::Empty => NameTree::Empty,
            BoundNode::Fail => NameTree::Fail,
            BoundNode::Leaf(name) => NameTree::Leaf(name.clone()),
            BoundNode::Alt(ids) => NameTree::Alt(
                ids.iter()
                    .map(|id| child(*id, seen))
                    .collect::<Result<_, _>>()?,
            ),
            BoundNode::Weighted(items) => NameTree::Union(
                items
                    .iter()
                    .map(|w| Ok(Weighted::new(w.weight, child(w.id, seen)?)))
                    .collect::<Result<_, ConvertError>>()?,
            ),
        })
    }
}

impl BoundName {
    /// The bound id as a path.
    pub fn id_path(&self) -> Result<Path, ConvertError> {
        path_from_thrift(&self.id)
    }

    /// The residual as a path.
    pub fn residual_path(&self) -> Result<Path, ConvertError> {
        path_from_thrift(&self.residual)
    }
}

/// How the leaves of a delegation tree go on the wire.
pub struct DelegateLeaves<'a, T> {
    /// A leaf's contents: a bound leaf or a path leaf.
    pub contents: &'a dyn Fn(&T) -> DelegateContents,
    /// The value a transformer was given, as a bound name (Linkerd sends
    /// the id alone).
    pub transformed: &'a dyn Fn(&T) -> BoundName,
}

/// A delegation tree on the wire, numbered as Linkerd's namerd numbers
/// it (a rewritten node's child tree is numbered first, then the child).
pub fn delegate_tree<T>(
    tree: &DtabDelegateTree<T>,
    leaves: &DelegateLeaves<'_, T>,
) -> DelegateTree {
    let mut nodes = BTreeMap::new();
    let mut next = 0;
    let root = delegate_node(tree, leaves, &mut next, &mut nodes);
    DelegateTree { root, nodes }
}

fn delegate_node<T>(
    tree: &DtabDelegateTree<T>,
    leaves: &DelegateLeaves<'_, T>,
    next: &mut i32,
    nodes: &mut BTreeMap<i32, DelegateNode>,
) -> DelegateNode {
    let node = |path: &Path, dentry: String, contents| DelegateNode {
        path: path_to_thrift(path),
        dentry,
        contents,
    };
    match tree {
        DtabDelegateTree::Exception {
            path,
            dentry,
            message,
        } => node(
            path,
            dentry.show(),
            DelegateContents::Error(message.clone()),
        ),
        DtabDelegateTree::Empty { path, dentry } => {
            node(path, dentry.show(), DelegateContents::Empty)
        }
        DtabDelegateTree::Fail { path, dentry } => {
            node(path, dentry.show(), DelegateContents::Fail)
        }
        DtabDelegateTree::Neg { path, dentry } => node(path, dentry.show(), DelegateContents::Neg),
        DtabDelegateTree::Leaf {
            path,
            dentry,
            value,
        } => node(path, dentry.show(), (leaves.contents)(value)),
        DtabDelegateTree::Delegate { path, dentry, tree } => {
            let child = delegate_node(tree, leaves, next, nodes);
            let id = *next;
            *next += 1;
            nodes.insert(id, child);
            node(path, dentry.show(), DelegateContents::Delegate(id))
        }
        DtabDelegateTree::Transformation {
            path,
            name,
            value,
            tree,
        } => {
            let child = delegate_node(tree, leaves, next, nodes);
            let id = *next;
            *next += 1;
            nodes.insert(id, child);
            node(
                path,
                name.clone(),
                DelegateContents::Transformation(super::types::Transformation {
                    value: (leaves.transformed)(value),
                    tree: id,
                }),
            )
        }
        DtabDelegateTree::Alt {
            path,
            dentry,
            trees,
        } => {
            let mut ids = Vec::with_capacity(trees.len());
            for tree in trees {
                let id = *next;
                *next += 1;
                let child = delegate_node(tree, leaves, next, nodes);
                nodes.insert(id, child);
                ids.push(id);
            }
            node(path, dentry.show(), DelegateContents::Alt(ids))
        }
        DtabDelegateTree::Union {
            path,
            dentry,
            trees,
        } => {
            let mut ids = Vec::with_capacity(trees.len());
            for branch in trees {
                let id = *next;
                *next += 1;
                let child = delegate_node(&branch.tree, leaves, next, nodes);
                nodes.insert(id, child);
                ids.push(WeightedNodeId {
                    weight: branch.weight,
                    id,
                });
            }
            node(path, dentry.show(), DelegateContents::Weighted(ids))
        }
    }
}

impl DelegateTree {
    /// The path a delegation request asks about: its root's path leaf.
    pub fn requested_path(&self) -> Result<Path, ConvertError> {
        match &self.root.contents {
            DelegateContents::PathLeaf(path) => path_from_thrift(path),
            _ => Err(ConvertError(
                "a delegation request's tree must be a path leaf".into(),
            )),
        }
    }

    /// The tree a delegation request sends for `path`.
    pub fn request(path: &Path) -> DelegateTree {
        DelegateTree {
            root: DelegateNode {
                path: path_to_thrift(path),
                dentry: String::new(),
                contents: DelegateContents::PathLeaf(path_to_thrift(path)),
            },
            nodes: BTreeMap::new(),
        }
    }
}

impl TransportAddress {
    /// An endpoint at `addr`.
    pub fn from_socket_addr(addr: SocketAddr, meta: Option<AddrMeta>) -> TransportAddress {
        let ip = match addr.ip() {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        TransportAddress {
            ip,
            port: i32::from(addr.port()),
            meta,
        }
    }

    /// Where to connect: the IP must be 4 or 16 bytes, the port in
    /// 0..=65535.
    pub fn socket_addr(&self) -> Result<SocketAddr, ConvertError> {
        let ip = if let Ok(v4) = <[u8; 4]>::try_from(self.ip.as_slice()) {
            IpAddr::V4(Ipv4Addr::from(v4))
        } else if let Ok(v6) = <[u8; 16]>::try_from(self.ip.as_slice()) {
            IpAddr::V6(Ipv6Addr::from(v6))
        } else {
            return Err(ConvertError(format!(
                "an IP address of {} bytes (4 or 16 expected)",
                self.ip.len()
            )));
        };
        let port = u16::try_from(self.port)
            .map_err(|_| ConvertError(format!("port {} is out of range", self.port)))?;
        Ok(SocketAddr::new(ip, port))
    }
}
