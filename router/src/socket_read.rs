//! Reads from a socket that leave it marked "not readable" when a read
//! shows there is nothing more to take.
//!
//! Tokio forgets that a socket is readable only when a read fails with
//! `WouldBlock`. On a keep-alive connection that costs `recv` calls that
//! find nothing: the read after a whole request (or response) has been
//! taken fails first and only then waits (the proxy made three `recv`
//! calls per request instead of two). A read that comes back with less
//! than the room it was given has emptied the socket's receive queue (the
//! kernel copies everything queued, up to the room), so it is as good as
//! that failed read: these functions return the data and clear the
//! readiness as a `WouldBlock` would. Data that arrives afterwards raises
//! a new edge-triggered event, which tokio records with a new tick, so it
//! is never missed; a close seen with the data stays recorded (tokio never
//! clears "read closed"), so the next read sees it.

use std::io;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Reads what `stream` has into the spare capacity of `buf`, like
/// [`TcpStream::try_read_buf`], marking the socket drained after a short
/// read. `WouldBlock` when there was nothing to read.
pub fn try_read_buf(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    let room = buf.capacity() - buf.len();
    let mut read = None;
    let outcome = stream.try_io(Interest::READABLE, || {
        let n = stream.try_read_buf(buf)?;
        read = Some(n);
        if n > 0 && n < room {
            // Drained: let tokio clear the readiness it holds.
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(n)
        }
    });
    match (outcome, read) {
        (Ok(n), _) => Ok(n),
        (Err(e), Some(n)) if e.kind() == io::ErrorKind::WouldBlock => Ok(n),
        (Err(e), _) => Err(e),
    }
}

/// Waits until `stream` is readable and reads into the spare capacity of
/// `buf` (at least `reserve` bytes of it); 0 at the end of the stream.
pub fn poll_read_buf(
    stream: &TcpStream,
    buf: &mut BytesMut,
    reserve: usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    buf.reserve(reserve);
    loop {
        ready!(stream.poll_read_ready(cx))?;
        match try_read_buf(stream, buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            result => return Poll::Ready(result),
        }
    }
}

/// [`poll_read_buf`] as a future.
pub async fn read_buf(stream: &TcpStream, buf: &mut BytesMut, reserve: usize) -> io::Result<usize> {
    std::future::poll_fn(|cx| poll_read_buf(stream, buf, reserve, cx)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    #[tokio::test]
    async fn data_arriving_after_a_short_read_is_still_seen() {
        let (mut client, server) = pair().await;
        let mut buf = BytesMut::new();
        client.write_all(b"first").await.unwrap();
        assert_eq!(read_buf(&server, &mut buf, 64).await.unwrap(), 5);
        // The short read cleared readiness: the socket waits for new data
        // instead of being tried (and found empty) first.
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(50), server.readable()).await;
        assert!(waited.is_err(), "readiness was not cleared");
        client.write_all(b"second").await.unwrap();
        let n = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            read_buf(&server, &mut buf, 64),
        )
        .await
        .expect("the new data wakes the reader")
        .unwrap();
        assert_eq!(n, 6);
        assert_eq!(&buf[..], b"firstsecond");
    }

    #[tokio::test]
    async fn a_close_sent_with_the_data_is_seen_by_the_next_read() {
        let (mut client, server) = pair().await;
        client.write_all(b"last words").await.unwrap();
        client.shutdown().await.unwrap();
        drop(client);
        // Let both the data and the FIN arrive before the first read.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let mut buf = BytesMut::new();
        assert_eq!(read_buf(&server, &mut buf, 64).await.unwrap(), 10);
        let n = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            read_buf(&server, &mut buf, 64),
        )
        .await
        .expect("the close is not lost")
        .unwrap();
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn a_full_read_keeps_the_socket_readable() {
        let (mut client, server) = pair().await;
        client.write_all(&[7u8; 100]).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let mut buf = BytesMut::with_capacity(10);
        let room = buf.capacity();
        let n = read_buf(&server, &mut buf, 0).await.unwrap();
        assert_eq!(n, room);
        // The rest is read without waiting for a new event.
        buf.reserve(1000);
        assert_eq!(try_read_buf(&server, &mut buf).unwrap(), 100 - room);
    }
}
