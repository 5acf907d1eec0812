#!/bin/sh
# Crashes under load. While `tegula load` submits (every SCT verified and recorded), kill -9
# the sequencer, then a batcher, then the frontend; `tegula up` restarts each, and after each
# restart the log must grow again. Then:
#   - every SCT ever returned is in the recovered log at its index with its timestamp and
#     leaf hash (tegula fsck --scts), and fsck verifies the whole log (no fork: the entries
#     imply the checkpoint's root, and the lock holds the published checkpoint);
#   - submissions resume: a further load gets every SCT, without a single error;
#   - a second sequencer started for the running log cannot commit: it exits non-zero, the
#     first keeps running and the log stays intact.
set -eu
. "$(dirname "$0")/lib.sh"
tg_setup crash
tg_need_roles
TG_PERIOD_MS=200 tg_deploy 1
tg_up --create
log=log1
storage=$(tg_storage $log)

load() {
    "$TG_TEGULA" load --url "$(tg_prefix $log)" --ca-dir "$TG_TMP/ca-p256" \
        --key "$(tg_pubkey $log)" --not-after "$(tg_not_after $log)" --threads 1 "$@"
}

# grows_past SIZE: the published tree is larger than SIZE.
grows_past() { [ "$(tg_checkpoint_size $log)" -gt "$1" ]; }

# restarted NAME OLD-PID: tegula up has started NAME again since OLD-PID.
restarted() { [ "$(tg_child_pid "$1")" != "$2" ]; }

# crash NAME: kill -9 a child of tegula up, wait for its replacement and for the log to grow.
crash() {
    name=$1
    old=$(tg_child_pid "$name")
    [ -n "$old" ] || fail "no pid for $name"
    size=$(tg_checkpoint_size $log)
    # at a random point of the 200 ms period (mid-round or between rounds)
    sleep "0.$(($(tg_random) % 10))"
    kill -KILL "$old"
    tg_wait_until 30 "$name restarted" restarted "$name" "$old"
    tg_wait_until 60 "the log to grow after $name was killed" grows_past "$size"
    check "kill -9 $name (pid $old) under load: restarted, the log grew past $size entries"
}

# A long run, stopped with SIGTERM once the crashes are over. Failures are expected while a
# process is down (resets, 503s, timeouts); a returned SCT that does not verify is not.
# (Not through the load function: $! must be the load generator itself, not a subshell.)
"$TG_TEGULA" load --url "$(tg_prefix $log)" --ca-dir "$TG_TMP/ca-p256" --key "$(tg_pubkey $log)" \
    --not-after "$(tg_not_after $log)" --threads 1 --clients 32 --duration 300 --timeout 15 \
    --max-errors 100000000 --report 0 --cpu-of "$TG_UP_PID" --out-scts "$TG_TMP/scts1" >"$TG_TMP/load1.out" 2>&1 &
load_pid=$!
TG_PIDS="$TG_PIDS $load_pid"
tg_wait_until 30 "the first entries" grows_past 100
crash sequencer-$log
crash batcher-0
crash frontend
tg_wait_ready 30
sleep 2
kill -TERM $load_pid
set +e
wait $load_pid
status=$?
set -e
cat "$TG_TMP/load1.out" | sed -n '/^tegula load/,/^  cpu/p'
grep -q '^RESULT' "$TG_TMP/load1.out" || fail "load printed no result"
grep -q ' bad_sct=0 ' "$TG_TMP/load1.out" || fail "a returned SCT did not verify"
[ $status -eq 0 ] || fail "load exited $status"
returned=$(wc -l <"$TG_TMP/scts1" | tr -d ' ')
[ "$returned" -gt 100 ] || fail "only $returned SCTs returned under the crashes"
check "$returned SCTs returned and verified across the three crashes"

out=$(load --clients 16 --count 300 --quiet --out-scts "$TG_TMP/scts2") || fail "load after the crashes: $out"
echo "$out" | grep -q '^RESULT ok=300 .* errors=0 ' || fail "load after the crashes: $out"
check "submissions resume: 300 more, every SCT verified, no errors"

# A second sequencer for the running log (its own NNG address, same storage and lock).
seq_pid=$(tg_child_pid sequencer-$log)
sed "s#^    sequencer: .*#    sequencer: tcp://127.0.0.1:$((TG_PORT_BASE + 10))#" "$TG_CFG" >"$TG_TMP/second.yaml"
size=$(tg_checkpoint_size $log)
"$TG_BUILD/tegula-sequencer" -c "$TG_TMP/second.yaml" --log $log >"$TG_TMP/second.log" 2>&1 &
second=$!
TG_PIDS="$TG_PIDS $second"
i=0
while [ $i -lt 150 ] && kill -0 $second 2>/dev/null; do
    sleep 0.1
    i=$((i + 1))
done
kill -0 $second 2>/dev/null && fail "a second sequencer for $log is still running after 15 s"
set +e
wait $second
second_status=$?
set -e
[ $second_status -ne 0 ] || fail "the second sequencer exited 0"
grep -qi "lock" "$TG_TMP/second.log" ||
    fail "the second sequencer did not stop on the lock: $(tail -n 5 "$TG_TMP/second.log")"
[ "$(tg_child_pid sequencer-$log)" = "$seq_pid" ] && kill -0 "$seq_pid" ||
    fail "the first sequencer did not survive the second: $(tail -n 5 "$TG_TMP/second.log")"
out=$(load --clients 8 --count 50 --quiet --out-scts "$TG_TMP/scts3") || fail "load after the second sequencer: $out"
echo "$out" | grep -q '^RESULT ok=50 .* errors=0 ' || fail "load after the second sequencer: $out"
grows_past "$size" || fail "the log did not grow after the second sequencer"
check "a second sequencer exits $second_status without committing; the first keeps serving"

TG_ALLOW_RESTARTS=1 # the crashes above restarted children on purpose
tg_stop
cat "$TG_TMP/scts1" "$TG_TMP/scts2" "$TG_TMP/scts3" >"$TG_TMP/scts"
all=$(wc -l <"$TG_TMP/scts" | tr -d ' ')
out=$("$TG_TEGULA" fsck --url "$storage" --key "$(tg_pubkey $log)" --scts "$TG_TMP/scts" 2>&1) ||
    fail "fsck after the crashes: $out"
echo "$out" | grep -q "all $all SCTs found" || fail "fsck --scts: $out"
check "fsck verifies the recovered log ($(tg_checkpoint_size $log) entries) and finds all $all SCTs at their index"
cmp -s "$TG_TMP/data/$log/lock" "$storage/checkpoint" ||
    fail "the lock and the published checkpoint differ after a clean stop"
check "no fork: the lock holds exactly the published checkpoint"
echo "test_crash: $TG_CHECKS checks passed"
