#!/usr/bin/env bash
# scripts/conformance.sh local|scale -- starts target/debug/drey on the embedded default
# (local) or on PostgreSQL + S3 (scale, from DREY_TEST_POSTGRES, DREY_TEST_S3_BUCKET and the
# AWS_* variables), then runs the spec-only client and schemathesis against the TAMS 8.2
# spec for every operation drey implements (profiles and object instances are
# not implemented yet and are excluded).
set -Eeuo pipefail
cd "$(dirname "$0")/.."
BACKEND=${1:?usage: conformance.sh local|scale}
SPEC=../shared/tams/api/TimeAddressableMediaStore.yaml
[ -f "$SPEC" ] || SPEC=spec/tams-8.2/api/TimeAddressableMediaStore.yaml
WORK=$(mktemp -d "${TMPDIR:-/tmp}/drey-conformance.XXXXXX")
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT
ARGS=(serve --data-dir "$WORK/data" --http "127.0.0.1:$PORT")
if [ "$BACKEND" = scale ]; then
  DB=$(python3 - <<'PY'
import os, subprocess, urllib.parse, uuid
admin = os.environ["DREY_TEST_POSTGRES"]
name = "drey_conf_" + uuid.uuid4().hex[:12]
subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True)
print(urllib.parse.urlparse(admin)._replace(path="/" + name).geturl())
PY
)
  ARGS+=(--database "$DB" --objects "s3://$DREY_TEST_S3_BUCKET")
fi
target/debug/drey "${ARGS[@]}" >"$WORK/drey.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 200); do curl -fsS "$BASE/service" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "$BASE/service" >/dev/null || { cat "$WORK/drey.log"; exit 1; }

echo "-- [$BACKEND] spec-only client"
python3 scripts/spec_client.py "$BASE"
python3 scripts/spec_client.py "$BASE" --seed "$WORK/seed.env"
# shellcheck disable=SC1091
. "$WORK/seed.env"

CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
EXCLUDE='^/service/profiles|/instances$'
# filter_too_much is a health check of schemathesis' own generator (it gave up finding values for
# a path parameter, e.g. the tag `name` of DELETE /sources/{id}/tags/{name}); it says nothing about
# drey, and on an unlucky seed it failed CI once (2026-11-29), so it is suppressed.
run_st() {  # [--config-file F] run-options...
  local global=()
  if [ "${1:-}" = --config-file ]; then global=(--config-file "$2"); shift 2; fi
  schemathesis "${global[@]}" run "$SPEC" --url "$BASE" --exclude-path-regex "$EXCLUDE" \
    -n "${DREY_ST_EXAMPLES:-25}" --suppress-health-check=filter_too_much "$@" >"$WORK/st.out" 2>&1 || { cat "$WORK/st.out"; tail -50 "$WORK/drey.log"; exit 1; }
  grep -E "generated|^Seed" "$WORK/st.out" | sed "s/^/   /"
}
echo "-- [$BACKEND] schemathesis, generated ids"
run_st -c "$CHECKS" --mode positive
echo "-- [$BACKEND] schemathesis, ids of a flow with segments"
cat >"$WORK/st.toml" <<TOML
[parameters]
flowId = "$DREY_ST_FLOW"
sourceId = "$DREY_ST_SOURCE"
objectId = "$DREY_ST_OBJECT"
TOML
run_st --config-file "$WORK/st.toml" -c "$CHECKS" --mode positive
echo "-- [$BACKEND] schemathesis, invalid requests (no 5xx, JSON errors)"
run_st --config-file "$WORK/st.toml" -c not_a_server_error,content_type_conformance --mode negative
grep -E " (ERROR|WARN) " "$WORK/drey.log" | grep -v "gc pass" | head -5 || true
echo "conformance [$BACKEND]: passed"
