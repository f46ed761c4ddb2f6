#!/usr/bin/env bash
# Writes router/link/symbol-order.txt: the router's functions that run when
# it starts, serves HTTP/1.1 and HTTP/2 and answers its admin pages, hottest
# first. router/build.rs hands the file to the linker (lld's
# --symbol-ordering-file), which then lays these functions out side by side
# at the start of the text segment.
#
#   examples/scripts/symbol_order.sh [ROUTER_BIN ...]
#
# Why: the kernel maps 64 KiB of a binary around every page a process
# touches (fault-around). Scattered over 17 MiB of code, the few MiB the
# router runs drag most of the binary into its RSS; packed together they
# take a fraction of it. Symbol names carry a hash of their crate's build
# (version, profile, target, compiler), so a list fits the build it was
# taken from. The file holds one list per binary given, by default the
# `dist` and the release builds; the linker skips the names a build does
# not have. After a compiler or dependency update, build both
# (`cargo build --profile dist -p router`, `cargo build --release -p
# router`), run this, and build them again.
#
# OUT, if set, is the file to write instead.
# Needs nginx (the upstreams), valgrind, curl, nm and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."

[ $# -gt 0 ] || set -- target/dist/router target/release/router
out=${OUT:-router/link/symbol-order.txt}
for tool in nginx valgrind curl nm python3; do
  command -v "$tool" >/dev/null || { echo "needs $tool on the PATH" >&2; exit 2; }
done

work=$(mktemp -d /tmp/symbol-order.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
h1_upstream=$(free_port)
h2_upstream=$(free_port)
h1_port=$(free_port)
h2_port=$(free_port)
admin_port=$(free_port)

mkdir -p "$work/nginx"
cat > "$work/upstream.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/upstream.pid;
error_log $work/upstream-error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $work/nginx; proxy_temp_path $work/nginx;
  fastcgi_temp_path $work/nginx; uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
  server { listen 127.0.0.1:$h1_upstream; location / { return 200 "ok"; } }
  server { listen 127.0.0.1:$h2_upstream http2; location / { return 200 "ok"; } }
}
CONF

cat > "$work/router.yaml" <<CONF
admin:
  ip: 127.0.0.1
  port: $admin_port
routers:
- protocol: http
  dtab: "/svc => /\$/inet/127.0.0.1/$h1_upstream"
  servers:
  - ip: 127.0.0.1
    port: $h1_port
- protocol: h2
  dtab: "/svc => /\$/inet/127.0.0.1/$h2_upstream"
  servers:
  - ip: 127.0.0.1
    port: $h2_port
CONF

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT

nginx -p "$work" -c "$work/upstream.conf" -e "$work/upstream-error.log" &
pids+=($!)
head -c 16384 /dev/zero > "$work/body"

# profile BIN OUT: runs BIN under callgrind through start-up and the
# requests below, and leaves callgrind's output in OUT.
profile() {
  local bin=$1 callgrind_out=$2
  valgrind --tool=callgrind --demangle=no --callgrind-out-file="$callgrind_out" \
    "$bin" "$work/router.yaml" >"$work/router.log" 2>&1 &
  router_pid=$!
  pids+=($router_pid)

  h1=(curl -sSf -o /dev/null -H "Host: web")
  h2=("${h1[@]}" --http2-prior-knowledge)
  for _ in $(seq 1 600); do
    curl -sf -o /dev/null -H "Host: web" "http://127.0.0.1:$h1_port/" && break
    sleep 0.1
  done
  "${h1[@]}" "http://127.0.0.1:$h1_port/" || { echo "the router did not start; see $work/router.log" >&2; exit 1; }

  for _ in 1 2 3; do
    # Keep-alive GETs, a POST with a length, a chunked POST, then HTTP/2
    # (one request per connection: curl 7.88 fails a second one on an h2c
    # connection, whoever the server).
    "${h1[@]}" -o /dev/null "http://127.0.0.1:$h1_port/a" "http://127.0.0.1:$h1_port/b"
    "${h1[@]}" --data-binary @"$work/body" "http://127.0.0.1:$h1_port/post"
    "${h1[@]}" -H "Transfer-Encoding: chunked" --data-binary @"$work/body" "http://127.0.0.1:$h1_port/chunked"
    "${h2[@]}" "http://127.0.0.1:$h2_port/a"
    "${h2[@]}" --data-binary @"$work/body" "http://127.0.0.1:$h2_port/post"
    for page in ping metrics.json metrics/prometheus; do
      "${h1[@]}" "http://127.0.0.1:$admin_port/admin/$page"
    done
  done

  kill -TERM "$router_pid"
  wait "$router_pid" 2>/dev/null || true
  [ -s "$callgrind_out" ] || { echo "no profile; see $work/router.log" >&2; exit 1; }
}

lists=()
for bin in "$@"; do
  n=${#lists[@]}
  profile "$(realpath "$bin")" "$work/callgrind-$n.out"
  nm --defined-only "$bin" > "$work/symbols-$n"
  lists+=("$work/callgrind-$n.out" "$work/symbols-$n")
done

mkdir -p "$(dirname "$out")"
python3 - "$out" "${lists[@]}" <<'PY'
import re, sys
out, lists = sys.argv[1], sys.argv[2:]

def functions_that_ran(profile, symbols):
    """The binary's functions in the profile, most instructions first."""
    code = set()
    for line in open(symbols):
        fields = line.split()
        if len(fields) == 3 and fields[1] in "tTwW":
            code.add(fields[2])
    # Each function's own instructions (callgrind's exclusive cost): cost lines
    # follow `fn=`; the line after `calls=` is a call's inclusive cost, skipped.
    names, cost, current, skip = {}, {}, None, False
    for line in open(profile):
        if skip:
            skip = False
            continue
        m = re.match(r"(c?fn)=\((\d+)\)(?: (.+))?", line)
        if m:
            if m.group(3):
                names[m.group(2)] = m.group(3).strip()
            if m.group(1) == "fn":
                current = names.get(m.group(2))
                cost.setdefault(current, 0)
            continue
        if line.startswith("calls="):
            skip = True
            continue
        if current and line[:1] in "0123456789+-*":
            fields = line.split()
            if len(fields) >= 2 and fields[-1].isdigit():
                cost[current] += int(fields[-1])
    return sorted((n for n in cost if n in code), key=lambda n: -cost[n])


ordered, seen = [], set()
for i in range(0, len(lists), 2):
    names = functions_that_ran(lists[i], lists[i + 1])
    print(f"{len(names)} functions of build {i // 2 + 1}")
    for name in names:
        if name not in seen:
            seen.add(name)
            ordered.append(name)
with open(out, "w") as f:
    f.write("# The router's functions that run at start and on HTTP/1.1, HTTP/2 and\n")
    f.write("# admin requests, hottest first, for lld's --symbol-ordering-file.\n")
    f.write("# Written by examples/scripts/symbol_order.sh; see router/build.rs.\n")
    f.write("\n".join(ordered) + "\n")
print(f"{len(ordered)} names written to {out}")
PY
rm -rf "$work"
