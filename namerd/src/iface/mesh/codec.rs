//! `io.linkerd.mesh.Codec`: dtab and path text, read and shown, for
//! clients that do not parse dtabs themselves.

use dtab::{Dtab, Path};
use namerd_client::mesh::convert;
use namerd_client::mesh::proto::codec_server::Codec;
use namerd_client::mesh::proto::{
    ReadDtabReq, ReadDtabRsp, ReadPathReq, ReadPathRsp, ShowDtabReq, ShowDtabRsp, ShowPathReq,
    ShowPathRsp,
};
use tonic::{Request, Response, Status};

use super::Mesh;
use super::metrics::Method;
use super::request::invalid;

#[tonic::async_trait]
impl Codec for Mesh {
    async fn read_dtab(
        &self,
        request: Request<ReadDtabReq>,
    ) -> Result<Response<ReadDtabRsp>, Status> {
        self.counted(Method::ReadDtab, async {
            let text = &request.get_ref().text;
            let dtab = Dtab::read(text).map_err(|e| {
                Status::invalid_argument(format!("ReadDtabReq.text: not a dtab: {e}"))
            })?;
            Ok(Response::new(ReadDtabRsp {
                dtab: Some(convert::dtab_to_proto(&dtab)),
            }))
        })
        .await
    }

    async fn show_dtab(
        &self,
        request: Request<ShowDtabReq>,
    ) -> Result<Response<ShowDtabRsp>, Status> {
        self.counted(Method::ShowDtab, async {
            let text = match &request.get_ref().dtab {
                Some(dtab) => convert::dtab_from_proto(dtab)
                    .map_err(|e| invalid("ShowDtabReq", &e.within("dtab")))?
                    .show(),
                None => String::new(),
            };
            Ok(Response::new(ShowDtabRsp { text }))
        })
        .await
    }

    async fn read_path(
        &self,
        request: Request<ReadPathReq>,
    ) -> Result<Response<ReadPathRsp>, Status> {
        self.counted(Method::ReadPath, async {
            let text = &request.get_ref().text;
            // proto3 cannot tell an empty string from none: the empty path.
            let path = if text.is_empty() {
                Path::empty()
            } else {
                Path::read(text).map_err(|e| {
                    Status::invalid_argument(format!("ReadPathReq.text: not a path: {e}"))
                })?
            };
            Ok(Response::new(ReadPathRsp {
                path: Some(convert::path_to_proto(&path)),
            }))
        })
        .await
    }

    async fn show_path(
        &self,
        request: Request<ShowPathReq>,
    ) -> Result<Response<ShowPathRsp>, Status> {
        self.counted(Method::ShowPath, async {
            let text = match &request.get_ref().path {
                Some(path) => convert::path_from_proto(path)
                    .map_err(|e| invalid("ShowPathReq", &e.within("path")))?
                    .show(),
                None => String::new(),
            };
            Ok(Response::new(ShowPathRsp { text }))
        })
        .await
    }
}
