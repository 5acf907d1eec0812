#!/bin/sh
# Tile boundaries: grow one log to exactly 255, 256, 257, 511, 512 and 513 entries with
# `tegula load` (every SCT verified) and check at each size that `tegula fsck` verifies the
# whole log and finds every SCT at its index, and that exactly the tiles SPEC §1.7 implies are
# published: tile/0/000.p/255 and tile/data/000.p/255 at 255, then the full tile/0/000,
# tile/data/000 and tile/1/000.p/1 at 256, tile/0/001.p/1 at 257, and so on.
set -eu
. "$(dirname "$0")/lib.sh"
tg_setup tiles
tg_need_roles
TG_PERIOD_MS=100 tg_deploy 1
tg_up --create
log=log1
storage=$(tg_storage $log)
scts=$TG_TMP/scts

# tile_name INDEX: the 3-digit path element(s) of a tile index (x001/234 above 999).
tile_name() {
    if [ "$1" -lt 1000 ]; then printf '%03d' "$1"; else printf 'x%03d/%03d' $(($1 / 1000)) $(($1 % 1000)); fi
}

file_size() { wc -c <"$1" | tr -d ' '; }

# expect_tiles SIZE: the hash and data tiles of a tree of SIZE entries are all there, full
# tiles 8192 bytes and partial ones 32 * width, data tiles gzip'd.
expect_tiles() {
    size=$1
    hashes=$size
    level=0
    while [ "$hashes" -gt 0 ]; do
        full=$((hashes / 256))
        width=$((hashes % 256))
        i=0
        while [ $i -lt $full ]; do
            f=$storage/tile/$level/$(tile_name $i)
            [ -f "$f" ] || fail "size $size: $f missing"
            [ "$(file_size "$f")" -eq 8192 ] || fail "size $size: $f is not 8192 bytes"
            if [ $level -eq 0 ]; then
                d=$storage/tile/data/$(tile_name $i)
                [ -f "$d" ] || fail "size $size: $d missing"
                gzip -t <"$d" 2>/dev/null || fail "size $size: $d is not gzip"
            fi
            i=$((i + 1))
        done
        if [ $width -gt 0 ]; then
            f=$storage/tile/$level/$(tile_name $full).p/$width
            [ -f "$f" ] || fail "size $size: partial tile $f missing"
            [ "$(file_size "$f")" -eq $((32 * width)) ] || fail "size $size: $f is not $((32 * width)) bytes"
            if [ $level -eq 0 ]; then
                d=$storage/tile/data/$(tile_name $full).p/$width
                [ -f "$d" ] || fail "size $size: partial data tile $d missing"
                gzip -t <"$d" 2>/dev/null || fail "size $size: $d is not gzip"
            fi
        fi
        # No tile beyond the right edge: no full tile where the partial one is, none after
        # it, and no partial tile wider than the tree.
        if [ $width -gt 0 ]; then
            [ ! -e "$storage/tile/$level/$(tile_name $full)" ] ||
                fail "size $size: tile/$level/$(tile_name $full) is full already"
        fi
        [ ! -e "$storage/tile/$level/$(tile_name $((full + 1)))" ] ||
            fail "size $size: a level-$level tile beyond the right edge exists"
        for p in "$storage/tile/$level/$(tile_name $full).p"/*; do
            [ -e "$p" ] || continue
            [ "${p##*/}" -le "$width" ] || [ $width -eq 0 ] ||
                fail "size $size: $p is wider than the tree"
        done
        hashes=$((hashes / 256))
        level=$((level + 1))
    done
    # Above the top partial level there is nothing.
    [ ! -e "$storage/tile/$level" ] || fail "size $size: level $level exists"
}

: >"$scts"
current=0
for target in 255 256 257 511 512 513; do
    n=$((target - current))
    clients=$n
    [ $clients -le 32 ] || clients=32
    out=$("$TG_TEGULA" load --url "$(tg_prefix $log)" --ca-dir "$TG_TMP/ca-p256" \
        --key "$(tg_pubkey $log)" --not-after "$(tg_not_after $log)" --threads 1 \
        --clients $clients --count $n --retries 50 --out-scts "$TG_TMP/scts.new" --quiet) ||
        fail "load of $n submissions: $out"
    echo "$out" | grep -q "^RESULT ok=$n " || fail "load did not get $n SCTs: $out"
    cat "$TG_TMP/scts.new" >>"$scts"
    current=$target
    got=$(tg_checkpoint_size $log)
    [ "$got" -eq "$target" ] || fail "checkpoint size $got after $target accepted submissions"
    check "$n more submissions: the checkpoint says $target entries"
    out=$("$TG_TEGULA" fsck --url "$storage" --key "$(tg_pubkey $log)" --scts "$scts" 2>&1) ||
        fail "fsck at $target: $out"
    echo "$out" | grep -q "OK: $target entries" || fail "fsck at $target: $out"
    echo "$out" | grep -q "all $target SCTs found" || fail "fsck --scts at $target: $out"
    check "fsck verifies the $target-entry log and finds all $target SCTs at their index"
    expect_tiles $target
    check "the tiles of a $target-entry tree are exactly where SPEC says"
done

# The partial tiles of earlier sizes are immutable once written: the 255-wide partial data
# tile still holds the first 255 entries of the full tile (its bytes are a prefix of it).
if [ -f "$storage/tile/data/000.p/255" ]; then
    gzip -dc "$storage/tile/data/000.p/255" >"$TG_TMP/p255"
    gzip -dc "$storage/tile/data/000" >"$TG_TMP/full0"
    cmp -n "$(file_size "$TG_TMP/p255")" "$TG_TMP/p255" "$TG_TMP/full0" >/dev/null ||
        fail "tile/data/000.p/255 is not a prefix of tile/data/000"
    check "tile/data/000.p/255 is a prefix of tile/data/000"
fi
tg_stop
echo "test_tiles_boundary: $TG_CHECKS checks passed"
