//! docs/migrating-from-linkerd.md lists every kind Linkerd 1.x has and
//! every Linkerd key this build does not take yet. This keeps the guide
//! true: each kind's "yes" or "not yet" must match what the build accepts,
//! and no kind or key may be missing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use router::identify::{Protocol, identifier_kinds};

const GUIDE: &str = include_str!("../../docs/migrating-from-linkerd.md");

/// The guide's heading for each of Linkerd's kind lists.
fn heading(list: &str) -> &'static str {
    match list {
        "namer" => "Namers",
        "transformer" => "Transformers",
        "http identifier" => "HTTP identifiers",
        "h2 identifier" => "H2 identifiers",
        "interpreter" => "Interpreters",
        "telemetry" => "Telemetry",
        "storage" => "namerd storage",
        "interface" => "namerd interfaces",
        "protocol" => "Protocols",
        "loadBalancer" => "Load balancers",
        "failureAccrual" => "Failure accrual",
        "responseClassifier" => "Response classifiers",
        "announcer" => "Announcers",
        other => panic!("the guide has no heading for Linkerd's {other:?} kinds"),
    }
}

/// What this build takes, for each of Linkerd's kind lists.
fn supported(list: &str) -> Vec<&'static str> {
    match list {
        "namer" => namers::config::namer_kinds(),
        "transformer" => namers::transform::transformer_kinds(),
        "http identifier" => identifier_kinds(Protocol::Http),
        "h2 identifier" => identifier_kinds(Protocol::H2),
        "interpreter" => router::config::INTERPRETERS.to_vec(),
        "telemetry" => namers::telemetry::telemeters::TELEMETERS.to_vec(),
        "storage" => namerd::config::storage_kinds(),
        "interface" => namerd::config::interface_kinds(),
        "protocol" => router::config::PROTOCOLS.to_vec(),
        "loadBalancer" => router::client::balance::KINDS.to_vec(),
        "failureAccrual" => router::client::accrual::KINDS.to_vec(),
        "responseClassifier" => {
            let mut kinds = router::policy::classifier::classifier_kinds(false);
            kinds.extend(router::policy::classifier::classifier_kinds(true));
            kinds
        }
        "announcer" => Vec::new(),
        other => panic!("no list of supported {other:?} kinds"),
    }
}

/// The rows `| `kind` | yes/not yet | ... |` under each `### heading`.
fn tables() -> BTreeMap<String, BTreeMap<String, String>> {
    let mut tables = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in GUIDE.lines() {
        if let Some(title) = line.strip_prefix("### ") {
            current = Some(title.trim().to_string());
            continue;
        }
        if line.starts_with("## ") {
            current = None;
            continue;
        }
        let Some(title) = &current else { continue };
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || !cells[1].starts_with('`') {
            continue;
        }
        let kind = cells[1].trim_matches('`').to_string();
        let here = cells[2].to_string();
        let table: &mut BTreeMap<String, String> = tables.entry(title.clone()).or_default();
        assert!(
            table.insert(kind.clone(), here).is_none(),
            "{title}: `{kind}` is listed twice"
        );
    }
    tables
}

#[test]
fn every_linkerd_kind_is_listed_with_what_the_build_takes() {
    let tables = tables();
    let mut wrong = Vec::new();
    for (list, kinds) in namers::config::linkerd::kinds() {
        let title = heading(list);
        let Some(table) = tables.get(title) else {
            wrong.push(format!("no `### {title}` table"));
            continue;
        };
        let supported = supported(list);
        for kind in *kinds {
            let expected = if supported.contains(kind) {
                "yes"
            } else {
                "not yet"
            };
            match table.get(*kind) {
                None => wrong.push(format!(
                    "{title}: `{kind}` is missing (should be {expected})"
                )),
                Some(here) if here != expected => wrong.push(format!(
                    "{title}: `{kind}` says {here:?}; the build says {expected:?}"
                )),
                Some(_) => {}
            }
        }
        for listed in table.keys() {
            assert!(
                kinds.contains(&listed.as_str()),
                "{title}: `{listed}` is not one of Linkerd's kinds"
            );
        }
    }
    assert!(
        wrong.is_empty(),
        "docs/migrating-from-linkerd.md:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_key_not_taken_yet_is_listed() {
    let section = GUIDE
        .split("## Linkerd's keys this build does not take yet")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("the guide has the section of keys not taken yet");
    let listed: Vec<&str> = section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .collect();
    let keys = namers::config::linkerd::keys();
    let missing: Vec<&&str> = keys.iter().filter(|k| !listed.contains(k)).collect();
    assert!(
        missing.is_empty(),
        "keys missing from the guide: {missing:?}"
    );
    let extra: Vec<&&str> = listed.iter().filter(|k| !keys.contains(k)).collect();
    assert!(
        extra.is_empty(),
        "keys the guide lists as not taken that the build takes: {extra:?}"
    );
}
