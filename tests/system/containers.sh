# containers.sh: podman set-up shared by the container tests (sourceable POSIX sh).
#
#   containers_setup         idempotent: writes $TEGULA_CONTAINERS_DIR/containers.conf and
#                            exports CONTAINERS_CONF; makes the base image
#                            docker.io/library/debian:bookworm-slim (debootstrap + podman
#                            import) when it is missing. Returns 1 (with a reason on stderr)
#                            when podman cannot be used here.
#   containers_image_build   builds deploy/Dockerfile as localhost/tegula:latest (podman's
#                            layer cache makes a rebuild of unchanged sources take seconds)
#   containers_lb_build      builds deploy/nginx/Dockerfile as localhost/tegula-lb:latest
#   containers_s3_build      builds deploy/rgw/Dockerfile as localhost/tegula-s3:latest
#   containers_build_all     the three images
#
# There is no registry here: `FROM debian:bookworm-slim` resolves to the local image of that
# exact name, which containers_setup makes from Debian's own mirror (the one apt uses on this
# host, read from its sources at run time). Builds never use --pull.
# Facts behind this: shared/docs/CONTAINERS.md.

TEGULA_CONTAINERS_DIR=${TEGULA_CONTAINERS_DIR:-/var/tmp/tegula-containers}
CONTAINERS_BASE_IMAGE=docker.io/library/debian:bookworm-slim
# The repository holding the sourcing script (override with CONTAINERS_REPO).
CONTAINERS_REPO=${CONTAINERS_REPO:-$(cd "$(dirname "$0")" && git rev-parse --show-toplevel 2>/dev/null)}
CONTAINERS_REPO=${CONTAINERS_REPO:-$(cd "$(dirname "$0")/../.." && pwd)}

containers_log() {
    echo "containers: $*" >&2
}

# The first deb822 or one-line source of the host's apt whose suite is the release itself
# (bookworm), not -updates or -security: debootstrap's mirror.
containers_mirror() {
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk '
            /^[[:space:]]*$/ { if (uri != "" && main) { print uri; exit } uri = ""; main = 0; next }
            /^URIs:/ { uri = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") main = 1 }
            END { if (uri != "" && main) print uri }
        ' "$f" | head -n 1
    done | head -n 1 | grep . && return 0
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk '$1 == "deb" { u = ""; for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { u = $i; s = $(i + 1); break }
                           if (s == "bookworm") { print u; exit } }' "$f"
    done | head -n 1 | grep .
}

containers_setup() {
    for tool in podman podman-compose debootstrap; do
        command -v "$tool" >/dev/null 2>&1 ||
            { containers_log "$tool not found (run: tools/deps.sh system)"; return 1; }
    done
    mkdir -p "$TEGULA_CONTAINERS_DIR" || return 1
    # Without default_ulimits=[] every run fails (crun/runc cannot raise RLIMIT_NOFILE here);
    # netavark + aardvark-dns give compose services DNS names (CNI has no DNS plugin here).
    conf=$TEGULA_CONTAINERS_DIR/containers.conf
    cat >"$conf.new" <<'EOF'
[containers]
default_ulimits=[]
[engine]
runtime="runc"
cgroup_manager="cgroupfs"
events_logger="file"
[network]
network_backend="netavark"
EOF
    if cmp -s "$conf.new" "$conf"; then rm -f "$conf.new"; else mv "$conf.new" "$conf"; fi
    export CONTAINERS_CONF="$conf"
    podman image exists "$CONTAINERS_BASE_IMAGE" && return 0
    containers_base_image
}

# debootstrap --variant=minbase from the host's mirror, slimmed, imported under the name
# `FROM debian:bookworm-slim` resolves to. ~25 s.
containers_base_image() {
    mirror=$(containers_mirror) ||
        { containers_log "no bookworm source in the host's apt configuration"; return 1; }
    rootfs=$TEGULA_CONTAINERS_DIR/rootfs.$$
    rm -rf "$rootfs"
    containers_log "making $CONTAINERS_BASE_IMAGE with debootstrap from $mirror"
    if ! debootstrap --variant=minbase bookworm "$rootfs" "$mirror" \
        >"$TEGULA_CONTAINERS_DIR/debootstrap.log" 2>&1; then
        tail -n 20 "$TEGULA_CONTAINERS_DIR/debootstrap.log" >&2
        rm -rf "$rootfs"
        containers_log "debootstrap failed"
        return 1
    fi
    # apt inside builds uses exactly the host's sources (and their keyrings, present in any
    # Debian root).
    rm -f "$rootfs/etc/apt/sources.list"
    mkdir -p "$rootfs/etc/apt/sources.list.d"
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] && cp "$f" "$rootfs$f"
    done
    # What -slim images leave out: documentation, manual pages, translations.
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
    cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
APT::Install-Recommends "false";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb || true"; };
EOF
    find "$rootfs/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null
    find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null
    rm -rf "$rootfs/usr/share/man"/* "$rootfs/usr/share/info"/* "$rootfs/var/cache/apt"/*.bin \
        "$rootfs/var/cache/apt/archives"/*.deb "$rootfs/var/lib/apt/lists"/* "$rootfs/var/log"/*.log
    find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias \
        -exec rm -rf {} + 2>/dev/null
    if ! tar --numeric-owner -C "$rootfs" -c . | podman import --change 'CMD ["bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - \
        "$CONTAINERS_BASE_IMAGE" >"$TEGULA_CONTAINERS_DIR/import.log" 2>&1; then
        rm -rf "$rootfs"
        containers_log "podman import failed"
        return 1
    fi
    rm -rf "$rootfs"
}

# containers_build NAME CONTEXT DOCKERFILE: podman build with the layer cache, output in
# $TEGULA_CONTAINERS_DIR/build-NAME.log (its tail on failure).
containers_build() {
    log=$TEGULA_CONTAINERS_DIR/build-$1.log
    if ! podman build --format docker --layers -t "localhost/$1:latest" -f "$3" "$2" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        containers_log "building localhost/$1:latest failed (log: $log)"
        return 1
    fi
}

containers_image_build() {
    containers_build tegula "$CONTAINERS_REPO" "$CONTAINERS_REPO/deploy/Dockerfile"
}

containers_lb_build() {
    containers_build tegula-lb "$CONTAINERS_REPO/deploy/nginx" "$CONTAINERS_REPO/deploy/nginx/Dockerfile"
}

containers_s3_build() {
    containers_build tegula-s3 "$CONTAINERS_REPO/deploy/rgw" "$CONTAINERS_REPO/deploy/rgw/Dockerfile"
}

containers_build_all() {
    containers_image_build && containers_lb_build && containers_s3_build
}
