"""A backend of the Echo service (echo.thrift), written with thriftpy2.

    python3 server.py IDL NAME PROTOCOL TRANSPORT

PROTOCOL is binary or compact, TRANSPORT framed or buffered. echo answers
"NAME:text", whoami "NAME", roundtrip its argument, note keeps its text
for notes, fail raises Oops. Prints `PORT <n>` once it listens on
127.0.0.1.
"""
import sys
import threading

import thriftpy2
from thriftpy2.protocol import TBinaryProtocolFactory, TCompactProtocolFactory
from thriftpy2.server import TThreadedServer
from thriftpy2.thrift import TProcessor
from thriftpy2.transport import TBufferedTransportFactory, TFramedTransportFactory, TServerSocket

idl, name, protocol, transport = sys.argv[1:5]
echo = thriftpy2.load(idl, module_name="echo_thrift")
lock = threading.Lock()
noted = []


class Handler:
    def echo(self, text):
        return "%s:%s" % (name, text)

    def whoami(self):
        return name

    def roundtrip(self, thing):
        return thing

    def note(self, text):
        with lock:
            noted.append(text)

    def notes(self):
        with lock:
            return list(noted)

    def fail(self, why):
        raise echo.Oops(why=why)


sock = TServerSocket(host="127.0.0.1", port=0, client_timeout=0)
sock.listen()
sock.listen = lambda: None
print("PORT %d" % sock.sock.getsockname()[1], flush=True)
TThreadedServer(
    TProcessor(echo.Echo, Handler()),
    sock,
    iprot_factory=TCompactProtocolFactory() if protocol == "compact" else TBinaryProtocolFactory(),
    itrans_factory=TFramedTransportFactory() if transport == "framed" else TBufferedTransportFactory(),
    daemon=True,
).serve()
