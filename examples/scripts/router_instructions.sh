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
# The second form counts the same for nginx as a reverse proxy (one
# worker, upstream keep-alive), the reference the router is held to.
#
# Needs nginx (the upstream), wrk, valgrind and python3. Prints the
# instruction count per request and keeps the profile (for
# callgrind_annotate or kcachegrind) in the work directory it names.
set -euo pipefail

router_bin=${1:-target/release/router}
seconds=${2:-5}
[ "$router_bin" = nginx ] || router_bin=$(realpath "$router_bin")
for tool in nginx wrk valgrind callgrind_control python3 curl taskset; do
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
nginx_conf upstream "server { listen 127.0.0.1:$upstream_port; location / { return 200 \"ok\"; } }"
# nginx as the proxy under test: no master process, so valgrind follows the
# worker itself.
nginx_conf proxy "upstream up { server 127.0.0.1:$upstream_port; keepalive 128; }
  server {
    listen 127.0.0.1:$router_port;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
  }" "master_process off;"

cat > "$work/router.yaml" <<CONF
admin:
  ip: 127.0.0.1
  port: $admin_port
${TOP_EXTRA:-}
routers:
- protocol: http
  dtab: "/svc => /\$/inet/127.0.0.1/$upstream_port"
${ROUTER_EXTRA:-}
  servers:
  - ip: 127.0.0.1
    port: $router_port
CONF

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT

nginx -p "$work" -c "$work/upstream.conf" -e "$work/upstream-error.log" &
pids+=($!)
if [ "$router_bin" = nginx ]; then
  proxy=(nginx -p "$work" -c "$work/proxy.conf" -e "$work/proxy-error.log")
else
  proxy=("$router_bin" "$work/router.yaml")
fi
# One CPU, as in the load harness: the router then runs single-threaded.
taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" \
  "${proxy[@]}" >"$work/router.log" 2>&1 &
router_pid=$!
pids+=($router_pid)

url=http://127.0.0.1:$router_port/
for _ in $(seq 1 300); do
  curl -sf -o /dev/null "$url" && break
  sleep 0.1
done
curl -sf -o /dev/null "$url" || { echo "the router did not start; see $work/router.log" >&2; exit 1; }

wrk -t1 -c10 -d2s "$url" >/dev/null # warm the caches and connection pools
callgrind_control -z "$router_pid" >/dev/null 2>&1
requests=$(wrk -t1 -c10 -d"${seconds}s" "$url" | awk '/requests in/ {print $1}')
callgrind_control -d "$router_pid" >/dev/null 2>&1

profile=$(ls -t "$work"/callgrind.out.* | head -1)
total=$(awk '/^summary:/ {print $2}' "$profile")
echo "requests: $requests"
echo "instructions: $total"
echo "instructions per request: $((total / requests))"
echo "profile: $profile"
