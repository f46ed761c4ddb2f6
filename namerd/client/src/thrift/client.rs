//! A client of namerd's thrift interface over plain framed Thrift (what
//! Linkerd's namerd serves to clients that do not speak mux), optionally
//! over TLS. One call is in flight per connection: a long poll holds its
//! connection until namerd answers, and concurrent calls open more
//! connections. Idle connections are kept for the next call.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

use super::framed::{self, DEFAULT_MAX_FRAME, FrameError};
use super::service::{Call, Method, ReplyError, decode_reply, encode_call};
use super::types::{
    Addr, AddrFailure, AddrReq, BindFailure, BindReq, Bound, DelegateReq, Delegation,
    DelegationFailure, DtabFailure, DtabRef, DtabReq, ThriftStruct,
};
use crate::TlsFailure;
use crate::tls::{Conn, TlsSettings, failure_of};

/// How long a call may take unless told otherwise (connecting included);
/// long polls have their own limit.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How many idle connections are kept.
const MAX_IDLE: usize = 8;

/// A failed call to namerd's thrift interface. Every variant names the
/// server, and the method when there was one.
#[derive(Debug, thiserror::Error)]
pub enum ThriftError {
    /// No connection could be made.
    #[error("namerd at {server}: cannot connect: {message}")]
    Unreachable {
        /// `host:port`.
        server: String,
        /// Why.
        message: String,
    },
    /// The TLS handshake failed.
    #[error("namerd at {server}: {failure}: {message}")]
    Tls {
        /// `host:port`.
        server: String,
        /// What the failure means.
        failure: TlsFailure,
        /// rustls's words.
        message: String,
    },
    /// No answer in time.
    #[error("namerd at {server}: {method} got no answer within {after:?}")]
    Timeout {
        /// `host:port`.
        server: String,
        /// The method called.
        method: &'static str,
        /// The limit.
        after: Duration,
    },
    /// namerd answered with the method's declared exception
    /// (`BindFailure`, `AddrFailure`, `DelegationFailure`, `DtabFailure`).
    #[error("namerd at {server}: {method} failed: {reason}")]
    Failed {
        /// `host:port`.
        server: String,
        /// The method called.
        method: &'static str,
        /// The exception's reason.
        reason: String,
    },
    /// namerd could not run the call (`TApplicationException`).
    #[error("namerd at {server}: {method}: {message}")]
    Application {
        /// `host:port`.
        server: String,
        /// The method called.
        method: &'static str,
        /// The exception's message.
        message: String,
    },
    /// The answer could not be read, or was not an answer to the call.
    #[error("namerd at {server}: {method}: protocol error: {what}")]
    Protocol {
        /// `host:port`.
        server: String,
        /// The method called.
        method: &'static str,
        /// What was wrong.
        what: String,
    },
    /// The connection failed or closed before the answer came.
    #[error("namerd at {server}: {method}: the connection failed: {message}")]
    Connection {
        /// `host:port`.
        server: String,
        /// The method called.
        method: &'static str,
        /// Why.
        message: String,
    },
}

/// The reason an exception of `namer.thrift` carries.
trait Reason {
    fn reason(self) -> String;
}

impl Reason for BindFailure {
    fn reason(self) -> String {
        self.reason
    }
}

impl Reason for AddrFailure {
    fn reason(self) -> String {
        self.reason
    }
}

impl Reason for DelegationFailure {
    fn reason(self) -> String {
        self.reason
    }
}

impl Reason for DtabFailure {
    fn reason(self) -> String {
        self.reason
    }
}

/// A client of one namerd thrift interface (`host:port`).
pub struct NamerClient {
    server: String,
    tls: Option<TlsSettings>,
    timeout: Duration,
    long_poll_timeout: Option<Duration>,
    max_frame: usize,
    idle: Mutex<Vec<Conn>>,
    seq: AtomicI32,
}

impl std::fmt::Debug for NamerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamerClient")
            .field("server", &self.server)
            .field("tls", &self.tls)
            .field("timeout", &self.timeout)
            .field("long_poll_timeout", &self.long_poll_timeout)
            .finish_non_exhaustive()
    }
}

/// Whether a failure happened on a connection before anything of the
/// answer came, so that a kept connection the server had closed can be
/// replaced once.
enum Attempt<T> {
    Done(Result<T, ThriftError>),
    Stale(ThriftError),
}

impl NamerClient {
    /// A client of the thrift interface at `server` (`host:port`).
    pub fn new(server: impl Into<String>) -> NamerClient {
        NamerClient {
            server: server.into(),
            tls: None,
            timeout: DEFAULT_TIMEOUT,
            long_poll_timeout: None,
            max_frame: DEFAULT_MAX_FRAME,
            idle: Mutex::new(Vec::new()),
            seq: AtomicI32::new(1),
        }
    }

    /// Speaks TLS with these settings.
    pub fn with_tls(mut self, tls: TlsSettings) -> NamerClient {
        self.tls = Some(tls);
        self
    }

    /// How long connecting and a call with an empty stamp may take.
    pub fn with_timeout(mut self, timeout: Duration) -> NamerClient {
        self.timeout = timeout;
        self
    }

    /// How long a long poll (a call with a stamp) may wait; `None` (the
    /// default) waits until namerd answers or the connection fails.
    pub fn with_long_poll_timeout(mut self, limit: Option<Duration>) -> NamerClient {
        self.long_poll_timeout = limit;
        self
    }

    /// The largest answer read.
    pub fn with_max_frame(mut self, max: usize) -> NamerClient {
        self.max_frame = max;
        self
    }

    /// The server, `host:port`.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// `bind`: the bound tree of a name; with the stamp of the last
    /// answer, waits for a change.
    pub async fn bind(&self, req: BindReq) -> Result<Bound, ThriftError> {
        let long_poll = !req.name.stamp.is_empty();
        self.call::<Bound, BindFailure>(Call::Bind(req), long_poll)
            .await
    }

    /// `addr`: the addresses of a bound id; with the stamp of the last
    /// answer, waits for a change.
    pub async fn addr(&self, req: AddrReq) -> Result<Addr, ThriftError> {
        let long_poll = !req.name.stamp.is_empty();
        self.call::<Addr, AddrFailure>(Call::Addr(req), long_poll)
            .await
    }

    /// `dtab`: the dtab of a namespace; with the stamp of the last
    /// answer, waits for a change.
    pub async fn dtab(&self, req: DtabReq) -> Result<DtabRef, ThriftError> {
        let long_poll = !req.stamp.is_empty();
        self.call::<DtabRef, DtabFailure>(Call::Dtab(req), long_poll)
            .await
    }

    /// `delegate`: how a path resolves (never a long poll; send an empty
    /// stamp).
    pub async fn delegate(&self, req: DelegateReq) -> Result<Delegation, ThriftError> {
        self.call::<Delegation, DelegationFailure>(Call::Delegate(req), false)
            .await
    }

    async fn call<T: ThriftStruct, E: ThriftStruct + Reason>(
        &self,
        call: Call,
        long_poll: bool,
    ) -> Result<T, ThriftError> {
        let method = call.method();
        let limit = if long_poll {
            self.long_poll_timeout
        } else {
            Some(self.timeout)
        };
        let attempt = async {
            if let Some(conn) = self.take_idle() {
                match self.call_on::<T, E>(conn, &call).await {
                    Attempt::Done(result) => return result,
                    // The server closed a kept connection: a new one.
                    Attempt::Stale(_) => {}
                }
            }
            let conn = self.connect().await?;
            match self.call_on::<T, E>(conn, &call).await {
                Attempt::Done(result) => result,
                Attempt::Stale(e) => Err(e),
            }
        };
        match limit {
            Some(after) => tokio::time::timeout(after, attempt)
                .await
                .unwrap_or_else(|_| {
                    Err(ThriftError::Timeout {
                        server: self.server.clone(),
                        method: method.name(),
                        after,
                    })
                }),
            None => attempt.await,
        }
    }

    fn take_idle(&self) -> Option<Conn> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop()
    }

    fn keep(&self, conn: Conn) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    async fn call_on<T: ThriftStruct, E: ThriftStruct + Reason>(
        &self,
        mut conn: Conn,
        call: &Call,
    ) -> Attempt<T> {
        let method = call.method();
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let connection = |message: String| ThriftError::Connection {
            server: self.server.clone(),
            method: method.name(),
            message,
        };
        if let Err(e) = framed::write_frame(&mut conn, &encode_call(seq, call)).await {
            return Attempt::Stale(connection(e.to_string()));
        }
        let frame = match framed::read_frame(&mut conn, self.max_frame, None).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return Attempt::Stale(connection("closed by namerd".into())),
            Err(FrameError::Io(e)) => return Attempt::Stale(connection(e.to_string())),
            Err(e @ FrameError::TooLarge { .. }) => {
                return Attempt::Done(Err(self.protocol(method, e.to_string())));
            }
            Err(e) => return Attempt::Done(Err(connection(e.to_string()))),
        };
        let result = match decode_reply::<T, E>(&frame, method, seq) {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(failure)) => Err(ThriftError::Failed {
                server: self.server.clone(),
                method: method.name(),
                reason: failure.reason(),
            }),
            Err(ReplyError::Application(e)) => Err(ThriftError::Application {
                server: self.server.clone(),
                method: method.name(),
                message: e.message,
            }),
            Err(ReplyError::Protocol(what)) => {
                return Attempt::Done(Err(self.protocol(method, what)));
            }
        };
        // A connection whose last answer was read whole is fit for the
        // next call.
        self.keep(conn);
        Attempt::Done(result)
    }

    fn protocol(&self, method: Method, what: String) -> ThriftError {
        ThriftError::Protocol {
            server: self.server.clone(),
            method: method.name(),
            what,
        }
    }

    async fn connect(&self) -> Result<Conn, ThriftError> {
        let unreachable = |message: String| ThriftError::Unreachable {
            server: self.server.clone(),
            message,
        };
        let tcp = TcpStream::connect(&self.server)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return Ok(Conn::Plain(tcp));
        };
        let name = match &tls.server_name {
            Some(name) => name.clone(),
            None => {
                let host = host_of(&self.server);
                ServerName::try_from(host.to_string()).map_err(|_| {
                    unreachable(format!("{host:?} is not a DNS name or an IP address"))
                })?
            }
        };
        let stream = tokio_rustls::TlsConnector::from((tls.config)())
            .connect(name, tcp)
            .await
            .map_err(|e| match failure_of(&e) {
                Some((failure, message)) => ThriftError::Tls {
                    server: self.server.clone(),
                    failure,
                    message,
                },
                None => unreachable(format!("TLS: {e}")),
            })?;
        Ok(Conn::Tls(Box::new(stream), None))
    }
}

/// The host of `host:port` (brackets of an IPv6 address removed).
fn host_of(server: &str) -> &str {
    let host = server.rsplit_once(':').map_or(server, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}
