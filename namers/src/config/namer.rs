//! The `namers:` section of router and namerd configs, and the registry of
//! namer kinds. Adding a namer is one module plus one line in [`KINDS`].

use std::sync::Arc;

use dtab::Path;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::system::inet::InetResolver;
use crate::{Namer, NamerList};

/// Anything polymorphic by `kind` (an interpreter, a store, an interface,
/// a telemeter, a load balancer), with the kind's own keys kept aside for
/// the kind to check.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct KindConfig {
    /// Which kind.
    pub kind: String,
    /// Acknowledges an experimental kind, as Linkerd asks for some; this
    /// build asks for it nowhere and accepts it everywhere.
    #[serde(default)]
    pub experimental: bool,
    /// The kind's own keys.
    #[serde(flatten)]
    pub params: Map<String, Value>,
}

impl KindConfig {
    /// An entry of `kind` with these keys.
    pub fn new(kind: impl Into<String>, params: Map<String, Value>) -> KindConfig {
        KindConfig {
            kind: kind.into(),
            experimental: false,
            params,
        }
    }
}

/// One entry of `namers:`: the keys every namer has, and its own keys.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct NamerConfig {
    /// Which namer, e.g. `io.l5d.fs`.
    pub kind: String,
    /// Where it is mounted below `/#` (default: `/<kind>`).
    #[serde(default)]
    pub prefix: Option<String>,
    /// Acknowledges that an experimental namer is in use.
    #[serde(default)]
    pub experimental: bool,
    /// Post-processing of the namer's bound names, in order.
    #[serde(default)]
    pub transformers: Vec<crate::transform::TransformerConfig>,
    /// The kind's own keys, checked by the kind.
    #[serde(flatten)]
    pub params: Map<String, Value>,
}

/// What namers may share when they are built.
#[derive(Clone)]
pub struct NamerContext {
    /// DNS for host names found in namer answers.
    pub inet: Arc<InetResolver>,
}

/// Builds a namer mounted at a prefix from the kind's own keys.
type BuildNamer = fn(&Path, &Map<String, Value>, &NamerContext) -> Result<Arc<dyn Namer>, String>;

/// How one kind of namer is built from its config.
struct NamerKind {
    kind: &'static str,
    /// Linkerd requires an explicit prefix for some kinds.
    prefix_required: bool,
    build: BuildNamer,
}

/// Every namer kind this build knows.
const KINDS: &[NamerKind] = &[
    NamerKind {
        kind: "io.l5d.fs",
        prefix_required: false,
        build: build_fs,
    },
    NamerKind {
        kind: "io.l5d.rewrite",
        prefix_required: true,
        build: build_rewrite,
    },
    NamerKind {
        kind: "io.l5d.consul",
        prefix_required: false,
        build: crate::consul::build,
    },
    NamerKind {
        kind: "io.l5d.k8s",
        prefix_required: false,
        build: crate::k8s::build,
    },
    NamerKind {
        kind: "io.l5d.k8s.external",
        prefix_required: false,
        build: crate::k8s::build_external,
    },
    NamerKind {
        kind: "io.l5d.k8s.ns",
        prefix_required: false,
        build: crate::k8s::build_ns,
    },
    NamerKind {
        kind: "io.l5d.marathon",
        prefix_required: false,
        build: crate::marathon::build,
    },
    NamerKind {
        kind: "io.l5d.serversets",
        prefix_required: false,
        build: crate::serversets::build,
    },
    NamerKind {
        kind: "io.l5d.zkLeader",
        prefix_required: false,
        build: crate::zk_leader::build,
    },
    NamerKind {
        kind: "io.l5d.dnssrv",
        prefix_required: false,
        build: crate::dnssrv::build,
    },
    NamerKind {
        kind: "io.l5d.curator",
        prefix_required: false,
        build: crate::curator::build,
    },
];

/// The kinds that can be configured, for error messages and docs.
pub fn namer_kinds() -> Vec<&'static str> {
    KINDS.iter().map(|k| k.kind).collect()
}

/// Builds the configured namers. Like Linkerd, the list is tried in reverse
/// config order: the last namer listed is consulted first. Errors name the
/// entry, e.g. `namers[1] (io.l5d.fs): rootDir: ...`.
pub fn build_namers(configs: &[NamerConfig], context: &NamerContext) -> Result<NamerList, String> {
    let mut namers = NamerList::new();
    // What `io.l5d.replace` and `io.l5d.const` bind their path with: these
    // namers without their transformers (so a path cannot loop back into
    // the transformer binding it), and the `/$/` namers.
    let binder = crate::transform::PathBinder::unset();
    let mut untransformed = NamerList::new();
    for (i, config) in configs.iter().enumerate() {
        let at = format!("namers[{i}] ({})", config.kind);
        let kind = KINDS
            .iter()
            .find(|k| k.kind == config.kind)
            .ok_or_else(|| {
                super::linkerd::unknown_kind(
                    &format!("namers[{i}]"),
                    "namer",
                    &config.kind,
                    &namer_kinds(),
                )
            })?;
        let transformers = crate::transform::build_transformers(&config.transformers, &binder)
            .map_err(|e| format!("{at}: {e}"))?;
        let prefix = match &config.prefix {
            Some(p) => Path::read(p).map_err(|e| format!("{at}: prefix: {e}"))?,
            None if kind.prefix_required => {
                return Err(format!("{at}: prefix is required for this kind"));
            }
            None => {
                Path::from_strs([kind.kind]).ok_or_else(|| format!("{at}: bad default prefix"))?
            }
        };
        let full_prefix = Path::from_strs(["#"]).unwrap_or_default().concat(&prefix);
        let mut namer = (kind.build)(&full_prefix, &config.params, context)
            .map_err(|e| format!("{at}: {e}"))?;
        untransformed.push((full_prefix.clone(), namer.clone()));
        if !transformers.is_empty() {
            namer = Arc::new(crate::transform::TransformingNamer::new(
                namer,
                transformers,
            ));
        }
        namers.push((full_prefix, namer));
    }
    namers.reverse();
    untransformed.reverse();
    binder.set(crate::Interpreter::new(
        untransformed,
        crate::system::SystemNamers::with_linkerd_namers(context.inet.clone()),
    ));
    Ok(namers)
}

/// Deserializes a kind's own keys strictly, naming the key on error.
pub fn kind_params<T: DeserializeOwned>(params: &Map<String, Value>) -> Result<T, String> {
    serde_path_to_error::deserialize(Value::Object(params.clone())).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.into_inner().to_string()
        } else {
            format!("{path}: {}", e.into_inner())
        }
    })
}

fn build_fs(
    prefix: &Path,
    params: &Map<String, Value>,
    _: &NamerContext,
) -> Result<Arc<dyn Namer>, String> {
    let config: crate::fs::FsConfig = kind_params(params)?;
    Ok(config.build(prefix.clone()).map_err(|e| e.to_string())?)
}

fn build_rewrite(
    _: &Path,
    params: &Map<String, Value>,
    _: &NamerContext,
) -> Result<Arc<dyn Namer>, String> {
    let config: crate::rewrite::RewriteConfig = kind_params(params)?;
    Ok(Arc::new(config.validate().map_err(|e| e.to_string())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> NamerContext {
        NamerContext {
            inet: Arc::new(InetResolver::system().unwrap()),
        }
    }

    fn configs(yaml: &str) -> Vec<NamerConfig> {
        crate::config::parse("test.yaml", yaml).unwrap()
    }

    #[tokio::test]
    async fn builds_in_reverse_order_under_hash_prefixes() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "- kind: io.l5d.fs\n  rootDir: {}\n- kind: io.l5d.rewrite\n  prefix: /rw\n  pattern: /{{x}}\n  name: /srv/{{x}}\n",
            dir.path().display()
        );
        let namers = build_namers(&configs(&yaml), &context()).unwrap();
        let prefixes: Vec<String> = namers.iter().map(|(p, _)| p.show()).collect();
        assert_eq!(prefixes, ["/#/rw", "/#/io.l5d.fs"]);
    }

    #[tokio::test]
    async fn errors_name_the_entry_and_the_key() {
        let err = build_namers(&configs("- kind: io.l5d.fs\n  rootdir: /tmp\n"), &context())
            .err()
            .unwrap();
        assert!(err.starts_with("namers[0] (io.l5d.fs): "), "{err}");
        assert!(err.contains("unknown field `rootdir`"), "{err}");

        let err = build_namers(&configs("- kind: io.l5d.nope\n"), &context())
            .err()
            .unwrap();
        assert!(err.contains("unknown namer kind \"io.l5d.nope\""), "{err}");
        assert!(err.contains("io.l5d.fs"), "{err}");

        let err = build_namers(
            &configs("- kind: io.l5d.rewrite\n  pattern: /a\n  name: /b\n"),
            &context(),
        )
        .err()
        .unwrap();
        assert!(err.contains("prefix is required"), "{err}");

        let err = build_namers(
            &configs("- kind: io.l5d.fs\n  rootDir: /does/not/exist\n"),
            &context(),
        )
        .err()
        .unwrap();
        assert!(err.contains("/does/not/exist"), "{err}");
    }
}
