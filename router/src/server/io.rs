//! The client connections the HTTP/1 server reads: plain TCP, or TLS over
//! it. The server tries a read first and waits only when nothing is there,
//! so each kind says how to read without waiting and how to wait.

use std::future::Future;
use std::io;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;

use crate::socket_read;

/// A client connection of the HTTP/1 server.
pub trait ServerIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Reads what has arrived into the spare capacity of `buf` without
    /// waiting; `WouldBlock` when nothing has.
    fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize>;

    /// Waits until a read may find something.
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send;

    /// The TCP connection underneath, to see whether the client hung up.
    fn tcp(&self) -> &TcpStream;

    /// The connection when bytes written to its socket reach the client
    /// as they are (no TLS), so that a body may be spliced to it.
    fn plain_tcp(&self) -> Option<&TcpStream>;
}

impl ServerIo for TcpStream {
    #[inline]
    fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        socket_read::try_read_buf(self, buf)
    }

    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        TcpStream::readable(self)
    }

    fn tcp(&self) -> &TcpStream {
        self
    }

    fn plain_tcp(&self) -> Option<&TcpStream> {
        Some(self)
    }
}

impl ServerIo for tokio_rustls::server::TlsStream<TcpStream> {
    fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        // One poll with a waker that does nothing: rustls reads what the
        // socket has, decrypts the whole records, and says `Pending` when
        // that gives no plaintext. `readable` then waits on the socket,
        // which that read left marked "not readable". (Dropping the read
        // after `Pending` loses nothing: rustls keeps what it took.)
        let mut cx = Context::from_waker(Waker::noop());
        let read = self.read_buf(buf);
        let mut read = std::pin::pin!(read);
        match read.as_mut().poll(&mut cx) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        self.get_ref().0.readable()
    }

    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }

    fn plain_tcp(&self) -> Option<&TcpStream> {
        None
    }
}
