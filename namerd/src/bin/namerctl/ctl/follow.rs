//! `--watch`: print a value every time it changes, reconnecting with
//! backoff when namerd goes away, until interrupted.

use std::io::Write;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::{CtlError, Exit, emit};
use namerd::client::{ClientError, Watch};

/// The first wait before reconnecting; it doubles up to [`MAX_BACKOFF`].
pub(crate) const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait before reconnecting.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Opens a watch with `open`, prints `render(value)` for every value that
/// prints differently from the last one, and reconnects when the stream
/// ends or breaks or namerd is unreachable. Returns only on an error that
/// retrying cannot fix (404, 400...) or when `render` fails.
pub(crate) async fn follow<T, F>(
    mut open: F,
    mut render: impl FnMut(&T) -> Result<String, CtlError>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, CtlError>
where
    T: DeserializeOwned,
    F: AsyncFnMut() -> Result<Watch<T>, ClientError>,
{
    let mut backoff = MIN_BACKOFF;
    let mut last: Option<String> = None;
    loop {
        let why = match open().await {
            Err(e) if e.is_transient() => e.to_string(),
            Err(e) => return Err(e.into()),
            Ok(mut watch) => loop {
                match watch.next().await {
                    Some(Ok(value)) => {
                        backoff = MIN_BACKOFF;
                        let text = render(&value)?;
                        if last.as_ref() != Some(&text) {
                            emit(out, &text)?;
                            last = Some(text);
                        }
                    }
                    Some(Err(e)) if e.is_transient() => break e.to_string(),
                    Some(Err(e)) => return Err(e.into()),
                    None => break format!("namerd ended the watch ({})", watch.describe()),
                }
            },
        };
        emit(
            err,
            &format!("namerctl: {why}; reconnecting in {}s\n", backoff.as_secs()),
        )?;
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
