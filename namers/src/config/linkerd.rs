//! What Linkerd 1.x's config files may say: the kinds of each list and the
//! keys this build does not take yet. A config that uses one of them is
//! refused with "not supported yet" instead of an error that reads like a
//! typo; kinds and keys Linkerd never had get the usual "unknown".
//!
//! Taken from Linkerd 1.x's docs (`linkerd/docs/*.md`, `namerd/docs/*.md`)
//! and its plugin registrations (`configId` of each initializer).

/// Every kind Linkerd 1.x has, by the config entry that names it.
const KINDS: &[(&str, &[&str])] = &[
    (
        "namer",
        &[
            "io.l5d.fs",
            "io.l5d.rewrite",
            "io.l5d.consul",
            "io.l5d.k8s",
            "io.l5d.k8s.external",
            "io.l5d.k8s.ns",
            "io.l5d.k8s.istio",
            "io.l5d.marathon",
            "io.l5d.serversets",
            "io.l5d.zkLeader",
            "io.l5d.curator",
            "io.l5d.dnssrv",
            "io.l5d.rancher",
        ],
    ),
    (
        "transformer",
        &[
            "io.l5d.k8s.daemonset",
            "io.l5d.k8s.localnode",
            "io.l5d.port",
            "io.l5d.localhost",
            "io.l5d.specificHost",
            "io.l5d.replace",
            "io.l5d.const",
        ],
    ),
    (
        "http identifier",
        &[
            "io.l5d.methodAndHost",
            "io.l5d.path",
            "io.l5d.header",
            "io.l5d.header.token",
            "io.l5d.static",
            "io.l5d.ingress",
            "io.l5d.k8s.istio",
            "io.l5d.k8s.istio-ingress",
        ],
    ),
    (
        "h2 identifier",
        &[
            "io.l5d.header.token",
            "io.l5d.header.path",
            "io.l5d.ingress",
            "io.l5d.k8s.istio",
            "io.l5d.k8s.istio-ingress",
        ],
    ),
    (
        "interpreter",
        &[
            "default",
            "io.l5d.fs",
            "io.l5d.namerd",
            "io.l5d.namerd.http",
            "io.l5d.mesh",
            "io.l5d.consul.interpreter",
            "io.l5d.k8s.configMap",
            "io.l5d.k8s.istio",
        ],
    ),
    (
        "telemetry",
        &[
            "io.l5d.prometheus",
            "io.l5d.influxdb",
            "io.l5d.recentRequests",
            "io.l5d.statsd",
            "io.l5d.tracelog",
            "io.l5d.zipkin",
        ],
    ),
    (
        "storage",
        &[
            "io.l5d.inMemory",
            "io.l5d.zk",
            "io.l5d.etcd",
            "io.l5d.consul",
            "io.l5d.k8s",
        ],
    ),
    (
        "interface",
        &[
            "io.l5d.httpController",
            "io.l5d.thriftNameInterpreter",
            "io.l5d.mesh",
            "io.l5d.destination",
        ],
    ),
    ("protocol", &["http", "h2", "thrift", "thriftmux", "mux"]),
    (
        "loadBalancer",
        &["p2c", "ewma", "aperture", "heap", "roundRobin"],
    ),
    (
        "failureAccrual",
        &[
            "io.l5d.consecutiveFailures",
            "io.l5d.successRate",
            "io.l5d.successRateWindowed",
            "none",
        ],
    ),
    (
        "responseClassifier",
        &[
            "io.l5d.http.nonRetryable5XX",
            "io.l5d.http.retryableRead5XX",
            "io.l5d.http.retryableIdempotent5XX",
            "io.l5d.http.retryableAll5XX",
            "io.l5d.h2.nonRetryable5XX",
            "io.l5d.h2.retryableRead5XX",
            "io.l5d.h2.retryableIdempotent5XX",
            "io.l5d.h2.retryableAll5XX",
            "io.l5d.h2.grpc.default",
            "io.l5d.h2.grpc.alwaysRetryable",
            "io.l5d.h2.grpc.neverRetryable",
        ],
    ),
    ("announcer", &["io.l5d.serversets"]),
];

/// Keys Linkerd 1.x has that this build does not take yet, as key paths
/// without list indexes (`routers.client.failureAccrual`). Each applies to
/// the keys it names and everything below them.
const KEYS: &[&str] = &[
    // linkerd.yaml, top level.
    "tracers",
    // admin.
    "admin.socketOptions",
    "admin.httpIdentifierPort",
    "admin.security",
    "admin.workerThreads",
    // routers.
    "routers.announcers",
    "routers.originator",
    "routers.streamAfterContentLengthKB",
    "routers.maxErrResponseKB",
    "routers.maxRequestKB",
    "routers.maxResponseKB",
    "routers.compressionLevel",
    "routers.streamingEnabled",
    "routers.loggers",
    "routers.socketOptions",
    // routers[].servers.
    "routers.servers.socketOptions",
    "routers.servers.announce",
    "routers.servers.timestampHeader",
    "routers.servers.windowUpdateRatio",
    "routers.servers.headerTableBytes",
    "routers.servers.initialStreamWindowBytes",
    "routers.servers.maxFrameBytes",
    "routers.servers.maxHeaderListByts",
    // routers[].client (io.l5d.global and io.l5d.static).
    "routers.client.clientSession",
    "routers.client.requestAuthorizers",
    "routers.client.headerTableBytes",
    "routers.client.initialStreamWindowBytes",
    "routers.client.maxFrameBytes",
    "routers.client.maxHeaderListByts",
    // routers[].service (io.l5d.global and io.l5d.static).
    "routers.service.classificationTimeoutMs",
    "routers.service.retryBufferSize.responseBytes",
];

/// Every kind Linkerd 1.x has, by the config entry that names it
/// (`namer`, `http identifier`, `storage`, ...).
pub fn kinds() -> &'static [(&'static str, &'static [&'static str])] {
    KINDS
}

/// The Linkerd keys this build does not take yet, as key paths without
/// list indexes.
pub fn keys() -> &'static [&'static str] {
    KEYS
}

/// Whether Linkerd 1.x has a kind `kind` for entries of `what` (`namer`,
/// `identifier`, `interpreter`, ...).
pub fn is_linkerd_kind(what: &str, kind: &str) -> bool {
    KINDS
        .iter()
        .any(|(list, kinds)| *list == what && kinds.contains(&kind))
}

/// Whether the key at `path` (list indexes allowed, `routers[0].client.tls`)
/// is, or is inside, a Linkerd key this build does not take yet. An entry
/// of an `io.l5d.static` client or service (`routers[0].client.configs[1]`)
/// takes the same keys as the block itself.
pub fn is_linkerd_key(path: &str) -> bool {
    let path = without_indexes(path)
        .replace("routers.client.configs.", "routers.client.")
        .replace("routers.service.configs.", "routers.service.");
    KEYS.iter().any(|key| {
        path == *key
            || path
                .strip_prefix(key)
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// `routers[0].servers[1].tls` → `routers.servers.tls`.
fn without_indexes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => in_index = true,
            ']' => in_index = false,
            _ if !in_index => out.push(c),
            _ => {}
        }
    }
    out
}

/// The error for an entry of `what` whose kind is not one this build
/// has: "not supported yet" for a kind Linkerd has, "unknown" otherwise.
/// `at` is where the entry is (`namers[2]`); `supported` what this build
/// offers instead.
pub fn unknown_kind(at: &str, what: &str, kind: &str, supported: &[&str]) -> String {
    let supported = supported.join(", ");
    if is_linkerd_kind(what, kind) {
        format!(
            "{at}: {what} kind {kind:?} is not supported yet (it is a Linkerd kind this build does \
             not have); supported kinds: {supported}"
        )
    } else {
        format!("{at}: unknown {what} kind {kind:?}; supported kinds: {supported}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linkerd_kinds_are_known_by_list() {
        assert!(is_linkerd_kind("namer", "io.l5d.marathon"));
        assert!(is_linkerd_kind("telemetry", "io.l5d.prometheus"));
        assert!(!is_linkerd_kind("namer", "io.l5d.prometheus"));
        assert!(!is_linkerd_kind("namer", "io.l5d.nope"));
    }

    #[test]
    fn keys_match_below_them_and_ignore_indexes() {
        assert!(is_linkerd_key("routers[0].client.clientSession"));
        assert!(is_linkerd_key(
            "routers[1].client.configs[3].clientSession.idleTimeMs"
        ));
        assert!(is_linkerd_key("routers[0].servers[2].announce"));
        assert!(!is_linkerd_key("routers[0].client.clientSessionx"));
        assert!(!is_linkerd_key("routers[0].servers[0].prot"));
    }

    #[test]
    fn kind_errors_say_whether_linkerd_has_the_kind() {
        let e = unknown_kind("namers[1]", "namer", "io.l5d.marathon", &["io.l5d.fs"]);
        assert!(e.starts_with("namers[1]: namer kind \"io.l5d.marathon\" is not supported yet"));
        assert!(e.ends_with("supported kinds: io.l5d.fs"), "{e}");
        let e = unknown_kind("namers[1]", "namer", "io.l5d.fss", &["io.l5d.fs"]);
        assert!(
            e.starts_with("namers[1]: unknown namer kind \"io.l5d.fss\""),
            "{e}"
        );
    }
}
