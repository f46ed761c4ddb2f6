//! TLS on a listening port: Linkerd's server `tls:` block, built into a
//! rustls server config that is rebuilt when its files change.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

use super::files;
use super::reload::{ReloadStats, Reloading};
use super::{protocol_versions, provider};

/// A server's `tls:` (Linkerd's keys).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerTlsConfig {
    /// `false` turns TLS off (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The certificate (PEM); its chain may follow it in the same file.
    pub cert_path: PathBuf,
    /// More of the chain, sent after the certificate (PEM).
    #[serde(default)]
    pub intermediate_certs_path: Option<PathBuf>,
    /// The private key (PEM; PKCS#8, PKCS#1 or SEC1).
    pub key_path: PathBuf,
    /// CAs that client certificates are checked against.
    #[serde(default)]
    pub ca_cert_path: Option<PathBuf>,
    /// Cipher suites, by IANA name (default: rustls's).
    #[serde(default)]
    pub ciphers: Option<Vec<String>>,
    /// Refuse the handshake of a client without a certificate signed by
    /// `caCertPath`'s CAs.
    #[serde(default)]
    pub require_client_auth: Option<bool>,
    /// `TLSv1.2`, `TLSv1.3` (default both).
    #[serde(default)]
    pub protocols: Option<Vec<String>>,
}

/// A server's TLS, built and kept up to date with its files.
pub struct ServerTls {
    config: Arc<Reloading<rustls::ServerConfig>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

impl ServerTlsConfig {
    /// Whether TLS is on.
    pub fn is_enabled(&self) -> bool {
        self.enabled != Some(false)
    }

    /// Builds the server's TLS, offering `alpn` (most preferred first).
    /// Errors name the key or the file and what is wrong.
    pub fn build(&self, alpn: &[&[u8]]) -> Result<ServerTls, String> {
        let checked = self.clone();
        checked.check()?;
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let mut paths = vec![self.cert_path.clone(), self.key_path.clone()];
        paths.extend(self.intermediate_certs_path.clone());
        paths.extend(self.ca_cert_path.clone());
        let what = format!("server certificate {}", self.cert_path.display());
        let config = Reloading::new(what, paths, move || checked.server_config(&alpn))?;
        Ok(ServerTls { config })
    }

    /// What can be said of the keys without reading files.
    fn check(&self) -> Result<(), String> {
        if self.require_client_auth == Some(true) && self.ca_cert_path.is_none() {
            return Err(
                "requireClientAuth: needs caCertPath, the CAs client certificates are checked against"
                    .into(),
            );
        }
        protocol_versions(self.protocols.as_deref()).map_err(|e| format!("protocols: {e}"))?;
        super::cipher_suites(self.ciphers.as_deref()).map_err(|e| format!("ciphers: {e}"))?;
        Ok(())
    }

    fn server_config(
        &self,
        alpn: &[Vec<u8>],
    ) -> Result<(Arc<rustls::ServerConfig>, Option<i64>), String> {
        let mut provider = provider();
        if let Some(suites) = super::cipher_suites(self.ciphers.as_deref())? {
            provider.cipher_suites = suites;
        }
        let provider = Arc::new(provider);
        let key = files::certified_key(
            &self.cert_path,
            self.intermediate_certs_path.as_deref(),
            &self.key_path,
            &provider,
        )?;
        let expires = files::not_after(&key.cert[0]);
        let versions = protocol_versions(self.protocols.as_deref())?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| format!("protocols: {e}"))?;
        let builder = match &self.ca_cert_path {
            Some(ca) => {
                let roots = files::root_store(&[ca.as_path()])?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
                let verifier = if self.require_client_auth == Some(true) {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| format!("{}: {e}", ca.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(Arc::new(Single(key)));
        config.alpn_protocols = alpn.to_vec();
        Ok((Arc::new(config), expires))
    }

    /// The files this block reads.
    pub fn files(&self) -> Vec<&Path> {
        let mut files = vec![self.cert_path.as_path(), self.key_path.as_path()];
        files.extend(self.intermediate_certs_path.as_deref());
        files.extend(self.ca_cert_path.as_deref());
        files
    }
}

/// One certificate for every client (no SNI-based choice).
#[derive(Debug)]
struct Single(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for Single {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

impl ServerTls {
    /// An acceptor with the certificates in use now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.current())
    }

    /// Starts looking at the files for changes (needs a Tokio runtime).
    pub fn watch(&self) {
        self.config.watch();
    }

    /// As [`ServerTls::watch`], at another interval (tests).
    pub fn watch_every(&self, interval: std::time::Duration) {
        self.config.watch_every(interval);
    }

    /// Rebuilds now if the files changed; says whether they had.
    pub fn reload_if_changed(&self) -> bool {
        self.config.reload_if_changed()
    }

    /// How reloading has gone.
    pub fn stats(&self) -> &ReloadStats {
        self.config.stats()
    }
}
