#!/bin/sh
# Integration test of the tegula CLI's keygen and mkchain, checked against the openssl
# command-line tool. Run by tests/integration/run.sh (which sets TEGULA_BUILD), or alone:
#   TEGULA_BUILD=build sh tests/integration/test_tools.sh
set -eu

here=$(cd "$(dirname "$0")" && pwd)
build=${TEGULA_BUILD:-$here/../../build}
tegula=$build/tegula
[ -x "$tegula" ] || { echo "FAIL: $tegula is not built" >&2; exit 1; }
for tool in openssl jq base64 sha256sum stat awk cmp; do
    command -v "$tool" >/dev/null || { echo "FAIL: this test needs '$tool'" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tegula-test-tools.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP

checks=0
check() {
    checks=$((checks + 1))
    echo "  check: $*"
}
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
# expect_status STATUS CMD...: runs CMD (output kept in $tmp/out, $tmp/err) and fails the
# test unless it exits with STATUS ("nonzero" accepts any failure).
expect_status() {
    want=$1
    shift
    set +e
    "$@" >"$tmp/out" 2>"$tmp/err"
    got=$?
    set -e
    if [ "$want" = nonzero ]; then
        [ "$got" -ne 0 ] || fail "expected failure, got exit 0: $*"
    elif [ "$got" -ne "$want" ]; then
        echo "--- stdout:" >&2
        cat "$tmp/out" >&2
        echo "--- stderr:" >&2
        cat "$tmp/err" >&2
        fail "expected exit $want, got $got: $*"
    fi
}
# contains FILE TEXT: fixed-string search
contains() {
    grep -qF -- "$2" "$1" || { echo "--- $1:" >&2; cat "$1" >&2; fail "'$2' not found in $1"; }
}
lacks() {
    if grep -qF -- "$2" "$1"; then fail "'$2' unexpectedly found in $1"; fi
}
mode_of() { stat -c %a "$1"; }
field() { sed -n "s/^$1: //p" "$2"; }
# split_pem CHAIN PREFIX: PREFIX1.pem, PREFIX2.pem, ... ; prints the count
split_pem() {
    awk -v prefix="$2" '/-----BEGIN CERTIFICATE-----/ { n++ } n { print > (prefix n ".pem") }
        END { print n + 0 }' "$1"
}
der_of() { openssl x509 -in "$1" -outform DER; }

echo "tegula CLI dispatch and help"
check "'tegula --help' exits 0 and lists keygen and mkchain"
expect_status 0 "$tegula" --help
contains "$tmp/out" keygen
contains "$tmp/out" mkchain
check "'tegula' alone and an unknown command print usage and exit 2"
expect_status 2 "$tegula"
contains "$tmp/err" "Usage: tegula"
expect_status 2 "$tegula" no-such-command
contains "$tmp/err" "unknown command 'no-such-command'"
contains "$tmp/err" "Usage: tegula"
expect_status 2 "$tegula" --no-such-option
commands=$("$tegula" --help | awk '/^Commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 }')
[ -n "$commands" ] || fail "no commands listed by tegula --help"
for cmd in $commands; do
    check "'tegula $cmd --help' and 'tegula help $cmd' exit 0 with its usage"
    expect_status 0 "$tegula" "$cmd" --help
    contains "$tmp/out" "Usage: tegula $cmd"
    expect_status 0 "$tegula" help "$cmd"
    contains "$tmp/out" "Usage: tegula $cmd"
    check "'tegula $cmd --no-such-option' exits 2"
    expect_status 2 "$tegula" "$cmd" --no-such-option
    contains "$tmp/err" "--no-such-option"
done

echo "keygen"
key=$tmp/keys/log.key
mkdir "$tmp/keys"
check "keygen -o writes a PKCS#8 P-256 key with mode 0600 and never prints it"
(umask 000 && "$tegula" keygen -o "$key" >"$tmp/keygen.out" 2>"$tmp/keygen.err") ||
    fail "keygen -o failed: $(cat "$tmp/keygen.err")"
[ "$(mode_of "$key")" = 600 ] || fail "key mode is $(mode_of "$key"), want 600"
[ "$(head -n 1 "$key")" = "-----BEGIN PRIVATE KEY-----" ] || fail "key is not PKCS#8 PEM"
openssl pkey -in "$key" -noout -text >"$tmp/key.txt" 2>/dev/null ||
    fail "openssl cannot read the key"
contains "$tmp/key.txt" "prime256v1"
lacks "$tmp/keygen.out" "PRIVATE"
lacks "$tmp/keygen.err" "PRIVATE"
[ "$(ls "$tmp/keys")" = log.key ] || fail "keygen left other files: $(ls "$tmp/keys")"

check "printed log ID = SHA-256 of the DER SPKI from 'openssl pkey -pubout' (hex and base64)"
openssl pkey -in "$key" -pubout -outform DER >"$tmp/spki.der"
want_hex=$(sha256sum <"$tmp/spki.der" | awk '{ print $1 }')
[ "$(field log_id_hex "$tmp/keygen.out")" = "$want_hex" ] ||
    fail "log_id_hex $(field log_id_hex "$tmp/keygen.out") != $want_hex"
want_b64=$(openssl dgst -sha256 -binary <"$tmp/spki.der" | base64 -w0)
[ "$(field log_id_base64 "$tmp/keygen.out")" = "$want_b64" ] || fail "log_id_base64 mismatch"
check "printed SPKI base64 and public key PEM match openssl"
[ "$(field spki_base64 "$tmp/keygen.out")" = "$(base64 -w0 <"$tmp/spki.der")" ] ||
    fail "spki_base64 mismatch"
openssl pkey -in "$key" -pubout >"$tmp/pub.pem"
awk '/BEGIN PUBLIC KEY/,/END PUBLIC KEY/' "$tmp/keygen.out" | cmp -s - "$tmp/pub.pem" ||
    fail "printed public key PEM differs from openssl's"

check "keygen refuses to overwrite an existing key (exit 1, file unchanged)"
cp "$key" "$tmp/key.copy"
expect_status 1 "$tegula" keygen -o "$key"
contains "$tmp/err" "already exists"
cmp -s "$key" "$tmp/key.copy" || fail "key changed after a refused keygen"

check "keygen --public prints the same identity without writing"
expect_status 0 "$tegula" keygen --public "$key"
cmp -s "$tmp/out" "$tmp/keygen.out" || fail "keygen --public output differs from keygen -o"
cmp -s "$key" "$tmp/key.copy" || fail "keygen --public changed the key"
check "keygen --public accepts a public key PEM too"
expect_status 0 "$tegula" keygen --public "$tmp/pub.pem"
[ "$(field log_id_hex "$tmp/out")" = "$want_hex" ] || fail "log ID from public key PEM differs"

check "keygen -o --force replaces the key and resets its mode to 0600"
chmod 644 "$key"
expect_status 0 "$tegula" keygen -o "$key" --force
[ "$(mode_of "$key")" = 600 ] || fail "forced key mode is $(mode_of "$key"), want 600"
cmp -s "$key" "$tmp/key.copy" && fail "--force did not write a new key"
[ "$(field log_id_hex "$tmp/out")" != "$want_hex" ] || fail "--force kept the old log ID"
[ "$(ls "$tmp/keys")" = log.key ] || fail "keygen --force left other files: $(ls "$tmp/keys")"

check "keygen bad command lines exit 2; unreadable keys exit 1"
expect_status 2 "$tegula" keygen
expect_status 2 "$tegula" keygen -o
expect_status 2 "$tegula" keygen -o "$tmp/a.key" --public "$key"
expect_status 2 "$tegula" keygen --public "$key" --force
expect_status 2 "$tegula" keygen -o "$tmp/a.key" extra-argument
[ ! -e "$tmp/a.key" ] || fail "a rejected command line wrote a key"
expect_status 1 "$tegula" keygen --public "$tmp/no-such.key"
echo "not a key" >"$tmp/junk.key"
expect_status 1 "$tegula" keygen --public "$tmp/junk.key"
expect_status 1 "$tegula" keygen -o "$tmp/no-such-dir/log.key"

echo "mkchain --init"
for ktype in p256 rsa2048; do
    ca=$tmp/ca-$ktype
    check "mkchain --init --key-type $ktype makes root and intermediate, keys 0600"
    expect_status 0 "$tegula" mkchain --ca-dir "$ca" --init --key-type "$ktype"
    for f in root.key intermediate.key; do
        [ "$(mode_of "$ca/$f")" = 600 ] || fail "$ca/$f mode $(mode_of "$ca/$f"), want 600"
        openssl pkey -in "$ca/$f" -noout -text >"$tmp/cakey.txt" 2>/dev/null ||
            fail "openssl cannot read $ca/$f"
        case $ktype in
        p256) contains "$tmp/cakey.txt" "prime256v1" ;;
        rsa2048) contains "$tmp/cakey.txt" "Private-Key: (2048 bit" ;;
        esac
    done
    # shellcheck disable=SC2012 # plain names made by this test
    [ "$(ls "$ca" | tr '\n' ' ')" = "intermediate.key intermediate.pem root.key root.pem " ] ||
        fail "unexpected files in $ca: $(ls "$ca")"
    openssl x509 -in "$ca/root.pem" -noout -ext basicConstraints >"$tmp/bc.txt"
    contains "$tmp/bc.txt" "CA:TRUE"
    openssl x509 -in "$ca/intermediate.pem" -noout -ext basicConstraints >"$tmp/bc.txt"
    contains "$tmp/bc.txt" "pathlen:0"
    openssl verify -CAfile "$ca/root.pem" "$ca/intermediate.pem" >/dev/null ||
        fail "intermediate does not verify against root ($ktype)"
    check "mkchain --init refuses to overwrite the $ktype CA (exit 1, files unchanged)"
    cp "$ca/root.pem" "$tmp/root.copy"
    expect_status 1 "$tegula" mkchain --ca-dir "$ca" --init --key-type "$ktype"
    contains "$tmp/err" "refusing to overwrite"
    cmp -s "$ca/root.pem" "$tmp/root.copy" || fail "root changed after a refused --init"
done

echo "mkchain leaves and precertificates"
# check_chain CA LEAF_KTYPE KIND: mints one chain with two SANs and a notAfter, then checks it.
check_chain() {
    ca=$1 leaf_ktype=$2 kind=$3
    d=$tmp/chain-$(basename "$ca")-$leaf_ktype-$kind
    mkdir "$d"
    check "$kind, $(basename "$ca"), $leaf_ktype leaf key: PEM chain and JSON body written"
    expect_status 0 "$tegula" mkchain --ca-dir "$ca" "--$kind" --key-type "$leaf_ktype" \
        --san www.example.test --san api.example.test --not-after 2030-01-02T03:04:05Z \
        --out "$d/chain.pem" --json "$d/body.json"
    [ "$(split_pem "$d/chain.pem" "$d/cert")" = 3 ] || fail "chain does not have 3 certificates"
    cmp -s "$d/cert2.pem" "$ca/intermediate.pem" || fail "chain[1] is not the intermediate"
    cmp -s "$d/cert3.pem" "$ca/root.pem" || fail "chain[2] is not the root"
    leaf=$d/cert1.pem

    ignore=""
    [ "$kind" = precert ] && ignore=-ignore_critical
    check "$kind verifies: -CAfile root -untrusted intermediate, and -partial_chain"
    # shellcheck disable=SC2086
    openssl verify $ignore -CAfile "$ca/root.pem" -untrusted "$ca/intermediate.pem" "$leaf" \
        >"$d/verify.txt" 2>&1 || { cat "$d/verify.txt" >&2; fail "chain does not verify"; }
    # shellcheck disable=SC2086
    openssl verify $ignore -partial_chain -CAfile "$ca/intermediate.pem" "$leaf" \
        >"$d/verify.txt" 2>&1 || { cat "$d/verify.txt" >&2; fail "-partial_chain fails"; }

    check "$kind has the SANs, CN = first SAN, serverAuth, CA:false, digitalSignature, notAfter"
    openssl x509 -in "$leaf" -noout -text >"$d/text.txt"
    contains "$d/text.txt" "DNS:www.example.test, DNS:api.example.test"
    contains "$d/text.txt" "Subject: CN = www.example.test"
    contains "$d/text.txt" "TLS Web Server Authentication"
    contains "$d/text.txt" "X509v3 Basic Constraints: critical"
    contains "$d/text.txt" "CA:FALSE"
    contains "$d/text.txt" "X509v3 Key Usage: critical"
    contains "$d/text.txt" "Digital Signature"
    contains "$d/text.txt" "Not After : Jan  2 03:04:05 2030 GMT"
    case $leaf_ktype in
    p256) contains "$d/text.txt" "NIST CURVE: P-256" ;;
    rsa2048) contains "$d/text.txt" "Public-Key: (2048 bit)" ;;
    esac
    case $(basename "$ca") in
    ca-p256) contains "$d/text.txt" "Signature Algorithm: ecdsa-with-SHA256" ;;
    ca-rsa2048) contains "$d/text.txt" "Signature Algorithm: sha256WithRSAEncryption" ;;
    esac

    der_of "$leaf" >"$d/leaf.der"
    openssl asn1parse -inform DER -in "$d/leaf.der" >"$d/asn1.txt"
    if [ "$kind" = precert ]; then
        check "precert carries the poison: critical, value 05 00; plain verify rejects it"
        awk '/CT Precertificate Poison/ { getline b; getline v; print b; print v }' \
            "$d/asn1.txt" >"$d/poison.txt"
        contains "$d/poison.txt" "BOOLEAN           :255"
        contains "$d/poison.txt" "OCTET STRING      [HEX DUMP]:0500"
        if openssl verify -CAfile "$ca/root.pem" -untrusted "$ca/intermediate.pem" "$leaf" \
            >"$d/verify.txt" 2>&1; then
            fail "precert verified without -ignore_critical: poison not critical?"
        fi
        contains "$d/verify.txt" "unhandled critical extension"
    else
        check "leaf has no poison extension"
        lacks "$d/asn1.txt" "CT Precertificate Poison"
    fi

    check "$kind JSON body is valid JSON whose base64 decodes to the same DER"
    jq -e '(keys == ["chain"]) and (.chain | length == 3)' "$d/body.json" >/dev/null ||
        fail "body is not {\"chain\":[3 items]}: $(cat "$d/body.json")"
    for i in 1 2 3; do
        jq -r ".chain[$((i - 1))]" "$d/body.json" | base64 -d >"$d/json$i.der" ||
            fail "chain[$((i - 1))] is not base64"
        der_of "$d/cert$i.pem" | cmp -s - "$d/json$i.der" ||
            fail "JSON chain[$((i - 1))] differs from PEM certificate $i"
    done
}
for ca in "$tmp/ca-p256" "$tmp/ca-rsa2048"; do
    for leaf_ktype in p256 rsa2048; do
        for kind in leaf precert; do
            check_chain "$ca" "$leaf_ktype" "$kind"
        done
    done
done

ca=$tmp/ca-p256
check "DER re-encoded by openssl is byte-identical (canonical DER)"
jq -r '.chain[0]' "$tmp/chain-ca-p256-p256-precert/body.json" | base64 -d >"$tmp/p.der"
openssl x509 -inform DER -in "$tmp/p.der" -outform DER | cmp -s - "$tmp/p.der" ||
    fail "openssl re-encodes the precert differently"

check "default output: PEM chain on stdout; --no-root leaves the root out of PEM and JSON"
expect_status 0 "$tegula" mkchain --ca-dir "$ca" --leaf
[ "$(split_pem "$tmp/out" "$tmp/stdout-cert")" = 3 ] || fail "stdout chain is not 3 certificates"
expect_status 0 "$tegula" mkchain --ca-dir "$ca" --leaf --no-root --out "$tmp/nr.pem" --json -
[ "$(split_pem "$tmp/nr.pem" "$tmp/nr-cert")" = 2 ] || fail "--no-root PEM is not 2 certificates"
jq -e '.chain | length == 2' "$tmp/out" >/dev/null || fail "--no-root JSON is not 2 items"
check "without --san the SAN and CN are a random *.tegula.test name"
openssl x509 -in "$tmp/nr-cert1.pem" -noout -ext subjectAltName >"$tmp/san.txt"
grep -Eq 'DNS:[0-9a-f]{16}\.tegula\.test' "$tmp/san.txt" ||
    fail "no random SAN: $(cat "$tmp/san.txt")"

check "RFC 3339 offsets and fractions: 05:04:05.123+02:00 is 03:04:05 UTC"
expect_status 0 "$tegula" mkchain --ca-dir "$ca" --leaf --san a.test \
    --not-after 2030-01-02T05:04:05.123+02:00 --out "$tmp/o.pem"
[ "$(openssl x509 -in "$tmp/o.pem" -noout -enddate)" = "notAfter=Jan  2 03:04:05 2030 GMT" ] ||
    fail "offset not applied: $(openssl x509 -in "$tmp/o.pem" -noout -enddate)"
check "notAfter from 2050 on is a GeneralizedTime"
expect_status 0 "$tegula" mkchain --ca-dir "$ca" --leaf --san a.test \
    --not-after 2051-03-04T05:06:07Z --out "$tmp/g.pem"
der_of "$tmp/g.pem" | openssl asn1parse -inform DER >"$tmp/g.txt"
contains "$tmp/g.txt" "GENERALIZEDTIME   :20510304050607Z"
check "an expired leaf gets notBefore = notAfter - 90 days"
expect_status 0 "$tegula" mkchain --ca-dir "$ca" --precert --san old.test \
    --not-after 2020-01-01T00:00:00Z --out "$tmp/old.pem"
[ "$(openssl x509 -in "$tmp/old.pem" -noout -startdate)" = "notBefore=Oct  3 00:00:00 2019 GMT" ] ||
    fail "expired leaf notBefore: $(openssl x509 -in "$tmp/old.pem" -noout -startdate)"

check "--count 100 --out-dir: 100 PEM + 100 JSON, all verify, serials and SANs unique"
expect_status 0 "$tegula" mkchain --ca-dir "$ca" --leaf --count 100 --out-dir "$tmp/many"
set -- "$tmp/many"/*.pem
[ $# = 100 ] || fail "$# PEM files, want 100"
set -- "$tmp/many"/*.json
[ $# = 100 ] || fail "$# JSON files, want 100"
openssl verify -CAfile "$ca/root.pem" -untrusted "$ca/intermediate.pem" "$tmp/many"/*.pem \
    >"$tmp/verify-many.txt" 2>&1 || { cat "$tmp/verify-many.txt" >&2; fail "a chain fails"; }
[ "$(grep -c ': OK$' "$tmp/verify-many.txt")" = 100 ] || fail "not 100 chains verified"
for f in "$tmp/many"/*.pem; do
    openssl x509 -in "$f" -noout -serial -ext subjectAltName
done >"$tmp/serials.txt"
[ "$(grep '^serial=' "$tmp/serials.txt" | sort -u | wc -l)" = 100 ] || fail "serials repeat"
[ "$(grep 'DNS:' "$tmp/serials.txt" | sort -u | wc -l)" = 100 ] || fail "SANs repeat"
jq -e '.chain | length == 3' "$tmp/many"/*.json >/dev/null || fail "a JSON body is wrong"
check "--count with --san: same SANs, still 20 distinct serials"
expect_status 0 "$tegula" mkchain --ca-dir "$ca" --precert --san fixed.test --count 20 \
    --out-dir "$tmp/fixed"
for f in "$tmp/fixed"/*.pem; do openssl x509 -in "$f" -noout -serial; done | sort -u |
    wc -l | grep -qx 20 || fail "serials repeat with a fixed SAN"

check "mkchain bad command lines exit 2"
expect_status 2 "$tegula" mkchain --leaf
expect_status 2 "$tegula" mkchain --ca-dir "$ca"
expect_status 2 "$tegula" mkchain --ca-dir "$ca" --leaf --precert
expect_status 2 "$tegula" mkchain --ca-dir "$tmp/ca-x" --init --san a.test
expect_status 2 "$tegula" mkchain --ca-dir "$ca" --leaf --key-type dsa
expect_status 2 "$tegula" mkchain --ca-dir "$ca" --leaf --not-after 2030-01-02
expect_status 2 "$tegula" mkchain --ca-dir "$ca" --leaf --not-after 2030-02-30T00:00:00Z
expect_status 2 "$tegula" mkchain --ca-dir "$ca" --leaf --count 0 --out-dir "$tmp/c0"
expect_status 2 "$tegula" mkchain --ca-dir "$ca" --leaf --count 5
expect_status 2 "$tegula" mkchain --ca-dir "$ca" --leaf --count 5 --out-dir "$tmp/c5" --out x
expect_status 2 "$tegula" mkchain --ca-dir "$ca" --leaf --san
expect_status 2 "$tegula" mkchain --ca-dir "$ca" --leaf stray
[ ! -e "$tmp/ca-x" ] || fail "a rejected --init created a CA"
check "mkchain failures exit 1 with a reason"
expect_status 1 "$tegula" mkchain --ca-dir "$tmp/no-ca" --leaf
contains "$tmp/err" "--init"
expect_status 1 "$tegula" mkchain --ca-dir "$ca" --leaf --san "bad name.test"
contains "$tmp/err" "not allowed"
expect_status 1 "$tegula" mkchain --ca-dir "$ca" --leaf \
    --san "a-name-that-is-much-too-long-to-be-a-common-name-in-x509.example.test"
contains "$tmp/err" "too long"
expect_status 1 "$tegula" mkchain --ca-dir "$ca" --leaf --out "$tmp/no-such-dir/c.pem"
cp "$tmp/ca-rsa2048/intermediate.key" "$tmp/wrong.key"
mkdir "$tmp/ca-mixed"
cp "$ca/root.pem" "$ca/intermediate.pem" "$tmp/ca-mixed/"
cp "$tmp/wrong.key" "$tmp/ca-mixed/intermediate.key"
expect_status 1 "$tegula" mkchain --ca-dir "$tmp/ca-mixed" --leaf
contains "$tmp/err" "does not match"

echo "test_tools: $checks checks passed"
