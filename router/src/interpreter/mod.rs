//! How a router binds names: with its own namers (`default`), with a dtab
//! kept in a watched file (`io.l5d.fs`), or by asking namerd
//! (`io.l5d.namerd.http`).

use std::sync::Arc;

use dtab::{Dtab, Path};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use namers::config::{NamerConfig, NamerContext, build_namers};
use namers::system::SystemNamers;
use namers::system::inet::InetResolver;
use namers::{Binding, Interpreter, NameInterpreter};

use crate::config::KindConfig;

pub mod fs;
pub mod namerd_http;
mod params;

pub use fs::FsInterpreter;
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

/// Builds a router's interpreter from its `interpreter:` entry.
pub fn build(
    config: Option<&KindConfig>,
    default: &Interpreter,
) -> Result<Arc<dyn RouterNaming>, String> {
    let Some(config) = config else {
        return Ok(Arc::new(default.clone()));
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
            Ok(Arc::new(default.clone()))
        }
        fs::KIND => Ok(Arc::new(FsInterpreter::from_params(
            &config.params,
            default,
        )?)),
        namerd_http::KIND => Ok(Arc::new(NamerdHttpInterpreter::from_params(
            &config.params,
            default,
        )?)),
        other => Err(format!(
            "interpreter: unsupported interpreter kind {other:?}; supported kinds: {}",
            crate::config::INTERPRETERS.join(", ")
        )),
    }
}
