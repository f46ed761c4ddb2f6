//! Two forwarders that do exactly the same thing, one through epoll
//! (tokio) and one through io_uring (tokio-uring), so that the difference
//! in their CPU per request is what the kernel interface costs and nothing
//! else.
//!
//! What they do is the least an HTTP/1.1 proxy does for a keep-alive
//! `GET`: each client connection gets one upstream connection; a request
//! head (no body) is read from the client and written upstream as it is,
//! and the answer (a head with `Content-Length`) is read and written back.
//! No routing, no header rewriting, no pooling: they are a floor to
//! compare with, not proxies.

use std::io;
use std::net::SocketAddr;

/// The end of the request head at the start of `buf`, if it is all there.
fn request_end(buf: &[u8]) -> Option<usize> {
    head_end(buf)
}

/// The end of the answer at the start of `buf` (head and `Content-Length`
/// body), if it is all there.
fn response_end(buf: &[u8]) -> io::Result<Option<usize>> {
    let Some(head) = head_end(buf) else {
        return Ok(None);
    };
    let length = content_length(&buf[..head]).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "an answer without Content-Length",
        )
    })?;
    let end = head + length;
    Ok((buf.len() >= end).then_some(end))
}

/// Whether the request head asks to close the connection after its
/// answer (the harness's readiness probe does).
fn asks_to_close(head: &[u8]) -> bool {
    head.windows(17)
        .any(|w| w.eq_ignore_ascii_case(b"connection: close"))
}

fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
}

fn content_length(head: &[u8]) -> Option<usize> {
    const NAME: &[u8] = b"content-length:";
    head.split(|b| *b == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() <= NAME.len() || !line[..NAME.len()].eq_ignore_ascii_case(NAME) {
            return None;
        }
        std::str::from_utf8(&line[NAME.len()..])
            .ok()?
            .trim()
            .parse()
            .ok()
    })
}

fn closed_early() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "the upstream closed early")
}

/// The epoll forwarder: a current-thread tokio runtime.
pub(crate) mod epoll {
    use super::*;
    use bytes::{Buf, BytesMut};
    use router::socket_read::read_buf;
    use tokio::net::{TcpListener, TcpStream};

    /// Serves `listen` until killed.
    pub(crate) fn run(listen: SocketAddr, upstream: SocketAddr) -> io::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async move {
            let listener = TcpListener::bind(listen).await?;
            loop {
                let (client, _) = listener.accept().await?;
                tokio::task::spawn_local(async move {
                    if let Err(e) = serve(client, upstream).await {
                        eprintln!("forward-epoll: {e}");
                    }
                });
            }
        })
    }

    /// Reads with the router's own socket reads, which spare the `recv`
    /// that would find nothing after each message.
    async fn serve(client: TcpStream, upstream: SocketAddr) -> io::Result<()> {
        client.set_nodelay(true)?;
        let upstream = TcpStream::connect(upstream).await?;
        upstream.set_nodelay(true)?;
        let (mut asked, mut answered) =
            (BytesMut::with_capacity(4096), BytesMut::with_capacity(4096));
        loop {
            let request = loop {
                if let Some(end) = request_end(&asked) {
                    break end;
                }
                if read_buf(&client, &mut asked, 4096).await? == 0 {
                    return Ok(());
                }
            };
            write_all(&upstream, &asked[..request]).await?;
            let last = asks_to_close(&asked[..request]);
            asked.advance(request);
            let response = loop {
                if let Some(end) = response_end(&answered)? {
                    break end;
                }
                if read_buf(&upstream, &mut answered, 4096).await? == 0 {
                    return Err(closed_early());
                }
            };
            write_all(&client, &answered[..response]).await?;
            if last {
                return Ok(());
            }
            answered.advance(response);
        }
    }

    async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match stream.try_write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.writable().await?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The io_uring forwarder: tokio-uring, one ring on one thread. Reads and
/// writes are submitted to the ring, and the runtime submits and reaps
/// them in batches, one `io_uring_enter` for many connections' operations.
#[cfg(target_os = "linux")]
pub(crate) mod uring {
    use super::*;
    use tokio_uring::buf::BoundedBuf;
    use tokio_uring::net::{TcpListener, TcpStream};

    /// Serves `listen` until killed.
    pub(crate) fn run(listen: SocketAddr, upstream: SocketAddr) -> io::Result<()> {
        tokio_uring::start(async move {
            let listener = TcpListener::bind(listen)?;
            loop {
                let (client, _) = listener.accept().await?;
                tokio_uring::spawn(async move {
                    if let Err(e) = serve(client, upstream).await {
                        eprintln!("forward-uring: {e}");
                    }
                });
            }
        })
    }

    /// Reads into the spare room of `buf`; the buffer comes back with
    /// what was read appended.
    async fn read_more(stream: &TcpStream, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        buf.reserve(4096);
        let len = buf.len();
        let (read, slice) = stream.read(buf.slice(len..)).await;
        (read, slice.into_inner())
    }

    async fn serve(client: TcpStream, upstream: SocketAddr) -> io::Result<()> {
        client.set_nodelay(true)?;
        let upstream = TcpStream::connect(upstream).await?;
        upstream.set_nodelay(true)?;
        let (mut asked, mut answered) = (Vec::with_capacity(4096), Vec::with_capacity(4096));
        loop {
            let request = loop {
                if let Some(end) = request_end(&asked) {
                    break end;
                }
                let (read, buf) = read_more(&client, asked).await;
                asked = buf;
                if read? == 0 {
                    return Ok(());
                }
            };
            let last = asks_to_close(&asked[..request]);
            let (written, buf) = upstream.write_all(asked.slice(..request)).await;
            asked = buf.into_inner();
            written?;
            asked.drain(..request);
            let response = loop {
                if let Some(end) = response_end(&answered)? {
                    break end;
                }
                let (read, buf) = read_more(&upstream, answered).await;
                answered = buf;
                if read? == 0 {
                    return Err(closed_early());
                }
            };
            let (written, buf) = client.write_all(answered.slice(..response)).await;
            answered = buf.into_inner();
            written?;
            if last {
                return Ok(());
            }
            answered.drain(..response);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_and_bodies_are_delimited() {
        assert_eq!(
            request_end(b"GET / HTTP/1.1\r\nhost: a\r\n\r\nGET"),
            Some(27)
        );
        assert_eq!(request_end(b"GET / HTTP/1.1\r\nhost: a\r\n"), None);
        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(response_end(answer).unwrap(), Some(answer.len()));
        assert_eq!(response_end(&answer[..answer.len() - 1]).unwrap(), None);
        assert!(response_end(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
    }
}
