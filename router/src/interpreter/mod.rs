//! How a router binds names: with its own namers (`default`), with its
//! own namers and a watched dtab kept in a file (`io.l5d.fs`), a ConfigMap
//! (`io.l5d.k8s.configMap`) or Consul (`io.l5d.consul.interpreter`), or by
//! asking namerd (`io.l5d.namerd`, `io.l5d.namerd.http`, `io.l5d.mesh`).

use std::sync::Arc;
use std::time::Duration;

use dtab::{Dtab, Path};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use namers::config::{NamerConfig, NamerContext, build_namers};
use namers::system::SystemNamers;
use namers::system::inet::InetResolver;
use namers::transform::{
    PathBinder, Transform, TransformerConfig, build_transformers, show_in_delegation,
    transform_binding,
};
use namers::{Binding, Interpreter, NameInterpreter};

use crate::config::KindConfig;

pub mod consul;
pub mod fs;
pub mod k8s_config_map;
pub mod lingering;
pub mod mesh;
pub mod namerd_http;
pub mod namerd_thrift;
mod params;
pub mod remote;
pub mod watched;

pub use fs::FsInterpreter;
pub use lingering::Lingering;
pub use namerd_http::NamerdHttpInterpreter;

/// What a router needs from an interpreter.
pub trait RouterNaming: Send + Sync + 'static {
    /// Binds `path` through `dtab` (the router's dtab plus the request's),
    /// live.
    fn bind(&self, dtab: &Dtab, path: &Path) -> Binding;

    /// Explains the binding as Linkerd's delegator JSON.
    fn delegate<'a>(
        &'a self,
        dtab: &'a Dtab,
        path: &'a Path,
    ) -> BoxFuture<'a, Result<serde_json::Value, String>>;

    /// `Ok` once the interpreter has heard from its source (namerd, a dtab
    /// file), else why not; asked by `/admin/ready`, and may ask the source
    /// itself. An interpreter that binds with the router's own namers is
    /// ready at once.
    fn ready(&self) -> BoxFuture<'_, Result<(), String>> {
        async { Ok(()) }.boxed()
    }

    /// Lists the interpreter's own figures under `rt/<router>/interpreter`
    /// (none for one that binds with the router's namers: theirs are under
    /// `namer/`).
    fn list_stats(&self, _interpreter: &mut namers::telemetry::Scope<'_>) {}
}

impl RouterNaming for Interpreter {
    fn bind(&self, dtab: &Dtab, path: &Path) -> Binding {
        NameInterpreter::bind(self, dtab, path)
    }

    fn delegate<'a>(
        &'a self,
        dtab: &'a Dtab,
        path: &'a Path,
    ) -> BoxFuture<'a, Result<serde_json::Value, String>> {
        async move {
            Interpreter::delegate(self, dtab, path)
                .await
                .map(|tree| namers::json::delegate_tree(&tree))
                .map_err(|e| e.to_string())
        }
        .boxed()
    }
}

/// The default interpreter: the configured namers, then `/$/` namers.
pub fn default_interpreter(
    namers: &[NamerConfig],
    inet: &Arc<InetResolver>,
) -> Result<Interpreter, String> {
    let list = build_namers(namers, &NamerContext { inet: inet.clone() })?;
    Ok(Interpreter::new(
        list,
        SystemNamers::with_linkerd_namers(inet.clone()),
    ))
}

/// Builds a router's interpreter from its `interpreter:` entry, with the
/// `transformers` it lists applied to every binding. `idle_ttl` is the
/// router's `bindingCache.idleTtlSecs`: how long a binding (and the watches
/// of namers or namerd under it) is kept after the binding cache lets go of
/// it, at most `max_idle` of them.
pub fn build(
    config: Option<&KindConfig>,
    default: &Interpreter,
    idle_ttl: Duration,
    max_idle: usize,
) -> Result<Arc<dyn RouterNaming>, String> {
    let linger = |naming: Arc<dyn RouterNaming>| -> Arc<dyn RouterNaming> {
        Arc::new(Lingering::new(naming, idle_ttl, max_idle))
    };
    let Some(config) = config else {
        return Ok(linger(Arc::new(default.clone())));
    };
    let mut config = config.clone();
    let Some(listed) = config.params.remove("transformers") else {
        return build_kind(&config, default, idle_ttl, max_idle);
    };
    let listed: Vec<TransformerConfig> =
        serde_json::from_value(listed).map_err(|e| format!("interpreter: transformers: {e}"))?;
    // `io.l5d.replace` and `io.l5d.const` bind their path with the router's
    // own namers, as Linkerd's global interpreter does.
    let binder = PathBinder::of(default.clone());
    let transformers =
        build_transformers(&listed, &binder).map_err(|e| format!("interpreter: {e}"))?;
    let inner = build_kind(&config, default, idle_ttl, max_idle)?;
    Ok(Arc::new(Transformed {
        inner,
        transformers,
    }))
}

/// An interpreter whose bound names are transformed.
struct Transformed {
    inner: Arc<dyn RouterNaming>,
    transformers: Vec<Transform>,
}

impl RouterNaming for Transformed {
    fn bind(&self, dtab: &Dtab, path: &Path) -> Binding {
        transform_binding(self.inner.bind(dtab, path), &self.transformers)
    }

    // The delegator shows tree transformers (`io.l5d.replace`,
    // `io.l5d.const`) as transformation nodes; per-name ones are not shown.
    fn delegate<'a>(
        &'a self,
        dtab: &'a Dtab,
        path: &'a Path,
    ) -> BoxFuture<'a, Result<serde_json::Value, String>> {
        async move {
            let json = self.inner.delegate(dtab, path).await?;
            Ok(show_in_delegation(json, &self.transformers).await)
        }
        .boxed()
    }

    fn ready(&self) -> BoxFuture<'_, Result<(), String>> {
        self.inner.ready()
    }

    fn list_stats(&self, interpreter: &mut namers::telemetry::Scope<'_>) {
        self.inner.list_stats(interpreter);
    }
}

fn build_kind(
    config: &KindConfig,
    default: &Interpreter,
    idle_ttl: Duration,
    max_idle: usize,
) -> Result<Arc<dyn RouterNaming>, String> {
    // Those that bind with the router's own namers linger here; namerd's
    // keeps its watches to namerd for the same time itself.
    let linger = |naming: Arc<dyn RouterNaming>| -> Arc<dyn RouterNaming> {
        Arc::new(Lingering::new(naming, idle_ttl, max_idle))
    };
    match config.kind.as_str() {
        "default" => {
            if let Some(key) = config.params.keys().next() {
                return Err(params::invalid(
                    "default",
                    key,
                    format!("unknown field `{key}`; the default interpreter has no keys"),
                ));
            }
            Ok(linger(Arc::new(default.clone())))
        }
        fs::KIND => Ok(linger(Arc::new(FsInterpreter::from_params(
            &config.params,
            default,
        )?))),
        consul::KIND => Ok(linger(Arc::new(consul::from_params(
            &config.params,
            default,
        )?))),
        k8s_config_map::KIND => Ok(linger(Arc::new(k8s_config_map::from_params(
            &config.params,
            default,
        )?))),
        namerd_http::KIND => Ok(Arc::new(NamerdHttpInterpreter::from_params(
            &config.params,
            default,
            idle_ttl,
        )?)),
        namerd_thrift::KIND => Ok(Arc::new(namerd_thrift::from_params(
            &config.params,
            default,
            idle_ttl,
        )?)),
        mesh::KIND => Ok(Arc::new(mesh::from_params(
            &config.params,
            default,
            idle_ttl,
        )?)),
        other => Err(namers::config::linkerd::unknown_kind(
            "interpreter",
            "interpreter",
            other,
            crate::config::INTERPRETERS,
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn kind_config(json: serde_json::Value) -> KindConfig {
        serde_json::from_value(json).unwrap()
    }

    #[tokio::test]
    async fn interpreter_transformers_apply_to_every_binding() {
        let inet = Arc::new(InetResolver::system().unwrap());
        let default = default_interpreter(&[], &inet).unwrap();
        let config = kind_config(serde_json::json!({
            "kind": "default",
            "transformers": [{"kind": "io.l5d.port", "port": 4141}],
        }));
        let naming = build(Some(&config), &default, Duration::from_secs(600), 1000).unwrap();
        let path = Path::read("/$/inet/127.0.0.1/80").unwrap();
        let binding = naming.bind(&Dtab::default(), &path);
        let namers::Activity::Ok(dtab::NameTree::Leaf(bound)) = &*binding.load() else {
            panic!("not bound: {:?}", binding.load())
        };
        assert!(bound.id.show().starts_with("/%/io.l5d.port/4141/"));
        let namers::Addr::Bound(set) = &*bound.addr.load() else {
            panic!("no address")
        };
        assert_eq!(set.endpoints()[0].addr.to_string(), "127.0.0.1:4141");

        let config = kind_config(serde_json::json!({
            "kind": "default",
            "transformers": [{"kind": "io.l5d.nope", "path": "/x"}],
        }));
        let err = build(Some(&config), &default, Duration::from_secs(600), 1000)
            .err()
            .unwrap();
        assert!(
            err.contains("unknown transformer kind \"io.l5d.nope\""),
            "{err}"
        );
        let config = kind_config(serde_json::json!({
            "kind": "default",
            "transformers": [{"kind": "io.l5d.const"}],
        }));
        let err = build(Some(&config), &default, Duration::from_secs(600), 1000)
            .err()
            .unwrap();
        assert!(
            err.starts_with("interpreter: transformers[0] (io.l5d.const): missing field `path`"),
            "{err}"
        );
    }

    /// The first leaf's id and endpoints once its address has answered.
    async fn bound_leaf(binding: &Binding) -> (String, String) {
        for _ in 0..200 {
            if let namers::Activity::Ok(tree) = &*binding.load()
                && let Some(leaves) = tree.eval()
                && let Some(bound) = leaves.first()
                && let namers::Addr::Bound(set) = &*bound.addr.load()
            {
                return (bound.id.show(), set.endpoints()[0].addr.to_string());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never bound: {:?}", binding.load())
    }

    #[tokio::test]
    async fn replace_and_const_on_the_interpreter_and_in_its_delegator() {
        let inet = Arc::new(InetResolver::system().unwrap());
        let default = default_interpreter(&[], &inet).unwrap();
        let naming = |kind: &str| {
            let config = kind_config(serde_json::json!({
                "kind": "default",
                "transformers": [{"kind": kind, "path": "/$/inet/127.0.0.1/9999"}],
            }));
            build(Some(&config), &default, Duration::from_secs(600), 1000).unwrap()
        };
        let dtab = Dtab::read("/svc/web=>/$/inet/127.0.0.1/80;/svc/gone=>~").unwrap();
        let web = Path::read("/svc/web").unwrap();
        let gone = Path::read("/svc/gone").unwrap();

        let replace = naming("io.l5d.replace");
        let binding = replace.bind(&dtab, &web);
        assert_eq!(
            bound_leaf(&binding).await,
            (
                "/%/io.l5d.replace/$/inet/127.0.0.1/9999".to_string(),
                "127.0.0.1:9999".to_string()
            )
        );
        let neg = replace.bind(&dtab, &gone);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(*neg.load(), namers::Activity::Ok(dtab::NameTree::Neg));
        let json = replace.delegate(&dtab, &web).await.unwrap();
        let shown = json.to_string();
        assert!(shown.contains("\"type\":\"transformation\""), "{shown}");
        assert!(shown.contains("\"name\":\"io.l5d.replace\""), "{shown}");
        // The name before, and the one after.
        assert!(shown.contains("\"id\":\"/$/inet/127.0.0.1/80\""), "{shown}");
        assert!(
            shown.contains("\"id\":\"/%/io.l5d.replace/$/inet/127.0.0.1/9999\""),
            "{shown}"
        );

        let constant = naming("io.l5d.const");
        let binding = constant.bind(&dtab, &gone);
        assert_eq!(
            bound_leaf(&binding).await,
            (
                "/%/io.l5d.const/$/inet/127.0.0.1/9999".to_string(),
                "127.0.0.1:9999".to_string()
            )
        );
        let json = constant.delegate(&dtab, &gone).await.unwrap();
        assert_eq!(json["type"], "transformation", "{json}");
        assert_eq!(json["name"], "io.l5d.const", "{json}");
        assert_eq!(json["path"], "/svc/gone", "{json}");
        assert_eq!(
            json["tree"]["bound"]["id"], "/%/io.l5d.const/$/inet/127.0.0.1/9999",
            "{json}"
        );
    }
}
