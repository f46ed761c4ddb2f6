//! The committed mesh code (`src/mesh/gen.rs`, client and server) is what
//! Linkerd's protos in `namerd/idl/linkerd/mesh/` generate, so nobody needs
//! a protobuf compiler to build and the two cannot drift apart.
//!
//! After changing a .proto, rewrite the Rust file with
//! `UPDATE_GENERATED=1 cargo test -p namerd-client --test mesh_proto`.

use std::path::Path;

const PROTOS: [&str; 5] = [
    "codec.proto",
    "delegator.proto",
    "dtab.proto",
    "interpreter.proto",
    "resolver.proto",
];

#[test]
fn mesh_protos_are_generated() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let committed_path = root.join("src/mesh/gen.rs");
    let idl = root.join("../idl/linkerd/mesh");
    let descriptors = protox::compile(PROTOS, [&idl])
        .unwrap_or_else(|e| panic!("the protos in {} do not compile: {e}", idl.display()));
    let out = tempfile::tempdir().unwrap();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        .emit_rerun_if_changed(false)
        .out_dir(out.path())
        .compile_fds(descriptors)
        .unwrap();
    let generated = std::fs::read_to_string(out.path().join("io.linkerd.mesh.rs")).unwrap();
    if std::env::var_os("UPDATE_GENERATED").is_some() {
        std::fs::write(&committed_path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        generated == committed,
        "{} is not what namerd/idl/linkerd/mesh/*.proto generate; rewrite it with \
         `UPDATE_GENERATED=1 cargo test -p namerd-client --test mesh_proto`",
        committed_path.display()
    );
}
