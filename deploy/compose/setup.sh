#!/bin/sh
# setup.sh [DIR]: prepares a tegula configuration directory for deploy/docker-compose.yml
# (DIR defaults to this script's directory, deploy/compose). Idempotent: it creates only what
# is missing and never replaces a key.
#
#   keys/<log>.key      a new P-256 log key (`tegula keygen`) for every `key:` in
#                       DIR/tegula.yaml, readable only by the image's user (uid 10001);
#                       keys/<log>.pem its public key, keys/<log>.info the log ID
#   s3.env              random S3 credentials shared by the RGW and the tegula services
#   roots.pem           when missing: a test CA (DIR/test-ca, `tegula mkchain --init`) and its
#                       root. Replace roots.pem with the roots your log accepts.
#   tls/                create it; put tls.crt and tls.key there to serve HTTPS on 8443
#
# Runs `tegula` from the image (TEGULA_IMAGE, default localhost/tegula:latest: build it first,
# e.g. `docker compose -f deploy/docker-compose.yml build`) with CONTAINER_ENGINE (default:
# docker if installed, else podman), as root inside the container so it can hand the key to
# the image's user. Never commit what it writes (.gitignore lists it).
set -eu
dir=${1:-$(cd "$(dirname "$0")" && pwd)}
dir=$(cd "$dir" && pwd)
image=${TEGULA_IMAGE:-localhost/tegula:latest}
engine=${CONTAINER_ENGINE:-}
if [ -z "$engine" ]; then
    if command -v docker >/dev/null 2>&1; then engine=docker; else engine=podman; fi
fi
[ -f "$dir/tegula.yaml" ] || { echo "setup: $dir/tegula.yaml is missing" >&2; exit 1; }
umask 022

# tegula ARGS: the CLI in the image, DIR mounted at /cfg.
tegula() {
    "$engine" run --rm --user 0 --entrypoint tegula -v "$dir:/cfg" "$image" "$@"
}
in_image() {
    "$engine" run --rm --user 0 --entrypoint sh -v "$dir:/cfg" "$image" -c "$1"
}

mkdir -p "$dir/keys" "$dir/tls"
for key in $(sed -n 's/^[[:space:]]*key:[[:space:]]*\([^[:space:]#]*\).*/\1/p' "$dir/tegula.yaml"); do
    case "$key" in
    /*) echo "setup: key $key: give keys relative to the config directory" >&2; exit 1 ;;
    esac
    [ ! -e "$dir/$key" ] || continue
    mkdir -p "$(dirname "$dir/$key")"
    base=${key%.key}
    in_image "tegula keygen -o '/cfg/$key' >'/cfg/$base.info' &&
              sed -n '/BEGIN PUBLIC KEY/,/END PUBLIC KEY/p' '/cfg/$base.info' >'/cfg/$base.pem' &&
              chown 10001:10001 '/cfg/$key' && chmod 0600 '/cfg/$key' &&
              chmod 0644 '/cfg/$base.info' '/cfg/$base.pem'"
    echo "setup: new log key $dir/$key (public key $dir/$base.pem; log ID in $dir/$base.info)"
done

if [ ! -e "$dir/s3.env" ]; then
    random() { tr -dc "$1" </dev/urandom | head -c "$2"; }
    {
        echo "# S3 credentials of the compose deployment's Ceph RGW (made by setup.sh)."
        echo "AWS_ACCESS_KEY_ID=$(random 'A-Z0-9' 20)"
        echo "AWS_SECRET_ACCESS_KEY=$(random 'A-Za-z0-9' 40)"
    } >"$dir/s3.env.new"
    chmod 0644 "$dir/s3.env.new"
    mv "$dir/s3.env.new" "$dir/s3.env"
    echo "setup: new S3 credentials in $dir/s3.env"
fi

if [ ! -e "$dir/roots.pem" ]; then
    [ -d "$dir/test-ca" ] || tegula mkchain --ca-dir /cfg/test-ca --init >/dev/null
    cp "$dir/test-ca/root.pem" "$dir/roots.pem"
    echo "setup: roots.pem is a TEST CA's root ($dir/test-ca): replace it with the roots your log accepts"
fi
