#!/usr/bin/env bash
# What the metrics tree costs at scale: CPU per proxied request and memory
# with 1,000 services of 10 endpoints each seen, a router with
# io.l5d.prometheus scraped every second, against a router build without
# the tree ("off"), in alternating rounds of the same run.
#
#   examples/scripts/telemetry_cost.sh ON_BIN OFF_BIN [SECONDS] [ROUNDS]
#
# SCRAPE_EVERY (seconds, default 1) is how often the "on" router's
# Prometheus endpoint is read during a round.
#
# wrk spreads its requests over the 1,000 Host names (/svc/s0 ... /svc/s999),
# each bound by the io.l5d.fs namer to 127.0.0.1 ... 127.0.0.10 on one nginx
# upstream (it listens on every loopback address). The router is pinned to
# CPU 1, nginx and wrk to CPU 0. CPU per request is the router process's
# user + system time (from /proc) over the requests wrk completed.
#
# Needs nginx, wrk, curl, taskset and python3.
set -euo pipefail

on_bin=$(realpath "${1:?ON_BIN}")
off_bin=$(realpath "${2:?OFF_BIN}")
seconds=${3:-10}
rounds=${4:-2}
services=1000
endpoints=10
for tool in nginx wrk curl taskset python3; do
  command -v "$tool" >/dev/null || { echo "needs $tool on the PATH" >&2; exit 2; }
done

work=$(mktemp -d /tmp/telemetry-cost.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
upstream_port=$(free_port)
router_port=$(free_port)
admin_port=$(free_port)

mkdir -p "$work/nginx" "$work/disco"
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx; proxy_temp_path $work/nginx;
  fastcgi_temp_path $work/nginx; uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
  keepalive_requests 1000000;
  server { listen $upstream_port; location / { return 200 "ok"; } }
}
CONF
for ((s = 0; s < services; s++)); do
  for ((e = 1; e <= endpoints; e++)); do echo "127.0.0.$e $upstream_port"; done > "$work/disco/s$s"
done

router_config() { # $1: telemetry block or nothing
  cat <<CONF
admin:
  ip: 127.0.0.1
  port: $admin_port
namers:
- kind: io.l5d.fs
  rootDir: $work/disco
$1
routers:
- protocol: http
  label: web
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - ip: 127.0.0.1
    port: $router_port
CONF
}
router_config "telemetry:
- kind: io.l5d.prometheus" > "$work/on.yaml"
router_config "" > "$work/off.yaml"

cat > "$work/hosts.lua" <<'LUA'
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/", { Host = "s" .. (n % 1000) })
end
LUA

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT
taskset -c 0 nginx -c "$work/nginx.conf" -p "$work" 2>"$work/nginx.out" &
pids+=($!)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
tick=$(getconf CLK_TCK)

# run NAME BIN CONFIG: one round; prints "NAME cpu_us_per_request rps rss_kb"
run() {
  local name=$1 bin=$2 config=$3
  taskset -c 1 "$bin" "$config" 2>"$work/$name-router.log" &
  local pid=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$admin_port/admin/ping" >/dev/null 2>&1 && break; sleep 0.1; done
  # Every service once, so all 1,000 are in the tree before measuring.
  # (`next` starts a new transfer: without it every header applies to
  # every URL, and all 1,000 requests ask for one name.)
  for ((s = 0; s < services; s++)); do
    [ "$s" -gt 0 ] && echo next
    echo "url = \"http://127.0.0.1:$router_port/\"
header = \"Host: s$s\"
output = \"/dev/null\""
  done > "$work/curl.cfg"
  curl -s --no-progress-meter --parallel --parallel-max 20 -K "$work/curl.cfg"
  local rss_seen
  rss_seen=$(rss_kb "$pid")
  local scraper=""
  if [ "$name" = on ]; then
    ( while sleep "${SCRAPE_EVERY:-1}"; do curl -s "http://127.0.0.1:$admin_port/admin/metrics/prometheus" >/dev/null; done ) &
    scraper=$!
  fi
  local before after
  before=$(cpu_ticks "$pid")
  taskset -c 0 wrk -t1 -c50 -d"${seconds}s" -s "$work/hosts.lua" "http://127.0.0.1:$router_port/" > "$work/$name-wrk.out"
  after=$(cpu_ticks "$pid")
  [ -n "$scraper" ] && kill "$scraper" 2>/dev/null
  local requests rps rss
  requests=$(awk '/requests in/ {print $1}' "$work/$name-wrk.out")
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/$name-wrk.out")
  rss=$(rss_kb "$pid")
  if [ "$name" = on ]; then
    curl -s "http://127.0.0.1:$admin_port/admin/metrics.json" -o "$work/metrics.json"
    curl -s "http://127.0.0.1:$admin_port/admin/metrics/prometheus" -o "$work/metrics.prom" && echo "on: metrics.json $(wc -c < "$work/metrics.json") bytes, prometheus $(wc -c < "$work/metrics.prom") bytes, $(wc -l < "$work/metrics.prom") lines, render $(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$admin_port/admin/metrics/prometheus") s" >&2
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
  python3 -c "print('$name', 'cpu_us_per_request', round(($after - $before) / $tick * 1e6 / $requests, 2), 'rps', '$rps', 'rss_kb_after_warmup', '$rss_seen', 'rss_kb_at_end', '$rss')"
}

echo "work: $work ($services services x $endpoints endpoints, ${seconds}s rounds)" >&2
for ((r = 1; r <= rounds; r++)); do
  run off "$off_bin" "$work/off.yaml"
  run on "$on_bin" "$work/on.yaml"
done
