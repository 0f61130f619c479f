// Drift under Pulumi's mocks: the program with hosts as the probe finds them (fake facts) and the stack outputs
// of its last deployment. A hand edit shows as an update of exactly the steps concerned (their scripts carry a
// new marker, every other step is byte for byte as without drift), the run after the repair is clean, a keyless
// preview shows nothing, every host is probed once, and the version skew policy refuses before any resource.
import { strict as assert } from "assert";
import { describe, test } from "node:test";
import { emptyFacts, HostFacts } from "../../components/remote/probe";
import type { ProgramRun } from "./harness";
import { byName, changed, devConfig, isSecret, plain, reveal, runProgram, scriptOf, steps } from "./program";

const markersOf = (run: ProgramRun) => run.outputs.driftMarkers as Record<string, string>;
const copy = <T>(value: T): T => JSON.parse(JSON.stringify(value));
const SHA_OF_ANOTHER_BINARY = "f".repeat(64);

/** The e2e's hand edits (test/e2e/drift.sh), on hosts otherwise in sync. */
function handEdited(inSync: Record<string, HostFacts>): Record<string, HostFacts> {
    const hosts = copy(inSync);
    hosts.control1.files["/etc/systemd/system/kube-apiserver.service"].sha256 = "e".repeat(64); // --v=2 -> --v=6
    delete hosts.control1.files["/etc/sysctl.d/50-vip-arp.conf"];
    hosts.control2.files["/var/lib/kubernetes/kubernetes-key.pem"].mode = "644";
    hosts.control0.files["/usr/local/bin/kube-scheduler"].sha256 = SHA_OF_ANOTHER_BINARY;
    hosts.control2.units["kube-scheduler"] = { enabled: "disabled", active: "inactive" };
    hosts.gateway.sysctls["net.ipv4.vs.expire_nodest_conn"] = "0"; // sysctl -w by hand: the file is as it was
    return hosts;
}
const DRIFTED = ["kube-apiserver-control1-service", "api-load-balancer-control1-arp-sysctl", "kube-apiserver-control2-key",
    "kube-scheduler-control0-binary", "kube-scheduler-control2-service", "api-load-balancer-ipvs-sysctl"].sort();
/** Every step an up with those hand edits runs: the drifted ones, and the drain around the API server's restart. */
const CHANGED = [...DRIFTED, "kube-apiserver-control1-out-of-load-balancer", "kube-apiserver-control1-in-load-balancer"].sort();

describe("drift: a hand edit shows as an update of the steps concerned, and the run after the repair is clean", () => {
    // The lab's kind of stack: sha256 sums for the Kubernetes binaries.
    const config = devConfig({ sha256: { "kube-scheduler": "a".repeat(64), "kube-apiserver": "b".repeat(64) } });
    const first = runProgram(config);
    const inSync = first.expectedFacts!;
    const steady = runProgram(config, { probe: { hosts: inSync, lastOutputs: first.outputs } });
    const drifted = runProgram(config, { probe: { hosts: handEdited(inSync), lastOutputs: steady.outputs } });
    const repaired = runProgram(config, { probe: { hosts: inSync, lastOutputs: drifted.outputs } });

    test("the first up (every step new): every marker empty, no marker in any script, one probe per host", () => {
        assert.equal(first.error, undefined, first.error);
        const markers = markersOf(first);
        // Per node: etcd's binary, 3 files, data dir, service; the API server's binary, 7 files, service; the
        // controller manager's binary, kubeconfig, service; the scheduler's binary, 2 files, service; the VIP's
        // sysctl file and unit. On the gateway: the VIP, IPVS's module and sysctl files, ldirectord's CA and
        // drop-in, tmpfiles, ldirectord.cf, ldirectord.
        assert.equal(Object.keys(markers).length, 3 * (6 + 9 + 3 + 4 + 2) + 8);
        assert.ok(Object.values(markers).every(m => m === ""));
        for (const r of steps(first)) {
            for (const key of ["create", "update"]) {
                assert.doesNotMatch(String(r.inputs[key] ?? ""), /drift repaired/, `${r.name}.${key}`);
            }
        }
        assert.deepEqual(first.probes.map(p => p.host).sort(), ["control0", "control1", "control2", "gateway"]);
    });

    test("the last deployment's markers come from a reference to this very stack, read, not managed", () => {
        const reads = first.registrations.filter(r => r.read);
        assert.deepEqual(reads.map(r => [r.type, r.name, r.inputs.name]),
            [["pulumi:pulumi:StackReference", "last-deployment", "organization/control-plane/test"]]);
        assert.ok(steps(first).every(r => !r.dependencies.includes(reads[0].urn)), "no step depends on the read");
    });

    test("each host's one probe asks for everything its steps install, and the installed releases", () => {
        const query = (host: string) => first.probes.find(p => p.host === host)!.query;
        const control0 = query("control0");
        for (const file of ["/etc/etcd/kubernetes-key.pem", "/var/lib/kubernetes/ca-key.pem", "/var/lib/kubernetes/kube-scheduler.kubeconfig",
            "/etc/kubernetes/config/kube-scheduler.yaml", "/etc/systemd/system/etcd.service", "/etc/systemd/system/kubernetes-vip.service",
            "/etc/sysctl.d/50-vip-arp.conf", "/usr/local/bin/kube-scheduler", "/usr/local/bin/kube-apiserver"]) {
            assert.ok(control0.files.includes(file), file);
        }
        // etcd's binaries come from a tarball, and the controller manager has no sha256 in this config: not read.
        assert.deepEqual([...control0.stats].sort(), ["/usr/local/bin/etcd", "/usr/local/bin/etcdctl", "/usr/local/bin/etcdutl",
            "/usr/local/bin/kube-controller-manager", "/var/lib/etcd"]);
        assert.deepEqual([...control0.units].sort(), ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubernetes-vip"]);
        assert.deepEqual(control0.addresses, [{ device: "lo", address: "192.168.1.21" }]);
        assert.deepEqual([...control0.sysctls].sort(), ["net.ipv4.conf.all.arp_announce", "net.ipv4.conf.all.arp_ignore"]);
        assert.deepEqual(control0.versions.map(v => v.binary).sort(), ["/usr/local/bin/etcd", "/usr/local/bin/kube-apiserver"]);
        const gateway = query("gateway");
        assert.deepEqual([...gateway.files].sort(), ["/etc/ha.d/kubernetes-ca.pem", "/etc/ha.d/ldirectord.cf",
            "/etc/modules-load.d/kubernetes-ipvs.conf", "/etc/sysctl.d/50-kubernetes-ipvs.conf",
            "/etc/systemd/system/kubernetes-vip.service", "/etc/systemd/system/ldirectord.service.d/kubernetes-ca.conf",
            "/etc/tmpfiles.d/ldirectord-subsys.conf"]);
        assert.deepEqual(gateway.sysctls, ["net.ipv4.vs.expire_nodest_conn"]);
        assert.deepEqual([...gateway.units].sort(), ["kubernetes-vip", "ldirectord"]);
        assert.deepEqual(gateway.addresses, [{ device: "enp0s1", address: "192.168.1.21" }]);
        assert.deepEqual(gateway.versions, []);
    });

    test("steady state (in sync, the last markers): every step byte for byte as in the first up", () => {
        assert.equal(steady.error, undefined, steady.error);
        assert.deepEqual(changed(first, steady), []);
        assert.deepEqual(markersOf(steady), markersOf(first));
    });

    test("the binaries' sums a run read, with their identity, go to the next run's probes; what is not one is dropped", () => {
        const identity = "123637922 39 2417086 1795886576.639438723 1795886576.639438723";
        const hosts = copy(inSync);
        const apiserver = "/usr/local/bin/kube-apiserver";
        hosts.control0.files[apiserver] = { ...hosts.control0.files[apiserver], identity };
        const read = runProgram(config, { probe: { hosts, lastOutputs: steady.outputs } });
        assert.equal(read.error, undefined, read.error);
        const sum = `${identity} ${hosts.control0.files[apiserver].sha256}`;
        assert.deepEqual(read.outputs.probeSums, { control0: { [apiserver]: sum } });
        assert.deepEqual(changed(steady, read), [], "an output, not a step");
        const next = runProgram(config, { probe: { hosts, lastOutputs: {
            ...read.outputs, probeSums: { ...(read.outputs.probeSums as object), control1: { [apiserver]: "rm -rf /" }, gateway: "nope" } } } });
        assert.equal(next.error, undefined, next.error);
        const known = (host: string) => next.probes.find(p => p.host === host)!.query.known;
        assert.deepEqual(known("control0"), { [apiserver]: sum });
        assert.deepEqual(known("control1"), {});
        assert.equal(known("gateway"), undefined);
        assert.deepEqual(changed(steady, next), []);
    });

    test("hand edits: exactly the steps concerned change, by a marker in their create and update scripts", () => {
        assert.equal(drifted.error, undefined, drifted.error);
        assert.deepEqual(changed(steady, drifted), CHANGED);
        const markers = markersOf(drifted);
        assert.deepEqual(Object.keys(markers).filter(name => markers[name] !== "").sort(), DRIFTED);
        for (const name of DRIFTED) {
            const step = byName(drifted, name);
            const was = byName(steady, name);
            assert.match(markers[name], /^[0-9a-f]{16}$/);
            for (const key of ["create", "update"]) {
                const text = scriptOf(plain(step, key));
                assert.equal(text, scriptOf(plain(was, key)).replace("set -euo pipefail\n", `set -euo pipefail\n# drift repaired: ${markers[name]}\n`),
                    `${name}.${key}: the marker line is the only change`);
            }
            assert.equal(step.inputs.delete, was.inputs.delete, "its delete is the same");
            assert.deepEqual(reveal(step.inputs.stdin), reveal(was.inputs.stdin), "its content is the same");
            assert.deepEqual(step.inputs.triggers, was.inputs.triggers, "an update, never a replacement");
        }
    });

    test("each drifted step's update repairs what differs", () => {
        const update = (name: string) => scriptOf(plain(byName(drifted, name), "update"));
        assert.match(update("kube-apiserver-control1-service"),
            /install -m 0644 "\$tmp" '\/etc\/systemd\/system\/kube-apiserver.service'\nsystemctl enable --no-reload --quiet 'kube-apiserver'\nif \[ "\$\(systemctl show -p NeedDaemonReload --value 'kube-apiserver'\)" != no \]; then systemctl daemon-reload; fi\nsystemctl restart 'kube-apiserver'/);
        assert.match(update("kube-scheduler-control2-service"), /systemctl enable --no-reload --quiet 'kube-scheduler'\n.*NeedDaemonReload.*\nsystemctl restart 'kube-scheduler'\n[\s\S]*waiting up to/,
            "a disabled, stopped scheduler comes back enabled and running, and the step waits for it");
        assert.match(update("kube-apiserver-control2-key"), /cat > "\$tmp"\nchmod 0600 "\$tmp"\nmv -f "\$tmp" "\$target"/);
        assert.match(update("api-load-balancer-control1-arp-sysctl"), /target='\/etc\/sysctl.d\/50-vip-arp.conf'/);
        assert.match(update("kube-scheduler-control0-binary"), /expected='a{64}'[\s\S]*install -m 0755 "\$work"\/kube-scheduler '\/usr\/local\/bin\/kube-scheduler'/);
    });

    test("only the services whose own step drifted restart; a file's repair restarts nothing", () => {
        const restarted = steps(drifted).filter(r => changed(steady, drifted).includes(r.name))
            .filter(r => /systemctl (restart|reload)/.test(scriptOf(plain(r, "update")))).map(r => r.name).sort();
        assert.deepEqual(restarted, ["kube-apiserver-control1-service", "kube-scheduler-control2-service"]);
    });

    test("markers and scripts stay plain: no secret, though keys' hashes are compared", () => {
        assert.ok(!isSecret(drifted.outputs.driftMarkers));
        for (const name of DRIFTED) {
            assert.ok(!isSecret(byName(drifted, name).inputs.create), name);
        }
        assert.doesNotMatch(JSON.stringify(drifted.outputs.driftMarkers), /PRIVATE KEY|MOCK/);
    });

    test("the run after the repair: in sync, each marker the repair's, every step as the repair left it (no diff)", () => {
        assert.equal(repaired.error, undefined, repaired.error);
        assert.deepEqual(markersOf(repaired), markersOf(drifted));
        assert.deepEqual(changed(drifted, repaired), []);
    });

    test("an up that failed before the repair: the next run still shows the updates", () => {
        // The outputs were saved (the markers of the failed run): a new marker, unlike the one in the state.
        const savedOutputs = runProgram(config, { probe: { hosts: handEdited(inSync), lastOutputs: drifted.outputs } });
        assert.deepEqual(changed(steady, savedOutputs), CHANGED, "against the state as before the failed up");
        assert.deepEqual(changed(drifted, savedOutputs), CHANGED, "and against a state where the steps' scripts were saved");
        // The outputs were not saved: the same facts and the same previous markers give the same markers again.
        const unsaved = runProgram(config, { probe: { hosts: handEdited(inSync), lastOutputs: steady.outputs } });
        assert.deepEqual(changed(steady, unsaved), CHANGED);
        assert.deepEqual(markersOf(unsaved), markersOf(drifted));
    });

    test("a config change with the hosts as they were: the steps change anyway; the run after is clean", () => {
        const changedConfig = { ...config, apiServerExtraArgs: { "event-ttl": "2h" } };
        const up = runProgram(changedConfig, { probe: { hosts: inSync, lastOutputs: steady.outputs } });
        assert.equal(up.error, undefined, up.error);
        assert.ok(changed(steady, up).includes("kube-apiserver-control0-service"));
        const after = runProgram(changedConfig, { probe: { hosts: up.expectedFacts!, lastOutputs: up.outputs } });
        assert.deepEqual(changed(up, after), []);
    });

    test("a stack deployed before markers existed (no driftMarkers output): every step is new, nothing changes", () => {
        const old = runProgram(config, { probe: { hosts: handEdited(inSync), lastOutputs: { apiUrl: "https://kubernetes:6443" } } });
        // Older still than the drain through the gateway: its steps act when created (graph.test.ts); nothing else differs.
        assert.deepEqual(changed(first, old).filter(name => !/^kube-apiserver-control\d-(out-of|in)-load-balancer$/.test(name)), []);
        const withDrain = runProgram(config, { probe: { hosts: handEdited(inSync), lastOutputs: { apiUrl: "https://kubernetes:6443", apiServerDrain: "gateway" } } });
        assert.deepEqual(changed(first, withDrain), []);
    });

    test("an etcd member's service repaired restarts it: a snapshot first", () => {
        const hosts = copy(inSync);
        hosts.control1.units.etcd = { enabled: "enabled", active: "failed" };
        const run = runProgram(config, { probe: { hosts, lastOutputs: steady.outputs } });
        assert.deepEqual(changed(steady, run), ["etcd-backup-before-change-snapshot", "etcd-control1-service"]);
    });

    test("an API server's service repaired restarts it: out of the load balancer first, back in after", () => {
        const hosts = copy(inSync);
        hosts.control1.units["kube-apiserver"] = { enabled: "enabled", active: "failed" };
        const run = runProgram(config, { probe: { hosts, lastOutputs: steady.outputs } });
        assert.deepEqual(changed(steady, run), ["kube-apiserver-control1-in-load-balancer",
            "kube-apiserver-control1-out-of-load-balancer", "kube-apiserver-control1-service"]);
    });

    test("a keyless preview compares nothing: the last markers, no probe, one line saying so", () => {
        const keyless = runProgram({ ...config, sshPrivateKeyPath: "/nonexistent/id_ed25519" },
            { mode: "preview", probe: { hosts: handEdited(inSync), lastOutputs: drifted.outputs } });
        assert.equal(keyless.error, undefined, keyless.error);
        assert.deepEqual(keyless.probes, []);
        assert.deepEqual(markersOf(keyless), markersOf(drifted));
        assert.deepEqual(changed(drifted, keyless), []);
        assert.equal(keyless.stderr.match(/the hosts were not compared with what the program installed/g)?.length, 1, keyless.stderr);
    });
});

describe("refusals before any resource is registered", () => {
    // The stack, and the read of the last deployment's outputs (which changes nothing), come before the refusal.
    const onlyTheStack = (run: ProgramRun) => run.registrations.filter(r => r.type !== "pulumi:pulumi:Stack" && !r.read);
    const withVersions = (kube: string, etcd: string) => {
        const hosts: Record<string, HostFacts> = {};
        for (const name of ["control0", "control1", "control2"]) {
            hosts[name] = { ...emptyFacts(),
                versions: { "/usr/local/bin/kube-apiserver": `Kubernetes v${kube}`, "/usr/local/bin/etcd": `etcd Version: ${etcd}` } };
        }
        return hosts;
    };

    test("a version that skips a minor or goes back across one, in preview too, naming the key", () => {
        for (const mode of ["preview", "up"] as const) {
            const run = runProgram(devConfig({ kubernetesVersion: "1.30.0" }), { mode, probe: { hosts: withVersions("1.28.3", "3.5.9") } });
            assert.match(run.error ?? "", /refused by the preflight checks, so nothing was changed/);
            assert.match(run.error ?? "", /control0: control-plane:kubernetesVersion: 1.30.0 is not one minor release step from the Kubernetes installed here \(\/usr\/local\/bin\/kube-apiserver --version\).*\(installed: 1.28.3\)/);
            assert.deepEqual(onlyTheStack(run), [], `${mode}: no resource registered`);
        }
        const back = runProgram(devConfig({ etcdVersion: "3.4.30" }), { probe: { hosts: withVersions("1.28.3", "3.5.9") } });
        assert.match(back.error ?? "", /control2: control-plane:etcdVersion: 3.4.30 is not one minor release step from the etcd installed here/);
    });

    test("one minor up, or a patch down, goes ahead", () => {
        const run = runProgram(devConfig({ kubernetesVersion: "1.29.0", etcdVersion: "3.5.4" }), { probe: { hosts: withVersions("1.28.3", "3.5.9") } });
        assert.equal(run.error, undefined, run.error);
        assert.ok(onlyTheStack(run).length > 100);
    });

    test("a port of the control plane held by another program, in preview too, naming the node, the port and the holder", () => {
        const hosts = withVersions("1.28.3", "3.5.9");
        hosts.control1.ports = {
            "2379": [{ pid: "198", unit: "etcd.service", process: "etcd" }],
            "2380": [{ pid: "4242", unit: "squatter.service", process: "sshd" }],
            "6443": [],
        };
        hosts.control2.ports = { "10259": [{ pid: "77", process: "nc" }] };
        for (const mode of ["preview", "up"] as const) {
            const run = runProgram(devConfig(), { mode, probe: { hosts } });
            assert.match(run.error ?? "", /refused by the preflight checks, so nothing was changed:\n/);
            assert.match(run.error ?? "", /  - control1: port 2380 \(etcd's peer port\) is in use by sshd \(pid 4242, squatter.service\), not etcd.service/);
            assert.match(run.error ?? "", /  - control2: port 10259 \(the scheduler's port\) is in use by nc \(pid 77\), not kube-scheduler.service/);
            assert.doesNotMatch(run.error ?? "", /port 2379/, "etcd's own listener is fine");
            assert.deepEqual(onlyTheStack(run), [], `${mode}: no resource registered`);
        }
        // Each control node's probe asks for the five ports; the gateway's for none.
        const run = runProgram(devConfig(), { probe: { hosts: withVersions("1.28.3", "3.5.9") } });
        assert.equal(run.error, undefined, run.error);
        for (const p of run.probes) {
            assert.deepEqual(p.query.ports, p.host === "gateway" ? [] : [2379, 2380, 2382, 6443, 10257, 10259], p.host);
        }
    });

    test("a flag the installed binary refuses, in preview too, naming the node, the daemon, the keys and its error", () => {
        const hosts = withVersions("1.28.3", "3.5.9");
        hosts.control0.commandLines = { "kube-apiserver": { state: "refused", version: "Kubernetes v1.28.3", message: "Error: unknown flag: --evnt-ttl" },
            "etcd": { state: "running" } };
        for (const mode of ["preview", "up"] as const) {
            const run = runProgram(devConfig({ apiServerExtraArgs: { "evnt-ttl": "2h" } }), { mode, probe: { hosts } });
            assert.match(run.error ?? "", /refused by the preflight checks, so nothing was changed:\n  - control0: kube-apiserver 1.28.3 refuses the command line this change would restart it with \(its flags come from control-plane:apiServerExtraArgs and control-plane:profile\): Error: unknown flag: --evnt-ttl/);
            assert.deepEqual(onlyTheStack(run), [], `${mode}: no resource registered`);
        }
        // Each control node's probe asks for its four daemons' command lines as their units run them; the gateway's for none.
        const run = runProgram(devConfig({ apiServerExtraArgs: { "evnt-ttl": "2h" } }), { probe: { hosts: withVersions("1.28.3", "3.5.9") } });
        assert.equal(run.error, undefined, run.error);
        for (const p of run.probes) {
            assert.deepEqual(p.query.commandLines.map(c => `${c.unit} ${c.binary}`), p.host === "gateway" ? [] :
                ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"].map(u => `${u} /usr/local/bin/${u}`), p.host);
            const api = p.query.commandLines.find(c => c.unit === "kube-apiserver");
            if (api) {
                assert.ok(api.args.includes("--evnt-ttl=2h") && api.args.includes("--runtime-config=api/all=true"), "as systemd passes them");
                assert.ok(api.args.includes(`--advertise-address=192.168.1.${11 + Number(p.host.slice(-1))}`), "the node's own");
            }
        }
    });

    test("at up, a host that cannot be reached fails the program, naming it and its address, before any resource", () => {
        const run = runProgram(devConfig(), { probe: { unreachable: ["control2"] } });
        assert.match(run.error ?? "", /cannot compare the hosts with what the program installed, so nothing was changed:\n  - control2 \(192.168.1.13\): ssh: connect to host 192.168.1.13 port 22: No route to host/);
        assert.deepEqual(onlyTheStack(run), []);
        assert.equal(run.probes.length, 4, "every host was probed once, together");
    });

    test("a preview with the key fails the same way: a refresh must not pass while a host is unseen", () => {
        const run = runProgram(devConfig(), { mode: "preview", probe: { unreachable: ["control2"] } });
        assert.match(run.error ?? "", /cannot compare the hosts with what the program installed, so nothing was changed:\n  - control2 \(192.168.1.13\): ssh: connect to host 192.168.1.13 port 22: No route to host/);
        assert.deepEqual(onlyTheStack(run), []);
    });
});
