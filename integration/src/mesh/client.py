"""An independent mesh client (grpcio), driven by JSON lines on stdin.

Usage: client.py STUB_DIR HOST:PORT [CA_PEM SERVER_NAME]  (with the last
two, over TLS)

Each command is {"tag", "method": "Service/Method", "req": {...}} where
"req" is proto JSON, except that "root", "name", "id" and "path" may be
written as '/a/b' text and "dtab" as 'prefix=>dst;...' text. A unary call
prints {"tag", "kind": "ok", "value"} or {"tag", "kind": "error", "code",
"details"}; a stream prints {"tag", "kind": "msg", "value"} per message and
{"tag", "kind": "end", "code", "details"} at its end. {"cancel": tag}
cancels a stream. Values are in the HTTP API's JSON shapes (stubs.py)."""

import json
import sys
import threading

import grpc
from google.protobuf import json_format

import stubs as S

stub_dir, target = sys.argv[1], sys.argv[2]
pb = S.load(stub_dir)
if len(sys.argv) > 4:
    # TLS: the CA's certificate and the name the server's must carry.
    with open(sys.argv[3], "rb") as f:
        credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
    channel = grpc.secure_channel(
        target, credentials, options=[("grpc.ssl_target_name_override", sys.argv[4])])
else:
    channel = grpc.insecure_channel(target)
services = {
    "Interpreter": pb["interpreter_grpc"].InterpreterStub(channel),
    "Resolver": pb["resolver_grpc"].ResolverStub(channel),
    "Delegator": pb["delegator_grpc"].DelegatorStub(channel),
    "Codec": pb["codec_grpc"].CodecStub(channel),
}
requests = {
    "GetBoundTree": pb["interpreter"].BindReq,
    "StreamBoundTree": pb["interpreter"].BindReq,
    "GetReplicas": pb["resolver"].ReplicasReq,
    "StreamReplicas": pb["resolver"].ReplicasReq,
    "GetDtab": pb["delegator"].DtabReq,
    "StreamDtab": pb["delegator"].DtabReq,
    "GetDelegateTree": pb["delegator"].DelegateTreeReq,
    "StreamDelegateTree": pb["delegator"].DelegateTreeReq,
    "ReadDtab": pb["codec"].ReadDtabReq,
    "ShowDtab": pb["codec"].ShowDtabReq,
    "ReadPath": pb["codec"].ReadPathReq,
    "ShowPath": pb["codec"].ShowPathReq,
}


def render(method, rsp):
    if method.endswith("BoundTree"):
        return S.bound_tree(rsp.tree)
    if method.endswith("Replicas"):
        return S.replicas(rsp)
    if method.endswith("Dtab") and method in ("GetDtab", "StreamDtab"):
        return {"version": json_format.MessageToDict(rsp.dtab.version).get("id", ""),
                "dtab": S.show_dtab(rsp.dtab.dtab)}
    if method.endswith("DelegateTree"):
        return S.delegate_tree(rsp.tree)
    if method == "ReadDtab":
        return S.show_dtab(rsp.dtab)
    if method == "ReadPath":
        return S.show_path(rsp.path)
    return rsp.text


def build(method, req):
    req = dict(req)
    for key in ("root", "name", "id", "path"):
        if isinstance(req.get(key), str):
            req[key] = S.path_json(req[key])
    if isinstance(req.get("dtab"), str):
        req["dtab"] = S.dtab_json(req["dtab"])
    if isinstance(req.get("tree"), str):
        req["tree"] = S.tree_json(req["tree"])
    return json_format.ParseDict(req, requests[method]())


out_lock = threading.Lock()


def emit(doc):
    with out_lock:
        sys.stdout.write(json.dumps(doc) + "\n")
        sys.stdout.flush()


def failure(tag, kind, e):
    emit({"tag": tag, "kind": kind, "code": e.code().name, "details": e.details()})


streams = {}


def follow(tag, method, call):
    try:
        for rsp in call:
            emit({"tag": tag, "kind": "msg", "value": render(method, rsp)})
        emit({"tag": tag, "kind": "end", "code": "OK", "details": ""})
    except grpc.RpcError as e:
        failure(tag, "end", e)


for line in sys.stdin:
    cmd = json.loads(line)
    if "cancel" in cmd:
        call = streams.pop(cmd["cancel"], None)
        if call is not None:
            call.cancel()
        continue
    tag = cmd["tag"]
    service, method = cmd["method"].split("/")
    stub = getattr(services[service], method)
    try:
        req = build(method, cmd.get("req", {}))
    except Exception as e:  # a test's own mistake: say so
        emit({"tag": tag, "kind": "error", "code": "CLIENT", "details": repr(e)})
        continue
    if method.startswith("Stream"):
        call = stub(req)
        streams[tag] = call
        threading.Thread(target=follow, args=(tag, method, call), daemon=True).start()
    else:
        try:
            emit({"tag": tag, "kind": "ok", "value": render(method, stub(req, timeout=15))})
        except grpc.RpcError as e:
            failure(tag, "error", e)
