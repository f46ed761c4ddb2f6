//! Large response bodies moved from the upstream connection to the client
//! with `splice(2)`: socket to pipe to socket, inside the kernel. Copying
//! them through the router costs two copies of every byte (into a buffer
//! and out of it) and a read and a write per 8–64 KiB; a splice round
//! moves what the upstream socket holds (up to the pipe's size) and needs
//! no buffer at all.
//!
//! Only plain TCP on both sides can be spliced (TLS must see the bytes),
//! and only a body framed by `Content-Length`, so that the router knows
//! where it ends without reading it.

use std::cell::RefCell;
use std::io;
use std::os::fd::OwnedFd;

use rustix::pipe::{PipeFlags, SpliceFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bodies with less than this left are copied: a splice round is two
/// system calls, a copy one, and below this the copy is cheaper.
pub(super) const MIN_SPLICED: u64 = 32 * 1024;
/// The size asked for each pipe: a 100 KiB answer moves in one round.
const PIPE_SIZE: usize = 256 * 1024;
/// Empty pipes kept per thread for the next body.
const SPARE_PIPES: usize = 8;

thread_local! {
    static SPARE: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
}

/// A pipe, empty whenever it is not in use.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    fn take() -> io::Result<Pipe> {
        if let Some(pipe) = SPARE.with(|spare| spare.borrow_mut().pop()) {
            return Ok(pipe);
        }
        let (read, write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        // A smaller pipe (the default is 64 KiB) only costs more rounds.
        let _ = rustix::pipe::fcntl_setpipe_size(&write, PIPE_SIZE);
        Ok(Pipe { read, write })
    }

    /// Keeps the pipe for the next body; only an empty pipe may be kept.
    fn give_back(self) {
        SPARE.with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.len() < SPARE_PIPES {
                spare.push(self);
            }
        });
    }
}

/// How a splice ended short of the whole body.
#[derive(Debug)]
pub(super) enum Cut {
    /// No pipe could be had (out of file descriptors, say); nothing was
    /// moved, so the body can still be copied.
    NoPipe(io::Error),
    /// The upstream failed or closed early: the client's answer is cut
    /// short and its connection must close.
    Upstream(io::Error),
    /// Writing to the client failed.
    Client(io::Error),
    /// The client hung up while the router waited for the upstream.
    HungUp,
}

/// Moves exactly `len` bytes from `upstream` to `client`.
pub(super) async fn forward(upstream: &TcpStream, client: &TcpStream, len: u64) -> Result<(), Cut> {
    let pipe = Pipe::take().map_err(Cut::NoPipe)?;
    let mut left = len;
    let mut watching = true;
    while left > 0 {
        // The pipe is empty here, so a splice into it that would block
        // means the socket has nothing: tokio may then forget that the
        // socket was readable. (Into a part-full pipe it could also mean
        // the pipe is full, and the readiness would be lost.)
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(PIPE_SIZE);
        let moved = upstream.try_io(Interest::READABLE, || {
            Ok(rustix::pipe::splice(
                upstream,
                None,
                &pipe.write,
                None,
                want,
                SpliceFlags::MOVE | SpliceFlags::NONBLOCK,
            )?)
        });
        let mut held = match moved {
            Ok(0) => {
                return Err(Cut::Upstream(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before the response body was complete",
                )));
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_for_upstream(upstream, client, &mut watching).await?;
                continue;
            }
            Err(e) => return Err(Cut::Upstream(e)),
        };
        left -= held as u64;
        let more = if left > 0 {
            SpliceFlags::MORE
        } else {
            SpliceFlags::empty()
        };
        while held > 0 {
            let sent = client.try_io(Interest::WRITABLE, || {
                Ok(rustix::pipe::splice(
                    &pipe.read,
                    None,
                    client,
                    None,
                    held,
                    SpliceFlags::MOVE | SpliceFlags::NONBLOCK | more,
                )?)
            });
            match sent {
                Ok(0) => {
                    return Err(Cut::Client(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "the client's connection took nothing",
                    )));
                }
                Ok(n) => held -= n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    client.writable().await.map_err(Cut::Client)?;
                }
                // The pipe still holds bytes: it is dropped, not kept.
                Err(e) => return Err(Cut::Client(e)),
            }
        }
    }
    pipe.give_back();
    Ok(())
}

/// Waits until the upstream has more; `HungUp` if the client closes its
/// connection first, so that a body nobody reads is not kept flowing.
async fn wait_for_upstream(
    upstream: &TcpStream,
    client: &TcpStream,
    watching: &mut bool,
) -> Result<(), Cut> {
    loop {
        tokio::select! {
            biased;
            hung_up = super::h1::hung_up(client), if *watching => {
                if hung_up {
                    return Err(Cut::HungUp);
                }
                // The client sent its next request already: it is read
                // once this response is done.
                *watching = false;
            }
            ready = upstream.readable() => return ready.map_err(Cut::Upstream),
        }
    }
}
