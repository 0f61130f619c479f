// Config: the seed's defaults, the project file in step with the code, and a table of bad configs, each
// failing with its own message that names the key.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { test } from "node:test";
import { CONFIG_KEYS, DEFAULTS, validateConfig } from "../../components/config";
import { firstServiceIP, parseAddress, parseCidr } from "../../components/net";
import { portClashes } from "../../components/preflight";
import { renderProjectFile } from "../../components/projectFile";
import { devConfig, runProgram } from "./program";

const ROOT = path.join(__dirname, "..", "..", "..");
const noFiles = { exists: () => false };
const allFiles = { exists: () => true };

test("the defaults are the seed's lab", () => {
    const { config, errors, warnings } = validateConfig({}, noFiles);
    assert.deepEqual(errors, []);
    assert.deepEqual(warnings, []);
    assert.deepEqual(config.nodes.map(n => `${n.name}=${n.address}`), ["control0=192.168.1.11", "control1=192.168.1.12", "control2=192.168.1.13"]);
    assert.equal(config.vip, "192.168.1.21");
    assert.equal(config.arch, "arm64");
    assert.equal(config.etcdVersion, "3.5.9");
    assert.equal(config.kubernetesVersion, "1.28.3");
    assert.equal(firstServiceIP(config.serviceCidr), "10.32.0.1");
});

test("Pulumi.yaml declares every key, rendered from the code (npm run gen:project)", () => {
    const file = fs.readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8");
    assert.equal(file, renderProjectFile());
    for (const key of CONFIG_KEYS) {
        assert.match(file, new RegExp(`^  ${key}:\\n    description: `, "m"), key);
    }
});

test("Pulumi.dev.yaml sets only known keys, to the seed's values", () => {
    const file = fs.readFileSync(path.join(ROOT, "Pulumi.dev.yaml"), "utf8");
    const keys = [...file.matchAll(/^  control-plane:(\w+):/gm)].map(m => m[1]);
    assert.ok(keys.length >= 10);
    keys.forEach(key => assert.ok((CONFIG_KEYS as string[]).includes(key), key));
    for (const key of ["vip", "arch", "etcdVersion", "kubernetesVersion", "serviceCidr", "clusterCidr", "nodePortRange", "nic"] as const) {
        assert.match(file, new RegExp(`^  control-plane:${key}: ${String(DEFAULTS[key]).replace(/\./g, "\\.")}$`, "m"), key);
    }
});

const BAD: [string, Record<string, unknown>, RegExp][] = [
    ["a bad IPv4 address", { nodes: [{ name: "control0", address: "192.168.1.256" }] }, /control-plane:nodes: node #0: address "192.168.1.256" is not an IPv4 address/],
    ["a bad host name", { nodes: [{ name: "Control_0", address: "192.168.1.11" }] }, /control-plane:nodes: node #0: name "Control_0" is not a valid host name/],
    ["duplicate node names", { nodes: [{ name: "a", address: "192.168.1.11" }, { name: "a", address: "192.168.1.12" }, { name: "b", address: "192.168.1.13" }] }, /control-plane:nodes: host name a is used twice/],
    ["duplicate addresses", { nodes: [{ name: "a", address: "192.168.1.11" }, { name: "b", address: "192.168.1.11" }, { name: "c", address: "192.168.1.13" }] }, /control-plane:nodes: address 192.168.1.11 is used twice/],
    ["a node at the gateway's address", { gateway: { name: "gateway", address: "192.168.1.11" } }, /address 192.168.1.11 is used twice/],
    ["zero control nodes", { nodes: [] }, /control-plane:nodes: at least one control node is required/],
    ["the VIP equal to a node address", { vip: "192.168.1.12" }, /control-plane:vip: 192.168.1.12 is the address of control1/],
    ["a malformed VIP", { vip: "192.168.1" }, /control-plane:vip: "192.168.1" is not an IPv4 address/],
    ["overlapping CIDRs", { serviceCidr: "10.0.0.0/16" }, /control-plane:serviceCidr: 10.0.0.0\/16 overlaps clusterCidr 10.0.0.0\/12/],
    ["a CIDR that is not a block", { clusterCidr: "10.0.0.1/12" }, /control-plane:clusterCidr: "10.0.0.1\/12" is not a CIDR block/],
    ["a CIDR holding a node", { clusterCidr: "192.168.0.0/16" }, /control-plane:clusterCidr: 192.168.0.0\/16 contains the address of control0/],
    ["an unknown arch", { arch: "x86_64" }, /control-plane:arch: unknown architecture "x86_64" \(known: amd64, arm64\)/],
    ["a malformed etcd version", { etcdVersion: "v3.5.9" }, /control-plane:etcdVersion: "v3.5.9" is not a version/],
    ["a malformed Kubernetes version", { kubernetesVersion: "1.28" }, /control-plane:kubernetesVersion: "1.28" is not a version/],
    ["an unsupported Kubernetes version", { kubernetesVersion: "1.19.0" }, /control-plane:kubernetesVersion: 1.19.0 is not supported/],
    ["a reversed port range", { nodePortRange: "32767-30000" }, /control-plane:nodePortRange: "32767-30000" is not a port range/],
    ["a port range past 65535", { nodePortRange: "30000-70000" }, /control-plane:nodePortRange: "30000-70000" is not a port range/],
    ["a port range over the API port", { nodePortRange: "6000-7000" }, /control-plane:nodePortRange: 6000-7000 contains the API port 6443/],
    ["a bad checksum", { sha256: { etcd: "abc" } }, /control-plane:sha256: etcd: "abc" is not a sha256 hex digest/],
    ["a checksum for an unknown artifact", { sha256: { kubelet: "a".repeat(64) } }, /control-plane:sha256: unknown artifact kubelet/],
    ["a bad mirror URL", { mirrorUrl: "ftp://mirror" }, /control-plane:mirrorUrl: "ftp:\/\/mirror" is not an http\(s\) URL/],
    ["a malformed host key", { hostKeys: { control0: "AAAA" } }, /control-plane:hostKeys: control0: expected "ssh-ed25519 AAAA..."/],
    ["a flag written with its --", { apiServerExtraArgs: { "--v": "3" } }, /control-plane:apiServerExtraArgs: "--v" is not a flag name \(write it without the leading --\)/],
    ["a flag value systemd would split", { apiServerExtraArgs: { "event-ttl": "2 h" } }, /control-plane:apiServerExtraArgs: event-ttl: "2 h" has whitespace, a quote, \$ or %, which systemd would split, unquote or expand in the unit/],
    ["a flag value systemd would expand", { etcdExtraArgs: { "name": "$HOSTNAME" } }, /control-plane:etcdExtraArgs: name: "\$HOSTNAME" has whitespace, a quote, \$ or %/],
    ["a quoted flag value", { schedulerExtraArgs: { "v": "'3'" } }, /control-plane:schedulerExtraArgs: v: "'3'" has whitespace, a quote/],
    ["a wrong type", { apiPort: "6443" }, /control-plane:apiPort: expected a number, got a string/],
    ["an unknown key", { vipname: "k8s" }, /control-plane:vipname: unknown key/],
    ["an unknown profile", { profile: "cis" }, /control-plane:profile: unknown profile "cis" \(known: seed, hardened\)/],
    ["etcd's HTTP port past 65535", { etcdClientHttpPort: 70000 }, /control-plane:etcdClientHttpPort: 70000 is not a TCP port/],
    ["a bad dial limit", { sshDialAttempts: 0 }, /control-plane:sshDialAttempts: 0 is not a whole number from 1 to 20/],
    // IPv6 and dual-stack: what Kubernetes 1.28 refuses, and what this design cannot serve yet, each said so.
    ["an IPv4 address with a leading zero", { vip: "192.168.01.21" }, /control-plane:vip: "192.168.01.21" is not an IPv4 address/],
    ["a gateway address that is no IP address", { gateway: { name: "gateway", address: "fd00::1::2" } }, /control-plane:gateway: gateway: address "fd00::1::2" is not an IP address/],
    ["an IPv6 address with a zone", { gateway: { name: "gateway", address: "fe80::1%enp0s1" } }, /control-plane:gateway: gateway: address "fe80::1%enp0s1" is not an IP address/],
    ["an IPv6 VIP", { vip: "fd00::21" }, /control-plane:vip: fd00::21 is IPv6, which this design cannot serve yet: the VIP is IPv4 \(IPVS direct routing .*arp_ignore and arp_announce\)/],
    ["an IPv6 control node", { nodes: [{ name: "control0", address: "fd00::11" }] }, /control-plane:nodes: node #0: address fd00::11 is IPv6, which this design cannot serve yet: control nodes need IPv4 addresses/],
    ["an IPv6 primary service block", { serviceCidr: "fd00:10:32::/108,10.32.0.0/16" }, /control-plane:serviceCidr: fd00:10:32::\/108,10.32.0.0\/16: the first \(primary\) block is IPv6, which this design cannot serve yet: .*put the IPv4 block first/],
    ["an IPv6-only service range", { serviceCidr: "fd00:10:32::/108" }, /control-plane:serviceCidr: fd00:10:32::\/108: the first \(primary\) block is IPv6/],
    ["two IPv4 service blocks", { serviceCidr: "10.32.0.0/16,10.33.0.0/16" }, /control-plane:serviceCidr: 10.32.0.0\/16,10.33.0.0\/16: a dual-stack range is one IPv4 and one IPv6 block/],
    ["three service blocks", { serviceCidr: "10.32.0.0/16,fd00:10:32::/108,fd00:10:33::/108" }, /control-plane:serviceCidr: ".*" is not a CIDR block such as 10.32.0.0\/16, or an IPv4 and an IPv6 block joined by a comma \(dual-stack\)/],
    ["an IPv6 block that is not a block", { serviceCidr: "10.32.0.0/16,fd00:10:32::1/108" }, /control-plane:serviceCidr: "10.32.0.0\/16,fd00:10:32::1\/108" is not a CIDR block/],
    ["an IPv4 service range larger than kube-apiserver takes", { serviceCidr: "10.32.0.0/11" }, /control-plane:serviceCidr: 10.32.0.0\/11 is too large: kube-apiserver takes at most a \/12 \(2\^20 addresses\)/],
    ["an IPv6 service block larger than kube-apiserver takes", { serviceCidr: "10.32.0.0/16,fd00:10:32::/64" }, /control-plane:serviceCidr: fd00:10:32::\/64 is too large: kube-apiserver takes at most a \/108/],
    ["a service block too small", { serviceCidr: "10.32.0.0/31" }, /control-plane:serviceCidr: 10.32.0.0\/31 is too small for services/],
    ["overlapping IPv6 blocks", { serviceCidr: "10.32.0.0/16,fd00:10::/108", clusterCidr: "10.0.0.0/12,fd00:10::/56" }, /control-plane:serviceCidr: fd00:10::\/108 overlaps clusterCidr fd00:10::\/56/],
    ["an IPv6 pod block holding the gateway", { gateway: { name: "gateway", address: "fd00:10::10" }, clusterCidr: "10.0.0.0/12,fd00:10::/56" }, /control-plane:clusterCidr: fd00:10::\/56 contains the address of gateway \(fd00:10::10\)/],
];

for (const [what, raw, message] of BAD) {
    test(`rejected: ${what}`, () => {
        const { errors } = validateConfig(raw, noFiles);
        assert.ok(errors.some(e => message.test(e)), `${message} in ${JSON.stringify(errors)}`);
    });
}

test("every problem is reported at once", () => {
    const { errors } = validateConfig({ vip: "x", arch: "mips", etcdVersion: "3", nodePortRange: "a-b" }, noFiles);
    assert.equal(errors.length, 4, JSON.stringify(errors));
});

test("IPv6 where this design serves it: a dual-stack serviceCidr (IPv4 first), clusterCidr either way, the gateway's address", () => {
    const { config, errors } = validateConfig({
        serviceCidr: "10.32.0.0/16,fd00:10:32::/108", clusterCidr: "fd00:10::/56,10.0.0.0/12",
        gateway: { name: "gateway", address: "fd00:1::10" },
    }, noFiles);
    assert.deepEqual(errors, []);
    assert.equal(config.serviceCidr, "10.32.0.0/16,fd00:10:32::/108");
    assert.equal(firstServiceIP(config.serviceCidr), "10.32.0.1", "the kubernetes Service IP comes from the primary block");
    assert.deepEqual(validateConfig({ clusterCidr: "fd00:10::/48" }, noFiles).errors, [], "an IPv6-only pod range");
});

test("addresses and blocks are read strictly, in both families; the first service IP of either family", () => {
    for (const bad of ["192.168.1", "192.168.01.1", "0x7f.0.0.1", "fe80::1%lo", "fd00::1::2", "", " 10.0.0.1"]) {
        assert.equal(parseAddress(bad), undefined, bad);
    }
    assert.equal(parseAddress("fd00:0:0::10")?.toString(), "fd00::10");
    assert.equal(parseAddress("192.168.1.11")?.kind(), "ipv4");
    assert.equal(parseCidr("fd00:10:32::/108")?.hostBits, 20);
    assert.equal(parseCidr("fd00:10:32::1/108"), undefined, "not the block's first address");
    assert.equal(parseCidr("10.0.0.0/33"), undefined);
    assert.equal(firstServiceIP("fd00:10:32::/108"), "fd00:10:32::1");
    assert.equal(firstServiceIP("10.32.255.0/24"), "10.32.255.1");
});

test("warnings, not errors: a host key of a host not configured (one that joins later, or left), an even number of control nodes", () => {
    const spare = validateConfig({ hostKeys: { control9: "ssh-ed25519 AAAA" } }, noFiles);
    assert.deepEqual(spare.errors, [], "a pinned key of a node not (or no longer) in nodes is kept");
    assert.match(spare.warnings.join("\n"), /control-plane:hostKeys: control9 is not a configured host \(hosts: control0, control1, control2, gateway\): its key is not used/);
    const { errors, warnings } = validateConfig({ nodes: [{ name: "a", address: "192.168.1.11" }, { name: "b", address: "192.168.1.12" }] }, noFiles);
    assert.deepEqual(errors, []);
    assert.match(warnings.join("\n"), /control-plane:nodes: 2 control nodes/);
});

test("extra flag values may be numbers or booleans (pulumi config set --path stores them so)", () => {
    const { config, errors } = validateConfig({ schedulerExtraArgs: { v: 3, profiling: false } }, noFiles);
    assert.deepEqual(errors, []);
    assert.deepEqual(config.schedulerExtraArgs, { v: "3", profiling: "false" });
    assert.match(validateConfig({ schedulerExtraArgs: { v: ["3"] } }, noFiles).errors.join(), /v: the value must be a single-line/);
});

test("pkiDir must hold chapter 4's files", () => {
    assert.match(validateConfig({ pkiDir: "/srv/pki" }, noFiles).errors.join("\n"), /control-plane:pkiDir: \/srv\/pki lacks ca.pem, ca-key.pem/);
    assert.deepEqual(validateConfig({ pkiDir: "/srv/pki" }, allFiles).errors, []);
});

test("two daemons of a control node on one port are refused, naming both and the key that moved one", () => {
    assert.deepEqual(portClashes(DEFAULTS), []);
    assert.deepEqual(portClashes({ ...DEFAULTS, etcdClientHttpPort: 2380 }),
        ["etcd's HTTP port (control-plane:etcdClientHttpPort) and etcd's peer port are the same port, 2380: each daemon needs its own"]);
    assert.deepEqual(portClashes({ ...DEFAULTS, apiPort: 10259 }),
        ["the scheduler's port and the API server's port (control-plane:apiPort) are the same port, 10259: each daemon needs its own"]);
    assert.deepEqual(portClashes({ ...DEFAULTS, etcdClientHttpPort: 2380, etcdVersion: "3.5.7" }), [],
        "an etcd without the flag listens on no HTTP port of its own");
});

test("the program refuses such a config before any resource", () => {
    const refused = runProgram(devConfig({ etcdClientHttpPort: 2380 }));
    assert.match(refused.error ?? "", /invalid configuration:\n  - etcd's HTTP port \(control-plane:etcdClientHttpPort\) and etcd's peer port are the same port, 2380/);
    assert.deepEqual(refused.registrations.filter(r => r.type !== "pulumi:pulumi:Stack" && !r.read), [], "no resource registered");
});
