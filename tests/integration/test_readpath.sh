#!/bin/sh
# The read path over HTTP (issue 4): monitoring endpoints with their headers, fsck through the
# frontend, the RFC 6962 read layer (get-sth, get-entries ranges, proofs), path traversal, a
# CTile proxy in front of that layer, and certspotter (a real CT monitor) through both.
set -eu
. "$(dirname "$0")/lib.sh"
tg_setup readpath
tg_need_roles
command -v certspotter >/dev/null || fail "certspotter is not installed (make deps)"
tg_deploy 1
# A CTile proxy in front of the log's own RFC 6962 layer (upstream = the frontend itself).
{
    echo "ctile:"
    echo "  - prefix: /proxy1/"
    echo "    upstream: $TG_URL/log1/"
    echo "    cache: file:data/ctile"
    echo "    partial_max_age_s: 2"
    echo "    sth_max_age_s: 2"
} >>"$TG_CFG"
tg_up --create
prefix=$(tg_prefix log1)

# ---- 300 entries (across the first 256-entry tile): certificates and precertificates.
"$TG_TEGULA" mkchain --ca-dir "$TG_TMP/ca-p256" --leaf --count 270 --out-dir "$TG_TMP/chains" \
    --not-after "$(tg_not_after log1)" >/dev/null
"$TG_TEGULA" mkchain --ca-dir "$TG_TMP/ca-p256" --precert --count 30 --out-dir "$TG_TMP/pre" \
    --not-after "$(tg_not_after log1)" >/dev/null
ls "$TG_TMP"/chains/*.json | xargs -P 16 -I{} curl -fsS -o /dev/null --retry 3 \
    --data-binary @{} "${prefix}ct/v1/add-chain" || fail "add-chain"
ls "$TG_TMP"/pre/*.json | xargs -P 16 -I{} curl -fsS -o /dev/null --retry 3 \
    --data-binary @{} "${prefix}ct/v1/add-pre-chain" || fail "add-pre-chain"
size_at_least_300() { [ "$(tg_checkpoint_size log1)" -ge 300 ]; }
tg_wait_until 60 "checkpoint size 300" size_at_least_300
check "300 submissions (270 certificates, 30 precertificates) sequenced"

# ---- Monitoring endpoints and their headers.
# fetch PATH [curl args]: headers to $TG_TMP/h, body to $TG_TMP/b; prints the status.
fetch() {
    p=$1
    shift
    curl -sS --path-as-is -D "$TG_TMP/h" -o "$TG_TMP/b" -w '%{http_code}' "$@" "${prefix}$p"
}
has() { tr -d '\r' <"$TG_TMP/h" | grep -qi "^$1"; }

[ "$(fetch checkpoint)" = 200 ] || fail "GET checkpoint"
has "content-type: text/plain; charset=utf-8" && has "cache-control: no-store" &&
    has "access-control-allow-origin: \*" || fail "checkpoint headers: $(cat "$TG_TMP/h")"
cmp -s "$TG_TMP/b" "$(tg_storage log1)/checkpoint" || fail "checkpoint body differs from storage"
check "checkpoint: text/plain, no-store, CORS, the stored bytes"

[ "$(fetch tile/0/000)" = 200 ] && [ "$(wc -c <"$TG_TMP/b")" -eq 8192 ] || fail "tile/0/000"
has "cache-control: public, max-age=604800, immutable" &&
    has "content-type: application/octet-stream" || fail "hash tile headers: $(cat "$TG_TMP/h")"
etag=$(tr -d '\r' <"$TG_TMP/h" | sed -n 's/^[Ee][Tt][Aa][Gg]: //p')
[ -n "$etag" ] || fail "no ETag on a tile"
[ "$(fetch tile/0/000 -H "If-None-Match: $etag")" = 304 ] || fail "If-None-Match did not give 304"
check "full hash tile: 8192 bytes, immutable, ETag and 304"

[ "$(fetch tile/data/000 -H 'Accept-Encoding: gzip')" = 200 ] && has "content-encoding: gzip" ||
    fail "data tile for a gzip client"
cp "$TG_TMP/b" "$TG_TMP/data.gz"
[ "$(fetch tile/data/000 -H 'Accept-Encoding: identity')" = 200 ] && ! has "content-encoding" ||
    fail "data tile for an identity client"
gzip -dc "$TG_TMP/data.gz" | cmp -s - "$TG_TMP/b" || fail "identity body is not the gunzipped tile"
check "data tile: gzip as stored for gzip clients, decompressed for the others"

width=$(($(tg_checkpoint_size log1) - 256))
[ "$(fetch "tile/0/001.p/$width")" = 200 ] && [ "$(wc -c <"$TG_TMP/b")" -eq $((width * 32)) ] ||
    fail "partial tile 001.p/$width"
[ "$(curl -sS -o /dev/null -w '%{http_code}' -I "${prefix}tile/0/000")" = 200 ] || fail "HEAD"
check "partial tile of the published size; HEAD"

for p in tile/0/002 tile/0/000.p/0 tile/6/000 tile/0/0001 'tile/0/../../../etc/passwd' \
    'tile/0/%2e%2e/%2e%2e/x' 'tile/data/..%2f..%2fcheckpoint' 'issuer/ABC' 'tile//0/000' \
    'tile/0/000%00' 'checkpoint/' 'issuer/../checkpoint'; do
    code=$(fetch "$p")
    case $code in 400 | 404) ;; *) fail "$p answered $code" ;; esac
    ! has "cache-control: public" || fail "$p: an error with long-cache headers"
done
check "malformed, missing and traversal paths: 400/404 without long-cache headers"

"$TG_TEGULA" fsck --url "$prefix" --key "$(tg_pubkey log1)" >"$TG_TMP/fsck.txt" 2>&1 ||
    fail "fsck over HTTP: $(cat "$TG_TMP/fsck.txt")"
grep -q "fsck: OK: " "$TG_TMP/fsck.txt" || fail "fsck summary: $(cat "$TG_TMP/fsck.txt")"
check "tegula fsck verifies the whole log through the frontend: $(tail -n 1 "$TG_TMP/fsck.txt")"

# ---- RFC 6962 read layer.
api() { curl -fsS "${prefix}ct/v1/$1"; }
# The layer re-reads the checkpoint at most once a second: wait until it has all 300.
sth_has_300() { [ "$(api get-sth | jq -r .tree_size)" -ge 300 ]; }
tg_wait_until 15 "get-sth to reach 300 entries" sth_has_300
sth=$(api get-sth)
size=$(echo "$sth" | jq -r .tree_size)
root=$(echo "$sth" | jq -r .sha256_root_hash)
check "get-sth tree_size $size"
[ "$(api 'get-entries?start=250&end=280' | jq '.entries | length')" -eq 6 ] ||
    fail "get-entries 250..280 must stop at the tile end"
[ "$(api 'get-entries?start=10&end=20' | jq '.entries | length')" -eq 11 ] || fail "get-entries 10..20"
[ "$(api "get-entries?start=290&end=100000" | jq '.entries | length')" -eq $((size - 290)) ] ||
    fail "get-entries past the tree must stop at the tree end"
for q in 'start=-1&end=2' 'start=5&end=2' "start=$size&end=$((size + 5))" 'start=a&end=2' 'end=3'; do
    code=$(curl -sS -o /dev/null -w '%{http_code}' "${prefix}ct/v1/get-entries?$q")
    [ "$code" = 400 ] || fail "get-entries?$q answered $code"
done
check "get-entries: mid-tile, never across a tile, truncated at the tree end, invalid → 400"
[ "$(api "get-sth-consistency?first=100&second=$size" | jq '.consistency | length')" -gt 0 ] ||
    fail "consistency proof"
[ "$(api 'get-entry-and-proof?leaf_index=7&tree_size=256' | jq '.audit_path | length')" -eq 8 ] ||
    fail "inclusion proof of 7 in 256 must have 8 hashes"
check "get-sth-consistency and get-entry-and-proof answer"

# ---- certspotter through the RFC 6962 layer, then through the CTile proxy.
spki=$(sed '1d;$d' "$(tg_pubkey log1)" | tr -d '\n')
logid=$(sed '1d;$d' "$(tg_pubkey log1)" | base64 -d | openssl dgst -sha256 -binary | base64)
first=$(ls "$TG_TMP/chains" | grep 'pem$' | head -n 1)
watched=$(openssl x509 -noout -ext subjectAltName -in "$TG_TMP/chains/$first" |
    sed -n 's/.*DNS:\([^,]*\).*/\1/p' | head -n 1)
[ -n "$watched" ] || fail "no SAN in $first"
echo "$watched" >"$TG_TMP/watchlist"

run_certspotter() { # URL NAME
    cs_name=$2
    printf '%s\n' '{"version":"1","operators":[{"name":"tegula","email":["ops@example.test"],"logs":[' \
        "{\"description\":\"tegula $2\",\"log_id\":\"$logid\",\"key\":\"$spki\",\"url\":\"$1\"," \
        '"mmd":60,"state":{"usable":{"timestamp":"2026-01-01T00:00:00Z"}}}]}]}' \
        >"$TG_TMP/loglist-$2.json"
    certspotter -logs "$TG_TMP/loglist-$2.json" -watchlist "$TG_TMP/watchlist" \
        -state_dir "$TG_TMP/certspotter-$2" -stdout -verbose -no_save \
        >"$TG_TMP/certspotter-$2.out" 2>"$TG_TMP/certspotter-$2.err" &
    cs=$!
    TG_PIDS="$TG_PIDS $cs"
    # certspotter saves the position it has verified (root recomputed from every entry and
    # checked against a signed STH) in its state directory.
    verified() {
        state=$(find "$TG_TMP/certspotter-$cs_name/logs" -name state.json 2>/dev/null | head -n 1)
        [ -n "$state" ] && grep -q "$watched" "$TG_TMP/certspotter-$cs_name.out" &&
            [ "$(jq -r .verified_position.size "$state")" = "$size" ] &&
            [ "$(jq -r .verified_sth.sha256_root_hash "$state")" = "$root" ]
    }
    tg_wait_until 120 "certspotter ($2) to verify the whole tree and report $watched" verified
    kill "$cs" 2>/dev/null || true
    wait "$cs" 2>/dev/null || true
    # Its only complaint may be the cancellation our kill causes.
    if grep -v "context canceled" "$TG_TMP/certspotter-$2.err" |
        grep -iE "error|fail|mismatch|invalid|inconsistent"; then
        fail "certspotter ($2) reported a problem"
    fi
}
run_certspotter "$prefix" direct
check "certspotter verified all $size entries through the RFC 6962 layer and reported the watched name"
run_certspotter "$TG_URL/proxy1/" ctile
check "certspotter does the same through the CTile proxy"
find "$TG_TMP/data/ctile" -type f | grep -q . || fail "the proxy stored no full tile"
check "the proxy keeps full tiles in its cache storage"

tg_stop
echo "test_readpath: $TG_CHECKS checks passed"
