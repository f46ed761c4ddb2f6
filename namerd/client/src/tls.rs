//! HTTPS to namerd: the connector that opens TLS for `https://` base
//! URLs with the rustls config the caller gives (asked again for every new
//! connection, so reloaded certificates are used), and what a failed
//! handshake means for the user.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls::{AlertDescription, CertificateError};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// How a client speaks TLS to namerd.
#[derive(Clone)]
pub struct TlsSettings {
    pub(crate) config: Arc<dyn Fn() -> Arc<rustls::ClientConfig> + Send + Sync>,
    pub(crate) server_name: Option<ServerName<'static>>,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsSettings {
    /// TLS with the rustls config `config` returns, asked for each new
    /// connection. The server's certificate must be valid for
    /// `server_name`, which is also sent as SNI; without one, for the base
    /// URL's host.
    pub fn new(
        config: impl Fn() -> Arc<rustls::ClientConfig> + Send + Sync + 'static,
        server_name: Option<ServerName<'static>>,
    ) -> TlsSettings {
        TlsSettings {
            config: Arc::new(config),
            server_name,
        }
    }
}

/// Why TLS with namerd failed, as far as the client can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsFailure {
    /// namerd's certificate is not signed by a CA this side trusts.
    UnknownCa,
    /// namerd's certificate is not valid for the name asked for.
    NameMismatch,
    /// namerd's certificate has expired, or is not valid yet.
    Expired,
    /// namerd refused this side's certificate, or required one and got
    /// none.
    ClientCertRefused,
    /// namerd did not answer in TLS (a plain HTTP port).
    NotTls,
    /// Anything else TLS reports.
    Other,
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsFailure::UnknownCa => "namerd's certificate is not signed by a trusted CA",
            TlsFailure::NameMismatch => {
                "namerd's certificate is not valid for the name it was asked for"
            }
            TlsFailure::Expired => "namerd's certificate has expired or is not valid yet",
            TlsFailure::ClientCertRefused => {
                "namerd refused the client certificate (or required one and got none)"
            }
            TlsFailure::NotTls => "namerd did not answer in TLS (is the port plain HTTP?)",
            TlsFailure::Other => "the TLS handshake failed",
        })
    }
}

/// The TLS error somewhere in `error`'s chain of causes, if there is one:
/// what it means, and rustls's own words.
pub(crate) fn failure_of(error: &(dyn StdError + 'static)) -> Option<(TlsFailure, String)> {
    let mut next = Some(error);
    while let Some(error) = next {
        // An `io::Error` made from another error hides it from `source()`.
        let inner = error
            .downcast_ref::<io::Error>()
            .and_then(|e| e.get_ref())
            .map(|e| e as &(dyn StdError + 'static));
        for candidate in [Some(error), inner].into_iter().flatten() {
            if let Some(tls) = candidate.downcast_ref::<rustls::Error>() {
                return Some((classify(tls), tls.to_string()));
            }
            if candidate.is::<NoTlsSettings>() {
                return Some((TlsFailure::Other, candidate.to_string()));
            }
        }
        next = error.source();
    }
    None
}

fn classify(error: &rustls::Error) -> TlsFailure {
    match error {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                TlsFailure::UnknownCa
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsFailure::NameMismatch
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => TlsFailure::Expired,
            _ => TlsFailure::Other,
        },
        rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::AccessDenied,
        ) => TlsFailure::ClientCertRefused,
        rustls::Error::InvalidMessage(_) => TlsFailure::NotTls,
        _ => TlsFailure::Other,
    }
}

/// An `https://` URL for a client given no TLS settings.
#[derive(Debug, thiserror::Error)]
#[error("an https:// base URL needs TLS settings (a CA to trust, the name to check)")]
struct NoTlsSettings;

/// Connects over TCP, then TLS for `https://` URLs.
#[derive(Clone, Debug)]
pub(crate) struct Connector {
    pub(crate) http: HttpConnector,
    pub(crate) tls: Option<TlsSettings>,
    /// Where connections leave a TLS failure they read after the handshake.
    pub(crate) late_failures: Arc<LateTlsFailure>,
}

/// The latest TLS failure a connection read after its handshake had
/// completed. With TLS 1.3 a server that refuses the client's certificate
/// says so only after the client's handshake is done; when that alert is
/// read while the connection is idle, the HTTP client drops the connection
/// and the request waiting for it fails with a generic "connection was not
/// ready". The alert left here lets the request's error say what happened.
#[derive(Debug, Default)]
pub(crate) struct LateTlsFailure(Mutex<Option<(TlsFailure, String)>>);

impl LateTlsFailure {
    fn record(&self, failure: (TlsFailure, String)) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(failure);
    }

    /// The failure recorded, if any, cleared.
    pub(crate) fn take(&self) -> Option<(TlsFailure, String)> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

type BoxError = Box<dyn StdError + Send + Sync>;

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Conn>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<TokioIo<Conn>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let tls = self.tls.clone();
        let late_failures = self.late_failures.clone();
        let host = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string());
        let connecting = self.http.call(uri);
        Box::pin(async move {
            let tcp = connecting.await?.into_inner();
            if !https {
                return Ok(TokioIo::new(Conn::Plain(tcp)));
            }
            let tls = tls.ok_or(NoTlsSettings)?;
            let name = match tls.server_name {
                Some(name) => name,
                None => {
                    let host = host.unwrap_or_default();
                    ServerName::try_from(host.clone()).map_err(|_| {
                        io::Error::new(
                            io::ErrorKind::InvalidInput,
                            format!("{host:?} is not a DNS name or an IP address"),
                        )
                    })?
                }
            };
            let stream = tokio_rustls::TlsConnector::from((tls.config)())
                .connect(name, tcp)
                .await?;
            Ok(TokioIo::new(Conn::Tls(
                Box::new(stream),
                Some(late_failures),
            )))
        })
    }
}

/// A connection to namerd, plain or TLS; a TLS one may leave a failure it
/// reads after the handshake where its client can find it.
#[derive(Debug)]
pub(crate) enum Conn {
    Plain(TcpStream),
    Tls(
        Box<tokio_rustls::client::TlsStream<TcpStream>>,
        Option<Arc<LateTlsFailure>>,
    ),
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        match self {
            Conn::Plain(tcp) => tcp.connected(),
            Conn::Tls(tls, _) => tls.get_ref().0.connected(),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s, late) => {
                let read = Pin::new(s.as_mut()).poll_read(cx, buf);
                if let (Poll::Ready(Err(e)), Some(late)) = (&read, late.as_ref())
                    && let Some(failure) = failure_of(e)
                {
                    late.record(failure);
                }
                read
            }
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s, _) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
