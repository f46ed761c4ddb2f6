//! TLS to a peer: Linkerd's client `tls:` block (also the namerd
//! interpreter's), built into a rustls client config that is rebuilt when
//! its files change.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;

use super::files;
use super::reload::{ReloadStats, Reloading};
use super::{protocol_versions, provider};

/// Where the system's trusted CAs are, when a block names none.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A client's `tls:` (Linkerd's keys).
#[derive(Debug, Clone, Default, serde::Deserialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientTlsConfig {
    /// `false` turns TLS off (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Accept any certificate (unsafe; for tests and migrations).
    #[serde(default)]
    pub disable_validation: Option<bool>,
    /// The name the peer's certificate must carry (also sent as SNI).
    /// In an `io.l5d.static` client it may use the prefix's `{captures}`.
    #[serde(default)]
    pub common_name: Option<String>,
    /// CA files (Linkerd's older key; use `trustCertsBundle`).
    #[serde(default)]
    pub trust_certs: Option<Vec<PathBuf>>,
    /// One file of CA certificates.
    #[serde(default)]
    pub trust_certs_bundle: Option<PathBuf>,
    /// The certificate this side shows.
    #[serde(default)]
    pub client_auth: Option<ClientAuthConfig>,
    /// `TLSv1.2`, `TLSv1.3` (default both).
    #[serde(default)]
    pub protocols: Option<Vec<String>>,
}

/// `clientAuth:`: this side's certificate.
#[derive(Debug, Clone, Default, serde::Deserialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientAuthConfig {
    /// The certificate (PEM).
    pub cert_path: PathBuf,
    /// More of the chain (PEM).
    #[serde(default)]
    pub intermediate_certs_path: Option<PathBuf>,
    /// The private key (PEM).
    pub key_path: PathBuf,
}

/// A client's TLS settings, built and kept up to date with their files;
/// shared by every peer they apply to (the server name is given per
/// connection).
pub struct ClientTls {
    config: Arc<Reloading<rustls::ClientConfig>>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls").finish_non_exhaustive()
    }
}

impl ClientTlsConfig {
    /// Whether TLS is on.
    pub fn is_enabled(&self) -> bool {
        self.enabled != Some(false)
    }

    /// What can be said of the keys without reading files.
    pub fn check(&self) -> Result<(), String> {
        let unvalidated = self.disable_validation == Some(true);
        if !unvalidated && self.common_name.is_none() {
            return Err("commonName: required unless disableValidation is set".into());
        }
        if unvalidated && self.client_auth.is_some() {
            return Err("disableValidation: true is incompatible with clientAuth".into());
        }
        if self.trust_certs.is_some() && self.trust_certs_bundle.is_some() {
            return Err(
                "trustCerts: both trustCerts and trustCertsBundle are set; use only trustCertsBundle"
                    .into(),
            );
        }
        if let Some(name) = &self.common_name
            && !name.contains('{')
        {
            ServerName::try_from(name.as_str())
                .map_err(|_| format!("commonName: `{name}` is not a DNS name or an IP address"))?;
        }
        protocol_versions(self.protocols.as_deref()).map_err(|e| format!("protocols: {e}"))?;
        Ok(())
    }

    /// Builds the settings, offering `alpn` (most preferred first).
    pub fn build(&self, alpn: &[&[u8]]) -> Result<ClientTls, String> {
        self.check()?;
        let checked = self.clone();
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let paths: Vec<PathBuf> = self.files().into_iter().map(Path::to_path_buf).collect();
        let what = match &self.common_name {
            Some(name) => format!("client TLS for {name}"),
            None => "client TLS".to_string(),
        };
        let config = Reloading::new(what, paths, move || checked.client_config(&alpn))?;
        Ok(ClientTls { config })
    }

    /// The files this block reads.
    pub fn files(&self) -> Vec<&Path> {
        let mut files: Vec<&Path> = Vec::new();
        files.extend(self.trust_certs.iter().flatten().map(PathBuf::as_path));
        files.extend(self.trust_certs_bundle.as_deref());
        if let Some(auth) = &self.client_auth {
            files.push(&auth.cert_path);
            files.push(&auth.key_path);
            files.extend(auth.intermediate_certs_path.as_deref());
        }
        files
    }

    fn client_config(
        &self,
        alpn: &[Vec<u8>],
    ) -> Result<(Arc<rustls::ClientConfig>, Option<i64>), String> {
        let provider = Arc::new(provider());
        let versions = protocol_versions(self.protocols.as_deref())?;
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| format!("protocols: {e}"))?;
        let builder = if self.disable_validation == Some(true) {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate::new(provider.clone())))
        } else {
            let trusted: Vec<&Path> = match (&self.trust_certs, &self.trust_certs_bundle) {
                (Some(certs), _) => certs.iter().map(PathBuf::as_path).collect(),
                (None, Some(bundle)) => vec![bundle.as_path()],
                (None, None) => vec![Path::new(SYSTEM_CA_BUNDLE)],
            };
            builder.with_root_certificates(files::root_store(&trusted)?)
        };
        let (mut config, expires) = match &self.client_auth {
            Some(auth) => {
                let key = files::certified_key(
                    &auth.cert_path,
                    auth.intermediate_certs_path.as_deref(),
                    &auth.key_path,
                    &provider,
                )?;
                let expires = files::not_after(&key.cert[0]);
                let resolver = Arc::new(ClientCert(key));
                (builder.with_client_cert_resolver(resolver), expires)
            }
            None => (builder.with_no_client_auth(), None),
        };
        config.alpn_protocols = alpn.to_vec();
        Ok((Arc::new(config), expires))
    }

    /// The block with `{name}` in `commonName` replaced by `captures`'
    /// values.
    pub fn with_captures(&self, captures: &[(String, String)]) -> ClientTlsConfig {
        let mut config = self.clone();
        if let Some(name) = &mut config.common_name {
            for (key, value) in captures {
                *name = name.replace(&format!("{{{key}}}"), value);
            }
        }
        config
    }
}

/// This side's certificate, shown to every server that asks.
#[derive(Debug)]
struct ClientCert(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// `disableValidation: true`: any certificate is taken, but the handshake's
/// signatures are still checked with `provider`'s algorithms.
#[derive(Debug)]
pub struct AnyCertificate(Arc<CryptoProvider>);

impl AnyCertificate {
    /// A verifier that takes any certificate.
    pub fn new(provider: Arc<CryptoProvider>) -> AnyCertificate {
        AnyCertificate(provider)
    }
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl ClientTls {
    /// Opens TLS over `tcp` to the peer named `server_name`. The error says
    /// why the handshake failed (a certificate not valid for the name, an
    /// unknown CA, a refused client certificate).
    pub async fn connect(
        &self,
        server_name: ServerName<'static>,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
        let shown = match &server_name {
            ServerName::DnsName(name) => name.as_ref().to_string(),
            ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
            _ => "the peer".to_string(),
        };
        tokio_rustls::TlsConnector::from(self.config.current())
            .connect(server_name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {shown} failed: {e}"))
    }

    /// Starts looking at the files for changes (needs a Tokio runtime).
    pub fn watch(&self) {
        self.config.watch();
    }

    /// As [`ClientTls::watch`], at another interval (tests).
    pub fn watch_every(&self, interval: std::time::Duration) {
        self.config.watch_every(interval);
    }

    /// How reloading has gone.
    pub fn stats(&self) -> &ReloadStats {
        self.config.stats()
    }

    /// The rustls config in use now (for clients built on other stacks,
    /// such as hyper's).
    pub fn rustls_config(&self) -> Arc<rustls::ClientConfig> {
        self.config.current()
    }
}

/// The name a peer's certificate is checked against: `common_name`, or the
/// peer's IP address when there is none (`disableValidation` without one).
pub fn server_name(
    common_name: Option<&str>,
    peer: std::net::IpAddr,
) -> Result<ServerName<'static>, String> {
    match common_name {
        Some(name) => ServerName::try_from(name.to_string())
            .map_err(|_| format!("`{name}` is not a DNS name or an IP address")),
        None => Ok(ServerName::IpAddress(peer.into())),
    }
}
