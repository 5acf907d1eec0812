#!/bin/sh
# Overload: a log with pool_limit 50 gets a burst of 500 concurrent submissions. Some must be
# refused with 503 and a Retry-After header (every 503 carries one), none may fail any other
# way, every SCT that was returned verifies; then the log serves normally again (a
# further 100 submissions all succeed, resubmissions get the same SCT) and fsck finds every
# returned SCT at its index.
set -eu
. "$(dirname "$0")/lib.sh"
tg_setup limits
tg_need_roles
TG_PERIOD_MS=500 tg_deploy 1
# The pool of the only log holds 50 entries per round.
sed -i 's/^    period_ms: .*/&\n    pool_limit: 50/' "$TG_CFG"
grep -q '^    pool_limit: 50$' "$TG_CFG" || fail "could not set pool_limit"
tg_up --create
log=log1

load() {
    "$TG_TEGULA" load --url "$(tg_prefix $log)" --ca-dir "$TG_TMP/ca-p256" \
        --key "$(tg_pubkey $log)" --not-after "$(tg_not_after $log)" --threads 1 --quiet "$@"
}
field() { # field NAME RESULT-LINE
    echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"
}

out=$(load --clients 500 --count 500 --retries 0 --max-errors 500 --out-scts "$TG_TMP/scts1") ||
    fail "burst load failed (an SCT did not verify?): $out"
result=$(echo "$out" | grep '^RESULT') || fail "no RESULT line: $out"
ok=$(field ok "$result")
refused=$(field http_503 "$result")
with_retry_after=$(field retry_after "$result")
errors=$(field errors "$result")
echo "  burst: ok=$ok 503=$refused (with Retry-After: $with_retry_after) errors=$errors"
[ "$refused" -gt 0 ] || fail "500 concurrent submissions into a pool of 50 got no 503: $out"
[ "$with_retry_after" -eq "$refused" ] || fail "a 503 came without Retry-After: $out"
[ "$errors" -eq "$refused" ] || fail "errors other than 503 in the burst: $out"
[ "$ok" -gt 0 ] || fail "no submission of the burst succeeded: $out"
[ $((ok + refused)) -eq 500 ] || fail "ok + 503 is not 500: $out"
check "burst of 500 into pool_limit 50: $ok SCTs verified, $refused answered 503 + Retry-After"

# 30% of these resubmit a chain accepted earlier in the run: same SCT bytes expected.
out=$(load --clients 8 --count 100 --dup-ratio 0.3 --out-scts "$TG_TMP/scts2") ||
    fail "load after the burst: $out"
result=$(echo "$out" | grep '^RESULT')
echo "$result" | grep -q '^RESULT ok=100 .* errors=0 ' || fail "load after the burst: $out"
[ "$(field dup_identical "$result")" -gt 0 ] || fail "no resubmission was made: $out"
check "after the burst, 100 more submissions all succeed ($(field dup_identical "$result") resubmissions answered byte-identically)"

tg_stop
cat "$TG_TMP/scts1" "$TG_TMP/scts2" >"$TG_TMP/scts"
want=$((ok + 100))
entries=$(cut -d' ' -f1 "$TG_TMP/scts" | sort -u | wc -l | tr -d ' ')
out=$("$TG_TEGULA" fsck --url "$(tg_storage $log)" --key "$(tg_pubkey $log)" --scts "$TG_TMP/scts" 2>&1) ||
    fail "fsck: $out"
echo "$out" | grep -q "all $want SCTs found" || fail "fsck --scts: $out"
size=$(tg_checkpoint_size $log)
[ "$size" -ge "$entries" ] || fail "log has $size entries, fewer than the $entries SCT indexes"
check "fsck verifies the log ($size entries) and finds all $want returned SCTs at their index"
echo "test_limits: $TG_CHECKS checks passed"
