#!/usr/bin/env bash
# The Docker image and the compose deployment, end to end:
#   image    builds; starts; answers /healthz; its process runs as uid 10001, not root; its
#            HEALTHCHECK passes; SIGTERM stops it promptly with exit code 0
#   compose  PostgreSQL, Redis, two Herald nodes and nginx come up; through the entry
#            point a tenant is made, a stream opened and an event published and received
#
#   tests/container/run.sh
#
# Runs with podman (through ../shared/tools/container where that exists: it provides the
# base images on machines without a registry). Where podman is absent it says so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v podman >/dev/null; then
  echo "container tests skipped: podman is not installed"
  exit 0
fi
TOOL=$(cd .. && pwd)/shared/tools/container
# The base images come from a registry, or (machines without one) from the tool's setup.
if ! podman image exists docker.io/library/rust:1.95-bookworm 2>/dev/null &&
  ! { [ -x "$TOOL" ] && "$TOOL" podman image exists docker.io/library/rust:1.95-bookworm; } &&
  ! timeout 120 podman pull -q docker.io/library/rust:1.95-bookworm >/dev/null 2>&1; then
  echo "container tests skipped: no rust:1.95-bookworm image (no registry here; run ../shared/tools/container setup)"
  exit 0
fi
if [ -x "$TOOL" ]; then
  PODMAN=("$TOOL" podman)
  build() { "$TOOL" build "$@"; }
else
  PODMAN=(podman)
  build() { podman build -t "$1" "$2"; }
fi
pod() { "${PODMAN[@]}" "$@"; }
# Compose talks to a Docker-API socket. This script serves its own from podman and stops it
# on exit: a socket file left by a service that died with an earlier session answers
# nothing, and a shared one would outlive the test.
SERVICE_DIR=$(mktemp -d)
SERVICE_PID=
compose() {
  if [ -z "$SERVICE_PID" ]; then
    # its own process group, so that stopping it stops the wrapper and podman alike
    setsid "${PODMAN[@]}" system service --time=0 "unix://$SERVICE_DIR/podman.sock" \
      >"$SERVICE_DIR/service.log" 2>&1 &
    SERVICE_PID=$!
    for _ in $(seq 1 100); do
      curl -sf --unix-socket "$SERVICE_DIR/podman.sock" http://podman/_ping >/dev/null && break
      sleep 0.1
    done
  fi
  DOCKER_HOST="unix://$SERVICE_DIR/podman.sock" DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0 \
    docker-compose "$@"
}
stop_service() {
  if [ -n "$SERVICE_PID" ]; then
    kill -TERM -- "-$SERVICE_PID" 2>/dev/null || true
    wait "$SERVICE_PID" 2>/dev/null || true
  fi
  rm -rf "$SERVICE_DIR"
}

IMAGE=localhost/herald:test
NAME=herald-container-test
PORT=18580
ADMIN=container-test-admin-token
fail() { echo "container test FAILED: $*" >&2; exit 1; }

wait_healthz() {
  for _ in $(seq 1 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1/healthz")" = 200 ] && return 0
    sleep 0.2
  done
  fail "no /healthz at $1"
}

echo "== image"
build "$IMAGE" .
pod rm -f "$NAME" >/dev/null 2>&1 || true
trap 'pod rm -f "$NAME" >/dev/null 2>&1 || true; stop_service' EXIT
pod run -d --name "$NAME" -p "$PORT:$PORT" -e HERALD__SERVER__PORT="$PORT" \
  -e HERALD__ADMIN__TOKEN="$ADMIN" "$IMAGE" >/dev/null
wait_healthz "http://127.0.0.1:$PORT"
uid=$(pod exec "$NAME" sh -c "awk '/^Uid:/ {print \$2}' /proc/1/status")
[ "$uid" = 10001 ] || fail "the server runs as uid $uid"
pod healthcheck run "$NAME" || fail "HEALTHCHECK failed"
began=$(date +%s%N)
pod stop -t 20 "$NAME" >/dev/null
took_ms=$((($(date +%s%N) - began) / 1000000))
code=$(pod inspect --format '{{.State.ExitCode}}' "$NAME")
[ "$code" = 0 ] || fail "exit code $code after SIGTERM"
[ "$took_ms" -lt 10000 ] || fail "SIGTERM took $took_ms ms"
echo "image: /healthz 200, uid $uid, HEALTHCHECK ok, SIGTERM → exit $code in $took_ms ms"

echo "== compose"
if ! command -v docker-compose >/dev/null; then
  echo "compose test skipped: docker-compose is not installed"
  exit 0
fi
if ! pod image exists docker.io/library/postgres:15-bookworm 2>/dev/null && [ -x "$TOOL" ]; then
  deploy/standins/build.sh
fi
export HERALD_ADMIN_TOKEN=$ADMIN POSTGRES_PASSWORD=container-test-password
trap 'compose down -v >/dev/null 2>&1 || true; pod rm -f "$NAME" >/dev/null 2>&1 || true; stop_service' EXIT
compose up -d --build
ENTRY=http://127.0.0.1:8080
wait_healthz "$ENTRY"
for _ in $(seq 1 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$ENTRY/readyz")" = 200 ] && break
  sleep 0.3
done
auth="Authorization: Bearer $ADMIN"
curl -sf -X POST "$ENTRY/admin/tenants" -H "$auth" -H 'Content-Type: application/json' \
  -d '{"slug":"acme"}' >/dev/null || fail "cannot create a tenant"
key=$(curl -sf -X POST "$ENTRY/admin/tenants/acme/api-keys" -H "$auth" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
read -r kid secret < <(curl -sf -X POST "$ENTRY/admin/tenants/acme/signing-keys" -H "$auth" \
  -H 'Content-Type: application/json' -d '{"alg":"HS256"}' |
  python3 -c 'import json,sys; k=json.load(sys.stdin); print(k["kid"], k["secret"])')
token=$(python3 - "$kid" "$secret" <<'PY'
import base64, hashlib, hmac, json, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": sys.argv[1]}).encode())
claims = b64(json.dumps({"sub": "u1", "aud": "herald", "exp": int(time.time()) + 600}).encode())
signature = hmac.new(sys.argv[2].encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
print(f"{header}.{claims}.{b64(signature)}")
PY
)
# Two streams through the entry point (round robin puts them on both nodes), then one
# publish: both streams must show it.
out=$(mktemp -d)
for i in 1 2; do
  curl -sN -m 15 "$ENTRY/t/acme/stream" -H "Authorization: Bearer $token" >"$out/stream.$i" &
done
sleep 2
curl -sf -X POST "$ENTRY/v1/events" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
  -d '{"to":{"user":"u1"},"type":"mail","data":{"subject":"hello from compose"}}' >/dev/null ||
  fail "publish failed"
for _ in $(seq 1 50); do
  grep -q 'hello from compose' "$out/stream.1" && grep -q 'hello from compose' "$out/stream.2" && break
  sleep 0.2
done
grep -q 'hello from compose' "$out/stream.1" || fail "stream 1 did not get the event"
grep -q 'hello from compose' "$out/stream.2" || fail "stream 2 did not get the event"
echo "compose: tenant made, event published through the entry point, both streams got it"
kill %1 %2 2>/dev/null || true
echo "container tests passed"
