//! What the client connection does with each frame the upstream sends.

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderValue};
use http::{Response, StatusCode};

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Connection, Recv, RequestBody, SendError};
use crate::http2::frame::{self, Frame, Reason, Settings};
use crate::http2::hpack::{Field, Name, Pseudo};
use crate::http2::inbound;
use crate::http2::send::is_connection_specific;

/// How far a header block may run past our SETTINGS_MAX_HEADER_LIST_SIZE
/// before the connection is given up on.
const BLOCK_SLACK: usize = 16 * 1024;

impl<I: AsyncRead + AsyncWrite + Unpin, B: RequestBody> Connection<I, B> {
    pub(super) fn on_frame(&mut self, frame: Frame) -> Result<(), String> {
        if let Some((stream, ..)) = &self.continuing
            && !matches!(frame, Frame::Continuation { stream: s, .. } if s == *stream)
        {
            return Err("upstream interrupted a header block".to_owned());
        }
        match frame {
            Frame::Headers {
                stream,
                end_stream,
                end_headers,
                fragment,
            } => {
                if end_headers {
                    self.on_header_block(stream, end_stream, &fragment)?;
                } else {
                    self.continuing = Some((stream, end_stream, BytesMut::from(&fragment[..])));
                }
            }
            Frame::Continuation {
                end_headers,
                fragment,
                ..
            } => {
                let Some((_, _, block)) = &mut self.continuing else {
                    return Err("upstream sent CONTINUATION without HEADERS".to_owned());
                };
                block.extend_from_slice(&fragment);
                if block.len() > self.config.max_header_list_size as usize + BLOCK_SLACK {
                    return Err("upstream header block too long".to_owned());
                }
                if end_headers && let Some((stream, end_stream, block)) = self.continuing.take() {
                    self.on_header_block(stream, end_stream, &block.freeze())?;
                }
            }
            Frame::Data {
                stream,
                end_stream,
                data,
                flow_len,
            } => self.on_data(stream, end_stream, data, flow_len)?,
            Frame::Reset { stream, reason } => self.on_reset(stream, reason),
            Frame::Settings(settings) => self.on_settings(settings)?,
            Frame::SettingsAck | Frame::Ignored => {}
            Frame::Ping { ack, payload } => {
                if !ack {
                    frame::write_ping(&mut self.write_buf, true, payload);
                }
            }
            Frame::GoAway {
                last_stream,
                reason,
            } => self.on_goaway(last_stream, reason),
            Frame::WindowUpdate {
                stream: 0,
                increment,
            } => {
                self.send_window += i64::from(increment);
                if self.send_window > i64::from(frame::MAX_WINDOW) {
                    return Err("upstream's connection window above 2^31-1".to_owned());
                }
            }
            Frame::WindowUpdate { stream, increment } => {
                if let Some(open) = self.streams.get_mut(&stream) {
                    open.send_window += i64::from(increment);
                    if open.send_window > i64::from(frame::MAX_WINDOW) {
                        self.reset(stream, Reason::FLOW_CONTROL_ERROR, "stream window overflow");
                    } else {
                        self.ready.push(stream);
                    }
                }
            }
            Frame::PushPromise { .. } => {
                return Err("upstream sent PUSH_PROMISE, which we disabled".to_owned());
            }
        }
        Ok(())
    }

    fn on_header_block(&mut self, id: u32, end_stream: bool, block: &Bytes) -> Result<(), String> {
        // The connection's own list, reused: a new one would grow twice
        // for a usual answer's head.
        let mut fields = std::mem::take(&mut self.fields);
        let result = self
            .decoder
            .decode(block, |field| fields.push(field))
            .map_err(|e| format!("upstream header block: {e}"))
            .and_then(|()| self.on_fields(id, end_stream, &mut fields));
        fields.clear();
        // (A rare huge block does not keep its room.)
        if fields.capacity() <= 64 {
            self.fields = fields;
        }
        result
    }

    fn on_fields(
        &mut self,
        id: u32,
        end_stream: bool,
        fields: &mut Vec<Field>,
    ) -> Result<(), String> {
        let Some(stream) = self.streams.get_mut(&id) else {
            // A stream we reset: what was on its way is ignored.
            return Ok(());
        };
        match &stream.recv {
            Recv::Head => {
                let head = match answer_head(fields, self.config.max_header_list_size as usize) {
                    Ok(Some(head)) => head,
                    // An informational answer (100 Continue, 103): the
                    // final one follows.
                    Ok(None) => return Ok(()),
                    Err(why) => {
                        self.reset(id, Reason::PROTOCOL_ERROR, why);
                        return Ok(());
                    }
                };
                let (sender, body) = inbound::inbox(id, self.signals.clone(), None);
                if end_stream {
                    sender.end(None);
                    stream.recv = Recv::Closed;
                } else {
                    stream.recv = Recv::Body {
                        sender,
                        window: i64::from(self.config.stream_window),
                        credit: 0,
                    };
                }
                let (head, ()) = head.into_parts();
                stream.exchange.answer(Ok(Response::from_parts(head, body)));
            }
            Recv::Body { sender, .. } => {
                let trailers = trailers(fields);
                match trailers {
                    Some(trailers) if end_stream => {
                        sender.end(Some(trailers));
                        stream.recv = Recv::Closed;
                    }
                    _ => {
                        self.reset(id, Reason::PROTOCOL_ERROR, "malformed trailers");
                        return Ok(());
                    }
                }
            }
            Recv::Closed => {
                self.reset(id, Reason::STREAM_CLOSED, "HEADERS after the end");
                return Ok(());
            }
        }
        self.finish_if_done(id);
        Ok(())
    }

    fn on_data(
        &mut self,
        id: u32,
        end_stream: bool,
        data: Bytes,
        flow_len: u32,
    ) -> Result<(), String> {
        self.recv_window -= i64::from(flow_len);
        if self.recv_window < 0 {
            return Err("upstream sent beyond the connection's window".to_owned());
        }
        self.recv_credit += flow_len - data.len() as u32;
        let Some(stream) = self.streams.get_mut(&id) else {
            self.recv_credit += data.len() as u32;
            return Ok(());
        };
        let Recv::Body { sender, window, .. } = &mut stream.recv else {
            self.recv_credit += data.len() as u32;
            self.reset(
                id,
                Reason::PROTOCOL_ERROR,
                "DATA before the answer's head or after its end",
            );
            return Ok(());
        };
        *window -= i64::from(flow_len);
        if *window < 0 {
            self.recv_credit += data.len() as u32;
            self.reset(
                id,
                Reason::FLOW_CONTROL_ERROR,
                "upstream sent beyond the stream's window",
            );
            return Ok(());
        }
        let len = data.len() as u32;
        if len > 0 && !sender.data(data) {
            self.recv_credit += len;
        }
        if end_stream {
            sender.end(None);
            stream.recv = Recv::Closed;
            self.finish_if_done(id);
        }
        Ok(())
    }

    fn on_reset(&mut self, id: u32, reason: Reason) {
        let Some(stream) = self.streams.remove(&id) else {
            return;
        };
        if reason == Reason::REFUSED_STREAM && matches!(stream.recv, Recv::Head) {
            stream.exchange.answer(Err(SendError::Unprocessed {
                why: "the upstream refused the stream (REFUSED_STREAM)".to_owned(),
                going_away: false,
                request: None,
            }));
        } else if reason == Reason::NO_ERROR && matches!(stream.recv, Recv::Closed) {
            // The whole answer came before the request ended: the rest of
            // the request is not wanted (RFC 9113, section 8.1).
        } else {
            stream.fail(&format!(
                "the upstream reset the stream (HTTP/2 error {:#x})",
                reason.0
            ));
        }
    }

    fn on_goaway(&mut self, last_stream: u32, reason: Reason) {
        self.going_away = Some(
            self.going_away
                .map_or(last_stream, |last| last.min(last_stream)),
        );
        let why = format!(
            "the upstream is closing the connection (GOAWAY, HTTP/2 error {:#x})",
            reason.0
        );
        // Streams above its last one were never processed.
        let unprocessed: Vec<u32> = self
            .streams
            .keys()
            .copied()
            .filter(|&id| id > last_stream)
            .collect();
        for id in unprocessed {
            if let Some(stream) = self.streams.remove(&id) {
                stream.exchange.answer(Err(SendError::Unprocessed {
                    why: why.clone(),
                    going_away: true,
                    request: None,
                }));
                if let Recv::Body { sender, .. } = &stream.recv {
                    sender.break_off("the upstream went away");
                }
            }
        }
        self.close_to_new(&why);
    }

    fn on_settings(&mut self, settings: Settings) -> Result<(), String> {
        match settings.max_concurrent_streams {
            Some(max) => self.peer_max_streams = max as usize,
            // Its first SETTINGS leave the number unlimited.
            None if !self.settled => self.peer_max_streams = usize::MAX,
            None => {}
        }
        self.settled = true;
        if let Some(size) = settings.initial_window_size {
            let delta = i64::from(size) - self.peer_initial_window;
            self.peer_initial_window = i64::from(size);
            for (&id, stream) in &mut self.streams {
                stream.send_window += delta;
                if stream.send_window > i64::from(frame::MAX_WINDOW) {
                    return Err("upstream's stream window above 2^31-1".to_owned());
                }
                if delta > 0 && stream.sending.is_some() {
                    self.ready.push(id);
                }
            }
        }
        if let Some(size) = settings.max_frame_size {
            self.peer_max_frame_size = size;
        }
        if settings.header_table_size.is_some() {
            self.encoder.peer_table_size_changed();
        }
        frame::write_settings_ack(&mut self.write_buf);
        Ok(())
    }

    /// Removes stream `id` once its request has gone and its answer come.
    fn finish_if_done(&mut self, id: u32) {
        if self
            .streams
            .get(&id)
            .is_some_and(|s| s.sending.is_none() && matches!(s.recv, Recv::Closed))
        {
            self.streams.remove(&id);
        }
    }
}

/// An answer's head from its fields: `None` for an informational one.
fn answer_head(
    fields: &mut Vec<Field>,
    max_size: usize,
) -> Result<Option<http::Response<()>>, &'static str> {
    let mut status = None;
    let mut headers = HeaderMap::with_capacity(fields.len());
    let mut size = 0;
    for field in fields.drain(..) {
        size += field.size();
        match field.name {
            Name::Pseudo(Pseudo::Status) if status.is_none() && headers.is_empty() => {
                status = Some(StatusCode::from_bytes(&field.value).map_err(|_| "invalid :status")?);
            }
            Name::Header(name) => {
                if is_connection_specific(&name, &field.value) {
                    return Err("connection-specific field in an answer");
                }
                let mut value = HeaderValue::from_maybe_shared(field.value)
                    .map_err(|_| "invalid field value")?;
                value.set_sensitive(field.sensitive);
                headers.append(name, value);
            }
            _ => return Err("malformed answer head"),
        }
    }
    if size > max_size {
        return Err("answer head too large");
    }
    let status = status.ok_or("answer without :status")?;
    if status.is_informational() {
        return Ok(None);
    }
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = http::Version::HTTP_2;
    *response.headers_mut() = headers;
    Ok(Some(response))
}

/// An answer's trailers from their fields; `None` when malformed.
fn trailers(fields: &mut Vec<Field>) -> Option<HeaderMap> {
    let mut trailers = HeaderMap::with_capacity(fields.len());
    for field in fields.drain(..) {
        let Name::Header(name) = field.name else {
            return None;
        };
        trailers.append(name, HeaderValue::from_maybe_shared(field.value).ok()?);
    }
    Some(trailers)
}
