#!/bin/sh
# tegula submit --sct: SCT verification checked against SCTs built here with the openssl
# command-line tool (RFC 6962 §3.2: the signature covers version 0, signature type 0, the
# timestamp, entry type, the u24-prefixed certificate and the u16-prefixed CtExtensions, which
# carry the static-ct-api leaf_index), for a P-256 and an RSA log key, and every way an SCT
# can be wrong. Needs no running log.
set -eu
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
tg_setup submit-offline
t=$TG_TMP
tegula=$TG_TEGULA

"$tegula" keygen -o "$t/p256.key" >"$t/p256.info" 2>/dev/null
sed -n '/-----BEGIN PUBLIC KEY-----/,/-----END PUBLIC KEY-----/p' "$t/p256.info" >"$t/p256.pem"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$t/rsa.key" 2>/dev/null
openssl pkey -in "$t/rsa.key" -pubout -out "$t/rsa.pem"
"$tegula" keygen -o "$t/other.key" >"$t/other.info" 2>/dev/null
"$tegula" mkchain --ca-dir "$t/ca" --init 2>/dev/null
"$tegula" mkchain --ca-dir "$t/ca" --leaf --out "$t/chain.pem" --json "$t/chain.json"
"$tegula" mkchain --ca-dir "$t/ca" --leaf --out "$t/other-chain.pem"
openssl x509 -in "$t/chain.pem" -outform DER -out "$t/leaf.der"

b64() { base64 -w0 "$@"; }

# make_sct KEY DS_SIG_ALG TIMESTAMP LEAF_INDEX OUT [JSON_TIMESTAMP [JSON_EXTENSIONS_HEX]]:
# signs the entry for leaf.der with openssl and writes the add-chain response JSON.
make_sct() {
    key=$1 alg=$2 ts=$3 idx=$4 out=$5
    ext=000005$(printf '%010x' "$idx")
    {
        unhex "0000$(printf '%016x' "$ts")0000$(printf '%06x' "$(stat -c %s "$t/leaf.der")")"
        cat "$t/leaf.der"
        unhex "0008$ext"
    } >"$t/signed.bin"
    openssl dgst -sha256 -sign "$key" -out "$t/sig.der" "$t/signed.bin"
    { unhex "04${alg}$(printf '%04x' "$(stat -c %s "$t/sig.der")")"; cat "$t/sig.der"; } >"$t/ds.bin"
    id=$(openssl pkey -in "$key" -pubout -outform DER | openssl dgst -sha256 -binary | b64)
    printf '{"sct_version":0,"id":"%s","timestamp":%s,"extensions":"%s","signature":"%s"}\n' \
        "$id" "${6:-$ts}" "$(unhex "${7-$ext}" | b64)" "$(b64 "$t/ds.bin")" >"$out"
}

expect() { # STATUS CMD...: output in $t/out and $t/err
    want=$1
    shift
    set +e
    "$@" >"$t/out" 2>"$t/err"
    got=$?
    set -e
    [ "$got" = "$want" ] || fail "exit $got, want $want: $* ($(cat "$t/err"))"
}
has() { grep -qF -- "$1" "$t/err" || fail "'$1' not in: $(cat "$t/err")"; }

ts=1790000000123
check "an openssl-made SCT (P-256 log key) verifies: log ID, signature, leaf_index and timestamp reported"
make_sct "$t/p256.key" 03 $ts 5 "$t/p256.sct"
expect 0 "$tegula" submit --sct "$t/p256.sct" --key "$t/p256.pem" "$t/chain.pem"
has "SCT verified: entry_type=x509 leaf_index=5 timestamp=$ts"
check "the JSON body of the same chain gives the same entry"
expect 0 "$tegula" submit --sct "$t/p256.sct" --key "$t/p256.pem" "$t/chain.json"
check "the private key file works as --key too"
expect 0 "$tegula" submit --sct "$t/p256.sct" --key "$t/p256.key" "$t/chain.pem"
check "a large leaf_index (2^40 - 1) and an RSA log key (signature algorithm 01)"
make_sct "$t/rsa.key" 01 $ts 1099511627775 "$t/rsa.sct"
expect 0 "$tegula" submit --sct "$t/rsa.sct" --key "$t/rsa.pem" "$t/chain.pem"
has "leaf_index=1099511627775"

check "wrong key: the log ID does not match"
expect 1 "$tegula" submit --sct "$t/p256.sct" --key "$t/other.key" "$t/chain.pem"
has "log ID"
check "another leaf: the signature does not cover it"
expect 1 "$tegula" submit --sct "$t/p256.sct" --key "$t/p256.pem" "$t/other-chain.pem"
has "signature"
check "the SCT's timestamp changed after signing"
make_sct "$t/p256.key" 03 $ts 5 "$t/ts.sct" $((ts + 1))
expect 1 "$tegula" submit --sct "$t/ts.sct" --key "$t/p256.pem" "$t/chain.pem"
has "signature"
check "the leaf_index changed after signing"
make_sct "$t/p256.key" 03 $ts 5 "$t/idx.sct" $ts 0000050000000006
expect 1 "$tegula" submit --sct "$t/idx.sct" --key "$t/p256.pem" "$t/chain.pem"
has "signature"
check "an SCT without the leaf_index extension is refused"
make_sct "$t/p256.key" 03 $ts 5 "$t/noidx.sct" $ts ""
expect 1 "$tegula" submit --sct "$t/noidx.sct" --key "$t/p256.pem" "$t/chain.pem"
has "extensions"
check "an ECDSA signature labelled RSA is refused"
make_sct "$t/p256.key" 01 $ts 5 "$t/alg.sct"
expect 1 "$tegula" submit --sct "$t/alg.sct" --key "$t/p256.pem" "$t/chain.pem"
check "malformed SCT JSON"
echo '{"sct_version":0}' >"$t/bad.sct"
expect 1 "$tegula" submit --sct "$t/bad.sct" --key "$t/p256.pem" "$t/chain.pem"
has "SCT JSON"

check "bad command lines exit 2"
expect 2 "$tegula" submit --sct "$t/p256.sct" "$t/chain.pem"
expect 2 "$tegula" submit --url http://127.0.0.1:1/x/
expect 2 "$tegula" submit --url ftp://127.0.0.1/x/ "$t/chain.pem"
expect 2 "$tegula" submit --url http://127.0.0.1:1/x/ --log "$t" "$t/chain.pem"
expect 2 "$tegula" submit --url http://127.0.0.1:1/x/ "$t/chain.pem" extra
expect 2 "$tegula" submit --url http://127.0.0.1:1/x/ --timeout 0 "$t/chain.pem"
check "failures exit 1: unreadable chain, not a chain, nothing listening"
expect 1 "$tegula" submit --url http://127.0.0.1:1/x/ "$t/no-such.pem"
echo "junk" >"$t/junk.pem"
expect 1 "$tegula" submit --url http://127.0.0.1:1/x/ "$t/junk.pem"
expect 1 "$tegula" submit --url http://127.0.0.1:1/x/ "$t/chain.pem"
has "POST http://127.0.0.1:1/x/ct/v1/add-chain"

echo "test_submit_offline: $TG_CHECKS checks passed"
