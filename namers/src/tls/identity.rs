//! What a peer's certificate says of it: the names access rules match and
//! the `x-forwarded-client-cert` value Linkerd's `forwardClientCert` sends.

use std::fmt::Write as _;

use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;

/// A verified client certificate's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// SHA-256 of the DER certificate, upper-case hex.
    pub hash: String,
    /// URI subject alternative names (SPIFFE ids, for example).
    pub uris: Vec<String>,
    /// DNS subject alternative names.
    pub dns: Vec<String>,
    /// The subject's common name.
    pub common_name: Option<String>,
    /// The subject as RFC 2253 writes it (`CN=web,O=Acme`).
    pub subject: String,
}

impl PeerIdentity {
    /// Reads the identity of `cert`; `None` if it does not parse (it was
    /// verified, so that does not happen).
    pub fn of(cert: &CertificateDer<'_>) -> Option<PeerIdentity> {
        let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
        let digest = ring::digest::digest(&ring::digest::SHA256, cert);
        let mut hash = String::with_capacity(64);
        for byte in digest.as_ref() {
            let _ = write!(hash, "{byte:02X}");
        }
        let mut uris = Vec::new();
        let mut dns = Vec::new();
        if let Ok(Some(names)) = parsed.subject_alternative_name() {
            for name in &names.value.general_names {
                match name {
                    GeneralName::URI(uri) => uris.push((*uri).to_string()),
                    GeneralName::DNSName(name) => dns.push((*name).to_string()),
                    _ => {}
                }
            }
        }
        let common_name = parsed
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string);
        Some(PeerIdentity {
            hash,
            uris,
            dns,
            common_name,
            subject: rfc2253(parsed.subject()),
        })
    }

    /// The `x-forwarded-client-cert` value, as Linkerd writes it:
    /// `Hash=…;SAN=<uri>;DNS=<name>;Subject="…"`.
    pub fn forwarded_client_cert(&self) -> String {
        let mut value = format!("Hash={}", self.hash);
        for uri in &self.uris {
            let _ = write!(value, ";SAN={uri}");
        }
        for name in &self.dns {
            let _ = write!(value, ";DNS={name}");
        }
        if !self.subject.is_empty() {
            let _ = write!(value, ";Subject=\"{}\"", self.subject.replace('"', "\\\""));
        }
        value
    }

    /// Every name the certificate carries: URIs, DNS names, the common
    /// name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.uris
            .iter()
            .chain(&self.dns)
            .chain(&self.common_name)
            .map(String::as_str)
    }
}

/// A distinguished name as RFC 2253 writes it: the last RDN first, `,`
/// between them, short attribute names where known.
fn rfc2253(name: &x509_parser::x509::X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let mut out = String::new();
    let rdns: Vec<_> = name.iter_rdn().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let key = x509_parser::objects::oid2abbrev(attr.attr_type(), registry)
                .map(str::to_string)
                .unwrap_or_else(|_| attr.attr_type().to_id_string());
            let value = attr.as_str().unwrap_or_default();
            out.push_str(&key);
            out.push('=');
            escape_value(value, &mut out);
        }
    }
    out
}

fn escape_value(value: &str, out: &mut String) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == ' ' || c == '#'))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
}
