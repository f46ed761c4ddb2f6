//! Loading conformance vectors (see `vectors/README.md`) and reporting on
//! them. Shared by the `dtab` and `namers` conformance runners.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;

use dtab::{DelegateTree, Dentry, Dtab, NameTree, Path, Weighted, WeightedDelegate};
use serde_json::Value;

/// One vector: where it came from and its JSON.
pub struct Case {
    pub origin: String,
    pub json: Value,
}

impl Case {
    pub fn kind(&self) -> &str {
        self.json["kind"].as_str().unwrap_or("?")
    }

    pub fn op(&self) -> &str {
        self.json["op"].as_str().unwrap_or("?")
    }

    pub fn str_field(&self, name: &str) -> Result<&str, String> {
        self.json[name]
            .as_str()
            .ok_or_else(|| format!("field {name:?} is not a string"))
    }
}

/// The upstream vectors plus every file named in `DTAB_VECTORS`.
pub fn load_cases(upstream: &str) -> Vec<Case> {
    let mut files = vec![upstream.to_string()];
    if let Ok(extra) = std::env::var("DTAB_VECTORS") {
        files.extend(
            extra
                .split(':')
                .filter(|f| !f.is_empty())
                .map(str::to_string),
        );
    }
    let mut cases = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("cannot read vector file {file}: {e}"));
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let json = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{file}:{}: not JSON: {e}", i + 1));
            cases.push(Case {
                origin: format!("{file}:{}", i + 1),
                json,
            });
        }
    }
    cases
}

/// What running one case gave.
pub enum Outcome {
    Pass,
    Fail(String),
    /// The op belongs to the other runner.
    NotOwned,
}

/// Compares `actual` with `expected`, describing both on a mismatch.
pub fn check<T: PartialEq + std::fmt::Debug>(actual: T, expected: T) -> Outcome {
    if actual == expected {
        Outcome::Pass
    } else {
        Outcome::Fail(format!("expected {expected:?}\n      actual   {actual:?}"))
    }
}

/// Runs every case, prints a line per kind and the total, and panics naming
/// each failing case. Returns how many ran.
pub fn run_all(cases: &[Case], run: impl Fn(&Case) -> Result<Outcome, String>) -> usize {
    let mut per_kind: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for case in cases {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(case)))
            .unwrap_or_else(|_| Err("the runner panicked".to_string()));
        let failed = match outcome {
            Ok(Outcome::NotOwned) => continue,
            Ok(Outcome::Pass) => None,
            Ok(Outcome::Fail(why)) | Err(why) => Some(why),
        };
        let entry = per_kind.entry(case.kind().to_string()).or_default();
        match failed {
            None => entry.0 += 1,
            Some(why) => {
                entry.1 += 1;
                failures.push(format!(
                    "{} [{} {}]\n      input    {}\n      {}",
                    case.origin,
                    case.kind(),
                    case.op(),
                    case.json["input"],
                    why
                ));
            }
        }
    }
    for (kind, (passed, failed)) in &per_kind {
        println!("{kind}: {passed} passed, {failed} failed");
    }
    let passed: usize = per_kind.values().map(|c| c.0).sum();
    println!("conformance: {passed} passed, {} failed", failures.len());
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
    passed
}

pub fn path(s: &str) -> Result<Path, String> {
    Path::read(s).map_err(|e| format!("bad path {s:?} in vector: {e}"))
}

pub fn dtab(s: &str) -> Result<Dtab, String> {
    Dtab::read(s).map_err(|e| format!("bad dtab {s:?} in vector: {e}"))
}

fn weight(v: &Value) -> Result<f64, String> {
    v.as_f64().ok_or_else(|| format!("bad weight {v}"))
}

fn array<'a>(v: &'a Value, field: &str) -> Result<&'a Vec<Value>, String> {
    v[field]
        .as_array()
        .ok_or_else(|| format!("{field:?} is not an array in {v}"))
}

/// Decodes the vectors' Tree JSON, with `leaf` decoding each leaf node.
pub fn tree_with<T>(
    v: &Value,
    leaf: &impl Fn(&Value) -> Result<T, String>,
) -> Result<NameTree<T>, String> {
    Ok(match v["type"].as_str() {
        Some("leaf") => NameTree::Leaf(leaf(v)?),
        Some("neg") => NameTree::Neg,
        Some("fail") => NameTree::Fail,
        Some("empty") => NameTree::Empty,
        Some("alt") => NameTree::Alt(
            array(v, "trees")?
                .iter()
                .map(|t| tree_with(t, leaf))
                .collect::<Result<_, _>>()?,
        ),
        Some("union") => NameTree::Union(
            array(v, "trees")?
                .iter()
                .map(|w| {
                    Ok(Weighted::new(
                        weight(&w["weight"])?,
                        tree_with(&w["tree"], leaf)?,
                    ))
                })
                .collect::<Result<_, String>>()?,
        ),
        _ => return Err(format!("bad tree JSON {v}")),
    })
}

/// Decodes Tree JSON whose leaves are paths.
pub fn path_tree(v: &Value) -> Result<NameTree<Path>, String> {
    tree_with(v, &|leaf| {
        path(leaf["path"].as_str().ok_or("leaf without path")?)
    })
}

/// Decodes a dtab object `{"dentries":[{"prefix","dst"}], "show"}`, checking
/// that its `show` agrees with the dentries.
pub fn dtab_object(v: &Value) -> Result<(Dtab, String), String> {
    let dentries = array(v, "dentries")?
        .iter()
        .map(|d| {
            let prefix = d["prefix"].as_str().ok_or("dentry without prefix")?;
            let prefix = dtab::Prefix::read(prefix).map_err(|e| e.to_string())?;
            Ok(Dentry::new(prefix, path_tree(&d["dst"])?))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let show = v["show"]
        .as_str()
        .ok_or("dtab object without show")?
        .to_string();
    Ok((Dtab::new(dentries), show))
}

/// Decodes a dentry field: `null` is `Dentry.nop`.
pub fn dentry(v: &Value) -> Result<Dentry, String> {
    match v {
        Value::Null => Ok(Dentry::nop()),
        Value::String(s) => Dentry::read(s).map_err(|e| format!("bad dentry {s:?}: {e}")),
        other => Err(format!("bad dentry {other}")),
    }
}

/// Decodes DelegateTree JSON; leaf values stay JSON for the caller to judge.
pub fn delegate_tree(v: &Value) -> Result<DelegateTree<Value>, String> {
    let p = path(
        v["path"]
            .as_str()
            .ok_or_else(|| format!("node without path: {v}"))?,
    )?;
    let node_dentry = || dentry(&v["dentry"]);
    Ok(match v["type"].as_str() {
        Some("neg") => DelegateTree::Neg {
            path: p,
            dentry: node_dentry()?,
        },
        Some("fail") => DelegateTree::Fail {
            path: p,
            dentry: node_dentry()?,
        },
        Some("empty") => DelegateTree::Empty {
            path: p,
            dentry: node_dentry()?,
        },
        Some("exception") => DelegateTree::Exception {
            path: p,
            dentry: node_dentry()?,
            message: v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        },
        Some("delegate") => DelegateTree::Delegate {
            path: p,
            dentry: node_dentry()?,
            tree: Box::new(delegate_tree(&v["tree"])?),
        },
        Some("leaf") => DelegateTree::Leaf {
            path: p,
            dentry: node_dentry()?,
            value: v["value"].clone(),
        },
        Some("alt") => DelegateTree::Alt {
            path: p,
            dentry: node_dentry()?,
            trees: array(v, "trees")?
                .iter()
                .map(delegate_tree)
                .collect::<Result<_, _>>()?,
        },
        Some("union") => DelegateTree::Union {
            path: p,
            dentry: node_dentry()?,
            trees: array(v, "trees")?
                .iter()
                .map(|w| {
                    Ok(WeightedDelegate {
                        weight: weight(&w["weight"])?,
                        tree: delegate_tree(&w["tree"])?,
                    })
                })
                .collect::<Result<_, String>>()?,
        },
        Some("transformation") => DelegateTree::Transformation {
            path: p,
            name: v["name"].as_str().unwrap_or_default().to_string(),
            value: v["value"].clone(),
            tree: Box::new(delegate_tree(&v["tree"])?),
        },
        _ => return Err(format!("bad delegate tree JSON {v}")),
    })
}
