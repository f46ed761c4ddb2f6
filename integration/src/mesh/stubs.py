"""Shared by the mesh client and the minimal mesh server: loads the stubs
grpc_tools generated from Linkerd's mesh protos, and turns messages into
the plain JSON shapes namerd's HTTP API uses (and back, for the server)."""

import base64
import ipaddress
import sys


def load(stub_dir):
    sys.path.insert(0, stub_dir)
    import codec_pb2, codec_pb2_grpc  # noqa: E401
    import delegator_pb2, delegator_pb2_grpc  # noqa: E401
    import dtab_pb2
    import interpreter_pb2, interpreter_pb2_grpc  # noqa: E401
    import resolver_pb2, resolver_pb2_grpc  # noqa: E401
    return {
        "codec": codec_pb2, "codec_grpc": codec_pb2_grpc,
        "delegator": delegator_pb2, "delegator_grpc": delegator_pb2_grpc,
        "dtab": dtab_pb2,
        "interpreter": interpreter_pb2, "interpreter_grpc": interpreter_pb2_grpc,
        "resolver": resolver_pb2, "resolver_grpc": resolver_pb2_grpc,
    }


# ---- from text, written here without the project's parser ----

def path_elems(text):
    """'/a/b' -> [b'a', b'b']; '/' -> []."""
    return [e.encode() for e in text.split("/") if e]


def tree_json(text):
    """A destination written as 'a | b' of leaves, '~', '!' or '$', as
    proto JSON (no unions, no parentheses: enough for the tests)."""
    alts = [t.strip() for t in text.split("|")]
    if len(alts) > 1:
        return {"alt": {"trees": [tree_json(a) for a in alts]}}
    t = alts[0]
    if t == "~":
        return {"neg": {}}
    if t == "!":
        return {"fail": {}}
    if t == "$":
        return {"empty": {}}
    return {"leaf": {"id": path_json(t)}}


def path_json(text):
    return {"elems": [base64.b64encode(e).decode() for e in path_elems(text)]}


def dtab_json(text):
    dentries = []
    for d in text.split(";"):
        if not d.strip():
            continue
        prefix, dst = d.split("=>")
        elems = []
        for e in prefix.strip().split("/"):
            if not e:
                continue
            if e == "*":
                elems.append({"wildcard": {}})
            else:
                elems.append({"label": base64.b64encode(e.encode()).decode()})
        dentries.append({"prefix": {"elems": elems}, "dst": tree_json(dst.strip())})
    return {"dentries": dentries}


# ---- to the HTTP API's JSON shapes ----

def show_label(b):
    try:
        s = b.decode()
        if all(0x20 < ord(c) < 0x7f for c in s):
            return s
    except UnicodeDecodeError:
        pass
    return "".join("\\x%02x" % c for c in b)


def show_path(p):
    return "/" + "/".join(show_label(e) for e in p.elems)


def show_tree(t):
    kind = t.WhichOneof("node")
    if kind == "neg":
        return "~"
    if kind == "fail":
        return "!"
    if kind == "empty":
        return "$"
    if kind == "leaf":
        return show_path(t.leaf.id)
    if kind == "alt":
        return " | ".join(show_tree(x) for x in t.alt.trees)
    if kind == "union":
        return " & ".join("%s*%s" % (w.weight, show_tree(w.tree)) for w in t.union.trees)
    raise ValueError("a tree with no node")


def show_prefix(prefix):
    parts = []
    for e in prefix.elems:
        parts.append("*" if e.WhichOneof("value") == "wildcard" else show_label(e.label))
    return "/" + "/".join(parts)


def show_dtab(d):
    return ";".join("%s=>%s" % (show_prefix(x.prefix), show_tree(x.dst)) for x in d.dentries)


def bound_tree(t):
    kind = t.WhichOneof("node")
    if kind == "leaf":
        return {"type": "leaf", "bound": {"id": show_path(t.leaf.id), "path": show_path(t.leaf.residual)}}
    if kind == "alt":
        return {"type": "alt", "alt": [bound_tree(x) for x in t.alt.trees]}
    if kind == "union":
        return {"type": "union", "union": [{"weight": w.weight, "tree": bound_tree(w.tree)} for w in t.union.trees]}
    return {"type": kind}


def is_nop(dentry):
    elems = dentry.prefix.elems
    return (len(elems) == 1 and elems[0].label == b"/" and dentry.dst.WhichOneof("node") == "neg")


def delegate_tree(t):
    kind = t.WhichOneof("node")
    node = {"type": kind, "path": show_path(t.path)}
    if t.HasField("dentry") and not is_nop(t.dentry):
        node["dentry"] = {"prefix": show_prefix(t.dentry.prefix), "dst": show_tree(t.dentry.dst)}
    if kind == "delegate":
        node["delegate"] = delegate_tree(t.delegate)
    elif kind == "alt":
        node["alt"] = [delegate_tree(x) for x in t.alt.trees]
    elif kind == "union":
        node["union"] = [{"weight": w.weight, "tree": delegate_tree(w.tree)} for w in t.union.trees]
    elif kind == "leaf":
        node["bound"] = {"id": show_path(t.leaf.id), "path": show_path(t.leaf.residual)}
    elif kind == "exception":
        node["message"] = t.exception
    elif kind == "transformation":
        node["name"] = t.transformation.name
        node["tree"] = delegate_tree(t.transformation.tree)
    return node


def replicas(r):
    kind = r.WhichOneof("result")
    if kind == "bound":
        addrs = []
        for e in r.bound.endpoints:
            addrs.append({
                "ip": str(ipaddress.ip_address(bytes(e.address))),
                "port": e.port,
                "meta": dict(e.metadata),
            })
        return {"type": "bound", "addrs": addrs, "meta": dict(r.bound.metadata)}
    if kind == "failed":
        return {"type": "failed", "cause": r.failed.message}
    return {"type": kind or "neg"}


# ---- from the HTTP API's JSON shapes, for the minimal server ----

def bound_tree_msg(pb, doc):
    T = pb["interpreter"].BoundNameTree
    kind = doc["type"]
    if kind == "leaf":
        b = doc["bound"]
        return T(leaf=T.Leaf(id=pb["dtab"].Path(elems=path_elems(b["id"])),
                             residual=pb["dtab"].Path(elems=path_elems(b.get("path", "/")))))
    if kind == "alt":
        return T(alt=T.Alt(trees=[bound_tree_msg(pb, x) for x in doc["alt"]]))
    if kind == "union":
        return T(union=T.Union(trees=[T.Union.Weighted(weight=w["weight"], tree=bound_tree_msg(pb, w["tree"]))
                                      for w in doc["union"]]))
    if kind == "neg":
        return T(neg=T.Neg())
    if kind == "fail":
        return T(fail=T.Fail())
    if kind == "empty":
        return T(empty=T.Empty())
    raise ValueError("unknown tree type %r" % kind)


def replicas_msg(pb, doc):
    R = pb["resolver"]
    kind = doc["type"]
    if kind == "bound":
        endpoints = []
        for a in doc["addrs"]:
            ip = ipaddress.ip_address(a["ip"])
            endpoints.append(R.Endpoint(
                inet_af=R.Endpoint.INET6 if ip.version == 6 else R.Endpoint.INET4,
                address=ip.packed,
                port=a["port"],
                metadata={k: str(v) for k, v in a.get("meta", {}).items()},
            ))
        return R.Replicas(bound=R.Replicas.Bound(
            endpoints=endpoints, metadata={k: str(v) for k, v in doc.get("meta", {}).items()}))
    if kind == "failed":
        return R.Replicas(failed=R.Replicas.Failed(message=doc.get("cause", "")))
    if kind == "pending":
        return R.Replicas(pending=R.Replicas.Pending())
    return R.Replicas(neg=R.Replicas.Neg())
