//! Messages on a connection, in either transport: framed (each message
//! after its size, 4 bytes big-endian) or buffered (messages back to
//! back, so each one's end is found by reading it through).
//!
//! A message may be at most [`MAX_MESSAGE`] bytes; a framed message's
//! frame must hold exactly one whole message. A buffered message is
//! scanned again only once the bytes it was last found to need have come,
//! so a large message costs a few scans, not one per read.

use std::io;

use namerd_client::thrift::protocol::MessageHeader;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::codec::Scan;
use super::config::ThriftProtocol;

/// The largest message read or forwarded: 16 MiB, as the largest frame
/// the namerd client reads.
pub const MAX_MESSAGE: usize = namerd_client::thrift::framed::DEFAULT_MAX_FRAME;

/// How much more is read at a time, at most.
const CHUNK: usize = 64 * 1024;

/// A whole message and its header.
#[derive(Debug)]
pub(crate) struct Message {
    /// The message, without its frame.
    pub(crate) bytes: Vec<u8>,
    pub(crate) header: MessageHeader,
}

/// Why no message could be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The bytes are not a message of the protocol and transport.
    #[error("{0}")]
    Malformed(String),
    /// A message (or frame) announces more than [`MAX_MESSAGE`] bytes.
    #[error("a message of at least {0} bytes is over the limit of {MAX_MESSAGE}")]
    TooLarge(usize),
    /// The peer closed the connection in the middle of a message.
    #[error("the connection closed in the middle of a message")]
    Truncated,
    /// Reading failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// A connection that carries Thrift messages.
#[derive(Debug)]
pub(crate) struct MessageStream {
    stream: TcpStream,
    /// Bytes read and not yet taken as a message.
    buf: Vec<u8>,
    framed: bool,
    protocol: ThriftProtocol,
}

/// What the buffered bytes hold.
enum Step {
    Message(Message),
    /// At least this many bytes are needed.
    Need(usize),
}

impl MessageStream {
    pub(crate) fn new(stream: TcpStream, framed: bool, protocol: ThriftProtocol) -> MessageStream {
        MessageStream {
            stream,
            buf: Vec::new(),
            framed,
            protocol,
        }
    }

    /// Whether bytes of a next message have been read.
    pub(crate) fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }

    /// The connection, to check whether it is still open.
    pub(crate) fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// The next message; `None` when the peer closed the connection
    /// between messages. Cancel-safe: bytes read stay buffered.
    pub(crate) async fn next(&mut self) -> Result<Option<Message>, ReadError> {
        loop {
            let need = match self.step()? {
                Step::Message(message) => return Ok(Some(message)),
                Step::Need(need) => need,
            };
            while self.buf.len() < need {
                self.buf.reserve((need - self.buf.len()).min(CHUNK));
                if self.stream.read_buf(&mut self.buf).await? == 0 {
                    return if self.buf.is_empty() {
                        Ok(None)
                    } else {
                        Err(ReadError::Truncated)
                    };
                }
            }
        }
    }

    fn step(&mut self) -> Result<Step, ReadError> {
        if self.framed {
            let Some(size) = self.buf.first_chunk::<4>() else {
                return Ok(Step::Need(4));
            };
            let size = usize::try_from(u32::from_be_bytes(*size)).unwrap_or(usize::MAX);
            if size > MAX_MESSAGE {
                return Err(ReadError::TooLarge(size));
            }
            if self.buf.len() < 4 + size {
                return Ok(Step::Need(4 + size));
            }
            let header = match self.protocol.scan(&self.buf[4..4 + size]) {
                Scan::Whole { header, len } if len == size => header,
                Scan::Whole { len, .. } => {
                    return Err(ReadError::Malformed(format!(
                        "a frame of {size} bytes holds a message of {len} bytes and more"
                    )));
                }
                Scan::Partial { .. } => {
                    return Err(ReadError::Malformed(format!(
                        "a frame of {size} bytes holds only part of a message"
                    )));
                }
                Scan::Malformed(e) => return Err(ReadError::Malformed(e.to_string())),
            };
            let bytes = self.buf[4..4 + size].to_vec();
            self.buf.drain(..4 + size);
            return Ok(Step::Message(Message { bytes, header }));
        }
        if self.buf.is_empty() {
            return Ok(Step::Need(1));
        }
        match self.protocol.scan(&self.buf) {
            Scan::Whole { header, len } => {
                let rest = self.buf.split_off(len);
                let bytes = std::mem::replace(&mut self.buf, rest);
                Ok(Step::Message(Message { bytes, header }))
            }
            Scan::Partial { wanted } if wanted > MAX_MESSAGE => Err(ReadError::TooLarge(wanted)),
            Scan::Partial { wanted } => Ok(Step::Need(wanted.max(self.buf.len() + 1))),
            Scan::Malformed(e) => Err(ReadError::Malformed(e.to_string())),
        }
    }

    /// Writes `message` in the connection's transport; gives the bytes
    /// written.
    pub(crate) async fn send(&mut self, message: &[u8]) -> io::Result<usize> {
        if !self.framed {
            self.stream.write_all(message).await?;
            return Ok(message.len());
        }
        let size = u32::try_from(message.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a message over 4 GiB"))?;
        let mut frame = Vec::with_capacity(message.len() + 4);
        frame.extend_from_slice(&size.to_be_bytes());
        frame.extend_from_slice(message);
        self.stream.write_all(&frame).await?;
        Ok(frame.len())
    }

    /// Waits until the peer closes the connection (or reading fails);
    /// bytes it sends meanwhile are kept for [`MessageStream::next`], up to
    /// a message's worth. Cancel-safe.
    pub(crate) async fn closed(&mut self) {
        loop {
            if self.buf.len() > MAX_MESSAGE + 4 {
                std::future::pending::<()>().await;
            }
            self.buf.reserve(CHUNK);
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use namerd_client::thrift::protocol::{Writer, message_type, ttype};
    use tokio::net::TcpListener;

    use super::*;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    fn call(name: &str, seq_id: i32, text: &str) -> Vec<u8> {
        let mut w = Writer::new();
        w.message_begin(name, message_type::CALL, seq_id);
        w.field_begin(ttype::STRING, 1);
        w.string(text);
        w.field_stop();
        w.into_bytes()
    }

    #[tokio::test]
    async fn buffered_messages_are_split_however_the_bytes_come() {
        let (mut client, server) = pair().await;
        let mut stream = MessageStream::new(server, false, ThriftProtocol::Binary);
        let big = "x".repeat(200_000);
        let mut bytes = call("a", 1, "one");
        bytes.extend(call("b", 2, &big));
        bytes.extend(call("c", 3, "three"));
        let writer = tokio::spawn(async move {
            // A byte at a time for the first message, then large pieces.
            for byte in &bytes[..20] {
                client.write_all(&[*byte]).await.unwrap();
            }
            for piece in bytes[20..].chunks(7_000) {
                client.write_all(piece).await.unwrap();
            }
            client
        });
        for (name, seq_id) in [("a", 1), ("b", 2), ("c", 3)] {
            let message = stream.next().await.unwrap().unwrap();
            assert_eq!(
                (message.header.name.as_str(), message.header.seq_id),
                (name, seq_id)
            );
        }
        drop(writer.await.unwrap());
        assert!(stream.next().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn frames_must_hold_one_whole_message_under_the_limit() {
        let (mut client, server) = pair().await;
        let mut stream = MessageStream::new(server, true, ThriftProtocol::Binary);
        let message = call("a", 1, "one");
        let mut frame = u32::try_from(message.len() + 1)
            .unwrap()
            .to_be_bytes()
            .to_vec();
        frame.extend(&message);
        frame.push(0);
        client.write_all(&frame).await.unwrap();
        let e = stream.next().await.unwrap_err();
        assert!(matches!(e, ReadError::Malformed(_)), "{e}");

        let (mut client, server) = pair().await;
        let mut stream = MessageStream::new(server, true, ThriftProtocol::Binary);
        client.write_all(&[0x7f, 0, 0, 0]).await.unwrap();
        let e = stream.next().await.unwrap_err();
        assert!(matches!(e, ReadError::TooLarge(0x7f00_0000)), "{e}");

        let (mut client, server) = pair().await;
        let mut stream = MessageStream::new(server, true, ThriftProtocol::Binary);
        client.write_all(&[0, 0, 0, 9, 1]).await.unwrap();
        drop(client);
        let e = stream.next().await.unwrap_err();
        assert!(matches!(e, ReadError::Truncated), "{e}");
    }

    #[tokio::test]
    async fn a_buffered_stream_of_garbage_is_refused_without_waiting() {
        let (mut client, server) = pair().await;
        let mut stream = MessageStream::new(server, false, ThriftProtocol::Binary);
        // An HTTP request reads as a name of about 1.2 GB.
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let e = stream.next().await.unwrap_err();
        assert!(matches!(e, ReadError::TooLarge(_)), "{e}");
        let (mut client, server) = pair().await;
        let mut stream = MessageStream::new(server, false, ThriftProtocol::Compact);
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let e = stream.next().await.unwrap_err();
        assert!(matches!(e, ReadError::Malformed(_)), "{e}");
    }

    #[tokio::test]
    async fn sent_messages_are_framed_or_not() {
        let (client, server) = pair().await;
        let mut out = MessageStream::new(client, true, ThriftProtocol::Binary);
        let mut r#in = MessageStream::new(server, true, ThriftProtocol::Binary);
        let message = call("a", 1, "one");
        assert_eq!(out.send(&message).await.unwrap(), message.len() + 4);
        assert_eq!(r#in.next().await.unwrap().unwrap().bytes, message);
    }
}
