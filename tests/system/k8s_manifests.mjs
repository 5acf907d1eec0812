// Offline checks of tegula's rendered Kubernetes manifests (test_k8s_manifests.sh), for
// Node 18 and later. Every command reads `kubectl kustomize` output (multi-document YAML).
//
//   node k8s_manifests.mjs validate MODULES FILE   every object against the Kubernetes JSON
//                                                  schemas of npm kubernetes-models (installed
//                                                  in MODULES, a node_modules directory);
//                                                  an unknown apiVersion/kind is an error
//   node k8s_manifests.mjs check MODULES FILE      tegula's deployment invariants
//   node k8s_manifests.mjs secrets-empty MODULES FILE   no Secret holds any data
//   node k8s_manifests.mjs same MODULES A B        A and B hold the same objects (order,
//                                                  empty maps and YAML layout aside)
//   node k8s_manifests.mjs podman MODULES FILE OUT PORTS
//                                                  the variant `podman kube play` can run on
//                                                  one host (see podmanVariant); prints the
//                                                  pod names
//
// Prints one line per finding and exits 1 when there is any; 0 and a summary otherwise.
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [command, modules, ...files] = process.argv.slice(2);
if (!command || !modules || files.length < 1) {
    console.error("usage: node k8s_manifests.mjs validate|check|same|podman MODULES FILE...");
    process.exit(2);
}

async function importModule(...parts) {
    return import(pathToFileURL(join(modules, ...parts)).href);
}

const YAML = await importModule("yaml", "dist", "index.js");

// kustomize v5 folds long base64 values of Secrets over several lines; the API server's
// decoder (Go's base64) skips the newlines, the schemas' "byte" format does not: unfold them.
function readObjects(file) {
    const docs = YAML.parseAllDocuments(readFileSync(file, "utf8"));
    const objects = [];
    for (const doc of docs) {
        if (doc.errors.length > 0)
            throw new Error(`${file}: ${doc.errors[0].message}`);
        const o = doc.toJS();
        if (o === null || o === undefined)
            continue;
        if (o.kind === "Secret" && o.data)
            for (const k of Object.keys(o.data))
                o.data[k] = String(o.data[k]).replace(/[\r\n]/g, "");
        objects.push(o);
    }
    return objects;
}

const problems = [];
function problem(msg) {
    problems.push(msg);
    console.log(`FAIL ${msg}`);
}
function finish(summary) {
    if (problems.length > 0) {
        console.log(`${problems.length} problem(s)`);
        process.exit(1);
    }
    console.log(summary);
}
const id = (o) => `${o.kind}/${o.metadata && o.metadata.name}`;

// ---- validate

async function validate(file) {
    const objects = readObjects(file);
    for (const o of objects) {
        if (typeof o.apiVersion !== "string" || typeof o.kind !== "string") {
            problem(`an object without apiVersion/kind: ${JSON.stringify(o).slice(0, 80)}`);
            continue;
        }
        // kubernetes-models/<group>/<version>/index.js; the core group is plain "v1".
        const dir = join(modules, "kubernetes-models", ...o.apiVersion.split("/"));
        if (!/^[a-z0-9.]+(\/[a-z0-9]+)?$/.test(o.apiVersion) || !existsSync(join(dir, "index.js"))) {
            problem(`${id(o)}: unknown apiVersion ${o.apiVersion}`);
            continue;
        }
        const mod = await importModule("kubernetes-models", ...o.apiVersion.split("/"), "index.js");
        const Model = mod[o.kind];
        if (typeof Model !== "function") {
            problem(`${id(o)}: unknown kind ${o.kind} in ${o.apiVersion}`);
            continue;
        }
        try {
            new Model(o).validate();
        } catch (e) {
            problem(`${id(o)} (${o.apiVersion}): ${e.message}`);
        }
    }
    finish(`${objects.length} objects valid against the Kubernetes schemas`);
}

// ---- check: tegula's invariants

function podSpecs(objects) {
    return objects
        .filter((o) => ["Deployment", "StatefulSet"].includes(o.kind))
        .map((o) => ({ owner: o, spec: o.spec.template.spec, meta: o.spec.template.metadata || {} }));
}

function argAfter(args, flag) {
    const i = (args || []).indexOf(flag);
    return i >= 0 ? args[i + 1] : undefined;
}

function component(o) {
    return (o.metadata.labels || {})["app.kubernetes.io/component"];
}

function selects(selector, labels) {
    return Object.entries(selector || {}).every(([k, v]) => (labels || {})[k] === v);
}

function checkContainerSecurity(where, c, podSec) {
    const s = c.securityContext || {};
    if (!(s.runAsNonRoot === true || (podSec.runAsNonRoot === true && s.runAsNonRoot !== false)))
        problem(`${where}: runAsNonRoot is not set`);
    if (s.allowPrivilegeEscalation !== false)
        problem(`${where}: allowPrivilegeEscalation is not false`);
    if (s.readOnlyRootFilesystem !== true)
        problem(`${where}: readOnlyRootFilesystem is not true`);
    if (!s.capabilities || !(s.capabilities.drop || []).includes("ALL"))
        problem(`${where}: capabilities do not drop ALL`);
    if (s.privileged === true)
        problem(`${where}: privileged`);
    const r = c.resources || {};
    for (const kind of ["requests", "limits"])
        for (const res of ["cpu", "memory"])
            if (!r[kind] || r[kind][res] === undefined)
                problem(`${where}: no ${kind}.${res}`);
}

function check(file) {
    const objects = readObjects(file);
    const byKind = (kind) => objects.filter((o) => o.kind === kind);
    const find = (kind, name) => objects.find((o) => o.kind === kind && o.metadata.name === name);
    const namespaces = byKind("Namespace").map((o) => o.metadata.name);
    if (namespaces.length !== 1)
        problem(`expected one Namespace, found ${namespaces.length}`);
    const ns = namespaces[0];
    for (const o of objects)
        if (o.kind !== "Namespace" && o.metadata.namespace !== ns)
            problem(`${id(o)}: namespace ${o.metadata.namespace}, not ${ns}`);

    // Every pod: non-root, seccomp, locked-down containers, limits, writable paths on volumes.
    for (const { owner, spec, meta } of podSpecs(objects)) {
        const where = id(owner);
        const podSec = spec.securityContext || {};
        if (podSec.runAsNonRoot !== true)
            problem(`${where}: pod securityContext.runAsNonRoot is not true`);
        if (!podSec.runAsUser || podSec.runAsUser === 0)
            problem(`${where}: pod runAsUser is not a non-zero uid`);
        if (!podSec.seccompProfile || podSec.seccompProfile.type !== "RuntimeDefault")
            problem(`${where}: seccompProfile is not RuntimeDefault`);
        if (spec.hostNetwork || spec.hostPID || spec.hostIPC)
            problem(`${where}: shares a host namespace`);
        const claims = (owner.spec.volumeClaimTemplates || []).map((t) => t.metadata.name);
        const volumes = new Map((spec.volumes || []).map((v) => [v.name, v]));
        for (const c of [...(spec.initContainers || []), ...spec.containers]) {
            const cwhere = `${where} container ${c.name}`;
            checkContainerSecurity(cwhere, c, podSec);
            const mounts = c.volumeMounts || [];
            for (const m of mounts) {
                const v = volumes.get(m.name);
                if (!v && !claims.includes(m.name))
                    problem(`${cwhere}: mount ${m.name} has no volume`);
                if (v && (v.configMap || v.secret) && m.readOnly !== true)
                    problem(`${cwhere}: ${m.name} is mounted writable`);
                if (v && !(v.configMap || v.secret || v.emptyDir || v.persistentVolumeClaim))
                    problem(`${cwhere}: volume ${m.name} is neither config, emptyDir nor a claim`);
            }
            if (!mounts.some((m) => m.mountPath === "/tmp"))
                problem(`${cwhere}: no writable /tmp volume (the root filesystem is read-only)`);
            if (!mounts.some((m) => m.mountPath === "/etc/tegula" && m.readOnly === true))
                problem(`${cwhere}: the config is not mounted read-only at /etc/tegula`);
        }
        for (const c of spec.containers) {
            const cwhere = `${where} container ${c.name}`;
            if (!c.readinessProbe || !c.livenessProbe)
                problem(`${cwhere}: readiness and liveness probes are required`);
            const ports = (c.ports || []).map((p) => p.containerPort);
            const a = meta.annotations || {};
            if (a["prometheus.io/scrape"] !== "true" || a["prometheus.io/path"] !== "/metrics" ||
                !ports.includes(Number(a["prometheus.io/port"])))
                problem(`${where}: prometheus.io scrape/port/path annotations missing or wrong`);
        }
        for (const v of spec.volumes || []) {
            if (v.configMap && !find("ConfigMap", v.configMap.name))
                problem(`${where}: ConfigMap ${v.configMap.name} is not in the manifests`);
            if (v.secret && !find("Secret", v.secret.secretName))
                problem(`${where}: Secret ${v.secret.secretName} is not in the manifests`);
        }
        for (const c of [...(spec.initContainers || []), ...spec.containers])
            for (const e of c.envFrom || [])
                if (e.secretRef && !find("Secret", e.secretRef.name))
                    problem(`${where}: Secret ${e.secretRef.name} is not in the manifests`);
    }

    // The config every process reads.
    const cm = find("ConfigMap", "tegula-config");
    let cfg = null;
    if (!cm || !cm.data || !cm.data["tegula.yaml"])
        problem("no ConfigMap tegula-config with tegula.yaml");
    else
        cfg = YAML.parse(cm.data["tegula.yaml"]);
    const svcDomain = `${ns}.svc.cluster.local`;

    // Frontends: a Deployment behind a Service, an HPA on CPU, a PDB.
    const frontends = byKind("Deployment").filter((o) => component(o) === "frontend");
    if (frontends.length !== 1)
        problem(`expected one frontend Deployment, found ${frontends.length}`);
    for (const d of frontends) {
        const c = d.spec.template.spec.containers[0];
        const port = c.ports && c.ports[0] && c.ports[0].containerPort;
        if (cfg && cfg.frontend && !String(cfg.frontend.listen).endsWith(`:${port}`))
            problem(`frontend.listen ${cfg.frontend.listen} is not the container port ${port}`);
        const hpa = byKind("HorizontalPodAutoscaler").find(
            (h) => h.spec.scaleTargetRef.kind === "Deployment" && h.spec.scaleTargetRef.name === d.metadata.name);
        if (!hpa || hpa.apiVersion !== "autoscaling/v2" ||
            !(hpa.spec.metrics || []).some((m) => m.type === "Resource" && m.resource.name === "cpu"))
            problem(`${id(d)}: no autoscaling/v2 HPA on CPU`);
        else if (d.spec.replicas !== undefined)
            problem(`${id(d)}: replicas is set, but the HPA owns the count (apply would reset it)`);
        if (!byKind("PodDisruptionBudget").some((p) => selects(p.spec.selector.matchLabels, d.spec.template.metadata.labels)))
            problem(`${id(d)}: no PodDisruptionBudget`);
        if (!byKind("Service").some((s) => s.spec.clusterIP !== "None" && selects(s.spec.selector, d.spec.template.metadata.labels)))
            problem(`${id(d)}: no Service`);
        if (d.spec.strategy.type !== "RollingUpdate" || d.spec.strategy.rollingUpdate.maxUnavailable !== 0)
            problem(`${id(d)}: a rolling update must keep every frontend (maxUnavailable: 0)`);
    }

    // Batchers: a StatefulSet with claims, a headless Service, unique ids, a PDB.
    const batchers = byKind("StatefulSet").filter((o) => component(o) === "batcher");
    if (batchers.length !== 1)
        problem(`expected one batcher StatefulSet, found ${batchers.length}`);
    for (const b of batchers) {
        const svc = find("Service", b.spec.serviceName);
        if (!svc || svc.spec.clusterIP !== "None" || !selects(svc.spec.selector, b.spec.template.metadata.labels))
            problem(`${id(b)}: its serviceName ${b.spec.serviceName} is not a headless Service selecting it`);
        if (!(b.spec.volumeClaimTemplates || []).length)
            problem(`${id(b)}: no volumeClaimTemplates`);
        const c = b.spec.template.spec.containers[0];
        if (argAfter(c.args, "--id") !== "$(POD_NAME)")
            problem(`${id(b)}: not started with --id $(POD_NAME)`);
        const podName = (c.env || []).find((e) => e.name === "POD_NAME");
        if (!podName || !podName.valueFrom || podName.valueFrom.fieldRef.fieldPath !== "metadata.name")
            problem(`${id(b)}: POD_NAME is not the downward API's metadata.name`);
        const listen = argAfter(c.args, "--listen") || "";
        const m = /^tcp:\/\/0\.0\.0\.0:(\d+)$/.exec(listen);
        if (!m)
            problem(`${id(b)}: --listen ${listen} is not tcp://0.0.0.0:PORT`);
        if (!argAfter(c.args, "--http"))
            problem(`${id(b)}: no --http (probes and metrics)`);
        if (m && cfg && cfg.batchers && svc && cfg.batchers.dns !== `${svc.metadata.name}.${svcDomain}:${m[1]}`)
            problem(`batchers.dns ${cfg.batchers.dns} is not the headless Service ${svc.metadata.name}.${svcDomain}:${m[1]}`);
        if (!byKind("PodDisruptionBudget").some((p) => selects(p.spec.selector.matchLabels, b.spec.template.metadata.labels)))
            problem(`${id(b)}: no PodDisruptionBudget`);
    }

    // Sequencers: one single-replica, ordered StatefulSet per log, at the config's address.
    const sequencers = byKind("StatefulSet").filter((o) => component(o) === "sequencer");
    const logs = cfg && Array.isArray(cfg.logs) ? cfg.logs : [];
    if (sequencers.length !== logs.length)
        problem(`${logs.length} log(s) in the config but ${sequencers.length} sequencer StatefulSet(s)`);
    for (const s of sequencers) {
        if (s.spec.replicas !== 1)
            problem(`${id(s)}: replicas ${s.spec.replicas}, must be 1`);
        if (s.spec.podManagementPolicy !== "OrderedReady")
            problem(`${id(s)}: podManagementPolicy is not OrderedReady`);
        if (!s.spec.updateStrategy || s.spec.updateStrategy.type !== "RollingUpdate")
            problem(`${id(s)}: updateStrategy is not RollingUpdate`);
        if (!(s.spec.volumeClaimTemplates || []).length)
            problem(`${id(s)}: no volumeClaimTemplates`);
        const svc = find("Service", s.spec.serviceName);
        if (!svc || svc.spec.clusterIP !== "None" || svc.spec.publishNotReadyAddresses !== true ||
            !selects(svc.spec.selector, s.spec.template.metadata.labels))
            problem(`${id(s)}: serviceName ${s.spec.serviceName} is not a headless Service (publishing not-ready addresses) selecting it`);
        const c = s.spec.template.spec.containers[0];
        const env = (c.env || []).find((e) => e.name === "TEGULA_LOG");
        if (argAfter(c.args, "--log") !== "$(TEGULA_LOG)" || !env)
            problem(`${id(s)}: not started with --log $(TEGULA_LOG)`);
        if ((c.args || []).includes("--create"))
            problem(`${id(s)}: the sequencer container must never run with --create`);
        const init = (s.spec.template.spec.initContainers || []).find((i) => i.name === "create-log");
        const initCreate = init && (init.env || []).find((e) => e.name === "TEGULA_CREATE");
        if (!init || !initCreate || initCreate.value !== "")
            problem(`${id(s)}: no create-log init container, or TEGULA_CREATE is not empty by default`);
        const nng = (c.ports || []).find((p) => p.name === "nng");
        const log = env && logs.find((l) => l.name === env.value);
        if (!log) {
            problem(`${id(s)}: TEGULA_LOG ${env && env.value} is not a log in the config`);
            continue;
        }
        const want = `tcp://${s.metadata.name}-0.${s.spec.serviceName}.${svcDomain}:${nng && nng.containerPort}`;
        if (log.sequencer !== want)
            problem(`log ${log.name}: sequencer ${log.sequencer}, but its pod is at ${want}`);
    }
    for (const l of logs)
        if (!sequencers.some((s) => (s.spec.template.spec.containers[0].env || []).some((e) => e.name === "TEGULA_LOG" && e.value === l.name)))
            problem(`log ${l.name} has no sequencer StatefulSet`);

    // The Ingress routes each log's submission and monitoring paths to the frontend Service.
    const frontendSvc = byKind("Service").find((s) => s.spec.clusterIP !== "None" && component(s) === "frontend");
    const paths = [];
    for (const ing of byKind("Ingress"))
        for (const r of ing.spec.rules || [])
            for (const p of (r.http && r.http.paths) || [])
                paths.push(p);
    for (const l of logs) {
        const base = new URL(l.submission_prefix).pathname;
        for (const [want, type] of [[`${base}ct/v1/`, "Prefix"], [`${base}checkpoint`, "Exact"],
                                    [`${base}tile/`, "Prefix"], [`${base}issuer/`, "Prefix"]]) {
            const p = paths.find((x) => x.path === want && x.pathType === type);
            if (!p || !frontendSvc || p.backend.service.name !== frontendSvc.metadata.name)
                problem(`log ${l.name}: the Ingress does not route ${type} ${want} to the frontend Service`);
        }
    }
    finish(`invariants hold: ${objects.length} objects, ${logs.length} log(s), ${sequencers.length} sequencer(s)`);
}

// ---- same

function canonical(v) {
    if (Array.isArray(v))
        return v.map(canonical);
    if (v && typeof v === "object") {
        const out = {};
        for (const k of Object.keys(v).sort()) {
            const c = canonical(v[k]);
            const empty = c && typeof c === "object" && !Array.isArray(c) && Object.keys(c).length === 0;
            if (!(empty && (k === "annotations" || k === "labels")))
                out[k] = c;
        }
        return out;
    }
    return v;
}

function same(a, b) {
    const load = (f) => new Map(readObjects(f).map((o) => [`${o.kind}/${o.metadata.namespace || ""}/${o.metadata.name}`,
                                                          JSON.stringify(canonical(o))]));
    const A = load(a), B = load(b);
    for (const [k, v] of A)
        if (!B.has(k))
            problem(`${k} only in ${a}`);
        else if (B.get(k) !== v)
            problem(`${k} differs`);
    for (const k of B.keys())
        if (!A.has(k))
            problem(`${k} only in ${b}`);
    finish(`the same ${A.size} objects`);
}

// ---- podman: a variant `podman kube play` (4.3) runs on one host
//
// What podman 4.3.1 does with the real manifests, and what this variant does instead:
// - StatefulSets are ignored without a word, and a Deployment's pod is named NAME-pod:
//   every workload becomes a Pod named like its first Kubernetes pod (PREFIX + sequencer-0,
//   batcher-0, frontend-0), one replica each;
// - a Secret volume crashes it (nil pointer in VolumeFromSecret): Secrets become ConfigMaps
//   with the decoded data, secret volumes and envFrom secretRefs refer to those;
// - Services are ignored and every containerPort is published on the host; there is no
//   cluster DNS: host networking (no containerPorts then: podman refuses them), and the
//   test's config uses 127.0.0.1 addresses on free ports, given in PORTS (a JSON file
//   {"9100": 41234, ...}) and substituted in the containers' arguments;
// - an init container of the default type "once" is removed right after it ran, racing
//   with its exit ("cannot remove container ... as it is running"): type "always", and
//   restartPolicy OnFailure (see below);
// - $(VAR) in arguments is not expanded: expanded here (POD_NAME, TEGULA_LOG);
// - a ConfigMap becomes a podman volume of its name that `kube down` leaves behind, and an
//   emptyDir a named volume shared by every pod with a volume of that name: ConfigMaps are
//   renamed PREFIX+name (the test removes those volumes), pod volumes POD-name;
// - claims become emptyDirs; probes and preStop hooks go (the test polls the health
//   endpoints itself); TEGULA_CREATE names the pod's log, so create-log creates it.
function podmanVariant(file, out, portsFile) {
    const ports = JSON.parse(readFileSync(portsFile, "utf8"));
    const prefix = process.env.K8S_POD_PREFIX || "";
    const result = [];
    for (const o of readObjects(file)) {
        if (o.kind === "ConfigMap") {
            result.push({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: prefix + o.metadata.name }, data: o.data });
        } else if (o.kind === "Secret") {
            const data = {};
            for (const [k, v] of Object.entries(o.data || {}))
                data[k] = Buffer.from(v, "base64").toString("utf8");
            result.push({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: prefix + o.metadata.name }, data });
        } else if (o.kind === "Deployment" || o.kind === "StatefulSet") {
            const spec = o.spec.template.spec;
            spec.hostNetwork = true;
            spec.volumes = spec.volumes || [];
            for (const t of o.spec.volumeClaimTemplates || [])
                spec.volumes.push({ name: t.metadata.name, emptyDir: {} });
            const podName = `${prefix}${o.metadata.name}-0`;
            for (const v of spec.volumes) {
                if (v.secret) {
                    v.configMap = { name: v.secret.secretName, defaultMode: v.secret.defaultMode };
                    delete v.secret;
                }
                if (v.configMap)
                    v.configMap.name = prefix + v.configMap.name;
                v.name = `${podName}-${v.name}`;
            }
            for (const c of [...(spec.initContainers || []), ...spec.containers]) {
                for (const p of ["readinessProbe", "livenessProbe", "startupProbe", "lifecycle"])
                    delete c[p];
                c.args = (c.args || []).map((a) => a.replace(/:(\d+)$/, (m, p) => (ports[p] ? `:${ports[p]}` : m)));
                delete c.ports; // with host networking, podman refuses port mappings
                for (const e of c.envFrom || []) {
                    if (e.secretRef) {
                        e.configMapRef = e.secretRef;
                        delete e.secretRef;
                    }
                    if (e.configMapRef)
                        e.configMapRef = { name: prefix + e.configMapRef.name };
                }
                for (const m of c.volumeMounts || [])
                    m.name = `${podName}-${m.name}`;
                const log = (c.env || []).find((e) => e.name === "TEGULA_LOG");
                const create = (c.env || []).find((e) => e.name === "TEGULA_CREATE");
                if (log && create)
                    create.value = log.value;
            }
            // Kubernetes expands $(VAR) in arguments; podman 4.3 passes it on verbatim.
            for (const c of [...(spec.initContainers || []), ...spec.containers]) {
                const vars = {};
                for (const e of c.env || []) {
                    if (e.valueFrom && e.valueFrom.fieldRef && e.valueFrom.fieldRef.fieldPath === "metadata.name")
                        vars[e.name] = podName;
                    else if (typeof e.value === "string")
                        vars[e.name] = e.value;
                }
                c.args = c.args.map((a) => a.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v) => (v in vars ? vars[v] : m)));
            }
            // podman restarts a pod's init containers by the pod's restart policy (Kubernetes
            // never restarts one that succeeded): with Always, create-log would run again and
            // again, and (rightly) fail from its second run on.
            spec.restartPolicy = "OnFailure";
            const meta = o.spec.template.metadata || {};
            result.push({
                apiVersion: "v1",
                kind: "Pod",
                metadata: {
                    name: podName,
                    labels: meta.labels || {},
                    annotations: { ...(meta.annotations || {}), "io.podman.annotations.init.container.type": "always" },
                },
                spec,
            });
        }
    }
    writeFileSync(out, result.map((o) => YAML.stringify(o)).join("---\n"));
    console.log(result.filter((o) => o.kind === "Pod").map((o) => o.metadata.name).join(" "));
}

if (command === "validate")
    await validate(files[0]);
else if (command === "check")
    check(files[0]);
else if (command === "secrets-empty") {
    for (const o of readObjects(files[0]))
        if (o.kind === "Secret" && (Object.keys(o.data || {}).length || Object.keys(o.stringData || {}).length))
            problem(`${id(o)} holds data`);
    finish("every Secret is an empty placeholder");
} else if (command === "same" && files.length === 2)
    same(files[0], files[1]);
else if (command === "podman" && files.length === 3)
    podmanVariant(files[0], files[1], files[2]);
else {
    console.error(`unknown command ${command}`);
    process.exit(2);
}
