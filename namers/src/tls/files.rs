//! Reading certificates and keys from PEM files, with errors that name the
//! file and say what is wrong with it.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// What is wrong with a PEM file, in words (the library's own messages
/// show raw bytes).
fn describe(error: rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error;
    match error {
        Error::MissingSectionEnd { end_marker } => format!(
            "a PEM block is not closed (no `-----END {}-----` line)",
            String::from_utf8_lossy(&end_marker).trim()
        ),
        Error::IllegalSectionStart { line } => format!(
            "a PEM block starts with a malformed line `{}`",
            String::from_utf8_lossy(&line).trim()
        ),
        Error::Base64Decode(why) => format!("a PEM block is not valid base64: {why}"),
        other => other.to_string(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))
}

/// Every certificate in the PEM file at `path`; at least one.
pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read(path)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            format!(
                "{}: not a PEM certificate file: {}",
                path.display(),
                describe(e)
            )
        })?;
    if certs.is_empty() {
        return Err(format!(
            "{}: not PEM: no `-----BEGIN CERTIFICATE-----` block",
            path.display()
        ));
    }
    Ok(certs)
}

/// The private key in the PEM file at `path` (PKCS#8, as Linkerd needs;
/// PKCS#1 RSA and SEC1 EC keys are read too).
pub(crate) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => format!(
            "{}: not PEM: no `-----BEGIN PRIVATE KEY-----` block (PKCS#8; PKCS#1 and SEC1 keys are read too)",
            path.display()
        ),
        e => format!("{}: not a PEM private key: {}", path.display(), describe(e)),
    })
}

/// Says whether `cert` is valid now: not expired, not yet to come.
pub(crate) fn check_validity(path: &Path, cert: &CertificateDer<'_>) -> Result<(), String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| format!("{}: not an X.509 certificate: {e}", path.display()))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let validity = parsed.validity();
    if validity.not_after.timestamp() < now {
        return Err(format!(
            "{}: the certificate expired on {}",
            path.display(),
            validity.not_after
        ));
    }
    if validity.not_before.timestamp() > now {
        return Err(format!(
            "{}: the certificate is not valid before {}",
            path.display(),
            validity.not_before
        ));
    }
    Ok(())
}

/// When `cert` expires, in seconds since the epoch.
pub(crate) fn not_after(cert: &CertificateDer<'_>) -> Option<i64> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    Some(parsed.validity().not_after.timestamp())
}

/// A certificate chain and its key, checked: PEM, valid now, and the key is
/// the certificate's. `intermediates` follow the leaf in the chain.
pub(crate) fn certified_key(
    cert_path: &Path,
    intermediates: Option<&Path>,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, String> {
    let mut chain = read_certs(cert_path)?;
    check_validity(cert_path, &chain[0])?;
    if let Some(path) = intermediates {
        chain.extend(read_certs(path)?);
    }
    let key = read_key(key_path)?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("{}: unusable private key: {e}", key_path.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(Arc::new(certified))
        }
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(format!(
                "{}: the key does not match the certificate in {}",
                key_path.display(),
                cert_path.display()
            ))
        }
        Err(e) => Err(format!("{}: {e}", cert_path.display())),
    }
}

/// A store of trusted CA certificates from PEM files.
pub(crate) fn root_store(paths: &[&Path]) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for path in paths {
        for cert in read_certs(path)? {
            roots
                .add(cert)
                .map_err(|e| format!("{}: not a usable CA certificate: {e}", path.display()))?;
        }
    }
    Ok(roots)
}
