#!/bin/sh
# What `make run` does (tools/run.sh), in a temporary var directory on free ports: the first
# run creates the development deployment and its logs and prints a copy-paste curl command and
# a tegula submit command that work as printed; SIGTERM stops everything with exit 0; a second
# run reuses the directory without --create and continues the same log.
set -eu
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
tg_setup make-run
tg_need_roles
t=$TG_TMP
root=$(cd "$(dirname "$0")/../.." && pwd)
tg_free_ports 210
port=$TG_PORT_BASE
export TEGULA_VAR="$t/var" TEGULA_PORT=$port TEGULA_PORT_BASE=$TG_PORT_BASE

banners() { grep -c "tegula is running" "$t/up.log" || :; }
have_banners() { [ "$(banners)" -ge "$1" ]; }
run_gone() { ! kill -0 "$TG_UP_PID" 2>/dev/null; }
# start_run N: starts tools/run.sh and waits for its Nth banner (the frontend is ready).
start_run() {
    sh "$root/tools/run.sh" "$TG_BUILD" >>"$t/up.log" 2>&1 &
    TG_UP_PID=$!
    tg_wait_until 120 "the run.sh banner" have_banners "$1"
}
stop_run() {
    kill -TERM "$TG_UP_PID"
    tg_wait_until 60 "run.sh to stop" run_gone
    set +e
    wait "$TG_UP_PID"
    rc=$?
    set -e
    TG_UP_PID=
    [ "$rc" = 0 ] || fail "run.sh exited $rc after SIGTERM"
    for pid in $(tg_all_child_pids); do
        if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q tegula-; then
            fail "child $pid still runs"
        fi
    done
    tg_check_log
}
# The Nth printed command line containing TEXT, with /tmp/ files moved into $t.
printed() {
    grep -F -- "$1" "$t/up.log" | sed -n "${2}p" | sed "s|^ *||; s|/tmp/c\.json|$t/c.json|g; s|/tmp/c\.pem|$t/c.pem|g"
}

echo "first run"
start_run 1
check "the first run created the deployment: config, two half-year logs with keys, a test CA"
for f in tegula.yaml roots.pem ca/root.pem ca/intermediate.pem dev.env; do
    [ -s "$t/var/$f" ] || fail "var/$f missing"
done
. "$t/var/dev.env"
set -- $TEGULA_DEV_LOGS
[ $# = 2 ] || fail "logs: $TEGULA_DEV_LOGS"
for log in "$@"; do
    echo "$log" | grep -Eq '^[0-9]{4}h[12]$' || fail "log name $log"
    [ -s "$t/var/keys/$log.key" ] && [ -s "$t/var/keys/$log.pem" ] || fail "keys of $log"
    [ -e "$t/var/data/$log/lock" ] || fail "$log was not created (no lock)"
done
grep -q 'msg="starting".* create=true' "$t/up.log" || fail "first run without --create"
check "the banner names the submission and monitoring URLs of both logs"
for log in "$@"; do
    grep -qF "http://127.0.0.1:$port/$log/ct/v1/add-chain" "$t/up.log" || fail "no URL for $log"
    grep -qF "http://127.0.0.1:$port/$log/checkpoint" "$t/up.log" || fail "no monitoring URL"
done

check "the printed curl command mints a fresh chain and prints its SCT"
cmd=$(printed "curl -sS --data-binary" 1)
[ -n "$cmd" ] || fail "no curl command printed"
(cd "$root" && eval "$cmd") >"$t/curl.out" 2>"$t/curl.err" || fail "$cmd: $(cat "$t/curl.err")"
jq -e '.sct_version == 0 and (.signature | length > 0)' "$t/curl.out" >/dev/null ||
    fail "not an SCT: $(cat "$t/curl.out")"
check "the printed tegula submit command verifies the SCT and finds the entry in the log"
cmd=$(printed "submit --url" 1)
(cd "$root" && eval "$cmd") >"$t/submit.out" 2>"$t/submit.err" || fail "$cmd: $(cat "$t/submit.err")"
grep -q "included: leaf_index=1 " "$t/submit.err" || fail "$(cat "$t/submit.err")"

check "the printed monitoring URL serves the signed checkpoint of that log"
for log in "$@"; do
    curl -fsS "http://127.0.0.1:$port/$log/checkpoint" >"$t/checkpoint" || fail "GET checkpoint"
    [ "$(head -n 1 "$t/checkpoint")" = "127.0.0.1:$port/$log" ] || fail "$(cat "$t/checkpoint")"
done

check "SIGTERM to run.sh stops everything; exit 0"
stop_run

echo "second run"
start_run 2
check "the second run reuses var/ without --create and continues the same log"
[ "$(grep -c 'msg="starting".* create=false' "$t/up.log")" = 1 ] || fail "second run created"
cmd=$(printed "submit --url" 2)
(cd "$root" && eval "$cmd") >"$t/submit2.out" 2>"$t/submit2.err" || fail "$(cat "$t/submit2.err")"
grep -q "included: leaf_index=2 " "$t/submit2.err" || fail "$(cat "$t/submit2.err")"
stop_run

echo "test_make_run: $TG_CHECKS checks passed"
