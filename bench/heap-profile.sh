#!/usr/bin/env bash
# Where an idle stream's memory goes: Herald (release build) under valgrind's massif, with
# N idle authenticated streams (default 2,000); prints the heap's allocation sites at its
# peak, largest first (BENCHMARKS.md, "Where the memory goes").
#
#   bench/heap-profile.sh [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
CONNECTIONS=${1:-2000}
PORT=18091
ADMIN=bench-admin-token-0123456789
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
cargo build --release --quiet -p herald -p herald-bench
WORK=$(mktemp -d /tmp/herald-heap.XXXXXX)
HERALD_CONFIG_DIR=$PWD/config HERALD__DATABASE__URL=sqlite://$WORK/herald.db HERALD__SERVER__PORT=$PORT \
  HERALD__ADMIN__TOKEN=$ADMIN HERALD__SEED__DEMO_TENANT=false HERALD__DEMO__ENABLED=false HERALD__LOG__LEVEL=warn \
  valgrind --tool=massif --threshold=2 --massif-out-file="$WORK/massif.out" target/release/herald serve \
  >"$WORK/log" 2>&1 &
SERVER=$!
for _ in $(seq 1 200); do curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.5; done
api="http://127.0.0.1:$PORT/admin/tenants" auth="Authorization: Bearer $ADMIN"
curl -sf -X POST "$api" -H "$auth" -H 'Content-Type: application/json' -d '{"slug":"bench"}' >/dev/null
read -r KID SECRET < <(curl -sf -X POST "$api/bench/signing-keys" -H "$auth" -H 'Content-Type: application/json' \
  -d '{"alg":"HS256"}' | python3 -c 'import json,sys; k=json.load(sys.stdin); print(k["kid"], k["secret"])')
target/release/herald-load listen --target herald --server "127.0.0.1:$PORT" --source 127.5.0.2 \
  --connections "$CONNECTIONS" --mode broadcast --events 1 --kid="$KID" --secret="$SECRET" \
  --duration 20 --open-batch 64 >"$WORK/listen" 2>&1 &
LISTENER=$!
sleep 25
kill -INT "$SERVER"; wait "$SERVER" || true
wait "$LISTENER" || true
echo "streams: $(head -1 "$WORK/listen")"
ms_print "$WORK/massif.out" >"$WORK/massif.txt"
# The peak snapshot's top-level allocation sites.
python3 - "$WORK/massif.txt" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
peak = re.search(r"(\d+) \(peak\)", "\n".join(lines)).group(1)
start = next(i for i, line in enumerate(lines) if re.match(rf"\s+{peak}\s+[\d,]+\s+[\d,]+", line))
print(lines[start].strip())
for line in lines[start + 1:]:
    if re.match(r"\s+n\s+time", line):
        break
    if line.startswith("->"):
        print(line[:160])
PY
echo "full report: $WORK/massif.txt"
