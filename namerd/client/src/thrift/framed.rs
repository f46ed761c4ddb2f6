//! Thrift's framed transport: each message is preceded by its size as a
//! 4-byte big-endian integer. Mux frames have the same size prefix, so
//! one reader serves both.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest frame read unless told otherwise: far above any answer of
/// a real namerd, far below what would hurt a server to buffer.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// A frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The size prefix is over the limit (or negative as an `i32`).
    #[error("a frame of {size} bytes is over the limit of {max} bytes")]
    TooLarge {
        /// The size announced.
        size: u32,
        /// The limit.
        max: usize,
    },
    /// The peer closed the connection in the middle of a frame.
    #[error("the connection closed in the middle of a frame")]
    Truncated,
    /// A frame that had begun did not complete in time.
    #[error("a frame did not complete within {0:?}")]
    Timeout(Duration),
    /// Reading failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Reads the next frame's body. `None` when the peer closed the
/// connection between frames. Once a frame's first byte has come, the
/// rest must come within `within` (if given).
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
    within: Option<Duration>,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut size = [0u8; 4];
    if r.read(&mut size[..1]).await? == 0 {
        return Ok(None);
    }
    let rest = async {
        read_exact(r, &mut size[1..]).await?;
        let announced = u32::from_be_bytes(size);
        let len = usize::try_from(announced)
            .ok()
            .filter(|len| *len <= max)
            .ok_or(FrameError::TooLarge {
                size: announced,
                max,
            })?;
        let mut body = vec![0; len];
        read_exact(r, &mut body).await?;
        Ok(Some(body))
    };
    match within {
        Some(limit) => tokio::time::timeout(limit, rest)
            .await
            .map_err(|_| FrameError::Timeout(limit))?,
        None => rest.await,
    }
}

async fn read_exact<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> Result<(), FrameError> {
    match r.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(FrameError::Truncated),
        Err(e) => Err(FrameError::Io(e)),
    }
}

/// Writes `body` as one frame and flushes it.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, body: &[u8]) -> io::Result<()> {
    let size = u32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a frame over 4 GiB"))?;
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.extend_from_slice(&size.to_be_bytes());
    frame.extend_from_slice(body);
    w.write_all(&frame).await?;
    w.flush().await
}
