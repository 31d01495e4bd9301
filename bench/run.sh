#!/usr/bin/env bash
# Herald against nchan on this machine, side by side, scenario by scenario.
#
#   bench/run.sh [connections] [repeats]        (defaults: 19000 connections, 3 repeats)
#
# Builds Herald and the load tool in release mode, starts Herald (SQLite, WAL, fsync on
# every commit) and nginx + nchan (bench/nchan.conf), and for each target and repeat:
#   idle       N SSE connections from several client processes (one per 9,500 sockets, each
#              from its own source address 127.0.0.2, 127.0.0.3, …); server memory per
#              connection = growth of the server's PSS (all its processes) / N
#   broadcast  20 events 200 ms apart to all N connections (Herald persists each first);
#              publish-to-receipt latency over every delivery, lost and duplicated events;
#              the server's CPU time and context switches per delivery
#   users      10,000 users connected, one connection each; USERS_EVENTS (100,000) events to
#              single users at USERS_RATE (20,000) a second (Herald: 20 per request, 16
#              connections), then 25,000 more at 5,000/s, one per
#              request; achieved rate, request latency, delivery latency, lost events
#   single     on a fresh server, SINGLE_USERS (2,000) streams of distinct users; SINGLE_EVENTS
#              (100,000) single-event publishes to user n % 2,000, one event per request, 16
#              connections, each sending again as soon as it is answered: events/s, request
#              latency, delivery latency, lost events, and the server's CPU per event
#   steady     on a fresh server, the same 2,000 streams; STEADY_RATE (2,000) single-event
#              publishes a second for STEADY_SECONDS (20), open loop (64 connections, each
#              event sent when the clock says and its latencies counted from then): request
#              and delivery latency, the server's CPU per event
#   churn      on a fresh server, 17,000 connections get a broadcast every 200 ms while,
#              for a minute, 1,000 more streams a second open, hold 1 s and hang up (17,000,
#              not 19,000: the churning streams need ~1,000 of the server's 20,000 sockets);
#              churn connects failed, broadcasts lost, and the server's open files and PSS
#              before the churn and 3 s after it (a leak shows as growth)
#   opens      on a fresh server, 15,000 streams opened at 1,000/s and held 1 s, nothing else:
#              the server's CPU time per stream opened, and open latency
#   replay     on a fresh server, REPLAY_EVENTS (10,000) events to one user who is away; then
#              one client resumes (Herald: Last-Event-ID; nchan: from its oldest buffered
#              message) and the time until it holds them all, in order, once
#   noisy      Herald's own (tenants): tenant A holds N − 1,000 streams, tenant B 1,000, one
#              per user; B publishes 100 single events/s for NOISY_SECONDS (20), first with A
#              idle, then while A's 4 publishers send 10-event broadcast batches asking
#              NOISY_A_ASK (100,000) events/s, A's limit NOISY_A_RATE (10) events/s (the rest
#              get 429);
#              B's delivery and publish latency in each phase
#   rejected   Herald's own (tenants): wrk -t1 -c16 POSTs single events for 8 s, twice per
#              tenant in turn, as tenant `open` (limits far above the load) and as tenant
#              `hammer` (1 event/s: nearly every answer a 429); requests/s, latency and the
#              server's CPU per answered request, stored vs refused
# SCENARIOS="broadcast users single steady churn opens replay scaleout noisy rejected" (the default) picks which run, TARGETS="herald"
# nchan" which servers, HERALD_BIN another Herald binary (to compare two builds), STORE=postgres
# Herald on PostgreSQL (see below); PROFILE=1
# samples the servers' CPU during the broadcasts, the single-event publishes and the churn with perf (see profile_start below; nginx's
# workers are other processes, so only Herald's profile is whole).
# Writes bench/results/<date>.md (the table) and the raw JSON next to it.
set -euo pipefail
cd "$(dirname "$0")/.."
CONNECTIONS=${1:-19000}
REPEATS=${2:-3}
PER_PROCESS=9500
USERS=10000
FAST=${USERS_EVENTS:-100000}
USERS_RATE=${USERS_RATE:-20000}
PACED=25000
REPLAY_EVENTS=${REPLAY_EVENTS:-10000}
HERALD_PORT=18080
NCHAN_PORT=18090
ADMIN=bench-admin-token-0123456789
SCENARIOS=${SCENARIOS:-broadcast users single steady churn opens replay scaleout noisy rejected}
SINGLE_USERS=${SINGLE_USERS:-2000}
SINGLE_EVENTS=${SINGLE_EVENTS:-100000}
STEADY_RATE=${STEADY_RATE:-2000}
STEADY_SECONDS=${STEADY_SECONDS:-20}
NOISY_SECONDS=${NOISY_SECONDS:-20}
NOISY_A_RATE=${NOISY_A_RATE:-10}
NOISY_A_ASK=${NOISY_A_ASK:-100000}
TARGETS=${TARGETS:-herald nchan}
# STORE=postgres: Herald (but for the scale-out) on a PostgreSQL 15 private to the run, a
# fresh database for each fresh server; the default is SQLite.
STORE=${STORE:-sqlite}
FRESH_DB=0
CHURN_STABLE=17000
CHURN_SECONDS=60
wants() { [[ " $SCENARIOS " == *" $1 "* ]]; }

# nchan comes from Debian: nginx plus its nchan module.
if ! command -v nginx >/dev/null || [ ! -e /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light libnginx-mod-nchan >/dev/null
fi
cargo build --release --quiet -p herald -p herald-bench
HERALD=${HERALD_BIN:-$PWD/target/release/herald}
LOAD=$PWD/target/release/herald-load
WORK=$(mktemp -d /tmp/herald-bench.XXXXXX)
RESULTS=$PWD/bench/results
mkdir -p "$RESULTS"
STAMP=$(date -u +%Y%m%d-%H%M%S)
RAW=$RESULTS/$STAMP.jsonl
: >"$RAW"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  declare -F stop_backends >/dev/null && stop_backends
}
trap cleanup EXIT

# Proportional set size of a process tree, in KiB: shared pages counted once across nginx's
# master and workers, so the two servers are measured alike.
pss_kib() {
  local total=0 pid
  for pid in $1 $(pgrep -P "$1" || true); do
    total=$((total + $(awk '/^Pss:/ {print $2}' /proc/"$pid"/smaps_rollup)))
  done
  echo "$total"
}

# CPU time used so far by a process tree (all threads), in milliseconds.
cpu_ms() {
  local total=0 pid
  for pid in $1 $(pgrep -P "$1" || true); do
    total=$((total + $(awk '{print $14 + $15}' /proc/"$pid"/stat)))
  done
  echo $((total * 1000 / $(getconf CLK_TCK)))
}

# Context switches so far of a process tree (all threads), "voluntary involuntary": a thread
# that waits gives up its core (voluntary); one the scheduler takes the core from, often to
# run a client process that a delivery just woke, is preempted (involuntary).
ctx_switches() {
  local pid
  for pid in $1 $(pgrep -P "$1" || true); do
    cat /proc/"$pid"/task/*/status 2>/dev/null
  done | awk '/^voluntary_ctxt_switches/ {v += $2} /^nonvoluntary_ctxt_switches/ {n += $2}
              END {print v + 0, n + 0}'
}

# Waits until something answers HTTP at $1 (any status).
wait_http() {
  for _ in $(seq 1 200); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" != 000 ] && return 0
    sleep 0.05
  done
  echo "no answer from $1" >&2; exit 1
}

# herald_node PORT DATABASE-URL [REDIS-URL]: one Herald process; sets SERVER_PID. The bench
# tenant's limits are raised above what any scenario asks (nchan has none); its rate limit
# is still checked on every publish.
herald_node() {
  env HERALD_CONFIG_DIR="$PWD/config" HERALD__DATABASE__URL="$2" ${3:+HERALD__REDIS__URL=$3} \
    HERALD__SERVER__PORT="$1" HERALD__ADMIN__TOKEN=$ADMIN HERALD__SEED__DEMO_TENANT=false \
    HERALD__DEMO__ENABLED=false HERALD__LOG__LEVEL=warn HERALD__STREAM__MAX_CONNECTIONS_PER_TENANT=1000000 \
    HERALD__TENANT_DEFAULTS__PUBLISH_PER_SEC=1000000 HERALD__TENANT_DEFAULTS__PUBLISH_BURST=1000000 \
    HERALD__TENANT_DEFAULTS__MAX_STREAMS=1000000 HERALD__TENANT_DEFAULTS__MAX_STREAMS_PER_USER=1000 \
    "$HERALD" serve >"$WORK/herald/log.$1" 2>&1 &
  SERVER_PID=$!; PIDS+=("$SERVER_PID")
  wait_http "http://127.0.0.1:$1/healthz"
}

start_herald() {
  rm -rf "$WORK/herald" && mkdir -p "$WORK/herald"
  local url="sqlite://$WORK/herald/herald.db"
  if [ "$STORE" = postgres ]; then
    [ -d "$WORK/pg/data" ] || start_backends
    FRESH_DB=$((FRESH_DB + 1))
    createdb -h 127.0.0.1 -p "$PG_PORT" -U postgres "bench$FRESH_DB"
    url="postgres://postgres@127.0.0.1:$PG_PORT/bench$FRESH_DB"
  fi
  herald_node "$HERALD_PORT" "$url"
  bench_tenant "$HERALD_PORT"
  SERVER=127.0.0.1:$HERALD_PORT
}

# bench_tenant PORT [SLUG]: the `bench` tenant (or SLUG) with an API key and an HS256 key
# (API_KEY, KID, SECRET).
bench_tenant() {
  local api="http://127.0.0.1:$1/admin/tenants" auth="Authorization: Bearer $ADMIN" slug=${2:-bench}
  curl -sf -X POST "$api" -H "$auth" -H 'Content-Type: application/json' -d "{\"slug\":\"$slug\"}" >/dev/null
  API_KEY=$(curl -sf -X POST "$api/$slug/api-keys" -H "$auth" | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
  read -r KID SECRET < <(curl -sf -X POST "$api/$slug/signing-keys" -H "$auth" -H 'Content-Type: application/json' -d '{"alg":"HS256"}' \
    | python3 -c 'import json,sys; k=json.load(sys.stdin); print(k["kid"], k["secret"])')
}

start_nchan() {
  rm -rf "$WORK/nginx" && mkdir -p "$WORK/nginx"
  sed -e "s|__DIR__|$WORK/nginx|g" -e "s|__PORT__|$NCHAN_PORT|g" bench/nchan.conf >"$WORK/nginx/nginx.conf"
  nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' 2>"$WORK/nginx/log" &
  SERVER_PID=$!; PIDS+=("$SERVER_PID")
  wait_http "http://127.0.0.1:$NCHAN_PORT/pub/probe"
  SERVER=127.0.0.1:$NCHAN_PORT
}

stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; }

# Every listener process gets a source address of its own, never reused within a run: the
# ports of closed connections sit in TIME_WAIT for a minute, and one address has only
# ~28,000 of them.
NEXT_SOURCE=2
EXTRA=()

# listeners TARGET MODE EVENTS USERS: starts the client processes, waits until all are
# connected, and sets OPEN to the number of connections open.
listeners() {
  local target=$1 mode=$2 events=$3 users=$4 left=$CONNECTIONS p=0
  LISTENERS=()
  while [ "$left" -gt 0 ]; do
    local n=$((left < PER_PROCESS ? left : PER_PROCESS))
    "$LOAD" listen --target "$target" --server "$SERVER" --source "127.0.$((NEXT_SOURCE / 250)).$((NEXT_SOURCE % 250 + 2))" \
      --connections "$n" --first-user $((p * PER_PROCESS)) --mode "$mode" --events "$events" \
      --users "$users" --tenant "${TENANT:-bench}" --kid="${KID:-}" --secret="${SECRET:-}" --duration "${DURATION:-60}" \
      --samples "$WORK/${PREFIX:-}samples.$p" "${EXTRA[@]}" >"$WORK/${PREFIX:-}listen.$p" 2>"$WORK/${PREFIX:-}listen.$p.err" &
    LISTENERS+=($!)
    left=$((left - n)); p=$((p + 1)); NEXT_SOURCE=$((NEXT_SOURCE + 1))
  done
  OPEN=0
  for i in $(seq 0 $((p - 1))); do
    until grep -q '"ready"' "$WORK/${PREFIX:-}listen.$i" 2>/dev/null; do
      kill -0 "${LISTENERS[$i]}" 2>/dev/null || { cat "$WORK/${PREFIX:-}listen.$i.err" >&2; exit 1; }
      sleep 0.2
    done
    OPEN=$((OPEN + $(python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).readline())['ready'])" "$WORK/${PREFIX:-}listen.$i")))
  done
  PROCESSES=$p
}

# report TARGET SCENARIO JSON-FIELDS…: one result line, latencies over all listeners' samples.
collect() {
  local target=$1 scenario=$2 extra=$3
  for pid in "${LISTENERS[@]}"; do wait "$pid"; done
  python3 - "$target" "$scenario" "$extra" "$PROCESSES" "$WORK" >>"$RAW" <<'PY'
import json, sys, glob
target, scenario, extra, processes, work = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
reports = [json.loads(open(f"{work}/listen.{p}").read().splitlines()[-1]) for p in range(processes)]
samples = sorted(int(line) for p in range(processes) for line in open(f"{work}/samples.{p}"))
def q(x): return round(samples[min(len(samples) - 1, int(x * len(samples)))] / 1000, 3) if samples else None
row = {"target": target, "scenario": scenario, "connections": sum(r["connections"] for r in reports),
       "failed": sum(r["failed"] for r in reports), "received": sum(r["received"] for r in reports),
       "lost": sum(r["lost"] for r in reports), "duplicates": sum(r["duplicates"] for r in reports),
       "out_of_order": sum(r["out_of_order"] for r in reports),
       "seconds_to_complete": max(r.get("seconds_to_complete", 0) for r in reports),
       "p50_ms": q(0.5), "p99_ms": q(0.99), "p999_ms": q(0.999), "max_ms": round(samples[-1] / 1000, 3) if samples else None}
row.update(extra)
print(json.dumps(row))
PY
}

# PROFILE=1: the server's CPU is sampled (perf, cpu-clock, 999 Hz) while each broadcast or
# single-event scenario publishes, while the replay's client resumes and while streams open; the flat profile goes to
# bench/results/<date>.<target>.<scenario>.profile.txt.
PROFILER=
profile_start() {
  [ -n "${PROFILE:-}" ] || return 0
  perf record -q -e cpu-clock -F 999 -p "$SERVER_PID" -o "$WORK/perf.data" 2>/dev/null &
  PROFILER=$!
  sleep 0.5
}
profile_stop() {
  [ -n "$PROFILER" ] || return 0
  kill -INT "$PROFILER"; wait "$PROFILER" || true
  PROFILER=
  {
    perf report -i "$WORK/perf.data" --stdio --sort comm 2>/dev/null | grep '%'
    perf report -i "$WORK/perf.data" --stdio --sort dso 2>/dev/null | grep '%'
    perf report -i "$WORK/perf.data" --stdio --sort comm,dso,symbol --percent-limit 0.3 2>/dev/null | grep '%'
  } | sed 's/ *$//' >"$RESULTS/$STAMP.$target.$1.profile.txt" || true
}

open_files() { ls /proc/"$1"/fd | wc -l; }

# The scenarios: each runs against the server started last ($target at $SERVER).
scenario_broadcast() {
  local base held per cpu switches_before switches_after
  base=$(pss_kib "$SERVER_PID")
  listeners "$target" broadcast 20 1
  sleep 2
  held=$(pss_kib "$SERVER_PID")
  per=$(python3 -c "print(round(($held - $base) * 1024 / $OPEN))")
  profile_start
  cpu=$(cpu_ms "$SERVER_PID")
  read -r -a switches_before < <(ctx_switches "$SERVER_PID")
  "$LOAD" publish --target "$target" --server "$SERVER" --mode broadcast --events 20 --rate 5 \
    --api-key="${API_KEY:-}" >"$WORK/publish" 2>&1
  sleep 1
  cpu=$(($(cpu_ms "$SERVER_PID") - cpu))
  read -r -a switches_after < <(ctx_switches "$SERVER_PID")
  profile_stop broadcast
  collect "$target" broadcast "{\"repeat\": $repeat, \"server_cpu_ms\": $cpu, \"server_switches\": [$((switches_after[0] - switches_before[0])), $((switches_after[1] - switches_before[1]))], \"base_pss_kib\": $base, \"held_pss_kib\": $held, \"bytes_per_connection\": $per, \"publish\": $(tail -1 "$WORK/publish")}"
}

scenario_users() {
  local saved=$CONNECTIONS
  CONNECTIONS=$USERS
  listeners "$target" users $((FAST + PACED)) "$USERS"
  "$LOAD" publish --target "$target" --server "$SERVER" --mode users --users "$USERS" --events "$FAST" \
    --rate "$USERS_RATE" --batch 20 --concurrency 16 --api-key="${API_KEY:-}" >"$WORK/publish.fast" 2>&1
  "$LOAD" publish --target "$target" --server "$SERVER" --mode users --users "$USERS" --start "$FAST" \
    --events "$PACED" --rate 5000 --batch 1 --concurrency 64 --api-key="${API_KEY:-}" >"$WORK/publish.paced" 2>&1
  CONNECTIONS=$saved
  collect "$target" users "{\"repeat\": $repeat, \"asked\": $USERS_RATE, \"fast\": $(tail -1 "$WORK/publish.fast"), \"paced\": $(tail -1 "$WORK/publish.paced")}"
}

# single_event_publishes NAME LOAD-OPTIONS…: SINGLE_USERS streams, then single-event
# publishes to them; one result line with the server's CPU over the publishing and 1 s after.
single_event_publishes() {
  local name=$1 saved=$CONNECTIONS cpu
  shift
  CONNECTIONS=$SINGLE_USERS
  listeners "$target" users "$EVENTS" "$SINGLE_USERS"
  CONNECTIONS=$saved
  profile_start
  cpu=$(cpu_ms "$SERVER_PID")
  "$LOAD" publish --target "$target" --server "$SERVER" --mode users --users "$SINGLE_USERS" \
    --events "$EVENTS" --batch 1 "$@" --api-key="${API_KEY:-}" >"$WORK/publish.$name" 2>&1
  sleep 1
  cpu=$(($(cpu_ms "$SERVER_PID") - cpu))
  profile_stop "$name"
  collect "$target" "$name" "{\"repeat\": $repeat, \"server_cpu_ms\": $cpu, \"publish\": $(tail -1 "$WORK/publish.$name")}"
}

scenario_single() {
  EVENTS=$SINGLE_EVENTS single_event_publishes single --concurrency 16
}

scenario_steady() {
  EVENTS=$((STEADY_RATE * STEADY_SECONDS)) single_event_publishes steady \
    --rate "$STEADY_RATE" --from-due --concurrency 64
}

scenario_churn() {
  # The broadcasts go on 10 s past the churn, so the server is measured again with the
  # 17,000 still open and the churn over: open files and memory should be back where they were.
  local saved=$CONNECTIONS events=$(((CHURN_SECONDS + 10) * 5)) churner publisher
  local files_before pss_before files_after pss_after
  CONNECTIONS=$CHURN_STABLE
  DURATION=$((CHURN_SECONDS + 60)) listeners "$target" broadcast "$events" 1
  CONNECTIONS=$saved
  files_before=$(open_files "$SERVER_PID"); pss_before=$(pss_kib "$SERVER_PID")
  # Eight source addresses of its own: a minute of churn leaves 60,000 ports in TIME_WAIT.
  profile_start
  "$LOAD" churn --target "$target" --server "$SERVER" --source "127.1.$((NEXT_SOURCE % 250)).2" --sources 8 \
    --rate 1000 --seconds "$CHURN_SECONDS" --hold-ms 1000 --tenant bench --kid="${KID:-}" \
    --secret="${SECRET:-}" >"$WORK/churn" 2>&1 &
  churner=$!
  NEXT_SOURCE=$((NEXT_SOURCE + 1))
  "$LOAD" publish --target "$target" --server "$SERVER" --mode broadcast --events "$events" --rate 5 \
    --api-key="${API_KEY:-}" >"$WORK/publish.churn" 2>&1 &
  publisher=$!
  wait "$churner"
  profile_stop churn
  sleep 3
  files_after=$(open_files "$SERVER_PID"); pss_after=$(pss_kib "$SERVER_PID")
  wait "$publisher"
  collect "$target" churn "{\"repeat\": $repeat, \"files_before\": $files_before, \"files_after\": $files_after, \"pss_before_kib\": $pss_before, \"pss_after_kib\": $pss_after, \"churn\": $(tail -1 "$WORK/churn"), \"publish\": $(tail -1 "$WORK/publish.churn")}"
}

scenario_opens() {
  # What opening a stream costs the server, without any other load: 15,000 streams opened
  # at 1,000 a second, each held 1 s; the server's CPU time over them, per stream.
  local cpu
  profile_start
  cpu=$(cpu_ms "$SERVER_PID")
  "$LOAD" churn --target "$target" --server "$SERVER" --source "127.1.$((NEXT_SOURCE % 250)).2" --sources 8 \
    --rate 1000 --seconds 15 --hold-ms 1000 --tenant bench --kid="${KID:-}" --secret="${SECRET:-}" \
    >"$WORK/opens" 2>&1
  profile_stop opens
  NEXT_SOURCE=$((NEXT_SOURCE + 1))
  cpu=$(($(cpu_ms "$SERVER_PID") - cpu))
  echo "{\"target\": \"$target\", \"scenario\": \"opens\", \"repeat\": $repeat, \"server_cpu_ms\": $cpu, \"churn\": $(tail -1 "$WORK/opens")}" >>"$RAW"
}

scenario_replay() {
  local saved=$CONNECTIONS first resume=()
  # One request at a time, so the events' numbers are their order in the log too.
  "$LOAD" publish --target "$target" --server "$SERVER" --mode users --users 1 --events "$REPLAY_EVENTS" \
    --batch 100 --concurrency 1 --api-key="${API_KEY:-}" >"$WORK/publish.replay" 2>&1
  if [ "$target" = herald ]; then
    first=$(curl -sf "http://$SERVER/v1/events?user=u0&limit=1" -H "Authorization: Bearer $API_KEY" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["events"][0]["id"])')
    resume=(--last-event-id "${first%-*}-0")
  else
    resume=(--from-oldest)
  fi
  CONNECTIONS=1
  EXTRA=("${resume[@]}")
  profile_start
  listeners "$target" users "$REPLAY_EVENTS" 1
  EXTRA=()
  CONNECTIONS=$saved
  collect "$target" replay "{\"repeat\": $repeat, \"events\": $REPLAY_EVENTS}"
  profile_stop replay
}

# scaleout: four Herald nodes on one PostgreSQL 15 and one Redis (both private to the run),
# $CONNECTIONS connections on each; SCALE_EVENTS broadcasts, one a second, published on
# node 1; delivery latency on node 1 (local) and on nodes 2–4 (through Redis).
PG_BIN=/usr/lib/postgresql/15/bin
PG_PORT=25532
REDIS_PORT=26479
SCALE_EVENTS=10
start_backends() {
  chmod 755 "$WORK"
  rm -rf "$WORK/pg" && mkdir -p "$WORK/pg" && chown postgres "$WORK/pg"
  su postgres -c "$PG_BIN/initdb -D $WORK/pg/data -A trust -U postgres" >/dev/null
  su postgres -c "$PG_BIN/pg_ctl -D $WORK/pg/data -l $WORK/pg/log -w start \
    -o '-p $PG_PORT -k $WORK/pg -c listen_addresses=127.0.0.1 -c max_connections=200'" >/dev/null
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no >"$WORK/redis.log" 2>&1 &
  PIDS+=($!)
}
stop_backends() {
  [ -d "$WORK/pg/data" ] && su postgres -c "$PG_BIN/pg_ctl -D $WORK/pg/data -m fast stop" >/dev/null 2>&1 || true
}

scenario_scaleout() {
  local db="postgres://postgres@127.0.0.1:$PG_PORT/postgres" node servers=()
  start_backends
  rm -rf "$WORK/herald" && mkdir -p "$WORK/herald"
  for node in 1 2 3 4; do
    herald_node $((HERALD_PORT + node)) "$db" "redis://127.0.0.1:$REDIS_PORT"
    servers+=("$SERVER_PID")
  done
  bench_tenant $((HERALD_PORT + 1))
  local opened=()
  for node in 1 2 3 4; do
    SERVER=127.0.0.1:$((HERALD_PORT + node))
    PREFIX=scale$node. DURATION=120 listeners herald broadcast "$SCALE_EVENTS" 1
    opened+=("$OPEN")
    ALL_LISTENERS+=("${LISTENERS[@]}")
  done
  "$LOAD" publish --target herald --server "127.0.0.1:$((HERALD_PORT + 1))" --mode broadcast \
    --events "$SCALE_EVENTS" --rate 1 --api-key="$API_KEY" >"$WORK/publish.scale" 2>&1
  for pid in "${ALL_LISTENERS[@]}"; do wait "$pid"; done
  ALL_LISTENERS=()
  python3 - "$WORK" "$repeat" >>"$RAW" <<'PY'
import glob, json, sys
work, repeat = sys.argv[1], int(sys.argv[2])
for node in (1, 2, 3, 4):
    reports = [json.loads(open(f).read().splitlines()[-1]) for f in sorted(glob.glob(f"{work}/scale{node}.listen.*")) if not f.endswith(".err")]
    samples = sorted(int(line) for f in glob.glob(f"{work}/scale{node}.samples.*") for line in open(f))
    q = lambda x: round(samples[min(len(samples) - 1, int(x * len(samples)))] / 1000, 3) if samples else None
    print(json.dumps({"target": "herald", "scenario": "scaleout", "repeat": repeat, "node": node,
        "connections": sum(r["connections"] for r in reports), "failed": sum(r["failed"] for r in reports),
        "received": sum(r["received"] for r in reports), "lost": sum(r["lost"] for r in reports),
        "duplicates": sum(r["duplicates"] for r in reports), "out_of_order": sum(r["out_of_order"] for r in reports),
        "p50_ms": q(0.5), "p99_ms": q(0.99), "p999_ms": q(0.999), "max_ms": q(1.0)}))
PY
  for pid in "${servers[@]}"; do kill "$pid"; wait "$pid" 2>/dev/null || true; done
  stop_backends
}
ALL_LISTENERS=()

scenario_noisy() {
  # A asks NOISY_A_ASK events/s for longer than both phases take.
  local saved=$CONNECTIONS a_key=$API_KEY a_kid=$KID a_secret=$SECRET a_events=$((NOISY_A_ASK * (NOISY_SECONDS * 2 + 60)))
  local b_events=$((NOISY_SECONDS * 100)) storm phase
  bench_tenant "$HERALD_PORT" neighbour
  local b_key=$API_KEY b_kid=$KID b_secret=$SECRET
  curl -sf -X PATCH "http://127.0.0.1:$HERALD_PORT/admin/tenants/bench" -H "Authorization: Bearer $ADMIN" \
    -H 'Content-Type: application/json' \
    -d "{\"limits\": {\"publish_per_sec\": $NOISY_A_RATE, \"publish_burst\": $NOISY_A_RATE}}" >/dev/null
  CONNECTIONS=$((saved - 1000))
  KID=$a_kid SECRET=$a_secret PREFIX=a. DURATION=$((NOISY_SECONDS * 2 + 120)) \
    listeners herald broadcast "$a_events" 1
  local a_listeners=("${LISTENERS[@]}")
  CONNECTIONS=1000
  for phase in idle storm; do
    TENANT=neighbour KID=$b_kid SECRET=$b_secret DURATION=$((NOISY_SECONDS + 30)) \
      listeners herald users "$b_events" 1000
    storm=
    if [ "$phase" = storm ]; then
      "$LOAD" publish --target herald --server "$SERVER" --mode broadcast --events "$a_events" \
        --rate "$NOISY_A_ASK" --batch 10 --concurrency 4 --api-key="$a_key" >"$WORK/publish.storm" 2>&1 &
      storm=$!
      sleep 2
    fi
    "$LOAD" publish --target herald --server "$SERVER" --mode users --users 1000 \
      --events "$b_events" --rate 100 --api-key="$b_key" >"$WORK/publish.neighbour" 2>&1
    local a_published=0 behind
    if [ -n "$storm" ]; then
      kill "$storm"; wait "$storm" 2>/dev/null || true
      a_published=$(curl -sf "http://$SERVER/metrics" | awk '/^herald_tenant_published_total\{tenant="bench"\}/ {print $2}')
    fi
    behind=$(grep -c "faster than its streams" "$WORK/herald/log.$HERALD_PORT" || true)
    collect herald noisy "{\"repeat\": $repeat, \"phase\": \"$phase\", \"a_published\": ${a_published:-0}, \"a_shards_behind\": $behind, \"publish\": $(tail -1 "$WORK/publish.neighbour")}"
  done
  for pid in "${a_listeners[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  CONNECTIONS=$saved API_KEY=$a_key KID=$a_kid SECRET=$a_secret
}

scenario_rejected() {
  command -v wrk >/dev/null || { apt-get install -y -qq --no-install-recommends wrk >/dev/null; }
  local open_key=$API_KEY hammer_key slug key round cpu before answered
  bench_tenant "$HERALD_PORT" hammer
  hammer_key=$API_KEY
  curl -sf -X PATCH "http://127.0.0.1:$HERALD_PORT/admin/tenants/hammer" -H "Authorization: Bearer $ADMIN" \
    -H 'Content-Type: application/json' -d '{"limits": {"publish_per_sec": 1, "publish_burst": 1}}' >/dev/null
  cat >"$WORK/publish.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"to":{"user":"u1"},"data":{"n":1}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("KEY")
done = function(summary, latency, requests)
  local codes = 0
  io.write(string.format('{"requests": %d, "seconds": %.3f, "p50_ms": %.3f, "p99_ms": %.3f, "non_2xx": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status))
end
LUA
  for round in 1 2; do
    for slug in open hammer; do
      key=$open_key; [ "$slug" = hammer ] && key=$hammer_key
      before=$(cpu_ms "$SERVER_PID")
      KEY=$key wrk -t1 -c16 -d8s -s "$WORK/publish.lua" "http://$SERVER/v1/events" >"$WORK/wrk.$slug" 2>&1
      cpu=$(( $(cpu_ms "$SERVER_PID") - before ))
      answered=$(tail -1 "$WORK/wrk.$slug")
      echo "{\"target\": \"herald\", \"scenario\": \"rejected\", \"repeat\": $repeat, \"round\": $round, \"tenant\": \"$slug\", \"server_cpu_ms\": $cpu, \"wrk\": $answered}" >>"$RAW"
    done
  done
}

for repeat in $(seq 1 "$REPEATS"); do
  for target in $TARGETS; do
    # broadcast and users share a server (memory is measured on its first connections);
    # churn and replay each start from a fresh one.
    if wants broadcast || wants users; then
      "start_$target"
      sleep 1
      if wants broadcast; then scenario_broadcast; fi
      if wants users; then scenario_users; fi
      stop_server
    fi
    for scenario in single steady churn opens replay scaleout noisy rejected; do
      case $scenario in scaleout | noisy | rejected) [ "$target" = herald ] || continue ;; esac  # Herald's own
      if wants "$scenario" && [ "$scenario" = scaleout ]; then
        scenario_scaleout
      elif wants "$scenario"; then
        "start_$target"
        sleep 1
        "scenario_$scenario"
        stop_server
      fi
    done
  done
done

python3 - "$RAW" >"$RESULTS/$STAMP.md" <<'PY'
import json, sys, statistics
rows = [json.loads(line) for line in open(sys.argv[1])]
def med(target, scenario, get):
    values = []
    for r in rows:
        if r["target"] == target and r["scenario"] == scenario:
            try:
                values.append(get(r))
            except (KeyError, TypeError):
                pass
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None
runs = len({r["repeat"] for r in rows})
print(f"| metric (median of {runs} runs) | Herald | nchan | Herald/nchan |")
print("|---|---|---|---|")
lines = [
    ("broadcast", lambda r: r["connections"], "connections held"),
    ("broadcast", lambda r: r["bytes_per_connection"], "server memory per idle connection (bytes, PSS)"),
    ("broadcast", lambda r: r["p50_ms"], "broadcast p50 (ms)"),
    ("broadcast", lambda r: r["p99_ms"], "broadcast p99 (ms)"),
    ("broadcast", lambda r: r["p999_ms"], "broadcast p99.9 (ms)"),
    ("broadcast", lambda r: r["max_ms"], "broadcast max (ms)"),
    ("broadcast", lambda r: r["lost"] + r["duplicates"], "broadcast events lost + duplicated"),
    ("broadcast", lambda r: round(r["server_cpu_ms"] * 1000 / r["received"], 2), "server CPU per delivered broadcast event (µs, all threads)"),
    ("broadcast", lambda r: round(r["server_switches"][1] * 1000 / r["received"]), "server threads preempted per 1,000 deliveries (involuntary context switches)"),
    ("broadcast", lambda r: round(r["server_switches"][0] * 1000 / r["received"]), "server threads waiting per 1,000 deliveries (voluntary context switches)"),
    ("users", lambda r: r.get("asked", 20000), "per-user events/s asked (20 per request, 16 connections)"),
    ("users", lambda r: r["fast"]["events_per_second"], "per-user events/s achieved"),
    ("users", lambda r: r["fast"]["request_latency"]["p99_ms"], "publish request p99 at that rate (ms)"),
    ("users", lambda r: r["paced"]["request_latency"]["p99_ms"], "publish request p99 at 5,000/s, 1 event each (ms)"),
    ("users", lambda r: r["p50_ms"], "per-user delivery p50 (ms)"),
    ("users", lambda r: r["p99_ms"], "per-user delivery p99 (ms)"),
    ("users", lambda r: r["lost"] + r["duplicates"], "per-user events lost + duplicated"),
    ("single", lambda r: r["publish"]["events_per_second"], "single-event publishes, 16 connections as fast as answered: events/s"),
]
for scenario, name in (("single", "single, saturated"), ("steady", "single at 2,000/s, open loop")):
    lines += [
        (scenario, lambda r: r["publish"]["request_latency"]["p50_ms"], f"{name}: publish p50 (ms)"),
        (scenario, lambda r: r["publish"]["request_latency"]["p99_ms"], f"{name}: publish p99 (ms)"),
        (scenario, lambda r: r["p50_ms"], f"{name}: delivery p50 (ms)"),
        (scenario, lambda r: r["p99_ms"], f"{name}: delivery p99 (ms)"),
        (scenario, lambda r: r["lost"] + r["duplicates"] + r["out_of_order"], f"{name}: events lost + duplicated + out of order"),
        (scenario, lambda r: round(r["server_cpu_ms"] * 1000 / r["publish"]["events"], 1), f"{name}: server CPU per event, delivery included (µs)"),
    ]
lines += [
    ("churn", lambda r: r["churn"]["attempted"], "churn: streams opened and closed in the minute"),
    ("churn", lambda r: r["churn"]["failed"], "churn: streams that failed to open"),
    ("churn", lambda r: r["churn"]["closed_early"], "churn: streams the server ended early"),
    ("churn", lambda r: r["churn"]["open_latency"]["p99_ms"], "churn: stream open p99 (ms)"),
    ("churn", lambda r: r["lost"] + r["duplicates"], "churn: broadcasts lost + duplicated on the 17,000"),
    ("churn", lambda r: r["p99_ms"], "churn: broadcast p99 on the 17,000 (ms)"),
    ("churn", lambda r: r["files_after"] - r["files_before"], "churn: server open files, after − before"),
    ("churn", lambda r: r["pss_after_kib"] - r["pss_before_kib"], "churn: server PSS after − before (KiB)"),
    ("scaleout", lambda r: r["connections"] if r["node"] == 1 else None, "scale-out: connections on the publishing node"),
    ("scaleout", lambda r: r["p50_ms"] if r["node"] == 1 else None, "scale-out: broadcast p50 on the publishing node (ms)"),
    ("scaleout", lambda r: r["p99_ms"] if r["node"] == 1 else None, "scale-out: broadcast p99 on the publishing node (ms)"),
    ("scaleout", lambda r: r["p50_ms"] if r["node"] != 1 else None, "scale-out: broadcast p50 on the three other nodes (ms)"),
    ("scaleout", lambda r: r["p99_ms"] if r["node"] != 1 else None, "scale-out: broadcast p99 on the three other nodes (ms)"),
    ("scaleout", lambda r: r["lost"] + r["duplicates"] + r["out_of_order"], "scale-out: events lost + duplicated + out of order (per node)"),
    ("opens", lambda r: round(r["server_cpu_ms"] * 1000 / r["churn"]["opened"]), "opens alone: server CPU per stream opened (µs)"),
    ("opens", lambda r: r["churn"]["open_latency"]["p99_ms"], "opens alone: stream open p99 (ms)"),
    ("replay", lambda r: r.get("events", 10000), "replay: missed events"),
    ("replay", lambda r: r["seconds_to_complete"], "replay: seconds until all held"),
    ("replay", lambda r: r["lost"] + r["duplicates"] + r["out_of_order"], "replay events lost + duplicated + out of order"),
    ("noisy", lambda r: r["p50_ms"] if r["phase"] == "idle" else None, "noisy: B's delivery p50, A idle (ms)"),
    ("noisy", lambda r: r["p99_ms"] if r["phase"] == "idle" else None, "noisy: B's delivery p99, A idle (ms)"),
    ("noisy", lambda r: r["p50_ms"] if r["phase"] == "storm" else None, "noisy: B's delivery p50, A storming (ms)"),
    ("noisy", lambda r: r["p99_ms"] if r["phase"] == "storm" else None, "noisy: B's delivery p99, A storming (ms)"),
    ("noisy", lambda r: r["publish"]["request_latency"]["p50_ms"] if r["phase"] == "idle" else None, "noisy: B's publish p50, A idle (ms)"),
    ("noisy", lambda r: r["publish"]["request_latency"]["p99_ms"] if r["phase"] == "idle" else None, "noisy: B's publish p99, A idle (ms)"),
    ("noisy", lambda r: r["publish"]["request_latency"]["p50_ms"] if r["phase"] == "storm" else None, "noisy: B's publish p50, A storming (ms)"),
    ("noisy", lambda r: r["publish"]["request_latency"]["p99_ms"] if r["phase"] == "storm" else None, "noisy: B's publish p99, A storming (ms)"),
    ("noisy", lambda r: r["lost"] + r["duplicates"], "noisy: B's events lost + duplicated"),
    ("noisy", lambda r: r["a_published"] if r["phase"] == "storm" else None, "noisy: A's broadcasts stored during its storm (each to N − 1,000 streams)"),
    ("noisy", lambda r: r["a_shards_behind"] if r["phase"] == "storm" else None, "noisy: shards that closed A's streams as too far behind"),
]
for tenant, answer in (("open", "stored (201)"), ("hammer", "refused (429)")):
    pick = lambda get, t=tenant: (lambda r: get(r) if r["tenant"] == t else None)
    lines += [
        ("rejected", pick(lambda r: round(r["wrk"]["requests"] / r["wrk"]["seconds"])), f"publish {answer}: requests/s"),
        ("rejected", pick(lambda r: r["wrk"]["p50_ms"]), f"publish {answer}: p50 (ms)"),
        ("rejected", pick(lambda r: r["wrk"]["p99_ms"]), f"publish {answer}: p99 (ms)"),
        ("rejected", pick(lambda r: round(r["server_cpu_ms"] * 1000 / r["wrk"]["requests"])), f"publish {answer}: server CPU per request (µs)"),
    ]
for scenario, get, label in lines:
    h, n = med("herald", scenario, get), med("nchan", scenario, get)
    if h is None and n is None:
        continue  # a scenario not run this time
    ratio = f"{h / n:.2f}" if h is not None and n else "–"
    print(f"| {label} | {h} | {n} | {ratio} |")
PY
cat "$RESULTS/$STAMP.md"
