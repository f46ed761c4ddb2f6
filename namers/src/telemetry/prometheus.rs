//! Prometheus text, named as Linkerd's `io.l5d.prometheus` telemeter named
//! its series, so that dashboards written for Linkerd find them: scopes
//! are joined with `:`, and the router, server, service, client and
//! exception scopes become labels —
//! `rt/web/client/$/inet/127.1/8080/status/200` is
//! `rt:client:status:200{rt="web",client="$/inet/127.1/8080"}`. A stat is
//! a summary: `_count`, `_sum`, `_avg` and `quantile` lines (0 is the
//! minimum, 1 the maximum), shown once its first interval has ended.
//!
//! Lines of one name are kept together, in name order.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;

use super::{Entry, Value};

/// The scopes that become a label named after themselves.
const STACKS: [&str; 3] = ["service", "client", "server"];

/// The text for `entries`, each name after `prefix` (the telemeter's
/// `prefix` key, `""` by default).
pub fn render(entries: &[Entry], prefix: &str) -> String {
    // Each entry goes into its name's group, in the order listed; the
    // groups are written in name order. (A tree of a thousand services has
    // some fifty names and tens of thousands of entries: grouping costs a
    // hash per entry where sorting them by name compared long strings.)
    let mut groups: HashMap<String, Vec<(Labels<'_>, &Entry)>> = HashMap::new();
    let mut name = String::new();
    for entry in entries {
        let labels = series(&entry.path, prefix, &mut name);
        match groups.get_mut(name.as_str()) {
            Some(group) => group.push((labels, entry)),
            None => {
                groups.insert(name.clone(), vec![(labels, entry)]);
            }
        }
    }
    let mut names: Vec<&String> = groups.keys().collect();
    names.sort();
    let mut out = String::with_capacity(entries.len() * 96);
    for name in names {
        for (labels, entry) in &groups[name] {
            write_entry(&mut out, name, labels, entry);
        }
    }
    out
}

/// The lines of one entry.
fn write_entry(out: &mut String, name: &str, labels: &Labels<'_>, entry: &Entry) {
    match entry.value {
        Value::Counter(n) => {
            line(out, name, "", labels, None);
            let _ = writeln!(out, " {n}");
        }
        Value::Gauge(g) => {
            line(out, name, "", labels, None);
            let _ = writeln!(out, " {g:?}");
        }
        Value::Stat(s) if s.count > 0 => {
            line(out, name, "_count", labels, None);
            let _ = writeln!(out, " {}", s.count);
            line(out, name, "_sum", labels, None);
            let _ = writeln!(out, " {}", s.sum);
            line(out, name, "_avg", labels, None);
            let _ = writeln!(out, " {:?}", s.avg);
            for (quantile, value) in [
                ("0", s.min),
                ("0.5", s.p50),
                ("0.9", s.p90),
                ("0.95", s.p95),
                ("0.99", s.p99),
                ("0.999", s.p9990),
                ("0.9999", s.p9999),
                ("1", s.max),
            ] {
                line(out, name, "", labels, Some(("quantile", quantile)));
                let _ = writeln!(out, " {value}");
            }
        }
        // Only push walks give samples.
        Value::Stat(_) | Value::Samples(_) => {}
    }
}

/// Writes a series: its name, `suffix` and its labels (and `extra`).
fn line(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &Labels<'_>,
    extra: Option<(&str, &str)>,
) {
    out.push_str(name);
    out.push_str(suffix);
    write_labels(out, labels, extra);
}

/// A series' labels, in order, borrowed from its path (an exception chain
/// is the one label made anew).
type Labels<'a> = Vec<(&'a str, Cow<'a, str>)>;

/// The labels of a metric at `path`, rewritten a segment at a time as
/// Linkerd's telemeter did; its series name goes into `out`.
fn series<'a>(path: &'a [std::sync::Arc<str>], prefix: &str, out: &mut String) -> Labels<'a> {
    let mut name: Vec<&str> = Vec::with_capacity(path.len());
    let mut labels: Labels<'a> = Vec::new();
    for segment in path {
        name.push(segment);
        relabel(&mut name, &mut labels);
    }
    out.clear();
    out.push_str(prefix);
    for (i, segment) in name.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        push_escaped_name(out, segment);
    }
    labels
}

/// One step: when the name so far matches a labelled scope, its last
/// segment becomes a label.
fn relabel<'a>(name: &mut Vec<&'a str>, labels: &mut Labels<'a>) {
    let has = |labels: &Labels<'a>, key: &str| labels.iter().any(|(k, _)| *k == key);
    match *name.as_slice() {
        ["rt", router] if !has(labels, "rt") => {
            labels.push(("rt", Cow::Borrowed(router)));
            name.truncate(1);
        }
        ["rt", stack, ident] if STACKS.contains(&stack) && !has(labels, stack) => {
            labels.push((stack, Cow::Borrowed(ident)));
            name.truncate(2);
        }
        ["rt", "client", "service", path] if !has(labels, "service") => {
            labels.push(("service", Cow::Borrowed(path)));
            name.truncate(3);
        }
        ["rt", stack, "failures", exception] if STACKS.contains(&stack) => {
            add_exception(labels, exception);
            name.truncate(3);
        }
        ["rt", stack, "exn", exception] if STACKS.contains(&stack) => {
            add_exception(labels, exception);
            name.truncate(2);
            name.push("exceptions");
        }
        _ => {}
    }
}

/// A cause chain is one label: `outer:cause`.
fn add_exception<'a>(labels: &mut Labels<'a>, exception: &'a str) {
    match labels.iter_mut().find(|(k, _)| *k == "exception") {
        Some((_, value)) => {
            let chain = value.to_mut();
            chain.push(':');
            chain.push_str(exception);
        }
        None => labels.push(("exception", Cow::Borrowed(exception))),
    }
}

/// `segment` with every character a name may not hold as `_`.
fn push_escaped_name(out: &mut String, segment: &str) {
    for c in segment.chars() {
        if c.is_ascii_alphanumeric() || c == ':' {
            out.push(c);
        } else {
            out.push('_');
        }
    }
}

fn write_labels(out: &mut String, labels: &Labels<'_>, extra: Option<(&str, &str)>) {
    if labels.is_empty() && extra.is_none() {
        return;
    }
    out.push('{');
    let all = labels.iter().map(|(k, v)| (*k, &**v)).chain(extra);
    for (i, (key, value)) in all.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(key);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::super::Summary;
    use super::*;

    fn one(path: &[&str], value: Value) -> String {
        let entry = Entry {
            path: path.iter().map(|s| (*s).into()).collect(),
            value,
        };
        render(&[entry], "")
    }

    #[test]
    fn router_stack_and_id_scopes_become_labels() {
        assert_eq!(
            one(
                &["rt", "incoming", "client", "$/inet/127.1/8080", "requests"],
                Value::Counter(7)
            ),
            "rt:client:requests{rt=\"incoming\",client=\"$/inet/127.1/8080\"} 7\n"
        );
        assert_eq!(
            one(
                &["rt", "incoming", "server", "0.0.0.0/4140", "status", "200"],
                Value::Counter(5)
            ),
            "rt:server:status:200{rt=\"incoming\",server=\"0.0.0.0/4140\"} 5\n"
        );
        assert_eq!(
            one(
                &[
                    "rt",
                    "incoming",
                    "client",
                    "#/io.l5d.fs/web",
                    "service",
                    "svc/web",
                    "requests"
                ],
                Value::Counter(7)
            ),
            "rt:client:service:requests{rt=\"incoming\",client=\"#/io.l5d.fs/web\",service=\"svc/web\"} 7\n"
        );
        assert_eq!(
            one(
                &["rt", "incoming", "client", "x", "loadbalancer", "size"],
                Value::Gauge(1.0)
            ),
            "rt:client:loadbalancer:size{rt=\"incoming\",client=\"x\"} 1.0\n"
        );
    }

    #[test]
    fn failure_chains_become_one_exception_label() {
        let path = [
            "rt",
            "incoming",
            "service",
            "svc/web",
            "failures",
            "ChannelWriteException",
            "ConnectException",
        ];
        assert_eq!(
            one(&path, Value::Counter(1)),
            "rt:service:failures{rt=\"incoming\",service=\"svc/web\",exception=\"ChannelWriteException:ConnectException\"} 1\n"
        );
        // Not under a client's service scope: Linkerd left those in the name.
        let nested = [
            "rt", "r", "client", "c", "service", "s", "failures", "Timeout",
        ];
        assert_eq!(
            one(&nested, Value::Counter(2)),
            "rt:client:service:failures:Timeout{rt=\"r\",client=\"c\",service=\"s\"} 2\n"
        );
    }

    #[test]
    fn stats_are_summaries_with_min_and_max_as_quantiles() {
        let summary = Summary {
            count: 1,
            sum: 1,
            min: 1,
            max: 1,
            avg: 1.0,
            p50: 1,
            p90: 1,
            p95: 1,
            p99: 1,
            p9990: 1,
            p9999: 1,
        };
        let entry = Entry {
            path: vec!["foo".into(), "bar".into(), "bas".into()],
            value: Value::Stat(summary),
        };
        assert_eq!(
            render(&[entry], "linkerd_"),
            "linkerd_foo:bar:bas_count 1
linkerd_foo:bar:bas_sum 1
linkerd_foo:bar:bas_avg 1.0
linkerd_foo:bar:bas{quantile=\"0\"} 1
linkerd_foo:bar:bas{quantile=\"0.5\"} 1
linkerd_foo:bar:bas{quantile=\"0.9\"} 1
linkerd_foo:bar:bas{quantile=\"0.95\"} 1
linkerd_foo:bar:bas{quantile=\"0.99\"} 1
linkerd_foo:bar:bas{quantile=\"0.999\"} 1
linkerd_foo:bar:bas{quantile=\"0.9999\"} 1
linkerd_foo:bar:bas{quantile=\"1\"} 1
"
        );
        let empty = Entry {
            path: vec!["s".into()],
            value: Value::Stat(Summary::default()),
        };
        assert_eq!(render(&[empty], ""), "");
    }

    #[test]
    fn other_scopes_are_escaped_into_the_name() {
        assert_eq!(
            one(&["namer", "#/io.l5d.k8s", "errors"], Value::Counter(3)),
            "namer:__io_l5d_k8s:errors 3\n"
        );
        assert_eq!(
            one(
                &["rt", "foo", "non_stack_match", "bar", "exception", "quux"],
                Value::Counter(1)
            ),
            "rt:non_stack_match:bar:exception:quux{rt=\"foo\"} 1\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            one(
                &["rt", "r", "service", "a\"b\\c", "requests"],
                Value::Counter(1)
            ),
            "rt:service:requests{rt=\"r\",service=\"a\\\"b\\\\c\"} 1\n"
        );
    }

    #[test]
    fn lines_of_one_name_stay_together() {
        let entry = |router: &str, n| Entry {
            path: vec!["rt".into(), router.into(), "x".into()],
            value: Value::Counter(n),
        };
        let other = Entry {
            path: vec!["a".into()],
            value: Value::Counter(0),
        };
        let text = render(&[entry("r1", 1), other, entry("r2", 2)], "");
        assert_eq!(text, "a 0\nrt:x{rt=\"r1\"} 1\nrt:x{rt=\"r2\"} 2\n");
    }
}
