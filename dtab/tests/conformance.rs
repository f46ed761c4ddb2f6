//! Runs the dtab conformance vectors (Finagle's and Linkerd's own test
//! cases, `tests/vectors/`) against this crate, plus any vector files named
//! in `DTAB_VECTORS` (colon-separated). Interpreter ops belong to the
//! `namers` crate's runner and are skipped here.

#[path = "support/vectors.rs"]
mod vectors;

use dtab::{Dentry, Dtab, NameTree, Path, Prefix, PrefixElem};
use serde_json::Value;
use vectors::{Case, Outcome, check};

/// Ops run by the interpreter's conformance test in the `namers` crate.
const INTERPRETER_OPS: &[&str] = &[
    "Namer.",
    "DefaultInterpreter.",
    "ConfiguredNamersInterpreter.",
    "ConfiguredDtabNamer.",
];

#[test]
fn conformance_vectors() {
    let upstream = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/finagle-upstream.jsonl"
    );
    let cases = vectors::load_cases(upstream);
    let ran = vectors::run_all(&cases, run);
    assert!(ran > 100, "only {ran} cases ran");
}

fn run(case: &Case) -> Result<Outcome, String> {
    let op = case.op();
    if INTERPRETER_OPS.iter().any(|p| op.starts_with(p)) {
        return Ok(Outcome::NotOwned);
    }
    let input = &case.json["input"];
    let expected = &case.json["expected"];
    let input_str = || {
        input
            .as_str()
            .ok_or_else(|| "input is not a string".to_string())
    };
    Ok(match (case.kind(), op) {
        ("parse_error", _) => parse_error(op, input_str()?),
        ("parse_path", "Path.read") => parse_path(input_str()?, expected)?,
        ("parse_tree", "NameTree.read") => match NameTree::read(input_str()?) {
            Ok(tree) => check(tree, vectors::path_tree(expected)?),
            Err(e) => Outcome::Fail(format!("rejected: {e}")),
        },
        ("parse_dentry", "Dentry.read") => parse_dentry(input_str()?, expected)?,
        ("parse_dentry", "Dentry.Prefix.read") => {
            let prefix = Prefix::read(input_str()?).map_err(|e| format!("rejected: {e}"))?;
            check(
                (prefix.show(), prefix_elems(&prefix)),
                (json_str(&expected["show"])?, json_strs(&expected["elems"])?),
            )
        }
        ("parse_dtab", "Dtab.read") => {
            let dtab = Dtab::read(input_str()?).map_err(|e| format!("rejected: {e}"))?;
            check_dtab(&dtab, expected)?
        }
        ("show", "Path.show") => check(vectors::path(input_str()?)?.show(), json_str(expected)?),
        ("show", "NameTree.show") => check(vectors::path_tree(input)?.show(), json_str(expected)?),
        ("show", "NameTree.read+show") => {
            let tree = NameTree::read(input_str()?).map_err(|e| format!("rejected: {e}"))?;
            check(tree.show(), json_str(expected)?)
        }
        ("show", "Dtab.show") => check(vectors::dtab(input_str()?)?.show(), json_str(expected)?),
        ("show", "Dentry.nop.show") => check(Dentry::nop().show(), json_str(expected)?),
        ("simplify", "NameTree.simplified") => {
            let tree = NameTree::read(input_str()?).map_err(|e| format!("rejected: {e}"))?;
            let simple = tree.simplified();
            check(
                (simple.show(), simple),
                (
                    json_str(&expected["show"])?,
                    vectors::path_tree(&expected["tree"])?,
                ),
            )
        }
        ("simplify", "Dtab.simplified") => {
            check_dtab(&vectors::dtab(input_str()?)?.simplified(), expected)?
        }
        ("simplify", "DelegateTree.simplified") => check(
            vectors::delegate_tree(input)?.simplified(),
            vectors::delegate_tree(expected)?,
        ),
        ("eval", "NameTree.eval") => {
            let tree = NameTree::read(input_str()?).map_err(|e| format!("rejected: {e}"))?;
            let actual = tree.eval().map(|leaves| {
                let mut shown: Vec<String> = leaves.iter().map(|p| p.show()).collect();
                shown.sort();
                shown
            });
            let want = match expected {
                Value::Null => None,
                other => Some(json_strs(other)?),
            };
            check(actual, want)
        }
        ("delegate", "Dtab.lookup") => {
            let dtab = vectors::dtab(case.str_field("dtab")?)?;
            check(
                dtab.lookup(&vectors::path(input_str()?)?),
                vectors::path_tree(expected)?,
            )
        }
        ("delegate", "Dentry.Prefix.matches") => {
            let prefix = Prefix::read(input_str()?).map_err(|e| format!("bad prefix: {e}"))?;
            let path = vectors::path(case.str_field("path")?)?;
            check(Value::Bool(prefix.matches(&path)), expected.clone())
        }
        ("delegate", "DelegateTree.find") => {
            let tree = vectors::delegate_tree(input)?;
            let target = vectors::path(case.str_field("target")?)?;
            let found = tree.find(&|value: &Value| {
                value["path"]
                    .as_str()
                    .and_then(|p| Path::read(p).ok())
                    .as_ref()
                    == Some(&target)
            });
            let actual = found.map(|steps| {
                steps
                    .into_iter()
                    .map(|(p, d)| (p.show(), d))
                    .collect::<Vec<_>>()
            });
            let want = match expected {
                Value::Null => None,
                Value::Array(steps) => Some(
                    steps
                        .iter()
                        .map(|s| Ok((json_str(&s[0])?, json_str(&s[1])?)))
                        .collect::<Result<Vec<_>, String>>()?,
                ),
                other => return Err(format!("bad expected {other}")),
            };
            check(actual, want)
        }
        ("dtab_op", "Dtab.concat") => {
            let left = vectors::dtab(case.str_field("dtab")?)?;
            check_dtab(&left.concat(&vectors::dtab(input_str()?)?), expected)?
        }
        ("dtab_op", "Dtab.append") => {
            let dentry = Dentry::read(input_str()?).map_err(|e| format!("bad dentry: {e}"))?;
            check_dtab(
                &vectors::dtab(case.str_field("dtab")?)?.append(dentry),
                expected,
            )?
        }
        ("dtab_op", "Dtab.stripPrefix") => {
            let dtab = vectors::dtab(case.str_field("dtab")?)?;
            check_dtab(&dtab.strip_prefix(&vectors::dtab(input_str()?)?), expected)?
        }
        ("dtab_op", "Dtab.equiv") => {
            let other = vectors::dtab(case.str_field("other")?)?;
            check(
                Value::Bool(vectors::dtab(input_str()?)?.equiv(&other)),
                expected.clone(),
            )
        }
        (kind, op) => Outcome::Fail(format!("no runner for kind {kind:?} op {op:?}")),
    })
}

/// A `parse_error` case passes when the matching reader rejects the input.
fn parse_error(op: &str, input: &str) -> Outcome {
    let rejected = match op {
        "Path.read" => Path::read(input).err(),
        "NameTree.read" => NameTree::read(input).err(),
        "Dentry.read" => Dentry::read(input).err(),
        "Dentry.Prefix.read" => Prefix::read(input).err(),
        "Dtab.read" => Dtab::read(input).err(),
        other => return Outcome::Fail(format!("no reader for {other}")),
    };
    match rejected {
        Some(_) => Outcome::Pass,
        None => Outcome::Fail("accepted input that must be rejected".to_string()),
    }
}

fn parse_path(input: &str, expected: &Value) -> Result<Outcome, String> {
    let path = Path::read(input).map_err(|e| format!("rejected: {e}"))?;
    let elems: Vec<String> = path
        .elems()
        .iter()
        .map(|l| Path::from_labels(vec![l.clone()]).show()[1..].to_string())
        .collect();
    let hex: Vec<String> = path
        .elems()
        .iter()
        .map(|l| l.as_bytes().iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    Ok(check(
        (path.show(), elems, hex),
        (
            json_str(&expected["show"])?,
            json_strs(&expected["elems"])?,
            json_strs(&expected["elems_hex"])?,
        ),
    ))
}

fn parse_dentry(input: &str, expected: &Value) -> Result<Outcome, String> {
    let dentry = Dentry::read(input).map_err(|e| format!("rejected: {e}"))?;
    Ok(check(
        (
            dentry.prefix.show(),
            prefix_elems(&dentry.prefix),
            dentry.dst.clone(),
            dentry.dst.show(),
            dentry.show(),
        ),
        (
            json_str(&expected["prefix"])?,
            json_strs(&expected["prefix_elems"])?,
            vectors::path_tree(&expected["dst"])?,
            json_str(&expected["dst_show"])?,
            json_str(&expected["show"])?,
        ),
    ))
}

/// Prefix elements in the vectors' form: `*` for a wildcard, else the label's show.
fn prefix_elems(prefix: &Prefix) -> Vec<String> {
    prefix
        .elems()
        .iter()
        .map(|e| match e {
            PrefixElem::Any => "*".to_string(),
            PrefixElem::Label(l) => {
                let mut s = String::new();
                l.write_show(&mut s);
                s
            }
        })
        .collect()
}

fn check_dtab(actual: &Dtab, expected: &Value) -> Result<Outcome, String> {
    let (dtab, show) = vectors::dtab_object(expected)?;
    Ok(check((actual.clone(), actual.show()), (dtab, show)))
}

fn json_str(v: &Value) -> Result<String, String> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("expected a string, got {v}"))
}

fn json_strs(v: &Value) -> Result<Vec<String>, String> {
    v.as_array()
        .ok_or_else(|| format!("expected an array, got {v}"))?
        .iter()
        .map(json_str)
        .collect()
}
