#!/usr/bin/env bash
# scripts/test.sh -- drey's whole test suite, on a fresh Debian machine as on a developer's.
# Installs what is missing (Ceph RGW, PostgreSQL, Python tools), starts PostgreSQL and a
# throwaway Ceph RGW on loopback, then runs: formatting and lint checks, every Rust test
# (unit, index conformance on SQLite and PostgreSQL, object store on memory/local/RGW,
# end-to-end API tests on both backends, the web UI in headless Chromium), and the TAMS
# conformance pass (a spec-only client and schemathesis against the spec) on both backends.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
# Nothing here reads a terminal: children get an empty stdin, not whatever CI attached.
exec </dev/null
log() { printf '\n== %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

log "packages"
pkgs=()
command -v radosgw >/dev/null || pkgs+=(ceph-mon ceph-osd radosgw)
command -v pg_ctlcluster >/dev/null || pkgs+=(postgresql)
command -v curl >/dev/null || pkgs+=(curl)
command -v openssl >/dev/null || pkgs+=(openssl)
command -v ffmpeg >/dev/null || pkgs+=(ffmpeg)
command -v chromium >/dev/null || pkgs+=(chromium)
command -v npm >/dev/null || pkgs+=(nodejs npm)
if [ ${#pkgs[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi
python3 -c 'import schemathesis, boto3, requests, yaml' 2>/dev/null \
  || python3 -m pip install -q schemathesis boto3 requests pyyaml
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
# The web UI's pinned npm packages (playwright-core for its browser test); checks that the
# hls.js embedded in drey is the pinned package's.
scripts/ui-vendor.sh --check

log "PostgreSQL"
if ! pg_isready -q -h 127.0.0.1; then
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
fi
for _ in $(seq 100); do pg_isready -q -h 127.0.0.1 && break; sleep 0.1; done
PG=${DREY_TEST_POSTGRES:-postgres://postgres@127.0.0.1/postgres}
if ! psql "$PG" -qtAc 'select 1' >/dev/null 2>&1; then
  # A fresh Debian cluster wants a password on TCP: give the postgres role a test one.
  as_root su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'drey-test'\""
  PG=postgres://postgres:drey-test@127.0.0.1/postgres
fi
export DREY_TEST_POSTGRES=$PG

log "Ceph RGW"
scripts/ceph-rgw.sh start >/dev/null
trap 'scripts/ceph-rgw.sh stop' EXIT
# shellcheck disable=SC1090
. "${DREY_RGW_ENV:-${TMPDIR:-/tmp}/drey-rgw.env}"
export DREY_TEST_S3_BUCKET="drey-test-$(date +%s)-$$"
python3 -c "import boto3, os; boto3.client('s3').create_bucket(Bucket=os.environ['DREY_TEST_S3_BUCKET'])"

log "format and lints"
# Cargo caches rustc's answers (failures included) per target dir; a stale or poisoned entry
# once failed CI before a test ran (rustc fed garbage on stdin), so ask rustc afresh.
rm -f target/.rustc_info.json
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

log "Rust tests (SQLite, PostgreSQL, memory/local/RGW objects, end-to-end)"
cargo nextest run --workspace --no-fail-fast

log "TAMS conformance (spec-only client + schemathesis) on both backends"
cargo build --quiet --bin drey
scripts/conformance.sh local
scripts/conformance.sh scale
echo "test.sh: all suites passed"
