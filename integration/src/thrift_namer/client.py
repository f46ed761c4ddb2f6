"""One call of Linkerd's Namer service (namer.thrift), made with thriftpy2
over framed binary Thrift, printed as one JSON line.

    python3 client.py IDL HOST PORT METHOD ARGS_JSON

METHOD is bind, addr, dtab or delegate. ARGS_JSON has "ns", "path" (or
"id" for addr), "dtab" and "stamp" (hex) as the method needs. Prints
{"ok": ...}, {"failure": {"type": ..., "reason": ...}} or
{"error": ...} (a TApplicationException or a transport error).
"""
import json
import sys

import thriftpy2
from thriftpy2.protocol import TBinaryProtocolFactory
from thriftpy2.rpc import make_client
from thriftpy2.thrift import TApplicationException
from thriftpy2.transport import TFramedTransportFactory

idl, host, port, method, args = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], json.loads(sys.argv[5])
namer = thriftpy2.load(idl, module_name="namer_thrift")


def tpath(text):
    return [label.encode() for label in text.strip("/").split("/") if label]


def show(path):
    return "/" + "/".join(label.decode() for label in path)


def bound_tree(tree):
    def node(n):
        if n.neg is not None:
            return {"type": "neg"}
        if n.empty is not None:
            return {"type": "empty"}
        if n.fail is not None:
            return {"type": "fail"}
        if n.leaf is not None:
            return {"type": "leaf", "bound": {"id": show(n.leaf.id), "path": show(n.leaf.residual)}}
        if n.alt is not None:
            return {"type": "alt", "alt": [node(tree.nodes[i]) for i in n.alt]}
        if n.weighted is not None:
            return {"type": "union", "union": [{"weight": w.weight, "tree": node(tree.nodes[w.id])} for w in n.weighted]}
        raise ValueError("an empty BoundNode")
    return node(tree.root)


def delegate_tree(tree):
    out = []

    def node(n):
        c = n.contents
        path = show(n.path)
        if c.error is not None:
            out.append(["exception", path, c.error])
        elif c.empty is not None:
            out.append(["empty", path, None])
        elif c.fail is not None:
            out.append(["fail", path, None])
        elif c.neg is not None:
            out.append(["neg", path, None])
        elif c.delegate is not None:
            out.append(["delegate", path, None])
            node(tree.nodes[c.delegate])
        elif c.boundLeaf is not None:
            out.append(["leaf", path, show(c.boundLeaf.id)])
        elif c.pathLeaf is not None:
            out.append(["leaf", path, show(c.pathLeaf)])
        elif c.alt is not None:
            out.append(["alt", path, None])
            for i in c.alt:
                node(tree.nodes[i])
        elif c.weighted is not None:
            out.append(["union", path, None])
            for w in c.weighted:
                node(tree.nodes[w.id])
        elif c.transformation is not None:
            out.append(["transformation", path, n.dentry])
            node(tree.nodes[c.transformation.tree])
    node(tree.root)
    return out


def stamp():
    return bytes.fromhex(args.get("stamp", ""))


client = make_client(
    namer.Namer, host, port,
    proto_factory=TBinaryProtocolFactory(),
    trans_factory=TFramedTransportFactory(),
    timeout=60000,
)
try:
    if method == "bind":
        ref = namer.NameRef(stamp=stamp(), name=tpath(args["path"]), ns=args["ns"])
        bound = client.bind(namer.BindReq(dtab=args.get("dtab", ""), name=ref, clientId=[]))
        result = {"stamp": bound.stamp.hex(), "ns": bound.ns, "tree": bound_tree(bound.tree)}
    elif method == "addr":
        ref = namer.NameRef(stamp=stamp(), name=tpath(args["id"]), ns=args.get("ns", "default"))
        addr = client.addr(namer.AddrReq(name=ref, clientId=[]))
        if addr.value.bound is not None:
            addrs = sorted(
                [{"ip": ".".join(str(b) for b in a.ip), "port": a.port} for a in addr.value.bound.addresses],
                key=lambda a: (a["ip"], a["port"]),
            )
            value = {"type": "bound", "addrs": addrs}
        else:
            value = {"type": "neg"}
        result = {"stamp": addr.stamp.hex(), "value": value}
    elif method == "dtab":
        ref = client.dtab(namer.DtabReq(stamp=stamp(), ns=args["ns"], clientId=[]))
        result = {"stamp": ref.stamp.hex(), "dtab": ref.dtab}
    elif method == "delegate":
        path = tpath(args["path"])
        root = namer.DelegateNode(path=path, dentry="", contents=namer.DelegateContents(pathLeaf=path))
        delegation = namer.Delegation(stamp=b"", tree=namer.DelegateTree(root=root, nodes={}), ns=args["ns"])
        answer = client.delegate(namer.DelegateReq(dtab=args.get("dtab", ""), delegation=delegation, clientId=[]))
        result = {"ns": answer.ns, "tree": delegate_tree(answer.tree)}
    else:
        raise SystemExit("unknown method " + method)
    print(json.dumps({"ok": result}))
except (namer.BindFailure, namer.AddrFailure, namer.DelegationFailure, namer.DtabFailure) as e:
    print(json.dumps({"failure": {"type": type(e).__name__, "reason": e.reason}}))
except TApplicationException as e:
    print(json.dumps({"error": "TApplicationException: %s" % e.message}))
except Exception as e:  # noqa: BLE001 - the test reports what happened
    print(json.dumps({"error": "%s: %s" % (type(e).__name__, e)}))
sys.stdout.flush()
