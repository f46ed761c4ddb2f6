//! `io.l5d.rewrite`: a namer that rewrites the paths matching a pattern into
//! another name, e.g. `/{service}/api` into `/srv/{service}`.
//!
//! As in Linkerd, the pattern is matched against the first elements of the
//! path (`*` matches any one element, `{var}` captures one), and the result
//! is the `name` with the captures substituted, *without* the rest of the
//! path: with pattern `/one/two` and name `/success`, `/one/two/three`
//! becomes `/success`. A path that does not match is `~`.

use dtab::{Label, NameTree, Path};
use serde::Deserialize;

use crate::{Activity, Live, Lookup, Name, Namer, NamingError};

/// The config of an `io.l5d.rewrite` namer (its `kind` and `prefix` are
/// read by the namer list).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewriteConfig {
    /// The path pattern, e.g. `/{service}/api` or `/svc/*/{name}`.
    pub pattern: String,
    /// The replacement name, e.g. `/srv/{service}`.
    pub name: String,
}

impl RewriteConfig {
    /// Checks the pattern and the name and builds the namer.
    pub fn validate(&self) -> Result<RewriteNamer, RewriteError> {
        RewriteNamer::new(&self.pattern, &self.name)
    }
}

/// Why an `io.l5d.rewrite` config was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// The pattern has an empty element (`//`).
    #[error("pattern {pattern:?} has an empty element")]
    EmptyElement {
        /// The pattern.
        pattern: String,
    },
    /// A pattern element is neither a path label, `*` nor `{var}`.
    #[error(
        "pattern {pattern:?}: {element:?} is not a path element, `*` or `{{variable}}` ({why})"
    )]
    BadElement {
        /// The pattern.
        pattern: String,
        /// The offending element.
        element: String,
        /// What is wrong with it.
        why: String,
    },
    /// The pattern captures the same variable twice.
    #[error("pattern {pattern:?} captures {{{var}}} more than once")]
    RepeatedVariable {
        /// The pattern.
        pattern: String,
        /// The variable.
        var: String,
    },
    /// The name has a `{` without its `}`, or a `{}`.
    #[error("name {name:?}: `{{` at byte {offset} does not start a `{{variable}}`")]
    BadVariable {
        /// The name.
        name: String,
        /// Where the bad `{` is.
        offset: usize,
    },
    /// The name uses a variable the pattern does not capture.
    #[error("name {name:?} uses {{{var}}}, which the pattern does not capture")]
    UndefinedVariable {
        /// The name.
        name: String,
        /// The variable.
        var: String,
    },
    /// The name, with its variables filled in, is not a path.
    #[error("name {name:?} is not a path: {cause}")]
    BadName {
        /// The name.
        name: String,
        /// The parse error.
        cause: dtab::ParseError,
    },
}

/// One element of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Matcher {
    /// Exactly this label.
    Label(Label),
    /// Any label (`*`).
    Any,
    /// Any label, captured as variable number `n` (`{var}`).
    Capture(usize),
}

/// A piece of the name template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(usize),
}

/// The `io.l5d.rewrite` namer.
#[derive(Clone, Debug)]
pub struct RewriteNamer {
    pattern: Vec<Matcher>,
    /// The variables' names, by capture number.
    vars: Vec<String>,
    name: Vec<Piece>,
}

impl RewriteNamer {
    /// A namer rewriting paths that match `pattern` into `name`.
    pub fn new(pattern: &str, name: &str) -> Result<RewriteNamer, RewriteError> {
        let (pattern_elems, vars) = parse_pattern(pattern)?;
        let name_pieces = parse_name(name, &vars)?;
        let namer = RewriteNamer {
            pattern: pattern_elems,
            vars,
            name: name_pieces,
        };
        // Any capture shows as plain label characters or `\xhh` escapes, so
        // a name that parses with `x` for every variable parses with any.
        let sample = namer.fill(&vec!["x".to_owned(); namer.vars.len()]);
        Path::read(&sample).map_err(|cause| RewriteError::BadName {
            name: name.to_owned(),
            cause,
        })?;
        Ok(namer)
    }

    /// The rewritten name of `path`, or `None` when it does not match.
    pub fn rewrite(&self, path: &Path) -> Option<Result<Path, dtab::ParseError>> {
        let elems = path.elems().get(..self.pattern.len())?;
        let mut captures = vec![String::new(); self.vars.len()];
        for (matcher, label) in self.pattern.iter().zip(elems) {
            match matcher {
                Matcher::Label(want) if want != label => return None,
                Matcher::Label(_) | Matcher::Any => {}
                Matcher::Capture(n) => {
                    let mut shown = String::new();
                    label.write_show(&mut shown);
                    if let Some(slot) = captures.get_mut(*n) {
                        *slot = shown;
                    }
                }
            }
        }
        Some(Path::read(&self.fill(&captures)))
    }

    /// The name with `values` (show forms, by capture number) substituted.
    fn fill(&self, values: &[String]) -> String {
        let mut out = String::new();
        for piece in &self.name {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Var(n) => out.push_str(values.get(*n).map_or("", String::as_str)),
            }
        }
        out
    }
}

impl Namer for RewriteNamer {
    fn lookup(&self, path: &Path) -> Lookup {
        Live::constant(match self.rewrite(path) {
            None => Activity::Ok(NameTree::Neg),
            Some(Ok(name)) => Activity::Ok(NameTree::Leaf(Name::Path(name))),
            // Unreachable after validation; a failure beats a panic.
            Some(Err(e)) => Activity::Failed(NamingError::namer(format!(
                "io.l5d.rewrite: the rewritten name is not a path: {e}"
            ))),
        })
    }
}

/// Splits the pattern like Linkerd (`split("/")`, leading and trailing
/// empty elements ignored, so the leading `/` is optional).
fn parse_pattern(pattern: &str) -> Result<(Vec<Matcher>, Vec<String>), RewriteError> {
    let trimmed = pattern.trim_start_matches('/').trim_end_matches('/');
    let mut matchers = Vec::new();
    let mut vars: Vec<String> = Vec::new();
    if trimmed.is_empty() {
        return Ok((matchers, vars));
    }
    let bad = |element: &str, why: &str| RewriteError::BadElement {
        pattern: pattern.to_owned(),
        element: element.to_owned(),
        why: why.to_owned(),
    };
    for element in trimmed.split('/') {
        if element.is_empty() {
            return Err(RewriteError::EmptyElement {
                pattern: pattern.to_owned(),
            });
        }
        if element == "*" {
            matchers.push(Matcher::Any);
        } else if let Some(var) = element.strip_prefix('{').and_then(|e| e.strip_suffix('}')) {
            if var.is_empty() || var.contains(['{', '}']) {
                return Err(bad(element, "a variable needs a name without braces"));
            }
            if vars.iter().any(|v| v == var) {
                return Err(RewriteError::RepeatedVariable {
                    pattern: pattern.to_owned(),
                    var: var.to_owned(),
                });
            }
            matchers.push(Matcher::Capture(vars.len()));
            vars.push(var.to_owned());
        } else if element.contains(['{', '}']) {
            return Err(bad(element, "a variable must be a whole element"));
        } else {
            let label = match Path::read(&format!("/{element}")) {
                Ok(path) if path.len() == 1 => path.elems()[0].clone(),
                Ok(_) => return Err(bad(element, "not a single label")),
                Err(e) => return Err(bad(element, &e.to_string())),
            };
            matchers.push(Matcher::Label(label));
        }
    }
    Ok((matchers, vars))
}

/// Splits the name into text and `{var}` references to captured variables.
fn parse_name(name: &str, vars: &[String]) -> Result<Vec<Piece>, RewriteError> {
    let mut pieces = Vec::new();
    let mut rest = name;
    while let Some(open) = rest.find('{') {
        let offset = name.len() - rest.len() + open;
        let bad = || RewriteError::BadVariable {
            name: name.to_owned(),
            offset,
        };
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or_else(bad)?;
        let var = &after[..close];
        if var.is_empty() || var.contains('{') {
            return Err(bad());
        }
        let n =
            vars.iter()
                .position(|v| v == var)
                .ok_or_else(|| RewriteError::UndefinedVariable {
                    name: name.to_owned(),
                    var: var.to_owned(),
                })?;
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_owned()));
        }
        pieces.push(Piece::Var(n));
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Path {
        Path::read(s).unwrap()
    }

    fn namer(pattern: &str, name: &str) -> RewriteNamer {
        RewriteNamer::new(pattern, name).unwrap()
    }

    fn rewrite(n: &RewriteNamer, path: &str) -> Option<String> {
        n.rewrite(&p(path)).map(|r| r.unwrap().show())
    }

    #[test]
    fn linkerd_examples() {
        // Linkerd's RewritingNamerTest.
        assert_eq!(
            rewrite(&namer("/one/two", "/success"), "/one/two/three").as_deref(),
            Some("/success")
        );
        assert_eq!(
            rewrite(&namer("/one/*/three", "/success"), "/one/two/three").as_deref(),
            Some("/success")
        );
        assert_eq!(
            rewrite(&namer("/one/*/four", "/success"), "/one/two/three"),
            None
        );
        let capture = namer("/{foo}/*/three", "/success/{foo}");
        assert_eq!(
            rewrite(&capture, "/one/two/three").as_deref(),
            Some("/success/one")
        );
        assert_eq!(
            rewrite(&namer("/{foo}/*/four", "/success/{foo}"), "/one/two/three"),
            None
        );
    }

    #[test]
    fn the_documented_example() {
        let n = namer("/{service}/api", "/srv/{service}");
        assert_eq!(rewrite(&n, "/users/api").as_deref(), Some("/srv/users"));
        assert_eq!(rewrite(&n, "/users/api/v1").as_deref(), Some("/srv/users"));
        assert_eq!(rewrite(&n, "/users/web"), None);
        assert_eq!(rewrite(&n, "/users"), None);
        assert_eq!(
            *n.lookup(&p("/users/api")).load(),
            Activity::Ok(NameTree::Leaf(Name::Path(p("/srv/users"))))
        );
        assert_eq!(*n.lookup(&p("/users")).load(), Activity::Ok(NameTree::Neg));
    }

    #[test]
    fn variables_fill_parts_of_elements_and_keep_bytes() {
        let n = namer("/{a}/{b}", "/{b}.{a}/x/{a}-v2");
        assert_eq!(
            rewrite(&n, "/one/two").as_deref(),
            Some("/two.one/x/one-v2")
        );
        // A label with bytes that need escaping survives the substitution.
        let out = n.rewrite(&p("/\\x2f\\xff/two")).unwrap().unwrap();
        assert_eq!(out.elems()[0].as_bytes(), b"two.\x2f\xff");
        assert_eq!(out.elems()[2].as_bytes(), b"\x2f\xff-v2");
    }

    #[test]
    fn pattern_slashes_are_optional_and_escapes_match_bytes() {
        let n = namer("svc/{name}/", "/srv/{name}");
        assert_eq!(rewrite(&n, "/svc/web").as_deref(), Some("/srv/web"));
        let n = namer("/\\x61pi/{v}", "/{v}");
        assert_eq!(rewrite(&n, "/api/v1").as_deref(), Some("/v1"));
        // An empty pattern matches everything, even the empty path.
        let n = namer("/", "/all");
        assert_eq!(rewrite(&n, "/").as_deref(), Some("/all"));
        assert_eq!(rewrite(&n, "/a/b").as_deref(), Some("/all"));
    }

    #[test]
    fn config_is_strict_and_validates() {
        let config: RewriteConfig =
            serde_json::from_str(r#"{"pattern":"/{service}/api","name":"/srv/{service}"}"#)
                .unwrap();
        let n = config.validate().unwrap();
        assert_eq!(rewrite(&n, "/web/api").as_deref(), Some("/srv/web"));
        assert!(
            serde_json::from_str::<RewriteConfig>(r#"{"pattern":"/a","name":"/b","x":1}"#).is_err()
        );
        assert!(serde_json::from_str::<RewriteConfig>(r#"{"pattern":"/a"}"#).is_err());
    }

    #[test]
    fn bad_configs_are_rejected_with_reasons() {
        let err = |pattern: &str, name: &str| RewriteNamer::new(pattern, name).unwrap_err();

        assert!(matches!(
            err("/{service}/api", "/srv/{svc}"),
            RewriteError::UndefinedVariable { var, .. } if var == "svc"
        ));
        assert!(matches!(
            err("/{a}/{a}", "/{a}"),
            RewriteError::RepeatedVariable { var, .. } if var == "a"
        ));
        assert!(matches!(
            err("/a//b", "/x"),
            RewriteError::EmptyElement { .. }
        ));
        assert!(matches!(err("/{}", "/x"), RewriteError::BadElement { .. }));
        assert!(matches!(
            err("/x{a}", "/x"),
            RewriteError::BadElement { .. }
        ));
        assert!(matches!(
            err("/{a}x", "/x"),
            RewriteError::BadElement { .. }
        ));
        assert!(matches!(err("/a b", "/x"), RewriteError::BadElement { .. }));
        assert!(matches!(
            err("/{a}", "/{a"),
            RewriteError::BadVariable { offset: 1, .. }
        ));
        assert!(matches!(
            err("/{a}", "/{}"),
            RewriteError::BadVariable { .. }
        ));
        assert!(matches!(
            err("/{a}", "srv/{a}"),
            RewriteError::BadName { .. }
        ));
        assert!(matches!(
            err("/{a}", "/srv/{a}}"),
            RewriteError::BadName { .. }
        ));
        assert!(matches!(
            err("/{a}", "/srv//{a}"),
            RewriteError::BadName { .. }
        ));
        assert!(matches!(
            err("/{a}", "/srv | /b"),
            RewriteError::BadName { .. }
        ));

        let message = err("/{service}/api", "/srv/{svc}").to_string();
        assert_eq!(
            message,
            "name \"/srv/{svc}\" uses {svc}, which the pattern does not capture"
        );
        let message = err("/{a}/{a}", "/{a}").to_string();
        assert_eq!(message, "pattern \"/{a}/{a}\" captures {a} more than once");
    }
}
