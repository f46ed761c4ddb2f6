//! What the connection does with each frame the client sends.

use bytes::{Bytes, BytesMut};

use super::request::Gathered;
use super::stream::{Recv, Stream};
use super::{Connection, ConnectionError, Continuing, RESET_ALLOWANCE, Service};
use crate::http2::frame::{self, Frame, FrameError, Reason, Settings};

/// How far a header block may run past SETTINGS_MAX_HEADER_LIST_SIZE
/// before the connection is given up on: a block compresses its fields,
/// so it is rarely longer than they are, and a client sending endless
/// CONTINUATION frames must not make us keep them all.
const BLOCK_SLACK: usize = 16 * 1024;

fn protocol_error(what: &'static str) -> ConnectionError {
    ConnectionError::Protocol(FrameError {
        reason: Reason::PROTOCOL_ERROR,
        stream: None,
        what,
    })
}

fn connection_error(reason: Reason, what: &'static str) -> ConnectionError {
    ConnectionError::Protocol(FrameError {
        reason,
        stream: None,
        what,
    })
}

impl<I, S: Service> Connection<I, S> {
    pub(super) fn on_frame(&mut self, frame: Frame) -> Result<(), ConnectionError> {
        if let Some(continuing) = &self.continuing
            && !matches!(frame, Frame::Continuation { stream, .. } if stream == continuing.stream)
        {
            return Err(protocol_error("header block interrupted before its end"));
        }
        match frame {
            Frame::Headers {
                stream,
                end_stream,
                end_headers,
                fragment,
            } => {
                if end_headers {
                    self.on_header_block(stream, end_stream, fragment)?;
                } else {
                    self.continuing = Some(Continuing {
                        stream,
                        end_stream,
                        block: BytesMut::from(&fragment[..]),
                    });
                }
            }
            Frame::Continuation {
                end_headers,
                fragment,
                ..
            } => {
                let Some(continuing) = &mut self.continuing else {
                    return Err(protocol_error("CONTINUATION without HEADERS"));
                };
                continuing.block.extend_from_slice(&fragment);
                if continuing.block.len() > self.config.max_header_list_size as usize + BLOCK_SLACK
                {
                    return Err(connection_error(
                        Reason::ENHANCE_YOUR_CALM,
                        "header block too long",
                    ));
                }
                if end_headers && let Some(done) = self.continuing.take() {
                    self.on_header_block(done.stream, done.end_stream, done.block.freeze())?;
                }
            }
            Frame::Data {
                stream,
                end_stream,
                data,
                flow_len,
            } => self.on_data(stream, end_stream, data, flow_len)?,
            Frame::Reset { stream, .. } => self.on_reset(stream)?,
            Frame::Settings(settings) => self.on_settings(settings)?,
            Frame::SettingsAck | Frame::Ignored => {}
            Frame::Ping { ack, payload } => {
                if !ack {
                    frame::write_ping(&mut self.write_buf, true, payload);
                }
            }
            Frame::GoAway { .. } => self.peer_done = true,
            Frame::WindowUpdate {
                stream: 0,
                increment,
            } => {
                self.send_window += i64::from(increment);
                if self.send_window > i64::from(frame::MAX_WINDOW) {
                    return Err(connection_error(
                        Reason::FLOW_CONTROL_ERROR,
                        "connection window above 2^31-1",
                    ));
                }
            }
            Frame::WindowUpdate { stream, increment } => {
                if let Some(open) = self.streams.get_mut(&stream) {
                    open.send_window += i64::from(increment);
                    if open.send_window > i64::from(frame::MAX_WINDOW) {
                        self.reset(stream, Reason::FLOW_CONTROL_ERROR);
                    } else {
                        self.ready.push(stream);
                    }
                } else if self.is_idle(stream) {
                    return Err(protocol_error("WINDOW_UPDATE on an idle stream"));
                }
            }
            Frame::PushPromise { .. } => return Err(protocol_error("PUSH_PROMISE from a client")),
        }
        Ok(())
    }

    /// A stream the client has not opened yet.
    fn is_idle(&self, stream: u32) -> bool {
        stream > self.last_stream
    }

    fn on_header_block(
        &mut self,
        id: u32,
        end_stream: bool,
        block: Bytes,
    ) -> Result<(), ConnectionError> {
        let max = self.config.max_header_list_size as usize;
        let mut gathered = Gathered::default();
        self.decoder
            .decode(&block, |field| gathered.field(field, max))
            .map_err(|_| {
                connection_error(
                    Reason::COMPRESSION_ERROR,
                    "header block could not be decoded",
                )
            })?;
        if self.streams.contains_key(&id) {
            return self.on_trailers(id, end_stream, gathered);
        }
        if id.is_multiple_of(2) {
            return Err(protocol_error("client opened an even-numbered stream"));
        }
        if !self.is_idle(id) {
            // A stream we have closed, perhaps with RST_STREAM after its
            // answer: what was already on its way for it is ignored
            // (RFC 9113, section 5.1). Its block was decoded above, so
            // the table stays in step.
            return Ok(());
        }
        self.last_stream = id;
        let refuse = self.going_away.is_some()
            || self.streams.len() >= self.config.max_concurrent_streams as usize;
        if refuse {
            frame::write_reset(&mut self.write_buf, id, Reason::REFUSED_STREAM);
            return Ok(());
        }
        if gathered.too_large(max) {
            self.refuse_too_large(id, end_stream);
            return Ok(());
        }
        let (head, length) = match gathered.request() {
            Ok(request) => request,
            Err(malformed) => {
                tracing::debug!(stream = id, error = %malformed, "request refused");
                frame::write_reset(&mut self.write_buf, id, Reason::PROTOCOL_ERROR);
                return Ok(());
            }
        };
        if end_stream && length.is_some_and(|n| n > 0) {
            frame::write_reset(&mut self.write_buf, id, Reason::PROTOCOL_ERROR);
            return Ok(());
        }
        let (recv, inbound) = if end_stream {
            (Recv::Closed, None)
        } else {
            let (sender, inbound) = crate::http2::inbound::inbox(id, self.signals.clone(), length);
            let recv = Recv::Open {
                sender,
                window: i64::from(self.config.stream_window),
                credit: 0,
                length,
                received: 0,
            };
            (recv, Some(inbound))
        };
        let stream = Stream::new(
            id,
            self.signals.clone(),
            self.peer_initial_window,
            recv,
            (head, inbound),
        );
        self.streams.insert(id, stream);
        self.to_start.push(id);
        Ok(())
    }

    fn on_trailers(
        &mut self,
        id: u32,
        end_stream: bool,
        gathered: Gathered,
    ) -> Result<(), ConnectionError> {
        let Some(stream) = self.streams.get_mut(&id) else {
            return Ok(());
        };
        let Recv::Open {
            sender,
            length,
            received,
            ..
        } = &stream.recv
        else {
            // HEADERS after the request ended.
            self.reset(id, Reason::STREAM_CLOSED);
            return Ok(());
        };
        let length_ok = length.is_none_or(|n| n == *received);
        match gathered.trailers() {
            Ok(trailers) if end_stream && length_ok => {
                sender.end(Some(trailers));
                stream.recv = Recv::Closed;
            }
            _ => self.reset(id, Reason::PROTOCOL_ERROR),
        }
        Ok(())
    }

    /// A request whose fields exceed SETTINGS_MAX_HEADER_LIST_SIZE: 431.
    fn refuse_too_large(&mut self, id: u32, end_stream: bool) {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "l5d-err",
            http::HeaderValue::from_static("request header fields too large"),
        );
        headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(0));
        self.write_answer_head(
            id,
            http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            &headers,
        );
        if !end_stream {
            frame::write_reset(&mut self.write_buf, id, Reason::NO_ERROR);
        }
        self.answered += 1;
    }

    fn on_data(
        &mut self,
        id: u32,
        end_stream: bool,
        data: Bytes,
        flow_len: u32,
    ) -> Result<(), ConnectionError> {
        self.recv_window -= i64::from(flow_len);
        if self.recv_window < 0 {
            return Err(connection_error(
                Reason::FLOW_CONTROL_ERROR,
                "DATA beyond the connection's window",
            ));
        }
        // Padding is never read by anyone: its window comes back now.
        self.recv_credit += flow_len - data.len() as u32;
        let Some(Stream {
            recv:
                Recv::Open {
                    sender,
                    window,
                    length,
                    received,
                    ..
                },
            ..
        }) = self.streams.get_mut(&id)
        else {
            self.recv_credit += data.len() as u32;
            if self.is_idle(id) {
                return Err(protocol_error("DATA on an idle stream"));
            }
            // A stream we have closed: ignored, as above.
            return Ok(());
        };
        *window -= i64::from(flow_len);
        *received += data.len() as u64;
        let too_long = length.is_some_and(|n| *received > n);
        let too_short = end_stream && length.is_some_and(|n| *received < n);
        if *window < 0 || too_long || too_short {
            self.recv_credit += data.len() as u32;
            let reason = if *window < 0 {
                Reason::FLOW_CONTROL_ERROR
            } else {
                Reason::PROTOCOL_ERROR
            };
            self.reset(id, reason);
            return Ok(());
        }
        let len = data.len() as u32;
        if len > 0 && !sender.data(data) {
            // Nobody reads this body any more.
            self.recv_credit += len;
        }
        if end_stream {
            sender.end(None);
            if let Some(stream) = self.streams.get_mut(&id) {
                stream.recv = Recv::Closed;
            }
        }
        Ok(())
    }

    fn on_reset(&mut self, id: u32) -> Result<(), ConnectionError> {
        if self.is_idle(id) {
            return Err(protocol_error("RST_STREAM on an idle stream"));
        }
        if let Some(stream) = self.streams.remove(&id) {
            stream.break_off("stream reset by the client");
            if !stream.answering() {
                self.early_resets += 1;
                if self.early_resets > self.answered + RESET_ALLOWANCE {
                    return Err(ConnectionError::TooManyResets);
                }
            }
        }
        Ok(())
    }

    fn on_settings(&mut self, settings: Settings) -> Result<(), ConnectionError> {
        if let Some(size) = settings.initial_window_size {
            let delta = i64::from(size) - self.peer_initial_window;
            self.peer_initial_window = i64::from(size);
            if !self.shift_send_windows(delta) {
                return Err(connection_error(
                    Reason::FLOW_CONTROL_ERROR,
                    "a stream's window above 2^31-1",
                ));
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

    /// A frame error that is one stream's alone.
    pub(super) fn on_stream_error(&mut self, error: &FrameError, stream: u32) {
        tracing::debug!(stream, error = %error, "stream reset");
        self.reset(stream, error.reason);
    }
}
