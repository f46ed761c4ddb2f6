//! How one `io.l5d.k8s` namer copes with many services: binds 1,000
//! services of 10 endpoints each through the interpreter, against the
//! in-process fake of the Kubernetes API server (`integration::k8s`) run in
//! a child process so that its memory is not counted, then reports the
//! namer's memory (RSS delta) and how long a change of Endpoints takes to
//! reach a live binding once the fake has it. The services are spread over
//! `namespaces` namespaces (one watch each). The measurement is in
//! `support/scale.rs`.
//!
//! ```text
//! cargo run --release -p namers --example k8s_scale [services] [endpoints] [changes] [namespaces]
//! ```

use std::sync::Arc;

use dtab::{Dtab, Path};
use integration::k8s::{Endpoints, FakeKube, Service, TargetPort};
use namers::Namer;
use namers::k8s::{K8sConfig, K8sNamer};

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
        let namespaces = number(args.get(3), 1)?;
        return runtime.block_on(serve(services, endpoints, namespaces));
    }
    let services = number(args.first(), 1000)?;
    let endpoints = number(args.get(1), 10)?;
    let changes = number(args.get(2), 200)?;
    let namespaces = number(args.get(3), 1)?.max(1);
    runtime.block_on(measure(services, endpoints, changes, namespaces))
}

fn namespace(i: usize, namespaces: usize) -> String {
    format!("ns{}", i % namespaces.max(1))
}

/// The Endpoints object of service `i` with these ready addresses.
fn endpoints_of(i: usize, namespaces: usize, addresses: &[String]) -> Endpoints {
    let mut eps = Endpoints::new(&namespace(i, namespaces), &service_name(i));
    for (n, ip) in addresses.iter().enumerate() {
        eps = eps.ready(ip, Some(&format!("node{}", n % 10)));
    }
    eps.port(Some("http"), PORT)
}

/// The child: runs the fake with every service in place, prints its port,
/// then applies commands read from stdin (`add <service> <n>`, `watches`)
/// until stdin closes.
async fn serve(services: usize, endpoints: usize, namespaces: usize) -> Result<()> {
    let fake = FakeKube::start().await?;
    let mut addresses: Vec<Vec<String>> = Vec::with_capacity(services);
    for i in 0..services {
        let ns = namespace(i, namespaces);
        let name = service_name(i);
        fake.apply_service(&Service::new(&ns, &name).port(
            Some("http"),
            80,
            TargetPort::Number(PORT),
        ));
        let ips: Vec<String> = (0..endpoints).map(|j| address(i, j)).collect();
        fake.apply_endpoints(&endpoints_of(i, namespaces, &ips));
        addresses.push(ips);
    }
    scale::serve_commands(fake.addr().port(), |words| {
        match words {
            ["add", service, n] => {
                let i: usize = service.parse()?;
                let n: usize = n.parse()?;
                let ips = addresses.get_mut(i).ok_or("no such service")?;
                ips.push(added_address(i, n));
                fake.apply_endpoints(&endpoints_of(i, namespaces, ips));
            }
            ["watches"] => println!("{}", fake.open_watches()),
            _ => return Err(format!("unknown command {words:?}").into()),
        }
        Ok(())
    })
    .await
}

impl Measured for Arc<K8sNamer> {
    fn namer(&self) -> Arc<dyn Namer> {
        self.clone()
    }

    fn active_watches(&self) -> u64 {
        K8sNamer::active_watches(self)
    }

    fn stats(&self) -> String {
        format!("{:?}", K8sNamer::stats(self))
    }
}

async fn measure(
    services: usize,
    endpoints: usize,
    changes: usize,
    namespaces: usize,
) -> Result<()> {
    println!(
        "starting the fake with {services} services x {endpoints} endpoints in {namespaces} namespace(s)"
    );
    let (fake, port) = Fake::start(&[services, endpoints, namespaces], "watches")?;
    let prefix = Path::read("/#/io.l5d.k8s")?;
    let config: K8sConfig = serde_json::from_value(serde_json::json!({
        "host": "127.0.0.1",
        "port": port,
    }))?;
    let paths = (0..services)
        .map(|i| {
            let ns = namespace(i, namespaces);
            Path::read(&format!("/svc/{ns}/http/{}", service_name(i)))
        })
        .collect::<std::result::Result<_, _>>()?;
    let run = Scale {
        endpoints,
        changes,
        prefix: prefix.clone(),
        dtab: Dtab::read("/svc => /#/io.l5d.k8s")?,
        paths,
        watches: "namespace watches",
        fake_figure: "watch streams open",
    };
    run.measure(fake, || Ok(config.build(prefix)?)).await
}
