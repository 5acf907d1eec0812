#!/bin/sh
# Scaling the batchers of deploy/docker-compose.yml out under load, with podman-compose 1.0.3
# (which ignores --scale: an override file with deploy.replicas does the same):
#   1. up with 2 batchers; tegula load through the load balancer, without pause;
#   2. a second `up -d` with a 4-replica override adds two batcher containers to the running
#      project (it leaves the running ones alone);
#   3. the frontends find them by DNS: each new batcher's /metrics shows accepted submissions;
#   4. the load saw no error (503s retried within bounds), every SCT verified, and
#      `tegula fsck --scts` through the load balancer finds all of them in the log.
set -eu
: "${TEGULA_BUILD:?run through tests/system/run.sh}"
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/compose-lib.sh"
compose_init scale
t0=$(date +%s%N)
elapsed() { echo "$(( ($(date +%s%N) - t0) / 1000000 )) ms"; }

for n in 2 4; do
    cat >"$TG_TMP/batchers-$n.yml" <<EOF
services:
  batcher:
    deploy:
      replicas: $n
EOF
done
compose_up "$TG_TMP/batchers-2.yml"
old=$(compose_ids batcher)
[ "$(echo "$old" | wc -l)" = 2 ] || fail "want 2 batchers, got: $old"
check "up with 2 batchers (override deploy.replicas: 2), ready after $CP_READY_MS ms"

# accepted ID: submissions this batcher accepted for the log.
accepted() {
    compose_metric "$1" "^tegula_batcher_submissions_total\{log=\"$CP_LOG\",result=\"ok\"\}"
}
log_size() { curl -fsS --max-time 5 "${CP_PREFIX}checkpoint" 2>/dev/null | sed -n 2p; }
grows_past() { [ "$(log_size || echo 0)" -gt "$1" ]; }

compose_load_bg "$TG_TMP/load.out" --clients 48 --duration 300 --timeout 30 --retries 100 \
    --retry-after-max 1 --report 0 --out-scts "$TG_TMP/scts"
tg_wait_until 60 "entries under load with 2 batchers" grows_past 300
for id in $old; do
    [ "$(accepted "$id")" -gt 0 ] || fail "batcher $id took no submissions"
done
check "load through the LB with 2 batchers (log size $(log_size))"

# ---- scale out while the load runs
t=$(date +%s%N)
CP_FILES="$TG_TMP/batchers-4.yml"
compose up -d >>"$TG_TMP/compose.log" 2>&1 || : # the running containers' `run` fails by name
scale_ms=$(( ($(date +%s%N) - t) / 1000000 ))
all=$(compose_ids batcher)
[ "$(echo "$all" | wc -l)" = 4 ] || fail "after up -d with replicas 4: $(echo $all)"
for id in $old; do
    echo "$all" | grep -qx "$id" || fail "the running batcher $id was replaced"
done
new=$(echo "$all" | grep -vxF "$old")
check "a second up -d with deploy.replicas: 4 added 2 batcher containers in $scale_ms ms; the 2 running ones untouched"
serves() {
    for id in $new; do [ "$(accepted "$id")" -gt 0 ] || return 1; done
}
tg_wait_until 60 "the new batchers to receive submissions" serves
size=$(log_size)
tg_wait_until 60 "more entries with 4 batchers" grows_past $((size + 300))
counts=""
for id in $all; do counts="$counts $(accepted "$id")"; done
check "the frontends found the new batchers by DNS: accepted submissions per batcher (2 old, 2 new):$counts"

compose_load_stop
result=$(grep '^RESULT' "$TG_TMP/load.out") ||
    fail "load (exit status $status after SIGTERM) printed no RESULT: $(tail -n 5 "$TG_TMP/load.out")"
[ "$status" -eq 0 ] || fail "load exited $status: $result"
echo "$result" | grep -q ' errors=0 ' || fail "submissions failed: $result"
echo "$result" | grep -q ' bad_sct=0 ' || fail "an SCT did not verify: $result"
field() { echo "$result" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
check "load: $(field ok) SCTs, all verified, 0 errors ($(field retried_503) answers 503 retried), $(field rate) add-chain/s, p99 $(field p99_ms) ms"
compose_fsck "$TG_TMP/scts"
check "tegula fsck through the LB: all $(field ok) SCTs in the log"
compose_down
echo "test_compose_scale: $TG_CHECKS checks passed in $(elapsed) (down: $CP_DOWN_MS ms)"
