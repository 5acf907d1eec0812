#!/bin/sh
# The crash the staging bundle exists for, made to happen every time rather than by chance:
# S3 storage and lock, load running, and the sequencer dies (TEGULA_CRASH_AT=after-lock-cas,
# a test hook that _exits like a kill -9) right after its checkpoint CAS into the lock
# succeeded and before any tile of that round was uploaded. tegula up restarts it with a
# config naming a different, empty data directory, so nothing local can help: recovery must
# read the lock from S3, find it ahead of the published checkpoint and replay the round's
# staging bundle from S3. Then: the replayed round is the one that crashed, every SCT
# returned (before and after) is in the log (tegula fsck --scts over s3://), no fork (the
# lock holds exactly the published checkpoint), and submissions resume.
#
# TEGULA_CRASH_FILE=1 runs the same on file:// storage and lock (tests/integration does).
set -eu
: "${TEGULA_BUILD:?run through tests/system/run.sh or tests/integration/run.sh}"
. "$(dirname "$0")/../integration/lib.sh"
tg_setup crashpoint
tg_need_roles
if [ "${TEGULA_CRASH_FILE:-0}" = 1 ]; then
    backend=file
else
    : "${TEGULA_S3_ENDPOINT:?}"
    TG_S3=1
    backend=S3
fi
TG_PERIOD_MS=200 tg_deploy 1
log=log1

# A bin dir for tegula up whose tegula-sequencer arms the crash point on its first start (after
# 10 rounds with entries, so SCTs were returned before the crash) and on every later start
# runs from a fresh empty directory with a config whose data_dir is another empty directory.
mkdir -p "$TG_TMP/bin" "$TG_TMP/fresh"
for b in tegula-frontend tegula-batcher; do ln -s "$TG_BUILD/$b" "$TG_TMP/bin/$b"; done
sed "s#^  data_dir: .*#  data_dir: $TG_TMP/fresh/sequencer#" "$TG_CFG" >"$TG_TMP/after-crash.yaml"
cat >"$TG_TMP/bin/tegula-sequencer" <<EOF
#!/bin/sh
if [ ! -e "$TG_TMP/armed" ]; then
    : >"$TG_TMP/armed"
    TEGULA_CRASH_AT=after-lock-cas:10 exec "$TG_BUILD/tegula-sequencer" "\$@"
fi
config_next=0
for a in "\$@"; do
    shift
    if [ \$config_next = 1 ]; then
        set -- "\$@" "$TG_TMP/after-crash.yaml"
        config_next=0
        continue
    fi
    [ "\$a" = -c ] && config_next=1
    set -- "\$@" "\$a"
done
cd "$TG_TMP/fresh"
exec "$TG_BUILD/tegula-sequencer" "\$@"
EOF
chmod +x "$TG_TMP/bin/tegula-sequencer"

tg_up --create --bin-dir "$TG_TMP/bin"
"$TG_TEGULA" load --url "$(tg_prefix $log)" --ca-dir "$TG_TMP/ca-p256" --key "$(tg_pubkey $log)" \
    --not-after "$(tg_not_after $log)" --threads 1 --clients 32 --duration 120 --timeout 15 \
    --retries 100 --max-errors 100000000 --report 0 --out-scts "$TG_TMP/scts" \
    >"$TG_TMP/load.out" 2>&1 &
load_pid=$!
TG_PIDS="$TG_PIDS $load_pid"

crashed() { grep -q 'msg="test crash point reached: exiting at once" .*point=after-lock-cas' "$TG_TMP/up.log"; }
tg_wait_until 60 "the sequencer to reach its crash point under load" crashed
crash_size=$(sed -n 's/.*msg="test crash point reached: exiting at once" .* size=\([0-9]*\).*/\1/p' \
    "$TG_TMP/up.log" | head -n 1)
grep -q 'msg="child exited; restarting" child=sequencer-log1 exit=86 ' "$TG_TMP/up.log" ||
    fail "the sequencer did not die at the crash point: $(grep 'child exited' "$TG_TMP/up.log" | head -n 2)"
check "the sequencer died right after the lock CAS of the round reaching size $crash_size (exit 86, no tile of it uploaded)"

replayed() { grep -q 'msg="replayed the committed round"' "$TG_TMP/up.log"; }
tg_wait_until 60 "the restarted sequencer to replay the staging bundle" replayed
line=$(grep 'msg="replayed the committed round"' "$TG_TMP/up.log" | head -n 1)
echo "$line" | grep -q "key=staging/$crash_size-[0-9a-f]\{64\} .*size=$crash_size" ||
    fail "the replay is not the crashed round (size $crash_size): $line"
grep -q "msg=\"recovered the log\" log=$log size=$crash_size .*replayed=yes" "$TG_TMP/up.log" ||
    fail "no recovery to size $crash_size with replayed=yes: $(grep 'recovered the log' "$TG_TMP/up.log" | tail -n 1)"
[ ! -e "$TG_TMP/data/sequencer" ] || [ -z "$(find "$TG_TMP/data/sequencer" -type f)" ] ||
    fail "the crashed sequencer kept local files: $(find "$TG_TMP/data/sequencer" -type f | head -n 3)"
check "restarted in an empty directory on another data_dir: recovery replayed staging/$crash_size-<root> from $backend (the lock was ahead) and recovered to size $crash_size"

# Submissions resume: the log grows well past the crash, with new SCTs.
grows_past() { [ "$(tg_checkpoint_size $log)" -gt "$1" ]; }
tg_wait_until 60 "the log to grow after the restart" grows_past $((crash_size + 200))
kill -TERM $load_pid
i=0
while [ $i -lt 300 ] && kill -0 $load_pid 2>/dev/null; do
    sleep 0.1
    i=$((i + 1))
done
kill -0 $load_pid 2>/dev/null && fail "load did not stop"
set +e
wait $load_pid
status=$?
set -e
[ "$status" -eq 0 ] || fail "load exited $status: $(tail -n 3 "$TG_TMP/load.out")"
grep -q ' bad_sct=0 ' "$TG_TMP/load.out" || fail "a returned SCT did not verify: $(tail -n 3 "$TG_TMP/load.out")"
before=$(awk -v n="$crash_size" '$1 < n' "$TG_TMP/scts" | wc -l | tr -d ' ')
after=$(awk -v n="$crash_size" '$1 >= n' "$TG_TMP/scts" | wc -l | tr -d ' ')
[ "$before" -gt 0 ] && [ "$after" -gt 0 ] || fail "SCTs before the crash: $before, after: $after"
check "submissions resumed: SCTs for $before entries before the crash and $after after it, all verified by load"

TG_ALLOW_RESTARTS=1 # the crash is on purpose; tegula up restarted the sequencer
tg_stop
all=$(wc -l <"$TG_TMP/scts" | tr -d ' ')
out=$(timeout 120 "$TG_TEGULA" fsck --url "$(tg_storage_url $log)" --key "$(tg_pubkey $log)" \
    --scts "$TG_TMP/scts" 2>&1) || fail "fsck: $out"
echo "$out" | grep -q "all $all SCTs found" || fail "fsck --scts: $out"
echo "$out" | tail -n 1
check "tegula fsck over $backend: the log verifies and all $all SCTs returned are in it"
if [ "$backend" = S3 ]; then
    [ "$(tg_s3_get "$log-lock/checkpoint" "$TG_TMP/lock")" = 200 ] || fail "cannot read the lock object"
    [ "$(tg_s3_get "$log/checkpoint" "$TG_TMP/published")" = 200 ] || fail "cannot read the checkpoint"
else
    cp "$(tg_checkpoint_file $log)" "$TG_TMP/published"
    cp "$TG_TMP/data/$log/lock" "$TG_TMP/lock"
fi
cmp -s "$TG_TMP/lock" "$TG_TMP/published" || fail "fork: the lock and the published checkpoint differ"
check "no fork: the lock holds exactly the published checkpoint"
echo "test_s3_crashpoint ($backend): $TG_CHECKS checks passed"
