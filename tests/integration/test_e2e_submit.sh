#!/bin/sh
# End to end through real processes (tegula up: frontend, 2 batchers, 2 sequencers) on
# 127.0.0.1: concurrent certificate and precertificate submissions, from a P-256 and an RSA
# test CA, to two temporal shards. Every SCT verifies (log ID, signature over the entry rebuilt
# from the chain, leaf_index); each log's indices are exactly 0..n-1; tegula fsck passes on
# each log's storage and through the frontend's read path; every entry is in the signed tree
# at its SCT's leaf_index (inclusion proof from the tiles) and in its data tile. Resubmissions give byte-identical SCTs, also with the
# root left out or added; a chain outside a log's window is refused; an idle log's checkpoint
# keeps getting fresh timestamps; a restart without --create continues the same logs.
set -eu
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
tg_setup e2e-submit
tg_need_roles
tg_deploy 2
t=$TG_TMP
tegula=$TG_TEGULA
per_group=${TEGULA_E2E_PER_GROUP:-5}

echo "minting chains"
mkdir "$t/chains" "$t/sct"
for log in log1 log2; do
    na=$(tg_not_after "$log")
    for ca in p256 rsa2048; do
        for kind in leaf precert; do
            "$tegula" mkchain --ca-dir "$t/ca-$ca" --key-type $ca --$kind --not-after "$na" \
                --count "$per_group" --out-dir "$t/chains/$log-$ca-$kind" 2>/dev/null
        done
    done
    # Chains without their root: the log appends it.
    "$tegula" mkchain --ca-dir "$t/ca-p256" --leaf --no-root --not-after "$na" --count 2 \
        --out-dir "$t/chains/$log-p256-noroot" 2>/dev/null
done
# One job per chain: "log file", PEM for odd and the JSON body for even numbers, shuffled.
for d in "$t/chains"/*; do
    log=$(basename "$d" | cut -d- -f1)
    for pem in "$d"/chain-*.pem; do
        n=$(basename "$pem" .pem | sed 's/^chain-0*//')
        if [ $((n % 2)) = 1 ]; then echo "$log $pem"; else echo "$log ${pem%.pem}.json"; fi
    done
done | shuf >"$t/jobs"
total=$(wc -l <"$t/jobs")
per_log=$((4 * per_group + 2))

tg_up --create

echo "concurrent submissions: $total chains, 4 clients"
# worker N: submits every 4th job; an SCT goes to sct/<group>-<file>.sct, the verifier's line
# to .err; failures are listed in $t/failures.
worker() {
    awk -v w="$1" 'NR % 4 == w' "$t/jobs" | while read -r log file; do
        name=$(basename "$(dirname "$file")")-$(basename "$file")
        if ! "$tegula" submit --url "$(tg_prefix "$log")" --key "$(tg_pubkey "$log")" "$file" \
            >"$t/sct/$name.sct" 2>"$t/sct/$name.err"; then
            echo "$log $file: $(cat "$t/sct/$name.err")" >>"$t/failures"
        fi
    done
}
pids=
for w in 0 1 2 3; do
    worker $w &
    pids="$pids $!"
done
for p in $pids; do wait "$p"; done

check "all $total submissions got an SCT that verifies under the log's key"
[ ! -s "$t/failures" ] 2>/dev/null || fail "submissions failed: $(head -n 5 "$t/failures")"
[ "$(grep -l 'SCT verified' "$t/sct"/*.err | wc -l)" = "$total" ] || fail "not $total SCTs verified"
check "every SCT is RFC 6962 JSON (sct_version 0, base64 id, extensions, signature)"
for f in "$t/sct"/*.sct; do
    jq -e '(.sct_version == 0) and (.id | length == 44) and (.timestamp > 0)
           and (.extensions | length == 12) and (.signature | type == "string")' "$f" \
        >/dev/null || fail "$f: $(cat "$f")"
done
check "precertificates went to add-pre-chain, certificates to add-chain (auto-detected)"
for f in "$t/sct"/*-precert-*.err; do grep -q 'entry_type=precert' "$f" || fail "$f"; done
for f in "$t/sct"/*-leaf-*.err "$t/sct"/*-noroot-*.err; do
    grep -q 'entry_type=x509' "$f" || fail "$f"
done

# index LOGNAME GROUP-FILE: the leaf_index the verifier reported for that submission.
index_of() { sed -n 's/.* leaf_index=\([0-9]*\) .*/\1/p' "$t/sct/$1.err"; }
check "each log's leaf indices are exactly 0..$((per_log - 1)): no gaps, no duplicates"
for log in log1 log2; do
    for f in "$t/sct/$log"-*.err; do index_of "$(basename "$f" .err)"; done | sort -n >"$t/idx-$log"
    seq 0 $((per_log - 1)) | cmp -s - "$t/idx-$log" ||
        fail "$log indices: $(tr '\n' ' ' <"$t/idx-$log")"
done

echo "duplicates"
# resubmit LOG FILE NAME: submits again, verified; prints the new SCT file.
resubmit() {
    "$tegula" submit --url "$(tg_prefix "$1")" --key "$(tg_pubkey "$1")" "$2" >"$t/re-$3.sct" \
        2>"$t/re-$3.err" || fail "resubmitting $2: $(cat "$t/re-$3.err")"
}
check "resubmitting the same chain (PEM and JSON, certificate and precertificate) gives a byte-identical SCT"
for log in log1 log2; do
    for g in p256-leaf-chain-000001.pem p256-precert-chain-000002.json \
        rsa2048-leaf-chain-000002.json rsa2048-precert-chain-000001.pem; do
        group=${g%-chain-*}
        resubmit "$log" "$t/chains/$log-$group/${g#"$group"-}" "$log-$g"
        cmp -s "$t/sct/$log-$g.sct" "$t/re-$log-$g.sct" ||
            fail "$log $g: SCT differs: $(cat "$t/sct/$log-$g.sct") vs $(cat "$t/re-$log-$g.sct")"
    done
done
# first N CERTS of a PEM chain
first_certs() {
    awk -v n="$1" '/-----BEGIN CERTIFICATE-----/ { c++ } c <= n' "$2"
}
check "the same leaf with the root left out dedups to the same leaf_index (and SCT)"
for log in log1 log2; do
    for g in p256-leaf-chain-000001.pem rsa2048-precert-chain-000003.pem; do
        group=${g%-chain-*}
        first_certs 2 "$t/chains/$log-$group/${g#"$group"-}" >"$t/$log-$g.noroot.pem"
        resubmit "$log" "$t/$log-$g.noroot.pem" "$log-$g-noroot"
        [ "$(sed -n 's/.* leaf_index=\([0-9]*\) .*/\1/p' "$t/re-$log-$g-noroot.err")" = \
            "$(index_of "$log-$g")" ] || fail "$log $g without root: another leaf_index"
        cmp -s "$t/sct/$log-$g.sct" "$t/re-$log-$g-noroot.sct" || fail "$log $g: SCT differs"
    done
    check "a leaf first submitted without its root dedups when submitted with it ($log)"
    cat "$t/chains/$log-p256-noroot/chain-000001.pem" "$t/ca-p256/root.pem" >"$t/$log-withroot.pem"
    resubmit "$log" "$t/$log-withroot.pem" "$log-withroot"
    cmp -s "$t/sct/$log-p256-noroot-chain-000001.pem.sct" "$t/re-$log-withroot.sct" ||
        fail "$log: chain with root added got another SCT"
done

check "a certificate outside a log's notAfter window is refused with 400 and a reason"
code=$(curl -sS -o "$t/wrong.out" -w '%{http_code}' --data-binary \
    @"$t/chains/log2-p256-leaf/chain-000002.json" "$(tg_prefix log1)ct/v1/add-chain")
[ "$code" = 400 ] || fail "log2's certificate at log1: HTTP $code $(cat "$t/wrong.out")"
[ -s "$t/wrong.out" ] || fail "400 without a reason"

echo "the published logs"
for log in log1 log2; do
    check "tegula fsck passes on $log's storage with exactly $per_log entries"
    "$tegula" fsck --url "$(tg_storage "$log")" --key "$(tg_pubkey "$log")" >"$t/fsck-$log" 2>&1 ||
        fail "fsck $log: $(cat "$t/fsck-$log")"
    grep -q "^fsck: OK: $per_log entries" "$t/fsck-$log" || fail "fsck $log: $(cat "$t/fsck-$log")"
done
check "fsck through the frontend's read path (the monitoring prefix) agrees with the storage"
for log in log1 log2; do
    "$tegula" fsck --url "$(tg_prefix "$log")" --key "$(tg_pubkey "$log")" >"$t/fsck-http-$log" \
        2>&1 || fail "fsck over HTTP $log: $(cat "$t/fsck-http-$log")"
    # Same entries, tiles, issuers and root (idle rounds only refresh the timestamp).
    [ "$(grep '^fsck: OK' "$t/fsck-$log")" = "$(grep '^fsck: OK' "$t/fsck-http-$log")" ] ||
        fail "$log: $(cat "$t/fsck-$log") vs $(cat "$t/fsck-http-$log")"
done
check "every SCT's entry is in its log's signed tree at its leaf_index and in the data tile"
for f in "$t/sct"/*.sct; do
    name=$(basename "$f" .sct)
    log=${name%%-*}
    file=$(awk -v n="$name" '{ g = $2; sub(/.*\/chains\//, "", g); sub(/\//, "-", g)
        if (g == n) print $2 }' "$t/jobs")
    [ -n "$file" ] || fail "no job for $name"
    "$tegula" submit --sct "$f" --key "$(tg_pubkey "$log")" --url "$(tg_prefix "$log")" \
        --log "$(tg_storage "$log")" "$file" 2>"$t/incl.err" ||
        fail "$name: $(cat "$t/incl.err")"
    grep -q "included: leaf_index=$(index_of "$name") tree_size=$per_log" "$t/incl.err" ||
        fail "$name: $(cat "$t/incl.err")"
done

check "an idle log keeps publishing checkpoints with newer timestamps, same size"
for log in log1 log2; do
    ts0=$(tg_checkpoint_ts "$log")
    [ "$ts0" -gt 0 ] || fail "$log: no checkpoint timestamp"
    newer() { [ "$(tg_checkpoint_ts "$1")" -gt "$2" ]; }
    tg_wait_until 30 "$log checkpoint newer than $ts0" newer "$log" "$ts0"
    [ "$(tg_checkpoint_size "$log")" = "$per_log" ] || fail "$log size changed while idle"
done

echo "restart"
check "tegula up stops on SIGTERM with exit 0 and no child left"
tg_stop
check "a second tegula up without --create continues the same logs"
tg_up
"$tegula" mkchain --ca-dir "$t/ca-p256" --leaf --not-after "$(tg_not_after log1)" \
    --out "$t/after.pem"
resubmit log1 "$t/after.pem" after
grep -q "leaf_index=$per_log " "$t/re-after.err" || fail "after restart: $(cat "$t/re-after.err")"
check "a resubmission after the restart still gets the byte-identical SCT"
resubmit log2 "$t/chains/log2-rsa2048-leaf/chain-000001.pem" after-dup
cmp -s "$t/sct/log2-rsa2048-leaf-chain-000001.pem.sct" "$t/re-after-dup.sct" ||
    fail "SCT after restart differs"
check "fsck after the restart: log1 has $((per_log + 1)) entries and the new one is included"
"$tegula" fsck --url "$(tg_storage log1)" --key "$(tg_pubkey log1)" >"$t/fsck-after" 2>&1 ||
    fail "fsck: $(cat "$t/fsck-after")"
grep -q "^fsck: OK: $((per_log + 1)) entries" "$t/fsck-after" || fail "$(cat "$t/fsck-after")"
"$tegula" submit --sct "$t/re-after.sct" --key "$(tg_pubkey log1)" --url "$(tg_prefix log1)" \
    --log "$(tg_storage log1)" "$t/after.pem" 2>/dev/null || fail "new entry not included"
tg_stop

echo "test_e2e_submit: $TG_CHECKS checks passed"
