//! Reading namerd's JSON: bound trees (`/api/1/bind`) and addresses
//! (`/api/1/addr`), the shapes `namers::json` writes.

use std::net::{IpAddr, SocketAddr};

use dtab::{NameTree, Path, Weighted};
use namers::{Addr, AddrSet, Endpoint, Metadata, WEIGHT_KEY};

use crate::interpreter::remote::RemoteLeaf;
use serde_json::{Map, Value};

/// `{"type":"bound","addrs":[{"ip","port","meta"}],"meta":{}}`,
/// `{"type":"neg"}`, `{"type":"pending"}` or
/// `{"type":"failed","cause":"..."}`.
pub(super) fn addr(value: &Value) -> Result<Addr, String> {
    match kind(value)? {
        "bound" => {
            let addrs = value
                .get("addrs")
                .and_then(Value::as_array)
                .ok_or("a bound address without an `addrs` array")?;
            let endpoints = addrs.iter().map(endpoint).collect::<Result<Vec<_>, _>>()?;
            let mut set = AddrSet::new(endpoints);
            set.meta = metadata(value.get("meta"))?;
            Ok(Addr::Bound(set))
        }
        "neg" => Ok(Addr::Neg),
        "pending" => Ok(Addr::Pending),
        "failed" => {
            let cause = value
                .get("cause")
                .and_then(Value::as_str)
                .unwrap_or("namerd reports the address as failed");
            Ok(Addr::Failed(cause.into()))
        }
        other => Err(format!("unknown address type {other:?}")),
    }
}

fn endpoint(value: &Value) -> Result<Endpoint, String> {
    let ip: IpAddr = value
        .get("ip")
        .and_then(Value::as_str)
        .ok_or("an endpoint without an `ip` string")?
        .parse()
        .map_err(|e| format!("endpoint ip: {e}"))?;
    let port = value
        .get("port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .ok_or("an endpoint without a `port` from 0 to 65535")?;
    let meta = metadata(value.get("meta"))?;
    // Linkerd carries an endpoint's weight in its metadata.
    let weight = meta
        .get(WEIGHT_KEY)
        .and_then(Value::as_f64)
        .filter(|w| w.is_finite() && *w >= 0.0)
        .unwrap_or(1.0);
    Ok(Endpoint {
        addr: SocketAddr::new(ip, port),
        weight,
        meta,
    })
}

fn metadata(value: Option<&Value>) -> Result<Metadata, String> {
    match value {
        None | Some(Value::Null) => Ok(Metadata::new()),
        Some(Value::Object(map)) => Ok(map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        Some(other) => Err(format!("`meta` is not an object: {other}")),
    }
}

/// A bound tree, with each leaf's address when namerd sent it inline and
/// it could be read.
pub(super) fn bound_tree(value: &Value) -> Result<NameTree<RemoteLeaf>, String> {
    match kind(value)? {
        "leaf" => {
            let bound = value
                .get("bound")
                .and_then(Value::as_object)
                .ok_or("a leaf without a `bound` object")?;
            let id = path(bound, "id")?;
            let residual = match bound.get("path") {
                None | Some(Value::Null) => Path::empty(),
                Some(_) => path(bound, "path")?,
            };
            let addr = bound.get("addr").and_then(|a| addr(a).ok());
            Ok(NameTree::Leaf(RemoteLeaf { id, residual, addr }))
        }
        "alt" => {
            let branches = array(value, "alt")?;
            let trees = branches.iter().map(bound_tree).collect::<Result<_, _>>()?;
            Ok(NameTree::Alt(trees))
        }
        "union" => {
            let branches = array(value, "union")?;
            let mut weighted = Vec::with_capacity(branches.len());
            for branch in branches {
                let w = branch
                    .get("weight")
                    .and_then(Value::as_f64)
                    .filter(|w| w.is_finite() && *w >= 0.0)
                    .ok_or("a union branch without a non-negative `weight`")?;
                let subtree = branch
                    .get("tree")
                    .ok_or("a union branch without a `tree`")?;
                weighted.push(Weighted::new(w, bound_tree(subtree)?));
            }
            Ok(NameTree::Union(weighted))
        }
        "neg" => Ok(NameTree::Neg),
        "fail" => Ok(NameTree::Fail),
        "empty" => Ok(NameTree::Empty),
        other => Err(format!("unknown tree node type {other:?}")),
    }
}

fn kind(value: &Value) -> Result<&str, String> {
    value
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| "a value without a `type` string".to_string())
}

fn array<'v>(value: &'v Value, key: &str) -> Result<&'v Vec<Value>, String> {
    value
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("a node without a `{key}` array"))
}

fn path(object: &Map<String, Value>, key: &str) -> Result<Path, String> {
    let text = object
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("a bound name without a `{key}` string"))?;
    if text.is_empty() || text == "/" {
        return Ok(Path::empty());
    }
    Path::read(text).map_err(|e| format!("`{key}` {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use namers::{Bound, Live};
    use serde_json::json;

    #[test]
    fn addresses_round_trip_namers_json() {
        let mut heavy = Endpoint::new("10.0.0.2:80".parse().unwrap()).with_weight(3.0);
        heavy.meta.insert("nodeName".into(), "n1".into());
        let mut set = AddrSet::new(vec![Endpoint::new("10.0.0.1:80".parse().unwrap()), heavy]);
        set.meta.insert("authority".into(), "web".into());
        for original in [
            Addr::Bound(set),
            Addr::Neg,
            Addr::Pending,
            Addr::Failed("boom".into()),
            Addr::bound(Vec::new()),
        ] {
            let parsed = addr(&namers::json::addr(&original)).unwrap();
            assert_eq!(parsed, original);
        }
        let parsed = addr(&json!({"type":"bound","addrs":[
            {"ip":"::1","port":4140,"meta":{"endpoint_addr_weight":0.5}}],"meta":{}}))
        .unwrap();
        let Addr::Bound(set) = parsed else {
            panic!("not bound")
        };
        assert_eq!(set.endpoints()[0].weight, 0.5);
        assert_eq!(set.endpoints()[0].addr, "[::1]:4140".parse().unwrap());
    }

    #[test]
    fn malformed_addresses_are_errors() {
        for bad in [
            json!({}),
            json!({"type":"bound"}),
            json!({"type":"bound","addrs":[{"ip":"nope","port":1}]}),
            json!({"type":"bound","addrs":[{"ip":"1.2.3.4","port":70000}]}),
            json!({"type":"bound","addrs":[],"meta":3}),
            json!({"type":"weird"}),
        ] {
            assert!(addr(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn trees_round_trip_namers_json_with_weights_and_shared_addrs() {
        let leaf = |id: &str, res: &str| {
            NameTree::Leaf(Bound::new(
                Path::read(id).unwrap(),
                Path::read(res).unwrap(),
                Live::constant(Addr::bound(vec![Endpoint::new(
                    "127.0.0.1:1".parse().unwrap(),
                )])),
            ))
        };
        let original = NameTree::Alt(vec![
            NameTree::Union(vec![
                Weighted::new(3.0, leaf("/#/io.l5d.fs/a", "/x")),
                Weighted::new(
                    1.0,
                    NameTree::Alt(vec![NameTree::Neg, leaf("/$/inet/h/1", "/")]),
                ),
            ]),
            NameTree::Fail,
            NameTree::Empty,
        ]);
        let doc = namers::json::bound_tree(&original);
        let parsed = bound_tree(&doc).unwrap();
        let ids = parsed.map(&mut |leaf: &RemoteLeaf| leaf.id.clone());
        assert_eq!(ids.show(), original.show());
        let NameTree::Alt(alts) = &parsed else {
            panic!("not alt")
        };
        let NameTree::Union(branches) = &alts[0] else {
            panic!("not union")
        };
        assert_eq!(branches[0].weight, 3.0);
        let NameTree::Leaf(a) = &branches[0].tree else {
            panic!("not leaf")
        };
        assert_eq!(a.residual.show(), "/x");
        assert!(matches!(a.addr, Some(Addr::Bound(_))));
        let NameTree::Alt(inner) = &branches[1].tree else {
            panic!("not alt")
        };
        let NameTree::Leaf(b) = &inner[1] else {
            panic!("not leaf")
        };
        assert!(b.residual.is_empty());
    }

    #[test]
    fn malformed_trees_are_errors() {
        for bad in [
            json!({"type":"leaf"}),
            json!({"type":"leaf","bound":{"id":"not a path"}}),
            json!({"type":"alt"}),
            json!({"type":"union","union":[{"tree":{"type":"neg"}}]}),
            json!({"type":"union","union":[{"weight":-1,"tree":{"type":"neg"}}]}),
            json!({"type":"exception"}),
            json!([]),
        ] {
            assert!(bound_tree(&bad).is_err(), "{bad}");
        }
    }
}
