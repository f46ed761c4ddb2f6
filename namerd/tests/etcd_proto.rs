//! The committed etcd client code is what `namerd/proto/etcd.proto`
//! generates, so nobody needs a protobuf compiler to build namerd and the
//! two cannot drift apart.
//!
//! After changing the .proto, rewrite the Rust file with
//! `UPDATE_GENERATED=1 cargo test -p namerd --test etcd_proto`.

use std::path::Path;

#[test]
fn etcd_proto_is_generated() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let committed_path = root.join("src/store/etcd/etcdserverpb.rs");
    let descriptors = protox::compile(["etcd.proto"], [root.join("proto")])
        .unwrap_or_else(|e| panic!("namerd/proto/etcd.proto does not compile: {e}"));
    let out = tempfile::tempdir().unwrap();
    tonic_prost_build::configure()
        .build_server(false)
        .build_transport(false)
        .emit_rerun_if_changed(false)
        .out_dir(out.path())
        .compile_fds(descriptors)
        .unwrap();
    let generated = std::fs::read_to_string(out.path().join("etcdserverpb.rs")).unwrap();
    if std::env::var_os("UPDATE_GENERATED").is_some() {
        std::fs::write(&committed_path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        generated == committed,
        "{} is not what namerd/proto/etcd.proto generates; rewrite it with \
         `UPDATE_GENERATED=1 cargo test -p namerd --test etcd_proto`",
        committed_path.display()
    );
}
