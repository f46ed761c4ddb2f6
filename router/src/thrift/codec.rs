//! Finding whole messages in bytes, in either protocol, and writing the
//! `TApplicationException` a failed call is answered with.

use namerd_client::thrift::compact;
use namerd_client::thrift::protocol::{self, DecodeError, MessageHeader, message_type, ttype};
use namerd_client::thrift::types::{APP_INTERNAL_ERROR, ApplicationException};

use super::config::ThriftProtocol;

/// What the bytes at the front of a buffer are.
#[derive(Debug)]
pub(crate) enum Scan {
    /// A whole message of `len` bytes.
    Whole { header: MessageHeader, len: usize },
    /// The start of a message that needs at least `wanted` bytes.
    Partial { wanted: usize },
    /// Not a message of the protocol.
    Malformed(DecodeError),
}

impl ThriftProtocol {
    /// Reads the header of the message at the front of `bytes` and skips
    /// its body (a struct, whatever the message type).
    pub(crate) fn scan(self, bytes: &[u8]) -> Scan {
        let (read, wanted, len) = match self {
            ThriftProtocol::Binary => {
                let mut r = protocol::Reader::new(bytes);
                let read = r.message_begin().and_then(|header| {
                    r.skip(ttype::STRUCT)?;
                    Ok(header)
                });
                (read, r.wanted(), r.position())
            }
            ThriftProtocol::Compact => {
                let mut r = compact::Reader::new(bytes);
                let read = r.message_begin().and_then(|header| {
                    r.skip(ttype::STRUCT)?;
                    Ok(header)
                });
                (read, r.wanted(), r.position())
            }
        };
        match (read, wanted) {
            (Ok(header), _) => Scan::Whole { header, len },
            (Err(_), Some(wanted)) => Scan::Partial { wanted },
            (Err(e), None) => Scan::Malformed(e),
        }
    }

    /// The answer to call `seq_id` of `method` that the router could not
    /// complete: a `TApplicationException` of type `INTERNAL_ERROR`
    /// saying why, as Linkerd's thrift servers answered.
    pub(crate) fn exception(self, method: &str, seq_id: i32, why: &str) -> Vec<u8> {
        let e = ApplicationException {
            message: why.to_string(),
            kind: APP_INTERNAL_ERROR,
        };
        match self {
            ThriftProtocol::Binary => {
                namerd_client::thrift::service::encode_exception(method, seq_id, &e)
            }
            ThriftProtocol::Compact => compact::encode_exception(method, seq_id, &e),
        }
    }
}

/// The name of a message type, for messages.
pub(crate) fn kind_name(kind: u8) -> &'static str {
    match kind {
        message_type::CALL => "CALL",
        message_type::REPLY => "REPLY",
        message_type::EXCEPTION => "EXCEPTION",
        message_type::ONEWAY => "ONEWAY",
        _ => "an unknown type",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn call(protocol: ThriftProtocol) -> Vec<u8> {
        match protocol {
            ThriftProtocol::Binary => {
                let mut w = protocol::Writer::new();
                w.message_begin("echo", message_type::CALL, 3);
                w.field_begin(ttype::STRING, 1);
                w.string("hi");
                w.field_stop();
                w.into_bytes()
            }
            ThriftProtocol::Compact => {
                let mut w = compact::Writer::new();
                w.message_begin("echo", message_type::CALL, 3);
                w.struct_begin();
                w.field_begin(ttype::STRING, 1);
                w.string("hi");
                w.field_stop();
                w.struct_end();
                w.into_bytes()
            }
        }
    }

    #[test]
    fn whole_partial_and_malformed_messages_are_told_apart() {
        for protocol in [ThriftProtocol::Binary, ThriftProtocol::Compact] {
            let mut bytes = call(protocol);
            let len = bytes.len();
            // The next message's first bytes do not matter.
            bytes.extend_from_slice(&[0x80, 0x01]);
            let Scan::Whole { header, len: found } = protocol.scan(&bytes) else {
                panic!("{protocol:?}")
            };
            assert_eq!(
                (header.name.as_str(), header.seq_id, found),
                ("echo", 3, len)
            );
            for cut in 0..len {
                let Scan::Partial { wanted } = protocol.scan(&bytes[..cut]) else {
                    panic!("{protocol:?} cut at {cut}")
                };
                assert!(
                    wanted > cut && wanted <= len,
                    "{protocol:?} {cut}: {wanted}"
                );
            }
            assert!(matches!(
                protocol.scan(b"GET / HTTP/1.1\r\n\r\n"),
                Scan::Malformed(_)
                    | Scan::Partial {
                        wanted: 0x4000_0000..
                    }
            ));
        }
        // Each protocol refuses the other's messages.
        assert!(matches!(
            ThriftProtocol::Compact.scan(&call(ThriftProtocol::Binary)),
            Scan::Malformed(_)
        ));
        assert!(matches!(
            ThriftProtocol::Binary.scan(&call(ThriftProtocol::Compact)),
            Scan::Malformed(_)
        ));
    }

    #[test]
    fn exceptions_are_internal_errors_that_scan_as_whole_messages() {
        for protocol in [ThriftProtocol::Binary, ThriftProtocol::Compact] {
            let bytes = protocol.exception("echo", -7, "no endpoints for /svc");
            let Scan::Whole { header, len } = protocol.scan(&bytes) else {
                panic!("{protocol:?}")
            };
            assert_eq!(len, bytes.len());
            assert_eq!(header.kind, message_type::EXCEPTION);
            assert_eq!((header.name.as_str(), header.seq_id), ("echo", -7));
        }
    }
}
