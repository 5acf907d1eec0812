#!/bin/sh
# s3-entrypoint: runs a one-node Ceph cluster (monitor, one BlueStore OSD, RADOS Gateway) in
# the foreground of this container, everything under $DIR (a volume). The first start makes
# the cluster, the S3 user ($AWS_ACCESS_KEY_ID / $AWS_SECRET_ACCESS_KEY) and the bucket;
# later starts reuse them. SIGTERM stops the gateway, then the OSD, then the monitor.
# Configuration facts (each key was needed): shared/docs/S3-TESTING.md.
set -eu
DIR=${TEGULA_S3_DIR:-/var/lib/tegula-s3}
BUCKET=${TEGULA_S3_BUCKET:-tegula}
SIZE_GB=${TEGULA_S3_SIZE_GB:-20}
: "${AWS_ACCESS_KEY_ID:?set AWS_ACCESS_KEY_ID (deploy/compose/s3.env)}"
: "${AWS_SECRET_ACCESS_KEY:?set AWS_SECRET_ACCESS_KEY (deploy/compose/s3.env)}"
conf=$DIR/ceph.conf
pids=""

say() { echo "s3-entrypoint: $*" >&2; }

# True while the process runs (an exited child stays a zombie until waited for: gone).
running() {
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

write_config() {
    cat >"$conf" <<EOT
[global]
fsid = $1
mon host = v2:127.0.0.1:3300
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms mon client mode = crc secure
auth cluster required = none
auth service required = none
auth client required = none
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
pid file = $DIR/run/\$name.pid
log file = $DIR/log/\$name.log
log to stderr = false
crash dir = $DIR/crash
keyring = $DIR/keyring
mon cluster log file = $DIR/log/cluster.log
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon max pg per osd = 1000
mon data avail warn = 2
mon data avail crit = 1

[mon]
mon data = $DIR/mon/\$cluster-\$id
paxos propose interval = 0.01
paxos min wait = 0.001

[osd]
osd data = $DIR/osd/\$cluster-\$id
osd objectstore = bluestore
bluestore block create = true
bluestore block size = $((SIZE_GB * 1024 * 1024 * 1024))
bluestore cache autotune = false
bluestore cache size = 268435456
osd memory target = 939524096
osd fast shutdown = true

[client.rgw.a]
rgw data = $DIR/rgw
rgw frontends = beast endpoint=0.0.0.0:7480 tcp_nodelay=1
rgw thread pool size = 64
rgw enable lc threads = false
rgw enable gc threads = false
rgw enable quota threads = false
rgw dynamic resharding = false
EOT
}

# Starts a daemon in the foreground, in the background of this shell; remembers its pid.
start_daemon() {
    name=$1
    shift
    "$@" -f -c "$conf" >>"$DIR/log/$name.out" 2>&1 &
    eval "pid_$name=$!"
    pids="$pids $!"
}

stop_daemon() {
    eval "pid=\${pid_$1:-}"
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    i=0
    while running "$pid" && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -KILL "$pid" 2>/dev/null || :
    wait "$pid" 2>/dev/null || :
    eval "pid_$1="
}

stop_all() {
    stop_daemon rgw
    stop_daemon osd
    stop_daemon mon
}

wait_for() { # TENTHS CMD...
    limit=$1
    shift
    i=0
    until "$@" >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -le "$limit" ] || return 1
        sleep 0.1
    done
}

rgw_answers() { [ "$(curl -sS -o /dev/null -w '%{http_code}' http://127.0.0.1:7480/)" = 200 ]; }

s3_put_bucket() {
    curl -sS -o /dev/null -w '%{http_code}' -X PUT --aws-sigv4 "aws:amz:us-east-1:s3" \
        --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
        -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
        "http://127.0.0.1:7480/$BUCKET"
}

trap 'say "stopping"; stop_all; exit 0' TERM INT
mkdir -p "$DIR/run" "$DIR/log" "$DIR/crash" "$DIR/mon" "$DIR/osd" "$DIR/rgw"
rm -f "$DIR/run"/*

if [ ! -f "$DIR/initialised" ]; then
    say "first start: making the cluster in $DIR"
    rm -rf "$DIR/mon"/* "$DIR/osd"/* "$DIR/keyring" "$DIR/monmap"
    fsid=$(cat /proc/sys/kernel/random/uuid)
    write_config "$fsid"
    monmaptool --create --clobber --addv a "[v2:127.0.0.1:3300]" --fsid "$fsid" "$DIR/monmap" >/dev/null
    ceph-authtool --create-keyring "$DIR/keyring" -n mon. --gen-key --cap mon 'allow *' >/dev/null
    ceph-mon -c "$conf" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keyring"
    start_daemon mon ceph-mon -i a
    osd_uuid=$(cat /proc/sys/kernel/random/uuid)
    osd_id=$(ceph -c "$conf" --connect-timeout 30 osd new "$osd_uuid")
    echo "$osd_id" >"$DIR/osd-id"
    mkdir -p "$DIR/osd/ceph-$osd_id"
    ceph-osd -c "$conf" -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" >>"$DIR/log/osd-mkfs.out" 2>&1 ||
        { tail -n 20 "$DIR/log/osd-mkfs.out" >&2; say "osd mkfs failed"; stop_all; exit 1; }
else
    start_daemon mon ceph-mon -i a
fi
start_daemon osd ceph-osd -i "$(cat "$DIR/osd-id")"
start_daemon rgw radosgw -n client.rgw.a
if ! wait_for 600 rgw_answers; then
    tail -n 20 "$DIR/log/rgw.out" "$DIR/log/client.rgw.a.log" >&2 2>/dev/null || :
    say "the gateway did not answer"
    stop_all
    exit 1
fi
if ! radosgw-admin -c "$conf" -n client.rgw.a --admin-socket= user info --uid=tegula >/dev/null 2>&1; then
    radosgw-admin -c "$conf" -n client.rgw.a --admin-socket= user create --uid=tegula \
        --display-name=tegula --access-key="$AWS_ACCESS_KEY_ID" --secret-key="$AWS_SECRET_ACCESS_KEY" \
        >"$DIR/log/user-create.out" 2>&1 ||
        { cat "$DIR/log/user-create.out" >&2; say "cannot create the S3 user"; stop_all; exit 1; }
fi
code=$(s3_put_bucket)
[ "$code" = 200 ] || [ "$code" = 409 ] || { say "creating bucket $BUCKET: HTTP $code"; stop_all; exit 1; }
touch "$DIR/initialised"
say "ready: bucket $BUCKET on port 7480"

# Runs until a signal (the trap stops everything) or until any daemon exits (then the
# container exits non-zero and its restart policy starts it again).
while :; do
    for pid in $pids; do
        if ! running "$pid"; then
            say "a daemon (pid $pid) exited; stopping"
            stop_all
            exit 1
        fi
    done
    sleep 1 &
    wait $! || :
done
