#!/bin/sh
# Integration test of tegula-sequencer as a real process on 127.0.0.1: creation only with
# --create, idle checkpoints whose timestamp keeps advancing (verified by `tegula fsck`), one
# sequencer per log, SIGTERM → exit 0, kill -9 → restart continues, usage errors → exit 2.
# Run by tests/integration/run.sh (which sets TEGULA_BUILD), or alone:
#   TEGULA_BUILD=build sh tests/integration/test_sequencer.sh
set -eu

here=$(cd "$(dirname "$0")" && pwd)
build=${TEGULA_BUILD:-$here/../../build}
seq=$build/tegula-sequencer
tegula=$build/tegula
[ -x "$seq" ] || { echo "FAIL: $seq is not built" >&2; exit 1; }
[ -x "$tegula" ] || { echo "FAIL: $tegula is not built" >&2; exit 1; }
command -v openssl >/dev/null || { echo "FAIL: this test needs openssl" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tegula-test-sequencer.XXXXXX")
pids=""
cleanup() {
    for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fail() {
    echo "FAIL: $*" >&2
    for f in "$tmp"/*.log; do
        [ -f "$f" ] || continue
        echo "--- $f:" >&2
        tail -20 "$f" >&2
    done
    exit 1
}
check() { echo "  check: $*"; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' \
        2>/dev/null || echo $((20000 + $(od -An -N2 -tu2 /dev/urandom) % 30000))
}

# wait_until SECONDS CMD...: polls CMD every 0.1 s; fails after SECONDS.
wait_until() {
    limit=$(($1 * 10))
    shift
    i=0
    until "$@" >/dev/null 2>&1; do
        i=$((i + 1))
        [ "$i" -lt "$limit" ] || return 1
        sleep 0.1
    done
}

# expect_exit STATUS LOG CMD...: runs CMD to completion (bounded by timeout) and checks its
# exit status ("nonzero" accepts any failure).
expect_exit() {
    want=$1
    log=$2
    shift 2
    set +e
    timeout 30 "$@" >"$log" 2>&1
    got=$?
    set -e
    if [ "$want" = nonzero ]; then
        [ "$got" -ne 0 ] && [ "$got" -ne 124 ] || fail "expected failure, got $got: $*"
    else
        [ "$got" -eq "$want" ] || fail "expected exit $want, got $got: $*"
    fi
}

fsck_timestamp() {
    "$tegula" fsck --url "$tmp/data/t1/storage" --key "$tmp/pub.pem" >"$tmp/fsck.out" 2>&1 ||
        { cat "$tmp/fsck.out" >&2; return 1; }
    sed -n 's/.*verifies: size \([0-9]*\), timestamp \([0-9]*\).*/\1 \2/p' "$tmp/fsck.out"
}

# published_after TS: the published checkpoint verifies and is newer than TS.
published_after() {
    set -- "$1" $(fsck_timestamp) || return 1
    [ "$#" -eq 3 ] && [ "$3" -gt "$1" ]
}

seq_port=$(free_port)
http_port=$(free_port)
"$tegula" keygen -o "$tmp/t1.key" >/dev/null 2>&1
openssl pkey -in "$tmp/t1.key" -pubout -out "$tmp/pub.pem" 2>/dev/null
: >"$tmp/roots.pem"
cat >"$tmp/tegula.yaml" <<EOF
logs:
  - name: t1
    submission_prefix: http://127.0.0.1:8080/t1/
    key: t1.key
    roots: roots.pem
    not_after_start: 2026-01-01T00:00:00Z
    not_after_limit: 2026-07-01T00:00:00Z
    storage: file:data/t1/storage
    lock: file:data/t1/lock
    sequencer: tcp://127.0.0.1:$seq_port
    period_ms: 100
  - name: t2
    submission_prefix: http://127.0.0.1:8080/t2/
    key: t1.key
    roots: roots.pem
    not_after_start: 2026-07-01T00:00:00Z
    not_after_limit: 2027-01-01T00:00:00Z
    storage: file:data/t2/storage
    lock: file:data/t2/lock
    sequencer: tcp://127.0.0.1:$(free_port)
batchers:
  addresses: [tcp://127.0.0.1:9101]
log_level: info
EOF
cfg=$tmp/tegula.yaml

check "usage errors exit 2"
expect_exit 2 "$tmp/usage.log" "$seq"
expect_exit 2 "$tmp/usage.log" "$seq" -c "$cfg"
expect_exit 2 "$tmp/usage.log" "$seq" -c "$cfg" --log nosuchlog
expect_exit 2 "$tmp/usage.log" "$seq" -c "$tmp/missing.yaml" --log t1
expect_exit 2 "$tmp/usage.log" "$seq" -c "$cfg" --log t1 --bogus

check "refuses to start a log that does not exist without --create"
expect_exit 1 "$tmp/nocreate.log" "$seq" -c "$cfg" --log t1
grep -q -- "--create" "$tmp/nocreate.log" || fail "no hint about --create"
[ ! -e "$tmp/data/t1/storage/checkpoint" ] || fail "a checkpoint appeared without --create"

check "creates the log with --create and publishes checkpoints"
"$seq" -c "$cfg" --log t1 --create --http "127.0.0.1:$http_port" >"$tmp/seq1.log" 2>&1 &
pid=$!
pids="$pids $pid"
wait_until 10 test -s "$tmp/data/t1/storage/checkpoint" || fail "no checkpoint published"
set -- $(fsck_timestamp) || fail "fsck of the new log failed"
[ "$1" = 0 ] || fail "new log has size $1"
ts1=$2

check "log.v3.json is published with the log's ID"
[ -s "$tmp/data/t1/storage/log.v3.json" ] || fail "no log.v3.json in storage"
log_id=$("$tegula" keygen --public "$tmp/t1.key" | sed -n 's/^log_id_base64: //p')
grep -qF "\"$log_id\"" "$tmp/data/t1/storage/log.v3.json" || fail "log.v3.json lacks log_id $log_id"
if command -v jq >/dev/null; then
    [ "$(jq -r .log_id "$tmp/data/t1/storage/log.v3.json")" = "$log_id" ] || fail "log_id in log.v3.json"
    [ "$(jq -r .submission_url "$tmp/data/t1/storage/log.v3.json")" = "http://127.0.0.1:8080/t1/" ] ||
        fail "submission_url in log.v3.json"
fi

check "idle checkpoints keep advancing (fsck verifies each)"
sleep 0.5
set -- $(fsck_timestamp) || fail "fsck failed"
ts2=$2
[ "$ts2" -gt "$ts1" ] || fail "timestamp did not advance: $ts1 then $ts2"
sleep 0.3
set -- $(fsck_timestamp) || fail "fsck failed"
[ "$2" -gt "$ts2" ] || fail "timestamp did not advance: $ts2 then $2"

if command -v curl >/dev/null; then
    check "/healthz and /metrics"
    curl -fsS "http://127.0.0.1:$http_port/healthz" | grep -q ok || fail "/healthz"
    curl -fsS "http://127.0.0.1:$http_port/metrics" >"$tmp/metrics.txt" || fail "/metrics"
    grep -q 'tegula_sequencer_rounds_total{log="t1",result="ok"}' "$tmp/metrics.txt" ||
        fail "no round counter in /metrics"
fi

check "a second sequencer for the same log exits non-zero"
expect_exit nonzero "$tmp/second.log" "$seq" -c "$cfg" --log t1
grep -q "another sequencer" "$tmp/second.log" || fail "second instance did not name the reason"
expect_exit nonzero "$tmp/second.log" "$seq" -c "$cfg" --log t1 --create
kill -0 "$pid" 2>/dev/null || fail "the first sequencer died"

check "another log in the same config is independent"
expect_exit 1 "$tmp/t2.log" "$seq" -c "$cfg" --log t2

check "SIGTERM exits 0"
kill -TERM "$pid"
set +e
wait "$pid"
rc=$?
set -e
[ "$rc" -eq 0 ] || fail "SIGTERM exit status $rc"
set -- $(fsck_timestamp) || fail "fsck after stop failed"
ts3=$2

check "--create over an existing log is refused"
expect_exit 1 "$tmp/recreate.log" "$seq" -c "$cfg" --log t1 --create
grep -q "already exists" "$tmp/recreate.log" || fail "no 'already exists' reason"

check "a restart continues the log; kill -9 leaves it restartable"
"$seq" -c "$cfg" --log t1 >"$tmp/seq2.log" 2>&1 &
pid=$!
pids="$pids $pid"
wait_until 10 published_after "$ts3" || fail "the restarted sequencer did not publish"
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
"$seq" -c "$cfg" --log t1 >"$tmp/seq3.log" 2>&1 &
pid=$!
pids="$pids $pid"
sleep 0.5
kill -0 "$pid" 2>/dev/null || fail "restart after kill -9 failed"
kill -INT "$pid"
set +e
wait "$pid"
rc=$?
set -e
[ "$rc" -eq 0 ] || fail "SIGINT exit status $rc"
set -- $(fsck_timestamp) || fail "final fsck failed"
[ "$1" = 0 ] || fail "size changed to $1"

echo "test_sequencer: OK"
