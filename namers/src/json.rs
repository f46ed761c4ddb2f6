//! The JSON shapes of Linkerd's and namerd's HTTP APIs: addresses, bound
//! names, bound trees (`/api/1/bind`) and delegation trees (`/delegate`).
//!
//! Field order follows Linkerd's (clients compare bodies as text), so these
//! are built as ordered JSON objects rather than derived.

use dtab::{DelegateTree, Dentry, NameTree, Path};
use serde_json::{Map, Value, json};

use crate::{Addr, Bound, Name};

/// `{"type":"bound","addrs":[{"ip","port","meta"}],"meta":{}}`, `neg`,
/// `pending` or `{"type":"failed","cause":...}`.
pub fn addr(addr: &Addr) -> Value {
    match addr {
        Addr::Pending => json!({"type": "pending"}),
        Addr::Neg => json!({"type": "neg"}),
        Addr::Failed(cause) => json!({"type": "failed", "cause": &**cause}),
        Addr::Bound(set) => {
            let addrs: Vec<Value> = set
                .endpoints()
                .iter()
                .map(|e| json!({"ip": e.addr.ip().to_string(), "port": e.addr.port(), "meta": e.meta}))
                .collect();
            json!({"type": "bound", "addrs": addrs, "meta": set.meta})
        }
    }
}

/// `{"addr":...,"id":"/#/io.l5d.fs/web","path":"/residual"}`, with the
/// address as it is now.
pub fn bound(bound: &Bound) -> Value {
    json!({"addr": addr(&bound.addr.load()), "id": bound.id.show(), "path": bound.residual.show()})
}

/// A bound tree as namerd's `/api/1/bind` writes it (no paths).
pub fn bound_tree(tree: &NameTree<Bound>) -> Value {
    match tree {
        NameTree::Leaf(b) => json!({"type": "leaf", "bound": bound(b)}),
        NameTree::Alt(ts) => {
            json!({"type": "alt", "alt": ts.iter().map(bound_tree).collect::<Vec<_>>()})
        }
        NameTree::Union(ws) => {
            let branches: Vec<Value> = ws
                .iter()
                .map(|w| json!({"weight": w.weight, "tree": bound_tree(&w.tree)}))
                .collect();
            json!({"type": "union", "union": branches})
        }
        NameTree::Neg => json!({"type": "neg"}),
        NameTree::Fail => json!({"type": "fail"}),
        NameTree::Empty => json!({"type": "empty"}),
    }
}

/// A delegation tree as Linkerd's `/delegate` API writes it.
pub fn delegate_tree(tree: &DelegateTree<Name>) -> Value {
    let mut node = Map::new();
    let head =
        |node: &mut Map<String, Value>, kind: &str, path: String, dentry: Option<&Dentry>| {
            node.insert("type".into(), kind.into());
            node.insert("path".into(), path.into());
            if let Some(d) = dentry.filter(|d| !d.is_nop()) {
                node.insert(
                    "dentry".into(),
                    json!({"prefix": d.prefix.show(), "dst": d.dst.show()}),
                );
            }
        };
    match tree {
        DelegateTree::Delegate { path, dentry, tree } => {
            head(&mut node, "delegate", path.show(), Some(dentry));
            node.insert("delegate".into(), delegate_tree(tree));
        }
        DelegateTree::Alt {
            path,
            dentry,
            trees,
        } => {
            head(&mut node, "alt", path.show(), Some(dentry));
            node.insert("alt".into(), trees.iter().map(delegate_tree).collect());
        }
        DelegateTree::Union {
            path,
            dentry,
            trees,
        } => {
            head(&mut node, "union", path.show(), Some(dentry));
            let branches: Vec<Value> = trees
                .iter()
                .map(|w| json!({"weight": w.weight, "tree": delegate_tree(&w.tree)}))
                .collect();
            node.insert("union".into(), branches.into());
        }
        DelegateTree::Leaf {
            path,
            dentry,
            value,
        } => {
            head(&mut node, "leaf", path.show(), Some(dentry));
            match value {
                Name::Bound(b) => node.insert("bound".into(), bound(b)),
                Name::Path(p) => node.insert("name".into(), p.show().into()),
            };
        }
        DelegateTree::Neg { path, dentry } => {
            let shown = if path.is_empty() {
                "~".to_string()
            } else {
                path.show()
            };
            head(&mut node, "neg", shown, Some(dentry));
        }
        DelegateTree::Fail { path, dentry } => {
            let shown = if starts_with_fail(path) {
                path.show()
            } else {
                "!".to_string()
            };
            head(&mut node, "fail", shown, Some(dentry));
        }
        DelegateTree::Empty { path, dentry } => head(&mut node, "empty", path.show(), Some(dentry)),
        DelegateTree::Exception {
            path,
            dentry,
            message,
        } => {
            head(&mut node, "exception", path.show(), Some(dentry));
            node.insert("message".into(), message.as_str().into());
        }
        DelegateTree::Transformation {
            path,
            name,
            value,
            tree,
        } => {
            head(&mut node, "transformation", path.show(), None);
            node.insert("name".into(), name.as_str().into());
            if let Name::Bound(b) = value {
                node.insert("bound".into(), bound(b));
            }
            node.insert("tree".into(), delegate_tree(tree));
        }
    }
    Value::Object(node)
}

/// Whether `path` starts with `/$/fail`.
fn starts_with_fail(path: &Path) -> bool {
    matches!(path.elems(), [dollar, fail, ..] if dollar.as_bytes() == b"$" && fail.as_bytes() == b"fail")
}
