#!/usr/bin/env bash
# Failed requests when the upstream rotates its connections: nginx closing
# each connection after KEEPALIVE requests (HTTP/2 with GOAWAY, HTTP/1.1 with
# Connection: close), under h2load, through the router, through HAProxy as
# Debian configures it by default (retries 3, no retry-on), and through
# HAProxy with `retry-on all-retryable-errors`. One run each, same machine.
#
#   examples/scripts/rotation.sh ROUTER_BIN [REQUESTS] [KEEPALIVE...]
#
# Prints one line per (protocol, keepalive_requests, proxy) with h2load's
# counts: 10 connections, 10 streams each for h2c, one request at a time
# each for HTTP/1.1. Needs nginx, haproxy, h2load (nghttp2-client) and python3.
set -euo pipefail

router_bin=$(realpath "${1:?ROUTER_BIN}")
requests=${2:-200000}
shift 2 || true
keepalives=("${@:-1000 100}")
# shellcheck disable=SC2206
keepalives=(${keepalives[*]})
for tool in nginx haproxy h2load python3; do
  command -v "$tool" >/dev/null || { echo "needs $tool on the PATH" >&2; exit 2; }
done

work=$(mktemp -d /tmp/rotation.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

run_h2load() { # label, extra args..., url
  local label=$1; shift
  local line
  line=$(h2load -n "$requests" -c 10 -H ':authority: web' "$@" 2>&1 | grep -E '^requests:' || true)
  printf '%-44s %s\n' "$label" "${line:-h2load printed no summary}"
}

for keepalive in "${keepalives[@]}"; do
  h2c=$(free_port); h1=$(free_port)
  cat > "$work/nginx-$keepalive.conf" <<CONF
master_process off;
worker_processes 1;
daemon off;
pid $work/nginx-$keepalive.pid;
error_log $work/nginx-$keepalive-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/body; proxy_temp_path $work/proxy;
  fastcgi_temp_path $work/fastcgi; uwsgi_temp_path $work/uwsgi; scgi_temp_path $work/scgi;
  keepalive_requests $keepalive;
  server { listen 127.0.0.1:$h2c http2; location / { return 200 "ok\n"; } }
  server { listen 127.0.0.1:$h1; location / { return 200 "ok\n"; } }
}
CONF
  nginx -c "$work/nginx-$keepalive.conf" -p "$work" & pids+=($!)
  wait_port "$h2c"; wait_port "$h1"

  r_h2=$(free_port); r_h1=$(free_port); admin=$(free_port)
  cat > "$work/router-$keepalive.yaml" <<CONF
admin: {port: $admin}
routers:
- protocol: h2
  label: h2
  dtab: /svc => /\$/inet/127.0.0.1/$h2c
  servers: [{port: $r_h2}]
- protocol: http
  label: h1
  dtab: /svc => /\$/inet/127.0.0.1/$h1
  servers: [{port: $r_h1}]
CONF
  "$router_bin" "$work/router-$keepalive.yaml" >"$work/router-$keepalive.log" 2>&1 & pids+=($!)
  wait_port "$r_h2"

  hp_plain=$(free_port); hp_retry=$(free_port); hp_plain1=$(free_port); hp_retry1=$(free_port)
  cat > "$work/haproxy-$keepalive.cfg" <<CONF
global
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  retries 3
frontend plain
  bind 127.0.0.1:$hp_plain proto h2
  default_backend h2c_plain
frontend retry
  bind 127.0.0.1:$hp_retry proto h2
  default_backend h2c_retry
frontend plain1
  bind 127.0.0.1:$hp_plain1
  default_backend h1_plain
frontend retry1
  bind 127.0.0.1:$hp_retry1
  default_backend h1_retry
backend h2c_plain
  server s 127.0.0.1:$h2c proto h2
backend h2c_retry
  retry-on all-retryable-errors
  server s 127.0.0.1:$h2c proto h2
backend h1_plain
  server s 127.0.0.1:$h1
backend h1_retry
  retry-on all-retryable-errors
  server s 127.0.0.1:$h1
CONF
  haproxy -f "$work/haproxy-$keepalive.cfg" >"$work/haproxy-$keepalive.log" 2>&1 & pids+=($!)
  wait_port "$hp_plain"

  run_h2load "h2c, keepalive_requests $keepalive, router" -m 10 "http://127.0.0.1:$r_h2/"
  run_h2load "h2c, keepalive_requests $keepalive, haproxy" -m 10 "http://127.0.0.1:$hp_plain/"
  run_h2load "h2c, keepalive_requests $keepalive, haproxy retry-on" -m 10 "http://127.0.0.1:$hp_retry/"
  run_h2load "http/1.1, keepalive_requests $keepalive, router" --h1 "http://127.0.0.1:$r_h1/"
  run_h2load "http/1.1, keepalive_requests $keepalive, haproxy" --h1 "http://127.0.0.1:$hp_plain1/"
  run_h2load "http/1.1, keepalive_requests $keepalive, haproxy retry-on" --h1 "http://127.0.0.1:$hp_retry1/"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
done
