"""A scribe collector for Zipkin spans, built on thriftpy2: it decodes each
span the way Zipkin's scribe collector does and prints it as one JSON line.

    python3 collector.py IDL_DIR

Prints `PORT <n>` once it listens on 127.0.0.1, then a line per span.
"""
import base64
import json
import os
import socket
import sys

import thriftpy2
from thriftpy2.protocol import TBinaryProtocolFactory
from thriftpy2.rpc import make_server
from thriftpy2.transport import TFramedTransportFactory
from thriftpy2.utils import deserialize

idl = sys.argv[1]
scribe = thriftpy2.load(os.path.join(idl, "scribe.thrift"), module_name="scribe_thrift")
zipkin = thriftpy2.load(os.path.join(idl, "zipkinCore.thrift"), module_name="zipkinCore_thrift")


def unsigned_hex(value):
    return None if value is None else format(value & 0xFFFFFFFFFFFFFFFF, "016x")


def endpoint(host):
    if host is None:
        return None
    return {"service": host.service_name, "port": host.port & 0xFFFF, "ipv4": host.ipv4}


def text_or_base64(annotation):
    value = annotation.value
    if isinstance(value, str):
        return value
    if annotation.annotation_type == zipkin.AnnotationType.STRING:
        return value.decode("utf-8")
    return base64.b64encode(value).decode()


class Handler:
    def Log(self, messages):
        for entry in messages:
            span = deserialize(zipkin.Span(), base64.b64decode(entry.message), TBinaryProtocolFactory())
            print(json.dumps({
                "category": entry.category,
                "trace_id": unsigned_hex(span.trace_id),
                "id": unsigned_hex(span.id),
                "parent_id": unsigned_hex(span.parent_id),
                "name": span.name,
                "timestamp": span.timestamp,
                "duration": span.duration,
                "annotations": [
                    {"value": a.value, "timestamp": a.timestamp, "host": endpoint(a.host)}
                    for a in span.annotations or []
                ],
                "binary_annotations": {
                    b.key: {"type": b.annotation_type, "value": text_or_base64(b),
                            "host": endpoint(b.host)}
                    for b in span.binary_annotations or []
                },
            }), flush=True)
        return scribe.ResultCode.OK


probe = socket.socket()
probe.bind(("127.0.0.1", 0))
port = probe.getsockname()[1]
probe.close()
server = make_server(scribe.Scribe, Handler(), "127.0.0.1", port,
                     proto_factory=TBinaryProtocolFactory(),
                     trans_factory=TFramedTransportFactory())
print("PORT %d" % port, flush=True)
server.serve()
