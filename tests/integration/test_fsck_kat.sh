#!/bin/sh
# tegula fsck --kat on real static-ct tiles (Sunlight's navigli2025h2): the data tiles must
# agree with the level-0 hash tiles entry by entry, whether stored raw or gzip'd, and any
# corruption must be caught.
set -eu
tegula="$TEGULA_BUILD/tegula"
src="$TEGULA_TESTDATA/navigli2025h2"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tegula-fsck.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

check() { echo "  ok: $*"; }
fail() { echo "  FAIL: $*" >&2; exit 1; }

out=$("$tegula" fsck --kat 778 --url "$src") || fail "fsck --kat 778 on navigli: $out"
echo "$out" | grep -q "778 entries" || fail "summary does not count 778 entries: $out"
check "fsck --kat 778 passes on navigli2025h2 (raw data tiles)"

"$tegula" fsck --kat 1024 --url "$src" >/dev/null || fail "fsck --kat 1024"
check "fsck --kat 1024 passes"

if "$tegula" fsck --kat 1025 --url "$src" >/dev/null 2>&1; then fail "--kat 1025 must fail (no tile)"; fi
check "fsck --kat beyond the data fails"

# Same tiles with every data tile gzip'd, as tegula stores them.
cp -r "$src" "$tmp/gz"
chmod -R u+w "$tmp/gz"
find "$tmp/gz/tile/data" -type f | while read -r f; do gzip -n -c "$f" > "$f.gz" && mv "$f.gz" "$f"; done
"$tegula" fsck --kat 778 --url "$tmp/gz" >/dev/null || fail "fsck on gzip'd data tiles"
check "fsck reads gzip'd data tiles"

# One flipped byte inside entry 300's certificate (data tile 1): the leaf hash no longer matches.
cp -r "$src" "$tmp/bad"
chmod -R u+w "$tmp/bad"
printf '\377' | dd of="$tmp/bad/tile/data/001" bs=1 seek=20000 conv=notrunc 2>/dev/null
if out=$("$tegula" fsck --kat 778 --url "$tmp/bad" 2>&1); then fail "corrupt data tile accepted"; fi
echo "$out" | grep -qi "fail" || fail "no failure summary: $out"
check "a flipped byte in a logged precertificate is detected (its TBS no longer matches)"

# A flipped byte inside entry 0's TBSCertificate (offsets 45..1189, SPEC §1.8): the leaf hash
# no longer matches tile/0/000.
cp -r "$src" "$tmp/bad2"
chmod -R u+w "$tmp/bad2"
printf '\001' | dd of="$tmp/bad2/tile/data/000" bs=1 seek=600 conv=notrunc 2>/dev/null
if out=$("$tegula" fsck --kat 778 --url "$tmp/bad2" 2>&1); then fail "corrupt TBS accepted"; fi
echo "$out" | grep -q "tile/0/000: stored tile differs" || fail "TBS flip not reported as a hash mismatch: $out"
check "a flipped byte in a logged TBS is detected (leaf hash differs from level 0)"

# A flipped byte in a level-0 hash tile.
cp -r "$src" "$tmp/bad0"
chmod -R u+w "$tmp/bad0"
printf '\000' | dd of="$tmp/bad0/tile/0/002" bs=1 seek=4000 conv=notrunc 2>/dev/null
if "$tegula" fsck --kat 778 --url "$tmp/bad0" >/dev/null 2>&1; then fail "corrupt hash tile accepted"; fi
check "a flipped hash-tile byte is detected"

# A truncated data tile.
cp -r "$src" "$tmp/short"
chmod -R u+w "$tmp/short"
head -c 100000 "$src/tile/data/000" > "$tmp/short/tile/data/000"
if "$tegula" fsck --kat 778 --url "$tmp/short" >/dev/null 2>&1; then fail "truncated data tile accepted"; fi
check "a truncated data tile is detected"
echo "fsck kat: all checks passed"
