//! The server name (SNI) of a TLS ClientHello, read from the first bytes
//! a client sends, which stay unread on the socket (RFC 8446 section
//! 4.1.2, RFC 6066 section 3).

/// What the first bytes of a connection say about its server name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// A ClientHello that names this host (lowercased).
    Host(String),
    /// A ClientHello without a server name.
    NoServerName,
    /// Not the start of a TLS ClientHello.
    NotTls,
    /// Too few bytes yet.
    Incomplete,
}

/// The most bytes read to find a ClientHello: one TLS record.
pub const MAX_HELLO: usize = 5 + (1 << 14);

const HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const SERVER_NAME: u16 = 0;
const HOST_NAME: u8 = 0;

/// Reads the server name of the ClientHello that `bytes` start with. The
/// hello must fit in the first record, as every client's does.
pub fn server_name(bytes: &[u8]) -> Hello {
    let mut record = Reader(bytes);
    let (Some(kind), Some(major)) = (record.u8(), record.u8()) else {
        return Hello::Incomplete;
    };
    if kind != HANDSHAKE || major != 3 {
        return Hello::NotTls;
    }
    let (Some(_minor), Some(length)) = (record.u8(), record.u16()) else {
        return Hello::Incomplete;
    };
    let Some(body) = record.take(usize::from(length)) else {
        return Hello::Incomplete;
    };
    match client_hello(body) {
        Some(hello) => hello,
        None => Hello::NotTls,
    }
}

/// The server name of a whole handshake record; `None` when malformed.
fn client_hello(record: &[u8]) -> Option<Hello> {
    let mut handshake = Reader(record);
    if handshake.u8()? != CLIENT_HELLO {
        return None;
    }
    let length = handshake.u24()?;
    let mut hello = Reader(handshake.take(length)?);
    hello.take(2 + 32)?; // legacy_version, random
    let session = hello.u8()?;
    hello.take(usize::from(session))?;
    let suites = hello.u16()?;
    hello.take(usize::from(suites))?;
    let compression = hello.u8()?;
    hello.take(usize::from(compression))?;
    if hello.0.is_empty() {
        return Some(Hello::NoServerName);
    }
    let extensions = hello.u16()?;
    let mut extensions = Reader(hello.take(usize::from(extensions))?);
    while !extensions.0.is_empty() {
        let kind = extensions.u16()?;
        let length = extensions.u16()?;
        let data = extensions.take(usize::from(length))?;
        if kind != SERVER_NAME {
            continue;
        }
        let mut list = Reader(data);
        let length = list.u16()?;
        let mut names = Reader(list.take(usize::from(length))?);
        while !names.0.is_empty() {
            let kind = names.u8()?;
            let length = names.u16()?;
            let name = names.take(usize::from(length))?;
            if kind == HOST_NAME {
                let host = std::str::from_utf8(name).ok()?;
                return Some(Hello::Host(host.to_ascii_lowercase()));
            }
        }
    }
    Some(Hello::NoServerName)
}

/// Big-endian fields off the front of a slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A ClientHello record as rustls writes it for `host`.
    fn hello_from_rustls(host: &str) -> Vec<u8> {
        use tokio_rustls::rustls;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(host.to_string()).unwrap();
        let mut client = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
        let mut out = Vec::new();
        client.write_tls(&mut out).unwrap();
        out
    }

    #[test]
    fn finds_the_server_name_of_a_real_hello() {
        let hello = hello_from_rustls("Redis.Example.org");
        assert_eq!(server_name(&hello), Hello::Host("redis.example.org".into()));
    }

    #[test]
    fn a_partial_hello_asks_for_more_and_other_bytes_are_not_tls() {
        let hello = hello_from_rustls("a.example");
        for cut in [0, 1, 4, 5, 40, hello.len() - 1] {
            assert_eq!(server_name(&hello[..cut]), Hello::Incomplete, "{cut}");
        }
        assert_eq!(server_name(b"GET / HTTP/1.1\r\n"), Hello::NotTls);
        assert_eq!(server_name(b"\x16\x03\x01\x00\x01\x02"), Hello::NotTls);
    }

    #[test]
    fn an_ip_address_gives_no_server_name() {
        // rustls sends no SNI for an IP address.
        let hello = hello_from_rustls("127.0.0.1");
        assert_eq!(server_name(&hello), Hello::NoServerName);
    }
}
