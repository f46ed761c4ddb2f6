//! Streaming watches: a chunked response carrying one JSON document per
//! line, read as a sequence of parsed values.

use std::marker::PhantomData;

use futures_util::Stream;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use super::ClientError;

/// The longest line a watch accepts. A bound tree or address set is a few
/// kilobytes; this only stops a broken server from exhausting memory.
const MAX_LINE: usize = 16 * 1024 * 1024;

/// A live answer from namerd: every change of the watched value, parsed.
///
/// [`Watch::next`] returns `Some(Ok(value))` for each update,
/// `Some(Err(_))` once if the stream failed (namerd wrote an error message
/// instead of a value, the connection broke, or a line could not be read),
/// and `None` when namerd ended the stream cleanly. After an error or the
/// end, it returns `None`. Reconnecting is the caller's decision.
pub struct Watch<T> {
    server: String,
    request: String,
    body: Option<Incoming>,
    lines: LineBuffer,
    _value: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Watch<T> {
    pub(crate) fn new(server: String, request: String, body: Incoming) -> Watch<T> {
        Watch {
            server,
            request,
            body: Some(body),
            lines: LineBuffer::default(),
            _value: PhantomData,
        }
    }

    /// The next value; see the type's documentation for what `None` and
    /// `Some(Err)` mean.
    pub async fn next(&mut self) -> Option<Result<T, ClientError>> {
        loop {
            if let Some(line) = self.lines.next_line() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(self.decode(&line));
            }
            let Some(body) = self.body.as_mut() else {
                // A last line without a newline still counts.
                let rest = self.lines.take_rest();
                if rest.iter().all(u8::is_ascii_whitespace) {
                    return None;
                }
                return Some(self.decode(&rest));
            };
            match body.frame().await {
                None => self.body = None,
                Some(Ok(frame)) => {
                    // Trailers carry nothing a watch needs.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if let Err(len) = self.lines.push(&data) {
                        return Some(Err(
                            self.fail(format!("a line of more than {len} bytes without a newline"))
                        ));
                    }
                }
                Some(Err(e)) => {
                    return Some(Err(self.fail(format!("the stream broke: {e}"))));
                }
            }
        }
    }

    /// The watch as a [`Stream`] with the same items as [`Watch::next`].
    pub fn into_stream(self) -> impl Stream<Item = Result<T, ClientError>> + Send
    where
        T: Send,
    {
        futures_util::stream::unfold(self, |mut watch| async move {
            watch.next().await.map(|item| (item, watch))
        })
    }

    /// The base URL and request this watch reads, for messages.
    pub fn describe(&self) -> String {
        format!("{} {}", self.server, self.request)
    }

    fn decode(&mut self, line: &[u8]) -> Result<T, ClientError> {
        match serde_json::from_slice::<T>(line) {
            Ok(value) => Ok(value),
            Err(e) => {
                // Either way the stream ends here.
                let text = String::from_utf8_lossy(line).trim().to_string();
                let failed = self.fail(text.clone());
                if serde_json::from_slice::<serde::de::IgnoredAny>(line).is_err() {
                    // Not JSON: namerd's error message.
                    return Err(failed);
                }
                // Well-formed JSON of the wrong shape: our problem to report.
                Err(ClientError::Protocol {
                    server: self.server.clone(),
                    request: self.request.clone(),
                    message: format!("unexpected value {text}: {e}"),
                })
            }
        }
    }

    /// Ends the stream and builds the error that ended it.
    fn fail(&mut self, message: String) -> ClientError {
        self.body = None;
        self.lines = LineBuffer::default();
        ClientError::WatchFailed {
            server: self.server.clone(),
            request: self.request.clone(),
            message,
        }
    }
}

/// Bytes received but not yet split into lines.
#[derive(Default)]
struct LineBuffer {
    buf: Vec<u8>,
    /// How far `buf` has been searched for a newline.
    scanned: usize,
}

impl LineBuffer {
    /// Appends bytes; fails with the limit when a line grows too long.
    fn push(&mut self, data: &[u8]) -> Result<(), usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() > MAX_LINE && !self.buf[self.scanned..].contains(&b'\n') {
            return Err(MAX_LINE);
        }
        Ok(())
    }

    /// The next complete line, without its `\n` (or `\r\n`).
    fn next_line(&mut self) -> Option<Vec<u8>> {
        let at = self.buf[self.scanned..].iter().position(|&b| b == b'\n');
        match at {
            Some(i) => {
                let end = self.scanned + i;
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.scanned = 0;
                Some(line)
            }
            None => {
                self.scanned = self.buf.len();
                None
            }
        }
    }

    /// Whatever is left after the last newline.
    fn take_rest(&mut self) -> Vec<u8> {
        self.scanned = 0;
        std::mem::take(&mut self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_chunks() {
        let mut lines = LineBuffer::default();
        lines.push(b"[\"a\"").unwrap();
        assert_eq!(lines.next_line(), None);
        lines.push(b"]\n[\"b\"]\r\n[").unwrap();
        assert_eq!(lines.next_line().as_deref(), Some(&b"[\"a\"]"[..]));
        assert_eq!(lines.next_line().as_deref(), Some(&b"[\"b\"]"[..]));
        assert_eq!(lines.next_line(), None);
        lines.push(b"]").unwrap();
        assert_eq!(lines.next_line(), None);
        assert_eq!(lines.take_rest(), b"[]");
        assert_eq!(lines.next_line(), None);
    }
}
