# compose-lib.sh: helpers for the container tests (tests/system/test_compose_*.sh), which run
# deploy/docker-compose.yml unchanged with podman-compose 1.0.3. POSIX sh; source it after
# tests/integration/lib.sh. Then:
#
#   compose_init NAME      tg_setup NAME, podman set-up and the three images
#                          (containers.sh), a unique project name $CP_PROJECT, free ports
#                          ($CP_PORT: the load balancer's HTTP port, $CP_TLS_PORT), a config
#                          directory $CP_CFG made by deploy/compose/setup.sh (log key, S3
#                          credentials, test CA in $CP_CFG/test-ca), and a cleanup that
#                          takes everything down: containers, network, volumes
#                          (skips the test, exit 0, when podman is not installed)
#   compose_up [FILES]     podman-compose up -d with deploy/docker-compose.yml plus override
#                          files; then compose_wait_ready
#   compose_wait_ready     the checkpoint answers through the load balancer, every batcher is
#                          connected to the sequencer and every frontend is ready
#   compose_down           podman-compose down -t 10 (same -f files), network and volumes
#   compose_ids SERVICE    ids of the project's running containers of SERVICE (by label)
#   compose_metric ID NAME_REGEX   sum of the matching samples of a container's /metrics
#   compose_load ARGS      tegula load against the log through the load balancer
#   compose_fsck SCTS      tegula fsck through the load balancer with --scts; asserts all found
#
# Facts behind it: shared/docs/CONTAINERS.md.

CP_LOG=2027h1
CP_NOT_AFTER=2027-03-01T00:00:00Z
# The checkpoint origin: deploy/compose/tegula.yaml's submission_prefix without scheme and /.
CP_ORIGIN=localhost:8080/2027h1
CP_FILES=
CP_UP=0

compose_init() {
    if ! command -v podman >/dev/null 2>&1 || ! command -v podman-compose >/dev/null 2>&1; then
        echo "SKIP: podman / podman-compose not installed (tools/deps.sh system)"
        exit 0
    fi
    tg_setup "$1"
    CP_REPO=$(cd "$(dirname "$0")/../.." && pwd)
    CONTAINERS_REPO=$CP_REPO
    . "$CP_REPO/tests/system/containers.sh"
    CP_PROJECT=tg$(echo "$1" | tr -dc 'a-z0-9')$(tg_random)
    TG_ON_EXIT=compose_cleanup
    t=$(date +%s%N)
    containers_setup || fail "podman set-up (containers_setup)"
    containers_build_all || fail "building the images"
    check "images built (tegula, tegula-lb, tegula-s3) in $(( ($(date +%s%N) - t) / 1000000 )) ms"
    tg_free_ports 2
    CP_PORT=$TG_PORT_BASE
    CP_TLS_PORT=$((TG_PORT_BASE + 1))
    CP_URL=http://127.0.0.1:$CP_PORT
    CP_PREFIX=$CP_URL/$CP_LOG/
    CP_CFG=$TG_TMP/config
    mkdir -p "$CP_CFG"
    cp "$CP_REPO/deploy/compose/tegula.yaml" "$CP_CFG/"
    # Test timing: a 200 ms sequencing period keeps the tests short.
    sed -i 's/^    period_ms: .*/    period_ms: 200/' "$CP_CFG/tegula.yaml"
    CONTAINER_ENGINE=podman "$CP_REPO/deploy/compose/setup.sh" "$CP_CFG" >"$TG_TMP/setup.out" 2>&1 ||
        fail "setup.sh: $(cat "$TG_TMP/setup.out")"
    CP_PUBKEY=$CP_CFG/keys/$CP_LOG.pem
    [ -s "$CP_PUBKEY" ] && [ -s "$CP_CFG/test-ca/root.key" ] && [ -s "$CP_CFG/s3.env" ] ||
        fail "setup.sh did not make the key, the test CA and the S3 credentials"
}

compose() {
    files="-f $CP_REPO/deploy/docker-compose.yml"
    for f in $CP_FILES; do files="$files -f $f"; done
    # shellcheck disable=SC2086
    TEGULA_CONFIG_DIR=$CP_CFG TEGULA_HTTP_PORT=$CP_PORT TEGULA_HTTPS_PORT=$CP_TLS_PORT \
        podman-compose -p "$CP_PROJECT" $files "$@"
}

compose_up() {
    CP_FILES="$*"
    CP_UP=1
    t=$(date +%s%N)
    compose up -d >>"$TG_TMP/compose.log" 2>&1 || fail "podman-compose up: $(tail -n 20 "$TG_TMP/compose.log")"
    CP_UP_MS=$(( ($(date +%s%N) - t) / 1000000 ))
    compose_wait_ready
    CP_READY_MS=$(( ($(date +%s%N) - t) / 1000000 ))
}

compose_ids() {
    podman ps -q --filter "label=com.docker.compose.project=$CP_PROJECT" \
        --filter "label=com.docker.compose.service=$1"
}

compose_all_ids() {
    podman ps -aq --filter "label=com.docker.compose.project=$CP_PROJECT"
}

# compose_http ID PORT PATH: GET from inside a container (its ports are not published).
compose_http() {
    podman exec "$1" curl -fsS --max-time 5 "http://127.0.0.1:$2$3" 2>/dev/null
}

checkpoint_ok() {
    curl -fsS --max-time 5 -o /dev/null "${CP_PREFIX}checkpoint" 2>/dev/null
}

# Every running batcher says it is connected to the sequencer; every frontend is ready.
all_ready() {
    n=0
    for id in $(compose_ids batcher); do
        compose_http "$id" 9101 /readyz >/dev/null || return 1
        n=$((n + 1))
    done
    [ "$n" -gt 0 ] || return 1
    for id in $(compose_ids frontend); do
        compose_http "$id" 8080 /readyz >/dev/null || return 1
    done
}

compose_wait_ready() {
    tg_wait_until 180 "the checkpoint through the load balancer ($CP_PREFIX)" checkpoint_ok
    tg_wait_until 60 "every batcher and frontend ready" all_ready
}

# compose_metric ID REGEX: the sum of the samples of the matching metric lines.
compose_metric() {
    compose_http "$1" "$(compose_metrics_port "$1")" /metrics | grep -E "$2" |
        awk '{ s += $NF } END { printf "%d\n", s }'
}

compose_metrics_port() {
    case "$(podman inspect -f '{{index .Config.Labels "com.docker.compose.service"}}' "$1")" in
    batcher) echo 9101 ;;
    sequencer) echo 9201 ;;
    *) echo 8080 ;;
    esac
}

compose_load() {
    "$TG_TEGULA" load --url "$CP_PREFIX" --ca-dir "$CP_CFG/test-ca" --key "$CP_PUBKEY" \
        --not-after "$CP_NOT_AFTER" --threads 1 "$@"
}

# compose_fsck SCTS: the whole log through the load balancer's monitoring endpoints.
compose_fsck() {
    out=$(timeout 180 "$TG_TEGULA" fsck --url "$CP_PREFIX" --key "$CP_PUBKEY" --scts "$1" 2>&1) ||
        fail "fsck through the load balancer: $out"
    n=$(wc -l <"$1" | tr -d ' ')
    echo "$out" | grep -q "all $n SCTs found" || fail "fsck --scts: $out"
    echo "$out" | sed 's/^/   /'
}

compose_down() {
    [ "$CP_UP" = 1 ] || return 0
    t=$(date +%s%N)
    compose down -v -t 10 >>"$TG_TMP/compose.log" 2>&1 || :
    CP_DOWN_MS=$(( ($(date +%s%N) - t) / 1000000 ))
    CP_UP=0
    podman network rm -f "${CP_PROJECT}_default" >/dev/null 2>&1 || :
    for v in $(podman volume ls -q --filter "label=com.docker.compose.project=$CP_PROJECT"); do
        podman volume rm -f "$v" >/dev/null 2>&1 || :
    done
}

compose_cleanup() {
    if [ "$CP_UP" = 1 ]; then
        if [ "${status:-0}" -ne 0 ]; then
            for id in $(compose_all_ids); do
                echo "--- $(podman inspect -f '{{.Name}}' "$id" 2>/dev/null): last log lines" >&2
                podman logs --tail 15 "$id" 2>&1 | grep -v 'systemd' >&2 || :
            done
        fi
        compose_down
    fi
    # Whatever podman-compose left behind (e.g. after a failed up).
    for id in $(compose_all_ids); do podman rm -f "$id" >/dev/null 2>&1 || :; done
    podman network rm -f "${CP_PROJECT}_default" >/dev/null 2>&1 || :
    for v in $(podman volume ls -q --filter "label=com.docker.compose.project=$CP_PROJECT"); do
        podman volume rm -f "$v" >/dev/null 2>&1 || :
    done
}
