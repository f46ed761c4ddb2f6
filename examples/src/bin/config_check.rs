//! `config_check`: runs what `router --check` or `namerd --check` runs on a
//! config given as text, in this process's environment, and prints one
//! verdict line: `deploy-config-check: ok`, or the error as a JSON string.
//!
//! The manifest tests (`examples/tests/deploy_manifests`) run it once per
//! config embedded in a ConfigMap, with the environment the container
//! would have (`POD_IP`, `NODE_NAME`, ...), which the Kubernetes
//! transformers read when they are built.
//!
//! ```sh
//! CONFIG_CHECK_TEXT="$(cat router.yaml)" POD_IP=10.0.0.5 \
//!   cargo run -p examples --bin config_check -- router router.yaml
//! ```

use anyhow::{Context as _, Result, bail};

/// What the verdict line starts with.
const VERDICT: &str = "deploy-config-check:";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(program), Some(name)) = (args.next(), args.next()) else {
        bail!("usage: config_check <router|namerd> <name>, with the config in CONFIG_CHECK_TEXT");
    };
    let text = std::env::var("CONFIG_CHECK_TEXT").context("CONFIG_CHECK_TEXT")?;
    let verdict = match program.as_str() {
        "router" => check_router(&name, &text),
        "namerd" => check_namerd(&name, &text),
        other => bail!("no program {other:?} (router or namerd)"),
    };
    match verdict {
        Ok(()) => println!("{VERDICT} ok"),
        Err(e) => println!("{VERDICT} {}", serde_json::to_string(&e)?),
    }
    Ok(())
}

/// What `router --check` runs (router/src/bin/router.rs), on a text.
fn check_router(name: &str, text: &str) -> Result<(), String> {
    let source = namers::config::Source::new(name, text);
    let config: router::config::Config = source.parse().map_err(|e| e.to_string())?;
    let specs = config
        .validate()
        .map_err(|e| source.error(&e).to_string())?;
    runtime()?.block_on(async {
        router::server::check(&config, &specs)
            .and_then(|()| router::admin::tls(&config.admin).map(drop))
            .map_err(|e| source.error(&e).to_string())
    })
}

/// What `namerd --check` runs (namerd/src/bin/namerd.rs), on a text.
fn check_namerd(name: &str, text: &str) -> Result<(), String> {
    let source = namers::config::Source::new(name, text);
    let config: namerd::config::NamerdConfig = source.parse().map_err(|e| e.to_string())?;
    config
        .validate()
        .map_err(|e| source.error(&e).to_string())?;
    runtime()?.block_on(async {
        namerd::server::build(&config)
            .map(drop)
            .map_err(|e| source.error(&e).to_string())
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("a runtime: {e}"))
}
