#!/usr/bin/env bash
# Runs queries of Linkerd 1.x's Grafana dashboard (linkerd-viz) against a
# real Prometheus server scraping the router, to show that a dashboard
# written for Linkerd finds the router's series.
#
#   examples/scripts/linkerd_dashboard_queries.sh [ROUTER_BIN]
#
# Starts a backend (nginx), the router (label "web", two services) with an
# io.l5d.prometheus telemeter, and Prometheus scraping the router's admin
# port every second; sends traffic for about 20 s; prints each query and
# Prometheus's answer. Needs nginx, curl, python3 and Debian's prometheus.
set -euo pipefail

router_bin=$(realpath "${1:-target/release/router}")
for tool in nginx curl python3 prometheus; do
  command -v "$tool" >/dev/null || { echo "needs $tool on the PATH" >&2; exit 2; }
done
work=$(mktemp -d /tmp/dashboard-queries.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
upstream=$(free_port); router=$(free_port); admin=$(free_port); prom=$(free_port)

mkdir -p "$work/nginx" "$work/disco" "$work/prometheus"
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx; proxy_temp_path $work/nginx;
  fastcgi_temp_path $work/nginx; uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
  server { listen 127.0.0.1:$upstream;
    location /fail { return 503 "no"; }
    location / { return 200 "ok"; } }
}
CONF
echo "127.0.0.1 $upstream" > "$work/disco/books"
echo "127.0.0.1 $upstream" > "$work/disco/authors"
cat > "$work/router.yaml" <<CONF
admin: {ip: 127.0.0.1, port: $admin, histogramSnapshotIntervalMs: 5000}
namers:
- kind: io.l5d.fs
  rootDir: $work/disco
telemetry:
- kind: io.l5d.prometheus
routers:
- protocol: http
  label: web
  dtab: /svc => /#/io.l5d.fs;
  servers: [{ip: 127.0.0.1, port: $router}]
CONF
cat > "$work/prometheus.yml" <<CONF
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
- job_name: router
  metrics_path: /admin/metrics/prometheus
  static_configs: [{targets: ["127.0.0.1:$admin"]}]
CONF

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT
nginx -c "$work/nginx.conf" -p "$work" 2>"$work/nginx.out" & pids+=($!)
"$router_bin" "$work/router.yaml" 2>"$work/router.log" & pids+=($!)
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prometheus" \
  --web.listen-address="127.0.0.1:$prom" >"$work/prometheus.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$prom/-/ready" >/dev/null 2>&1 && break; sleep 0.2; done

# Traffic: books succeed, one authors request in five fails with 503.
for i in $(seq 200); do
  curl -s -o /dev/null -H "Host: books" "http://127.0.0.1:$router/"
  if (( i % 5 == 0 )); then path=/fail; else path=/; fi
  curl -s -o /dev/null -H "Host: authors" "http://127.0.0.1:$router$path"
  sleep 0.1
done

query() {
  echo "query: $1"
  curl -s "http://127.0.0.1:$prom/api/v1/query" --data-urlencode "query=$1" | python3 -c '
import json, sys
answer = json.load(sys.stdin)
if answer.get("status") != "success":
    print("  error:", answer); sys.exit(1)
result = answer["data"]["result"]
if not result:
    print("  (no series)"); sys.exit(1)
for r in result:
    labels = ",".join(f"{k}={v}" for k, v in sorted(r["metric"].items()) if k not in ("job",))
    print("  {" + labels + "}", r["value"][1])'
}
# The linkerd-viz dashboard's queries, with $router = web.
query 'sum(irate(rt:client:requests{rt="web"}[1m]))'
query 'sum(irate(rt:client:success{rt="web"}[1m])) / sum(irate(rt:client:requests{rt="web"}[1m]))'
query 'sum(irate(rt:client:status:5XX{rt="web"}[1m]))'
query 'count(count(rt:client:requests{rt="web"}) by (client))'
query 'max(rt:client:request_latency_ms{rt="web",quantile="0.95"}) by (client)'
query 'sum(irate(rt:server:requests{rt="web"}[1m])) by (instance)'
query 'rt:server:request_latency_ms{rt="web",quantile="0.99"}'
