//! `io.linkerd.mesh.Interpreter`: binds a name in a namespace.

use dtab::NameTree;
use namerd_client::mesh::convert::{self, BoundLeaf};
use namerd_client::mesh::proto::interpreter_server::Interpreter;
use namerd_client::mesh::proto::{BindReq, BoundTreeRsp};
use namers::{Activity, Bound};
use tonic::{Request, Response, Status};

use super::Mesh;
use super::metrics::Method;
use super::request::{self, binding_failed, settled};
use super::stream::{MeshStream, Step, follow};

/// The tree as the mesh API carries it: ids and residuals; addresses are
/// the Resolver's.
fn response(tree: &NameTree<Bound>) -> BoundTreeRsp {
    let leaves = tree.map(&mut |b: &Bound| BoundLeaf {
        id: b.id.clone(),
        residual: b.residual.clone(),
    });
    BoundTreeRsp {
        tree: Some(convert::bound_tree_to_proto(&leaves)),
    }
}

impl Mesh {
    fn binding(&self, req: &BindReq) -> Result<(namers::Binding, dtab::Dtab), Status> {
        let ns = request::namespace("BindReq", req.root.as_ref())?;
        let name = request::name("BindReq", "name", req.name.as_ref())?;
        let local = self.local_dtab("BindReq", req.dtab.as_ref())?;
        Ok((self.ctx.namerd.bind(&ns, &name, &local), local))
    }
}

#[tonic::async_trait]
impl Interpreter for Mesh {
    async fn get_bound_tree(
        &self,
        request: Request<BindReq>,
    ) -> Result<Response<BoundTreeRsp>, Status> {
        self.counted(Method::GetBoundTree, async {
            let req = request.into_inner();
            let (binding, local) = self.binding(&req)?;
            match settled(&binding, request::pending).await.as_deref() {
                Some(Activity::Ok(tree)) => Ok(Response::new(response(tree))),
                Some(Activity::Failed(e)) => Err(binding_failed(e, &local)),
                _ => Err(Status::unavailable(format!(
                    "the binding is still pending after {:?}",
                    request::SETTLE_TIMEOUT
                ))),
            }
        })
        .await
    }

    type StreamBoundTreeStream = MeshStream<BoundTreeRsp>;

    async fn stream_bound_tree(
        &self,
        request: Request<BindReq>,
    ) -> Result<Response<Self::StreamBoundTreeStream>, Status> {
        self.counted(Method::StreamBoundTree, async {
            let (binding, local) = self.binding(request.get_ref())?;
            let stats = self.stats.clone();
            let stream = follow(
                binding,
                self.ctx.stopping.clone(),
                self.stats.stream_opened(),
                move |state: &Activity<NameTree<Bound>>| match state {
                    Activity::Pending => Step::Skip,
                    Activity::Ok(tree) => Step::Send(response(tree)),
                    Activity::Failed(e) => {
                        stats.failure(Method::StreamBoundTree);
                        Step::End(binding_failed(e, &local))
                    }
                },
            );
            Ok(Response::new(stream))
        })
        .await
    }
}
