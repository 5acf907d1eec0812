#!/bin/sh
# Runs every system test script (tests/system/test_*.sh) against a private Ceph RADOS Gateway
# started for the run (s3-server.sh), and always stops it again, whatever happens.
# The scripts get the server's env lines (TEGULA_S3_URL, AWS_ACCESS_KEY_ID, ...) and
# TEGULA_BUILD, TEGULA_TESTDATA, TEGULA_TMP, TEGULA_S3_SERVER_SCRIPT.
set -u
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
export TEGULA_BUILD=$(cd "$build" && pwd)
export TEGULA_TESTDATA=${TEGULA_TESTDATA:-$(cd "$here/../../.." && pwd)/shared/testdata}
export TEGULA_TMP=${TEGULA_TMP:-$TEGULA_BUILD/tmp}
export TEGULA_S3_SERVER_SCRIPT="$here/s3-server.sh"
mkdir -p "$TEGULA_TMP"

work=$(mktemp -d "${TMPDIR:-/tmp}/tegula-system.XXXXXX")
cleanup() {
    if [ -f "$work/s3/ceph.conf" ]; then
        "$here/s3-server.sh" stop "$work/s3" || echo "system: stopping the S3 server failed" >&2
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

started=$(date +%s%N)
if ! "$here/s3-server.sh" start "$work/s3" >"$work/env"; then
    echo "system: could not start the S3 server (Ceph RGW); is 'tools/deps.sh system' done?" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
echo "== system: Ceph RGW up in $(( ($(date +%s%N) - started) / 1000000 )) ms"
set -a
. "$work/env"
set +a

passed=0 failed=0 failed_names=""
for t in "$here"/test_*.sh; do
    [ -f "$t" ] || continue
    name=$(basename "$t" .sh)
    echo "== system: $name"
    if sh "$t"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failed_names="$failed_names $name"
    fi
done
echo "system tests: $passed passed, $failed failed${failed_names:+ ($failed_names )}"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
