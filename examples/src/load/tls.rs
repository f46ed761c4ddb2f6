//! The one certificate every proxy serves, the clients that talk to
//! them, and what a handshake with each of them negotiated.

use std::collections::VecDeque;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::ClientConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};

use super::probe::{get_request, parse_status};

/// The name the leaf is for, besides `127.0.0.1`; clients send it as SNI.
pub const SERVER_NAME: &str = "localhost";

/// The kind of key the leaf certificate has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyKind {
    /// ECDSA on P-256, signed with SHA-256 (made by rcgen).
    EcdsaP256,
    /// RSA, 2048 bits (made by `openssl genpkey`: ring makes no RSA keys).
    Rsa2048,
}

impl KeyKind {
    /// How the report names it.
    pub fn label(self) -> &'static str {
        match self {
            KeyKind::EcdsaP256 => "ECDSA P-256",
            KeyKind::Rsa2048 => "RSA 2048",
        }
    }
}

/// The files of the CA and of the leaf the proxies serve.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA's certificate (PEM).
    pub ca: PathBuf,
    /// The leaf's certificate (PEM).
    pub cert: PathBuf,
    /// The leaf's key (PKCS#8 PEM).
    pub key: PathBuf,
    /// The certificate followed by the key, as HAProxy's `crt` reads it.
    pub combined: PathBuf,
}

/// TLS on a proxy's listener: the files, and the one TLS 1.3 suite to
/// allow, if pinned (otherwise each proxy's defaults, TLS 1.2 and 1.3).
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// The certificate and key.
    pub files: TlsFiles,
    /// `TLS_AES_128_GCM_SHA256`, say.
    pub tls13_suite: Option<String>,
}

/// Makes a CA and a leaf for `127.0.0.1` and `localhost` in `dir`.
pub fn make_certificate(dir: &Path, kind: KeyKind) -> Result<TlsFiles> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "switchboard bench CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;

    let key = match kind {
        KeyKind::EcdsaP256 => KeyPair::generate()?,
        KeyKind::Rsa2048 => {
            let path = dir.join("rsa-key.pem");
            let status = Command::new("openssl")
                .args([
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                ])
                .arg("-out")
                .arg(&path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .context("running openssl genpkey")?;
            if !status.success() {
                bail!("openssl genpkey failed ({status})");
            }
            KeyPair::from_pem(&std::fs::read_to_string(&path)?)?
        }
    };
    let mut params = CertificateParams::new(vec![SERVER_NAME.to_string(), "127.0.0.1".into()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, SERVER_NAME);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = params.signed_by(&key, &ca)?;

    let files = TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        combined: dir.join("cert-and-key.pem"),
    };
    std::fs::write(&files.ca, ca.pem())?;
    std::fs::write(&files.cert, cert.pem())?;
    std::fs::write(&files.key, key.serialize_pem())?;
    std::fs::write(
        &files.combined,
        format!("{}{}", cert.pem(), key.serialize_pem()),
    )?;
    Ok(files)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client that checks the server's certificate against `ca` (the
/// probes), resuming sessions as rustls does by default.
pub fn verifying_client(ca: &Path) -> Result<Arc<ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(ca).with_context(|| format!("reading {}", ca.display()))?
    {
        roots.add(cert.with_context(|| format!("reading {}", ca.display()))?)?;
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The load's client: as `wrk` (OpenSSL with `SSL_VERIFY_NONE`), it
/// checks the server's handshake signature but not its chain, so that
/// the load's core spends no more than a client must. With a
/// [`TicketStore`] it offers a session ticket from an earlier connection
/// when it has one; without, every handshake is a full one.
pub fn load_client(tickets: Option<Arc<TicketStore>>) -> Result<Arc<ClientConfig>> {
    let provider = provider();
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(namers::tls::client::AnyCertificate::new(
            provider,
        )))
        .with_no_client_auth();
    config.resumption = match tickets {
        Some(store) => rustls::client::Resumption::store(store),
        None => rustls::client::Resumption::disabled(),
    };
    Ok(Arc::new(config))
}

/// TLS 1.3 session tickets for the load's connections, newest used first.
///
/// rustls's own store keeps 8 tickets per server. When a server's answers
/// reach 50 connections in bursts, a burst of new connections then finds
/// the store empty and makes full handshakes: with the router, whose
/// tickets come 2 per connection, half the handshakes of a "resumed" run
/// were full ones. This store keeps up to 1,024, and counts the
/// connections that found none.
#[derive(Debug)]
pub struct TicketStore {
    tls13: Mutex<VecDeque<rustls::client::Tls13ClientSessionValue>>,
    /// Everything but TLS 1.3 tickets (key exchange hints, TLS 1.2).
    other: rustls::client::ClientSessionMemoryCache,
    /// Connections that offered a ticket, and that found none to offer.
    offered: AtomicU64,
    missing: AtomicU64,
}

/// How many tickets a [`TicketStore`] keeps.
const TICKETS_KEPT: usize = 1024;

impl TicketStore {
    /// An empty store.
    pub fn new() -> Arc<TicketStore> {
        Arc::new(TicketStore {
            tls13: Mutex::new(VecDeque::new()),
            other: rustls::client::ClientSessionMemoryCache::new(8),
            offered: AtomicU64::new(0),
            missing: AtomicU64::new(0),
        })
    }

    /// Connections that offered a ticket, and that had none to offer.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.offered.load(Ordering::Relaxed),
            self.missing.load(Ordering::Relaxed),
        )
    }

    fn tickets(
        &self,
    ) -> std::sync::MutexGuard<'_, VecDeque<rustls::client::Tls13ClientSessionValue>> {
        self.tls13.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl rustls::client::ClientSessionStore for TicketStore {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: rustls::NamedGroup) {
        self.other.set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<rustls::NamedGroup> {
        self.other.kx_hint(server_name)
    }

    fn set_tls12_session(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.other.set_tls12_session(server_name, value);
    }

    fn tls12_session(
        &self,
        server_name: &ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.other.tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.other.remove_tls12_session(server_name);
    }

    // One server per store: the name is not kept.
    fn insert_tls13_ticket(
        &self,
        _server_name: ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        let mut tickets = self.tickets();
        if tickets.len() == TICKETS_KEPT {
            tickets.pop_front();
        }
        tickets.push_back(value);
    }

    fn take_tls13_ticket(
        &self,
        _server_name: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        let ticket = self.tickets().pop_back();
        let counter = if ticket.is_some() {
            &self.offered
        } else {
            &self.missing
        };
        counter.fetch_add(1, Ordering::Relaxed);
        ticket
    }
}

/// What a handshake settled on.
#[derive(Debug, Clone, PartialEq)]
pub struct Negotiated {
    /// `TLSv1.3`.
    pub protocol: String,
    /// `TLS_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// The key exchange group, `X25519`.
    pub group: String,
    /// Full, resumed, full after a HelloRetryRequest.
    pub kind: Option<rustls::HandshakeKind>,
}

impl std::fmt::Display for Negotiated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, {}, {}", self.protocol, self.cipher, self.group)
    }
}

/// What a rustls connection negotiated.
pub fn negotiated(conn: &rustls::CommonState) -> Negotiated {
    let protocol = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(other) => format!("{other:?}"),
        None => "none".into(),
    };
    let cipher = conn.negotiated_cipher_suite().map_or("none".into(), |s| {
        let name = format!("{:?}", s.suite());
        match name.strip_prefix("TLS13_") {
            Some(rest) => format!("TLS_{rest}"),
            None => name,
        }
    });
    let group = conn
        .negotiated_key_exchange_group()
        .map_or("none".into(), |g| format!("{:?}", g.name()));
    Negotiated {
        protocol,
        cipher,
        group,
        kind: conn.handshake_kind(),
    }
}

/// One `GET /` over TLS with `Connection: close`: the status, the whole
/// answer and what the handshake negotiated.
pub fn https_get(
    config: &Arc<ClientConfig>,
    addr: SocketAddr,
    timeout: Duration,
) -> std::io::Result<(u16, String, Negotiated)> {
    let name = ServerName::try_from(SERVER_NAME).map_err(std::io::Error::other)?;
    let conn =
        rustls::ClientConnection::new(config.clone(), name).map_err(std::io::Error::other)?;
    let tcp = TcpStream::connect_timeout(&addr, timeout)?;
    tcp.set_read_timeout(Some(timeout))?;
    tcp.set_write_timeout(Some(timeout))?;
    tcp.set_nodelay(true)?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    stream.write_all(get_request(addr).as_bytes())?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) if answer.len() + n <= 64 * 1024 => answer.extend_from_slice(&chunk[..n]),
            Ok(_) => return Err(std::io::Error::other("answer over 64 KiB")),
            // A server may close without close_notify after the answer.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !answer.is_empty() => {
                break;
            }
            Err(e) => return Err(e),
        }
    }
    let negotiated = negotiated(&stream.conn);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    Ok((parse_status(&answer)?, answer, negotiated))
}

/// Whether the server at `addr` resumes a session: two requests with
/// one client; what the second handshake was.
pub fn resumes(config: &Arc<ClientConfig>, addr: SocketAddr) -> Result<Negotiated> {
    https_get(config, addr, Duration::from_secs(5))?;
    Ok(https_get(config, addr, Duration::from_secs(5))?.2)
}

/// What `openssl s_client` (OpenSSL's client, as `wrk` uses) negotiates
/// with `addr`, checking the certificate against `ca`.
pub fn openssl_negotiated(addr: SocketAddr, ca: &Path) -> Result<String> {
    let mut child = Command::new("openssl")
        .args(["s_client", "-brief", "-connect", &addr.to_string()])
        .args([
            "-servername",
            SERVER_NAME,
            "-verify_return_error",
            "-CAfile",
        ])
        .arg(ca)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running openssl s_client")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait()?.is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("openssl s_client to {addr} did not finish in 10 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .map(|v| v.trim().to_string())
    };
    let protocol = field("Protocol version:");
    let cipher = field("Ciphersuite:");
    let verified = field("Verification:");
    let (Some(protocol), Some(cipher)) = (protocol, cipher) else {
        return Err(anyhow!(
            "openssl s_client to {addr} made no handshake:\n{text}"
        ));
    };
    let group = field("Server Temp Key:").or_else(|| field("Negotiated TLS1.3 group:"));
    let signature = field("Peer signature type:").or_else(|| field("Signature type:"));
    Ok(format!(
        "{protocol}, {cipher}, {}, {} signature, verification {}",
        group.unwrap_or_else(|| "group not shown".into()),
        signature.unwrap_or_else(|| "unknown".into()),
        verified.unwrap_or_else(|| "not shown".into())
    ))
}
