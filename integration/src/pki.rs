//! Certificates made at test time: a CA and leaves it signs, written as PEM
//! files in a temporary directory.

// Test support: a certificate that cannot be made is a broken test.
#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

/// A test CA and the directory its files go to.
pub struct Pki {
    dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
    ca_path: PathBuf,
}

/// A leaf certificate's files.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PKCS#8 PEM).
    pub key: PathBuf,
}

impl Pki {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Pki {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Switchboard tests");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let ca = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        let ca_path = dir.path().join(format!("{name}-ca.pem"));
        std::fs::write(&ca_path, ca.pem()).expect("write the CA");
        Pki { dir, ca, ca_path }
    }

    /// The CA certificate's file.
    pub fn ca(&self) -> &Path {
        &self.ca_path
    }

    /// The directory the files are in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A leaf for `names` (DNS names or IP addresses; the first is also
    /// the common name), good for servers and clients.
    pub fn leaf(&self, stem: &str, names: &[&str]) -> Leaf {
        self.leaf_with(stem, leaf_params(names))
    }

    /// A leaf that also carries the URI `uri` (a SPIFFE id, say).
    pub fn leaf_with_uri(&self, stem: &str, names: &[&str], uri: &str) -> Leaf {
        let mut params = leaf_params(names);
        params
            .subject_alt_names
            .push(SanType::URI(uri.try_into().expect("a URI")));
        self.leaf_with(stem, params)
    }

    /// A leaf that expired in 2020.
    pub fn expired(&self, stem: &str, names: &[&str]) -> Leaf {
        let mut params = leaf_params(names);
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        self.leaf_with(stem, params)
    }

    /// A leaf made from `params`, signed by this CA.
    pub fn leaf_with(&self, stem: &str, params: CertificateParams) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.ca).expect("leaf certificate");
        let leaf = Leaf {
            cert: self.dir.path().join(format!("{stem}.pem")),
            key: self.dir.path().join(format!("{stem}-key.pem")),
        };
        std::fs::write(&leaf.cert, cert.pem()).expect("write the certificate");
        std::fs::write(&leaf.key, key.serialize_pem()).expect("write the key");
        leaf
    }
}

fn leaf_params(names: &[&str]) -> CertificateParams {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("leaf params");
    if let Some(first) = names.first() {
        params.distinguished_name.push(DnType::CommonName, *first);
    }
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Switchboard tests");
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params
}
