"""A deliberately minimal mesh server (grpcio), written from Linkerd's
protos alone, for testing mesh clients against a server that is not
namerd. It serves Interpreter.GetBoundTree/StreamBoundTree,
Resolver.GetReplicas/StreamReplicas and Delegator.GetDtab from a JSON
state file, and pushes new values on open streams when the file changes.

Usage: minimal_server.py STUB_DIR STATE_FILE. Prints "PORT <n>" once
listening on 127.0.0.1.

The state file:
  {"dtabs":    {"<ns>": {"version": "<text>", "dtab": "/svc=>/#/io.l5d.fs"}},
   "trees":    {"<ns> <name>": <bound tree in /api/1/bind JSON, no addrs>},
   "replicas": {"<bound id>": <address in /api/1/addr JSON>}}

What it leaves out: a request's own dtab is ignored (trees are looked up
by namespace and name only); an unknown name binds to Neg and an unknown
id resolves to Neg; the Codec service and the rest of the Delegator answer
UNIMPLEMENTED. Messages it cannot build from the state end the call with
INTERNAL."""

import json
import os
import sys
import threading
import time
from concurrent import futures

import grpc

import stubs as S

stub_dir, state_path = sys.argv[1], sys.argv[2]
pb = S.load(stub_dir)


class State:
    def __init__(self):
        self.cond = threading.Condition()
        self.doc = {}
        self.mtime = None
        self.generation = 0
        self.reload()

    def reload(self):
        try:
            st = os.stat(state_path)
            mtime = (st.st_ino, st.st_mtime_ns)
        except FileNotFoundError:
            return
        if mtime == self.mtime:
            return
        with open(state_path) as f:
            try:
                doc = json.load(f)
            except ValueError:
                return  # half written: the next poll reads it whole
        with self.cond:
            self.doc, self.mtime = doc, mtime
            self.generation += 1
            self.cond.notify_all()

    def poll(self):
        while True:
            time.sleep(0.05)
            self.reload()

    def wait(self, generation, timeout=0.5):
        with self.cond:
            self.cond.wait_for(lambda: self.generation != generation, timeout)
            return self.generation, self.doc


STATE = State()


def root_ns(req):
    if not req.HasField("root") or len(req.root.elems) != 1:
        return None
    return req.root.elems[0].decode("utf-8", "replace")


def tree_for(doc, req):
    key = "%s %s" % (root_ns(req), S.show_path(req.name))
    found = doc.get("trees", {}).get(key, {"type": "neg"})
    return pb["interpreter"].BoundTreeRsp(tree=S.bound_tree_msg(pb, found))


def replicas_for(doc, req):
    found = doc.get("replicas", {}).get(S.show_path(req.id), {"type": "neg"})
    return S.replicas_msg(pb, found)


def follow(context, value_of):
    """The current value, then each different one, while the call lasts."""
    generation, doc = STATE.generation, STATE.doc
    last = None
    while context.is_active():
        value = value_of(doc)
        if value != last:
            last = value
            yield value
        generation, doc = STATE.wait(generation)


class Interpreter(pb["interpreter_grpc"].InterpreterServicer):
    def GetBoundTree(self, req, context):
        if root_ns(req) is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "root must be one element")
        return tree_for(STATE.doc, req)

    def StreamBoundTree(self, req, context):
        if root_ns(req) is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "root must be one element")
        yield from follow(context, lambda doc: tree_for(doc, req))


class Resolver(pb["resolver_grpc"].ResolverServicer):
    def GetReplicas(self, req, context):
        return replicas_for(STATE.doc, req)

    def StreamReplicas(self, req, context):
        yield from follow(context, lambda doc: replicas_for(doc, req))


class Delegator(pb["delegator_grpc"].DelegatorServicer):
    def GetDtab(self, req, context):
        ns = root_ns(req)
        found = STATE.doc.get("dtabs", {}).get(ns) if ns is not None else None
        if found is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "namespace %s does not exist" % ns)
        from google.protobuf import json_format
        dtab = json_format.ParseDict(S.dtab_json(found["dtab"]), pb["dtab"].Dtab())
        version = pb["dtab"].VersionedDtab.Version(id=found.get("version", "").encode())
        return pb["delegator"].DtabRsp(dtab=pb["dtab"].VersionedDtab(version=version, dtab=dtab))


server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
pb["interpreter_grpc"].add_InterpreterServicer_to_server(Interpreter(), server)
pb["resolver_grpc"].add_ResolverServicer_to_server(Resolver(), server)
pb["delegator_grpc"].add_DelegatorServicer_to_server(Delegator(), server)
port = server.add_insecure_port("127.0.0.1:0")
server.start()
threading.Thread(target=STATE.poll, daemon=True).start()
print("PORT %d" % port, flush=True)
server.wait_for_termination()
