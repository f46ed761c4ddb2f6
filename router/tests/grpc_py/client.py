"""A gRPC client on grpcio (gRPC's C core), not on Rust's HTTP/2: calls
through the router given as host:port, and prints what came back as one
JSON line. Messages are raw bytes; the test's backend echoes each one."""

import concurrent.futures
import json
import sys

import grpc

target = sys.argv[1]
channel = grpc.insecure_channel(target)
grpc.channel_ready_future(channel).result(timeout=10)
raw = dict(request_serializer=lambda m: m, response_deserializer=lambda m: m)
unary = channel.unary_unary("/echo.Echo/Unary", **raw)
bidi = channel.stream_stream("/echo.Echo/Chat", **raw)

# Unary calls, many at once on the channel's one connection.
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    answers = list(pool.map(lambda i: unary(b"call %d" % i, timeout=10), range(300)))
unary_ok = sum(1 for i, a in enumerate(answers) if a == b"call %d" % i)

# A bidirectional stream: small messages and one larger than every
# HTTP/2 window on the way.
sent = [b"one", b"two", b"x" * 3_000_000, b"four"]
received = list(bidi(iter(sent), timeout=30))

print(json.dumps({
    "unary_ok": unary_ok,
    "stream_lengths": [len(m) for m in received],
    "stream_equal": received == sent,
}))
