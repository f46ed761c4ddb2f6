use std::collections::BTreeMap;
use std::net::SocketAddr;

use dtab::{NameTree, Path, Weighted};

use super::convert::{bound_name, bound_tree, path_from_thrift, path_to_thrift};
use super::mux::{self, Message};
use super::protocol::{Reader, Writer, message_type, ttype};
use super::service::{
    Call, Method, ReplyError, ReplyField, decode_call, decode_reply, encode_call, encode_exception,
    encode_reply,
};
use super::types::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn path(s: &str) -> Path {
    Path::read(s).unwrap()
}

#[test]
fn a_dtab_call_is_byte_exact() {
    let call = Call::Dtab(DtabReq {
        stamp: vec![],
        ns: "default".into(),
        client_id: vec![],
    });
    let mut expected = hex("80010001 00000004");
    expected.extend_from_slice(b"dtab");
    expected.extend(hex("00000007 0c0001 0b0001 00000000 0b0002 00000007"));
    expected.extend_from_slice(b"default");
    expected.extend(hex("0f0003 0b 00000000 00 00"));
    assert_eq!(encode_call(7, &call), expected);
    let incoming = decode_call(&expected).unwrap();
    assert_eq!(incoming.header.name, "dtab");
    assert_eq!(incoming.header.seq_id, 7);
    assert_eq!(incoming.call, Ok(call));
}

#[test]
fn the_old_message_header_is_read_too() {
    // name length, name, type, seq id: what non-strict writers send.
    let mut bytes = hex("00000004");
    bytes.extend_from_slice(b"dtab");
    bytes.extend(hex("01 00000009 0c0001 0b0002 00000001 61 00 00"));
    let incoming = decode_call(&bytes).unwrap();
    assert_eq!(incoming.header.kind, message_type::CALL);
    assert_eq!(incoming.header.seq_id, 9);
    let Ok(Call::Dtab(req)) = incoming.call else {
        panic!("{incoming:?}")
    };
    assert_eq!(req.ns, "a");
}

#[test]
fn an_application_exception_is_byte_exact() {
    let e = ApplicationException {
        message: "m".into(),
        kind: APP_UNKNOWN_METHOD,
    };
    assert_eq!(
        encode_exception("x", 0, &e),
        hex("80010003 00000001 78 00000000 0b0001 00000001 6d 080002 00000001 00")
    );
}

#[test]
fn unknown_methods_and_fields_are_answered_or_skipped() {
    let mut w = Writer::new();
    w.message_begin("__can__finagle__trace__v3__", message_type::CALL, 0);
    w.field_stop();
    let incoming = decode_call(&w.into_bytes()).unwrap();
    let Err(e) = incoming.call else { panic!() };
    assert_eq!(e.kind, APP_UNKNOWN_METHOD);
    assert!(e.message.contains("__can__finagle__trace__v3__"), "{e:?}");

    // A DtabReq with an unknown field 9 (a map) and field 2 of the wrong
    // type: both skipped.
    let mut w = Writer::new();
    w.message_begin("dtab", message_type::CALL, 1);
    w.field_begin(ttype::STRUCT, 1);
    w.field_begin(ttype::MAP, 9);
    w.map_begin(ttype::STRING, ttype::I32, 1);
    w.string("k");
    w.i32(1);
    w.field_begin(ttype::I32, 2);
    w.i32(5);
    w.field_stop();
    w.field_stop();
    let incoming = decode_call(&w.into_bytes()).unwrap();
    assert_eq!(
        incoming.call,
        Ok(Call::Dtab(DtabReq::default())),
        "unknown and mistyped fields are skipped"
    );
}

#[test]
fn hostile_sizes_and_depths_are_refused() {
    // A list announcing 2^30 strings in a few bytes.
    let bytes = hex("0b 40000000 00");
    let mut r = Reader::new(&bytes);
    let e = r
        .list(ttype::STRING, |r| Ok(r.binary()?.to_vec()))
        .unwrap_err();
    assert!(e.reason.contains("cannot fit"), "{e}");
    // A negative string length.
    let e = Reader::new(&hex("ffffffff")).binary().unwrap_err();
    assert!(e.reason.contains("negative"), "{e}");
    // Lists nested 10,000 deep: an error, not a stack overflow.
    let mut deep = Vec::new();
    for _ in 0..10_000 {
        deep.extend(hex("0f 00000001"));
    }
    let e = Reader::new(&deep).skip(ttype::LIST).unwrap_err();
    assert!(e.reason.contains("nested deeper"), "{e}");
    // Structs nested deep inside a call's arguments.
    let mut w = Writer::new();
    w.message_begin("bind", message_type::CALL, 1);
    let mut bytes = w.into_bytes();
    for _ in 0..10_000 {
        bytes.extend(hex("0c 0001"));
    }
    let incoming = decode_call(&bytes).unwrap();
    assert_eq!(incoming.call.unwrap_err().kind, APP_PROTOCOL_ERROR);
    // Truncated input.
    assert!(decode_call(&hex("8001")).is_err());
    assert!(decode_call(&hex("80010001 00000010 61")).is_err());
    // A bad version.
    let e = decode_call(&hex("80020001 00000000 00000000")).unwrap_err();
    assert!(e.reason.contains("version"), "{e}");
}

#[test]
fn replies_carry_the_answer_or_the_declared_exception() {
    let failure = BindFailure {
        reason: "no".into(),
        ns: "default".into(),
        ..BindFailure::default()
    };
    let bytes = encode_reply("bind", 3, ReplyField::Exception, &failure);
    let got = decode_reply::<Bound, BindFailure>(&bytes, Method::Bind, 3).unwrap();
    assert_eq!(got, Err(failure));

    let dtab = DtabRef {
        stamp: vec![1, 2],
        dtab: "/a=>/b".into(),
    };
    let bytes = encode_reply("dtab", 4, ReplyField::Success, &dtab);
    let mut expected = hex("80010002 00000004");
    expected.extend_from_slice(b"dtab");
    expected.extend(hex("00000004 0c0000 0b0001 00000002 0102 0b0002 00000006"));
    expected.extend_from_slice(b"/a=>/b");
    expected.extend(hex("00 00"));
    assert_eq!(bytes, expected);
    assert_eq!(
        decode_reply::<DtabRef, DtabFailure>(&bytes, Method::Dtab, 4).unwrap(),
        Ok(dtab)
    );
    let wrong_seq = decode_reply::<DtabRef, DtabFailure>(&bytes, Method::Dtab, 5).unwrap_err();
    assert!(
        matches!(wrong_seq, ReplyError::Protocol(_)),
        "{wrong_seq:?}"
    );

    let app = encode_exception(
        "dtab",
        4,
        &ApplicationException {
            message: "boom".into(),
            kind: APP_INTERNAL_ERROR,
        },
    );
    let e = decode_reply::<DtabRef, DtabFailure>(&app, Method::Dtab, 4).unwrap_err();
    assert!(
        matches!(&e, ReplyError::Application(a) if a.message == "boom"),
        "{e:?}"
    );
}

#[test]
fn every_struct_round_trips() {
    let name = NameRef {
        stamp: vec![9],
        name: path_to_thrift(&path("/svc/web")),
        ns: "default".into(),
    };
    let calls = [
        Call::Bind(BindReq {
            dtab: "/svc=>/#/io.l5d.fs".into(),
            name: name.clone(),
            client_id: path_to_thrift(&path("/client")),
        }),
        Call::Addr(AddrReq {
            name: name.clone(),
            client_id: vec![],
        }),
        Call::Delegate(DelegateReq {
            dtab: String::new(),
            delegation: Delegation {
                stamp: vec![],
                tree: DelegateTree::request(&path("/svc/web")),
                ns: "default".into(),
            },
            client_id: vec![],
        }),
    ];
    for call in calls {
        let bytes = encode_call(1, &call);
        assert_eq!(decode_call(&bytes).unwrap().call, Ok(call));
    }
    let addr = Addr {
        stamp: vec![1],
        value: AddrVal::Bound(BoundAddr {
            addresses: vec![TransportAddress {
                ip: vec![127, 0, 0, 1],
                port: 8080,
                meta: Some(AddrMeta {
                    authority: Some("web".into()),
                    node_name: None,
                    endpoint_addr_weight: Some(2.0),
                }),
            }],
            meta: None,
        }),
    };
    assert_eq!(Addr::from_bytes(&addr.to_bytes()).unwrap(), addr);
    let neg = Addr {
        stamp: vec![],
        value: AddrVal::Neg,
    };
    assert_eq!(Addr::from_bytes(&neg.to_bytes()).unwrap(), neg);
    let contents = [
        DelegateContents::Error("e".into()),
        DelegateContents::Empty,
        DelegateContents::Fail,
        DelegateContents::Neg,
        DelegateContents::Delegate(3),
        DelegateContents::BoundLeaf(bound_name(&path("/#/a"), &path("/r"))),
        DelegateContents::PathLeaf(path_to_thrift(&path("/p"))),
        DelegateContents::Alt(vec![1, 2]),
        DelegateContents::Weighted(vec![WeightedNodeId { weight: 0.5, id: 1 }]),
        DelegateContents::Transformation(Transformation {
            value: bound_name(&path("/#/a"), &Path::empty()),
            tree: 4,
        }),
    ];
    for c in contents {
        assert_eq!(DelegateContents::from_bytes(&c.to_bytes()).unwrap(), c);
    }
    // A union with no field, or two.
    let e = BoundNode::from_bytes(&hex("00")).unwrap_err();
    assert!(e.reason.contains("no field"), "{e}");
    let e = BoundNode::from_bytes(&hex("0c0001 00 0c0002 00 00")).unwrap_err();
    assert!(e.reason.contains("2 fields"), "{e}");
}

#[test]
fn bound_trees_are_numbered_as_linkerd_numbers_them() {
    let leaf = |s: &str| NameTree::Leaf(path(s));
    let tree = NameTree::Alt(vec![
        leaf("/#/a"),
        NameTree::Union(vec![
            Weighted::new(0.5, leaf("/#/b")),
            Weighted::new(0.5, NameTree::Alt(vec![leaf("/#/c"), NameTree::Neg])),
        ]),
    ]);
    let wire = bound_tree(&tree, &|p: &Path| bound_name(p, &Path::empty()));
    assert_eq!(wire.root, BoundNode::Alt(vec![0, 1]));
    let expected: BTreeMap<i32, BoundNode> = [
        (
            0,
            BoundNode::Leaf(bound_name(&path("/#/a"), &Path::empty())),
        ),
        (
            1,
            BoundNode::Weighted(vec![
                WeightedNodeId { weight: 0.5, id: 2 },
                WeightedNodeId { weight: 0.5, id: 3 },
            ]),
        ),
        (
            2,
            BoundNode::Leaf(bound_name(&path("/#/b"), &Path::empty())),
        ),
        (3, BoundNode::Alt(vec![4, 5])),
        (
            4,
            BoundNode::Leaf(bound_name(&path("/#/c"), &Path::empty())),
        ),
        (5, BoundNode::Neg),
    ]
    .into();
    assert_eq!(wire.nodes, expected);
    let back = BoundTree::from_bytes(&wire.to_bytes()).unwrap();
    let names = back.to_name_tree().unwrap();
    assert_eq!(
        names.map(&mut |b: &BoundName| path_from_thrift(&b.id).unwrap()),
        tree
    );
    // A cycle or a missing node is an error, not a hang.
    let cyclic = BoundTree {
        root: BoundNode::Alt(vec![0]),
        nodes: [(0, BoundNode::Alt(vec![0]))].into(),
    };
    assert!(cyclic.to_name_tree().is_err());
    let missing = BoundTree {
        root: BoundNode::Alt(vec![7]),
        nodes: BTreeMap::new(),
    };
    assert!(missing.to_name_tree().unwrap_err().0.contains("node 7"));
}

#[test]
fn paths_and_addresses_convert() {
    let p = path("/#/io.l5d.fs/web");
    assert_eq!(path_from_thrift(&path_to_thrift(&p)).unwrap(), p);
    assert!(path_from_thrift(&vec![b"a".to_vec(), vec![]]).is_err());
    let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let t = TransportAddress::from_socket_addr(addr, None);
    assert_eq!((t.ip.as_slice(), t.port), (&[127, 0, 0, 1][..], 8080));
    assert_eq!(t.socket_addr().unwrap(), addr);
    let v6: SocketAddr = "[::1]:53".parse().unwrap();
    let t6 = TransportAddress::from_socket_addr(v6, None);
    assert_eq!(t6.ip.len(), 16);
    assert_eq!(t6.socket_addr().unwrap(), v6);
    let bad = TransportAddress {
        ip: vec![1, 2, 3],
        port: 1,
        meta: None,
    };
    assert!(bad.socket_addr().unwrap_err().0.contains("3 bytes"));
    let bad_port = TransportAddress { port: 70000, ..t };
    assert!(bad_port.socket_addr().is_err());
}

#[test]
fn mux_control_messages_are_byte_exact() {
    assert_eq!(
        Message::Tping { tag: 1 }.encode(),
        hex("00000004 41 000001")
    );
    assert_eq!(
        Message::Rping { tag: 1 }.encode(),
        hex("00000004 bf 000001")
    );
    assert_eq!(
        Message::Tdrain { tag: 1 }.encode(),
        hex("00000004 40 000001")
    );
    let mut rerr = hex("0000000f 7f 000001");
    rerr.extend_from_slice(b"tinit check");
    assert_eq!(
        Message::Rerr {
            tag: mux::TINIT_TAG,
            message: mux::CAN_TINIT.into()
        }
        .encode(),
        rerr
    );
    assert_eq!(
        mux::decode(&rerr[4..]).unwrap(),
        Message::Rerr {
            tag: 1,
            message: "tinit check".into()
        }
    );
    assert_eq!(
        Message::Rinit {
            tag: 1,
            version: 1,
            headers: vec![(b"k".to_vec(), b"vv".to_vec())]
        }
        .encode(),
        hex("00000011 bc 000001 0001 00000001 6b 00000002 7676")
    );
}

#[test]
fn mux_dispatches_are_byte_exact() {
    let frame = hex("0000000b 02 000005 0000 0000 0000 aa");
    assert_eq!(
        mux::decode(&frame[4..]).unwrap(),
        Message::Tdispatch {
            tag: 5,
            contexts: vec![],
            dst: String::new(),
            dtab: vec![],
            body: vec![0xaa],
        }
    );
    let with_all = Message::Tdispatch {
        tag: 6,
        contexts: vec![(b"c".to_vec(), b"v".to_vec())],
        dst: "/s".into(),
        dtab: vec![("/a".into(), "/b".into())],
        body: vec![1, 2],
    };
    let bytes = with_all.encode();
    assert_eq!(
        bytes,
        hex("0000001c 02 000006 0001 0001 63 0001 76 0002 2f73 0001 0002 2f61 0002 2f62 0102")
    );
    assert_eq!(mux::decode(&bytes[4..]).unwrap(), with_all);
    assert_eq!(
        Message::Rdispatch {
            tag: 6,
            status: mux::status::OK,
            contexts: vec![],
            body: vec![7],
        }
        .encode(),
        hex("00000008 fe 000006 00 0000 07")
    );
    // Tdiscarded comes with tag 0 and names the request in its body.
    let discarded = hex("c2 000000 000005 676f6e65");
    assert_eq!(
        mux::decode(&discarded).unwrap(),
        Message::Tdiscarded {
            which: 5,
            why: "gone".into()
        }
    );
    // A short Tdispatch is an error.
    assert!(mux::decode(&hex("02 000005 0001 0005")).is_err());
    // A fragment says so.
    let fragment = hex("02 800005 0102");
    let (header, body) = mux::split(&fragment).unwrap();
    assert!(header.fragment);
    assert_eq!((header.tag, body), (5, &[1u8, 2][..]));
}

#[test]
fn mux_is_told_from_framed_thrift_by_the_first_frame() {
    let call = encode_call(1, &Call::Dtab(DtabReq::default()));
    assert!(!mux::is_mux(&call), "a strict call reads as Rerr 0x010001");
    let mut old = hex("00000004");
    old.extend_from_slice(b"dtab");
    assert!(!mux::is_mux(&old), "type 0 is no mux message");
    assert!(!mux::is_mux(&hex("ffff")));
    for first in [
        Message::Rerr {
            tag: 1,
            message: mux::CAN_TINIT.into(),
        },
        Message::Tinit {
            tag: 1,
            version: 1,
            headers: vec![],
        },
        Message::Tping { tag: 1 },
        Message::Tdispatch {
            tag: 2,
            contexts: vec![],
            dst: String::new(),
            dtab: vec![],
            body: call.clone(),
        },
    ] {
        assert!(mux::is_mux(&first.encode()[4..]), "{first:?}");
    }
}

#[tokio::test]
async fn frames_are_bounded_and_timed() {
    use super::framed::{FrameError, read_frame, write_frame};
    use std::time::Duration;

    let (mut a, mut b) = tokio::io::duplex(64);
    write_frame(&mut a, b"hello").await.unwrap();
    assert_eq!(
        read_frame(&mut b, 16, None).await.unwrap(),
        Some(b"hello".to_vec())
    );
    write_frame(&mut a, &[0; 17]).await.unwrap();
    assert!(matches!(
        read_frame(&mut b, 16, None).await,
        Err(FrameError::TooLarge { size: 17, max: 16 })
    ));
    let (mut a, mut b) = tokio::io::duplex(64);
    tokio::io::AsyncWriteExt::write_all(&mut a, &[0, 0, 0, 9, 1])
        .await
        .unwrap();
    assert!(matches!(
        read_frame(&mut b, 16, Some(Duration::from_millis(50))).await,
        Err(FrameError::Timeout(_))
    ));
    drop(a);
    let (a, mut b) = tokio::io::duplex(64);
    drop(a);
    assert!(read_frame(&mut b, 16, None).await.unwrap().is_none());
}

#[tokio::test]
async fn the_client_reports_answers_failures_and_unreachable_servers() {
    use super::framed::{read_frame, write_frame};
    use super::{NamerClient, ThriftError};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        while let Ok(Some(frame)) = read_frame(&mut conn, 1 << 20, None).await {
            let incoming = decode_call(&frame).unwrap();
            let seq = incoming.header.seq_id;
            let reply = match incoming.call.unwrap() {
                Call::Dtab(req) if req.ns == "default" => encode_reply(
                    "dtab",
                    seq,
                    ReplyField::Success,
                    &DtabRef {
                        stamp: vec![1],
                        dtab: "/a=>/b".into(),
                    },
                ),
                Call::Dtab(_) => encode_reply(
                    "dtab",
                    seq,
                    ReplyField::Exception,
                    &DtabFailure {
                        reason: "no such thing".into(),
                    },
                ),
                _ => encode_exception(
                    "bind",
                    seq,
                    &ApplicationException {
                        message: "nope".into(),
                        kind: APP_INTERNAL_ERROR,
                    },
                ),
            };
            write_frame(&mut conn, &reply).await.unwrap();
        }
    });
    let client = NamerClient::new(addr.to_string());
    let req = |ns: &str| DtabReq {
        ns: ns.into(),
        ..DtabReq::default()
    };
    let got = client.dtab(req("default")).await.unwrap();
    assert_eq!(got.dtab, "/a=>/b");
    // Same connection, next call.
    let e = client.dtab(req("other")).await.unwrap_err();
    assert!(
        matches!(&e, ThriftError::Failed { reason, .. } if reason == "no such thing"),
        "{e}"
    );
    let e = client.bind(BindReq::default()).await.unwrap_err();
    assert!(
        matches!(&e, ThriftError::Application { message, .. } if message == "nope"),
        "{e}"
    );

    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gone = closed.local_addr().unwrap();
    drop(closed);
    let e = NamerClient::new(gone.to_string())
        .dtab(req("default"))
        .await
        .unwrap_err();
    assert!(matches!(e, ThriftError::Unreachable { .. }), "{e}");
    assert!(e.to_string().contains(&gone.to_string()), "{e}");
}
