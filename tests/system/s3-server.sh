#!/bin/sh
# A private S3 server for tests: Ceph's RADOS Gateway on a one-node cluster (one monitor, one
# RAM-backed OSD, no manager), listening on 127.0.0.1 only, everything inside one directory.
#
#   s3-server.sh start [DIR]   start it (DIR: a new temporary directory when omitted), create a
#                              user and a bucket, print the env lines below; exit 1 on failure
#                              (with whatever was started stopped again)
#   s3-server.sh env DIR       print the env lines again
#   s3-server.sh stop DIR      stop every daemon by PID (rgw, then osd, then mon), remove DIR
#   s3-server.sh stop-rgw DIR / start-rgw DIR   stop or restart the gateway alone (outages)
#
# Env lines (shell syntax, for eval): TEGULA_S3_DIR, TEGULA_S3_ENDPOINT, TEGULA_S3_REGION,
# TEGULA_S3_BUCKET, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, and TEGULA_S3_URL (an s3:// base
# URL for tegula: append a key prefix to its path).
#
# Installs nothing: `tools/deps.sh system` (run by `make system`) installs the packages.
# Facts behind the configuration: shared/docs/S3-TESTING.md.
set -eu

die() {
    echo "s3-server: $*" >&2
    exit 1
}

for tool in monmaptool ceph-authtool ceph-mon ceph-osd radosgw radosgw-admin ceph curl setsid; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (run: tools/deps.sh system)"
done

REGION=us-east-1
BUCKET=tegula-test
ACCESS_KEY=TEGULATESTACCESSKEY0
SECRET_KEY=tegulatestsecretkey0000000000000000000000

# A port nobody listens on now (checked in /proc/net/tcp; the daemons bind it moments later).
free_port() {
    while :; do
        port=$(( ($(od -An -N2 -tu2 /dev/urandom) % 20000) + 30000 ))
        hex=$(printf '%04X' "$port")
        if ! awk -v h=":$hex" 'NR > 1 && substr($2, length($2) - 4) == h { found = 1 }
                              END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
        then
            echo "$port"
            return
        fi
    done
}

# Starts a daemon in the foreground of its own session and records its PID in DIR/NAME.pid.
start_daemon() {
    name=$1
    shift
    setsid "$@" -f -c "$dir/ceph.conf" >"$dir/log/$name.out" 2>&1 </dev/null &
    echo $! >"$dir/$name.pid"
}

# True while the process runs. An exited daemon is reaped by whoever adopted it (not us), so
# it may linger as a zombie for a while: that counts as gone.
running() {
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# Stops one daemon by its recorded PID: SIGTERM, then SIGKILL after 10 s.
stop_daemon() {
    name=$1
    [ -f "$dir/$name.pid" ] || return 0
    pid=$(cat "$dir/$name.pid")
    rm -f "$dir/$name.pid"
    # Only a process started with this directory's ceph.conf: never a reused PID.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-c $dir/ceph.conf" || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    i=0
    while running "$pid"; do
        i=$((i + 1))
        if [ "$i" -gt 200 ]; then
            echo "s3-server: $name (pid $pid) ignored SIGTERM; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.05
    done
}

# Waits until a command succeeds (at most $1 tenths of a second).
wait_for() {
    limit=$1
    shift
    i=0
    until "$@" >/dev/null 2>&1; do
        i=$((i + 1))
        [ "$i" -le "$limit" ] || return 1
        sleep 0.1
    done
}

ceph_cli() {
    ceph -c "$dir/ceph.conf" --connect-timeout 10 "$@"
}

# A signed S3 request without a body (curl signs with SigV4; RGW also wants the payload hash).
s3_request() {
    method=$1
    path=$2
    curl -sS -o /dev/null -w '%{http_code}' -X "$method" \
        --aws-sigv4 "aws:amz:$REGION:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
        -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
        "http://127.0.0.1:$(cat "$dir/rgw.port")$path"
}

rgw_answers() {
    code=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(cat "$dir/rgw.port")/")
    [ "$code" = 200 ]
}

print_env() {
    port=$(cat "$dir/rgw.port")
    endpoint="http://127.0.0.1:$port"
    cat <<EOT
TEGULA_S3_DIR='$dir'
TEGULA_S3_ENDPOINT='$endpoint'
TEGULA_S3_REGION='$REGION'
TEGULA_S3_BUCKET='$BUCKET'
AWS_ACCESS_KEY_ID='$ACCESS_KEY'
AWS_SECRET_ACCESS_KEY='$SECRET_KEY'
TEGULA_S3_URL='s3://$BUCKET?endpoint=$endpoint&region=$REGION&path_style=true'
EOT
}

write_config() {
    mon_port=$1
    rgw_port=$2
    cat >"$dir/ceph.conf" <<EOT
[global]
fsid = $(cat /proc/sys/kernel/random/uuid)
mon host = v2:127.0.0.1:$mon_port
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms mon client mode = crc secure
auth cluster required = none
auth service required = none
auth client required = none
run dir = $dir/run
admin socket = $dir/run/\$name.asok
pid file = $dir/run/\$name.pid
log file = $dir/log/\$name.log
crash dir = $dir/crash
keyring = $dir/keyring
mon cluster log file = $dir/log/cluster.log
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
mon data = $dir/mon/\$cluster-\$id
paxos propose interval = 0.01
paxos min wait = 0.001

[osd]
osd data = $dir/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = 4294967296
osd fast shutdown = true

[client.rgw.a]
rgw data = $dir/rgw
# tcp_nodelay: without it a GET on a kept-alive connection waits ~40 ms (the gateway's Nagle
# holds the body back until the client's delayed ACK of the headers).
rgw frontends = beast endpoint=127.0.0.1:$rgw_port tcp_nodelay=1
rgw thread pool size = 64
# Background housekeeping a test server does not need; its threads sleep in 5 s steps and
# would hold up shutdown.
rgw enable lc threads = false
rgw enable gc threads = false
rgw enable quota threads = false
rgw dynamic resharding = false
EOT
}

start_rgw() {
    start_daemon rgw radosgw -n client.rgw.a
    if ! wait_for 300 rgw_answers; then
        tail -n 20 "$dir/log/rgw.out" "$dir/log/client.rgw.a.log" >&2 2>/dev/null || true
        return 1
    fi
}

stop_all() {
    stop_daemon rgw
    stop_daemon osd
    stop_daemon mon
}

start() {
    if [ $# -ge 1 ]; then
        dir=$1
        mkdir -p "$dir"
    else
        dir=$(mktemp -d "${TMPDIR:-/tmp}/tegula-s3.XXXXXX")
    fi
    dir=$(cd "$dir" && pwd)
    [ ! -f "$dir/mon.pid" ] || die "$dir already holds a running server"
    mkdir -p "$dir/run" "$dir/log" "$dir/crash" "$dir/mon" "$dir/osd" "$dir/rgw"
    trap 'stop_all' EXIT

    mon_port=$(free_port)
    rgw_port=$(free_port)
    while [ "$rgw_port" = "$mon_port" ]; do rgw_port=$(free_port); done
    echo "$rgw_port" >"$dir/rgw.port"
    write_config "$mon_port" "$rgw_port"
    fsid=$(sed -n 's/^fsid = //p' "$dir/ceph.conf")

    monmaptool --create --clobber --addv a "[v2:127.0.0.1:$mon_port]" --fsid "$fsid" \
        "$dir/monmap" >/dev/null
    ceph-authtool --create-keyring "$dir/keyring" -n mon. --gen-key --cap mon 'allow *' \
        >/dev/null
    ceph-mon -c "$dir/ceph.conf" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/keyring" \
        >"$dir/log/mon-mkfs.out" 2>&1 || { cat "$dir/log/mon-mkfs.out" >&2; die "mon mkfs failed"; }
    start_daemon mon ceph-mon -i a

    osd_uuid=$(cat /proc/sys/kernel/random/uuid)
    osd_id=$(ceph_cli osd new "$osd_uuid" 2>"$dir/log/osd-new.out") ||
        { cat "$dir/log/osd-new.out" >&2; die "ceph osd new failed (is the monitor up?)"; }
    mkdir -p "$dir/osd/ceph-$osd_id"
    ceph-osd -c "$dir/ceph.conf" -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" \
        >"$dir/log/osd-mkfs.out" 2>&1 || { cat "$dir/log/osd-mkfs.out" >&2; die "osd mkfs failed"; }
    start_daemon osd ceph-osd -i "$osd_id"

    start_rgw || die "radosgw did not answer on 127.0.0.1:$rgw_port"
    radosgw-admin -c "$dir/ceph.conf" -n client.rgw.a --admin-socket= user create --uid=tegula-test \
        --display-name="tegula test" --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" \
        >"$dir/log/user-create.out" 2>&1 ||
        { cat "$dir/log/user-create.out" >&2; die "radosgw-admin user create failed"; }
    code=$(s3_request PUT "/$BUCKET")
    [ "$code" = 200 ] || die "creating bucket $BUCKET: HTTP $code"
    trap - EXIT
    print_env
}

[ $# -ge 1 ] || die "usage: $0 start [DIR] | env DIR | stop DIR | stop-rgw DIR | start-rgw DIR"
command=$1
shift
case "$command" in
    start)
        start "$@"
        ;;
    env)
        [ $# -eq 1 ] || die "usage: $0 env DIR"
        dir=$1
        [ -f "$dir/rgw.port" ] || die "$dir holds no server"
        print_env
        ;;
    stop)
        [ $# -eq 1 ] || die "usage: $0 stop DIR"
        dir=$1
        [ -f "$dir/ceph.conf" ] || die "$dir holds no server"
        stop_all
        rm -rf "$dir"
        ;;
    stop-rgw)
        dir=$1
        stop_daemon rgw
        ;;
    start-rgw)
        dir=$1
        [ ! -f "$dir/rgw.pid" ] || die "radosgw is already running"
        start_rgw || die "radosgw did not come back"
        ;;
    *)
        die "unknown command $command"
        ;;
esac
