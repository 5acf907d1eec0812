#!/bin/sh
# The Kubernetes manifests (deploy/k8s), offline, then run by podman:
#   1. `kubectl kustomize` renders the base and the example overlay (in a copy of deploy/k8s,
#      with throw-away keys, roots and S3 credentials where the operator's files go); no
#      tracked file holds a private key and the base's Secrets hold nothing;
#   2. every rendered object validates against the Kubernetes JSON schemas (npm
#      kubernetes-models, installed once into a cache under $TEGULA_TMP); an unknown kind
#      fails, and so does a deliberately broken object (the validator is not vacuous);
#   3. tegula's invariants (k8s_manifests.mjs check): one single-replica OrderedReady
#      RollingUpdate sequencer StatefulSet per log at the address the config gives it,
#      never --create in the main container; batchers with --id $(POD_NAME), a headless
#      Service that batchers.dns names, claims; frontend HPA (autoscaling/v2, CPU), PDBs,
#      Ingress paths per log; non-root, read-only root, no capabilities, seccomp, probes,
#      limits, scrape annotations, config read-only, writable paths on volumes everywhere;
#      a manifest with 2 sequencer replicas fails the check;
#   4. with TEGULA_KUBECTL_ALT=/path/to/another/kubectl: that kubectl (e.g. Debian's 1.20 with
#      kustomize v2.0.3) renders the same objects;
#   5. `podman kube play` of a test overlay of the base (the image built from deploy/Dockerfile,
#      storage and lock in the test RGW bucket, 127.0.0.1 addresses): the create-log init
#      container creates the log, sequencer-0, batcher-0 and frontend-0 run, their /healthz
#      and /readyz answer, a chain submitted to the frontend gets an SCT that verifies and is
#      in the published log; `podman kube down` removes the pods.
set -eu
: "${TEGULA_BUILD:?run through tests/system/run.sh}"
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/../integration/lib.sh"
tg_setup k8s
t0=$(date +%s%N)
ms() { echo "$(( ($(date +%s%N) - $1) / 1000000 )) ms"; }

for tool in kubectl node npm; do
    command -v "$tool" >/dev/null || fail "this test needs '$tool' (tools/deps.sh system installs it)"
done
modules_dir=${TEGULA_K8S_NODE_DIR:-${TEGULA_TMP:-$TG_BUILD/tmp}/k8s-node}
script=$here/k8s_manifests.mjs
manifests() {
    cmd=$1
    shift
    node "$script" "$cmd" "$modules_dir/node_modules" "$@"
}

# ---- npm packages (once; later runs reuse the cache)
started=$(date +%s%N)
if ! [ -f "$modules_dir/node_modules/kubernetes-models/package.json" ] ||
    ! grep -q '"version": "5.1.0"' "$modules_dir/node_modules/kubernetes-models/package.json" ||
    ! [ -f "$modules_dir/node_modules/yaml/dist/index.js" ]; then
    mkdir -p "$modules_dir"
    cat >"$modules_dir/package.json" <<'EOF'
{
  "name": "tegula-k8s-test-tools",
  "private": true,
  "description": "Offline Kubernetes schema validation for tests/system/test_k8s_manifests.sh",
  "dependencies": { "kubernetes-models": "5.1.0", "yaml": "2.9.1" }
}
EOF
    (cd "$modules_dir" && npm install --no-audit --no-fund --loglevel=error >"$TG_TMP/npm.log" 2>&1) ||
        fail "npm install failed: $(tail -n 20 "$TG_TMP/npm.log")"
    check "npm kubernetes-models 5.1.0 and yaml installed into $modules_dir in $(ms "$started")"
fi

# ---- 1. render
cp -r "$repo/deploy/k8s" "$TG_TMP/k8s"
rm -rf "$TG_TMP/k8s/overlays/example/keys" "$TG_TMP/k8s/overlays/example/s3.env" \
    "$TG_TMP/k8s/overlays/example/roots.pem"
if (cd "$repo" && git ls-files deploy/k8s | grep -q .); then
    found=$(cd "$repo" && git ls-files -z deploy/k8s | xargs -0 grep -l 'PRIVATE KEY' || :)
    [ -z "$found" ] || fail "a tracked file under deploy/k8s holds a private key: $found"
fi
found=$(grep -rl 'PRIVATE KEY' "$TG_TMP/k8s" || :)
[ -z "$found" ] || fail "a file under deploy/k8s holds a private key: $found"
started=$(date +%s%N)
kubectl kustomize "$TG_TMP/k8s/base" >"$TG_TMP/base.yaml" 2>"$TG_TMP/kustomize.err" ||
    fail "kubectl kustomize base: $(cat "$TG_TMP/kustomize.err")"
example=$TG_TMP/k8s/overlays/example
mkdir -p "$example/keys"
"$TG_TEGULA" keygen -o "$example/keys/2026h1.key" >/dev/null 2>&1 || fail "keygen"
"$TG_TEGULA" keygen -o "$example/keys/2026h2.key" >/dev/null 2>&1 || fail "keygen"
"$TG_TEGULA" mkchain --ca-dir "$TG_TMP/ca" --init >/dev/null 2>&1 || fail "mkchain --init"
cp "$TG_TMP/ca/root.pem" "$example/roots.pem"
printf 'AWS_ACCESS_KEY_ID=EXAMPLEKEYID\nAWS_SECRET_ACCESS_KEY=examplesecret\n' >"$example/s3.env"
kubectl kustomize "$example" >"$TG_TMP/example.yaml" 2>"$TG_TMP/kustomize.err" ||
    fail "kubectl kustomize overlays/example: $(cat "$TG_TMP/kustomize.err")"
kversion=$(kubectl version --client 2>/dev/null | sed -n 's/.*Kustomize Version: \(v[0-9.]*\).*/\1/p;s/.*GitVersion:"\(v[0-9.]*\)".*/kubectl \1/p' | head -n 1)
check "kubectl kustomize (${kversion:-?}) renders the base ($(grep -c '^kind:' "$TG_TMP/base.yaml") objects) and the example overlay ($(grep -c '^kind:' "$TG_TMP/example.yaml") objects) in $(ms "$started")"
# The strict config loader accepts both configs (a batcher loads it, then runs until the
# SIGTERM from timeout: exit 0; a config error is exit 2 at once). Local paths go to $TG_TMP.
for cfg in base/tegula.yaml overlays/example/tegula.yaml; do
    sed "s#/var/lib/tegula/#$TG_TMP/var/#" "$TG_TMP/k8s/$cfg" >"$TG_TMP/cfg.yaml"
    set +e
    timeout --preserve-status -s TERM 2 "$TG_BUILD/tegula-batcher" -c "$TG_TMP/cfg.yaml" --listen tcp://127.0.0.1:0 \
        --id config-check >"$TG_TMP/cfg.out" 2>&1
    status=$?
    set -e
    [ $status -eq 0 ] || fail "deploy/k8s/$cfg does not load (exit $status): $(cat "$TG_TMP/cfg.out")"
done
check "the base's and the example's tegula.yaml load"
out=$(manifests secrets-empty "$TG_TMP/base.yaml" 2>&1) || fail "$out"
check "no private key in deploy/k8s; the base's Secrets are empty placeholders"

# ---- 2. schemas
started=$(date +%s%N)
for f in base example; do
    out=$(manifests validate "$TG_TMP/$f.yaml" 2>&1) || fail "schema validation of $f: $out"
done
{
    cat "$TG_TMP/base.yaml"
    printf -- '---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: broken}\nspec: {replicas: two, selector: {}, template: {}}\n'
    printf -- '---\napiVersion: v1\nkind: Frobnicator\nmetadata: {name: unknown}\n'
} >"$TG_TMP/broken.yaml"
if out=$(manifests validate "$TG_TMP/broken.yaml" 2>&1); then
    fail "a broken object and an unknown kind passed validation: $out"
fi
echo "$out" | grep -q 'Deployment/broken.*replicas must be integer' || fail "validation: $out"
echo "$out" | grep -q 'unknown kind Frobnicator' || fail "validation: $out"
check "every object of both renders is valid (kubernetes-models 5.1.0); a wrong type and an unknown kind are caught ($(ms "$started"))"

# ---- 3. invariants
for f in base example; do
    out=$(manifests check "$TG_TMP/$f.yaml" 2>&1) || fail "invariants of $f: $out"
    check "$f: $out"
done
sed 's/^  replicas: 1$/  replicas: 2/' "$TG_TMP/base.yaml" >"$TG_TMP/two.yaml"
if out=$(manifests check "$TG_TMP/two.yaml" 2>&1); then fail "2 sequencer replicas passed the check"; fi
echo "$out" | grep -q 'StatefulSet/sequencer: replicas 2, must be 1' || fail "check: $out"
check "a second sequencer replica is caught"

# ---- 4. another kubectl (optional)
if [ -n "${TEGULA_KUBECTL_ALT:-}" ]; then
    for f in base example; do
        dir=$TG_TMP/k8s/base
        [ $f = base ] || dir=$example
        "$TEGULA_KUBECTL_ALT" kustomize "$dir" >"$TG_TMP/$f.alt.yaml" 2>"$TG_TMP/kustomize.err" ||
            fail "$TEGULA_KUBECTL_ALT kustomize $f: $(cat "$TG_TMP/kustomize.err")"
        out=$(manifests same "$TG_TMP/$f.yaml" "$TG_TMP/$f.alt.yaml" 2>&1) ||
            fail "$f renders differently with $TEGULA_KUBECTL_ALT: $out"
    done
    check "$TEGULA_KUBECTL_ALT renders the same objects"
fi

# ---- 5. podman kube play
if [ ! -f "$here/containers.sh" ]; then
    echo "SKIP podman kube play: tests/system/containers.sh is missing"
    echo "test_k8s_manifests: $TG_CHECKS checks passed in $(ms "$t0")"
    exit 0
fi
: "${TEGULA_S3_URL:?the podman part needs the S3 server of tests/system/run.sh}"
. "$here/containers.sh"
started=$(date +%s%N)
containers_setup || fail "podman cannot be used here"
containers_image_build || fail "building the image from deploy/Dockerfile"
check "image localhost/tegula:latest built from deploy/Dockerfile in $(ms "$started")"

tg_free_ports 6
fport=$TG_PORT_BASE
cat >"$TG_TMP/ports.json" <<EOF
{"9100": $((TG_PORT_BASE + 1)), "9101": $((TG_PORT_BASE + 2)), "9200": $((TG_PORT_BASE + 3)), "9201": $((TG_PORT_BASE + 4))}
EOF
bport=$((TG_PORT_BASE + 1)) bhttp=$((TG_PORT_BASE + 2)) sport=$((TG_PORT_BASE + 3)) shttp=$((TG_PORT_BASE + 4))
log=2026h1
prefix_key=k8s-$(tg_random)$(tg_random)
s3url() { echo "$TEGULA_S3_URL" | sed "s#^s3://\([^/?]*\)?#s3://\1/$prefix_key/$1?#"; }
test_overlay=$TG_TMP/k8s/overlays/test
mkdir -p "$test_overlay/keys"
"$TG_TEGULA" keygen -o "$test_overlay/keys/$log.key" >/dev/null 2>&1 || fail "keygen"
openssl pkey -in "$test_overlay/keys/$log.key" -pubout -out "$TG_TMP/$log.pem" 2>/dev/null || fail "pubkey"
cp "$TG_TMP/ca/root.pem" "$test_overlay/roots.pem"
printf 'AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" \
    >"$test_overlay/s3.env"
cat >"$test_overlay/tegula.yaml" <<EOF
logs:
  - name: $log
    submission_prefix: http://127.0.0.1:$fport/$log/
    key: /etc/tegula-keys/$log.key
    roots: /etc/tegula/roots.pem
    not_after_start: $(tg_date -365)
    not_after_limit: $(tg_date 730)
    storage: $(s3url $log)
    lock: $(s3url $log-lock/checkpoint)
    sequencer: tcp://127.0.0.1:$sport
    period_ms: 200
frontend:
  listen: 127.0.0.1:$fport
  workers: 1
  index_dir: /var/lib/tegula/frontend
batchers:
  addresses: [tcp://127.0.0.1:$bport]
  db: /var/lib/tegula/batcher
sequencer:
  data_dir: /var/lib/tegula/sequencer
EOF
cat >"$test_overlay/kustomization.yaml" <<'EOF'
namespace: tegula
bases:
  - ../../base
images:
  - name: tegula
    newName: localhost/tegula
    newTag: latest
configMapGenerator:
  - name: tegula-config
    behavior: replace
    files: [tegula.yaml, roots.pem]
secretGenerator:
  - name: tegula-log-keys
    behavior: replace
    files: [keys/2026h1.key]
  - name: tegula-s3
    behavior: replace
    env: s3.env
generatorOptions:
  disableNameSuffixHash: true
EOF
kubectl kustomize "$test_overlay" >"$TG_TMP/test.yaml" 2>"$TG_TMP/kustomize.err" ||
    fail "kubectl kustomize overlays/test: $(cat "$TG_TMP/kustomize.err")"
out=$(manifests validate "$TG_TMP/test.yaml" 2>&1) || fail "schema validation of the test overlay: $out"
pod_prefix=tgk8s$(tg_random)-
pods=$(K8S_POD_PREFIX=$pod_prefix manifests podman "$TG_TMP/test.yaml" "$TG_TMP/play.yaml" \
    "$TG_TMP/ports.json" 2>&1) || fail "podman variant: $pods"
# kube down leaves the volumes of ConfigMaps (and of emptyDirs) behind: every one this test
# made is named after its pod prefix.
k8s_down() {
    podman kube down "$TG_TMP/play.yaml" >"$TG_TMP/down.out" 2>&1 || return 1
    podman volume ls --format '{{.Name}}' | grep "^$pod_prefix" | while read -r v; do
        podman volume rm "$v" >/dev/null 2>&1 || return 1
    done
}
TG_ON_EXIT='k8s_down || :'
started=$(date +%s%N)
podman kube play "$TG_TMP/play.yaml" >"$TG_TMP/play.out" 2>&1 ||
    fail "podman kube play: $(tail -n 20 "$TG_TMP/play.out")"
pod_logs() {
    for p in $pods; do
        for c in $(podman pod inspect "$p" --format '{{range .Containers}}{{.Name}} {{end}}' 2>/dev/null); do
            echo "--- $c"
            podman logs --tail 15 "$c" 2>&1
        done
    done
}
answers() { [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$1$2")" = 200 ]; }
for endpoint in "$shttp/healthz" "$bhttp/healthz" "$bhttp/readyz" "$fport/healthz" "$fport/readyz"; do
    i=0
    until answers "${endpoint%%/*}" "/${endpoint#*/}"; do
        i=$((i + 1))
        if [ $i -gt 600 ]; then
            pod_logs >&2
            fail "http://127.0.0.1:$endpoint does not answer 200 after 60 s"
        fi
        sleep 0.1
    done
done
for p in $pods; do
    state=$(podman pod inspect "$p" --format '{{.State}}' 2>/dev/null) || fail "no pod $p"
    [ "$state" = Running ] || { pod_logs >&2; fail "pod $p is $state"; }
done
check "podman kube play: pods $(echo $pods) Running; sequencer /healthz, batcher /healthz + /readyz, frontend /healthz + /readyz answer 200 ($(ms "$started"))"
podman logs "${pod_prefix}sequencer-0-create-log" 2>&1 | grep -q 'created the log' ||
    { pod_logs >&2; fail "the create-log init container did not create the log"; }
check "the create-log init container created log $log in the bucket"
podman logs "${pod_prefix}batcher-0-batcher" 2>&1 | grep -q "msg=\"batcher started\" .* id=${pod_prefix}batcher-0 " ||
    { pod_logs >&2; fail "the batcher does not run with its pod name as --id"; }
check "batcher-0 runs with --id \$(POD_NAME) = its pod name"

"$TG_TEGULA" mkchain --ca-dir "$TG_TMP/ca" --leaf --out "$TG_TMP/chain.pem" >/dev/null 2>&1 || fail "mkchain --leaf"
out=$(timeout 60 "$TG_TEGULA" submit --url "http://127.0.0.1:$fport/$log/" --key "$TG_TMP/$log.pem" \
    --log "http://127.0.0.1:$fport/$log/" "$TG_TMP/chain.pem" 2>&1) || { pod_logs >&2; fail "submit: $out"; }
echo "$out" | grep -q 'SCT verified' || fail "submit: $out"
check "a chain submitted to frontend-0 got an SCT that verifies and is in the published log"

started=$(date +%s%N)
k8s_down || fail "podman kube down: $(cat "$TG_TMP/down.out")"
TG_ON_EXIT=
for p in $pods; do
    ! podman pod exists "$p" || fail "pod $p is left after podman kube down"
done
left=$(podman volume ls --format '{{.Name}}' | grep "^$pod_prefix" || :)
[ -z "$left" ] || fail "volumes left: $left"
check "podman kube down removed the pods, and their volumes are removed ($(ms "$started"))"
echo "test_k8s_manifests: $TG_CHECKS checks passed in $(ms "$t0")"
