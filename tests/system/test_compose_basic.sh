#!/bin/sh
# deploy/docker-compose.yml with podman-compose 1.0.3, unchanged: images built from
# deploy/ (base image made locally), config by deploy/compose/setup.sh, then
#   1. up: load balancer (TLS with a mounted certificate), 2 frontends, 3 batchers, the
#      sequencer (first start creates the log) and Ceph RGW;
#   2. a certificate and a precertificate with `tegula submit` through the load balancer, each
#      SCT verified and its inclusion proved from the monitoring endpoints (through the LB);
#      3,600 more with `tegula load` from 1,200 clients (30% precertificates), every SCT
#      verified, and the LB kept its upstream connections open across the rounds (no
#      TIME_WAIT sockets towards the frontends: each would be a local port used up); an
#      add-chain over HTTPS; get-sth through the LB; `tegula fsck --scts` of the whole log
#      through the LB;
#   3. sequencer restarts never create: a plain restart recovers; with the first-start marker
#      removed (state volume lost) --create-only finds the log and the sequencer recovers;
#   4. SIGTERM: every container stops by itself (exit status 0, no SIGKILL) under
#      `podman stop -t 10`; then down.
set -eu
: "${TEGULA_BUILD:?run through tests/system/run.sh}"
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/compose-lib.sh"
compose_init basic
t0=$(date +%s%N)
elapsed() { echo "$(( ($(date +%s%N) - t0) / 1000000 )) ms"; }

# ---- 1. up, with a certificate for the load balancer's HTTPS listener
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$CP_CFG/tls/tls.key" -out "$CP_CFG/tls/tls.crt" -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1 || fail "openssl: test TLS certificate"
chmod 0644 "$CP_CFG/tls/tls.key" # the LB runs as www-data; a test key
compose_up
[ "$(compose_ids frontend | wc -l)" = 2 ] && [ "$(compose_ids batcher | wc -l)" = 3 ] &&
    [ "$(compose_ids sequencer | wc -l)" = 1 ] && [ "$(compose_ids lb | wc -l)" = 1 ] &&
    [ "$(compose_ids s3 | wc -l)" = 1 ] || fail "not the services of the compose file: $(podman ps --filter label=com.docker.compose.project=$CP_PROJECT --format '{{.Names}}')"
check "compose up: lb, 2 frontends, 3 batchers, sequencer, s3 (up -d returned in $CP_UP_MS ms, log served through the LB after $CP_READY_MS ms)"
seq_id=$(compose_ids sequencer)
podman logs "$seq_id" 2>&1 | grep -q 'tegula-entrypoint: created log 2027h1' ||
    fail "the sequencer's first start did not create the log"
ids=""
for id in $(compose_ids batcher); do
    ids="$ids $(podman logs "$id" 2>&1 | sed -n 's/.*msg="batcher started" .* id=\([^ ]*\) .*/\1/p' | tail -n 1)"
done
[ "$(echo $ids | tr ' ' '\n' | sort -u | wc -l)" = 3 ] || fail "batcher ids not unique:$ids"
check "the first start created the log; the 3 batchers have distinct ids (their host names):$ids"

# ---- 2. submissions through the load balancer
for kind in leaf precert; do
    "$TG_TEGULA" mkchain --ca-dir "$CP_CFG/test-ca" --$kind --not-after "$CP_NOT_AFTER" \
        --out "$TG_TMP/$kind.pem" >/dev/null 2>&1 || fail "mkchain --$kind"
    out=$("$TG_TEGULA" submit --url "$CP_PREFIX" --key "$CP_PUBKEY" --log "$CP_PREFIX" --origin "$CP_ORIGIN" \
        "$TG_TMP/$kind.pem" 2>&1) || fail "submit $kind: $out"
    echo "$out" | grep -q 'SCT verified' || fail "submit $kind: $out"
done
check "a certificate and a precertificate through the LB: SCTs verified, inclusion proved from the LB's monitoring endpoints"
# More clients than a small upstream keepalive pool holds (nginx's usual few hundred), for
# three rounds: a load balancer that closes upstream connections between rounds would leave
# TIME_WAIT sockets behind and, at a few thousand submissions/s, run out of local ports.
tg_raise_open_files
out=$(compose_load --clients 1200 --count 3600 --precert-ratio 0.3 --quiet --out-scts "$TG_TMP/scts") ||
    fail "load: $out"
echo "$out" | grep -q '^RESULT ok=3600 .* errors=0 ' || fail "load: $out"
lb_pid=$(podman inspect -f '{{.State.Pid}}' "$(compose_ids lb)")
# TCP sockets in TIME_WAIT (state 06) towards port 8080 (1F90) in the LB's network namespace.
time_wait=$(cat /proc/"$lb_pid"/net/tcp /proc/"$lb_pid"/net/tcp6 2>/dev/null |
    awk '$3 ~ /:1F90$/ && $4 == "06"' | wc -l)
[ "$time_wait" -lt 100 ] ||
    fail "the load balancer closed $time_wait upstream connections during the load (keepalive pool too small)"
check "3,600 submissions from 1,200 clients (30% precertificates) through the LB, every SCT verified; the LB reused its upstream connections ($time_wait in TIME_WAIT)"
"$TG_TEGULA" mkchain --ca-dir "$CP_CFG/test-ca" --leaf --not-after "$CP_NOT_AFTER" \
    --json "$TG_TMP/tls.json" >/dev/null 2>&1 || fail "mkchain --json"
code=$(curl -sS -o "$TG_TMP/tls.out" -w '%{http_code}' --max-time 30 --cacert "$CP_CFG/tls/tls.crt" \
    -H 'Content-Type: application/json' -d @"$TG_TMP/tls.json" \
    "https://127.0.0.1:$CP_TLS_PORT/$CP_LOG/ct/v1/add-chain") || fail "HTTPS add-chain: curl failed"
[ "$code" = 200 ] && [ "$(jq -r .sct_version "$TG_TMP/tls.out")" = 0 ] ||
    fail "HTTPS add-chain: HTTP $code $(head -c 300 "$TG_TMP/tls.out")"
check "TLS termination at the LB: add-chain over HTTPS (mounted certificate) returns an SCT"
size=$(curl -fsS "${CP_PREFIX}checkpoint" | sed -n 2p)
sth_caught_up() {
    sth=$(curl -fsS --max-time 5 "${CP_PREFIX}ct/v1/get-sth" 2>/dev/null) &&
        [ "$(echo "$sth" | jq -r .tree_size)" -ge "$size" ]
}
tg_wait_until 20 "get-sth through the LB to reach $size" sth_caught_up
check "get-sth through the LB: tree size $(echo "$sth" | jq -r .tree_size)"
compose_fsck "$TG_TMP/scts"
check "tegula fsck through the LB: the log verifies, all 3,600 SCTs in it"
echo "   part 2 done at $(elapsed)"

# ---- 3. sequencer restarts never create a log
# The sequencer's log lines after the first $1 (podman logs --since has 1 s resolution).
seq_logs_after() {
    podman logs "$seq_id" 2>&1 | tail -n +$(($1 + 1))
}
restarted_ok() {
    seq_logs_after "$1" | grep -q 'msg="sequencing"'
}
seq_restart() {
    lines=$(podman logs "$seq_id" 2>&1 | wc -l)
    podman restart -t 10 "$seq_id" >/dev/null 2>&1 || fail "podman restart sequencer"
    tg_wait_until 60 "the sequencer to run again" restarted_ok "$lines"
}
seq_restart
seq_logs_after "$lines" | grep -q 'msg="recovered the log"' ||
    fail "restart: the sequencer did not recover the log"
seq_logs_after "$lines" | grep -E 'tegula-entrypoint|created the log' &&
    fail "restart: the sequencer went through the first-start step again"
check "sequencer restart: recovered the log, no create attempt (first-start marker present)"
podman exec "$seq_id" rm /var/lib/tegula/sequencer/$CP_LOG.created || fail "removing the marker"
seq_restart
seq_logs_after "$lines" | grep -q "log $CP_LOG exists already; not creating" ||
    fail "without the marker: $(seq_logs_after "$lines" | tail -n 5)"
seq_logs_after "$lines" | grep -q 'msg="recovered the log"' ||
    fail "without the marker: the sequencer did not recover the log"
podman exec "$seq_id" test -f /var/lib/tegula/sequencer/$CP_LOG.created || fail "marker not rewritten"
tg_wait_until 60 "every batcher and frontend ready" all_ready
out=$(compose_load --clients 16 --count 100 --quiet --out-scts "$TG_TMP/scts2") || fail "load: $out"
echo "$out" | grep -q '^RESULT ok=100 .* errors=0 ' || fail "load after the restarts: $out"
check "state volume lost (marker removed): --create-only found the log, nothing created, the log continues (100 more SCTs)"
cat "$TG_TMP/scts" "$TG_TMP/scts2" >"$TG_TMP/scts-all"
compose_fsck "$TG_TMP/scts-all"
check "tegula fsck through the LB after the restarts: all 3,700 SCTs in the log"
echo "   part 3 done at $(elapsed)"

# ---- 4. SIGTERM: every container stops by itself
stops=""
for svc in lb frontend batcher sequencer s3; do
    for id in $(compose_ids $svc); do
        t=$(date +%s%N)
        podman stop -t 10 "$id" >/dev/null 2>&1 || fail "podman stop $svc"
        ms=$(( ($(date +%s%N) - t) / 1000000 ))
        code=$(podman inspect -f '{{.State.ExitCode}}' "$id")
        [ "$code" = 0 ] || fail "$svc container exited $code after SIGTERM (137 = killed at the timeout): $(podman logs --tail 5 "$id" 2>&1)"
        stops="$stops $svc=${ms}ms"
    done
done
check "SIGTERM: every container exited 0 by itself (podman stop -t 10):$stops"
compose_down
check "down -t 10 of the stopped project: $CP_DOWN_MS ms"
echo "test_compose_basic: $TG_CHECKS checks passed in $(elapsed)"
