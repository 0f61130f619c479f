// The `profile` key: with `hardened` every daemon carries the CIS flags, the units and /var/lib/kubernetes
// files are 0600, etcd runs as its own user that owns its data dir and key, the API server reads an audit
// policy and an admission config; with `seed` (the default) nothing of that appears.
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { describe, test } from "node:test";
import { renderApiServerUnit } from "../../components/apiServer";
import { DEFAULTS } from "../../components/config";
import { renderControllerManagerUnit } from "../../components/controllerManager";
import { renderEtcdUnit } from "../../components/etcd";
import {
    ADMISSION_CONFIG_FILE, applyFlagSet, AUDIT_POLICY_FILE, CREATED_USER, renderAdmissionConfig, renderAuditPolicy,
    systemUserScripts, TLS_CIPHER_SUITES,
} from "../../components/profile";
import { renderSchedulerConfig, renderSchedulerUnit } from "../../components/scheduler";
import { byName, byType, devConfig, plain, REMOTE, reveal, runProgram, scriptOf } from "./program";
import { parseUnit } from "./seed";
import { scratchDir } from "./scratch";

const HARDENED = { ...DEFAULTS, profile: "hardened" as const };
const control0 = DEFAULTS.nodes[0];
const CIPHERS = TLS_CIPHER_SUITES.join(",");

/** The flags of a unit as a map, failing on a flag given twice. */
function flagMap(unit: string): Map<string, string> {
    const map = new Map<string, string>();
    for (const flag of parseUnit(unit).flags) {
        const [name, ...value] = flag.split("=");
        assert.ok(!map.has(name), `${name} given once`);
        map.set(name, value.join("="));
    }
    return map;
}

/** Asserts the hardened unit has the seed's flags, changed only as `changed` says, plus `added`. */
function assertHardened(seedUnit: string, hardenedUnit: string, changed: Record<string, string>, added: Record<string, string>) {
    const seed = flagMap(seedUnit);
    const hard = flagMap(hardenedUnit);
    for (const [name, value] of seed) {
        assert.equal(hard.get(name), changed[name] ?? value, `${name}`);
    }
    for (const [name, value] of Object.entries(added)) {
        assert.ok(!seed.has(name), `${name} is new`);
        assert.equal(hard.get(name), value, name);
    }
    assert.deepEqual([...hard.keys()].sort(), [...new Set([...seed.keys(), ...Object.keys(added)])].sort(), "no other flag");
}

describe("hardened units carry the CIS flags", () => {
    test("kube-apiserver: profiling, audit log and policy, TLS, request timeout, admission plugins and their config", () => {
        assertHardened(renderApiServerUnit(DEFAULTS, control0), renderApiServerUnit(HARDENED, control0), {
            "--audit-log-maxbackup": "10",
            "--enable-admission-plugins": "NamespaceLifecycle,NodeRestriction,LimitRanger,ServiceAccount," +
                "DefaultStorageClass,ResourceQuota,EventRateLimit,DenyServiceExternalIPs,AlwaysPullImages",
        }, {
            "--profiling": "false",
            "--audit-policy-file": "/var/lib/kubernetes/audit-policy.yaml",
            "--request-timeout": "300s",
            "--admission-control-config-file": "/var/lib/kubernetes/admission-control.yaml",
            "--tls-min-version": "VersionTLS12",
            "--tls-cipher-suites": CIPHERS,
        });
        const api = flagMap(renderApiServerUnit(HARDENED, control0));
        assert.equal(api.get("--audit-log-maxage"), "30");
        assert.equal(api.get("--audit-log-maxsize"), "100");
        assert.equal(api.get("--bind-address"), "0.0.0.0", "the load balancer reaches every API server");
        assert.equal(api.get("--anonymous-auth"), undefined, "anonymous auth stays on for the load balancer's /readyz");
    });

    test("kube-controller-manager and kube-scheduler: loopback only, no profiling, a terminated pod GC threshold", () => {
        assertHardened(renderControllerManagerUnit(DEFAULTS), renderControllerManagerUnit(HARDENED),
            { "--bind-address": "127.0.0.1" }, { "--profiling": "false", "--terminated-pod-gc-threshold": "100" });
        assertHardened(renderSchedulerUnit(DEFAULTS), renderSchedulerUnit(HARDENED), {},
            { "--bind-address": "127.0.0.1", "--profiling": "false" });
        // --profiling is ignored beside --config: the config says it too.
        assert.match(renderSchedulerConfig(HARDENED), /^enableProfiling: false$/m);
        assert.doesNotMatch(renderSchedulerConfig(DEFAULTS), /enableProfiling/);
    });

    test("etcd: its own user, strong ciphers, TLS 1.2 at least, its data dir taken over at each start", () => {
        assertHardened(renderEtcdUnit(DEFAULTS, control0), renderEtcdUnit(HARDENED, control0), {},
            { "--cipher-suites": CIPHERS, "--tls-min-version": "TLS1.2" });
        const service = parseUnit(renderEtcdUnit(HARDENED, control0)).sections.Service;
        for (const line of ["User=etcd", "Group=etcd", "ExecStartPre=+chown -R etcd:etcd /var/lib/etcd"]) {
            assert.ok(service.includes(line), line);
        }
        assert.ok(!parseUnit(renderEtcdUnit(DEFAULTS, control0)).sections.Service.some(l => /^User=|^ExecStartPre=/.test(l)));
    });

    test("the user's extra args still win over the profile's", () => {
        const unit = renderApiServerUnit({ ...HARDENED, apiServerExtraArgs: { "request-timeout": "60s" } }, control0);
        assert.equal(flagMap(unit).get("--request-timeout"), "60s");
    });

    test("a flag set changes known flags in place, appends list entries, and adds new flags at the end", () => {
        assert.deepEqual(applyFlagSet([["a", "1"], ["list", "x,y"], ["b", true]], { set: { a: "2", c: "3" }, append: { list: ["z"] } }),
            [["a", "2"], ["list", "x,y,z"], ["b", true], ["c", "3"]]);
    });
});

describe("the audit policy and the admission config", () => {
    test("the audit policy covers CIS 3.2.2: secrets at Metadata only, exec/portforward/proxy, pod and deployment changes", () => {
        const policy = renderAuditPolicy();
        assert.match(policy, /^apiVersion: audit.k8s.io\/v1\nkind: Policy\n/);
        // Rules match in order: secrets are never logged with their content, whatever comes later.
        const rules = policy.split("\n- level: ").slice(1);
        assert.deepEqual(rules.map(r => r.split("\n")[0]), ["None", "None", "Metadata", "Metadata", "Request", "Metadata"]);
        assert.match(rules[0], /nonResourceURLs:\n {2}- "?\/healthz\*"?\n {2}- "?\/readyz\*"?/);
        assert.equal(rules[2], ["Metadata", "  resources:", '  - group: ""', "    resources:", "    - secrets", "    - configmaps",
            "  - group: authentication.k8s.io", "    resources:", "    - tokenreviews"].join("\n"));
        for (const sub of ["pods/exec", "pods/portforward", "pods/proxy", "services/proxy"]) {
            assert.ok(rules[3].split("\n").includes(`    - ${sub}`), sub);
        }
        assert.match(rules[4], /verbs:\n {2}- create\n {2}- update\n {2}- patch\n {2}- delete/);
        assert.match(rules[4], /- group: ""\n {4}resources:\n {4}- pods\n {2}- group: apps\n {4}resources:\n {4}- deployments$/);
        assert.equal(rules[5], "Metadata\n", "everything else at Metadata");
    });

    test("the admission config gives EventRateLimit its limits", () => {
        assert.equal(renderAdmissionConfig(), [
            "apiVersion: apiserver.config.k8s.io/v1", "kind: AdmissionConfiguration", "plugins:", "- name: EventRateLimit",
            "  configuration:", "    apiVersion: eventratelimit.admission.k8s.io/v1alpha1", "    kind: Configuration",
            "    limits:", "    - type: Namespace", "      qps: 50", "      burst: 100", "      cacheSize: 2000",
            "    - type: User", "      qps: 10", "      burst: 50", "",
        ].join("\n"));
    });
});

describe("a hardened stack under mocks", () => {
    const run = runProgram(devConfig({ profile: "hardened" }));
    const seedRun = runProgram(devConfig());
    const scripts = (r: ReturnType<typeof byName>) => scriptOf(plain(r, "create"));
    const remotes = byType(run, REMOTE);

    test("it runs", () => {
        assert.equal(run.error, undefined, run.error);
        assert.equal(seedRun.error, undefined, seedRun.error);
    });

    test("every unit file is written 0600 (0644 in the seed)", () => {
        for (const [r, mode] of [[run, "0600"], [seedRun, "0644"]] as const) {
            const services = byType(r, REMOTE).filter(c => /^(etcd|kube-[a-z-]+)-control\d-service$/.test(c.name));
            assert.equal(services.length, 12, "4 daemons on 3 nodes");
            for (const s of services) {
                assert.match(scripts(s), new RegExp(`^install -m ${mode} "\\$tmp" '/etc/systemd/system/`, "m"), s.name);
            }
        }
    });

    test("every /var/lib/kubernetes file is 0600, the audit policy and admission config among them", () => {
        const files = remotes.filter(r => /^cat > "\$tmp"$/m.test(scripts(r)) && /^target='\/var\/lib\/kubernetes\//m.test(scripts(r)));
        assert.equal(files.length, 3 * (9 + 1 + 1), "9 API server files, 2 kubeconfigs per node");
        files.forEach(f => assert.match(scripts(f), /^chmod 0600 "\$tmp"$/m, f.name));
        const policy = byName(run, "kube-apiserver-control0-audit-policy");
        assert.match(scripts(policy), new RegExp(`^target='${AUDIT_POLICY_FILE}'$`, "m"));
        assert.equal(reveal(policy.inputs.stdin), renderAuditPolicy());
        const admission = byName(run, "kube-apiserver-control0-admission-config");
        assert.match(scripts(admission), new RegExp(`^target='${ADMISSION_CONFIG_FILE}'$`, "m"));
        assert.equal(reveal(admission.inputs.stdin), renderAdmissionConfig());
        assert.ok(!seedRun.registrations.some(r => /audit-policy|admission-config/.test(r.name)));
    });

    test("etcd's user comes first; its data dir is etcd:etcd 0700, its /etc/etcd files etcd's, 0600", () => {
        for (const node of ["control0", "control1", "control2"]) {
            const user = byName(run, `etcd-${node}-user`);
            assert.match(scripts(user), /useradd --system .*--user-group --comment 'created by kthw with its group' 'etcd'/);
            assert.match(scriptOf(plain(user, "delete")), /userdel 'etcd'/);
            const dataDir = byName(run, `etcd-${node}-data-dir`);
            assert.equal(scripts(dataDir).split("\n").slice(2).join("\n"),
                "install -d -m 0700 '/var/lib/etcd'\nchown -R 'etcd:etcd' '/var/lib/etcd'\n");
            const key = byName(run, `etcd-${node}-key`);
            assert.match(scripts(key), /^chmod 0600 "\$tmp"\nchown 'etcd:etcd' "\$tmp"\n/m);
            for (const file of ["ca", "cert"]) {
                assert.match(scripts(byName(run, `etcd-${node}-${file}`)), /^chmod 0600 "\$tmp"\nchown 'etcd:etcd' "\$tmp"\n/m, file);
            }
            assert.doesNotMatch(scripts(byName(seedRun, `etcd-${node}-key`)), /chown/);
            for (const step of [dataDir, key, byName(run, `etcd-${node}-service`)]) {
                assert.ok(step.dependencies.includes(user.urn), `${step.name} after the user`);
            }
            assert.match(reveal(byName(run, `etcd-${node}-service`).inputs.stdin) as string, /^User=etcd$/m);
        }
        assert.ok(!seedRun.registrations.some(r => /-user$/.test(r.name)), "the seed makes no user");
        assert.doesNotMatch(scriptOf(plain(byName(seedRun, "etcd-control0-data-dir"), "create")), /chown/);
    });

    test("health gates still probe what the hardened daemons serve: 127.0.0.1", () => {
        for (const [name, url] of [["kube-apiserver-control0-healthy", "https://127.0.0.1:6443/readyz"],
            ["kube-controller-manager-control0-healthy", "https://127.0.0.1:10257/healthz"],
            ["kube-scheduler-control0-healthy", "https://127.0.0.1:10259/healthz"]]) {
            assert.ok(scripts(byName(run, name)).includes(url), name);
        }
    });
});

// useradd and userdel for real, against a copy of /etc in a private mount namespace: the host's users
// never change. Needs root and unshare (the CI runs as root); skipped otherwise.
const canUnshare = process.getuid?.() === 0 && spawnSync("unshare", ["-m", "true"]).status === 0;
test("the etcd user step creates the user and group once, and its delete removes only what it created",
    { skip: canUnshare ? false : "needs root and unshare -m" }, () => {
        const dir = scratchDir("user");
        const steps = systemUserScripts("kthwtest", "/nonexistent", [path.join(dir, "data")]);
        fs.writeFileSync(path.join(dir, "create.sh"), steps.create);
        fs.writeFileSync(path.join(dir, "delete.sh"), steps.delete!);
        fs.mkdirSync(path.join(dir, "data"));
        const inNamespace = [
            "set -euo pipefail",
            `etc=$(mktemp -d "${dir}/etc.XXXXXX")`,
            `cp -a /etc/. "$etc/"`,
            `mount --bind "$etc" /etc`,
            `bash "${dir}/create.sh"`,
            `bash "${dir}/create.sh"`,
            `getent passwd kthwtest | cut -d: -f5`,
            `getent group kthwtest >/dev/null && echo group`,
            `chown kthwtest:kthwtest "${dir}/data"`,
            `bash "${dir}/delete.sh"`,
            `getent passwd kthwtest || echo no-user`,
            `getent group kthwtest || echo no-group`,
            `stat -c %U:%G "${dir}/data"`,
            `cat /etc/passwd- /etc/group- /etc/shadow- /etc/gshadow- 2>/dev/null | grep -c '^kthwtest:' || true`,
            // An operator's own user is kept.
            `useradd --system --no-create-home kthwtest`,
            `bash "${dir}/create.sh"`,
            `bash "${dir}/delete.sh"`,
            `getent passwd kthwtest >/dev/null && echo kept`,
        ].join("\n");
        const result = spawnSync("unshare", ["-m", "bash", "-c", inNamespace], { encoding: "utf8" });
        assert.equal(result.status, 0, result.stderr);
        assert.deepEqual(result.stdout.trim().split("\n"), [CREATED_USER, "group", "no-user", "no-group", "root:root", "0", "kept"]);
        assert.equal(spawnSync("getent", ["passwd", "kthwtest"]).status, 2, "the host's /etc never saw the user");
    });
