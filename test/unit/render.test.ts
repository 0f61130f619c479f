// Every file the program installs, rendered for the seed's lab, against the file the seed writes by hand.
import { strict as assert } from "assert";
import { test } from "node:test";
import { parse } from "yaml";
import { renderApiServerUnit } from "../../components/apiServer";
import { DEFAULTS } from "../../components/config";
import { renderControllerManagerUnit } from "../../components/controllerManager";
import { renderEtcdUnit } from "../../components/etcd";
import { renderArpSysctl, renderLdirectordConfig, renderVipUnit } from "../../components/loadBalancer";
import { apiServerUrl, kubernetesSans, renderEncryptionConfig, renderKubeconfig } from "../../components/pki";
import { renderSchedulerConfig, renderSchedulerUnit, schedulerConfigApiVersion } from "../../components/scheduler";
import { execStartOf } from "../../components/render/systemd";
import { toYaml } from "../../components/render/yaml";
import { parseUnit, seedArpSysctl, seedFiles } from "./seed";

const seed = seedFiles();
const control0 = DEFAULTS.nodes[0];
/** The chapter exactly: the four keys whose defaults serve rolling changes, at the seed's values. */
const SEED_CONFIG = { ...DEFAULTS, lbHealthCheckPath: "/healthz", apiServerShutdownDelaySeconds: 0, etcdClientHttpPort: 0,
    etcdClientRetries: false };

function assertSameUnit(rendered: string, seedPath: string): void {
    assert.ok(seed[seedPath], `the seed writes ${seedPath}`);
    const ours = parseUnit(rendered);
    const theirs = parseUnit(seed[seedPath]);
    assert.equal(ours.program, theirs.program, "ExecStart runs the seed's binary");
    assert.deepEqual(ours.flags, theirs.flags, "every flag, in the seed's order");
    assert.deepEqual(ours.sections, theirs.sections, "every other line of every section");
}

test("the seed's heredocs are all found", () => {
    assert.deepEqual(Object.keys(seed).sort(), [
        "/etc/ha.d/ldirectord.cf",
        "/etc/kubernetes/config/kube-scheduler.yaml",
        "/etc/systemd/system/etcd.service",
        "/etc/systemd/system/kube-apiserver.service",
        "/etc/systemd/system/kube-controller-manager.service",
        "/etc/systemd/system/kube-scheduler.service",
    ]);
});

test("etcd.service matches the seed's, flag by flag", () => {
    assertSameUnit(renderEtcdUnit(SEED_CONFIG, control0), "/etc/systemd/system/etcd.service");
});

test("by default etcd serves HTTP on a port of its own, its client port gRPC alone; the seed's one port before 3.5.8", () => {
    const ours = parseUnit(renderEtcdUnit(DEFAULTS, control0)).flags;
    const theirs = parseUnit(seed["/etc/systemd/system/etcd.service"]).flags;
    const after = theirs.findIndex(f => f.startsWith("--listen-client-urls=")) + 1;
    assert.ok(after > 0, "the seed's etcd has --listen-client-urls");
    assert.deepEqual(ours, [...theirs.slice(0, after),
        "--listen-client-http-urls=https://192.168.1.11:2382,https://127.0.0.1:2382", ...theirs.slice(after)]);
    for (const etcdVersion of ["3.5.7", "3.4.30"]) {
        assert.deepEqual(parseUnit(renderEtcdUnit({ ...DEFAULTS, etcdVersion }, control0)).flags, theirs, etcdVersion);
    }
    assert.ok(parseUnit(renderEtcdUnit({ ...DEFAULTS, etcdVersion: "3.6.0" }, control0)).flags
        .some(f => f.startsWith("--listen-client-http-urls=")), "3.6 has the flag too");
});

test("kube-apiserver.service matches the seed's, flag by flag", () => {
    assertSameUnit(renderApiServerUnit(SEED_CONFIG, control0), "/etc/systemd/system/kube-apiserver.service");
});

test("by default a stopping API server keeps serving for 5s after /readyz fails, then drains its watches", () => {
    const ours = parseUnit(renderApiServerUnit(DEFAULTS, control0)).flags;
    const theirs = parseUnit(seed["/etc/systemd/system/kube-apiserver.service"]).flags;
    assert.deepEqual(ours, [...theirs, "--feature-gates=APIServerTracing=false",
        "--shutdown-delay-duration=3s", "--shutdown-watch-termination-grace-period=3s"]);
    const old = parseUnit(renderApiServerUnit({ ...DEFAULTS, kubernetesVersion: "1.26.9" }, control0)).flags;
    assert.deepEqual(old.slice(theirs.length), ["--shutdown-delay-duration=3s"],
        "no watch grace flag before 1.27, nor the tracing gate, off by default before 1.27");
});

test("by default etcd's client in kube-apiserver keeps retrying: the tracing gate off from 1.27 until it is locked on (1.34)", () => {
    const gate = (config: typeof DEFAULTS) => parseUnit(renderApiServerUnit(config, control0)).flags
        .filter(f => f.startsWith("--feature-gates="));
    assert.deepEqual(gate(DEFAULTS), ["--feature-gates=APIServerTracing=false"]);
    assert.deepEqual(gate({ ...DEFAULTS, kubernetesVersion: "1.33.1" }), ["--feature-gates=APIServerTracing=false"]);
    assert.deepEqual(gate({ ...DEFAULTS, kubernetesVersion: "1.34.0" }), [], "locked on: the flag would be refused");
    assert.deepEqual(gate({ ...DEFAULTS, etcdClientRetries: false }), [], "false: the seed's flags");
    assert.deepEqual(gate({ ...DEFAULTS, apiServerExtraArgs: { "feature-gates": "Foo=true" } }), ["--feature-gates=Foo=true"],
        "an operator's feature gates replace the flag");
});

test("kube-controller-manager.service matches the seed's and runs its own binary", () => {
    const unit = renderControllerManagerUnit(DEFAULTS);
    assertSameUnit(unit, "/etc/systemd/system/kube-controller-manager.service");
    assert.match(unit, /^ExecStart=\/usr\/local\/bin\/kube-controller-manager /m);
});

test("kube-scheduler.service and its config match the seed's", () => {
    assertSameUnit(renderSchedulerUnit(DEFAULTS), "/etc/systemd/system/kube-scheduler.service");
    const unquote = (text: string) => text.replace(/"/g, "");
    assert.equal(unquote(renderSchedulerConfig(DEFAULTS)), unquote(seed["/etc/kubernetes/config/kube-scheduler.yaml"]));
});

test("ldirectord.cf is the seed's, one real= line per node; by default it checks /readyz", () => {
    assert.equal(renderLdirectordConfig(SEED_CONFIG), seed["/etc/ha.d/ldirectord.cf"]);
    assert.equal(renderLdirectordConfig(DEFAULTS),
        seed["/etc/ha.d/ldirectord.cf"].replace(`request="healthz"`, `request="readyz"`));
    const five = { ...DEFAULTS, nodes: [1, 2, 3, 4, 5].map(i => ({ name: `c${i}`, address: `10.1.0.${i}` })) };
    const reals = renderLdirectordConfig(five).split("\n").filter(l => l.trim().startsWith("real="));
    assert.deepEqual(reals.map(l => l.trim()), [1, 2, 3, 4, 5].map(i => `real=10.1.0.${i}:6443 gate`));
});

test("the ARP sysctl file is the seed's", () => {
    assert.equal(renderArpSysctl(), seedArpSysctl());
});

test("flags follow config: etcd cluster, etcd servers, CIDRs, ports, verbosity, extra args", () => {
    const config = {
        ...DEFAULTS, arch: "amd64" as const, serviceCidr: "10.96.0.0/12", clusterCidr: "10.244.0.0/16",
        nodePortRange: "31000-31999", logLevel: 4,
        nodes: [{ name: "a", address: "10.0.0.5" }],
        apiServerExtraArgs: { "event-ttl": "2h", "profiling": "false" },
    };
    const etcd = parseUnit(renderEtcdUnit(config, config.nodes[0]));
    assert.ok(etcd.flags.includes("--initial-cluster=a=https://10.0.0.5:2380"));
    assert.ok(etcd.sections.Service.includes("Environment=ETCD_UNSUPPORTED_ARCH=amd64"));
    const api = parseUnit(renderApiServerUnit(config, config.nodes[0]));
    for (const flag of ["--etcd-servers=https://10.0.0.5:2379", "--apiserver-count=1", "--service-cluster-ip-range=10.96.0.0/12",
        "--service-node-port-range=31000-31999", "--v=4", "--event-ttl=2h", "--profiling=false", "--advertise-address=10.0.0.5"]) {
        assert.ok(api.flags.includes(flag), flag);
    }
    assert.ok(!api.flags.includes("--event-ttl=1h"), "an extra arg overrides the seed's flag in place");
    const cm = parseUnit(renderControllerManagerUnit(config));
    assert.ok(cm.flags.includes("--cluster-cidr=10.244.0.0/16"));
    assert.ok(cm.flags.includes("--service-cluster-ip-range=10.96.0.0/12"));
});

test("the scheduler config's apiVersion fits the Kubernetes release", () => {
    assert.equal(schedulerConfigApiVersion("1.22.17"), "kubescheduler.config.k8s.io/v1beta2");
    assert.equal(schedulerConfigApiVersion("1.28.3"), "kubescheduler.config.k8s.io/v1beta3");
    assert.equal(schedulerConfigApiVersion("1.29.0"), "kubescheduler.config.k8s.io/v1");
    assert.equal(schedulerConfigApiVersion("1.31.2"), "kubescheduler.config.k8s.io/v1");
});

test("the serving certificate's SANs cover nodes, the VIP, loopback and the kubernetes Service", () => {
    const sans = kubernetesSans(DEFAULTS);
    assert.deepEqual(sans.ipAddresses, ["192.168.1.11", "192.168.1.12", "192.168.1.13", "192.168.1.21", "127.0.0.1", "10.32.0.1"]);
    for (const name of ["control0", "control1", "control2", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
        "kubernetes.default.svc.cluster", "kubernetes.default.svc.cluster.local"]) {
        assert.ok(sans.dnsNames.includes(name), name);
    }
    assert.ok(kubernetesSans({ ...DEFAULTS, serviceCidr: "10.96.0.0/12" }).ipAddresses.includes("10.96.0.1"));
    const dual = kubernetesSans({ ...DEFAULTS, serviceCidr: "10.32.0.0/16,fd00:10:32::/108" }).ipAddresses;
    assert.ok(dual.includes("10.32.0.1") && !dual.includes("fd00:10:32::1"), "dual-stack: the primary block's first IP only");
});

test("YAML is written for Kubernetes' YAML 1.1 reader: strings (and keys) that 1.1 reads as anything else are quoted", () => {
    const document = {
        strings: ["on", "yes", "y", "1:20", "0755", "1.28", "~", "", "a: b"],
        plain: ["192.168.1.11", "fd00::/108", "system:kube-scheduler", "https://kubernetes:6443"], n: 1, empty: {},
    };
    const text = toYaml(document);
    assert.equal(text, [
        "strings:", '- "on"', '- "yes"', '- "y"', '- "1:20"', '- "0755"', '- "1.28"', '- "~"', '- ""', '- "a: b"',
        "plain:", "- 192.168.1.11", "- fd00::/108", "- system:kube-scheduler", "- https://kubernetes:6443", '"n": 1', "empty: {}", "",
    ].join("\n"));
    assert.deepEqual(parse(text, { version: "1.1" }), document, "read back by a YAML 1.1 reader");
    assert.deepEqual(parse(text), document, "read back by a YAML 1.2 reader");
});

test("kubeconfigs point at https://kubernetes:6443 with the client's identity embedded", () => {
    const text = renderKubeconfig({
        clusterName: "kubernetes", server: apiServerUrl(DEFAULTS), caCertPem: "CA", userName: "system:kube-scheduler",
        clientCertPem: "CERT", clientKeyPem: "KEY",
    });
    const b64 = (s: string) => Buffer.from(s).toString("base64");
    assert.equal(text, [
        "apiVersion: v1", "kind: Config", "clusters:", "- cluster:", `    certificate-authority-data: ${b64("CA")}`,
        "    server: https://kubernetes:6443", "  name: kubernetes", "contexts:", "- context:", "    cluster: kubernetes",
        "    user: system:kube-scheduler", "  name: default", "current-context: default", "preferences: {}", "users:",
        "- name: system:kube-scheduler", "  user:", `    client-certificate-data: ${b64("CERT")}`,
        `    client-key-data: ${b64("KEY")}`, "",
    ].join("\n"));
});

test("the encryption config holds the aescbc key, identity as fallback", () => {
    const text = renderEncryptionConfig("c2VjcmV0");
    assert.match(text, /kind: EncryptionConfiguration\napiVersion: apiserver.config.k8s.io\/v1\n/);
    assert.match(text, /- aescbc:\n\s+keys:\n\s+- name: key1\n\s+secret: c2VjcmV0\n\s+- identity: \{\}\n/);
});

test("the VIP unit holds the address on lo after applying the ARP settings", () => {
    const unit = renderVipUnit(DEFAULTS, "lo", "/etc/sysctl.d/50-vip-arp.conf");
    assert.match(unit, /\nExecStartPre=sysctl -p \/etc\/sysctl.d\/50-vip-arp.conf\nExecStart=ip addr replace 192\.168\.1\.21\/32 dev lo\n/);
    assert.match(unit, /^ExecStop=-ip addr del 192\.168\.1\.21\/32 dev lo$/m);
    const gateway = renderVipUnit(DEFAULTS, "enp0s1");
    assert.match(gateway, /^ExecStart=ip addr replace 192\.168\.1\.21\/32 dev enp0s1$/m);
    assert.doesNotMatch(gateway, /sysctl/);
});

test("a rendered unit's command line as systemd passes it: every flag a word, the seed's quoted value unquoted", () => {
    const units: [string, string][] = [
        ["/usr/local/bin/etcd", renderEtcdUnit(DEFAULTS, control0)],
        ["/usr/local/bin/kube-apiserver", renderApiServerUnit(DEFAULTS, control0)],
        ["/usr/local/bin/kube-controller-manager", renderControllerManagerUnit(DEFAULTS)],
        ["/usr/local/bin/kube-scheduler", renderSchedulerUnit(DEFAULTS)],
    ];
    for (const [program, unit] of units) {
        const command = execStartOf(unit)!;
        assert.equal(command.program, program);
        assert.deepEqual(command.args, parseUnit(unit).flags.map(f => f.replace("='api/all=true'", "=api/all=true")), program);
        command.args.forEach(arg => assert.match(arg, /^--[a-z0-9-]+(=\S+)?$/, `${program}: ${arg}`));
    }
    assert.ok(execStartOf(renderApiServerUnit(DEFAULTS, control0))!.args.includes("--runtime-config=api/all=true"));
    assert.equal(execStartOf("[Unit]\nDescription=x\n"), undefined);
});
