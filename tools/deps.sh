#!/bin/sh
# Installs the Debian packages tegula needs to build, test and run.
#   tools/deps.sh          the base set (build, unit and integration tests, running a log)
#   tools/deps.sh system   the base set plus what tests/system needs (a private Ceph RGW)
# Idempotent: does nothing (and prints nothing) when every package is present.
set -eu

PACKAGES="build-essential pkg-config
libuv1-dev libnng-dev libssl-dev librocksdb-dev libcurl4-openssl-dev
libprotobuf-c-dev protobuf-c-compiler libhttp-parser-dev libjansson-dev
libyaml-dev zlib1g-dev libcmocka-dev
curl openssl ca-certificates procps psmisc certspotter jq wrk"

# The S3 system tests run Ceph's RADOS Gateway on a one-node cluster (monitor + OSD);
# ceph-mgr is not needed. See tests/system/s3-server.sh.
# The container tests (tests/system/test_compose_*.sh) run deploy/ with podman as root:
# runc (the runtime containers.conf selects), netavark + aardvark-dns (compose service
# names resolve by DNS; the CNI backend has no DNS here), catatonit (compose `init: true`),
# debootstrap (the base image is made locally: there is no registry), iptables (netavark
# sets up every container network with it; without it each run fails with "netavark: No such
# file or directory", and podman only suggests it).
SYSTEM_PACKAGES="radosgw ceph-mon ceph-osd ceph-base
podman podman-compose runc netavark aardvark-dns catatonit debootstrap iptables"

case "${1:-}" in
    "") ;;
    system) PACKAGES="$PACKAGES $SYSTEM_PACKAGES" ;;
    *) echo "usage: $0 [system]" >&2; exit 2 ;;
esac

missing=""
for pkg in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $pkg"
    fi
done
# tests/system/test_k8s_manifests.sh renders deploy/k8s with `kubectl kustomize` and validates
# it with node + npm (kubernetes-models). A kubectl already installed (e.g. the `kubectl`
# package, 1.32 with kustomize v5) is used as it is; otherwise Debian's kubernetes-client
# (kubectl 1.20 with kustomize v2.0.3: deploy/k8s renders the same objects with both).
if [ "${1:-}" = system ]; then
    command -v kubectl >/dev/null 2>&1 || missing="$missing kubernetes-client"
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        missing="$missing nodejs npm"
    fi
fi
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing packages:$missing (run as root, or install them)" >&2
    exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq --error-on=any
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
