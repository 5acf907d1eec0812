# lib.sh: shared helpers for integration tests that run real tegula processes on 127.0.0.1.
# POSIX sh (tests run under dash). Source it, then:
#
#   tg_setup NAME          temp dir $TG_TMP, $TG_TEGULA, cleanup on exit (every process this
#                          library started is stopped by PID; the temp dir is removed unless
#                          TEGULA_KEEP_TMP=1; on failure the tail of the up log is shown;
#                          TG_ON_EXIT: shell code run at cleanup, for what the test started)
#   tg_need_roles          skip the test (exit 0, "SKIP") when the role binaries are not built
#   tg_deploy [LOGS]       config $TG_CFG for LOGS temporal shards (default 2: log1, log2) on
#                          free ports: log keys (keys/<log>.key, public keys/<log>.pem), two
#                          test CAs ($TG_TMP/ca-p256, $TG_TMP/ca-rsa2048, both roots accepted),
#                          storage and locks under $TG_TMP/data/<log>/
#                          (TG_S3=1: in the S3 bucket of tests/system/run.sh instead, see
#                          tg_s3_url; local data/ then holds only batcher and sequencer state)
#   tg_up [ARGS]           starts `tegula up -c $TG_CFG ARGS` in the background ($TG_UP_PID,
#                          output in $TG_TMP/up.log) and waits for the frontend's /readyz
#   tg_stop                SIGTERM to tegula up; waits (bounded) and asserts it exited 0, no
#                          child is left and the up log is clean (tg_check_log)
#
# Facts for tests: $TG_URL (http://127.0.0.1:<frontend port>), tg_prefix LOG (submission
# prefix), tg_storage LOG (storage dir), tg_storage_url LOG (what fsck --url takes: the
# storage dir, or its s3:// URL), tg_s3_get KEY FILE (TG_S3=1: a signed GET of a bucket key), tg_pubkey LOG, tg_not_after LOG (an RFC 3339 time
# inside the log's window), tg_child_pid NAME (pid of a child of tegula up, e.g. batcher-0),
# tg_checkpoint_ts LOG / tg_checkpoint_size LOG (from the stored checkpoint).
# Assertions: check MSG (counts and prints), fail MSG (exits 1). tg_raise_open_files before
# loads with thousands of clients.

TG_CHECKS=0
TG_UP_PID=
TG_PIDS=

check() {
    TG_CHECKS=$((TG_CHECKS + 1))
    echo "  check: $*"
}

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

tg_setup() {
    here=$(cd "$(dirname "$0")" && pwd)
    TG_BUILD=${TEGULA_BUILD:-$here/../../build}
    TG_BUILD=$(cd "$TG_BUILD" && pwd)
    TG_TEGULA=$TG_BUILD/tegula
    [ -x "$TG_TEGULA" ] || fail "$TG_TEGULA is not built"
    for tool in curl jq base64 od awk cmp sed openssl; do
        command -v "$tool" >/dev/null || fail "this test needs '$tool'"
    done
    TG_TMP=$(mktemp -d "${TMPDIR:-/tmp}/tegula-$1.XXXXXX")
    trap 'tg_cleanup $?' EXIT
    trap 'exit 1' INT TERM HUP
}

tg_need_roles() {
    for b in tegula-frontend tegula-batcher tegula-sequencer; do
        if [ ! -x "$TG_BUILD/$b" ]; then
            echo "SKIP: $TG_BUILD/$b is not built yet"
            exit 0
        fi
    done
}

# Kills a pid if it still runs a tegula program (a reused pid belongs to someone else).
tg_kill_if_ours() {
    if [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -q tegula; then
        kill -KILL "$1" 2>/dev/null || :
    fi
}

# Pids of every child tegula up started, from its log.
tg_all_child_pids() {
    [ -f "$TG_TMP/up.log" ] || return 0
    sed -n 's/.*msg="child started" child=[^ ]* pid=\([0-9]*\).*/\1/p' "$TG_TMP/up.log"
}

tg_cleanup() {
    status=$1
    trap - EXIT
    if [ -n "$TG_UP_PID" ] && kill -0 "$TG_UP_PID" 2>/dev/null; then
        kill -TERM "$TG_UP_PID" 2>/dev/null || :
        i=0
        while [ $i -lt 300 ] && kill -0 "$TG_UP_PID" 2>/dev/null; do
            sleep 0.1
            i=$((i + 1))
        done
        kill -KILL "$TG_UP_PID" 2>/dev/null || :
    fi
    for pid in $(tg_all_child_pids) $TG_PIDS; do
        tg_kill_if_ours "$pid"
    done
    # A test's own extra cleanup (e.g. stopping an S3 server it started), before the rm.
    [ -z "${TG_ON_EXIT:-}" ] || eval "$TG_ON_EXIT" || :
    if [ "$status" -ne 0 ] && [ -f "$TG_TMP/up.log" ]; then
        echo "--- last lines of $TG_TMP/up.log:" >&2
        tail -n 60 "$TG_TMP/up.log" >&2
    fi
    if [ "${TEGULA_KEEP_TMP:-0}" = 1 ]; then
        echo "kept $TG_TMP" >&2
    else
        rm -rf "$TG_TMP"
    fi
    exit "$status"
}

tg_random() { # a number in [0, 65535]
    od -An -N2 -tu2 /dev/urandom | tr -d ' '
}

# Sets TG_PORT_BASE to the first of N consecutive TCP ports on 127.0.0.1 that nothing uses,
# below the kernel's ephemeral range so outgoing connections do not take them meanwhile.
tg_free_ports() {
    n=$1
    tries=0
    while [ $tries -lt 100 ]; do
        tries=$((tries + 1))
        base=$((20000 + $(tg_random) % 12000))
        # Local and remote ports of every TCP socket, from /proc (hex "ADDR:PORT" fields).
        used=$(cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v lo=$base -v hi=$((base + n)) '
            function hex(s,   i, v) {
                v = 0
                for (i = 1; i <= length(s); i++)
                    v = v * 16 + index("0123456789ABCDEF", toupper(substr(s, i, 1))) - 1
                return v
            }
            NR > 1 { for (f = 2; f <= 3; f++) { p = $f; sub(/.*:/, "", p); p = hex(p);
                if (p >= lo && p < hi) { print p; exit } } }')
        if [ -z "$used" ]; then
            TG_PORT_BASE=$base
            return 0
        fi
    done
    fail "no $n free consecutive ports found"
}

# unhex HEX: writes the bytes (through printf octal escapes, so NUL bytes work in dash).
unhex() {
    printf "$(printf '%s' "$1" | awk '{
        for (i = 1; i < length($0); i += 2) {
            hi = index("0123456789abcdef", tolower(substr($0, i, 1))) - 1
            v = hi * 16 + index("0123456789abcdef", tolower(substr($0, i + 1, 1))) - 1
            printf "\\%03o", v
        }
    }')"
}

# tg_date OFFSET_DAYS: RFC 3339 UTC, whole seconds.
tg_date() {
    date -u -d "@$(($(date -u +%s) + $1 * 86400))" +%Y-%m-%dT%H:%M:%SZ
}

tg_deploy() {
    TG_LOGS=
    count=${1:-2}
    tg_free_ports $((10 + 2 * count))
    TG_PORT=$TG_PORT_BASE
    TG_URL=http://127.0.0.1:$TG_PORT
    TG_CFG=$TG_TMP/tegula.yaml
    mkdir -p "$TG_TMP/keys" "$TG_TMP/data"
    for ktype in p256 rsa2048; do
        "$TG_TEGULA" mkchain --ca-dir "$TG_TMP/ca-$ktype" --init --key-type $ktype 2>/dev/null ||
            fail "mkchain --init $ktype"
    done
    cat "$TG_TMP/ca-p256/root.pem" "$TG_TMP/ca-rsa2048/root.pem" >"$TG_TMP/roots.pem"
    {
        echo "logs:"
        i=1
        while [ $i -le "$count" ]; do
            log=log$i
            TG_LOGS="$TG_LOGS $log"
            "$TG_TEGULA" keygen -o "$TG_TMP/keys/$log.key" >"$TG_TMP/keys/$log.info" 2>/dev/null ||
                fail "keygen $log"
            sed -n '/-----BEGIN PUBLIC KEY-----/,/-----END PUBLIC KEY-----/p' \
                "$TG_TMP/keys/$log.info" >"$TG_TMP/keys/$log.pem"
            # Windows of 200 days each: log1 takes notAfter in [now - 10d, now + 190d), log2
            # [now + 190d, now + 390d), ...
            cat <<EOF
  - name: $log
    submission_prefix: $TG_URL/$log/
    key: keys/$log.key
    roots: roots.pem
    not_after_start: $(tg_date $((200 * i - 210)))
    not_after_limit: $(tg_date $((200 * i - 10)))
    storage: $(tg_storage_config $log)
    lock: $(tg_lock_config $log)
    sequencer: tcp://127.0.0.1:$((TG_PORT_BASE + 4 + i))
    period_ms: ${TG_PERIOD_MS:-200}
EOF
            i=$((i + 1))
        done
        cat <<EOF
frontend:
  listen: 127.0.0.1:$TG_PORT
  workers: 2
  submit_timeout_ms: 20000
batchers:
  addresses: [tcp://127.0.0.1:$((TG_PORT_BASE + 1)), tcp://127.0.0.1:$((TG_PORT_BASE + 2))]
  batch_wait_ms: 20
  db: data/batcher
sequencer:
  data_dir: data/sequencer
log_level: ${TG_LOG_LEVEL:-info}
EOF
    } >"$TG_CFG"
    # --http-base for tegula up: batchers, then sequencers, after the NNG ports.
    TG_HTTP_BASE=$((TG_PORT_BASE + 5 + count))
}

# ---- S3 (TG_S3=1, under tests/system/run.sh: TEGULA_S3_ENDPOINT, TEGULA_S3_REGION,
# TEGULA_S3_BUCKET and the AWS_* credentials in the environment). Every log of a test lives
# below a key prefix unique to that test (its temp dir's name), so tests share one bucket.
tg_s3_prefix() { basename "$TG_TMP"; }
# tg_s3_url PATH: the s3:// URL of PATH below the test's prefix.
tg_s3_url() {
    echo "s3://$TEGULA_S3_BUCKET/$(tg_s3_prefix)/$1?endpoint=$TEGULA_S3_ENDPOINT&region=$TEGULA_S3_REGION&path_style=true"
}
tg_storage_config() {
    if [ "${TG_S3:-0}" = 1 ]; then tg_s3_url "$1"; else echo "file:data/$1/storage"; fi
}
tg_lock_config() {
    if [ "${TG_S3:-0}" = 1 ]; then tg_s3_url "$1-lock/checkpoint"; else echo "file:data/$1/lock"; fi
}
# tg_s3_get KEY FILE: signed GET of KEY (below the test's prefix) into FILE; prints the HTTP
# status (000 when the server does not answer).
tg_s3_get() {
    curl -sS -o "$2" -w '%{http_code}' --max-time 10 \
        --aws-sigv4 "aws:amz:$TEGULA_S3_REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
        -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
        "$TEGULA_S3_ENDPOINT/$TEGULA_S3_BUCKET/$(tg_s3_prefix)/$1" 2>/dev/null || :
}
tg_storage_url() {
    if [ "${TG_S3:-0}" = 1 ]; then tg_s3_url "$1"; else tg_storage "$1"; fi
}
# tg_checkpoint_file LOG: path of (a fresh copy of) the stored checkpoint; may not exist.
tg_checkpoint_file() {
    if [ "${TG_S3:-0}" = 1 ]; then
        rm -f "$TG_TMP/checkpoint.$1"
        [ "$(tg_s3_get "$1/checkpoint" "$TG_TMP/checkpoint.$1.new")" = 200 ] &&
            mv "$TG_TMP/checkpoint.$1.new" "$TG_TMP/checkpoint.$1"
        echo "$TG_TMP/checkpoint.$1"
    else
        echo "$(tg_storage "$1")/checkpoint"
    fi
}

tg_prefix() { echo "$TG_URL/$1/"; }
tg_storage() { echo "$TG_TMP/data/$1/storage"; }
tg_pubkey() { echo "$TG_TMP/keys/$1.pem"; }
# notAfter in the middle of the log's window (log N: now + 200N - 110 days).
tg_not_after() {
    n=${1#log}
    tg_date $((200 * n - 110))
}

tg_child_pid() {
    sed -n "s/.*msg=\"child started\" child=$1 pid=\([0-9]*\).*/\1/p" "$TG_TMP/up.log" | tail -n 1
}

# tg_wait_ready [SECONDS]: until the frontend's /readyz answers 200.
tg_wait_ready() {
    limit=$((${1:-90} * 10))
    i=0
    while [ $i -lt $limit ]; do
        if [ -n "$TG_UP_PID" ] && ! kill -0 "$TG_UP_PID" 2>/dev/null; then
            fail "tegula up exited before the frontend was ready"
        fi
        if curl -fsS -o /dev/null "$TG_URL/readyz" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
    fail "$TG_URL/readyz not ready after ${1:-90} s"
}

tg_up() {
    [ -z "$TG_UP_PID" ] || fail "tegula up already running"
    "$TG_TEGULA" up -c "$TG_CFG" --http-base "$TG_HTTP_BASE" "$@" >>"$TG_TMP/up.log" 2>&1 &
    TG_UP_PID=$!
    tg_wait_ready
}

# tg_check_log: the up log shows no sanitizer report and (unless TG_ALLOW_RESTARTS=1, for
# tests that kill children on purpose) no child that died and was restarted.
tg_check_log() {
    [ -f "$TG_TMP/up.log" ] || return 0
    if grep -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: UndefinedBehavior' \
        "$TG_TMP/up.log" >"$TG_TMP/sanitizer.txt"; then
        fail "sanitizer report in the up log: $(head -n 5 "$TG_TMP/sanitizer.txt")"
    fi
    if [ "${TG_ALLOW_RESTARTS:-0}" != 1 ] &&
        grep 'msg="child exited; restarting"' "$TG_TMP/up.log" >"$TG_TMP/restarts.txt"; then
        fail "a child died: $(head -n 3 "$TG_TMP/restarts.txt")"
    fi
}

# tg_stop: graceful stop of tegula up and every child; asserts exit 0, no child left, and a
# clean up log (tg_check_log).
tg_stop() {
    [ -n "$TG_UP_PID" ] || fail "tegula up is not running"
    kill -TERM "$TG_UP_PID"
    i=0
    while [ $i -lt 600 ] && kill -0 "$TG_UP_PID" 2>/dev/null; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -0 "$TG_UP_PID" 2>/dev/null && fail "tegula up did not stop within 60 s"
    set +e
    wait "$TG_UP_PID"
    status=$?
    set -e
    TG_UP_PID=
    [ "$status" -eq 0 ] || fail "tegula up exited $status after SIGTERM"
    for pid in $(tg_all_child_pids); do
        if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q tegula-; then
            fail "child pid $pid still runs after tegula up stopped"
        fi
    done
    tg_check_log
}

# The stored checkpoint's RFC6962NoteSignature timestamp (ms) and tree size.
tg_checkpoint_ts() {
    cp=$(tg_checkpoint_file "$1")
    [ -f "$cp" ] || { echo 0; return 0; }
    sig=$(sed -n 's/^— [^ ]* \([A-Za-z0-9+/=]*\)$/\1/p' "$cp" | head -n 1)
    ts=0
    for b in $(printf '%s' "$sig" | base64 -d 2>/dev/null | od -An -tu1 -j4 -N8); do
        ts=$((ts * 256 + b))
    done
    echo "$ts"
}

tg_checkpoint_size() {
    cp=$(tg_checkpoint_file "$1")
    [ -f "$cp" ] || { echo 0; return 0; }
    sed -n 2p "$cp"
}

# tg_raise_open_files: lifts this shell's descriptor limit (and its children's) for runs with
# thousands of client connections: to 65536, or to the hard limit when that is lower.
tg_raise_open_files() {
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
}

# tg_wait_until SECONDS WHAT CMD...: polls CMD every 0.1 s until it succeeds; fails the test
# with WHAT when SECONDS pass first.
tg_wait_until() {
    limit=$(($1 * 10))
    what=$2
    shift 2
    i=0
    while [ $i -lt $limit ]; do
        if "$@"; then return 0; fi
        sleep 0.1
        i=$((i + 1))
    done
    fail "timed out after $((limit / 10)) s waiting for: $what"
}
