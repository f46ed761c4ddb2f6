use super::*;

fn raw(len: usize, kind: u8, flags: u8, stream: u32, payload: &[u8]) -> BytesMut {
    let mut buf = BytesMut::new();
    head(&mut buf, len, kind, flags, stream);
    buf.extend_from_slice(payload);
    buf
}

fn one(buf: &mut BytesMut) -> Result<Frame, FrameError> {
    let frame = read(buf, DEFAULT_MAX_FRAME_SIZE).map(|frame| frame.unwrap());
    assert!(buf.is_empty() || frame.is_err(), "{} bytes left", buf.len());
    frame
}

#[test]
fn what_is_written_reads_back() {
    let mut buf = BytesMut::new();
    write_settings(
        &mut buf,
        &[
            (setting::MAX_CONCURRENT_STREAMS, 100),
            (setting::INITIAL_WINDOW_SIZE, 1 << 20),
        ],
    );
    write_settings_ack(&mut buf);
    write_ping(&mut buf, true, *b"12345678");
    write_window_update(&mut buf, 3, 1000);
    write_reset(&mut buf, 5, Reason::CANCEL);
    write_goaway(&mut buf, 7, Reason::NO_ERROR);
    write_data_head(&mut buf, 9, true, 3);
    buf.extend_from_slice(b"abc");
    let mut frames = Vec::new();
    while let Some(frame) = read(&mut buf, DEFAULT_MAX_FRAME_SIZE).unwrap() {
        frames.push(frame);
    }
    assert_eq!(
        frames,
        [
            Frame::Settings(Settings {
                max_concurrent_streams: Some(100),
                initial_window_size: Some(1 << 20),
                ..Settings::default()
            }),
            Frame::SettingsAck,
            Frame::Ping {
                ack: true,
                payload: *b"12345678"
            },
            Frame::WindowUpdate {
                stream: 3,
                increment: 1000
            },
            Frame::Reset {
                stream: 5,
                reason: Reason::CANCEL
            },
            Frame::GoAway {
                last_stream: 7,
                reason: Reason::NO_ERROR
            },
            Frame::Data {
                stream: 9,
                end_stream: true,
                data: Bytes::from_static(b"abc"),
                flow_len: 3
            },
        ]
    );
}

#[test]
fn a_frame_is_read_only_once_it_is_whole() {
    let mut whole = BytesMut::new();
    write_ping(&mut whole, false, [7; 8]);
    for cut in 0..whole.len() {
        let mut buf = BytesMut::from(&whole[..cut]);
        assert_eq!(read(&mut buf, DEFAULT_MAX_FRAME_SIZE), Ok(None), "{cut}");
        assert_eq!(buf.len(), cut);
        buf.extend_from_slice(&whole[cut..]);
        assert_eq!(
            one(&mut buf),
            Ok(Frame::Ping {
                ack: false,
                payload: [7; 8]
            })
        );
    }
}

#[test]
fn a_long_header_block_continues() {
    let block: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
    let mut buf = BytesMut::new();
    write_headers(&mut buf, 1, true, &block, DEFAULT_MAX_FRAME_SIZE);
    let mut fragments = Vec::new();
    let mut flags = Vec::new();
    while let Some(frame) = read(&mut buf, DEFAULT_MAX_FRAME_SIZE).unwrap() {
        match frame {
            Frame::Headers {
                stream: 1,
                end_stream,
                end_headers,
                fragment,
            } => {
                flags.push(("headers", end_stream, end_headers));
                fragments.extend_from_slice(&fragment);
            }
            Frame::Continuation {
                stream: 1,
                end_headers,
                fragment,
            } => {
                flags.push(("continuation", false, end_headers));
                fragments.extend_from_slice(&fragment);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(fragments, block);
    assert_eq!(
        flags,
        [
            ("headers", true, false),
            ("continuation", false, false),
            ("continuation", false, true)
        ]
    );
    // A short block is one HEADERS frame.
    let mut buf = BytesMut::new();
    write_headers(&mut buf, 3, false, b"\x82", DEFAULT_MAX_FRAME_SIZE);
    assert_eq!(
        one(&mut buf),
        Ok(Frame::Headers {
            stream: 3,
            end_stream: false,
            end_headers: true,
            fragment: Bytes::from_static(b"\x82")
        })
    );
}

#[test]
fn padding_and_priority_are_taken_off() {
    // DATA: pad length 2, "hi", two bytes of padding.
    let mut buf = raw(5, kind::DATA, flag::PADDED, 1, b"\x02hi\0\0");
    assert_eq!(
        one(&mut buf),
        Ok(Frame::Data {
            stream: 1,
            end_stream: false,
            data: Bytes::from_static(b"hi"),
            flow_len: 5
        })
    );
    // HEADERS: padded, with priority fields (depends on 0, weight 16).
    let mut buf = raw(
        8,
        kind::HEADERS,
        flag::PADDED | flag::PRIORITY | flag::END_HEADERS,
        3,
        b"\x01\0\0\0\0\x10\x82\0",
    );
    assert_eq!(
        one(&mut buf),
        Ok(Frame::Headers {
            stream: 3,
            end_stream: false,
            end_headers: true,
            fragment: Bytes::from_static(b"\x82")
        })
    );
}

fn connection_error(buf: &mut BytesMut) -> Reason {
    let error = read(buf, DEFAULT_MAX_FRAME_SIZE).unwrap_err();
    assert_eq!(error.stream, None, "{error}");
    error.reason
}

#[test]
fn frames_a_peer_can_break() {
    // Longer than we allow.
    let mut buf = raw(16_385, kind::DATA, 0, 1, &[0; 16_385]);
    assert_eq!(connection_error(&mut buf), Reason::FRAME_SIZE_ERROR);
    // Padding as long as the frame.
    let mut buf = raw(3, kind::DATA, flag::PADDED, 1, b"\x03ab");
    assert_eq!(connection_error(&mut buf), Reason::PROTOCOL_ERROR);
    let mut buf = raw(0, kind::DATA, flag::PADDED, 1, b"");
    assert_eq!(connection_error(&mut buf), Reason::FRAME_SIZE_ERROR);
    // Stream frames on stream 0, connection frames on a stream.
    for kind in [
        kind::DATA,
        kind::HEADERS,
        kind::RST_STREAM,
        kind::CONTINUATION,
        kind::PRIORITY,
    ] {
        let mut buf = raw(4, kind, 0, 0, &[0; 4]);
        assert_eq!(
            connection_error(&mut buf),
            Reason::PROTOCOL_ERROR,
            "kind {kind}"
        );
    }
    for kind in [kind::SETTINGS, kind::PING, kind::GOAWAY] {
        let mut buf = raw(8, kind, 0, 1, &[0; 8]);
        assert_eq!(
            connection_error(&mut buf),
            Reason::PROTOCOL_ERROR,
            "kind {kind}"
        );
    }
    // Wrong lengths.
    let mut buf = raw(7, kind::PING, 0, 0, &[0; 7]);
    assert_eq!(connection_error(&mut buf), Reason::FRAME_SIZE_ERROR);
    let mut buf = raw(5, kind::RST_STREAM, 0, 1, &[0; 5]);
    assert_eq!(connection_error(&mut buf), Reason::FRAME_SIZE_ERROR);
    let mut buf = raw(6, kind::SETTINGS, flag::ACK, 0, &[0; 6]);
    assert_eq!(connection_error(&mut buf), Reason::FRAME_SIZE_ERROR);
    let mut buf = raw(5, kind::SETTINGS, 0, 0, &[0; 5]);
    assert_eq!(connection_error(&mut buf), Reason::FRAME_SIZE_ERROR);
    let mut buf = raw(4, kind::GOAWAY, 0, 0, &[0; 4]);
    assert_eq!(connection_error(&mut buf), Reason::FRAME_SIZE_ERROR);
    // A window update of 0: the connection's, then a stream's.
    let mut buf = raw(4, kind::WINDOW_UPDATE, 0, 0, &[0; 4]);
    assert_eq!(connection_error(&mut buf), Reason::PROTOCOL_ERROR);
    let mut buf = raw(4, kind::WINDOW_UPDATE, 0, 5, &[0; 4]);
    let error = read(&mut buf, DEFAULT_MAX_FRAME_SIZE).unwrap_err();
    assert_eq!(
        (error.stream, error.reason),
        (Some(5), Reason::PROTOCOL_ERROR)
    );
    // A stream that depends on itself.
    let mut buf = raw(5, kind::PRIORITY, 0, 5, &[0, 0, 0, 5, 16]);
    let error = read(&mut buf, DEFAULT_MAX_FRAME_SIZE).unwrap_err();
    assert_eq!(
        (error.stream, error.reason),
        (Some(5), Reason::PROTOCOL_ERROR)
    );
}

#[test]
fn settings_out_of_range_are_refused() {
    let cases = [
        (setting::ENABLE_PUSH, 2, Reason::PROTOCOL_ERROR),
        (
            setting::INITIAL_WINDOW_SIZE,
            1 << 31,
            Reason::FLOW_CONTROL_ERROR,
        ),
        (setting::MAX_FRAME_SIZE, 16_383, Reason::PROTOCOL_ERROR),
        (setting::MAX_FRAME_SIZE, 1 << 24, Reason::PROTOCOL_ERROR),
    ];
    for (id, value, reason) in cases {
        let mut buf = BytesMut::new();
        write_settings(&mut buf, &[(id, value)]);
        assert_eq!(connection_error(&mut buf), reason, "setting {id} = {value}");
    }
    // Unknown ones are ignored; the largest valid values pass.
    let mut buf = BytesMut::new();
    write_settings(
        &mut buf,
        &[
            (0x99, 1),
            (setting::INITIAL_WINDOW_SIZE, MAX_WINDOW),
            (setting::MAX_FRAME_SIZE, (1 << 24) - 1),
        ],
    );
    assert_eq!(
        one(&mut buf),
        Ok(Frame::Settings(Settings {
            initial_window_size: Some(MAX_WINDOW),
            max_frame_size: Some((1 << 24) - 1),
            ..Settings::default()
        }))
    );
}

#[test]
fn unknown_frames_and_the_reserved_bit_are_ignored() {
    let mut buf = raw(3, 0xfa, 0xff, 1, b"xyz");
    assert_eq!(one(&mut buf), Ok(Frame::Ignored));
    // The stream identifier's reserved high bit.
    let mut buf = raw(4, kind::RST_STREAM, 0, 0x8000_0003, &[0, 0, 0, 8]);
    assert_eq!(
        one(&mut buf),
        Ok(Frame::Reset {
            stream: 3,
            reason: Reason::CANCEL
        })
    );
}
