#!/bin/sh
# tegula up as a supervisor, with stand-in children (small shell scripts named tegula-frontend,
# tegula-batcher and tegula-sequencer in a --bin-dir) so every rule is checked exactly:
# command lines, output forwarding, restart with backoff, --create on the first start only,
# staged stop (frontend, batchers, sequencers), SIGKILL after --stop-timeout, the exit-2 rule,
# children dying with the supervisor, and command-line errors.
set -eu
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
tg_setup up-supervisor
tg_deploy 2

bin=$TG_TMP/bin
state=$TG_TMP/state
mkdir -p "$bin" "$state"
for role in frontend batcher sequencer; do
    cat >"$bin/tegula-$role" <<EOF
#!/bin/sh
# Stand-in child: records its start and its SIGTERM in $state.
role=$role
state=$state
EOF
    cat >>"$bin/tegula-$role" <<'EOF'
id=$role
prev=
for a in "$@"; do
    case $prev in --listen | --log) id="$role:$a" ;; esac
    prev=$a
done
echo "$id $$ $*" >>"$state/starts"
if [ -e "$state/exit2-$role" ]; then
    echo "stand-in $id: bad config" >&2
    exit 2
fi
if [ -e "$state/ignore-term-$role" ]; then
    trap '' TERM
else
    trap 'echo "$id" >>"$state/terms"; exit 0' TERM
fi
echo "hello from $id"
printf 'no newline at the end from %s' "$id" >&2
while :; do sleep 0.05; done
EOF
    chmod +x "$bin/tegula-$role"
done

starts() { [ -f "$state/starts" ] && wc -l <"$state/starts" | tr -d ' ' || echo 0; }
start_up() {
    : >"$TG_TMP/up.log"
    "$TG_TEGULA" up -c "$TG_CFG" --bin-dir "$bin" "$@" >>"$TG_TMP/up.log" 2>&1 &
    TG_UP_PID=$!
}
have_starts() { [ "$(starts)" -ge "$1" ]; }
up_gone() { ! kill -0 "$TG_UP_PID" 2>/dev/null; }
logged() { grep -qF -- "$1" "$TG_TMP/up.log"; }
# Reaps tegula up (never in a subshell: only this shell can wait for it); sets up_rc.
up_wait() {
    set +e
    wait "$TG_UP_PID" 2>/dev/null
    up_rc=$?
    set -e
    TG_UP_PID=
}
pid_of() { awk -v id="$1" '$1 == id { p = $2 } END { print p }' "$state/starts"; }
alive() { kill -0 "$1" 2>/dev/null; }
dead() { ! kill -0 "$1" 2>/dev/null; }

echo "start: command lines"
start_up --create --http-base "$TG_HTTP_BASE"
tg_wait_until 20 "5 children started" have_starts 5
cfg_abs=$(cd "$(dirname "$TG_CFG")" && pwd)/$(basename "$TG_CFG")
b0=tcp://127.0.0.1:$((TG_PORT_BASE + 1))
b1=tcp://127.0.0.1:$((TG_PORT_BASE + 2))
check "sequencers start first, with --log, --http after the batchers' ports, and --create"
[ "$(sed -n 's/.*msg="child started" child=\([^ ]*\).*/\1/p' "$TG_TMP/up.log" | tr '\n' ' ')" = \
    "sequencer-log1 sequencer-log2 batcher-0 batcher-1 frontend " ] || fail "start order"
grep -qx "sequencer:log1 [0-9]* -c $cfg_abs --log log1 --http 127.0.0.1:$((TG_HTTP_BASE + 2)) --create" \
    "$state/starts" || fail "sequencer log1 command line: $(cat "$state/starts")"
grep -qx "sequencer:log2 [0-9]* -c $cfg_abs --log log2 --http 127.0.0.1:$((TG_HTTP_BASE + 3)) --create" \
    "$state/starts" || fail "sequencer log2 command line"
check "one batcher per batchers.addresses entry, listening on it, --http from --http-base"
grep -qx "batcher:$b0 [0-9]* -c $cfg_abs --listen $b0 --http 127.0.0.1:$TG_HTTP_BASE" \
    "$state/starts" || fail "batcher 0 command line: $(cat "$state/starts")"
grep -qx "batcher:$b1 [0-9]* -c $cfg_abs --listen $b1 --http 127.0.0.1:$((TG_HTTP_BASE + 1))" \
    "$state/starts" || fail "batcher 1 command line"
check "one frontend with the absolute config path"
grep -qx "frontend [0-9]* -c $cfg_abs" "$state/starts" || fail "frontend command line"

check "child output is forwarded line by line, prefixed with the child's name"
tg_wait_until 10 "forwarded output" logged "[batcher-1] hello from batcher:$b1"
logged "[sequencer-log2] hello from sequencer:log2" || fail "sequencer output not forwarded"
check "the up log names every child with its pid"
[ "$(tg_child_pid frontend)" = "$(pid_of frontend)" ] || fail "frontend pid not logged"

echo "restart"
old=$(pid_of "batcher:$b1")
kill -KILL "$old"
tg_wait_until 20 "batcher-1 restarted" have_starts 6
check "a killed batcher is restarted with the same command line, and it is logged"
new=$(pid_of "batcher:$b1")
[ "$new" != "$old" ] || fail "batcher-1 not restarted"
[ "$(grep -c "^batcher:$b1 " "$state/starts")" = 2 ] || fail "batcher-1 starts"
tail -n 1 "$state/starts" | grep -q -- "--listen $b1 --http" || fail "restart command line"
logged 'msg="child exited; restarting" child=batcher-1 signal=9' || fail "restart not logged"
check "the dead child's unfinished last line is still forwarded"
logged "[batcher-1] no newline at the end from batcher:$b1" || fail "partial line lost"

check "a restarted sequencer does not get --create again"
kill -KILL "$(pid_of sequencer:log1)"
tg_wait_until 20 "sequencer-log1 restarted" have_starts 7
tail -n 1 "$state/starts" | grep -qx "sequencer:log1 [0-9]* -c $cfg_abs --log log1 --http 127.0.0.1:$((TG_HTTP_BASE + 2))" ||
    fail "restarted sequencer command line: $(tail -n 1 "$state/starts")"

check "a child that keeps failing is restarted with growing delays"
first=$(pid_of frontend)
kill -KILL "$first"
tg_wait_until 20 "frontend restarted" have_starts 8
kill -KILL "$(pid_of frontend)"
tg_wait_until 20 "frontend restarted twice" have_starts 9
logged 'child=frontend signal=9 ran_ms=' || fail "frontend restart not logged"
delays=$(sed -n 's/.*child=frontend signal=9 ran_ms=[0-9]* restart_in_ms=\([0-9]*\).*/\1/p' \
    "$TG_TMP/up.log" | tr '\n' ' ')
[ "$delays" = "250 500 " ] || fail "frontend restart delays: '$delays', want '250 500 '"

echo "stop"
pids=$(awk '{ print $2 }' "$state/starts")
kill -TERM "$TG_UP_PID"
tg_wait_until 60 "tegula up stopped" up_gone
check "SIGTERM stops every child and tegula up exits 0"
up_wait
[ "$up_rc" = 0 ] || fail "tegula up did not exit 0"
for pid in $pids; do
    dead "$pid" || fail "child $pid still alive"
done
check "stop order: frontend, then both batchers, then both sequencers"
[ "$(cut -d: -f1 "$state/terms" | tr '\n' ' ')" = "frontend batcher batcher sequencer sequencer " ] ||
    fail "stop order: $(tr '\n' ' ' <"$state/terms")"
logged 'msg="stopped" exit=0' || fail "no final log line"

echo "stop timeout"
rm -f "$state/starts" "$state/terms"
touch "$state/ignore-term-batcher"
start_up --stop-timeout 500
tg_wait_until 20 "5 children started" have_starts 5
pids=$(awk '{ print $2 }' "$state/starts")
kill -TERM "$TG_UP_PID"
tg_wait_until 30 "tegula up stopped" up_gone
check "batchers ignoring SIGTERM are killed after --stop-timeout; the sequencers still stop"
up_wait
[ "$up_rc" = 0 ] || fail "tegula up did not exit 0"
logged 'msg="children did not stop in time; killing them" stage=batchers' || fail "no kill logged"
for pid in $pids; do dead "$pid" || fail "child $pid still alive"; done
grep -q '^sequencer:log1' "$state/terms" || fail "sequencers were not stopped after the kill"
rm -f "$state/ignore-term-batcher"

echo "a second signal"
rm -f "$state/starts" "$state/terms"
touch "$state/ignore-term-frontend"
start_up
tg_wait_until 20 "5 children started" have_starts 5
pids=$(awk '{ print $2 }' "$state/starts")
kill -TERM "$TG_UP_PID"
tg_wait_until 10 "stop begun" logged 'msg="stopping"'
kill -INT "$TG_UP_PID"
tg_wait_until 10 "tegula up stopped" up_gone
check "a second SIGTERM/SIGINT while stopping kills every child at once (long before the 15 s stop timeout)"
up_wait
[ "$up_rc" = 0 ] || fail "tegula up did not exit 0"
logged 'msg="second signal: killing every child now"' || fail "second signal not logged"
for pid in $pids; do dead "$pid" || fail "child $pid still alive"; done
rm -f "$state/ignore-term-frontend"

echo "exit status 2"
rm -f "$state/starts" "$state/terms"
touch "$state/exit2-sequencer"
start_up
tg_wait_until 20 "tegula up gave up" up_gone
check "a child exiting 2 (bad command line or config) stops everything; tegula up exits 1"
up_wait
[ "$up_rc" = 1 ] || fail "tegula up did not exit 1"
logged 'msg="child refused its command line or config; stopping everything"' || fail "not logged"
logged "bad config" || fail "the child's reason was not forwarded"
awk '$1 !~ /^sequencer/ { print $2 }' "$state/starts" | while read -r pid; do
    dead "$pid" || fail "child $pid still alive"
done
rm -f "$state/exit2-sequencer"

echo "supervisor death"
rm -f "$state/starts" "$state/terms"
start_up
tg_wait_until 20 "5 children started" have_starts 5
pids=$(awk '{ print $2 }' "$state/starts")
kill -KILL "$TG_UP_PID"
up_wait
check "children of a SIGKILLed tegula up get SIGTERM and exit"
for pid in $pids; do tg_wait_until 10 "child $pid to exit" dead "$pid"; done
[ "$(wc -l <"$state/terms")" -eq 5 ] || fail "not every child got SIGTERM"

echo "command lines"
rm -f "$state/starts" "$state/terms"
expect() { # STATUS CMD...
    want=$1
    shift
    set +e
    "$@" >"$TG_TMP/out" 2>&1
    got=$?
    set -e
    [ "$got" = "$want" ] || fail "exit $got, want $want: $* ($(cat "$TG_TMP/out"))"
}
check "usage errors exit 2"
expect 2 "$TG_TEGULA" up
expect 2 "$TG_TEGULA" up -c "$TG_CFG" --batchers 0
expect 2 "$TG_TEGULA" up -c "$TG_CFG" --http-base 70000
expect 2 "$TG_TEGULA" up -c "$TG_CFG" stray
check "failures exit 1 with a reason: bad config, too many batchers, missing binaries, dns"
expect 1 "$TG_TEGULA" up -c "$TG_TMP/no-such.yaml"
expect 1 "$TG_TEGULA" up -c "$TG_CFG" --batchers 3 --bin-dir "$bin"
grep -q "lists only 2" "$TG_TMP/out" || fail "reason: $(cat "$TG_TMP/out")"
expect 1 "$TG_TEGULA" up -c "$TG_CFG" --bin-dir "$TG_TMP/keys"
grep -q "tegula-frontend" "$TG_TMP/out" || fail "reason: $(cat "$TG_TMP/out")"
sed 's/^  addresses: .*/  dns: localhost:9100/' "$TG_CFG" >"$TG_TMP/dns.yaml"
expect 1 "$TG_TEGULA" up -c "$TG_TMP/dns.yaml" --bin-dir "$bin"
grep -q "batchers.addresses" "$TG_TMP/out" || fail "reason: $(cat "$TG_TMP/out")"
[ ! -s "$state/starts" ] || fail "a refused command line started children"

check "--create goes only to sequencers of logs whose lock holds no checkpoint yet"
rm -f "$state/starts" "$state/terms"
mkdir -p "$TG_TMP/data/log2"
printf 'a checkpoint\n' >"$TG_TMP/data/log2/lock"
start_up --create
tg_wait_until 20 "5 children started" have_starts 5
grep -qx "sequencer:log1 [0-9]* -c $cfg_abs --log log1 --create" "$state/starts" ||
    fail "log1 without --create: $(cat "$state/starts")"
grep -qx "sequencer:log2 [0-9]* -c $cfg_abs --log log2" "$state/starts" ||
    fail "log2 with --create: $(cat "$state/starts")"
logged 'msg="the log exists; its sequencer starts without --create" log=log2' || fail "not logged"
kill -TERM "$TG_UP_PID"
tg_wait_until 30 "tegula up stopped" up_gone
up_wait
[ "$up_rc" = 0 ] || fail "tegula up did not exit 0"
rm -f "$TG_TMP/data/log2/lock"

check "--batchers 1 starts only the first batcher"
rm -f "$state/starts" "$state/terms"
start_up --batchers 1
tg_wait_until 20 "4 children started" have_starts 4
sleep 0.3
[ "$(starts)" = 4 ] || fail "$(starts) children started, want 4"
grep -q "^batcher:$b0 " "$state/starts" || fail "batcher 0 not started"
kill -TERM "$TG_UP_PID"
tg_wait_until 30 "tegula up stopped" up_gone
up_wait
[ "$up_rc" = 0 ] || fail "tegula up did not exit 0"

echo "test_up_supervisor: $TG_CHECKS checks passed"
