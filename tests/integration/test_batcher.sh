#!/bin/sh
# Integration test of the tegula-batcher process: command line and config errors exit 2; it
# starts, serves /healthz, /readyz (503 with no sequencer) and /metrics; SIGTERM stops it with
# exit 0; a damaged dedup database stops startup (exit 1) unless --recreate-db; a second
# batcher with the same id cannot take the database (exit 1). Submissions themselves are
# covered by the unit tests (tests/unit/test_batcher_batching.c), over real sockets.
# Run by tests/integration/run.sh (which sets TEGULA_BUILD), or alone:
#   TEGULA_BUILD=build sh tests/integration/test_batcher.sh
set -eu

here=$(cd "$(dirname "$0")" && pwd)
build=${TEGULA_BUILD:-$here/../../build}
batcher=$build/tegula-batcher
[ -x "$batcher" ] || { echo "FAIL: $batcher is not built" >&2; exit 1; }
for tool in curl grep sed; do
    command -v "$tool" >/dev/null || { echo "FAIL: this test needs '$tool'" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tegula-test-batcher.XXXXXX")
pids=""
cleanup() {
    for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

checks=0
check() {
    checks=$((checks + 1))
    echo "  check: $*"
}
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
expect_status() {
    want=$1
    shift
    set +e
    "$@" >"$tmp/out" 2>"$tmp/err"
    got=$?
    set -e
    if [ "$got" -ne "$want" ]; then
        echo "--- stdout:" >&2
        cat "$tmp/out" >&2
        echo "--- stderr:" >&2
        cat "$tmp/err" >&2
        fail "expected exit $want, got $got: $*"
    fi
}
contains() {
    grep -qF -- "$2" "$1" || { echo "--- $1:" >&2; cat "$1" >&2; fail "'$2' not found in $1"; }
}

cat >"$tmp/tegula.yaml" <<'EOF'
logs:
  - name: 2026h1
    submission_prefix: http://127.0.0.1:8080/2026h1/
    key: keys/2026h1.key
    roots: roots.pem
    not_after_start: 2026-01-01T00:00:00Z
    not_after_limit: 2026-07-01T00:00:00Z
    storage: file:data/2026h1/storage
    lock: file:data/2026h1/lock
    sequencer: tcp://127.0.0.1:1
  - name: 2026h2
    submission_prefix: http://127.0.0.1:8080/2026h2/
    key: keys/2026h2.key
    roots: roots.pem
    not_after_start: 2026-07-01T00:00:00Z
    not_after_limit: 2027-01-01T00:00:00Z
    storage: file:data/2026h2/storage
    lock: file:data/2026h2/lock
    sequencer: tcp://127.0.0.1:1
batchers:
  addresses: [tcp://127.0.0.1:9101]
  db: data/batcher
EOF

# start_batcher NAME ARGS...: starts it in the background with stderr in $tmp/NAME.log and
# waits for its "batcher started" line (or its exit). Sets $pid, $rpc_port, $http_port.
start_batcher() {
    name=$1
    shift
    : >"$tmp/$name.log"
    "$batcher" "$@" 2>>"$tmp/$name.log" &
    pid=$!
    pids="$pids $pid"
    i=0
    while ! grep -q 'msg="batcher started"' "$tmp/$name.log"; do
        kill -0 "$pid" 2>/dev/null || return 0
        i=$((i + 1))
        [ "$i" -lt 200 ] || fail "$name did not start in 20 s: $(cat "$tmp/$name.log")"
        sleep 0.1
    done
    rpc_port=$(sed -n 's/.*msg="batcher started".* rpc_port=\([0-9]*\).*/\1/p' "$tmp/$name.log")
    http_port=$(sed -n 's/.*msg="batcher started".* http_port=\([0-9]*\).*/\1/p' "$tmp/$name.log")
}

# stop_batcher SIGNAL: sends it and waits; sets $rc.
stop_batcher() {
    kill "-$1" "$pid"
    set +e
    wait "$pid"
    rc=$?
    set -e
}

echo "== usage and config errors exit 2"
expect_status 2 "$batcher"
contains "$tmp/err" "missing -c tegula.yaml"
check "no arguments: exit 2 with the reason"
expect_status 2 "$batcher" -c "$tmp/tegula.yaml"
contains "$tmp/err" "missing --listen"
check "no --listen: exit 2"
expect_status 2 "$batcher" -c "$tmp/tegula.yaml" --listen 127.0.0.1:9101
contains "$tmp/err" "want tcp://HOST:PORT"
check "--listen without a scheme: exit 2"
expect_status 2 "$batcher" -c "$tmp/tegula.yaml" --listen tcp://127.0.0.1:0 --bogus
contains "$tmp/err" "unknown option '--bogus'"
check "unknown option: exit 2"
expect_status 0 "$batcher" --help
contains "$tmp/out" "--recreate-db"
check "--help: exit 0"
sed 's/  db: data\/batcher/  db: data\/batcher\n  batch_max: "2"/' "$tmp/tegula.yaml" >"$tmp/bad.yaml"
expect_status 2 "$batcher" -c "$tmp/bad.yaml" --listen tcp://127.0.0.1:0
contains "$tmp/err" "bad.yaml:"
contains "$tmp/err" "batchers.batch_max"
check "bad config (a quoted number): exit 2 with FILE:LINE: field"
expect_status 2 "$batcher" -c "$tmp/missing.yaml" --listen tcp://127.0.0.1:0
contains "$tmp/err" "cannot open"
check "missing config: exit 2"

echo "== start, health endpoints, SIGTERM"
start_batcher b1 -c "$tmp/tegula.yaml" --listen tcp://127.0.0.1:0 --id b1 --http 127.0.0.1:0
kill -0 "$pid" || fail "batcher exited: $(cat "$tmp/b1.log")"
[ -n "$rpc_port" ] && [ "$rpc_port" -gt 0 ] || fail "no rpc_port in $(cat "$tmp/b1.log")"
[ -d "$tmp/data/batcher/b1" ] || fail "dedup database not at batchers.db/<id>"
check "started; dedup database at data/batcher/b1"
code=$(curl -s -o "$tmp/healthz" -w '%{http_code}' "http://127.0.0.1:$http_port/healthz")
[ "$code" = 200 ] || fail "/healthz answered $code"
contains "$tmp/healthz" "ok"
check "/healthz 200"
code=$(curl -s -o "$tmp/readyz" -w '%{http_code}' "http://127.0.0.1:$http_port/readyz")
[ "$code" = 503 ] || fail "/readyz answered $code with no sequencer up"
contains "$tmp/readyz" "2026h1 tcp://127.0.0.1:1 unreachable"
contains "$tmp/readyz" "2026h2 tcp://127.0.0.1:1 unreachable"
check "/readyz 503 naming each unreachable sequencer"
code=$(curl -s -o "$tmp/metrics" -w '%{http_code}' "http://127.0.0.1:$http_port/metrics")
[ "$code" = 200 ] || fail "/metrics answered $code"
contains "$tmp/metrics" 'tegula_batcher_pending{log="2026h1"} 0'
contains "$tmp/metrics" 'tegula_batcher_submissions_total{log="2026h2",result="overloaded"} 0'
contains "$tmp/metrics" "# TYPE tegula_batcher_sequencer_seconds histogram"
check "/metrics in Prometheus text format"

# The same id again: RocksDB's lock refuses the second process, loudly.
expect_status 1 "$batcher" -c "$tmp/tegula.yaml" --listen tcp://127.0.0.1:0 --id b1 --recreate-db
contains "$tmp/err" "cannot open the dedup database"
check "a second batcher with the same id exits 1 (database locked, never recreated)"
[ -z "$(ls -d "$tmp/data/batcher/b1.broken-"* 2>/dev/null)" ] || fail "locked database moved aside"

stop_batcher TERM
[ "$rc" = 0 ] || fail "SIGTERM: exit $rc: $(cat "$tmp/b1.log")"
contains "$tmp/b1.log" 'msg="stopping" signal=SIGTERM'
contains "$tmp/b1.log" 'msg="stopped"'
check "SIGTERM: graceful stop, exit 0"

start_batcher b2 -c "$tmp/tegula.yaml" --listen tcp://127.0.0.1:0 --id b1
stop_batcher INT
[ "$rc" = 0 ] || fail "SIGINT: exit $rc"
check "restart on the same database, SIGINT: exit 0"

echo "== a damaged dedup database"
printf 'MANIFEST-999999\n' >"$tmp/data/batcher/b1/CURRENT"
expect_status 1 "$batcher" -c "$tmp/tegula.yaml" --listen tcp://127.0.0.1:0 --id b1
contains "$tmp/err" "cannot open the dedup database"
check "damaged database: exit 1 without --recreate-db"
start_batcher b3 -c "$tmp/tegula.yaml" --listen tcp://127.0.0.1:0 --id b1 --recreate-db
kill -0 "$pid" || fail "batcher with --recreate-db exited: $(cat "$tmp/b3.log")"
contains "$tmp/b3.log" "moving it aside"
ls -d "$tmp/data/batcher/b1.broken-"* >/dev/null || fail "old database not kept aside"
stop_batcher TERM
[ "$rc" = 0 ] || fail "exit $rc"
check "--recreate-db: moved aside, started empty, exit 0"

echo "== default id is the listen address"
start_batcher b4 -c "$tmp/tegula.yaml" --listen "tcp://127.0.0.1:0"
[ -d "$tmp/data/batcher/tcp___127.0.0.1_0" ] || fail "no database at the sanitised listen address"
stop_batcher TERM
[ "$rc" = 0 ] || fail "exit $rc"
check "id defaults to the listen address (sanitised directory name)"

echo "test_batcher: $checks checks passed"
