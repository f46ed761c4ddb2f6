use super::*;
use prost::Message as _;

fn path(text: &str) -> Path {
    Path::read(text).unwrap()
}

fn leaf(id: &str, residual: &str) -> BoundLeaf {
    BoundLeaf {
        id: path(id),
        residual: path(residual),
    }
}

#[test]
fn paths_round_trip_with_any_bytes() {
    let mut p = path("/svc/web");
    p.push(Label::new([0xff, 0x00, b'/']).unwrap());
    let message = path_to_proto(&p);
    assert_eq!(message.elems[2], vec![0xff, 0x00, b'/']);
    assert_eq!(path_from_proto(&message).unwrap(), p);
    assert_eq!(
        path_from_proto(&proto::Path::default()).unwrap(),
        Path::empty()
    );
}

#[test]
fn an_empty_path_element_is_refused_with_its_index() {
    let message = proto::Path {
        elems: vec![b"svc".to_vec(), Vec::new()],
    };
    let e = path_from_proto(&message).unwrap_err();
    assert_eq!(e.to_string(), "elems[1] is empty");
}

#[test]
fn dtabs_round_trip() {
    let dtab = Dtab::read(
        "/svc => /#/io.l5d.fs; /svc/*/web => 3 * /a & /b | ~; /x => !; /y => $; / => /z",
    )
    .unwrap();
    let message = dtab_to_proto(&dtab);
    // Through the wire format too.
    let bytes = message.encode_to_vec();
    let decoded = proto::Dtab::decode(bytes.as_slice()).unwrap();
    let back = dtab_from_proto(&decoded).unwrap();
    assert_eq!(back.show(), dtab.show());
    let versioned = VersionedDtab {
        dtab: dtab.clone(),
        version: Version::from_u64(7),
    };
    let back = versioned_dtab_from_proto(&versioned_dtab_to_proto(&versioned)).unwrap();
    assert_eq!(back.version, versioned.version);
    assert_eq!(back.dtab.show(), dtab.show());
}

#[test]
fn a_dentry_without_dst_or_with_an_unset_prefix_element_says_where() {
    let mut message = dtab_to_proto(&Dtab::read("/a => /b; /c => /d").unwrap());
    message.dentries[1].dst = None;
    assert_eq!(
        dtab_from_proto(&message).unwrap_err().to_string(),
        "dentries[1]: dst is missing"
    );
    let mut message = dtab_to_proto(&Dtab::read("/a => /b; /c/e => /d").unwrap());
    if let Some(prefix) = message.dentries[1].prefix.as_mut() {
        prefix.elems[1].value = None;
    }
    assert_eq!(
        dtab_from_proto(&message).unwrap_err().to_string(),
        "dentries[1]: prefix.elems[1] is neither a label nor a wildcard"
    );
    // A missing prefix is `/`.
    let mut message = dtab_to_proto(&Dtab::read("/a => /b").unwrap());
    message.dentries[0].prefix = None;
    assert_eq!(dtab_from_proto(&message).unwrap().show(), "/=>/b");
}

#[test]
fn a_tree_error_deep_inside_names_the_whole_way() {
    let tree = NameTree::read("/a | 2 * /b & (/c | /d)").unwrap();
    let mut message = name_tree_to_proto(&tree);
    // Reach the inner alt's second branch and unset it.
    let Some(pnt::Node::Alt(alt)) = message.node.as_mut() else {
        panic!("not an alt")
    };
    let Some(pnt::Node::Union(union)) = alt.trees[1].node.as_mut() else {
        panic!("not a union")
    };
    union.trees[0].weight = f64::NAN;
    let e = name_tree_from_proto(&message).unwrap_err();
    assert_eq!(
        e.to_string(),
        "alt[1].union[0]: weight NaN is not a finite number >= 0"
    );
    let Some(pnt::Node::Alt(alt)) = message.node.as_mut() else {
        panic!("not an alt")
    };
    let Some(pnt::Node::Union(union)) = alt.trees[1].node.as_mut() else {
        panic!("not a union")
    };
    union.trees[0].weight = 2.0;
    let Some(pnt::Node::Alt(inner)) = union.trees[1].tree.as_mut().and_then(|t| t.node.as_mut())
    else {
        panic!("not an alt")
    };
    inner.trees[1].node = None;
    let e = name_tree_from_proto(&message).unwrap_err();
    assert_eq!(e.at(), "alt[1].union[1].tree.alt[1]");
    assert_eq!(e.problem(), "no node set");
}

fn nested_bound(depth: usize) -> proto::BoundNameTree {
    let mut tree = bound_tree_to_proto(&NameTree::Leaf(leaf("/#/io.l5d.fs/web", "/")));
    for _ in 0..depth {
        tree = proto::BoundNameTree {
            node: Some(bnt::Node::Alt(bnt::Alt { trees: vec![tree] })),
        };
    }
    tree
}

#[test]
fn absurd_nesting_is_refused() {
    let ok = bound_tree_from_proto(&nested_bound(MAX_TREE_DEPTH)).unwrap();
    assert!(matches!(ok, NameTree::Alt(_)));
    let e = bound_tree_from_proto(&nested_bound(1000)).unwrap_err();
    assert!(e.problem().contains("nested more than 100 deep"), "{e}");
    // prost itself refuses such a message on the wire.
    let bytes = nested_bound(1000).encode_to_vec();
    assert!(proto::BoundNameTree::decode(bytes.as_slice()).is_err());
}

#[test]
fn bound_trees_round_trip_and_need_leaf_ids() {
    let tree = NameTree::Alt(vec![
        NameTree::Union(vec![
            Weighted::new(3.0, NameTree::Leaf(leaf("/#/io.l5d.fs/web", "/api"))),
            Weighted::new(1.0, NameTree::Leaf(leaf("/#/io.l5d.fs/web2", "/"))),
        ]),
        NameTree::Neg,
        NameTree::Fail,
        NameTree::Empty,
    ]);
    let message = bound_tree_to_proto(&tree);
    assert_eq!(bound_tree_from_proto(&message).unwrap(), tree);
    // An absent residual is the empty path; an absent id is an error.
    let mut message = bound_tree_to_proto(&NameTree::Leaf(leaf("/#/a", "/")));
    if let Some(bnt::Node::Leaf(l)) = message.node.as_mut() {
        l.residual = None;
    }
    assert_eq!(
        bound_tree_from_proto(&message).unwrap(),
        NameTree::Leaf(leaf("/#/a", "/"))
    );
    if let Some(bnt::Node::Leaf(l)) = message.node.as_mut() {
        l.id = None;
    }
    assert_eq!(
        bound_tree_from_proto(&message).unwrap_err().to_string(),
        "leaf.id: missing"
    );
}

#[test]
fn delegate_trees_round_trip() {
    let dentry = Dentry::read("/svc => /#/io.l5d.fs").unwrap();
    let tree = DelegateTree::Delegate {
        path: path("/svc/web"),
        dentry: Dentry::nop(),
        tree: Box::new(DelegateTree::Alt {
            path: path("/#/io.l5d.fs/web"),
            dentry: dentry.clone(),
            trees: vec![
                DelegateTree::Leaf {
                    path: path("/#/io.l5d.fs/web"),
                    dentry: dentry.clone(),
                    value: leaf("/#/io.l5d.fs/web", "/"),
                },
                DelegateTree::Union {
                    path: path("/x"),
                    dentry: dentry.clone(),
                    trees: vec![WeightedDelegate {
                        weight: 0.5,
                        tree: DelegateTree::Exception {
                            path: path("/x"),
                            dentry: dentry.clone(),
                            message: "boom".into(),
                        },
                    }],
                },
                DelegateTree::Transformation {
                    path: path("/y"),
                    name: "io.l5d.localhost".into(),
                    value: leaf("/#/io.l5d.fs/y", "/"),
                    tree: Box::new(DelegateTree::Neg {
                        path: path("/y"),
                        dentry: dentry.clone(),
                    }),
                },
            ],
        }),
    };
    let message = delegate_tree_to_proto(&tree);
    let Some(bdt::Node::Delegate(inner)) = &message.node else {
        panic!("not a delegate")
    };
    let Some(bdt::Node::Alt(alt)) = &inner.node else {
        panic!("not an alt")
    };
    let Some(bdt::Node::Union(union)) = &alt.trees[1].node else {
        panic!("not a union")
    };
    // Linkerd's namerd prefixes the message so.
    assert_eq!(
        union.trees[0].tree.as_ref().and_then(|t| t.node.clone()),
        Some(bdt::Node::Exception(
            "BoundDelegateTree Exception: boom".into()
        ))
    );
    assert_eq!(delegate_tree_from_proto(&message).unwrap(), tree);
}

#[test]
fn replicas_round_trip() {
    let replicas = Replicas::Bound {
        endpoints: vec![
            MeshEndpoint {
                addr: "10.0.0.1:8080".parse().unwrap(),
                node_name: Some("node-a".into()),
                metadata: [("endpoint_addr_weight".to_string(), "2.0".to_string())].into(),
            },
            MeshEndpoint {
                addr: "[2001:db8::1]:443".parse().unwrap(),
                node_name: None,
                metadata: BTreeMap::new(),
            },
        ],
        metadata: [("authority".to_string(), "web".to_string())].into(),
    };
    let message = replicas_to_proto(&replicas);
    let bytes = message.encode_to_vec();
    let decoded = proto::Replicas::decode(bytes.as_slice()).unwrap();
    assert_eq!(replicas_from_proto(&decoded).unwrap(), replicas);
    for r in [
        Replicas::Pending,
        Replicas::Neg,
        Replicas::Failed("gone".into()),
    ] {
        assert_eq!(replicas_from_proto(&replicas_to_proto(&r)).unwrap(), r);
    }
    assert_eq!(
        replicas_from_proto(&proto::Replicas::default()).unwrap(),
        Replicas::Neg
    );
}

#[test]
fn bad_endpoints_say_what_is_wrong() {
    let good = endpoint_to_proto(&MeshEndpoint {
        addr: "10.0.0.1:80".parse().unwrap(),
        node_name: None,
        metadata: BTreeMap::new(),
    });
    let bound = |e: proto::Endpoint| proto::Replicas {
        result: Some(proto::replicas::Result::Bound(proto::replicas::Bound {
            endpoints: vec![good.clone(), e],
            metadata: HashMap::new(),
        })),
    };
    let mut short = good.clone();
    short.address = vec![10, 0, 0];
    assert_eq!(
        replicas_from_proto(&bound(short)).unwrap_err().to_string(),
        "bound.endpoints[1]: address is 3 bytes; an IPv4 address is 4 and an IPv6 one 16"
    );
    let mut port = good.clone();
    port.port = 70000;
    let e = replicas_from_proto(&bound(port)).unwrap_err().to_string();
    assert!(e.contains("port 70000 is not from 0 to 65535"), "{e}");
    let mut family = good.clone();
    family.inet_af = 1;
    let e = replicas_from_proto(&bound(family)).unwrap_err().to_string();
    assert!(
        e.contains("inet_af is INET6 but the address is 4 bytes"),
        "{e}"
    );
    let mut unknown = good.clone();
    unknown.inet_af = 9;
    let e = replicas_from_proto(&bound(unknown))
        .unwrap_err()
        .to_string();
    assert!(e.contains("inet_af 9"), "{e}");
}

#[test]
fn roots_name_one_namespace() {
    let ns = crate::Namespace::new("default").unwrap();
    assert_eq!(
        crate::mesh::namespace_of(&crate::mesh::root(&ns)).unwrap(),
        ns
    );
    let two = proto::Path {
        elems: vec![b"a".to_vec(), b"b".to_vec()],
    };
    assert_eq!(
        crate::mesh::namespace_of(&two).unwrap_err().to_string(),
        "root: `/a/b` must have exactly one element, the namespace (it has 2)"
    );
    let bytes = proto::Path {
        elems: vec![vec![0xff, 0xfe]],
    };
    let e = crate::mesh::namespace_of(&bytes).unwrap_err().to_string();
    assert!(e.starts_with("root: the namespace is not UTF-8"), "{e}");
    assert!(crate::mesh::namespace_of(&proto::Path::default()).is_err());
}
