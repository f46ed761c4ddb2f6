//! The quickstart: namerd on its embedded store, a router that asks namerd
//! for its routes, and two versions of a demo service behind a 90/10 split.
//!
//! `cargo run --release -p examples --bin quickstart [-- --log-format json]`

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context as _;
use bytes::Bytes;
use clap::Parser;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// Where everything listens when the port is free (else any free port).
const ROUTER_PORT: u16 = 4140;
const ROUTER_ADMIN_PORT: u16 = 9990;
const NAMERD_PORT: u16 = 4180;
const NAMERD_ADMIN_PORT: u16 = 9991;

/// The dtab stored in namerd: 90 % of /svc/web to v1, 10 % to v2.
const DTAB: &str =
    "/svc => /#/io.l5d.fs;\n/svc/web => 9 * /#/io.l5d.fs/web-v1 & 1 * /#/io.l5d.fs/web-v2;\n";

/// namerd, a router and two demo backends on this machine.
#[derive(Parser)]
struct Args {
    /// How log lines are written to stderr: `text` (coloured only on a
    /// terminal) or `json` (one object a line), as for `router` and `namerd`.
    #[arg(long, env = namers::logging::FORMAT_ENV, default_value = "text",
          value_parser = namers::logging::LogFormat::parse)]
    log_format: namers::logging::LogFormat,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    namers::logging::init(args.log_format, "warn");
    let work = std::env::current_dir()?.join("quickstart-data");
    std::fs::create_dir_all(work.join("disco")).context("creating quickstart-data/")?;

    // Two versions of a demo service.
    let v1 = demo_backend("web v1").await?;
    let v2 = demo_backend("web v2").await?;
    std::fs::write(
        work.join("disco/web-v1"),
        format!("{} {}\n", v1.ip(), v1.port()),
    )?;
    std::fs::write(
        work.join("disco/web-v2"),
        format!("{} {}\n", v2.ip(), v2.port()),
    )?;

    // namerd, with the dtab seeded on first run.
    let namerd_port = free_or_any(NAMERD_PORT);
    let namerd_yaml = format!(
        "admin:\n  port: {}\nstorage:\n  kind: io.switchboard.disk\n  dir: {}\nnamers:\n- kind: io.l5d.fs\n  rootDir: {}\ninterfaces:\n- kind: io.l5d.httpController\n  port: {namerd_port}\n",
        free_or_any(NAMERD_ADMIN_PORT),
        work.join("namerd").display(),
        work.join("disco").display(),
    );
    let namerd_config = write_config(&work, "namerd.yaml", &namerd_yaml)?;
    let namerd =
        namerd::server::start(&namerd::config::load(&namerd_config).map_err(anyhow::Error::msg)?)
            .await
            .map_err(anyhow::Error::msg)?;
    let namerd_addr = namerd.api_addrs[0];
    seed_dtab(&namerd).await?;

    // The router, binding every name through namerd.
    let router_yaml = format!(
        "admin:\n  port: {}\nrouters:\n- protocol: http\n  label: quickstart\n  interpreter:\n    kind: io.l5d.namerd.http\n    dst: /$/inet/127.0.0.1/{}\n    namespace: default\n  servers:\n  - port: {}\n",
        free_or_any(ROUTER_ADMIN_PORT),
        namerd_addr.port(),
        free_or_any(ROUTER_PORT),
    );
    let router_config = write_config(&work, "router.yaml", &router_yaml)?;
    let (config, specs) = router::config::load(&router_config).map_err(anyhow::Error::msg)?;
    let routers = router::server::start(&config, specs)
        .await
        .map_err(anyhow::Error::msg)?;
    let router_addr = routers.servers[0].1;

    print_tour(
        router_addr,
        routers.admin_addr,
        namerd_addr,
        namerd.admin_addr,
        &work,
    );
    tokio::signal::ctrl_c().await?;
    println!("\nstopping…");
    routers.stop().await;
    namerd.stop().await;
    Ok(())
}

/// The preferred port when it is free, else 0 (any port).
fn free_or_any(port: u16) -> u16 {
    match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Ok(_) => port,
        Err(_) => 0,
    }
}

fn write_config(dir: &Path, name: &str, text: &str) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Stores the demo dtab in namespace `default` unless one is there already
/// (a second run keeps what the user changed).
async fn seed_dtab(namerd: &namerd::server::Running) -> anyhow::Result<()> {
    let ns = namerd::Namespace::new("default").map_err(anyhow::Error::msg)?;
    let store = namerd.namerd.store();
    if store.get(&ns).await?.is_none() {
        let dtab = dtab::Dtab::read(DTAB).map_err(anyhow::Error::msg)?;
        store.create(&ns, &dtab).await?;
    }
    Ok(())
}

/// A backend that answers every request with its name.
async fn demo_backend(name: &'static str) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(move |_request| async move {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from(
                        format!("hello from {name}\n"),
                    ))))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

fn print_tour(
    router: SocketAddr,
    router_admin: SocketAddr,
    namerd: SocketAddr,
    namerd_admin: SocketAddr,
    work: &Path,
) {
    println!(
        r#"
Switchboard quickstart is running.

  router       http://{router}        (admin http://{router_admin})
  namerd API   http://{namerd}/api/1  (dtabs stored in {work}/namerd; admin http://{namerd_admin})
  demo service web: v1 and v2, endpoints in {work}/disco

namerd's dtab for namespace "default":
{dtab}
Try:

  # 90 % of requests go to v1, 10 % to v2:
  for i in $(seq 20); do curl -s -H 'Host: web' http://{router}/; done | sort | uniq -c

  # Send one request to v2 with a per-request override:
  curl -s -H 'Host: web' -H 'l5d-dtab: /svc/web => /#/io.l5d.fs/web-v2' http://{router}/

  # Ask how /svc/web resolves:
  curl -s 'http://{router_admin}/delegator.json?path=/svc/web'

  # In a browser: the router's dashboard, the dtab playground, namerd's namespaces:
  http://{router_admin}/
  http://{router_admin}/delegator?path=/svc/web
  http://{namerd_admin}/

  # Shift all traffic to v2 with namerctl (applies within milliseconds):
  printf '/svc => /#/io.l5d.fs;\n/svc/web => /#/io.l5d.fs/web-v2;\n' > /tmp/web-v2.dtab
  cargo run -q -p namerd --bin namerctl -- --base-url http://{namerd} dtab update default /tmp/web-v2.dtab
  cargo run -q -p namerd --bin namerctl -- --base-url http://{namerd} dtab get default

Press Ctrl-C to stop.
"#,
        work = work.display(),
        dtab = DTAB
            .lines()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
}
