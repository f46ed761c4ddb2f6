//! HTTPS to namerd: the client for an `https://` base URL, from
//! `--ca-cert`, `--client-cert` and `--client-key`, and hints for a failed
//! handshake.

use std::path::Path;
use std::sync::Arc;

use namerd::client::{BaseUrl, Client, ClientError, TlsFailure, TlsSettings};
use namers::tls::client::ClientAuthConfig;
use namers::tls::{ALPN_HTTP11, ClientTlsConfig};

use super::{CtlError, Exit};

/// The environment variable read for `--ca-cert`.
pub(crate) const CA_CERT_ENV: &str = "NAMERCTL_CA_CERT";
/// The environment variable read for `--client-cert`.
pub(crate) const CLIENT_CERT_ENV: &str = "NAMERCTL_CLIENT_CERT";
/// The environment variable read for `--client-key`.
pub(crate) const CLIENT_KEY_ENV: &str = "NAMERCTL_CLIENT_KEY";

/// The TLS files given on the command line.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TlsFiles<'a> {
    /// CA certificates namerd's certificate must be signed by (the
    /// system's when absent).
    pub(crate) ca_cert: Option<&'a Path>,
    /// The certificate shown to namerd.
    pub(crate) client_cert: Option<&'a Path>,
    /// Its private key.
    pub(crate) client_key: Option<&'a Path>,
}

/// A client for `base`: plain for `http://`; for `https://`, TLS that
/// checks namerd's certificate against the base URL's host, with the
/// files given. A file that cannot be used is an error naming its flag
/// and what is wrong with it.
pub(crate) fn client(base: BaseUrl, files: TlsFiles<'_>) -> Result<Client, CtlError> {
    let any = files.ca_cert.is_some() || files.client_cert.is_some() || files.client_key.is_some();
    if !base.is_https() {
        if any {
            return Err(CtlError::new(
                Exit::Usage,
                format!(
                    "--ca-cert, --client-cert and --client-key are for https:// base URLs; \
                     the base URL is {base}"
                ),
            ));
        }
        return Ok(Client::new(base));
    }
    let client_auth = match (files.client_cert, files.client_key) {
        (Some(cert), Some(key)) => Some(ClientAuthConfig {
            cert_path: cert.to_path_buf(),
            key_path: key.to_path_buf(),
            intermediate_certs_path: None,
        }),
        (None, None) => None,
        (Some(_), None) => {
            return Err(CtlError::new(
                Exit::Usage,
                "--client-cert needs --client-key (the certificate's private key)",
            ));
        }
        (None, Some(_)) => {
            return Err(CtlError::new(
                Exit::Usage,
                "--client-key needs --client-cert (the certificate to show namerd)",
            ));
        }
    };
    let config = ClientTlsConfig {
        common_name: Some(base.host().to_string()),
        trust_certs_bundle: files.ca_cert.map(Path::to_path_buf),
        client_auth,
        ..ClientTlsConfig::default()
    };
    let tls = config
        .build(&[ALPN_HTTP11])
        .map_err(|e| file_error(&files, &e))?;
    let tls = Arc::new(tls);
    // The name checked, and sent as SNI, is the base URL's host.
    Ok(Client::with_tls(
        base,
        TlsSettings::new(move || tls.rustls_config(), None),
    ))
}

/// `error` (from reading the TLS files) with the flag of the file it is
/// about, and the exit status for it: 66 for a file that cannot be read,
/// 65 for one that is not a usable certificate or key.
fn file_error(files: &TlsFiles<'_>, error: &str) -> CtlError {
    let flags = [
        ("--ca-cert", files.ca_cert),
        ("--client-cert", files.client_cert),
        ("--client-key", files.client_key),
    ];
    let flag = flags.iter().find_map(|(flag, path)| {
        path.filter(|p| error.starts_with(&format!("{}: ", p.display())))
            .map(|_| *flag)
    });
    let exit = if error.contains(": cannot read: ") {
        Exit::NotFound
    } else {
        Exit::BadInput
    };
    match flag {
        Some(flag) => CtlError::new(exit, format!("{flag}: {error}")),
        // The system's CA bundle, when no --ca-cert was given.
        None => CtlError::new(
            exit,
            format!("TLS: {error} (give namerd's CA with --ca-cert)"),
        ),
    }
}

/// What to do about a failed handshake (or a plaintext request to a TLS
/// port), if anything can be said.
pub(crate) fn hint(error: &ClientError) -> Option<&'static str> {
    match error {
        ClientError::Tls { failure, .. } => Some(match failure {
            TlsFailure::UnknownCa => "give the CA that signed namerd's certificate with --ca-cert",
            TlsFailure::NameMismatch => {
                "the base URL's host must be one of the names in namerd's certificate"
            }
            TlsFailure::Expired => "namerd needs a new certificate",
            TlsFailure::ClientCertRefused => {
                "show namerd a certificate signed by a CA it trusts, with --client-cert and --client-key"
            }
            TlsFailure::NotTls => "that port serves plain HTTP: use an http:// base URL",
            TlsFailure::Other => return None,
        }),
        // A TLS port closes a plaintext connection unanswered.
        ClientError::Unreachable { server, cause, .. }
            if server.starts_with("http://")
                && (cause.contains("reset by peer")
                    || cause.contains("closed before message completed")) =>
        {
            Some("if namerd serves TLS on that port, use an https:// base URL")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(url: &str) -> BaseUrl {
        BaseUrl::parse(url).unwrap()
    }

    #[test]
    fn tls_flags_need_https_and_each_other() {
        let ca = Path::new("/ca.pem");
        let e = client(
            base("http://n:4180"),
            TlsFiles {
                ca_cert: Some(ca),
                ..TlsFiles::default()
            },
        )
        .unwrap_err();
        assert_eq!(e.exit, Exit::Usage);
        assert!(e.message.contains("are for https:// base URLs"), "{e}");
        let e = client(
            base("https://n:4180"),
            TlsFiles {
                client_cert: Some(ca),
                ..TlsFiles::default()
            },
        )
        .unwrap_err();
        assert!(
            e.message.starts_with("--client-cert needs --client-key"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_file_is_named_with_its_flag() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "hello").unwrap();
        let e = client(
            base("https://namerd.test:4180"),
            TlsFiles {
                ca_cert: Some(&garbage),
                ..TlsFiles::default()
            },
        )
        .unwrap_err();
        assert_eq!(e.exit, Exit::BadInput);
        assert!(
            e.message
                .starts_with(&format!("--ca-cert: {}: not PEM", garbage.display())),
            "{e}"
        );
        let missing = dir.path().join("missing.pem");
        let e = client(
            base("https://namerd.test:4180"),
            TlsFiles {
                ca_cert: Some(&missing),
                ..TlsFiles::default()
            },
        )
        .unwrap_err();
        assert_eq!(e.exit, Exit::NotFound);
        assert!(
            e.message
                .starts_with(&format!("--ca-cert: {}: cannot read", missing.display())),
            "{e}"
        );
    }
}
