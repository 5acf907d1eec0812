#!/bin/sh
# devconfig.sh TEGULA VARDIR [PORT [BASE]]: makes the development deployment `make run` starts:
#   VARDIR/tegula.yaml   two temporal shards, the current half-year and the next one (so a
#                        certificate expiring in 90 days, mkchain's default, always fits one),
#                        file storage and locks under VARDIR/data, frontend on 127.0.0.1:PORT
#   VARDIR/keys/<log>.key, <log>.pem   each log's private key (0600) and public key
#   VARDIR/ca/           a P-256 test root + intermediate (tegula mkchain --init)
#   VARDIR/roots.pem     the accepted roots: the test root
#   VARDIR/dev.env       facts for tools/run.sh (shell assignments)
# Internal ports: batchers BASE+1 and BASE+2, sequencers BASE+101 and BASE+102, health and
# metrics of batchers and sequencers from BASE+200 (tegula up --http-base). BASE is 9100.
# Everything is made in VARDIR.new and renamed at the end, so an interrupted run leaves no
# half-made VARDIR. Refuses to touch an existing VARDIR.
set -eu

usage="usage: devconfig.sh TEGULA VARDIR [PORT [BASE]]"
tegula=${1:?$usage}
var=${2:?$usage}
port=${3:-8080}
base=${4:-9100}

[ -e "$var" ] && { echo "devconfig: $var exists already" >&2; exit 1; }
tmp=$var.new
rm -rf "$tmp"
mkdir -p "$tmp/keys" "$tmp/data"

# Half-year shards: <year>h1 = [Jan 1, Jul 1), <year>h2 = [Jul 1, Jan 1 next year).
year=$(date -u +%Y)
month=$(date -u +%m)
month=${month#0}
if [ "$month" -le 6 ]; then
    half1=${year}h1 start1=$year-01-01 end1=$year-07-01
    half2=${year}h2 start2=$year-07-01 end2=$((year + 1))-01-01
else
    half1=${year}h2 start1=$year-07-01 end1=$((year + 1))-01-01
    half2=$((year + 1))h1 start2=$((year + 1))-01-01 end2=$((year + 1))-07-01
fi

for log in "$half1" "$half2"; do
    "$tegula" keygen -o "$tmp/keys/$log.key" >"$tmp/keys/$log.info" 2>/dev/null
    # keygen prints the public key PEM first, then "key_type:", "log_id_..." lines.
    sed -n '/-----BEGIN PUBLIC KEY-----/,/-----END PUBLIC KEY-----/p' "$tmp/keys/$log.info" \
        >"$tmp/keys/$log.pem"
done
"$tegula" mkchain --ca-dir "$tmp/ca" --init 2>/dev/null
cp "$tmp/ca/root.pem" "$tmp/roots.pem"

shard() { # name start end sequencer-port
    cat <<EOF
  - name: $1
    description: "tegula development log $1"
    submission_prefix: http://127.0.0.1:$port/$1/
    key: keys/$1.key
    roots: roots.pem
    not_after_start: ${2}T00:00:00Z
    not_after_limit: ${3}T00:00:00Z
    storage: file:data/$1/storage
    lock: file:data/$1/lock
    sequencer: tcp://127.0.0.1:$4
    period_ms: 500
    intended_use: test
EOF
}

{
    echo "# tegula development deployment, made by tools/devconfig.sh for \`make run\`."
    echo "# The schema is documented in deploy/examples/tegula.yaml."
    echo "logs:"
    shard "$half1" "$start1" "$end1" $((base + 101))
    echo
    shard "$half2" "$start2" "$end2" $((base + 102))
    cat <<EOF

frontend:
  listen: 127.0.0.1:$port
  workers: 2

batchers:
  addresses: [tcp://127.0.0.1:$((base + 1)), tcp://127.0.0.1:$((base + 2))]
  batch_wait_ms: 20
  db: data/batcher

sequencer:
  data_dir: data/sequencer

log_level: info
EOF
} >"$tmp/tegula.yaml"

cat >"$tmp/dev.env" <<EOF
TEGULA_DEV_PORT=$port
TEGULA_DEV_LOGS="$half1 $half2"
TEGULA_DEV_LIMIT_$half1=$(date -u -d "$end1" +%s)
TEGULA_DEV_LIMIT_$half2=$(date -u -d "$end2" +%s)
TEGULA_DEV_HTTP_BASE=$((base + 200))
EOF
mv "$tmp" "$var"
echo "devconfig: created $var (logs $half1 and $half2, test CA in $var/ca)" >&2
