//! The start of a connection to a TLS port (the admin servers', namerd's
//! API): the client's first byte must open a TLS handshake, and the
//! handshake must finish in time. Anything else is closed without a byte
//! written back, so a plaintext client sees its connection closed rather
//! than an answer.

use std::time::Duration;

use tokio::net::TcpStream;

use crate::tls::{ServerTls, Stream};

/// How long a client has to complete its TLS handshake, first byte
/// included (as on the routers' TLS servers).
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The first byte of a TLS record that carries a handshake message.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Why a connection to a TLS port was closed before a request.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The client closed the connection before sending anything.
    #[error("the client closed the connection before a TLS handshake")]
    Closed,
    /// The client spoke something else (plain HTTP, most likely).
    #[error("the client did not start a TLS handshake (plaintext to a TLS port?)")]
    NotTls,
    /// The handshake did not finish in time.
    #[error("the TLS handshake did not finish within {0:?}")]
    TimedOut(Duration),
    /// The handshake failed: a client certificate missing or not trusted,
    /// no protocol or cipher suite in common, a broken connection.
    #[error("the TLS handshake failed: {0}")]
    Failed(std::io::Error),
}

/// Accepts TLS on `tcp` with the certificates `tls` has now; the whole
/// handshake, first byte included, must take less than `within`.
pub async fn accept(
    tls: &ServerTls,
    tcp: TcpStream,
    within: Duration,
) -> Result<Stream, HandshakeError> {
    let acceptor = tls.acceptor();
    let handshake = async move {
        let mut first = [0u8; 1];
        match tcp.peek(&mut first).await {
            Ok(0) => return Err(HandshakeError::Closed),
            Ok(_) if first[0] != TLS_HANDSHAKE_RECORD => return Err(HandshakeError::NotTls),
            Ok(_) => {}
            Err(e) => return Err(HandshakeError::Failed(e)),
        }
        acceptor
            .accept(tcp)
            .await
            .map(|tls| Stream::Server(Box::new(tls)))
            .map_err(HandshakeError::Failed)
    };
    tokio::time::timeout(within, handshake)
        .await
        .map_err(|_| HandshakeError::TimedOut(within))?
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::*;
    use crate::tls::{ClientTlsConfig, ServerTlsConfig, client};

    async fn server(
        tls: Arc<ServerTls>,
    ) -> (std::net::SocketAddr, tokio::sync::mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let (tls, tx) = (tls.clone(), tx.clone());
                tokio::spawn(async move {
                    let said = match accept(&tls, tcp, Duration::from_millis(500)).await {
                        Ok(mut stream) => {
                            let _ = stream.write_all(b"hello").await;
                            let _ = stream.shutdown().await;
                            "ok".to_string()
                        }
                        Err(e) => e.to_string(),
                    };
                    let _ = tx.send(said).await;
                });
            }
        });
        (addr, rx)
    }

    #[tokio::test]
    async fn plaintext_and_silence_are_closed_and_tls_is_served() {
        let pki = integration::pki::Pki::new("hs");
        let leaf = pki.leaf("server", &["localhost"]);
        let config: ServerTlsConfig = serde_json::from_value(serde_json::json!({
            "certPath": leaf.cert, "keyPath": leaf.key,
        }))
        .unwrap();
        let (addr, mut said) = server(Arc::new(config.build(&[]).unwrap())).await;

        let mut plain = TcpStream::connect(addr).await.unwrap();
        plain
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut reply = Vec::new();
        // Closed (a reset, as the request was left unread), with nothing
        // written back.
        let _ = plain.read_to_end(&mut reply).await;
        assert!(reply.is_empty(), "{reply:?}");
        assert!(
            said.recv()
                .await
                .unwrap()
                .contains("did not start a TLS handshake")
        );

        let _silent = TcpStream::connect(addr).await.unwrap();
        assert!(said.recv().await.unwrap().contains("did not finish within"));

        let client = ClientTlsConfig {
            common_name: Some("localhost".into()),
            trust_certs_bundle: Some(pki.ca().to_path_buf()),
            ..ClientTlsConfig::default()
        }
        .build(&[])
        .unwrap();
        let name = client::server_name(Some("localhost"), addr.ip()).unwrap();
        let mut tls = client
            .connect(name, TcpStream::connect(addr).await.unwrap())
            .await
            .unwrap();
        let mut reply = String::new();
        tls.read_to_string(&mut reply).await.unwrap();
        assert_eq!(reply, "hello");
        assert_eq!(said.recv().await.unwrap(), "ok");
    }
}
