#!/bin/sh
# What the container image relies on, without containers (deploy/entrypoint.sh):
#   1. tegula-sequencer --create-only creates the log and exits 0; a second run exits 3 and
#      changes nothing (the checkpoint is byte-identical); a normal start then recovers it;
#   2. a batcher listening on a wildcard address without --id takes this host's name as its
#      id (container replicas share the listen address, not the host name); with a specific
#      listen address the id stays the address.
set -eu
. "$(dirname "$0")/lib.sh"
tg_setup containerdefaults
tg_need_roles
tg_deploy 1
log=log1

# ---- 1. --create-only
set +e
"$TG_BUILD/tegula-sequencer" -c "$TG_CFG" --log $log --create-only >"$TG_TMP/create1.log" 2>&1
first=$?
set -e
[ "$first" -eq 0 ] || fail "--create-only exited $first: $(tail -n 3 "$TG_TMP/create1.log")"
cp "$(tg_storage $log)/checkpoint" "$TG_TMP/checkpoint.first" || fail "no checkpoint after --create-only"
grep -q 'msg="created the log"' "$TG_TMP/create1.log" || fail "no 'created the log' line"
set +e
"$TG_BUILD/tegula-sequencer" -c "$TG_CFG" --log $log --create-only >"$TG_TMP/create2.log" 2>&1
second=$?
set -e
[ "$second" -eq 3 ] || fail "--create-only on an existing log exited $second (want 3)"
cmp -s "$TG_TMP/checkpoint.first" "$(tg_storage $log)/checkpoint" || fail "the second --create-only changed the checkpoint"
check "--create-only: 0 and the log exists; again: exit 3, the checkpoint unchanged"
"$TG_BUILD/tegula-sequencer" -c "$TG_CFG" --log $log >"$TG_TMP/seq.log" 2>&1 &
seq_pid=$!
TG_PIDS="$TG_PIDS $seq_pid"
sequencing() { grep -q 'msg="sequencing"' "$TG_TMP/seq.log"; }
tg_wait_until 20 "the sequencer to start on the created log" sequencing
kill -TERM $seq_pid
wait $seq_pid || fail "the sequencer exited $? after SIGTERM"
grep -q 'msg="recovered the log" log=log1 size=0' "$TG_TMP/seq.log" || fail "no recovery: $(tail -n 3 "$TG_TMP/seq.log")"
check "a normal start after --create-only recovers the empty log and stops cleanly on SIGTERM"

# ---- 2. batcher ids
batcher_id() { # LISTEN: the id the batcher logs at start
    "$TG_BUILD/tegula-batcher" -c "$TG_CFG" --listen "$1" >"$TG_TMP/batcher.log" 2>&1 &
    pid=$!
    TG_PIDS="$TG_PIDS $pid"
    started() { grep -q 'msg="batcher started"' "$TG_TMP/batcher.log"; }
    tg_wait_until 20 "the batcher to start on $1" started
    kill -TERM $pid
    wait $pid || fail "the batcher exited $? after SIGTERM"
    sed -n 's/.*msg="batcher started" .* id=\([^ ]*\) .*/\1/p' "$TG_TMP/batcher.log"
}
port=$((TG_PORT_BASE + 8))
id=$(batcher_id "tcp://0.0.0.0:$port")
[ "$id" = "$(hostname)" ] || fail "wildcard listen: id '$id', want the host name '$(hostname)'"
id=$(batcher_id "tcp://127.0.0.1:$port")
[ "$id" = "tcp://127.0.0.1:$port" ] || fail "specific listen: id '$id', want the address"
check "batcher id: the host name on tcp://0.0.0.0, the listen address on tcp://127.0.0.1"
echo "test_container_defaults: $TG_CHECKS checks passed"
