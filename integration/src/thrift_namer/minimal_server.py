"""A deliberately minimal Namer server (Linkerd's namer.thrift), written
from the IDL alone with thriftpy2, framed binary Thrift: what the router's
namerd interpreter can be tested against without namerd.

    python3 minimal_server.py IDL STATE_JSON

It serves what STATE_JSON holds and re-reads the file when it changes
(checked every 50 ms):

    {"trees": {"<ns> <path>": TREE},     # TREE: {"type": "leaf", "id": "/#/a",
                                          #  "residual": "/"}, {"type": "neg"},
                                          #  "empty", "fail", {"type": "alt",
                                          #  "alt": [TREE]}, {"type": "union",
                                          #  "union": [{"weight": 1, "tree": TREE}]}
     "addrs": {"<id>": [["127.0.0.1", 8080], ...] or null (neg)},
     "dtabs": {"<ns>": "<dtab text>"}}

A value gets a new stamp when it changes; a request with the current
stamp waits for the next one. Names it does not know fail with the IDL's
exceptions. It is not namerd: no dtabs are applied, no namers, no mux, no
TLS, no limits. Prints `PORT <n>` once it listens on 127.0.0.1.
"""
import json
import os
import sys
import threading
import time

import thriftpy2
from thriftpy2.protocol import TBinaryProtocolFactory
from thriftpy2.server import TThreadedServer
from thriftpy2.thrift import TProcessor
from thriftpy2.transport import TFramedTransportFactory, TServerSocket

idl, state_path = sys.argv[1], sys.argv[2]
namer = thriftpy2.load(idl, module_name="namer_thrift")

lock = threading.Condition()
values = {}  # key -> (stamp, value)
counter = [0]


def show(path):
    return "/" + "/".join(label.decode() for label in path)


def load():
    with open(state_path) as f:
        state = json.load(f)
    new = {}
    for key, tree in state.get("trees", {}).items():
        new[("tree",) + tuple(key.split(" ", 1))] = tree
    for key, addrs in state.get("addrs", {}).items():
        new[("addr", key)] = addrs
    for key, dtab in state.get("dtabs", {}).items():
        new[("dtab", key)] = dtab
    with lock:
        for key in set(values) | set(new):
            old = values.get(key)
            if key not in new:
                values.pop(key, None)
            elif old is None or old[1] != new[key]:
                counter[0] += 1
                values[key] = (counter[0].to_bytes(8, "big"), new[key])
            else:
                continue
            lock.notify_all()


def watch():
    last = None
    while True:
        try:
            mtime = os.stat(state_path).st_mtime_ns
            if mtime != last:
                last = mtime
                load()
        except (OSError, ValueError):
            pass
        time.sleep(0.05)


def observe(key, stamp):
    """The (stamp, value) of key once its stamp differs from stamp; None if unknown."""
    with lock:
        while True:
            current = values.get(key)
            if current is None:
                return None
            if current[0] != stamp:
                return current
            lock.wait()


def to_tree(tree):
    nodes = {}

    def node(t):
        kind = t["type"]
        if kind in ("neg", "empty", "fail"):
            return namer.BoundNode(**{kind: namer.Void()})
        if kind == "leaf":
            ident = [l.encode() for l in t["id"].strip("/").split("/") if l]
            residual = [l.encode() for l in t.get("residual", "/").strip("/").split("/") if l]
            return namer.BoundNode(leaf=namer.BoundName(id=ident, residual=residual))
        if kind == "alt":
            ids = []
            for child in t["alt"]:
                i = len(nodes)
                nodes[i] = None
                nodes[i] = node(child)
                ids.append(i)
            return namer.BoundNode(alt=ids)
        if kind == "union":
            ids = []
            for branch in t["union"]:
                i = len(nodes)
                nodes[i] = None
                nodes[i] = node(branch["tree"])
                ids.append(namer.WeightedNodeId(weight=float(branch["weight"]), id=i))
            return namer.BoundNode(weighted=ids)
        raise ValueError("unknown tree type " + kind)
    root = node(tree)
    return namer.BoundTree(root=root, nodes=nodes)


class Handler:
    def bind(self, req):
        key = ("tree", req.name.ns, show(req.name.name))
        found = observe(key, req.name.stamp or b"")
        if found is None:
            raise namer.BindFailure(reason="unknown name %s in %s" % (key[2], key[1]), retryInSeconds=0, name=req.name, ns=req.name.ns)
        return namer.Bound(stamp=found[0], tree=to_tree(found[1]), ns=req.name.ns)

    def addr(self, req):
        key = ("addr", show(req.name.name))
        found = observe(key, req.name.stamp or b"")
        if found is None:
            raise namer.AddrFailure(reason="unknown id %s" % key[1], retryInSeconds=0, name=req.name)
        if found[1] is None:
            return namer.Addr(stamp=found[0], value=namer.AddrVal(neg=namer.Void()))
        addresses = set()
        for ip, port in found[1]:
            addresses.add(namer.TransportAddress(ip=bytes(int(b) for b in ip.split(".")), port=port))
        return namer.Addr(stamp=found[0], value=namer.AddrVal(bound=namer.BoundAddr(addresses=addresses)))

    def dtab(self, req):
        found = observe(("dtab", req.ns), req.stamp or b"")
        if found is None:
            raise namer.DtabFailure(reason="unknown namespace %s" % req.ns)
        return namer.DtabRef(stamp=found[0], dtab=found[1])

    def delegate(self, req):
        raise namer.DelegationFailure(reason="this server does not delegate")


load()
threading.Thread(target=watch, daemon=True).start()
sock = TServerSocket(host="127.0.0.1", port=0, client_timeout=0)
sock.listen()
sock.listen = lambda: None
print("PORT %d" % sock.sock.getsockname()[1], flush=True)
server = TThreadedServer(
    TProcessor(namer.Namer, Handler()),
    sock,
    iprot_factory=TBinaryProtocolFactory(),
    itrans_factory=TFramedTransportFactory(),
    daemon=True,
)
server.serve()
