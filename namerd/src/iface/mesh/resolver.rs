//! `io.linkerd.mesh.Resolver`: the endpoints of a bound id, as
//! `/api/1/addr` serves them.

use std::collections::BTreeMap;

use namerd_client::mesh::convert::{self, MeshEndpoint};
use namerd_client::mesh::proto::resolver_server::Resolver;
use namerd_client::mesh::proto::{Replicas, ReplicasReq};
use namers::{Addr, Metadata};
use tonic::{Request, Response, Status};

use super::Mesh;
use super::metrics::Method;
use super::request::{self, settled};
use super::stream::{MeshStream, Step, follow};

/// The metadata key a scheduler's node name is kept under (Linkerd's
/// `Metadata.nodeName`); the Endpoint message has a field of its own for it.
const NODE_NAME: &str = "nodeName";

/// Metadata values as text, as Linkerd's namerd sends them: a string as
/// itself, anything else as JSON.
fn text_metadata(meta: &Metadata) -> BTreeMap<String, String> {
    meta.iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect()
}

/// An address as a Replicas message.
pub(crate) fn replicas(addr: &Addr) -> Replicas {
    let replicas = match addr {
        Addr::Pending => convert::Replicas::Pending,
        Addr::Neg => convert::Replicas::Neg,
        Addr::Failed(why) => convert::Replicas::Failed(why.to_string()),
        Addr::Bound(set) => convert::Replicas::Bound {
            endpoints: set
                .endpoints()
                .iter()
                .map(|e| MeshEndpoint {
                    addr: e.addr,
                    node_name: e
                        .meta
                        .get(NODE_NAME)
                        .and_then(|v| v.as_str())
                        .map(str::to_string),
                    metadata: text_metadata(&e.meta),
                })
                .collect(),
            metadata: text_metadata(&set.meta),
        },
    };
    convert::replicas_to_proto(&replicas)
}

#[tonic::async_trait]
impl Resolver for Mesh {
    async fn get_replicas(
        &self,
        request: Request<ReplicasReq>,
    ) -> Result<Response<Replicas>, Status> {
        self.counted(Method::GetReplicas, async {
            let id = request::name("ReplicasReq", "id", request.get_ref().id.as_ref())?;
            let addr = self.ctx.namerd.addr(&id);
            // Still pending after the wait is an answer too: Pending.
            let current = settled(&addr, |a| matches!(a, Addr::Pending))
                .await
                .unwrap_or_else(|| addr.load());
            Ok(Response::new(replicas(&current)))
        })
        .await
    }

    type StreamReplicasStream = MeshStream<Replicas>;

    async fn stream_replicas(
        &self,
        request: Request<ReplicasReq>,
    ) -> Result<Response<Self::StreamReplicasStream>, Status> {
        self.counted(Method::StreamReplicas, async {
            let id = request::name("ReplicasReq", "id", request.get_ref().id.as_ref())?;
            let stream = follow(
                self.ctx.namerd.addr(&id),
                self.ctx.stopping.clone(),
                self.stats.stream_opened(),
                |addr: &Addr| match addr {
                    Addr::Pending => Step::Skip,
                    other => Step::Send(replicas(other)),
                },
            );
            Ok(Response::new(stream))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use namers::Endpoint;

    #[test]
    fn metadata_and_node_names_are_carried_as_text() {
        let mut endpoint = Endpoint::new("10.0.0.1:80".parse().unwrap()).with_weight(2.0);
        endpoint
            .meta
            .insert(NODE_NAME.to_string(), serde_json::Value::from("node-a"));
        let message = replicas(&Addr::bound(vec![endpoint]));
        let back = convert::replicas_from_proto(&message).unwrap();
        let convert::Replicas::Bound { endpoints, .. } = back else {
            panic!("not bound: {back:?}")
        };
        assert_eq!(endpoints[0].node_name.as_deref(), Some("node-a"));
        assert_eq!(endpoints[0].metadata[namers::WEIGHT_KEY], "2.0");
        assert_eq!(endpoints[0].metadata[NODE_NAME], "node-a");
    }
}
