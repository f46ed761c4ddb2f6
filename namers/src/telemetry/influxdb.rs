//! InfluxDB line protocol, as Linkerd's `io.l5d.influxdb` telemeter wrote
//! it for Telegraf to scrape: one line per scope, its figures as the
//! fields, the router, server, service and client scopes as tags, and the
//! scraper's `Host` as the `host` tag. No timestamps: Telegraf stamps
//! what it reads.
//!
//! `rt/web/client/#/io.l5d.fs/ok/requests` and its siblings become
//! `rt:client,client=#/io.l5d.fs/ok,host=none,rt=web requests=4,success=4,…`;
//! `…/status/200` becomes a field `200` of the measurement
//! `rt:client:status`. A stat is its fields `<name>_count`, `_sum`, `_avg`,
//! `_min`, `_max`, `_p50`, `_p90`, `_p95`, `_p99`, `_p999`, `_p9999`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Entry, Value};

/// A line's measurement and its tags, sorted.
type Line<'a> = (String, Vec<(&'a str, &'a str)>);

/// The text for `entries`, tagged with `host` (`none` when the request had
/// no `Host`).
pub fn render(entries: &[Entry], host: Option<&str>) -> String {
    // Lines by measurement and tags; fields sorted by key within a line.
    let mut lines: BTreeMap<Line<'_>, BTreeMap<String, String>> = BTreeMap::new();
    for entry in entries {
        let Some((field, scope)) = entry.path.split_last() else {
            continue;
        };
        let (measurement, mut tags) = measurement(scope);
        tags.push(("host", host.unwrap_or("none")));
        tags.sort_unstable();
        let fields = lines.entry((measurement, tags)).or_default();
        match entry.value {
            Value::Counter(n) => {
                fields.insert(field.to_string(), n.to_string());
            }
            Value::Gauge(g) => {
                fields.insert(field.to_string(), format!("{g:?}"));
            }
            Value::Stat(s) => {
                let figures = [
                    ("avg", format!("{:?}", s.avg)),
                    ("count", s.count.to_string()),
                    ("max", s.max.to_string()),
                    ("min", s.min.to_string()),
                    ("p50", s.p50.to_string()),
                    ("p90", s.p90.to_string()),
                    ("p95", s.p95.to_string()),
                    ("p99", s.p99.to_string()),
                    ("p999", s.p9990.to_string()),
                    ("p9999", s.p9999.to_string()),
                    ("sum", s.sum.to_string()),
                ];
                for (suffix, value) in figures {
                    fields.insert(format!("{field}_{suffix}"), value);
                }
            }
            // Only push walks give samples.
            Value::Samples(_) => {}
        }
    }
    let mut out = String::new();
    for ((measurement, tags), fields) in &lines {
        out.push_str(&escape(measurement, false));
        for (key, value) in tags {
            let _ = write!(out, ",{}={}", escape(key, true), escape(value, true));
        }
        out.push(' ');
        for (i, (key, value)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{}={value}", escape(key, true));
        }
        out.push('\n');
    }
    out
}

/// The measurement and tags of the scope at `scope`: the router, server,
/// service and client scopes are tags, the rest joins the name with `:`.
fn measurement(scope: &[std::sync::Arc<str>]) -> (String, Vec<(&str, &str)>) {
    let mut name: Vec<&str> = Vec::new();
    let mut tags: Vec<(&str, &str)> = Vec::new();
    let has = |tags: &[(&str, &str)], key: &str| tags.iter().any(|(k, _)| *k == key);
    for segment in scope {
        name.push(segment);
        match *name.as_slice() {
            ["rt", router] if !has(&tags, "rt") => {
                tags.push(("rt", router));
                name.truncate(1);
            }
            ["rt", stack @ ("service" | "client" | "server"), ident] if !has(&tags, stack) => {
                tags.push((stack, ident));
                name.truncate(2);
            }
            ["rt", "client", "service", path] if !has(&tags, "service") => {
                tags.push(("service", path));
                name.truncate(3);
            }
            _ => {}
        }
    }
    if name.is_empty() {
        return ("root".to_string(), tags);
    }
    let joined: String = name
        .join(":")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    (joined, tags)
}

/// Line-protocol escaping: commas and spaces (and, in keys and tag
/// values, `=`) get a backslash.
fn escape(text: &str, equals: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == ',' || c == ' ' || (equals && c == '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::Summary;
    use super::*;

    fn entry(path: &[&str], value: Value) -> Entry {
        Entry {
            path: path.iter().map(|s| (*s).into()).collect(),
            value,
        }
    }

    #[test]
    fn scopes_become_tags_and_siblings_share_a_line() {
        let entries = [
            entry(
                &["rt", "incoming", "service", "svc/foo", "requests"],
                Value::Counter(1),
            ),
            entry(
                &["rt", "incoming", "client", "#/bar", "requests"],
                Value::Counter(1),
            ),
            entry(
                &["rt", "incoming", "client", "#/bar", "success"],
                Value::Counter(1),
            ),
            entry(
                &[
                    "rt", "incoming", "client", "#/bar", "service", "svc/foo", "requests",
                ],
                Value::Counter(1),
            ),
            entry(
                &["rt", "incoming", "server", "127.0.0.1/4141", "requests"],
                Value::Counter(1),
            ),
            entry(
                &["rt", "incoming", "client", "#/bar", "status", "200"],
                Value::Counter(3),
            ),
            entry(&["abc"], Value::Counter(1)),
            entry(&["def"], Value::Gauge(2.0)),
        ];
        assert_eq!(
            render(&entries, None),
            "root,host=none abc=1,def=2.0
rt:client,client=#/bar,host=none,rt=incoming requests=1,success=1
rt:client:service,client=#/bar,host=none,rt=incoming,service=svc/foo requests=1
rt:client:status,client=#/bar,host=none,rt=incoming 200=3
rt:server,host=none,rt=incoming,server=127.0.0.1/4141 requests=1
rt:service,host=none,rt=incoming,service=svc/foo requests=1
"
        );
    }

    #[test]
    fn stats_are_fields_and_the_host_is_a_tag() {
        let summary = Summary {
            count: 2,
            sum: 3,
            min: 1,
            max: 2,
            avg: 1.5,
            p50: 1,
            p90: 2,
            p95: 2,
            p99: 2,
            p9990: 2,
            p9999: 2,
        };
        let entries = [entry(&["foo", "bar", "bas"], Value::Stat(summary))];
        assert_eq!(
            render(&entries, Some("l5d:9990")),
            "foo:bar,host=l5d:9990 bas_avg=1.5,bas_count=2,bas_max=2,bas_min=1,bas_p50=1,bas_p90=2,bas_p95=2,bas_p99=2,bas_p999=2,bas_p9999=2,bas_sum=3\n"
        );
    }

    #[test]
    fn spaces_and_commas_are_escaped() {
        let entries = [entry(&["rt", "a b", "x"], Value::Counter(1))];
        assert_eq!(
            render(&entries, Some("h,1")),
            "rt,host=h\\,1,rt=a\\ b x=1\n"
        );
    }
}
