#!/bin/sh
# Integration test of tegula-frontend over HTTP (curl) with a temporary two-log config:
# every 400 case and 413, get-roots, log.v3.json, /healthz, /readyz (503 while no batcher
# answers), 404/405, 503 + Retry-After for a valid submission nobody can take, and a graceful
# SIGTERM. When tegula-batcher and tegula-sequencer are built too, it also runs them and
# checks SCTs end to end (certificate and precertificate, one per log, resubmission identical).
# Run by tests/integration/run.sh (which sets TEGULA_BUILD), or alone:
#   TEGULA_BUILD=build sh tests/integration/test_frontend.sh
set -eu

here=$(cd "$(dirname "$0")" && pwd)
build=${TEGULA_BUILD:-$here/../../build}
tegula=$build/tegula
frontend=$build/tegula-frontend
for bin in "$tegula" "$frontend"; do
    [ -x "$bin" ] || { echo "FAIL: $bin is not built" >&2; exit 1; }
done
for tool in curl jq openssl base64 awk grep sed head tr; do
    command -v "$tool" >/dev/null || { echo "FAIL: this test needs '$tool'" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tegula-test-frontend.XXXXXX")
pids=""
# Stops what this test started: SIGTERM, at most 20 s of grace, then SIGKILL, so a process
# that hangs on stop fails the test instead of hanging it.
cleanup() {
    for p in $pids; do
        kill -TERM "$p" 2>/dev/null || true
    done
    i=0
    while [ $i -lt 200 ]; do
        alive=
        for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ -z "$alive" ] && break
        sleep 0.1
        i=$((i + 1))
    done
    for p in $pids; do
        if kill -0 "$p" 2>/dev/null; then
            echo "FAIL: pid $p did not stop within 20 s of SIGTERM; killed" >&2
            kill -KILL "$p" 2>/dev/null || true
        fi
        wait "$p" 2>/dev/null || true
    done
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
    if [ -f "$tmp/frontend.log" ]; then
        echo "--- frontend log (tail):" >&2
        tail -n 20 "$tmp/frontend.log" >&2
    fi
    exit 1
}

# A TCP port nothing listens on (so a batcher or sequencer address there is "down").
# free_ports N: N distinct ports below the kernel's ephemeral range (32768+, where outgoing
# connections take theirs) that no TCP socket uses, local or remote.
free_ports() {
    picked=" "
    while [ "$(echo $picked | wc -w)" -lt "$1" ]; do
        p=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 12000))
        case $picked in *" $p "*) continue ;; esac
        if ! (ss -tan 2>/dev/null || true) | awk '{ print $4; print $5 }' | grep -q ":$p\$"; then
            picked="$picked$p "
        fi
    done
    echo $picked
}

# http METHOD PATH [BODYFILE]: response body in $tmp/body, headers in $tmp/headers, status
# in $status.
# Large bodies go with "Expect: 100-continue", so a 413 is answered before the body is sent
# (a server that refuses a body and closes may otherwise reset the connection under curl).
http() {
    : >"$tmp/body"
    : >"$tmp/headers"
    if [ $# -ge 3 ]; then
        expect_header='Expect:'
        [ "$(wc -c <"$3")" -le 65536 ] || expect_header='Expect: 100-continue'
        status=$(curl -sS -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}' -X "$1" \
            -H 'Content-Type: application/json' -H "$expect_header" --data-binary "@$3" \
            "$base$2") || true
    else
        status=$(curl -sS -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}' -X "$1" \
            "$base$2") || true
    fi
}
# expect STATUS TEXT METHOD PATH [BODYFILE]: fails unless the status matches and the body
# contains TEXT ("" = anything).
expect() {
    want=$1
    text=$2
    shift 2
    http "$@"
    [ "$status" = "$want" ] ||
        fail "$1 $2: status $status, want $want; body: $(head -c 300 "$tmp/body")"
    if [ -n "$text" ] && ! grep -qF -- "$text" "$tmp/body"; then
        fail "$1 $2: body lacks '$text': $(head -c 300 "$tmp/body")"
    fi
}
header_is() {
    grep -qi "^$1: $2" "$tmp/headers" || fail "header '$1: $2' missing: $(cat "$tmp/headers")"
}
# A 400's reason is one line of text.
one_line_reason() {
    lines=$(wc -l <"$tmp/body")
    [ "$lines" -eq 1 ] || fail "400 body has $lines lines: $(cat "$tmp/body")"
    header_is Content-Type 'text/plain'
}

# ---- setup: a test CA, two log keys, a config with two temporal shards ----
mkdir -p "$tmp/keys"
"$tegula" mkchain --ca-dir "$tmp/ca" --init >/dev/null 2>>"$tmp/setup.log"
"$tegula" mkchain --ca-dir "$tmp/other-ca" --init >/dev/null 2>>"$tmp/setup.log"
"$tegula" keygen -o "$tmp/keys/2026h1.key" >/dev/null 2>>"$tmp/setup.log"
"$tegula" keygen -o "$tmp/keys/2026h2.key" >/dev/null 2>>"$tmp/setup.log"
cp "$tmp/ca/root.pem" "$tmp/roots.pem"

# shellcheck disable=SC2046
set -- $(free_ports 5)
http_port=$1 b1=$2 b2=$3 s1=$4 s2=$5
cat >"$tmp/tegula.yaml" <<EOF
logs:
  - name: 2026h1
    description: "integration 2026h1"
    submission_prefix: http://127.0.0.1:$http_port/2026h1/
    key: keys/2026h1.key
    roots: roots.pem
    not_after_start: 2026-01-01T00:00:00Z
    not_after_limit: 2026-07-01T00:00:00Z
    storage: file:data/2026h1/storage
    lock: file:data/2026h1/lock
    sequencer: tcp://127.0.0.1:$s1
    period_ms: 200
  - name: 2026h2
    submission_prefix: http://127.0.0.1:$http_port/2026h2/
    key: keys/2026h2.key
    roots: roots.pem
    not_after_start: 2026-07-01T00:00:00Z
    not_after_limit: 2027-01-01T00:00:00Z
    storage: file:data/2026h2/storage
    lock: file:data/2026h2/lock
    sequencer: tcp://127.0.0.1:$s2
    period_ms: 200
frontend:
  listen: 127.0.0.1:$http_port
  workers: 2
  submit_timeout_ms: 3000
batchers:
  addresses: [tcp://127.0.0.1:$b1, tcp://127.0.0.1:$b2]
  batch_wait_ms: 20
  db: data/batcher
log_level: info
EOF
base=http://127.0.0.1:$http_port

# Submission bodies.
mint() { # mint NAME --leaf|--precert NOT_AFTER [CA]
    "$tegula" mkchain --ca-dir "$tmp/${4:-ca}" "$2" --not-after "$3" \
        --out "$tmp/$1.pem" --json "$tmp/$1.json" >/dev/null 2>>"$tmp/setup.log"
}
mint h1-leaf --leaf 2026-03-01T00:00:00Z
mint h1-pre --precert 2026-04-01T00:00:00Z
mint h2-leaf --leaf 2026-09-01T00:00:00Z
mint h2-pre --precert 2026-10-01T00:00:00Z
mint expired --leaf 2025-06-01T00:00:00Z
mint foreign --leaf 2026-03-01T00:00:00Z other-ca
first_cert=$(jq -r '.chain[0]' "$tmp/h1-leaf.json")
printf '{"chain":[' >"$tmp/eleven.json"
for i in 1 2 3 4 5 6 7 8 9 10 11; do
    [ "$i" = 1 ] || printf ',' >>"$tmp/eleven.json"
    printf '"%s"' "$first_cert" >>"$tmp/eleven.json"
done
printf ']}' >>"$tmp/eleven.json"
printf '{"chain":[' >"$tmp/malformed.json"
printf '{"chain":["%s","not base64!"]}' "$first_cert" >"$tmp/bad-base64.json"
printf '{"chain":[]}' >"$tmp/empty-chain.json"
printf '{"certs":["%s"]}' "$first_cert" >"$tmp/no-chain.json"
printf '{"chain":[42]}' >"$tmp/not-string.json"
# 600 KiB: larger than the default 512 KiB cap.
head -c 614400 /dev/zero | tr '\0' 'A' | awk '{ printf "{\"chain\":[\"%s\"]}", $0 }' \
    >"$tmp/huge.json"

# ---- start the frontend (no batcher or sequencer yet) ----
"$frontend" -c "$tmp/tegula.yaml" 2>"$tmp/frontend.log" &
fe_pid=$!
pids="$fe_pid"
i=0
until curl -s -o /dev/null "$base/healthz"; do
    i=$((i + 1))
    [ $i -lt 100 ] || fail "frontend did not start"
    kill -0 "$fe_pid" 2>/dev/null || fail "frontend exited at startup"
    sleep 0.1
done

echo "== health"
expect 200 ok GET /healthz
check "/healthz 200"
sleep 2.5 # one probe round has failed by now
expect 503 "no batcher answers" GET /readyz
check "/readyz 503 while no batcher answers: $(cat "$tmp/body")"

echo "== 400 and 413"
for log in 2026h1 2026h2; do
    expect 400 "not valid JSON" POST /$log/ct/v1/add-chain "$tmp/malformed.json"
    one_line_reason
    expect 400 "chain[1] is not valid base64" POST /$log/ct/v1/add-chain "$tmp/bad-base64.json"
    one_line_reason
    expect 400 '"chain" is empty' POST /$log/ct/v1/add-chain "$tmp/empty-chain.json"
    expect 400 'no "chain" member' POST /$log/ct/v1/add-pre-chain "$tmp/no-chain.json"
    expect 400 "chain[0] is not a string" POST /$log/ct/v1/add-chain "$tmp/not-string.json"
    expect 400 "has 11 certificates; at most 10" POST /$log/ct/v1/add-chain "$tmp/eleven.json"
    one_line_reason
    expect 413 "" POST /$log/ct/v1/add-chain "$tmp/huge.json"
done
check "malformed JSON, bad base64, empty/missing chain, non-string, 11 certificates: 400"
check "body of 600 KiB: 413"
expect 400 "add-chain received a precertificate" POST /2026h1/ct/v1/add-chain "$tmp/h1-pre.json"
one_line_reason
check "precertificate on add-chain: 400"
expect 400 "add-pre-chain received a certificate" POST /2026h1/ct/v1/add-pre-chain \
    "$tmp/h1-leaf.json"
check "certificate on add-pre-chain: 400"
expect 400 "outside this log's window" POST /2026h1/ct/v1/add-chain "$tmp/expired.json"
one_line_reason
expect 400 "outside this log's window" POST /2026h1/ct/v1/add-chain "$tmp/h2-leaf.json"
expect 400 "outside this log's window" POST /2026h2/ct/v1/add-chain "$tmp/h1-leaf.json"
check "notAfter outside the shard's window: 400 ($(cat "$tmp/body"))"
expect 400 "" POST /2026h1/ct/v1/add-chain "$tmp/foreign.json"
one_line_reason
check "chain to an unknown root: 400 ($(cat "$tmp/body"))"

echo "== valid submissions while no batcher is up"
expect 503 "" POST /2026h1/ct/v1/add-chain "$tmp/h1-leaf.json"
header_is Retry-After 1
check "valid chain, batchers down: 503 + Retry-After: 1"

echo "== get-roots and log.v3.json"
root_b64=$(openssl x509 -in "$tmp/ca/root.pem" -outform DER | base64 -w0)
for log in 2026h1 2026h2; do
    expect 200 "" GET /$log/ct/v1/get-roots
    header_is Content-Type application/json
    [ "$(jq -r '.certificates | length' "$tmp/body")" = 1 ] || fail "get-roots count"
    [ "$(jq -r '.certificates[0]' "$tmp/body")" = "$root_b64" ] || fail "get-roots DER"

    expect 200 "" GET /$log/log.v3.json
    header_is Content-Type application/json
    cp "$tmp/body" "$tmp/$log.v3.json"
    "$tegula" keygen --public "$tmp/keys/$log.key" >"$tmp/$log.pub"
    want_id=$(sed -n 's/^log_id_base64: //p' "$tmp/$log.pub")
    want_key=$(sed -n 's/^spki_base64: //p' "$tmp/$log.pub")
    v3() { jq -r "$1" "$tmp/$log.v3.json"; }
    [ "$(v3 .log_id)" = "$want_id" ] || fail "$log log.v3.json log_id $(v3 .log_id) != $want_id"
    [ "$(v3 .key)" = "$want_key" ] || fail "$log log.v3.json key"
    [ "$(v3 .submission_url)" = "http://127.0.0.1:$http_port/$log/" ] || fail "submission_url"
    [ "$(v3 .monitoring_url)" = "http://127.0.0.1:$http_port/$log/" ] || fail "monitoring_url"
    [ "$(v3 .mmd)" = 60 ] || fail "mmd"
    [ "$(v3 .log_spec)" = static-ct-api ] || fail "log_spec"
    [ "$(v3 .status)" = active ] || fail "status"
done
[ "$(jq -r .description "$tmp/2026h1.v3.json")" = "integration 2026h1" ] || fail "description"
[ "$(jq -r .temporal_interval.start_inclusive "$tmp/2026h1.v3.json")" = 2026-01-01T00:00:00Z ] ||
    fail "temporal_interval.start_inclusive"
[ "$(jq -r .temporal_interval.end_exclusive "$tmp/2026h2.v3.json")" = 2027-01-01T00:00:00Z ] ||
    fail "temporal_interval.end_exclusive"
check "get-roots lists the root; log.v3.json has each log's LogID, key, URLs, window"

echo "== 404 and 405"
expect 404 "not found" GET /nowhere
expect 404 "not found" GET /2026h1/ct/v1/get-nothing
expect 503 "no verified checkpoint" GET /2026h1/ct/v1/get-sth
expect 404 "not found" POST /2027h1/ct/v1/add-chain "$tmp/h1-leaf.json"
expect 405 "method not allowed" GET /2026h1/ct/v1/add-chain
header_is Allow POST
expect 405 "method not allowed" POST /2026h2/ct/v1/get-roots "$tmp/h1-leaf.json"
header_is Allow 'GET, HEAD'
expect 405 "method not allowed" DELETE /healthz
check "unknown paths 404, wrong methods 405 with Allow"

expect 200 'tegula_frontend_requests_total{log="2026h1",route="add-chain",code="400"}' GET /metrics
grep -qF 'tegula_frontend_validator_link_cache_entries{log="2026h1"}' "$tmp/body" ||
    fail "/metrics lacks the validator cache"
check "/metrics counts requests by log, route and code"

# ---- end to end, when the other write-path processes are built ----
if [ -x "$build/tegula-batcher" ] && [ -x "$build/tegula-sequencer" ]; then
    echo "== end to end with tegula-batcher and tegula-sequencer"
    "$build/tegula-sequencer" -c "$tmp/tegula.yaml" --log 2026h1 --create 2>"$tmp/seq1.log" &
    pids="$pids $!"
    "$build/tegula-sequencer" -c "$tmp/tegula.yaml" --log 2026h2 --create 2>"$tmp/seq2.log" &
    pids="$pids $!"
    "$build/tegula-batcher" -c "$tmp/tegula.yaml" --listen "tcp://127.0.0.1:$b1" \
        2>"$tmp/b1.log" &
    pids="$pids $!"
    "$build/tegula-batcher" -c "$tmp/tegula.yaml" --listen "tcp://127.0.0.1:$b2" \
        2>"$tmp/b2.log" &
    pids="$pids $!"
    # The frontend has dialled these batchers and sequencers (down until now) since it
    # started: it must connect to them without a restart.
    i=0
    until [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/readyz")" = 200 ]; do
        i=$((i + 1))
        [ $i -lt 200 ] || fail "/readyz never became 200: $(curl -s "$base/readyz")"
        sleep 0.1
    done
    check "/readyz 200 once batchers and sequencers answer"
    for pair in "2026h1 h1-leaf add-chain" "2026h1 h1-pre add-pre-chain" \
        "2026h2 h2-leaf add-chain" "2026h2 h2-pre add-pre-chain"; do
        set -- $pair
        expect 200 "" POST /$1/ct/v1/$3 "$tmp/$2.json"
        cp "$tmp/body" "$tmp/$2.sct"
        want_id=$(jq -r .log_id "$tmp/$1.v3.json")
        [ "$(jq -r .id "$tmp/$2.sct")" = "$want_id" ] || fail "$2: SCT id is not the log's"
        [ "$(jq -r .sct_version "$tmp/$2.sct")" = 0 ] || fail "$2: sct_version"
        [ "$(jq -r .extensions "$tmp/$2.sct" | base64 -d | wc -c)" = 8 ] ||
            fail "$2: extensions are not one leaf_index"
        expect 200 "" POST /$1/ct/v1/$3 "$tmp/$2.json"
        cmp -s "$tmp/body" "$tmp/$2.sct" || fail "$2: resubmission gave another SCT"
    done
    check "certificate and precertificate SCTs on both logs; resubmissions byte-identical"
    # An SCT is only answered once its entry is published: each log holds its two entries,
    # at the indices the SCTs name.
    for log in 2026h1 2026h2; do
        sed -n '/BEGIN PUBLIC KEY/,/END PUBLIC KEY/p' "$tmp/$log.pub" >"$tmp/$log.pub.pem"
        "$tegula" fsck --url "$tmp/data/$log/storage" --key "$tmp/$log.pub.pem" \
            >"$tmp/fsck.out" 2>&1 || fail "fsck $log: $(cat "$tmp/fsck.out")"
        grep -q "OK: 2 entries" "$tmp/fsck.out" || fail "fsck $log: $(cat "$tmp/fsck.out")"
    done
    for name in h1-leaf h1-pre h2-leaf h2-pre; do
        index=$(jq -r .extensions "$tmp/$name.sct" | base64 -d | od -An -tu1 | tr -s ' ' |
            awk '{ print (($4 * 256 + $5) * 256 + $6) * 256 * 256 + $7 * 256 + $8 }')
        [ "$index" -lt 2 ] || fail "$name: leaf_index $index beyond the log's two entries"
    done
    [ "$(jq -r .extensions "$tmp/h1-leaf.sct")" != "$(jq -r .extensions "$tmp/h1-pre.sct")" ] ||
        fail "two entries of 2026h1 share a leaf_index"
    check "tegula fsck verifies both logs; the SCTs' leaf_index values are distinct and in range"
else
    echo "  (tegula-batcher / tegula-sequencer not built: end-to-end part skipped)"
fi

echo "== graceful stop"
kill -TERM "$fe_pid"
set +e
wait "$fe_pid"
rc=$?
set -e
pids=$(echo "$pids" | sed "s/^$fe_pid//")
[ "$rc" = 0 ] || fail "frontend exited $rc after SIGTERM"
grep -q 'msg="stopped"' "$tmp/frontend.log" || fail "no 'stopped' line in the log"
if grep -q 'BEGIN CERTIFICATE\|PRIVATE KEY' "$tmp/frontend.log"; then
    fail "the log holds certificate or key material"
fi
check "SIGTERM: exit 0; no certificate or key material in the log"

echo "test_frontend: $checks checks passed"
