//! TLS on every hop, with rustls: reading certificates and keys with
//! errors that name the file, Linkerd's server and client `tls:` blocks,
//! certificates reloaded when their files change, and what a peer's
//! certificate says of it.

pub mod client;
pub mod figures;
mod files;
pub mod identity;
pub mod reload;
pub mod server;
pub mod stream;

pub use client::{ClientTls, ClientTlsConfig};
pub use figures::TlsFigures;
pub use identity::PeerIdentity;
pub use server::{ServerTls, ServerTlsConfig};
pub use stream::Stream;

use rustls::SupportedProtocolVersion;
use rustls::crypto::CryptoProvider;

/// ALPN's name for HTTP/2.
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN's name for HTTP/1.1.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// The cryptography every TLS config here uses (ring's).
pub fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// `protocols:` as rustls versions; both when unset.
pub(crate) fn protocol_versions(
    names: Option<&[String]>,
) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    let Some(names) = names else {
        return Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12]);
    };
    if names.is_empty() {
        return Err("names no protocol; use TLSv1.2, TLSv1.3 or both".into());
    }
    names
        .iter()
        .map(|name| match name.as_str() {
            "TLSv1.3" => Ok(&rustls::version::TLS13),
            "TLSv1.2" => Ok(&rustls::version::TLS12),
            "TLSv1" | "TLSv1.1" | "SSLv3" | "SSLv2Hello" => Err(format!(
                "`{name}` is not offered: it is unsafe; TLSv1.2 and TLSv1.3 are"
            )),
            _ => Err(format!("unknown protocol `{name}`; use TLSv1.2 or TLSv1.3")),
        })
        .collect()
}

/// The IANA name of a rustls cipher suite (`TLS_AES_128_GCM_SHA256`).
fn iana_name(suite: &rustls::SupportedCipherSuite) -> String {
    let name = suite.suite().as_str().unwrap_or_default();
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name.to_string(),
    }
}

/// `ciphers:` as rustls cipher suites, by IANA name; `None` when unset.
pub(crate) fn cipher_suites(
    names: Option<&[String]>,
) -> Result<Option<Vec<rustls::SupportedCipherSuite>>, String> {
    let Some(names) = names else {
        return Ok(None);
    };
    let all = rustls::crypto::ring::ALL_CIPHER_SUITES;
    names
        .iter()
        .map(|name| {
            all.iter()
                .find(|suite| {
                    iana_name(suite) == *name || suite.suite().as_str() == Some(name.as_str())
                })
                .copied()
                .ok_or_else(|| {
                    let known: Vec<String> = all.iter().map(iana_name).collect();
                    format!(
                        "unknown or unsupported cipher suite `{name}`; these are supported: {}",
                        known.join(", ")
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

#[cfg(test)]
mod tests;
