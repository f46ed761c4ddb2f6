#!/usr/bin/env bash
# User-space instructions per proxied request, counted by valgrind's
# callgrind: unlike requests/s and CPU time on a shared machine, the count
# barely moves between runs, so it shows what a change to the request path
# is worth.
#
#   examples/scripts/router_instructions.sh [ROUTER_BIN] [SECONDS]
#   examples/scripts/router_instructions.sh nginx [SECONDS]
#
# TOP_EXTRA, if set, is added at the top level of the router's config (a
# telemetry list, say).
# ROUTER_EXTRA, if set, is added to the router's entry in its config (YAML
# lines indented by two spaces), e.g. a client or service block to measure
# what those features cost.
#
# SERVICES=N (default 1) spreads the requests over N names, /svc/s0 …,
# each bound by io.l5d.fs to ten loopback addresses of the upstream, every
# one asked once before counting: the router's per-service state then
# no longer sits in the CPU's caches. ENDPOINTS=N binds each name to N
# loopback addresses instead (127.0.0.1 onwards, 250 per /24), as
# `conn_loadtest --scenario endpoints` does with 1,000.
# CLOSE=1 sends every request with `Connection: close`: one client
# connection per request, as `loadtest --scenario newconn`.
# PROTOCOL=h2 measures an `h2` router instead: prior-knowledge HTTP/2 on
# both sides (nginx's upstream listens with `http2`), the load from h2load
# (Debian's nghttp2-client), 10 connections with 10 streams in flight each,
# REQUESTS (default 20000) requests; SECONDS is then unused.
# PROTOCOL=grpc measures an `h2` router carrying gRPC unary calls (named
# by service, `io.l5d.header.path` with one segment), between the gRPC
# server and client of the h2 load harness (H2_LOADTEST, default
# target/release/h2_loadtest): 10 connections with 10 calls in flight
# each, for SECONDS; the count is per call.
# BODY=N sends each HTTP/1.1 request as a POST with an N-byte body (and
# a Content-Length), as `loadtest --scenario post16k` does with 16384.
# CACHE_SIM=1 also simulates the caches (valgrind's --cache-sim) and
# prints first-level and last-level data cache misses per request.
#
# The second form counts the same for nginx as a reverse proxy (one
# worker, upstream keep-alive), the reference the router is held to.
#
# Needs nginx (the upstream), wrk, valgrind and python3. Prints the
# instruction count per request and keeps the profile (for
# callgrind_annotate or kcachegrind) in the work directory it names.
set -euo pipefail

router_bin=${1:-target/release/router}
seconds=${2:-5}
services=${SERVICES:-1}
protocol=${PROTOCOL:-http}
case "$protocol" in http | h2 | grpc) ;; *) echo "PROTOCOL is http, h2 or grpc" >&2; exit 2 ;; esac
h2_loadtest=$(realpath "${H2_LOADTEST:-target/release/h2_loadtest}")
[ "$router_bin" = nginx ] || router_bin=$(realpath "$router_bin")
# (nginx proxies plain HTTP/2 to an upstream only over HTTP/1.1.)
[ "$protocol" != http ] && [ "$router_bin" = nginx ] && { echo "PROTOCOL=$protocol is for the router" >&2; exit 2; }
[ "$protocol" = grpc ] && { [ -x "$h2_loadtest" ] || { echo "PROTOCOL=grpc needs $h2_loadtest (cargo build --release -p examples --bin h2_loadtest)" >&2; exit 2; }; }
load_tool=wrk
[ "$protocol" = h2 ] && load_tool=h2load
[ "$protocol" = grpc ] && load_tool=true
for tool in nginx "$load_tool" valgrind callgrind_control python3 curl taskset; do
  command -v "$tool" >/dev/null || { echo "needs $tool on the PATH" >&2; exit 2; }
done

work=$(mktemp -d /tmp/router-instructions.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
upstream_port=$(free_port)
router_port=$(free_port)
admin_port=$(free_port)

mkdir -p "$work/nginx"
# nginx_conf NAME HTTP_BLOCK_BODY [TOP_LINES]: a one-worker, foreground nginx
# config whose files all stay under $work.
nginx_conf() {
  cat > "$work/$1.conf" <<CONF
${3:-}
worker_processes 1;
daemon off;
pid $work/$1.pid;
error_log $work/$1-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx; proxy_temp_path $work/nginx;
  fastcgi_temp_path $work/nginx; uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
  keepalive_requests 1000000;
  $2
}
CONF
}
# (Every loopback address: the services' endpoints are 127.0.0.1 to .10.)
upstream_listen="listen $upstream_port;"
# nginx serves HTTP/2 on a plain listener with prior knowledge only, as the
# router's h2 client speaks it.
[ "$protocol" = h2 ] && upstream_listen="listen $upstream_port http2; http2_max_concurrent_streams 1000;"
nginx_conf upstream "server { $upstream_listen location / { return 200 \"ok\"; } }"
# nginx as the proxy under test: no master process, so valgrind follows the
# worker itself.
nginx_conf proxy "upstream up { server 127.0.0.1:$upstream_port; keepalive 128; }
  server {
    listen 127.0.0.1:$router_port;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
  }" "master_process off;"

endpoints=${ENDPOINTS:-}
if [ "$services" -gt 1 ] || [ -n "$endpoints" ]; then
  [ "$router_bin" != nginx ] || { echo "SERVICES and ENDPOINTS are for the router" >&2; exit 2; }
  mkdir -p "$work/disco"
  for ((s = 0; s < services; s++)); do
    for ((e = 0; e < ${endpoints:-10}; e++)); do
      echo "127.0.$((e / 250)).$((e % 250 + 1)) $upstream_port"
    done > "$work/disco/s$s"
  done
  namers="namers:
- kind: io.l5d.fs
  rootDir: $work/disco"
  dtab="/svc => /#/io.l5d.fs;"
else
  namers=""
  dtab="/svc => /\$/inet/127.0.0.1/$upstream_port"
fi
router_protocol=$protocol
identifier=""
if [ "$protocol" = grpc ]; then
  router_protocol=h2
  identifier="  identifier: {kind: io.l5d.header.path, segments: 1}"
fi
close_field=""
[ "${CLOSE:-0}" = 1 ] && close_field=', Connection = "close"'
body_bytes=${BODY:-0}
cat > "$work/hosts.lua" <<LUA
local n = 0
local body = nil
local method = "GET"
if $body_bytes > 0 then
  body = string.rep("x", $body_bytes)
  method = "POST"
end
request = function()
  n = n + 1
  return wrk.format(method, "/", { Host = "s" .. (n % $services)$close_field }, body)
end
LUA

cat > "$work/router.yaml" <<CONF
admin:
  ip: 127.0.0.1
  port: $admin_port
${TOP_EXTRA:-}
$namers
routers:
- protocol: $router_protocol
$identifier
  dtab: "$dtab"
${ROUTER_EXTRA:-}
  servers:
  - ip: 127.0.0.1
    port: $router_port
CONF

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT

if [ "$protocol" = grpc ]; then
  "$h2_loadtest" grpc-server --addr "127.0.0.1:$upstream_port" --messages 1 --size 4 &
else
  nginx -p "$work" -c "$work/upstream.conf" -e "$work/upstream-error.log" &
fi
pids+=($!)
if [ "$router_bin" = nginx ]; then
  proxy=(nginx -p "$work" -c "$work/proxy.conf" -e "$work/proxy-error.log")
else
  proxy=("$router_bin" "$work/router.yaml")
fi
# One CPU, as in the load harness: the router then runs single-threaded.
cache_sim=()
[ "${CACHE_SIM:-0}" = 1 ] && cache_sim=(--cache-sim=yes)
taskset -c 0 valgrind --tool=callgrind "${cache_sim[@]}" --callgrind-out-file="$work/callgrind.out" \
  "${proxy[@]}" >"$work/router.log" 2>&1 &
router_pid=$!
pids+=($router_pid)

url=http://127.0.0.1:$router_port/
probe=(curl -sf -o /dev/null -H "Host: s0")
probe_url=$url
[ "$protocol" != http ] && probe+=(--http2-prior-knowledge)
[ "$protocol" = grpc ] && probe_url=${url}bench.Echo/Unary
for _ in $(seq 1 300); do
  "${probe[@]}" "$probe_url" && break
  sleep 0.1
done
"${probe[@]}" "$probe_url" || { echo "the router did not start; see $work/router.log" >&2; exit 1; }
if [ "$services" -gt 1 ]; then
  # Every name once (`next` starts a new transfer with its own header).
  for ((s = 0; s < services; s++)); do
    [ "$s" -gt 0 ] && echo next
    printf 'url = "%s"\nheader = "Host: s%d"\noutput = "/dev/null"\n' "$url" "$s"
  done > "$work/curl.cfg"
  curl -s --no-progress-meter --parallel --parallel-max 10 -K "$work/curl.cfg"
fi

# h2load's count of the requests answered 2xx or 3xx.
h2load_succeeded() { awk '/^requests:/ {for (i = 1; i < NF; i++) if ($(i + 1) == "succeeded,") print $i}'; }

# Warm the caches and connection pools, then count.
grpc_calls() {
  "$h2_loadtest" grpc-client --addr "127.0.0.1:$router_port" --method unary --messages 1 \
    --connections 10 --streams 10 --secs "$1" |
    python3 -c 'import json, sys; r = json.load(sys.stdin); print(r["calls"] if r["failed"] == 0 else "failed: %s" % r)'
}
if [ "$protocol" = grpc ]; then
  grpc_calls 2 >/dev/null
  callgrind_control -z "$router_pid" >/dev/null 2>&1
  requests=$(grpc_calls "$seconds")
elif [ "$protocol" = h2 ]; then
  total_requests=${REQUESTS:-20000}
  h2load -n 2000 -c 10 -m 10 -H ':authority: s0' "$url" >/dev/null
  callgrind_control -z "$router_pid" >/dev/null 2>&1
  requests=$(h2load -n "$total_requests" -c 10 -m 10 -H ':authority: s0' "$url" | h2load_succeeded)
else
  wrk -t1 -c10 -d2s -s "$work/hosts.lua" "$url" >/dev/null
  callgrind_control -z "$router_pid" >/dev/null 2>&1
  requests=$(wrk -t1 -c10 -d"${seconds}s" -s "$work/hosts.lua" "$url" | awk '/requests in/ {print $1}')
fi
callgrind_control -d "$router_pid" >/dev/null 2>&1

profile=$(ls -t "$work"/callgrind.out.* | head -1)
total=$(awk '/^summary:/ {print $2}' "$profile")
echo "requests: $requests"
echo "instructions: $total"
echo "instructions per request: $((total / requests))"
if [ "${CACHE_SIM:-0}" = 1 ]; then
  # summary: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw
  awk -v n="$requests" '/^summary:/ {
    printf "D1 misses per request: %.1f\nLL data misses per request: %.2f\n", ($6 + $7) / n, ($9 + $10) / n }' "$profile"
fi
echo "profile: $profile"
