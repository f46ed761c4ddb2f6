//! The h2 router between gRPC implementations other than ours: grpcio (gRPC's
//! C core, from PyPI) as the client, through the router's own HTTP/2
//! server, to the test backend that echoes each message.
//!
//! Without python3 and grpcio the test says so loudly and passes, except
//! under `CI=true`, where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use support::{Backend, FsDir, config, start_router};

const CLIENT: &str = include_str!("grpc_py/client.py");

const ROUTER: &str = "- protocol: h2
  identifier: {kind: io.l5d.header.path, segments: 1}
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - port: 0
";

#[tokio::test]
async fn grpcio_calls_pass_through_the_router() {
    if !integration::python::has_modules(
        &["grpc"],
        "python3 python3-pip, then pip install grpcio",
        "it is the independent gRPC client of the h2 router's tests",
    ) {
        return;
    }
    let backend = Backend::start("grpc").await;
    let fs = FsDir::new();
    fs.point("echo.Echo", &[&backend]);
    let router = start_router(&config(&fs, ROUTER)).await;
    let scripts = integration::python::scripts([("client.py", CLIENT)]);
    let target = router.addr().to_string();
    let script = scripts.path().join("client.py");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3").arg(script).arg(target).output()
    })
    .await
    .unwrap()
    .expect("python3 runs");
    assert!(
        output.status.success(),
        "the grpcio client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["unary_ok"], 300, "{report}");
    assert_eq!(report["stream_equal"], true, "{report}");
    router.stop().await;
}
