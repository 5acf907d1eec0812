#!/bin/sh
# The whole write path on S3 storage and an S3 lock (the Ceph RGW tests/system/run.sh started),
# each part bounded in time and stopping everything it started:
#   1. tegula up --create on s3:// storage and lock; certificates and precertificates
#      submitted with every SCT verified; tegula fsck over s3:// (--scts), and the RFC 6962
#      layer (get-sth, get-entries) served from S3 by the frontend; certspotter (a real CT
#      monitor) through that layer: it verifies the STH and the tree and reports every
#      submitted entry (and again after parts 2 and 3, continuing from its verified position); the monitoring objects (checkpoint, hash tiles, data tiles, an issuer)
#      served by the frontend with exactly the headers S3 stored them with;
#   2. kill -9 of the sequencer (and of tegula up, so nothing restarts it) under load, then a
#      restart with no local state at all (data/ removed): recovery from the S3 lock and the
#      staging bundle; every SCT returned before is in the log (fsck --scts);
#   3. an RGW outage under load: submissions get 503 (no SCT without publication), the log
#      continues once the gateway is back, every returned SCT is in the log;
#   4. two sequencers racing on the S3 lock, each with its own data directory: exactly one
#      keeps committing, the other exits non-zero on the lost CAS; no fork (fsck passes and
#      the lock holds exactly the published checkpoint).
set -eu
: "${TEGULA_BUILD:?run through tests/system/run.sh}" "${TEGULA_S3_ENDPOINT:?}" "${TEGULA_S3_DIR:?}"
. "$(dirname "$0")/../integration/lib.sh"
tg_setup s3wp
tg_need_roles
command -v certspotter >/dev/null || fail "certspotter is not installed (make deps)"
TG_S3=1
TG_PERIOD_MS=200 tg_deploy 1
log=log1
s3_server=${TEGULA_S3_SERVER_SCRIPT:-$(dirname "$0")/s3-server.sh}
t0=$(date +%s%N)
elapsed() { echo "$(( ($(date +%s%N) - t0) / 1000000 )) ms"; }

load() {
    "$TG_TEGULA" load --url "$(tg_prefix $log)" --ca-dir "$TG_TMP/ca-p256" \
        --key "$(tg_pubkey $log)" --not-after "$(tg_not_after $log)" --threads 1 "$@"
}
# fsck_scts FILE: fsck over s3:// with every SCT in FILE; prints fsck's line.
fsck_scts() {
    out=$(timeout 120 "$TG_TEGULA" fsck --url "$(tg_storage_url $log)" --key "$(tg_pubkey $log)" \
        --scts "$1" 2>&1) || fail "fsck over S3: $out"
    n=$(wc -l <"$1" | tr -d ' ')
    echo "$out" | grep -q "all $n SCTs found" || fail "fsck --scts over S3: $out"
    echo "$out"
}
grows_past() { [ "$(tg_checkpoint_size $log)" -gt "$1" ]; }
# wait_status PID TENTHS: waits (bounded) for a background pid; its exit status in $status.
wait_status() {
    i=0
    while [ $i -lt "$2" ] && kill -0 "$1" 2>/dev/null; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -0 "$1" 2>/dev/null && fail "pid $1 still runs after $(($2 / 10)) s"
    set +e
    wait "$1"
    status=$?
    set -e
}
gone() { ! kill -0 "$1" 2>/dev/null; }

# ---- 1. the write path on S3
tg_up --create
grep -q "s3://" "$TG_CFG" || fail "the config does not use s3://"
out=$(load --clients 16 --count 400 --precert-ratio 0.3 --quiet --out-scts "$TG_TMP/scts1") ||
    fail "load: $out"
echo "$out" | grep -q '^RESULT ok=400 .* errors=0 ' || fail "load: $out"
check "400 submissions (30% precertificates) on S3 storage and lock, every SCT verified"
[ "$(tg_s3_get "$log/checkpoint" "$TG_TMP/cp")" = 200 ] || fail "no checkpoint in the bucket"
[ ! -e "$TG_TMP/data/$log/storage" ] || fail "tiles were written locally"
check "the checkpoint is in the bucket, nothing of the log on local disk"
fsck_scts "$TG_TMP/scts1"
check "tegula fsck over s3:// verifies the log and finds all 400 SCTs"
size=$(tg_checkpoint_size $log)
# The RFC 6962 layer re-reads the checkpoint at most once a second: poll until it has caught up.
sth_caught_up() {
    sth=$(curl -fsS --max-time 10 "$(tg_prefix $log)ct/v1/get-sth") &&
        [ "$(echo "$sth" | jq -r .tree_size)" -ge "$size" ]
}
tg_wait_until 15 "get-sth to reach tree size $size" sth_caught_up
entries=$(curl -fsS --max-time 10 "$(tg_prefix $log)ct/v1/get-entries?start=0&end=9") ||
    fail "get-entries"
[ "$(echo "$entries" | jq '.entries | length')" = 10 ] || fail "get-entries: $entries"
# Entry 0's leaf_input must hash to the leaf hash its SCT named (RFC 6962 leaf hash:
# SHA-256(0x00 || MerkleTreeLeaf)).
want=$(awk '$1 == 0 { print $3 }' "$TG_TMP/scts1")
got=$( (printf '\000'; echo "$entries" | jq -r '.entries[0].leaf_input' | base64 -d) |
    openssl dgst -sha256 -r | cut -d' ' -f1)
[ -n "$want" ] && [ "$want" = "$got" ] || fail "get-entries leaf 0: hash $got, SCT says $want"
check "RFC 6962 from S3: get-sth (tree_size $(echo "$sth" | jq -r .tree_size)), get-entries 0-9, leaf 0 matches its SCT"

# ---- 1b. certspotter through the RFC 6962 layer over S3. The tree is stable now (empty rounds
# re-sign the same root), so certspotter must end at exactly this size and root.
sth=$(curl -fsS --max-time 10 "$(tg_prefix $log)ct/v1/get-sth") || fail "get-sth"
size=$(echo "$sth" | jq -r .tree_size)
root=$(echo "$sth" | jq -r .sha256_root_hash)
[ "$size" = 400 ] || fail "get-sth: tree size $size, want the 400 submitted"
spki=$(sed '1d;$d' "$(tg_pubkey $log)" | tr -d '\n')
logid=$(sed '1d;$d' "$(tg_pubkey $log)" | base64 -d | openssl dgst -sha256 -binary | base64)
# Every certificate tegula load makes is for <hex>.load.tegula.test.
echo ".load.tegula.test" >"$TG_TMP/watchlist"
printf '%s\n' '{"version":"1","operators":[{"name":"tegula","email":["ops@example.test"],"logs":[' \
    "{\"description\":\"tegula on S3\",\"log_id\":\"$logid\",\"key\":\"$spki\",\"url\":\"$(tg_prefix $log)\"," \
    '"mmd":60,"state":{"usable":{"timestamp":"2026-01-01T00:00:00Z"}}}]}]}' >"$TG_TMP/loglist.json"
# run_certspotter NAME MIN: runs certspotter (state kept in $TG_TMP/certspotter across runs) until
# it has verified the tree of get-sth ($size, $root): the root recomputed from every entry and
# checked against a signed STH; a later run continues from the position verified before, so the
# new tree must extend the old one; and until it reported at least MIN entries. Its report goes
# to $TG_TMP/certspotter-NAME.out; the log entry indices it reported ("Log Entry = N @ URL") to
# $TG_TMP/reported-NAME, sorted.
run_certspotter() {
    cs_out=$TG_TMP/certspotter-$1.out
    certspotter -logs "$TG_TMP/loglist.json" -watchlist "$TG_TMP/watchlist" \
        -state_dir "$TG_TMP/certspotter" -stdout -verbose -no_save \
        >"$cs_out" 2>"$TG_TMP/certspotter-$1.err" &
    cs=$!
    TG_PIDS="$TG_PIDS $cs"
    cs_min=$2
    cs_verified() {
        state=$(find "$TG_TMP/certspotter/logs" -name state.json 2>/dev/null | head -n 1)
        [ -n "$state" ] && [ "$(jq -r .verified_position.size "$state")" = "$size" ] &&
            [ "$(jq -r .verified_sth.sha256_root_hash "$state")" = "$root" ] &&
            [ "$(grep -c 'Log Entry = ' "$cs_out")" -ge "$cs_min" ]
    }
    tg_wait_until 120 "certspotter ($1) to verify all $size entries of the S3-backed log" cs_verified
    kill "$cs" 2>/dev/null || :
    wait "$cs" 2>/dev/null || :
    if grep -v "context canceled" "$TG_TMP/certspotter-$1.err" |
        grep -iE "error|fail|mismatch|invalid|inconsistent"; then
        fail "certspotter ($1) reported a problem"
    fi
    sed -n 's/.*Log Entry = \([0-9]*\) .*/\1/p' "$cs_out" | sort -n -u >"$TG_TMP/reported-$1"
}
run_certspotter first 400
awk '{ print $1 }' "$TG_TMP/scts1" | sort -n -u >"$TG_TMP/submitted"
cmp -s "$TG_TMP/submitted" "$TG_TMP/reported-first" ||
    fail "certspotter reported $(wc -l <"$TG_TMP/reported-first") entries, not the $(wc -l <"$TG_TMP/submitted") submitted"
check "certspotter verified the STH and the tree (size $size, root $root) over S3 and reported each of the 400 submitted entries"

# ---- 1c. the monitoring objects as the frontend serves them from S3 carry the headers S3
# stored them with. headers URL [CURL ARGS]: the five headers that must be passed through,
# lowercased names, sorted; GET like a CDN would (no Accept-Encoding: gzip as stored).
headers() {
    url=$1
    shift
    curl -sS -o /dev/null -D - --max-time 10 "$@" "$url" | tr -d '\r' |
        awk '{ n = tolower($1) }
             n ~ /^(content-type|content-encoding|cache-control|etag|last-modified):$/ {
                 v = $0; sub(/^[^:]*:[ \t]*/, "", v); print n " " v }' | sort
}
s3_headers() {
    headers "$TEGULA_S3_ENDPOINT/$TEGULA_S3_BUCKET/$(tg_s3_prefix)/$log/$1" \
        --aws-sigv4 "aws:amz:$TEGULA_S3_REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
        -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
}
list=$(curl -sS --max-time 10 --aws-sigv4 "aws:amz:$TEGULA_S3_REGION:s3" \
    --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
    "$TEGULA_S3_ENDPOINT/$TEGULA_S3_BUCKET?list-type=2&prefix=$(tg_s3_prefix)%2F$log%2Fissuer%2F") ||
    fail "listing the issuers"
issuer=$(echo "$list" | sed -n 's#.*<Key>[^<]*/\(issuer/[0-9a-f]\{64\}\)</Key>.*#\1#p' | head -n 1)
[ -n "$issuer" ] || fail "no issuer in the bucket: $(echo "$list" | head -c 300)"
for key in tile/0/000 tile/0/001.p/144 tile/data/000 tile/data/001.p/144 tile/1/000.p/1 "$issuer"; do
    want=$(s3_headers "$key")
    got=$(headers "$(tg_prefix $log)$key")
    # Five headers: content-type, cache-control, etag, last-modified (+ content-encoding).
    [ "$(echo "$want" | wc -l)" -ge 4 ] || fail "S3 returned too few headers for $key: $want"
    [ "$got" = "$want" ] || fail "$key: the frontend sent
$got
but S3 stored
$want"
done
echo "$(s3_headers tile/data/000)" | grep -qx 'content-encoding: gzip' || fail "data tile stored without gzip"
echo "$(s3_headers tile/0/000)" | grep -qx 'cache-control: public, max-age=604800, immutable' ||
    fail "hash tile stored without the immutable Cache-Control"
echo "$(s3_headers "$issuer")" | grep -qx 'content-type: application/pkix-cert' || fail "issuer type"
# The checkpoint changes every period: its type, encoding and caching must match, and both
# carry an ETag and a Last-Modified date.
want=$(s3_headers checkpoint | grep -vE '^(etag|last-modified): ')
got=$(headers "$(tg_prefix $log)checkpoint" | grep -vE '^(etag|last-modified): ')
[ "$got" = "$want" ] && echo "$want" | grep -qx 'cache-control: no-store' ||
    fail "checkpoint: the frontend sent $got, S3 has $want"
[ "$(headers "$(tg_prefix $log)checkpoint" | grep -cE '^(etag|last-modified): ')" = 2 ] ||
    fail "the checkpoint has no ETag or Last-Modified from S3"
check "the frontend serves tiles, partial tiles, data tiles, an issuer and the checkpoint with the headers S3 stored (Content-Type, Content-Encoding, Cache-Control, ETag, Last-Modified)"
echo "   part 1 done at $(elapsed)"

# ---- 2. kill -9 of the sequencer mid-round, restart with nothing local
"$TG_TEGULA" load --url "$(tg_prefix $log)" --ca-dir "$TG_TMP/ca-p256" --key "$(tg_pubkey $log)" \
    --not-after "$(tg_not_after $log)" --threads 1 --clients 32 --duration 120 --timeout 15 \
    --retries 100 --max-errors 100000000 --report 0 --out-scts "$TG_TMP/scts2" >"$TG_TMP/load2.out" 2>&1 &
load_pid=$!
TG_PIDS="$TG_PIDS $load_pid"
# crash_fresh: kill -9 the sequencer (then tegula up, so nothing restarts it, and every other
# child) at a random point of the period, remove all local state, start again without
# --create and wait for the log to grow.
crash_fresh() {
    size=$(tg_checkpoint_size $log)
    tg_wait_until 30 "entries under load" grows_past $((size + 50))
    sleep "0.$(($(tg_random) % 10))"
    seq=$(tg_child_pid sequencer-$log)
    others=$(tg_all_child_pids)
    # The sequencer first: tegula up restarts a child only after 250 ms, and it dies right after.
    kill -KILL "$seq" "$TG_UP_PID"
    for pid in $others; do tg_kill_if_ours "$pid"; done
    for pid in $others; do tg_wait_until 10 "pid $pid gone" gone "$pid"; done
    wait "$TG_UP_PID" 2>/dev/null || :
    TG_UP_PID=
    crashed_size=$(tg_checkpoint_size $log)
    rm -rf "$TG_TMP/data"
    tg_up
    tg_wait_until 60 "the log to grow after the restart" grows_past "$crashed_size"
}
# A kill -9 at a random point of the period (test_s3_crashpoint.sh makes the crash right after
# the lock CAS, the one that needs the staging bundle, happen every time).
crash_fresh
crashes=1
replays=$(grep -c 'msg="recovered the log" .*replayed=yes' "$TG_TMP/up.log" || :)
check "a kill -9 under load, restarted with no local state: recovered from the S3 lock, the log grows ($replays replayed a committed round from its staging bundle)"
sleep 2
kill -TERM $load_pid
wait_status $load_pid 300
grep -q ' bad_sct=0 ' "$TG_TMP/load2.out" || fail "a returned SCT did not verify: $(tail -n 3 "$TG_TMP/load2.out")"
[ "$status" -eq 0 ] || fail "load exited $status: $(tail -n 3 "$TG_TMP/load2.out")"
echo "   part 2 done at $(elapsed)"

# ---- 3. RGW outage under load
"$TG_TEGULA" load --url "$(tg_prefix $log)" --ca-dir "$TG_TMP/ca-p256" --key "$(tg_pubkey $log)" \
    --not-after "$(tg_not_after $log)" --threads 1 --clients 16 --duration 120 --timeout 25 \
    --retries 1000 --retry-after-max 1 --max-errors 100000000 --report 0 \
    --out-scts "$TG_TMP/scts3" >"$TG_TMP/load3.out" 2>&1 &
load_pid=$!
TG_PIDS="$TG_PIDS $load_pid"
size=$(tg_checkpoint_size $log)
tg_wait_until 30 "entries before the outage" grows_past $((size + 50))
"$TG_TEGULA" mkchain --ca-dir "$TG_TMP/ca-p256" --leaf --not-after "$(tg_not_after $log)" \
    --json "$TG_TMP/outage.json" >/dev/null 2>&1 || fail "mkchain"
"$s3_server" stop-rgw "$TEGULA_S3_DIR"
down_at=$(date +%s)
code=$(curl -sS -o "$TG_TMP/outage.out" -w '%{http_code}' --max-time 40 -H 'Content-Type: application/json' \
    -d @"$TG_TMP/outage.json" "$(tg_prefix $log)ct/v1/add-chain" 2>/dev/null) || :
# At least 4 s of outage, whatever the submission took.
while [ $(($(date +%s) - down_at)) -lt 4 ]; do sleep 0.2; done
"$s3_server" start-rgw "$TEGULA_S3_DIR" >/dev/null || fail "radosgw did not come back"
[ "$code" = 503 ] || fail "a submission during the RGW outage got HTTP $code: $(head -c 300 "$TG_TMP/outage.out")"
check "RGW stopped for $(($(date +%s) - down_at)) s: a submission got 503, no SCT"
size=$(tg_checkpoint_size $log)
tg_wait_until 90 "the log to grow after the outage" grows_past "$size"
out=$(load --clients 8 --count 100 --quiet --out-scts "$TG_TMP/scts4") || fail "load after the outage: $out"
echo "$out" | grep -q '^RESULT ok=100 .* errors=0 ' || fail "load after the outage: $out"
check "the log continues after the outage: 100 more, every SCT verified"
kill -TERM $load_pid
wait_status $load_pid 300
grep -q ' bad_sct=0 ' "$TG_TMP/load3.out" || fail "a returned SCT did not verify: $(tail -n 3 "$TG_TMP/load3.out")"
[ "$status" -eq 0 ] || fail "load exited $status: $(tail -n 3 "$TG_TMP/load3.out")"
# certspotter again, from the position it verified at 400, over the tree the crash and the
# outage left: the new tree must extend the old one, and every entry with an SCT since is reported.
size=$(tg_checkpoint_size $log)
tg_wait_until 15 "get-sth to reach tree size $size" sth_caught_up
sth=$(curl -fsS --max-time 10 "$(tg_prefix $log)ct/v1/get-sth") || fail "get-sth"
root=$(echo "$sth" | jq -r .sha256_root_hash)
[ "$(echo "$sth" | jq -r .tree_size)" = "$size" ] || fail "get-sth moved past $size: $sth"
cat "$TG_TMP/scts2" "$TG_TMP/scts3" "$TG_TMP/scts4" | awk '{ print $1 }' | sort -n -u >"$TG_TMP/submitted2"
run_certspotter second "$(wc -l <"$TG_TMP/submitted2" | tr -d ' ')"
missing=$(comm -23 "$TG_TMP/submitted2" "$TG_TMP/reported-second" | wc -l | tr -d ' ')
[ "$missing" = 0 ] || fail "certspotter's second run missed $missing entries that got an SCT"
[ "$(head -n 1 "$TG_TMP/reported-second")" -ge 400 ] || fail "certspotter re-read entries below 400"
check "certspotter continued from 400 to $size (the new tree extends the verified one) and reported all $(wc -l <"$TG_TMP/submitted2") entries with SCTs since"
echo "   part 3 done at $(elapsed)"

TG_ALLOW_RESTARTS=1 # the outage may stop the sequencer on purpose; tegula up restarts it
tg_stop
cat "$TG_TMP/scts1" "$TG_TMP/scts2" "$TG_TMP/scts3" "$TG_TMP/scts4" >"$TG_TMP/scts"
all=$(wc -l <"$TG_TMP/scts" | tr -d ' ')
fsck_scts "$TG_TMP/scts"
check "fsck over S3 after the crash and the outage: all $all SCTs ever returned are in the log"

# ---- 4. two sequencers racing on the S3 lock
port=$((TG_PORT_BASE + 10))
for n in a b; do
    sed -e "s#^    sequencer: tcp://127.0.0.1:.*#    sequencer: tcp://127.0.0.1:$port#" \
        -e "s#^  data_dir: .*#  data_dir: data/race-$n#" "$TG_CFG" >"$TG_TMP/race-$n.yaml"
    port=$((port + 1))
done
size=$(tg_checkpoint_size $log)
"$TG_BUILD/tegula-sequencer" -c "$TG_TMP/race-a.yaml" --log $log >"$TG_TMP/race-a.log" 2>&1 &
pid_a=$!
"$TG_BUILD/tegula-sequencer" -c "$TG_TMP/race-b.yaml" --log $log >"$TG_TMP/race-b.log" 2>&1 &
pid_b=$!
TG_PIDS="$TG_PIDS $pid_a $pid_b"
# Empty rounds CAS a fresh checkpoint every period: whichever CASes second loses.
i=0
while [ $i -lt 300 ] && kill -0 $pid_a 2>/dev/null && kill -0 $pid_b 2>/dev/null; do
    sleep 0.1
    i=$((i + 1))
done
if ! kill -0 $pid_a 2>/dev/null; then loser=$pid_a winner=$pid_b lname=a; else loser=$pid_b winner=$pid_a lname=b; fi
kill -0 $loser 2>/dev/null && fail "both racing sequencers still run after 30 s"
wait_status $loser 10
loser_status=$status
[ "$loser_status" -ne 0 ] || fail "the losing sequencer exited 0"
grep -q "lost the lock" "$TG_TMP/race-$lname.log" ||
    fail "sequencer $lname did not stop on the lock: $(tail -n 5 "$TG_TMP/race-$lname.log")"
# The winner keeps committing: checkpoints keep changing after the loser stopped.
ts=$(tg_checkpoint_ts $log)
newer() { [ "$(tg_checkpoint_ts $log)" -gt "$ts" ]; }
tg_wait_until 20 "the surviving sequencer to commit" newer
kill -0 $winner 2>/dev/null || fail "the surviving sequencer stopped too"
kill -TERM $winner
wait_status $winner 300
winner_status=$status
[ "$winner_status" -eq 0 ] || fail "the surviving sequencer exited $winner_status after SIGTERM"
check "two sequencers on the S3 lock: one lost the CAS and exited $loser_status, the other committed and stopped cleanly"
out=$(timeout 120 "$TG_TEGULA" fsck --url "$(tg_storage_url $log)" --key "$(tg_pubkey $log)" 2>&1) ||
    fail "fsck after the race: $out"
[ "$(tg_s3_get "$log-lock/checkpoint" "$TG_TMP/lock")" = 200 ] || fail "cannot read the lock object"
[ "$(tg_s3_get "$log/checkpoint" "$TG_TMP/published")" = 200 ] || fail "cannot read the checkpoint"
cmp -s "$TG_TMP/lock" "$TG_TMP/published" || fail "no fork: the lock and the published checkpoint differ"
[ "$(sed -n 2p "$TG_TMP/published")" -ge "$size" ] || fail "the tree shrank"
check "no fork: fsck passes and the lock holds exactly the published checkpoint"
echo "test_s3_writepath: $TG_CHECKS checks passed in $(elapsed)"
