#!/bin/sh
# tools/run.sh BUILD: what `make run` does after building. The first run creates ./var (a
# development config with two temporal shards, log keys and a test CA: tools/devconfig.sh)
# and creates the logs; later runs continue the same logs. Then it runs `tegula up`, waits
# until the frontend is ready, and prints where to submit and what to paste to try it.
# Ctrl-C stops everything. TEGULA_VAR=dir uses another directory; on the first run only,
# TEGULA_PORT=n sets the frontend port (8080) and TEGULA_PORT_BASE=n the internal ones
# (9100: batchers 9101-9102, sequencers 9201-9202, their /metrics from 9300).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${1:-build}
tegula=$build/tegula
var=${TEGULA_VAR:-var}
for b in tegula tegula-frontend tegula-batcher tegula-sequencer; do
    [ -x "$build/$b" ] || { echo "run: $build/$b is not built" >&2; exit 1; }
done

if [ ! -e "$var/tegula.yaml" ]; then
    [ -e "$var" ] && { echo "run: $var exists but has no tegula.yaml; move it away" >&2; exit 1; }
    ./tools/devconfig.sh "$tegula" "$var" "${TEGULA_PORT:-8080}" "${TEGULA_PORT_BASE:-9100}"
fi
. "$(cd "$var" && pwd)/dev.env"
port=$TEGULA_DEV_PORT

# A log whose lock was never written has not been created yet (first run, or a first run
# stopped before its sequencer started): only then may its sequencer create it.
create=
for log in $TEGULA_DEV_LOGS; do
    [ -e "$var/data/$log/lock" ] || create=--create
done

# The shard that takes a certificate expiring in 90 days (mkchain's default) today.
in90=$(($(date -u +%s) + 90 * 86400))
target=
for log in $TEGULA_DEV_LOGS; do
    eval "limit=\$TEGULA_DEV_LIMIT_$log"
    if [ -z "$target" ] && [ "$in90" -lt "$limit" ]; then target=$log; fi
done

"$tegula" up -c "$var/tegula.yaml" --http-base "$TEGULA_DEV_HTTP_BASE" $create &
up=$!
# Ctrl-C in a terminal reaches tegula up directly (same process group; it stops everything
# in order, and a second Ctrl-C kills at once), so this shell only keeps waiting. Other
# signals sent to this shell alone are passed on.
trap ':' INT
trap 'kill -TERM $up 2>/dev/null || :' TERM HUP

ready=false
i=0
while [ $i -lt 300 ]; do
    if ! kill -0 $up 2>/dev/null; then break; fi
    if curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null; then
        ready=true
        break
    fi
    sleep 0.2
    i=$((i + 1))
done

if $ready; then
    base=http://127.0.0.1:$port
    {
        echo
        echo "================================================================================"
        echo "tegula is running: config $var/tegula.yaml, logs and keys under $var/"
        for log in $TEGULA_DEV_LOGS; do
            echo "  log $log"
            echo "    submission  $base/$log/ct/v1/add-chain   (add-pre-chain, get-roots)"
            echo "    monitoring  $base/$log/checkpoint   $base/$log/log.v3.json"
            echo "    files       $var/data/$log/storage   (tegula fsck --url DIR --key PUB.pem)"
            echo "    public key  $var/keys/$log.pem"
        done
        echo "  health  $base/readyz   metrics  $base/metrics"
        # tegula up --http-base: batchers first, then the sequencers in config order.
        ports=
        i=0
        for name in batcher-0 batcher-1 $TEGULA_DEV_LOGS; do
            ports="$ports $name :$((TEGULA_DEV_HTTP_BASE + i))"
            i=$((i + 1))
        done
        echo "          /healthz /readyz /metrics of$ports"
        if [ -n "$target" ]; then
            echo
            echo "Submit a fresh test chain and see its SCT (in another terminal):"
            echo "  $tegula mkchain --ca-dir $var/ca --leaf --json /tmp/c.json && curl -sS --data-binary @/tmp/c.json $base/$target/ct/v1/add-chain; echo"
            echo "and with the SCT verified and found in the log:"
            echo "  $tegula mkchain --ca-dir $var/ca --leaf --out /tmp/c.pem && $tegula submit --url $base/$target/ --key $var/keys/$target.pem --log $var/data/$target/storage /tmp/c.pem"
        fi
        echo
        echo "Ctrl-C stops everything; \`make run\` again continues the same logs (rm -rf $var for new ones)."
        echo "================================================================================"
        echo
    } >&2
elif kill -0 $up 2>/dev/null; then
    echo "run: the frontend is not ready after 60 s; still running (see the log above)" >&2
fi

status=0
while :; do
    set +e
    wait $up
    status=$?
    set -e
    # wait returns early (status > 128) when a trapped signal arrives; the job may still run.
    kill -0 $up 2>/dev/null || break
done
exit $status
