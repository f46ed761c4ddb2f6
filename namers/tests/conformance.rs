//! Runs the interpreter ops of the dtab conformance vectors (binding and
//! delegation; `dtab/tests/vectors/`) against this crate, plus any vector
//! files named in `DTAB_VECTORS`. The mock namers the vectors name
//! (`linkerd_test`, `linkerd_error`, `ip_port`, `system_namers`,
//! `lookup_table`) are built here as test scaffolding.

#![allow(clippy::unwrap_used)]

#[path = "../../dtab/tests/support/vectors.rs"]
mod vectors;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dtab::{DelegateTree, NameTree, Path};
use namers::system::SystemNamers;
use namers::system::inet::{InetResolver, fixed_host_ip};
use namers::{
    Activity, Addr, Bound, Endpoint, Interpreter, Live, Lookup, Name, NameInterpreter, Namer,
    NamerList, NamingError, UnknownSystemNamer, bind, json,
};
use serde_json::{Value, json};
use vectors::{Case, Outcome};

const INTERPRETER_OPS: &[&str] = &[
    "Namer.global.lookup",
    "Namer.bind",
    "DefaultInterpreter.bind",
    "ConfiguredNamersInterpreter.bind",
    "ConfiguredNamersInterpreter.delegate",
    "ConfiguredDtabNamer.bind",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_vectors() {
    let upstream = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../dtab/tests/vectors/finagle-upstream.jsonl"
    );
    let cases = vectors::load_cases(upstream);
    // Some cases resolve `localhost`, which needs the runtime; run each case
    // to completion first, then report synchronously.
    let mut outcomes = Vec::new();
    for case in &cases {
        outcomes.push(run(case).await);
    }
    let outcomes = std::sync::Mutex::new(outcomes.into_iter());
    let ran = vectors::run_all(&cases, |_| outcomes.lock().unwrap().next().unwrap());
    assert!(ran >= 90, "only {ran} interpreter cases ran");
}

async fn run(case: &Case) -> Result<Outcome, String> {
    let op = case.op();
    if !INTERPRETER_OPS.contains(&op) {
        return Ok(Outcome::NotOwned);
    }
    let input = case.str_field("input")?;
    let expected = &case.json["expected"];
    let system = system_namers(case)?;
    let actual = match op {
        "Namer.global.lookup" => {
            let lookup = system.lookup(&vectors::path(input)?);
            settle(&lookup).await;
            let state = (*lookup.load()).clone();
            activity_json(state.map(|t| t), expected).await
        }
        "Namer.bind" => {
            let tree = NameTree::read(input).map_err(|e| e.to_string())?;
            let table = lookup_table(case)?;
            // Finagle's test namer: table paths first, anything else globally.
            let mut lookup = |p: &Path| match table.get(&p.show()) {
                Some(state) => state.clone(),
                None => (*system.lookup(p).load()).clone(),
            };
            let named = tree.map(&mut |p: &Path| Name::Path(p.clone()));
            let state = bind::bind_tree(&named, &bind::BindLimits::default(), &mut lookup);
            activity_json(state.map(bound_to_name), expected).await
        }
        "DefaultInterpreter.bind"
        | "ConfiguredNamersInterpreter.bind"
        | "ConfiguredDtabNamer.bind" => {
            let mut interpreter = Interpreter::new(configured_namers(case)?, system);
            let mut dtab = vectors::dtab(case.str_field("dtab")?)?;
            if op != "ConfiguredNamersInterpreter.bind" {
                interpreter = interpreter.with_unknown_system_namer(UnknownSystemNamer::AsIs);
            }
            if let Some(max) = case.json["namerMaxDepth"].as_u64() {
                interpreter = interpreter.with_max_depth(max as usize);
            }
            if op == "ConfiguredDtabNamer.bind" {
                dtab = vectors::dtab(case.str_field("configured_dtab")?)?.concat(&dtab);
            }
            let binding = interpreter.bind(&dtab, &vectors::path(input)?);
            let state = (*binding.load()).clone();
            activity_json(state.map(bound_to_name), expected).await
        }
        "ConfiguredNamersInterpreter.delegate" => {
            let interpreter = Interpreter::new(configured_namers(case)?, system);
            let dtab = vectors::dtab(case.str_field("dtab")?)?;
            let path = vectors::path(input)?;
            let result =
                tokio::time::timeout(Duration::from_secs(5), interpreter.delegate(&dtab, &path))
                    .await
                    .map_err(|_| "delegation did not finish".to_string())?;
            return delegate_outcome(result, expected, &case.json["linkerd_json"]).await;
        }
        _ => unreachable!(),
    };
    Ok(vectors::check(actual?, expected.clone()))
}

fn bound_to_name(tree: NameTree<Bound>) -> NameTree<Name> {
    tree.map(&mut |b: &Bound| Name::Bound(b.clone()))
}

/// Waits briefly for a lookup that is still pending (DNS for `localhost`).
async fn settle(lookup: &Lookup) {
    let mut lookup = lookup.clone();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while lookup.load().is_pending() {
            lookup.changed().await;
        }
    })
    .await;
}

/// The vectors' JSON for an activity state. A bound leaf's address is
/// checked against the expected description and, when it agrees, written
/// as that description.
async fn activity_json(state: Activity<NameTree<Name>>, expected: &Value) -> Result<Value, String> {
    Ok(match state {
        Activity::Pending => json!({"state": "pending"}),
        // The JVM exception class is not required; the state is.
        Activity::Failed(e) => match expected["state"].as_str() {
            Some("failed") => expected.clone(),
            _ => json!({"state": "failed", "error": e.to_string()}),
        },
        Activity::Ok(tree) => {
            let descriptions = expected_addrs(&expected["tree"]);
            let tree_json = tree_json(&tree, &descriptions).await;
            let eval = match tree.eval() {
                None => Value::Null,
                Some(leaves) => {
                    let mut out = Vec::new();
                    for leaf in leaves {
                        out.push(match leaf {
                            // Unbound paths appear in `eval` as plain strings.
                            Name::Path(p) => Value::String(p.show()),
                            Name::Bound(_) => tree_json_leaf(leaf, &descriptions).await,
                        });
                    }
                    out.sort_by_key(|l| l["id"].as_str().or(l.as_str()).unwrap_or("").to_string());
                    Value::Array(out)
                }
            };
            json!({"state": "ok", "tree": tree_json, "show": tree.show(), "eval": eval})
        }
    })
}

/// Expected address descriptions by bound id.
fn expected_addrs(tree: &Value) -> HashMap<String, Value> {
    let mut out = HashMap::new();
    fn walk(v: &Value, out: &mut HashMap<String, Value>) {
        if let (Some(id), Some(addr)) = (v["id"].as_str(), v.get("addr")) {
            out.insert(id.to_string(), addr.clone());
        }
        for t in v["trees"].as_array().into_iter().flatten() {
            walk(t.get("tree").unwrap_or(t), out);
        }
    }
    walk(tree, &mut out);
    out
}

fn tree_json<'a>(
    tree: &'a NameTree<Name>,
    descriptions: &'a HashMap<String, Value>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Value> + 'a>> {
    Box::pin(async move {
        match tree {
            NameTree::Leaf(leaf) => tree_json_leaf(leaf, descriptions).await,
            NameTree::Neg => json!({"type": "neg"}),
            NameTree::Fail => json!({"type": "fail"}),
            NameTree::Empty => json!({"type": "empty"}),
            NameTree::Alt(ts) => {
                let mut trees = Vec::new();
                for t in ts {
                    trees.push(tree_json(t, descriptions).await);
                }
                json!({"type": "alt", "trees": trees})
            }
            NameTree::Union(ws) => {
                let mut trees = Vec::new();
                for w in ws {
                    trees.push(
                        json!({"weight": w.weight, "tree": tree_json(&w.tree, descriptions).await}),
                    );
                }
                json!({"type": "union", "trees": trees})
            }
        }
    })
}

async fn tree_json_leaf(leaf: &Name, descriptions: &HashMap<String, Value>) -> Value {
    match leaf {
        Name::Path(p) => json!({"type": "leaf", "path": p.show()}),
        Name::Bound(b) => {
            let id = b.id.show();
            let mut node = json!({"type": "leaf", "id": id, "residual": b.residual.show()});
            if let Some(w) = b.weight {
                node["weight"] = json!(w);
            }
            node["addr"] = describe_addr(b, descriptions.get(&id)).await;
            node
        }
    }
}

/// The expected description when the live address agrees with it, else a
/// description of what the address really is.
async fn describe_addr(bound: &Bound, expected: Option<&Value>) -> Value {
    let mut live = bound.addr.clone();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while matches!(*live.load(), Addr::Pending)
            && expected.is_some_and(|e| e["kind"] != "pending")
        {
            live.changed().await;
        }
    })
    .await;
    let actual = live.load();
    let Some(expected) = expected else {
        return json!({"unexpected": json::addr(&actual)});
    };
    let agrees = match expected["kind"].as_str() {
        Some("pending") => matches!(*actual, Addr::Pending),
        Some("inet" | "fixedinet") => {
            let host = expected["host"].as_str().unwrap_or_default();
            let port = expected["port"].as_u64().unwrap_or_default();
            match &*actual {
                Addr::Bound(set) => set.endpoints().iter().any(|e| {
                    u64::from(e.addr.port()) == port
                        // IP literals, "" and localhost need no DNS.
                        && fixed_host_ip(host).is_none_or(|ip| e.addr.ip() == ip)
                }),
                _ => false,
            }
        }
        _ => false,
    };
    if agrees {
        expected.clone()
    } else {
        json!({"actual": json::addr(&actual), "wanted": expected})
    }
}

async fn delegate_outcome(
    result: Result<DelegateTree<Name>, NamingError>,
    expected: &Value,
    linkerd_json: &Value,
) -> Result<Outcome, String> {
    let tree = match (result, expected["state"].as_str()) {
        (Err(_), Some("failed")) => return Ok(Outcome::Pass),
        (Err(e), _) => return Ok(Outcome::Fail(format!("delegation failed: {e}"))),
        (Ok(tree), _) => tree,
    };
    let want = vectors::delegate_tree(&expected["tree"])?;
    // Bound leaves are compared by id and residual; the vector's address
    // description is checked separately through the admin JSON below.
    let actual = tree.map(&mut |name: &Name| match name {
        Name::Path(p) => json!({"path": p.show()}),
        Name::Bound(b) => json!({"bound": {"id": b.id.show(), "residual": b.residual.show()}}),
    });
    let want = want.map(&mut |v: &Value| match v.get("bound") {
        Some(b) => json!({"bound": {"id": b["id"], "residual": b["residual"]}}),
        None => v.clone(),
    });
    if actual != want {
        return Ok(Outcome::Fail(format!(
            "expected {want:?}\n      actual   {actual:?}"
        )));
    }
    if let Some(body) = linkerd_json.as_str() {
        let shown =
            serde_json::to_string(&json::delegate_tree(&tree)).map_err(|e| e.to_string())?;
        if shown != body {
            return Ok(Outcome::Fail(format!(
                "admin JSON\n      expected {body}\n      actual   {shown}"
            )));
        }
    }
    Ok(Outcome::Pass)
}

fn lookup_table(case: &Case) -> Result<HashMap<String, Activity<NameTree<Name>>>, String> {
    let mut table = HashMap::new();
    for (path, state) in case.json["lookup_table"]
        .as_object()
        .ok_or("no lookup_table")?
    {
        let activity = match state["state"].as_str() {
            Some("pending") => Activity::Pending,
            Some("failed") => Activity::Failed(NamingError::namer(
                state["error"].as_str().unwrap_or("error"),
            )),
            Some("ok") => {
                let tree = NameTree::read(state["tree"].as_str().ok_or("no tree")?)
                    .map_err(|e| e.to_string())?;
                Activity::Ok(tree.map(&mut |p: &Path| Name::Path(p.clone())))
            }
            other => return Err(format!("bad state {other:?}")),
        };
        table.insert(path.clone(), activity);
    }
    Ok(table)
}

fn system_namers(case: &Case) -> Result<SystemNamers, String> {
    let inet = Arc::new(InetResolver::system().map_err(|e| format!("{e:?}"))?);
    let mut system = if case.json["classpath"] == "linkerd" {
        SystemNamers::with_linkerd_namers(inet)
    } else {
        SystemNamers::new(inet)
    };
    if let Some(mocks) = case.json["system_namers"].as_object() {
        for (name, spec) in mocks {
            let namer: Arc<dyn Namer> = match spec["kind"].as_str() {
                Some("const") => Arc::new(ConstNamer(parse_named(
                    spec["tree"].as_str().ok_or("no tree")?,
                )?)),
                Some("table") => {
                    let mut table = HashMap::new();
                    for (k, v) in spec["table"].as_object().ok_or("no table")? {
                        table.insert(
                            k.clone(),
                            parse_named(v.as_str().ok_or("bad table entry")?)?,
                        );
                    }
                    Arc::new(TableNamer(table))
                }
                other => return Err(format!("unknown mock system namer {other:?}")),
            };
            system.register(name, namer);
        }
    }
    Ok(system)
}

fn parse_named(tree: &str) -> Result<NameTree<Name>, String> {
    let tree = NameTree::read(tree).map_err(|e| e.to_string())?;
    Ok(tree.map(&mut |p: &Path| Name::Path(p.clone())))
}

fn configured_namers(case: &Case) -> Result<NamerList, String> {
    let mut namers = NamerList::new();
    for spec in case.json["namers"].as_array().into_iter().flatten() {
        let prefix = vectors::path(spec["prefix"].as_str().ok_or("namer without prefix")?)?;
        let namer: Arc<dyn Namer> = match spec["kind"].as_str() {
            Some("linkerd_test") => Arc::new(TestNamer {
                prefix: prefix.clone(),
                buh: spec["buh"] == true,
            }),
            Some("linkerd_error") => Arc::new(ErrorNamer(prefix.clone())),
            Some("ip_port") => Arc::new(IpPortNamer(prefix.clone())),
            other => return Err(format!("unknown mock namer {other:?}")),
        };
        namers.push((prefix, namer));
    }
    Ok(namers)
}

fn ok(tree: NameTree<Name>) -> Lookup {
    Live::constant(Activity::Ok(tree))
}

/// `{"kind":"const"}`: the same tree for any path.
struct ConstNamer(NameTree<Name>);
impl Namer for ConstNamer {
    fn lookup(&self, _: &Path) -> Lookup {
        ok(self.0.clone())
    }
}

/// `{"kind":"table"}`: a tree per path, `~` for others.
struct TableNamer(HashMap<String, NameTree<Name>>);
impl Namer for TableNamer {
    fn lookup(&self, path: &Path) -> Lookup {
        ok(self.0.get(&path.show()).cloned().unwrap_or(NameTree::Neg))
    }
}

/// Linkerd's test namer: binds everything to its prefix, except paths
/// starting with `buh` unless it is told to accept them.
struct TestNamer {
    prefix: Path,
    buh: bool,
}
impl Namer for TestNamer {
    fn lookup(&self, path: &Path) -> Lookup {
        if !self.buh && path.elems().first().is_some_and(|l| l.as_bytes() == b"buh") {
            return ok(NameTree::Neg);
        }
        let bound = Bound::new(
            self.prefix.clone(),
            path.clone(),
            Live::constant(Addr::Pending),
        );
        ok(NameTree::Leaf(Name::Bound(bound)))
    }
}

/// Fails every lookup.
struct ErrorNamer(Path);
impl Namer for ErrorNamer {
    fn lookup(&self, path: &Path) -> Lookup {
        let message = format!("error naming {}", self.0.concat(path).show());
        Live::constant(Activity::Failed(NamingError::namer(message)))
    }
}

/// Reads `/ip/port/rest`.
struct IpPortNamer(Path);
impl Namer for IpPortNamer {
    fn lookup(&self, path: &Path) -> Lookup {
        let [ip, port, ..] = path.elems() else {
            return ok(NameTree::Neg);
        };
        let addr = match (
            fixed_host_ip(&String::from_utf8_lossy(ip.as_bytes())),
            String::from_utf8_lossy(port.as_bytes()).parse::<u16>(),
        ) {
            (Some(ip), Ok(port)) => Addr::bound(vec![Endpoint::new((ip, port).into())]),
            _ => Addr::Failed("bad ip or port".into()),
        };
        let bound = Bound::new(
            self.0.concat(&path.take(2)),
            path.drop_first(2),
            Live::constant(addr),
        );
        ok(NameTree::Leaf(Name::Bound(bound)))
    }
}
