"""A client of the Echo service (echo.thrift), written with thriftpy2,
that keeps one connection and makes the calls it reads from stdin.

    python3 client.py IDL HOST PORT PROTOCOL TRANSPORT

Each line of stdin is a JSON call, {"method": "echo", "args": ["hi"]}, or
{"method": "roundtrip"} (a Thing of every type, sent and compared with
what comes back), or {"method": "reconnect"}. Each answer is one JSON
line: {"ok": result}, {"app_error": {"type": n, "message": text}} (a
TApplicationException), {"oops": why} (the declared exception) or
{"error": text} (a transport error; the connection is closed then).
"""
import json
import sys

import thriftpy2
from thriftpy2.protocol import TBinaryProtocolFactory, TCompactProtocolFactory
from thriftpy2.rpc import make_client
from thriftpy2.thrift import TApplicationException
from thriftpy2.transport import TBufferedTransportFactory, TFramedTransportFactory

idl, host, port, protocol, transport = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
echo = thriftpy2.load(idl, module_name="echo_thrift")


def connect():
    return make_client(
        echo.Echo, host, port,
        proto_factory=TCompactProtocolFactory() if protocol == "compact" else TBinaryProtocolFactory(),
        trans_factory=TFramedTransportFactory() if transport == "framed" else TBufferedTransportFactory(),
        timeout=20000,
    )


def thing():
    """A Thing of every type, edge values included."""
    child = echo.Thing(id=-7, name="", values=[], scores={}, flag=False, tags=[], blob=b"", small=0, other=True, bits=[])
    return echo.Thing(
        id=2 ** 31 - 1,
        name="thing \u00e9" * 50,
        values=[-(2 ** 63), 2 ** 63 - 1, 0, 1, -1] + list(range(20)),
        scores={"a": 1.5, "b": -0.0, "c": 1e300},
        flag=True,
        tags=[-32768, 0, 5, 32767],  # thriftpy2 reads sets as lists
        child=child,
        blob=bytes(range(256)) * 40,
        small=-128,
        other=False,
        bits=[True, False] * 9,
    )


client = connect()
for line in sys.stdin:
    call = json.loads(line)
    method = call["method"]
    try:
        if method == "reconnect":
            client.close()
            client = connect()
            result = None
        elif method == "roundtrip":
            sent = thing()
            result = client.roundtrip(sent) == sent
        else:
            result = getattr(client, method)(*call.get("args", []))
        answer = {"ok": result}
    except echo.Oops as e:
        answer = {"oops": e.why}
    except TApplicationException as e:
        answer = {"app_error": {"type": e.type, "message": e.message}}
    except Exception as e:  # noqa: BLE001 - the test reports what happened
        answer = {"error": "%s: %s" % (type(e).__name__, e)}
    print(json.dumps(answer), flush=True)
