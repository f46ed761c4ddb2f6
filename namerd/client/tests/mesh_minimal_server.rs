//! The generated mesh client against a server that is not namerd: the
//! minimal grpcio server of `integration::mesh`, written from the protos
//! alone. Unary answers convert to our values, and streams carry the
//! server's new state.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dtab::{NameTree, Path};
use integration::mesh::MinimalMeshServer;
use namerd_client::Namespace;
use namerd_client::mesh::convert::{self, BoundLeaf, Replicas};
use namerd_client::mesh::proto::delegator_client::DelegatorClient;
use namerd_client::mesh::proto::interpreter_client::InterpreterClient;
use namerd_client::mesh::proto::resolver_client::ResolverClient;
use namerd_client::mesh::proto::{BindReq, DtabReq, ReplicasReq};
use namerd_client::mesh::root;
use serde_json::{Value, json};

fn state(id: &str, port: u16) -> Value {
    json!({
        "dtabs": {"default": {"version": "v1", "dtab": "/svc=>/#/io.l5d.fs"}},
        "trees": {"default /svc/web": {"type": "leaf", "bound": {"id": id, "path": "/api"}}},
        "replicas": {id: {"type": "bound", "addrs": [{"ip": "127.0.0.1", "port": port, "meta": {}}], "meta": {}}},
    })
}

fn path(text: &str) -> Path {
    Path::read(text).unwrap()
}

async fn next<T>(stream: &mut tonic::Streaming<T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("no message within 10 s")
        .unwrap()
        .expect("the stream ended")
}

#[tokio::test]
async fn the_client_reads_a_minimal_server_and_follows_its_changes() {
    let Some(mut server) = MinimalMeshServer::start(&state("/#/io.l5d.fs/web", 8080)) else {
        return;
    };
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let ns = Namespace::new("default").unwrap();
    let mut interpreter = InterpreterClient::new(channel.clone());
    let mut resolver = ResolverClient::new(channel.clone());
    let mut delegator = DelegatorClient::new(channel);

    let bind = BindReq {
        root: Some(root(&ns)),
        name: Some(convert::path_to_proto(&path("/svc/web"))),
        dtab: None,
    };
    let rsp = interpreter.get_bound_tree(bind.clone()).await.unwrap();
    let tree = convert::bound_tree_from_proto(rsp.get_ref().tree.as_ref().unwrap()).unwrap();
    assert_eq!(
        tree,
        NameTree::Leaf(BoundLeaf {
            id: path("/#/io.l5d.fs/web"),
            residual: path("/api"),
        })
    );
    let dtab = delegator
        .get_dtab(DtabReq {
            root: Some(root(&ns)),
        })
        .await
        .unwrap();
    let found = convert::versioned_dtab_from_proto(dtab.get_ref().dtab.as_ref().unwrap()).unwrap();
    assert_eq!(found.dtab.show(), "/svc=>/#/io.l5d.fs");
    assert_eq!(found.version.0, b"v1");
    let missing = delegator
        .get_dtab(DtabReq {
            root: Some(root(&Namespace::new("nope").unwrap())),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);

    let id = ReplicasReq {
        id: Some(convert::path_to_proto(&path("/#/io.l5d.fs/web"))),
    };
    let mut trees = interpreter
        .stream_bound_tree(bind)
        .await
        .unwrap()
        .into_inner();
    let mut replicas = resolver.stream_replicas(id).await.unwrap().into_inner();
    let first = next(&mut trees).await;
    assert_eq!(
        convert::bound_tree_from_proto(first.tree.as_ref().unwrap()).unwrap(),
        tree
    );
    let first = convert::replicas_from_proto(&next(&mut replicas).await).unwrap();
    let Replicas::Bound { endpoints, .. } = &first else {
        panic!("not bound: {first:?}")
    };
    assert_eq!(endpoints[0].addr.to_string(), "127.0.0.1:8080");

    // New state: the same id moves to another port, then the name to
    // another id.
    server.set_state(&state("/#/io.l5d.fs/web", 8081));
    let moved = convert::replicas_from_proto(&next(&mut replicas).await).unwrap();
    let Replicas::Bound { endpoints, .. } = &moved else {
        panic!("not bound: {moved:?}")
    };
    assert_eq!(endpoints[0].addr.to_string(), "127.0.0.1:8081");
    server.set_state(&state("/#/io.l5d.fs/web2", 8081));
    let rebound = next(&mut trees).await;
    assert_eq!(
        convert::bound_tree_from_proto(rebound.tree.as_ref().unwrap()).unwrap(),
        NameTree::Leaf(BoundLeaf {
            id: path("/#/io.l5d.fs/web2"),
            residual: path("/api"),
        })
    );
    // An id the server does not know resolves to Neg.
    let unknown = resolver
        .get_replicas(ReplicasReq {
            id: Some(convert::path_to_proto(&path("/#/io.l5d.fs/nope"))),
        })
        .await
        .unwrap();
    assert_eq!(
        convert::replicas_from_proto(unknown.get_ref()).unwrap(),
        Replicas::Neg
    );
}
