#!/bin/sh
# make bench, compose run: deploy/docker-compose.yml unchanged under podman-compose (load
# balancer, 2 frontends, 3 batchers, sequencer, Ceph RGW as the S3 store, everything in
# containers on this machine; the committed config, 1 s sequencing period), loaded through
# the load balancer by `tegula load` for BENCH_COMPOSE_DURATION seconds (default 30) with
# BENCH_COMPOSE_CLIENTS keep-alive clients (default 4000), 20% precertificates, every SCT
# verified; then the same deployment scaled to 6 batchers (a second `up -d` with
# deploy.replicas: 6) and the same load. Both runs' SCTs must be in the log (tegula fsck
# --scts through the load balancer). Appends a table to docs/performance.md unless
# BENCH_NO_DOC=1. Skips (exit 0) when podman is not installed (tools/deps.sh system).
#
#   tests/bench/compose.sh [BUILD]
set -eu
build=${1:-build}
bench_dir=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$bench_dir/../.." && pwd)
export TEGULA_BUILD=$(cd "$build" && pwd)
duration=${BENCH_COMPOSE_DURATION:-30}
clients=${BENCH_COMPOSE_CLIENTS:-4000}
if ! command -v podman >/dev/null 2>&1 || ! command -v podman-compose >/dev/null 2>&1; then
    echo "bench: compose run skipped (needs podman and podman-compose: tools/deps.sh system)"
    exit 0
fi

. "$repo/tests/integration/lib.sh"
. "$repo/tests/system/compose-lib.sh"
CP_PERIOD_MS=1000 # the committed config's period
compose_init benchcompose
compose_up
tg_raise_open_files
echo "bench compose: $clients clients, $duration s, period 1000 ms, $(nproc) CPUs, up in $CP_READY_MS ms"

rows=""
run() { # BATCHERS
    out=$TG_TMP/load-$1.out
    set +e
    "$TG_TEGULA" load --url "$CP_PREFIX" --ca-dir "$CP_CFG/test-ca" --key "$CP_PUBKEY" \
        --not-after "$CP_NOT_AFTER" --clients "$clients" --threads 1 --duration "$duration" \
        --precert-ratio 0.2 --report 10 --out-scts "$TG_TMP/scts-$1" >"$out"
    load_status=$?
    set -e
    cat "$out"
    result=$(grep '^RESULT' "$out") || fail "load printed no RESULT"
    field() { echo "$result" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
    echo "bench compose ($1 batchers): $(field rate) add-chain/s, p50 $(field p50_ms) ms, p99 $(field p99_ms) ms, errors $(field errors)"
    rows="$rows| $(date -u +%Y-%m-%d) | $commit | $1 | $clients | $duration s | $(field rate) | $(field p50_ms) | $(field p99_ms) | $(field errors) | $(field retried_503) |
"
    [ "$load_status" -eq 0 ] || fail "tegula load exited $load_status"
}
commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
run 3

cat >"$TG_TMP/batchers-6.yml" <<EOF
services:
  batcher:
    deploy:
      replicas: 6
EOF
CP_FILES="$TG_TMP/batchers-6.yml"
compose up -d >>"$TG_TMP/compose.log" 2>&1 || : # the running containers' `run` fails by name
[ "$(compose_ids batcher | wc -l)" = 6 ] || fail "scaling to 6 batchers failed"
# Every frontend has all 6 batchers live (DNS re-resolved every 5 s).
six_live() {
    for id in $(compose_ids frontend); do
        [ "$(compose_metric "$id" '^tegula_frontend_batchers\{state="live"\}')" = 6 ] || return 1
    done
}
tg_wait_until 60 "every frontend to use 6 batchers" six_live
run 6

cat "$TG_TMP/scts-3" "$TG_TMP/scts-6" >"$TG_TMP/scts"
compose_fsck "$TG_TMP/scts"
compose_down
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
. "$bench_dir/doc.sh"
doc_append_table "Compose run (deploy/docker-compose.yml under podman-compose: nginx, 2 frontends, N batchers, sequencer, Ceph RGW; $(nproc) × $cpu_model; load generator on the same machine, through the load balancer; 1 s period):" \
    "date | commit | batchers | clients | duration | add-chain/s | p50 ms | p99 ms | errors | 503 retried" "$rows"
printf '%s' "$rows"
