//! Bytes both ways between a client and its upstream, until both sides
//! are done, either goes idle, or the connection reaches its age limit.
//! When one side shuts down its write half, the other side's write half
//! is shut down too (a half-close passes through).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How a spliced connection ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// Both sides closed.
    Closed,
    /// No byte either way for the idle time.
    Idle,
    /// The connection reached its age limit.
    Life,
    /// A read or write failed (a reset, usually).
    Failed(std::io::Error),
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Closed => f.write_str("closed by both sides"),
            Ended::Idle => f.write_str("idle for too long"),
            Ended::Life => f.write_str("too old"),
            Ended::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}

/// What one connection's splice counts: bytes from the client
/// (`upward`) and from the upstream (`downward`).
pub(crate) struct Counting<'a> {
    pub(crate) upward: &'a (dyn Fn(usize) + Sync),
    pub(crate) downward: &'a (dyn Fn(usize) + Sync),
}

/// Splices `client` and `upstream`.
pub(crate) async fn splice(
    client: TcpStream,
    upstream: TcpStream,
    idle: Duration,
    life: Option<Duration>,
    counting: Counting<'_>,
) -> Ended {
    let base = Instant::now();
    // Milliseconds after `base` of the last byte either way.
    let last = AtomicU64::new(0);
    let touch = || {
        let ms = u64::try_from(base.elapsed().as_millis()).unwrap_or(u64::MAX);
        last.store(ms, Ordering::Relaxed);
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let upward = pipe(&mut client_read, &mut upstream_write, |n| {
        (counting.upward)(n);
        touch();
    });
    let downward = pipe(&mut upstream_read, &mut client_write, |n| {
        (counting.downward)(n);
        touch();
    });
    let both = async { tokio::try_join!(upward, downward) };
    let idle_watch = async {
        loop {
            let at = base + Duration::from_millis(last.load(Ordering::Relaxed)) + idle;
            if at <= Instant::now() {
                return;
            }
            tokio::time::sleep_until(at).await;
        }
    };
    let aged = async {
        match life {
            Some(life) => tokio::time::sleep(life).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        done = both => match done {
            Ok(_) => Ended::Closed,
            Err(e) => Ended::Failed(e),
        },
        () = idle_watch => Ended::Idle,
        () = aged => Ended::Life,
    }
}

/// Copies `from` to `to` until `from` ends, then shuts down `to`'s write
/// half.
async fn pipe<R, W>(from: &mut R, to: &mut W, counted: impl Fn(usize)) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            // The other side may be gone already; nothing is lost.
            let _ = to.shutdown().await;
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
        counted(n);
    }
}
