//! `io.linkerd.mesh.Delegator`: the stored dtab of a namespace, and delegate
//! trees that explain how a name binds.

use std::time::Duration;

use dtab::{DelegateTree, NameTree, WeightedDelegate};
use namerd_client::mesh::convert::{self, BoundLeaf};
use namerd_client::mesh::proto::delegator_server::Delegator;
use namerd_client::mesh::proto::{DelegateTreeReq, DelegateTreeRsp, DtabReq, DtabRsp};
use namers::{Activity, Delegation, Name, NamingError};
use tonic::{Request, Response, Status};

use super::Mesh;
use super::metrics::Method;
use super::request;
use super::stream::{MeshStream, Step, follow};
use crate::DelegateError;

/// How long a delegation may take, as on the HTTP API.
const DELEGATE_TIMEOUT: Duration = Duration::from_secs(2);

fn not_found(ns: &crate::Namespace) -> Status {
    Status::not_found(format!("namespace {ns} does not exist"))
}

/// The delegation as the mesh API carries it. A leaf still holding a path
/// (nothing bound it) is a Neg, as Linkerd's namerd sends it.
fn bound_only(tree: &Delegation) -> DelegateTree<BoundLeaf> {
    let leaf = |b: &namers::Bound| BoundLeaf {
        id: b.id.clone(),
        residual: b.residual.clone(),
    };
    match tree {
        DelegateTree::Leaf {
            path,
            dentry,
            value: Name::Bound(b),
        } => DelegateTree::Leaf {
            path: path.clone(),
            dentry: dentry.clone(),
            value: leaf(b),
        },
        DelegateTree::Leaf {
            path,
            dentry,
            value: Name::Path(_),
        } => DelegateTree::Neg {
            path: path.clone(),
            dentry: dentry.clone(),
        },
        DelegateTree::Exception {
            path,
            dentry,
            message,
        } => DelegateTree::Exception {
            path: path.clone(),
            dentry: dentry.clone(),
            message: message.clone(),
        },
        DelegateTree::Empty { path, dentry } => DelegateTree::Empty {
            path: path.clone(),
            dentry: dentry.clone(),
        },
        DelegateTree::Fail { path, dentry } => DelegateTree::Fail {
            path: path.clone(),
            dentry: dentry.clone(),
        },
        DelegateTree::Neg { path, dentry } => DelegateTree::Neg {
            path: path.clone(),
            dentry: dentry.clone(),
        },
        DelegateTree::Delegate { path, dentry, tree } => DelegateTree::Delegate {
            path: path.clone(),
            dentry: dentry.clone(),
            tree: Box::new(bound_only(tree)),
        },
        DelegateTree::Alt {
            path,
            dentry,
            trees,
        } => DelegateTree::Alt {
            path: path.clone(),
            dentry: dentry.clone(),
            trees: trees.iter().map(bound_only).collect(),
        },
        DelegateTree::Union {
            path,
            dentry,
            trees,
        } => DelegateTree::Union {
            path: path.clone(),
            dentry: dentry.clone(),
            trees: trees
                .iter()
                .map(|w| WeightedDelegate {
                    weight: w.weight,
                    tree: bound_only(&w.tree),
                })
                .collect(),
        },
        DelegateTree::Transformation {
            path,
            name,
            value,
            tree,
        } => match value {
            Name::Bound(b) => DelegateTree::Transformation {
                path: path.clone(),
                name: name.clone(),
                value: leaf(b),
                tree: Box::new(bound_only(tree)),
            },
            Name::Path(_) => bound_only(tree),
        },
    }
}

impl Mesh {
    async fn delegate_tree(&self, req: &DelegateTreeReq) -> Result<DelegateTreeRsp, Status> {
        const MSG: &str = "DelegateTreeReq";
        let ns = request::namespace(MSG, req.root.as_ref())?;
        let Some(tree) = &req.tree else {
            return Err(Status::invalid_argument(format!(
                "{MSG}.tree: missing; send the name to delegate as a leaf"
            )));
        };
        let tree = convert::name_tree_from_proto(tree)
            .map_err(|e| request::invalid(MSG, &e.within("tree")))?;
        // Linkerd's routers send a single name; that is all we delegate.
        let NameTree::Leaf(path) = tree else {
            return Err(Status::invalid_argument(format!(
                "{MSG}.tree: only a single name (a leaf) can be delegated, not {}",
                tree.show()
            )));
        };
        if path.is_empty() {
            return Err(Status::invalid_argument(format!(
                "{MSG}.tree: the name is empty"
            )));
        }
        let local = self.local_dtab(MSG, req.dtab.as_ref())?;
        let delegating = self.ctx.namerd.delegate(&ns, &path, &local);
        match tokio::time::timeout(DELEGATE_TIMEOUT, delegating).await {
            Ok(Ok(tree)) => Ok(DelegateTreeRsp {
                tree: Some(convert::delegate_tree_to_proto(&bound_only(&tree))),
            }),
            Ok(Err(DelegateError::Naming(e @ NamingError::OverBudget { .. })))
                if !local.is_empty() =>
            {
                Err(Status::invalid_argument(format!(
                    "{e}, with the request's dtab"
                )))
            }
            Ok(Err(e)) => Err(Status::internal(e.to_string())),
            Err(_) => Err(Status::unavailable(format!(
                "delegation of {path} timed out after {DELEGATE_TIMEOUT:?}: a namer has not answered"
            ))),
        }
    }
}

#[tonic::async_trait]
impl Delegator for Mesh {
    async fn get_dtab(&self, request: Request<DtabReq>) -> Result<Response<DtabRsp>, Status> {
        self.counted(Method::GetDtab, async {
            let ns = request::namespace("DtabReq", request.get_ref().root.as_ref())?;
            match self.ctx.namerd.store().get(&ns).await {
                Ok(Some(found)) => Ok(Response::new(DtabRsp {
                    dtab: Some(convert::versioned_dtab_to_proto(&found)),
                })),
                Ok(None) => Err(not_found(&ns)),
                Err(e) => Err(Status::internal(e.to_string())),
            }
        })
        .await
    }

    type StreamDtabStream = MeshStream<DtabRsp>;

    async fn stream_dtab(
        &self,
        request: Request<DtabReq>,
    ) -> Result<Response<Self::StreamDtabStream>, Status> {
        self.counted(Method::StreamDtab, async {
            let ns = request::namespace("DtabReq", request.get_ref().root.as_ref())?;
            let stats = self.stats.clone();
            let stream = follow(
                self.ctx.namerd.store().watch(&ns),
                self.ctx.stopping.clone(),
                self.stats.stream_opened(),
                move |state: &Activity<Option<crate::store::VersionedDtab>>| match state {
                    Activity::Pending => Step::Skip,
                    Activity::Ok(Some(found)) => Step::Send(DtabRsp {
                        dtab: Some(convert::versioned_dtab_to_proto(found)),
                    }),
                    Activity::Ok(None) => {
                        stats.failure(Method::StreamDtab);
                        Step::End(not_found(&ns))
                    }
                    Activity::Failed(e) => {
                        stats.failure(Method::StreamDtab);
                        Step::End(Status::internal(e.to_string()))
                    }
                },
            );
            Ok(Response::new(stream))
        })
        .await
    }

    async fn get_delegate_tree(
        &self,
        request: Request<DelegateTreeReq>,
    ) -> Result<Response<DelegateTreeRsp>, Status> {
        self.counted(Method::GetDelegateTree, async {
            self.delegate_tree(request.get_ref())
                .await
                .map(Response::new)
        })
        .await
    }

    type StreamDelegateTreeStream = MeshStream<DelegateTreeRsp>;

    /// Deprecated in the protos: one value, then the end, as Linkerd's
    /// namerd answers it.
    async fn stream_delegate_tree(
        &self,
        request: Request<DelegateTreeReq>,
    ) -> Result<Response<Self::StreamDelegateTreeStream>, Status> {
        self.counted(Method::StreamDelegateTree, async {
            let rsp = self.delegate_tree(request.get_ref()).await?;
            let stream: MeshStream<DelegateTreeRsp> =
                Box::pin(futures_util::stream::once(async move { Ok(rsp) }));
            Ok(Response::new(stream))
        })
        .await
    }
}
