#!/usr/bin/env bash
# Webhook throughput: how many messages per second one Herald node gets to a receiver on
# this machine, and what each costs the server.
#
#   bench/webhooks.sh [messages] [endpoints]        (defaults: 20000 messages, 8 endpoints)
#
# Herald (release, SQLite with fsync, default [webhooks]: 32 attempts in flight, 4 per
# endpoint) sends to nginx answering 204 on 127.0.0.1 (keep-alive). Four client threads post
# `POST /v1/webhooks/{id}/test` round the endpoints, each answered 202 once the message is
# written; the run ends when /metrics counts every message delivered. Reported: messages per
# second from the first post to the last delivery, the time the last post was answered, and
# the server's CPU per message — its whole path: the API request, the write, the claim, the
# signed POST and the recorded attempt.
set -euo pipefail
cd "$(dirname "$0")/.."
MESSAGES=${1:-20000}
ENDPOINTS=${2:-8}
PORT=18085
RECEIVER=18095
ADMIN=bench-admin-token-0123456789
command -v nginx >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light >/dev/null; }
cargo build --release --quiet -p herald
HERALD=${HERALD_BIN:-$PWD/target/release/herald}
WORK=$(mktemp -d /tmp/herald-webhooks.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

cat >"$WORK/nginx.conf" <<CONF
worker_processes 1;
error_log stderr warn;
pid $WORK/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 100000000;
  client_body_temp_path $WORK/body;
  server { listen 127.0.0.1:$RECEIVER; location / { return 204; } }
}
CONF
nginx -c "$WORK/nginx.conf" -p "$WORK"

env HERALD_CONFIG_DIR="$PWD/config" HERALD__DATABASE__URL="sqlite://$WORK/herald.db" \
  HERALD__SERVER__PORT=$PORT HERALD__ADMIN__TOKEN=$ADMIN HERALD__SEED__DEMO_TENANT=false \
  HERALD__DEMO__ENABLED=false HERALD__LOG__LEVEL=warn \
  HERALD__TENANT_DEFAULTS__MAX_WEBHOOKS=1000 \
  "$HERALD" serve >"$WORK/herald.log" 2>&1 &
SERVER=$!; PIDS+=("$SERVER")
for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.05; done

python3 - "$PORT" "$RECEIVER" "$ADMIN" "$MESSAGES" "$ENDPOINTS" "$SERVER" <<'PY'
import http.client, json, os, sys, threading, time
port, receiver, admin, messages, endpoints, server = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]

def call(conn, method, path, token, body=None):
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
        body = json.dumps(body)
    conn.request(method, path, body, headers)
    answer = conn.getresponse()
    data = answer.read()
    return answer.status, (json.loads(data) if data else None)

def cpu_ms():
    total = 0
    with open(f"/proc/{server}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    total = int(fields[11]) + int(fields[12])
    return total * 1000 / os.sysconf("SC_CLK_TCK")

def delivered():
    conn = http.client.HTTPConnection("127.0.0.1", int(port))
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("herald_webhook_messages_total") and 'outcome="delivered"' in line)

conn = http.client.HTTPConnection("127.0.0.1", int(port))
status, _ = call(conn, "POST", "/admin/tenants", admin, {"slug": "bench", "allowed_origins": ["https://b.example"]})
assert status == 201, status
status, key = call(conn, "POST", "/admin/tenants/bench/api-keys", admin)
key = key["key"]
hooks = []
for n in range(endpoints):
    status, hook = call(conn, "POST", "/v1/webhooks", key, {"url": f"http://127.0.0.1:{receiver}/hook/{n}", "events": ["*"]})
    assert status == 201, (status, hook)
    hooks.append(hook["id"])

cpu_before = cpu_ms()
started = time.monotonic()
posted = [None]
def poster(k, count):
    c = http.client.HTTPConnection("127.0.0.1", int(port))
    for i in range(count):
        s, _ = call(c, "POST", f"/v1/webhooks/{hooks[(k + i) % len(hooks)]}/test", key)
        assert s == 202, s
threads = [threading.Thread(target=poster, args=(k, messages // 4)) for k in range(4)]
for t in threads: t.start()
for t in threads: t.join()
posted = time.monotonic() - started
sent = (messages // 4) * 4
while delivered() < sent:
    time.sleep(0.1)
elapsed = time.monotonic() - started
cpu = cpu_ms() - cpu_before
print(json.dumps({"messages": sent, "endpoints": endpoints, "seconds": round(elapsed, 2),
                  "posted_in_seconds": round(posted, 2),
                  "messages_per_sec": round(sent / elapsed),
                  "server_cpu_us_per_message": round(cpu * 1000 / sent, 1)}))
PY
