#!/usr/bin/env bash
# CPU per proxied h2c request of two router binaries (say, before and after
# a change), through the same nginx h2c upstream, in alternating rounds.
#
#   examples/scripts/h2_cost.sh ROUTER_A ROUTER_B [REQUESTS] [ROUNDS]
#
# Each round runs h2load (10 connections x 10 streams) through each router
# in turn and prints its user+system CPU time per request (from
# /proc/PID/stat) and h2load's request rate. Needs nginx, h2load, python3.
set -euo pipefail

a_bin=$(realpath "${1:?ROUTER_A}")
b_bin=$(realpath "${2:?ROUTER_B}")
requests=${3:-200000}
rounds=${4:-3}
for tool in nginx h2load python3; do
  command -v "$tool" >/dev/null || { echo "needs $tool on the PATH" >&2; exit 2; }
done
work=$(mktemp -d /tmp/h2cost.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

upstream=$(free_port)
cat > "$work/nginx.conf" <<CONF
master_process off;
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/body; proxy_temp_path $work/proxy;
  fastcgi_temp_path $work/fastcgi; uwsgi_temp_path $work/uwsgi; scgi_temp_path $work/scgi;
  keepalive_requests 100000000;
  server { listen 127.0.0.1:$upstream http2; location / { return 200 "ok\n"; } }
}
CONF
nginx -c "$work/nginx.conf" -p "$work" & pids+=($!)
wait_port "$upstream"

start_router() { # binary, label -> pid on stdout, port in $work/port-label
  local port admin
  port=$(free_port); admin=$(free_port)
  cat > "$work/$2.yaml" <<CONF
admin: {port: $admin}
routers:
- protocol: h2
  dtab: /svc => /\$/inet/127.0.0.1/$upstream
  servers: [{port: $port}]
CONF
  "$1" "$work/$2.yaml" >"$work/$2.log" 2>&1 &
  echo "$port" > "$work/port-$2"
  echo $!
}
a_pid=$(start_router "$a_bin" a); pids+=("$a_pid")
b_pid=$(start_router "$b_bin" b); pids+=("$b_pid")
wait_port "$(cat "$work/port-a")"; wait_port "$(cat "$work/port-b")"
hz=$(getconf CLK_TCK)

for round in $(seq "$rounds"); do
  for which in a b; do
    pid=${which}_pid; pid=${!pid}
    port=$(cat "$work/port-$which")
    before=$(cpu_ticks "$pid")
    line=$(h2load -n "$requests" -c 10 -m 10 -H ':authority: web' "http://127.0.0.1:$port/" 2>&1 | grep -E '^finished in' || true)
    after=$(cpu_ticks "$pid")
    python3 -c "import sys; t=($after-$before)/$hz; print(f'round {sys.argv[1]} router {sys.argv[2]}: {t*1e6/$requests:.2f} us CPU/request; {sys.argv[3]}')" \
      "$round" "$which" "$line"
  done
done
