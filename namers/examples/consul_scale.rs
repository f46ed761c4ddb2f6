//! How one `io.l5d.consul` namer copes with many services: binds 1,000
//! services of 10 endpoints each through the interpreter, against the
//! in-process fake of Consul's HTTP API (`integration::consul`) run in a
//! child process so that its memory is not counted, then reports the
//! namer's memory (RSS delta) and how long a change in Consul takes to reach
//! a live binding. The measurement is in `support/scale.rs`.
//!
//! ```text
//! cargo run --release -p namers --example consul_scale [services] [endpoints] [changes]
//! ```

use std::sync::Arc;

use dtab::{Dtab, Path};
use integration::consul::{FakeConsul, Instance};
use namers::Namer;
use namers::consul::{ConsulConfig, ConsulNamer};

#[path = "support/scale.rs"]
mod scale;

use scale::{Fake, Measured, PORT, Result, Scale, added_address, address, number, service_name};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.first().map(String::as_str) == Some("--serve") {
        let services = number(args.get(1), 1000)?;
        let endpoints = number(args.get(2), 10)?;
        return runtime.block_on(serve(services, endpoints));
    }
    let services = number(args.first(), 1000)?;
    let endpoints = number(args.get(1), 10)?;
    let changes = number(args.get(2), 200)?;
    runtime.block_on(measure(services, endpoints, changes))
}

/// The child: runs the fake with every service registered, prints its
/// port, then applies commands read from stdin (`add <service> <n>`,
/// `inflight`) until stdin closes.
async fn serve(services: usize, endpoints: usize) -> Result<()> {
    let fake = FakeConsul::start().await?;
    for i in 0..services {
        for j in 0..endpoints {
            fake.register(&Instance::new(&service_name(i), &address(i, j), PORT));
        }
    }
    scale::serve_commands(fake.addr().port(), |words| {
        match words {
            ["add", service, n] => {
                let i: usize = service.parse()?;
                let n: usize = n.parse()?;
                let instance = Instance::new(&service_name(i), &added_address(i, n), PORT);
                fake.register(&instance);
            }
            ["inflight"] => println!("{}", fake.blocking_queries_in_flight()),
            _ => return Err(format!("unknown command {words:?}").into()),
        }
        Ok(())
    })
    .await
}

impl Measured for Arc<ConsulNamer> {
    fn namer(&self) -> Arc<dyn Namer> {
        self.clone()
    }

    fn active_watches(&self) -> u64 {
        ConsulNamer::active_watches(self)
    }

    fn stats(&self) -> String {
        format!("{:?}", ConsulNamer::stats(self))
    }
}

async fn measure(services: usize, endpoints: usize, changes: usize) -> Result<()> {
    println!("starting the fake with {services} services x {endpoints} endpoints");
    let (fake, port) = Fake::start(&[services, endpoints], "inflight")?;
    let prefix = Path::read("/#/io.l5d.consul")?;
    let config: ConsulConfig = serde_json::from_value(serde_json::json!({
        "host": "127.0.0.1",
        "port": port,
    }))?;
    let paths = (0..services)
        .map(|i| Path::read(&format!("/svc/{}", service_name(i))))
        .collect::<std::result::Result<_, _>>()?;
    let run = Scale {
        endpoints,
        changes,
        prefix: prefix.clone(),
        dtab: Dtab::read("/svc => /#/io.l5d.consul/dc1")?,
        paths,
        watches: "watches",
        fake_figure: "blocking queries in flight",
    };
    run.measure(fake, || Ok(config.build(prefix)?)).await
}
