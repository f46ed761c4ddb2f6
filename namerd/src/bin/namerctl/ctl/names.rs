//! `delegate` and `resolve`: asking namerd how a name resolves, and
//! printing the answer for people.

use std::io::Write;

use dtab::{Dtab, Path};
use serde_json::Value;

use super::follow::follow;
use super::{CtlError, Exit, emit};
use namerd::Namespace;
use namerd::client::Client;

/// Parses a `--dtab` argument; a bad one is [`Exit::BadInput`] with the
/// position.
pub(crate) fn parse_extra_dtab(text: Option<&str>) -> Result<Dtab, CtlError> {
    match text {
        None => Ok(Dtab::empty()),
        Some(text) => Dtab::read(text)
            .map_err(|e| CtlError::new(Exit::BadInput, format!("invalid --dtab: {e}"))),
    }
}

/// `namerctl delegate <ns> <path> [--dtab D] [--json]`: the delegation
/// tree, as an indented tree or as namerd's JSON.
pub(crate) async fn delegate(
    client: &Client,
    ns: &Namespace,
    path: &Path,
    extra: &Dtab,
    json: bool,
    out: &mut dyn Write,
) -> Result<Exit, CtlError> {
    let tree = client.delegate(ns, path, extra).await?;
    let text = if json {
        format!(
            "{}\n",
            serde_json::to_string_pretty(&tree).unwrap_or_default()
        )
    } else {
        render_delegate(&tree)
    };
    emit(out, &text)?;
    Ok(Exit::Ok)
}

/// `namerctl resolve <ns> <path> [--dtab D] [--json]`: the addresses the
/// name resolves to. Exits [`Exit::NotFound`] for `neg`,
/// [`Exit::ServerError`] for `failed` and [`Exit::Unavailable`] for
/// `pending`.
pub(crate) async fn resolve(
    client: &Client,
    ns: &Namespace,
    path: &Path,
    extra: &Dtab,
    json: bool,
    out: &mut dyn Write,
) -> Result<Exit, CtlError> {
    let addr = client.resolve(ns, path, extra).await?;
    let text = if json {
        format!("{addr}\n")
    } else {
        format!("{}\n", render_addr(&addr))
    };
    emit(out, &text)?;
    Ok(addr_exit(&addr))
}

/// `namerctl resolve --watch`: one line per change, until interrupted.
pub(crate) async fn resolve_watch(
    client: &Client,
    ns: &Namespace,
    path: &Path,
    extra: &Dtab,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, CtlError> {
    follow(
        async || client.watch_resolve(ns, path, extra).await,
        |addr: &Value| {
            Ok(if json {
                format!("{addr}\n")
            } else {
                format!("{}\n", render_addr(addr))
            })
        },
        out,
        err,
    )
    .await
}

/// How `resolve` exits for an address.
pub(crate) fn addr_exit(addr: &Value) -> Exit {
    match addr.get("type").and_then(Value::as_str) {
        Some("bound") => Exit::Ok,
        Some("neg") => Exit::NotFound,
        Some("pending") => Exit::Unavailable,
        _ => Exit::ServerError,
    }
}

/// An address on one line: `bound 10.0.0.1:80 10.0.0.2:80`, `neg`,
/// `pending` or `failed: <cause>`.
pub(crate) fn render_addr(addr: &Value) -> String {
    match addr.get("type").and_then(Value::as_str) {
        Some("bound") => {
            let endpoints: Vec<String> = addr
                .get("addrs")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(endpoint).collect())
                .unwrap_or_default();
            if endpoints.is_empty() {
                "bound (no endpoints)".to_string()
            } else {
                format!("bound {}", endpoints.join(" "))
            }
        }
        Some("failed") => format!(
            "failed: {}",
            addr.get("cause")
                .and_then(Value::as_str)
                .unwrap_or("(no cause given)")
        ),
        Some(kind) => kind.to_string(),
        None => format!("unknown address {addr}"),
    }
}

/// `ip:port` (`[ip]:port` for IPv6).
fn endpoint(e: &Value) -> String {
    let ip = e.get("ip").and_then(Value::as_str).unwrap_or("?");
    let port = e
        .get("port")
        .map_or_else(|| "?".to_string(), Value::to_string);
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// A delegate tree (Linkerd's `/delegate` JSON) as an indented tree: each
/// node on one line with its path, the dentry that produced it, and what it
/// came to.
///
/// ```text
/// /svc/web
/// └── /#/io.l5d.fs/web  via /svc => /#/io.l5d.fs  -> bound 127.0.0.1:8080
/// ```
pub(crate) fn render_delegate(tree: &Value) -> String {
    let mut out = String::new();
    node(tree, "", "", "", &mut out);
    out
}

/// Appends `tree`: its own line starts with `lead` (the branch drawing and
/// any weight), its children's lines with `indent`.
fn node(tree: &Value, lead: &str, weight: &str, indent: &str, out: &mut String) {
    let kind = tree.get("type").and_then(Value::as_str).unwrap_or("?");
    let path = tree.get("path").and_then(Value::as_str).unwrap_or("");
    let mut line = format!("{lead}{weight}{path}");
    if let Some(d) = tree.get("dentry") {
        let prefix = d.get("prefix").and_then(Value::as_str).unwrap_or("?");
        let dst = d.get("dst").and_then(Value::as_str).unwrap_or("?");
        line.push_str(&format!("  via {prefix} => {dst}"));
    }
    let mut children: Vec<(String, &Value)> = Vec::new();
    match kind {
        "delegate" => children.extend(tree.get("delegate").map(|t| (String::new(), t))),
        "alt" => {
            line.push_str("  (alt: the first that resolves wins)");
            for t in tree
                .get("alt")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                children.push((String::new(), t));
            }
        }
        "union" => {
            line.push_str("  (union: traffic split by weight)");
            for b in tree
                .get("union")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let w = b
                    .get("weight")
                    .map_or_else(String::new, |w| format!("{w} * "));
                if let Some(t) = b.get("tree") {
                    children.push((w, t));
                }
            }
        }
        "leaf" => {
            if let Some(bound) = tree.get("bound") {
                line.push_str(&format!("  -> {}", render_bound(path, bound)));
            } else if let Some(name) = tree.get("name").and_then(Value::as_str) {
                line.push_str(&format!("  -> name {name}"));
            }
        }
        "neg" => line.push_str("  -> neg"),
        "fail" => line.push_str("  -> fail"),
        "empty" => line.push_str("  -> empty"),
        "exception" => {
            let message = tree.get("message").and_then(Value::as_str).unwrap_or("");
            line.push_str(&format!("  -> error: {message}"));
        }
        "transformation" => {
            let name = tree.get("name").and_then(Value::as_str).unwrap_or("?");
            line.push_str(&format!("  (transformed by {name})"));
            if let Some(bound) = tree.get("bound") {
                line.push_str(&format!("  -> {}", render_bound(path, bound)));
            }
            children.extend(tree.get("tree").map(|t| (String::new(), t)));
        }
        other => line.push_str(&format!("  ({other})")),
    }
    out.push_str(&line);
    out.push('\n');
    let n = children.len();
    for (i, (w, child)) in children.into_iter().enumerate() {
        let last = i + 1 == n;
        let (branch, more) = if last {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        node(
            child,
            &format!("{indent}{branch}"),
            &w,
            &format!("{indent}{more}"),
            out,
        );
    }
}

/// `bound <addr>`, naming the id and residual when they are not the
/// node's path.
fn render_bound(path: &str, bound: &Value) -> String {
    let mut text = bound
        .get("addr")
        .map_or_else(|| "bound".to_string(), render_addr);
    let id = bound.get("id").and_then(Value::as_str).unwrap_or("");
    let residual = bound.get("path").and_then(Value::as_str).unwrap_or("/");
    if !id.is_empty() && id != path {
        text.push_str(&format!("  (id {id}"));
        if residual != "/" && !residual.is_empty() {
            text.push_str(&format!(", residual {residual}"));
        }
        text.push(')');
    }
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn linkerds_delegate_example_reads_as_a_tree() {
        let tree = json!({"type":"alt","path":"/yeezy","alt":[
            {"type":"neg","path":"/bar","dentry":{"prefix":"/yeezy","dst":"/bar"}},
            {"type":"neg","path":"/yeezus","dentry":{"prefix":"/yeezy","dst":"/yeezus"}}]});
        assert_eq!(
            render_delegate(&tree),
            "/yeezy  (alt: the first that resolves wins)\n\
             ├── /bar  via /yeezy => /bar  -> neg\n\
             └── /yeezus  via /yeezy => /yeezus  -> neg\n"
        );
    }

    #[test]
    fn nested_trees_show_dentries_weights_and_addresses() {
        let bound = |port: u16| {
            json!({"addr":{"type":"bound","addrs":[{"ip":"127.0.0.1","port":port,"meta":{}}],"meta":{}},
                   "id":format!("/#/io.l5d.fs/web{port}"),"path":"/"})
        };
        let tree = json!({"type":"delegate","path":"/svc/web","delegate":
            {"type":"union","path":"/srv/web","dentry":{"prefix":"/svc","dst":"/srv"},"union":[
                {"weight":3.0,"tree":{"type":"leaf","path":"/#/io.l5d.fs/web1","dentry":{"prefix":"/srv","dst":"/#/io.l5d.fs"},"bound":bound(1)}},
                {"weight":1.0,"tree":{"type":"delegate","path":"/srv/web2","dentry":{"prefix":"/srv/web","dst":"/srv/web2"},"delegate":
                    {"type":"exception","path":"/#/bad","dentry":{"prefix":"/srv","dst":"/#/bad"},"message":"no namer"}}}]}});
        assert_eq!(
            render_delegate(&tree),
            "/svc/web\n\
             └── /srv/web  via /svc => /srv  (union: traffic split by weight)\n    \
             ├── 3.0 * /#/io.l5d.fs/web1  via /srv => /#/io.l5d.fs  -> bound 127.0.0.1:1\n    \
             └── 1.0 * /srv/web2  via /srv/web => /srv/web2\n        \
             └── /#/bad  via /srv => /#/bad  -> error: no namer\n"
        );
    }

    #[test]
    fn a_leaf_names_its_id_when_a_residual_remains() {
        let tree = json!({"type":"leaf","path":"/#/io.l5d.fs/web/api",
            "bound":{"addr":{"type":"neg"},"id":"/#/io.l5d.fs/web","path":"/api"}});
        assert_eq!(
            render_delegate(&tree),
            "/#/io.l5d.fs/web/api  -> neg  (id /#/io.l5d.fs/web, residual /api)\n"
        );
    }

    #[test]
    fn addresses_on_one_line_and_their_exit_codes() {
        let bound = json!({"type":"bound","addrs":[
            {"ip":"10.0.0.1","port":80,"meta":{}},{"ip":"::1","port":81,"meta":{}}],"meta":{}});
        assert_eq!(render_addr(&bound), "bound 10.0.0.1:80 [::1]:81");
        assert_eq!(addr_exit(&bound), Exit::Ok);
        assert_eq!(render_addr(&json!({"type":"neg"})), "neg");
        assert_eq!(addr_exit(&json!({"type":"neg"})), Exit::NotFound);
        let failed = json!({"type":"failed","cause":"zk down"});
        assert_eq!(render_addr(&failed), "failed: zk down");
        assert_eq!(addr_exit(&failed), Exit::ServerError);
        assert_eq!(addr_exit(&json!({"type":"pending"})), Exit::Unavailable);
    }

    #[test]
    fn a_bad_extra_dtab_is_bad_input_with_a_position() {
        let e = parse_extra_dtab(Some("/a=>")).unwrap_err();
        assert_eq!(e.exit, Exit::BadInput);
        assert!(
            e.message.starts_with("invalid --dtab: expected"),
            "{}",
            e.message
        );
        assert!(parse_extra_dtab(None).unwrap().is_empty());
    }
}
