#!/usr/bin/env bash
# The contract run: schemathesis (--checks all, a fixed seed) against a live Herald built
# from this tree, with a credential for each security scheme, after the OpenAPI document
# passes openapi-spec-validator. Any failure of any check fails the run.
#
# Two passes on one server: first everything a tenant's backend, a browser and a probe
# call; then the operator API, whose generated calls may revoke keys and delete tenants —
# including the one the first pass authenticates as.
#
#   tests/schemathesis/run.sh            (needs: cargo, curl, python3 with pip)
#   EXAMPLES=200 tests/schemathesis/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
here=tests/schemathesis

python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
  -r "$here/requirements.txt"
cargo build --quiet --bin herald

work=$(mktemp -d /tmp/herald-contract.XXXXXX)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
admin_token=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
HERALD__DATABASE__URL="sqlite://$work/herald.db" HERALD__SERVER__PORT=$port \
  HERALD__ADMIN__TOKEN=$admin_token HERALD__JWT__LEEWAY_SECS=0 HERALD__DEMO__ENABLED=false \
  target/debug/herald serve >"$work/herald.log" 2>&1 &
herald=$!
trap 'kill $herald 2>/dev/null || true; wait $herald 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do
  curl -sf "$base/healthz" >/dev/null && break
  sleep 0.1
done

curl -sf "$base/openapi.json" >"$work/openapi.json"
openapi-spec-validator "$work/openapi.json"

admin() { curl -sf -X POST -H "Authorization: Bearer $admin_token" -H 'Content-Type: application/json' "$@"; }
field() { python3 -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }
admin -d '{"slug": "contract", "allowed_origins": ["https://app.example.com"]}' \
  "$base/admin/tenants" >/dev/null
api_key=$(admin -d '{}' "$base/admin/tenants/contract/api-keys" | field key)
signing_key=$(admin -d '{}' "$base/admin/tenants/contract/signing-keys")
export HERALD_CONTRACT_KID=$(field kid <<<"$signing_key")
export HERALD_CONTRACT_SECRET=$(field secret <<<"$signing_key")
export HERALD_ADMIN_TOKEN=$admin_token HERALD_API_KEY=$api_key
export PYTHONPATH=$here SCHEMATHESIS_HOOKS=hooks

run() {
  st --config-file "$here/schemathesis.toml" run "$base/openapi.json" \
    --checks all --max-examples "${EXAMPLES:-100}" --request-timeout 10 \
    --report ndjson --report-dir "$work/report-$1" "${@:2}"
}
# The live tail is endless by design and no credential of this run expires to end it (a
# stream's does): tests/api/watching.rs holds it to its description instead.
run backend --exclude-tag operator --exclude-path /v1/tail
# What the first pass reached: publishes committed, streams served to their end, history
# pages read — not only refusals.
python3 "$here/reached.py" "$work/report-backend"
run operator --include-tag operator
if grep -q ERROR "$work/herald.log"; then
  echo "contract: Herald logged an error:" >&2
  grep ERROR "$work/herald.log" >&2
  exit 1
fi
echo "contract: no failure"
