#!/usr/bin/env bash
# Receipts and fallbacks at scale, on one Herald node (release, SQLite with fsync).
#
#   bench/receipts.sh [part…]        (parts: receipts fallbacks restart; default: all three)
#
# receipts   10,000 streams of distinct users (two listener processes from 127.0.0.2 and
#            127.0.0.3); single-event publishes to user n % 10,000 at RECEIPTS_RATE
#            (4,000) events/s for RECEIPTS_SECONDS (20), 32 connections — each stream gets an
#            event every 2.5 s, so a tab that acknowledges as herald.js does (at most once a
#            second, nothing when nothing is new) sends one receipt per event, delivered and
#            seen. Run twice on a fresh server each time: no receipts, then receipts (over 128
#            keep-alive connections per listener process). Reported: the server's CPU per
#            event over the publishing and 2 s after, the receipts sent and recorded, and the
#            rows of delivery positions written (one per user and minute, never per event).
# fallbacks  100,000 pending fallbacks: 100 `users` publishes to 1,000 users each (nobody
#            connected), the i-th due FALLBACK_FIRST (30) + FALLBACK_SPACING (2) × i seconds
#            later. A receiver (herald-load receive) answers the notification.unseen messages.
#            Reported: the server's PSS with none pending and with 100,000 pending; for each
#            fallback, when its pass decided it after its due time (the database's
#            settled − due) and when its message reached the receiver; duplicates; how many
#            passes each publish's 1,000 fallbacks took.
# restart    10,000 fallbacks due 3 s after publishing; Herald is SIGKILLed at once and
#            started again 5 s later, with all 10,000 overdue: the time from its start until
#            every message arrived, each once.
# RECEIPTS_MODES="off" runs the receipts part without receipts only. The raw lines go to
# bench/results/<date>.receipts.jsonl; with PROFILE=1 the receipts part
# samples the server with perf while it publishes (<date>.receipts.<off|on>.profile.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
PARTS=${*:-receipts fallbacks restart}
PORT=18086
RECEIVER=18097
ADMIN=bench-admin-token-0123456789
RECEIPTS_RATE=${RECEIPTS_RATE:-4000}
RECEIPTS_SECONDS=${RECEIPTS_SECONDS:-20}
FALLBACK_FIRST=${FALLBACK_FIRST:-30}
FALLBACK_SPACING=${FALLBACK_SPACING:-2}
cargo build --release --quiet -p herald -p herald-bench
HERALD=${HERALD_BIN:-$PWD/target/release/herald}
LOAD=$PWD/target/release/herald-load
WORK=$(mktemp -d /tmp/herald-receipts.XXXXXX)
mkdir -p bench/results
RAW=$PWD/bench/results/$(date -u +%Y%m%d-%H%M%S).receipts.jsonl
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# start_herald: a fresh node on $WORK/herald.db unless KEEP=1; sets SERVER_PID, STARTED_NS.
start_herald() {
  [ "${KEEP:-}" = 1 ] || rm -f "$WORK"/herald.db*
  STARTED_NS=$(date +%s%N)
  env HERALD_CONFIG_DIR="$PWD/config" HERALD__DATABASE__URL="sqlite://$WORK/herald.db" \
    HERALD__SERVER__PORT=$PORT HERALD__ADMIN__TOKEN=$ADMIN HERALD__SEED__DEMO_TENANT=false \
    HERALD__DEMO__ENABLED=false HERALD__LOG__LEVEL=warn \
    HERALD__TENANT_DEFAULTS__PUBLISH_PER_SEC=1000000 HERALD__TENANT_DEFAULTS__PUBLISH_BURST=1000000 \
    HERALD__TENANT_DEFAULTS__MAX_STREAMS=1000000 \
    "$HERALD" serve >>"$WORK/herald.log" 2>&1 &
  SERVER_PID=$!; PIDS+=("$SERVER_PID")
  for _ in $(seq 1 400); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && return 0; sleep 0.025; done
  echo "Herald did not start" >&2; cat "$WORK/herald.log" >&2; exit 1
}
stop_herald() { kill "${1:--TERM}" "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; }

# The bench tenant: API_KEY, KID, SECRET; with WEBHOOK=1 an endpoint for notification.unseen
# at the receiver.
bench_tenant() {
  read -r API_KEY KID SECRET < <(python3 - "$PORT" "$ADMIN" "$RECEIVER" "${WEBHOOK:-0}" <<'PY'
import http.client, json, sys
port, admin, receiver, webhook = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
conn = http.client.HTTPConnection("127.0.0.1", int(port))
def call(method, path, token, body=None):
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    answer = conn.getresponse()
    data = answer.read()
    assert 200 <= answer.status < 300, (path, answer.status, data)
    return json.loads(data) if data else None
call("POST", "/admin/tenants", admin, {"slug": "bench", "allowed_origins": ["https://b.example"]})
key = call("POST", "/admin/tenants/bench/api-keys", admin)["key"]
signing = call("POST", "/admin/tenants/bench/signing-keys", admin, {"alg": "HS256"})
if webhook:
    call("POST", "/v1/webhooks", key, {"url": f"http://127.0.0.1:{receiver}/hooks", "events": ["notification.unseen"]})
print(key, signing["kid"], signing["secret"])
PY
)
}

cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{print int(($14 + $15) * 1000 / hz)}' /proc/"$1"/stat; }
pss_kib() { awk '/^Pss:/ {print $2}' /proc/"$1"/smaps_rollup; }
sql() { python3 -c 'import sqlite3, sys, json; print(json.dumps(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchall()))' "$WORK/herald.db" "$1"; }

# fallback_publishes COUNT FIRST SPACING PREFIX: COUNT publishes to 1,000 users each, the i-th
# due FIRST + SPACING × i seconds later.
fallback_publishes() {
  python3 - "$PORT" "$API_KEY" "$@" <<'PY'
import http.client, json, sys
port, key, count, first, spacing, prefix = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
conn = http.client.HTTPConnection("127.0.0.1", int(port))
for i in range(count):
    body = {"to": {"users": [f"{prefix}{n}" for n in range(1000)]}, "type": "mail", "data": {"i": i},
            "fallback": {"after_secs": first + spacing * i, "unless": "seen"}}
    conn.request("POST", "/v1/events", json.dumps(body), {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    answer = conn.getresponse()
    answer.read()
    assert answer.status == 201, answer.status
PY
}

part_receipts() {
  local mode cpu listeners publisher
  for mode in ${RECEIPTS_MODES:-off on}; do
    start_herald
    bench_tenant
    local extra=()
    [ "$mode" = on ] && extra=(--receipt-connections 128)
    listeners=()
    for p in 0 1; do
      "$LOAD" listen --target herald --server "127.0.0.1:$PORT" --source "127.0.0.$((p + 2))" \
        --connections 5000 --first-user $((p * 5000)) --mode users --users 10000 \
        --events $((RECEIPTS_RATE * RECEIPTS_SECONDS)) --kid="$KID" --secret="$SECRET" \
        --duration $((RECEIPTS_SECONDS + 30)) "${extra[@]}" >"$WORK/listen.$mode.$p" 2>"$WORK/listen.$mode.$p.err" &
      listeners+=($!)
    done
    for p in 0 1; do until grep -q '"ready"' "$WORK/listen.$mode.$p" 2>/dev/null; do sleep 0.2; done; done
    sleep 1
    local profiler=
    if [ -n "${PROFILE:-}" ]; then
      perf record -q -g -e cpu-clock -F 999 -p "$SERVER_PID" -o "$WORK/perf.$mode.data" 2>/dev/null &
      profiler=$!
    fi
    cpu=$(cpu_ms "$SERVER_PID")
    "$LOAD" publish --target herald --server "127.0.0.1:$PORT" --mode users --users 10000 \
      --events $((RECEIPTS_RATE * RECEIPTS_SECONDS)) --rate "$RECEIPTS_RATE" --concurrency 32 \
      --api-key="$API_KEY" >"$WORK/publish.$mode"
    sleep 2
    cpu=$(($(cpu_ms "$SERVER_PID") - cpu))
    if [ -n "$profiler" ]; then
      kill -INT "$profiler"; wait "$profiler" || true
      perf report -i "$WORK/perf.$mode.data" --stdio --no-children --sort dso,symbol --percent-limit 0.5 2>/dev/null \
        | grep '%' | grep -v '^ *|' >"${RAW%.jsonl}.$mode.profile.txt" || true
    fi
    for pid in "${listeners[@]}"; do wait "$pid"; done
    local positions seen requests
    positions=$(sql "SELECT COUNT(*) FROM receipt_positions WHERE fact = 'delivered'")
    seen=$(sql "SELECT COUNT(*) FROM receipts WHERE seen_at IS NOT NULL")
    requests=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^herald_receipt_requests_total/ {print $2}')
    stop_herald
    python3 - "$mode" "$cpu" "$positions" "$seen" "${requests:-0}" "$WORK/publish.$mode" "$WORK/listen.$mode".[01] >>"$RAW" <<'PY'
import json, sys
mode, cpu, positions, seen, requests = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])[0][0], json.loads(sys.argv[4])[0][0], float(sys.argv[5])
publish = json.loads(open(sys.argv[6]).read().splitlines()[-1])
listens = [json.loads(open(f).read().splitlines()[-1]) for f in sys.argv[7:]]
received = sum(l["received"] for l in listens)
sent = sum((l["receipts"] or {}).get("sent", 0) for l in listens)
failed = sum((l["receipts"] or {}).get("failed", 0) for l in listens)
print(json.dumps({"part": "receipts", "receipts": mode, "events": publish["events"],
    "events_per_second": publish["events_per_second"], "received": received,
    "lost": sum(l["lost"] for l in listens), "server_cpu_ms": cpu,
    "server_cpu_us_per_event": round(cpu * 1000 / publish["events"], 1),
    "receipts_sent": sent, "receipts_failed": failed, "receipt_requests_recorded": requests,
    "delivered_position_rows": positions, "seen_rows": seen,
    "delivery_p99_ms": max(l["latency"]["p99_ms"] for l in listens),
    "receipt_latency": [ (l["receipts"] or {}).get("latency") for l in listens ]}))
PY
  done
}

# receiver EXPECT TIMEOUT: the webhook receiver, in the background (RECEIVER_PID).
receiver() {
  "$LOAD" receive --listen "127.0.0.1:$RECEIVER" --expect "$1" --timeout "$2" >"$WORK/receive" 2>&1 &
  RECEIVER_PID=$!; PIDS+=("$RECEIVER_PID")
  until grep -q listening "$WORK/receive" 2>/dev/null; do sleep 0.05; done
}

part_fallbacks() {
  local empty pending published_ns after
  start_herald
  WEBHOOK=1 bench_tenant
  receiver 100000 $((FALLBACK_FIRST + FALLBACK_SPACING * 100 + 120))
  sleep 1
  empty=$(pss_kib "$SERVER_PID")
  fallback_publishes 100 "$FALLBACK_FIRST" "$FALLBACK_SPACING" f
  pending=$(pss_kib "$SERVER_PID")
  local count
  count=$(sql "SELECT COUNT(*) FROM receipts WHERE fallback_due_at IS NOT NULL")
  wait "$RECEIVER_PID"
  after=$(pss_kib "$SERVER_PID")
  local settled passes
  sql "SELECT r.fallback_settled_at - (e.created_at + 1000 * r.fallback_after_secs) FROM receipts r JOIN events e ON e.tenant_id = r.tenant_id AND e.seq = r.seq WHERE r.fallback_outcome IS NOT NULL ORDER BY 1" >"$WORK/settled.json"
  sql "SELECT COUNT(DISTINCT fallback_settled_at) FROM receipts WHERE fallback_outcome IS NOT NULL GROUP BY fallback_origin" >"$WORK/passes.json"
  stop_herald
  python3 - "$empty" "$pending" "$after" "$count" "$WORK/settled.json" "$WORK/passes.json" "$WORK/receive" >>"$RAW" <<'PY'
import json, sys
empty, pending, after, count = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])[0][0]
late = sorted(row[0] for row in json.load(open(sys.argv[5])))
passes = [row[0] for row in json.load(open(sys.argv[6]))]
received = json.loads(open(sys.argv[7]).read().splitlines()[-1])
q = lambda x: late[min(len(late) - 1, int(x * len(late)))] if late else None
print(json.dumps({"part": "fallbacks", "pending_rows": count, "pss_kib_none_pending": empty,
    "pss_kib_100000_pending": pending, "pss_kib_all_fired": after,
    "decided_after_due_ms": {"p50": q(0.5), "p99": q(0.99), "max": late[-1] if late else None, "count": len(late)},
    "passes_per_publish": {"max": max(passes) if passes else None, "publishes": len(passes)},
    "received": received}))
PY
}

part_restart() {
  start_herald
  WEBHOOK=1 bench_tenant
  fallback_publishes 10 3 0 r
  stop_herald -KILL
  sleep 5
  receiver 10000 60
  KEEP=1 start_herald
  wait "$RECEIVER_PID"
  local decided
  decided=$(sql "SELECT MAX(fallback_settled_at), COUNT(*) FROM receipts WHERE fallback_outcome = 'fired'")
  stop_herald
  python3 - "$STARTED_NS" "$decided" "$WORK/receive" >>"$RAW" <<'PY'
import json, sys
started = int(sys.argv[1])
last_decided, fired = json.loads(sys.argv[2])[0]
received = json.loads(open(sys.argv[3]).read().splitlines()[-1])
print(json.dumps({"part": "restart", "overdue": 10000, "fired": fired,
    "all_decided_s_after_start": round((last_decided * 1_000_000 - started) / 1e9, 2),
    "all_received_s_after_start": round((received["last_ns"] - started) / 1e9, 2) if received["last_ns"] else None,
    "received": received}))
PY
}

for part in $PARTS; do "part_$part"; done
cat "$RAW"
