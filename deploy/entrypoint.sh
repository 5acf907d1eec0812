#!/bin/sh
# tegula-entrypoint: the image's entry point. The first argument names the role:
#
#   frontend                  tegula-frontend on 0.0.0.0:8080 (health: /healthz there)
#   batcher                   tegula-batcher on tcp://0.0.0.0:9100, /healthz and /metrics on
#                             0.0.0.0:9101; its id (how the sequencer tells batchers apart)
#                             defaults to the container's host name, unique per replica
#   sequencer LOG             tegula-sequencer of log LOG (NNG address from the config),
#                             /healthz and /metrics on 0.0.0.0:9201, after the first-start step
#                             below
#   healthcheck               the image's HEALTHCHECK: GET the running role's /healthz
#   anything else             run as given (e.g. `tegula keygen -o /keys/log.key`)
#
# Extra arguments after the role go to the program. The config is $TEGULA_CONFIG
# (default /etc/tegula/tegula.yaml).
#
# Sequencer first start: a log is created only by `tegula-sequencer --create-only`, and only
# when the sequencer's state volume has no marker (STATE/LOG.created) AND the lock holds no
# checkpoint. The marker is written once the log exists, so a later start never creates: if
# the object storage were ever emptied, the sequencer refuses to start instead of silently
# beginning a new tree under the same key. (Lost state volume, intact storage: --create-only
# finds the log, exits 3, the marker is rewritten, and the sequencer recovers from the lock.)
set -eu
config=${TEGULA_CONFIG:-/etc/tegula/tegula.yaml}
# Name lookups (the S3 endpoint, the batchers, the sequencer) are retried after 1 s instead of
# glibc's 5 s: container networks' resolvers drop a query now and then (podman's aardvark-dns
# while it reloads for a container that joins, conntrack races on Kubernetes nodes), and a
# lost answer would otherwise cost 5 s where the S3 client gives a connection 3 s. An
# operator's own RES_OPTIONS wins.
export RES_OPTIONS="${RES_OPTIONS:-timeout:1 attempts:3}"
health=/tmp/tegula-healthz

role=${1:-frontend}
[ $# -gt 0 ] && shift

case "$role" in
frontend)
    echo "http://127.0.0.1:8080/healthz" >"$health"
    exec tegula-frontend -c "$config" --listen 0.0.0.0:8080 "$@"
    ;;
batcher)
    echo "http://127.0.0.1:9101/healthz" >"$health"
    exec tegula-batcher -c "$config" --listen tcp://0.0.0.0:9100 --http 0.0.0.0:9101 "$@"
    ;;
sequencer)
    [ $# -ge 1 ] || { echo "tegula-entrypoint: usage: sequencer LOG [ARGS]" >&2; exit 2; }
    log=$1
    shift
    state=${TEGULA_SEQUENCER_STATE:-/var/lib/tegula/sequencer}
    marker=$state/$log.created
    if [ ! -e "$marker" ]; then
        mkdir -p "$state"
        set +e
        tegula-sequencer -c "$config" --log "$log" --create-only
        status=$?
        set -e
        case $status in
        0) echo "tegula-entrypoint: created log $log" >&2 ;;
        3) echo "tegula-entrypoint: log $log exists already; not creating" >&2 ;;
        *) echo "tegula-entrypoint: first start of log $log failed ($status); retry later" >&2
           exit 1 ;;
        esac
        date -u +%Y-%m-%dT%H:%M:%SZ >"$marker"
    fi
    echo "http://127.0.0.1:9201/healthz" >"$health"
    exec tegula-sequencer -c "$config" --log "$log" --http 0.0.0.0:9201 "$@"
    ;;
healthcheck)
    [ -f "$health" ] || exit 1
    exec curl -fsS -o /dev/null --max-time 3 "$(cat "$health")"
    ;;
*)
    exec "$role" "$@"
    ;;
esac
