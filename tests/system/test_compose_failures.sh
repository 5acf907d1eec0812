#!/bin/sh
# Crashes in the compose deployment (deploy/docker-compose.yml, podman-compose 1.0.3) under
# load through the load balancer:
#   1. `podman kill` (SIGKILL) of one batcher container, then of the sequencer container:
#      each comes back (its restart policy, or this test starts it when the engine does not:
#      podman 4.3 counts `podman kill` as a stop by the user) and the log grows again; and a
#      crash of another batcher's process (SIGKILL from the host to the process under the
#      container's init): the restart policy brings that container back;
#   2. no SCT was wrong (every one verified) and none is lost: `tegula fsck --scts` through
#      the load balancer finds every SCT the load was given, before, during and after;
#   3. after the crashes the deployment is whole: a new load has no error at all.
set -eu
: "${TEGULA_BUILD:?run through tests/system/run.sh}"
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/compose-lib.sh"
compose_init failures
t0=$(date +%s%N)
elapsed() { echo "$(( ($(date +%s%N) - t0) / 1000000 )) ms"; }

compose_up
check "up: 3 batchers, ready after $CP_READY_MS ms"
log_size() { curl -fsS --max-time 5 "${CP_PREFIX}checkpoint" 2>/dev/null | sed -n 2p; }
grows_past() { [ "$(log_size || echo 0)" -gt "$1" ]; }
running() { [ "$(podman inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" = true ]; }
restarts() { podman inspect -f '{{.RestartCount}}' "$1" 2>/dev/null || echo 0; }

# crash SERVICE ID: SIGKILL at a random point of the period; waits for the container to run
# again (restart policy, else podman start after 15 s); prints how it came back.
crash() {
    svc=$1
    id=$2
    before=$(restarts "$id")
    sleep "0.$(($(tg_random) % 10))"
    podman kill "$id" >/dev/null 2>&1 || fail "podman kill $svc"
    i=0
    while [ $i -lt 150 ]; do
        if running "$id" && [ "$(restarts "$id")" -gt "$before" ]; then
            how="restarted by its restart policy"
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
    podman start "$id" >/dev/null 2>&1 || fail "podman start $svc after the kill"
    how="restart policy did not act within 15 s; started by the test"
}

compose_load_bg "$TG_TMP/load.out" --clients 48 --duration 300 --timeout 30 --retries 1000 \
    --retry-after-max 1 --max-errors 100000000 --report 0 --out-scts "$TG_TMP/scts1"
tg_wait_until 60 "entries under load" grows_past 300

# ---- 1. one batcher
victim=$(compose_ids batcher | head -n 1)
size=$(log_size)
crash batcher "$victim"
tg_wait_until 60 "the killed batcher to be ready again" all_ready
tg_wait_until 60 "the log to grow after the batcher's crash" grows_past $((size + 300))
check "podman kill of a batcher under load: $how; the log grows (size $(log_size))"

# A crash of the process itself (not a stop by the user): the restart policy must act.
victim=$(compose_ids batcher | sed -n 2p)
before=$(restarts "$victim")
init_pid=$(podman inspect -f '{{.State.Pid}}' "$victim")
child=$(cat "/proc/$init_pid/task/$init_pid/children" 2>/dev/null | awk '{ print $1 }')
[ -n "$child" ] && tr '\0' ' ' <"/proc/$child/cmdline" | grep -q tegula-batcher ||
    fail "no tegula-batcher under the container's init (pid $init_pid)"
size=$(log_size)
kill -KILL "$child"
back() { running "$victim" && [ "$(restarts "$victim")" -gt "$before" ]; }
tg_wait_until 30 "the restart policy to restart the crashed batcher" back
tg_wait_until 60 "the crashed batcher to be ready again" all_ready
tg_wait_until 60 "the log to grow after the batcher's crash" grows_past $((size + 300))
check "SIGKILL of a batcher's process: the restart policy restarted its container; the log grows (size $(log_size))"

# ---- 2. the sequencer
seq_id=$(compose_ids sequencer)
size=$(log_size)
crash sequencer "$seq_id"
tg_wait_until 90 "the log to grow after the sequencer's crash" grows_past $((size + 300))
check "podman kill of the sequencer under load: $how; it recovered, the log grows (size $(log_size))"
podman logs "$seq_id" 2>&1 | grep -q 'msg="recovered the log"' || fail "no recovery logged"

compose_load_stop
result=$(grep '^RESULT' "$TG_TMP/load.out") ||
    fail "load (exit status $status after SIGTERM) printed no RESULT: $(tail -n 5 "$TG_TMP/load.out")"
[ "$status" -eq 0 ] || fail "load exited $status: $result"
echo "$result" | grep -q ' bad_sct=0 ' || fail "an SCT did not verify: $result"
field() { echo "$result" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
check "load across the three crashes: $(field ok) SCTs, every one verified; $(field errors) submissions failed in flight (no SCT given), $(field retried_503) answers 503 retried"

# ---- 3. whole again
tg_wait_until 60 "every batcher and frontend ready" all_ready
out=$(compose_load --clients 32 --count 300 --timeout 30 --quiet --out-scts "$TG_TMP/scts2") ||
    fail "load after the crashes: $out"
echo "$out" | grep -q '^RESULT ok=300 .* errors=0 ' || fail "load after the crashes: $out"
check "after the crashes: 300 more submissions, no error"
cat "$TG_TMP/scts1" "$TG_TMP/scts2" >"$TG_TMP/scts"
compose_fsck "$TG_TMP/scts"
check "tegula fsck through the LB: every SCT returned ($(wc -l <"$TG_TMP/scts" | tr -d ' ')) is in the log"
compose_down
echo "test_compose_failures: $TG_CHECKS checks passed in $(elapsed) (down: $CP_DOWN_MS ms)"
