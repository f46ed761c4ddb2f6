//! A fake HTTP collector for the exporters' tests: it keeps every request
//! it is sent and answers each with one fixed status and an empty body.
//! It is not Zipkin or an OpenTelemetry collector: it checks nothing of
//! what it is sent, so the tests do. HTTP/1.1 only, no TLS.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One request as the collector saw it.
#[derive(Clone, Debug)]
pub(crate) struct Post {
    pub(crate) path: String,
    pub(crate) host: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) content_encoding: Option<String>,
    pub(crate) body: Bytes,
}

/// A running fake collector, until dropped.
pub(crate) struct HttpCollector {
    pub(crate) addr: SocketAddr,
    posts: Arc<Mutex<Vec<Post>>>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpCollector {
    /// A collector on 127.0.0.1 answering `status` to everything.
    pub(crate) async fn start(status: u16) -> HttpCollector {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let posts = Arc::new(Mutex::new(Vec::new()));
        let kept = posts.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let kept = kept.clone();
                let service = service_fn(move |request: Request<Incoming>| {
                    let kept = kept.clone();
                    async move {
                        let header = |name| {
                            request
                                .headers()
                                .get(name)
                                .and_then(|v: &http::HeaderValue| v.to_str().ok())
                                .map(str::to_string)
                        };
                        let host = header(http::header::HOST);
                        let content_type = header(http::header::CONTENT_TYPE);
                        let content_encoding = header(http::header::CONTENT_ENCODING);
                        let path = request.uri().path().to_string();
                        let body = request.into_body().collect().await?.to_bytes();
                        kept.lock().unwrap().push(Post {
                            path,
                            host,
                            content_type,
                            content_encoding,
                            body,
                        });
                        let mut answer = Response::new(Full::new(Bytes::new()));
                        *answer.status_mut() = StatusCode::from_u16(status).unwrap();
                        Ok::<_, hyper::Error>(answer)
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        HttpCollector { addr, posts, task }
    }

    /// Every request so far.
    pub(crate) fn posts(&self) -> Vec<Post> {
        self.posts.lock().unwrap().clone()
    }
}

impl Drop for HttpCollector {
    fn drop(&mut self) {
        self.task.abort();
    }
}
