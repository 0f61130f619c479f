// The resource graph of the whole program under mocks: components, parents, the chapter's order through
// explicit dependsOn edges, deletes, and secrets, for 1, 3 and 5 control nodes and both architectures.
import { strict as assert } from "assert";
import { describe, test } from "node:test";
import type { ProgramRun, Registration } from "./harness";
import {
    byName, byType, dependsOn, devConfig, isSecret, LOCAL, nodes, plain, REMOTE, reveal, runProgram, scriptOf, SSH_KEY_MARKER,
} from "./program";

const COMPONENTS = ["EtcdMember", "ApiServer", "ControllerManager", "Scheduler"].map(c => `kthw:index:${c}`);
const LB = "kthw:index:IpvsLoadBalancer";


function checkGraph(run: ProgramRun, count: number): void {
    assert.equal(run.error, undefined, run.error);
    const stack = byType(run, "pulumi:pulumi:Stack")[0];
    for (const type of COMPONENTS) {
        const found = byType(run, type);
        assert.equal(found.length, count, `${type} once per node`);
        assert.ok(found.every(c => c.parent === stack.urn), `${type} is a child of the stack`);
        for (const component of found) {
            const children = run.registrations.filter(r => r.parent === component.urn);
            assert.ok(children.length >= 3, `${component.name} has its steps as children`);
            assert.ok(children.every(c => c.name.startsWith(`${component.name}-`)), `children named ${component.name}-<what>`);
        }
    }
    assert.equal(byType(run, LB).length, 1, "one load balancer");
}

describe("the seed's lab (3 control nodes, arm64)", () => {
    const run = runProgram(devConfig());
    // The same config on the stack that run deployed: a change rolls there.
    const deployed = runProgram(devConfig(), { probe: { lastOutputs: run.outputs } });
    const names = nodes(3).map(n => n.name);

    test("one component of each kind per node, one load balancer, all parented", () => checkGraph(run, 3));

    test("on an empty stack every node's steps go at once: none waits for another node's daemon", () => {
        assert.equal(deployed.error, undefined, deployed.error);
        const daemons = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"];
        for (const daemon of daemons) {
            for (const n of names) {
                const own = run.registrations.filter(r => r.type === REMOTE && r.name.startsWith(`${daemon}-${n}-`));
                assert.ok(own.length >= 4, `${daemon} on ${n}: its steps are found`);
                for (const other of names.filter(m => m !== n)) {
                    const theirs = run.registrations.filter(r => r.name.startsWith(`${daemon}-${other}-`));
                    for (const step of own) {
                        theirs.forEach(t => assert.ok(!dependsOn(run, step, t), `${step.name} does not wait for ${t.name}`));
                    }
                }
            }
        }
        // The same steps on the deployed stack do: the check can fail.
        assert.ok(dependsOn(deployed, byName(deployed, "kube-apiserver-control1-binary"), byName(deployed, "kube-apiserver-control0-service")));
    });

    test("etcd members start without waiting on create and change one at a time", () => {
        const services = names.map(n => byName(run, `etcd-${n}-service`));
        const rolled = names.map(n => byName(deployed, `etcd-${n}-service`));
        services.forEach((service, i) => {
            // The chain costs nothing on create: a create starts etcd without blocking and waits for nothing.
            const create = scriptOf(plain(service, "create"));
            assert.match(create, /systemctl restart --no-block 'etcd'/);
            assert.doesNotMatch(create, /waiting up to/, `${service.name}'s create does not wait`);
            // A change restarts, then waits until the cluster is healthy with this member back.
            const update = scriptOf(plain(service, "update"));
            // A change waits for the restart itself (no --no-block: the poll must not see the old process).
            assert.match(update, /systemctl restart 'etcd'[\s\S]*endpoint health --cluster[\s\S]*until healthy; do/);
            assert.doesNotMatch(update, /--no-block/);
            assert.match(update, new RegExp(`etcd on ${names[i]} to be back and all 3 members healthy`));
            // A leader hands its leadership to the member that restarted just before it, before it restarts.
            assert.match(update, new RegExp(`-v preferred='${i > 0 ? names[i - 1] : ""}'[\\s\\S]*move-leader[\\s\\S]*systemctl restart 'etcd'`));
            assert.doesNotMatch(create, /move-leader/, "a create hands nothing over");
            if (i > 0) {
                assert.ok(dependsOn(deployed, rolled[i], rolled[i - 1]), `${service.name} rolls after ${services[i - 1].name}`);
            }
            // What a member reads is written in turn too (a new owner or CA must not reach a member that has
            // not restarted yet); never before the previous member is back.
            for (const step of ["binary", "key", "data-dir"]) {
                const own = byName(deployed, `etcd-${names[i]}-${step}`);
                rolled.slice(i).forEach(later => assert.ok(!dependsOn(deployed, own, later), `${own.name} does not wait for ${later.name}`));
                if (i > 0) {
                    assert.ok(dependsOn(deployed, own, rolled[i - 1]), `${own.name} waits for ${services[i - 1].name}`);
                }
            }
        });
        const gate = byName(run, "etcd-cluster-gate");
        services.forEach(s => assert.ok(dependsOn(run, gate, s), `the gate waits for ${s.name}`));
    });

    test("API servers wait for healthy etcd, start without waiting, and roll one node at a time through the load balancer", () => {
        const gate = byName(run, "etcd-cluster-gate");
        names.forEach((n, i) => {
            const service = byName(run, `kube-apiserver-${n}-service`);
            assert.ok(dependsOn(run, service, gate), `${service.name} waits for etcd`);
            for (const file of ["ca", "key", "encryption-config", "binary"]) {
                assert.ok(dependsOn(run, service, byName(run, `kube-apiserver-${n}-${file}`)), `${service.name} after its ${file}`);
            }
            assert.doesNotMatch(scriptOf(plain(service, "create")), /waiting up to/, "a create does not wait");
            assert.match(scriptOf(plain(service, "update")),
                /systemctl restart 'kube-apiserver'[\s\S]*until \[ "\$\(curl -fsS --max-time 5 --cacert \/var\/lib\/kubernetes\/ca.pem https:\/\/127.0.0.1:6443\/readyz/,
                "a change restarts, then waits for /readyz");
            const out = byName(run, `kube-apiserver-${n}-out-of-load-balancer`);
            const back = byName(run, `kube-apiserver-${n}-in-load-balancer`);
            const real = `'192.168.1.${11 + i}:6443'`;
            assert.ok(dependsOn(run, service, out), "the restart follows the drain");
            // A failed download, checksum or file write stops the change before the node leaves the load balancer.
            for (const staged of ["binary", "ca", "cert", "key", "service-account-key", "encryption-config"]) {
                assert.ok(dependsOn(run, out, byName(run, `kube-apiserver-${n}-${staged}`)), `${out.name} once its ${staged} is in place`);
            }
            assert.ok(dependsOn(run, back, service), "back in the load balancer after the restart");
            for (const [step, weight] of [[out, 0], [back, 1]] as const) {
                assert.equal(step.type, LOCAL, `${step.name} runs where pulumi runs`);
                const create = scriptOf(plain(step, "create"));
                assert.doesNotMatch(create, /ipvsadm|\bssh\b/, `${step.name}: nothing to do on create, no session to the gateway`);
                const update = scriptOf(plain(step, "update"));
                assert.match(update, /^on 'gateway' '192.168.1.10' 'sudo -n bash -s' <<'KTHW_CHANGE_SCRIPT'$/m, `${step.name}: on a change, on the gateway`);
                assert.match(update, new RegExp(`ipvsadm -e -t 192.168.1.21:6443 -r ${real} -g -w ${weight} 2>&1\\)`), `${step.name}: weight ${weight}`);
                assert.equal(step.inputs.delete, undefined, `${step.name} leaves nothing behind`);
            }
            assert.match(scriptOf(plain(back, "update")), /whenever what it follows changes: [0-9a-f]{16}\n/,
                "the way back in follows each run of the way out (its output)");
            if (i > 0) {
                const before = byName(deployed, `kube-apiserver-${names[i - 1]}-in-load-balancer`);
                assert.ok(dependsOn(deployed, byName(deployed, out.name), before),
                    `${n}'s API server leaves once ${names[i - 1]}'s is back in the load balancer`);
                assert.ok(dependsOn(deployed, byName(deployed, `kube-apiserver-${n}-binary`), before),
                    "binaries and files are installed in turn too");
            }
        });
    });

    test("the drain's gateway steps act when created only beside a load balancer deployed before they existed", () => {
        const createOf = (r: ProgramRun, n: string, where: string) => scriptOf(plain(byName(r, `kube-apiserver-${n}-${where}-load-balancer`), "create"));
        const before = runProgram(devConfig(), { probe: { lastOutputs: { apiUrl: "https://kubernetes:6443" } } });
        assert.equal(before.error, undefined, before.error);
        const after = runProgram(devConfig(), { probe: { lastOutputs: run.outputs } });
        assert.equal(run.outputs.apiServerDrain, "gateway", "a deployment records that it has them");
        names.forEach((n, i) => {
            for (const [where, weight] of [["out-of", 0], ["in", 1]] as const) {
                assert.match(createOf(before, n, where), new RegExp(`^on 'gateway' [\\s\\S]*-r '192.168.1.${11 + i}:6443' -g -w ${weight} 2>&1\\)`, "m"),
                    `a stack from before: ${n}'s ${where} step sets weight ${weight} when created`);
                assert.doesNotMatch(createOf(after, n, where), /ipvsadm/, `a stack that has them: ${n}'s ${where} step does nothing when created`);
                assert.doesNotMatch(createOf(run, n, where), /ipvsadm/, "a first install: nothing");
            }
        });
    });

    test("controller managers and schedulers roll one node at a time", () => {
        for (const daemon of ["kube-controller-manager", "kube-scheduler"]) {
            names.forEach((n, i) => {
                const service = byName(run, `${daemon}-${n}-service`);
                assert.match(scriptOf(plain(service, "update")), /waiting up to 180s for kube-[a-z-]+ on control\d to answer https:\/\/127.0.0.1:102(57|59)\/healthz/);
                if (i > 0) {
                    assert.ok(dependsOn(deployed, byName(deployed, service.name), byName(deployed, `${daemon}-${names[i - 1]}-service`)),
                        `${service.name} rolls after ${names[i - 1]}'s`);
                }
            });
        }
    });

    test("the load balancer installs alongside etcd and the API servers; its gates wait for every API server; controller managers and schedulers after every API server, not after the gateway", () => {
        const realServers = byName(run, "api-load-balancer-real-servers-healthy");
        const vipGate = byName(run, "api-load-balancer-vip-healthy");
        const waitsForNoDaemon = ["gateway-prerequisites", "gateway-vip", "ldirectord-ca", "ldirectord-drop-in", "lock-dir", "ldirectord-config",
            "ldirectord", ...names.map(n => `${n}-vip`), ...names.map(n => `${n}-arp-sysctl`)];
        for (const step of waitsForNoDaemon) {
            const r = byName(run, `api-load-balancer-${step}`);
            for (const other of run.registrations.filter(o => /^(etcd|kube-apiserver)-control/.test(o.name))) {
                assert.ok(!dependsOn(run, r, other), `${r.name} does not wait for ${other.name}`);
            }
        }
        // The gateway's steps: a controller manager or scheduler reaches its own node's API server at the VIP's name.
        const gatewaySteps = run.registrations.filter(r => r.type === REMOTE && /^api-load-balancer-(gateway|ldirectord|lock-dir)/.test(r.name));
        assert.ok(gatewaySteps.length >= 6, "the gateway's steps are found");
        names.forEach((n, i) => {
            assert.ok(dependsOn(run, realServers, byName(run, `kube-apiserver-${n}-healthy`)));
            // Their binaries and services wait for every API server, back in the load balancer (a newer one must
            // never run before the API servers are upgraded), and for the VIP on their node's lo; the first
            // node's kubeconfig does not (the others' follow the previous node's restart, as any file).
            for (const daemon of ["kube-controller-manager", "kube-scheduler"]) {
                for (const step of ["binary", "service"]) {
                    const r = byName(run, `${daemon}-${n}-${step}`);
                    names.forEach(m => {
                        assert.ok(dependsOn(run, r, byName(run, `kube-apiserver-${m}-healthy`)), `${r.name} waits for ${m}'s API server`);
                        assert.ok(dependsOn(run, r, byName(run, `kube-apiserver-${m}-in-load-balancer`)), `${r.name} waits for ${m}'s roll`);
                    });
                    assert.ok(dependsOn(run, r, byName(run, `api-load-balancer-${n}-vip`)), `${r.name} waits for the VIP on ${n}`);
                    for (const g of [...gatewaySteps, realServers, vipGate]) {
                        assert.ok(!dependsOn(run, r, g), `${r.name} does not wait for ${g.name}`);
                    }
                    if (i + 1 < names.length) {
                        assert.ok(!dependsOn(run, r, byName(run, `api-load-balancer-${names[i + 1]}-vip`)), `${r.name} does not wait for the next node's VIP`);
                    }
                }
            }
        });
        for (const daemon of ["kube-controller-manager", "kube-scheduler"]) {
            const kubeconfig = byName(run, `${daemon}-${names[0]}-kubeconfig`);
            assert.ok(!dependsOn(run, kubeconfig, byName(run, `kube-apiserver-${names[0]}-healthy`)), `${kubeconfig.name} does not`);
        }
        names.forEach(n => {
            assert.ok(dependsOn(run, vipGate, byName(run, `api-load-balancer-${n}-vip`)), "the VIP gate waits for the VIP on every node");
        });
        for (const step of ["gateway-vip", "ldirectord-ca", "ldirectord-drop-in", "lock-dir", "ldirectord-config"]) {
            assert.ok(dependsOn(run, byName(run, `api-load-balancer-${step}`), byName(run, "api-load-balancer-gateway-prerequisites")),
                `${step} waits for the gateway's prerequisites check`);
        }
        assert.deepEqual(byType(run, LOCAL).filter(r => r.name.startsWith("api-load-balancer-")).map(r => r.name).sort(),
            ["api-load-balancer-drain-leaving", "api-load-balancer-real-servers-healthy", "api-load-balancer-vip-healthy"],
            "the VIP is checked from where pulumi runs, the real servers and leaving nodes over SSH from there");
    });

    test("every command that changes a host has a delete; read-only gates and checks have none", () => {
        for (const r of byType(run, REMOTE)) {
            const create = scriptOf(plain(r, "create"));
            const readOnly = /^# re-run when the checked services change|^# waits whenever what it watches changes|^missing=\(\)/m.test(create);
            // Draining leaving API servers sets IPVS weights of servers that ldirectord.cf then drops: nothing to undo.
            const drain = /^# drain .* before ldirectord drops them$|^echo 'no control node leaves'$/m.test(create);
            if (drain) {
                assert.equal(r.inputs.delete, undefined, `${r.name} has no delete`);
                assert.doesNotMatch(create.replace(/ipvsadm -e -t \S+ -r "\$real" -g -w 0/, ""), /ipvsadm -[aAdDeE]|^\s*(rm|install|mv|systemctl)\b/m,
                    `${r.name} changes IPVS weights only`);
            } else if (readOnly) {
                assert.equal(r.inputs.delete, undefined, `${r.name} is read-only`);
                assert.doesNotMatch(create, /^\s*(rm|install|mv|systemctl (start|restart|enable))\b/m, `${r.name} changes nothing`);
            } else {
                assert.equal(typeof r.inputs.delete, "string", `${r.name} has a delete`);
                assert.ok(scriptOf(plain(r, "delete")).length > 40, `${r.name}'s delete does something`);
            }
        }
    });

    test("preflight: every step that changes a host waits for the version skew checks of every node", () => {
        const checks = names.map(n => byName(run, `preflight-${n}-version-skew`));
        checks.forEach(c => assert.match(scriptOf(plain(c, "create")), /control-plane:kubernetesVersion: 1.28.3 is not one minor release step/));
        for (const r of byType(run, REMOTE).filter(r => !r.name.startsWith("preflight-"))) {
            checks.forEach(c => assert.ok(dependsOn(run, r, c), `${r.name} waits for ${c.name}`));
        }
    });

    test("every remote step pins the dial limits, so an unreachable host fails in seconds", () => {
        for (const r of byType(run, REMOTE)) {
            const connection = reveal(r.inputs.connection) as Record<string, unknown>;
            assert.equal(connection.dialErrorLimit, 2, `${r.name}: 3 attempts, the provider's dialErrorLimit + 1`);
            assert.equal(connection.perDialTimeout, 10, r.name);
            assert.equal(connection.user, "ubuntu", r.name);
        }
    });

    test("no secret in a command line, a non-secret input or an output; keys travel on stdin only", () => {
        const secretText = [/PRIVATE KEY/, /MOCK-ENCRYPTION-KEY/, new RegExp(SSH_KEY_MARKER), /client-key-data/];
        const leaks: string[] = [];
        const walk = (where: string, value: unknown): void => {
            if (isSecret(value)) {
                return;
            }
            if (typeof value === "string") {
                for (const pattern of secretText.filter(p => p.test(value))) {
                    leaks.push(`${where} (${pattern})`);
                }
            } else if (value !== null && typeof value === "object") {
                Object.entries(value).forEach(([k, v]) => walk(`${where}.${k}`, v));
            }
        };
        run.registrations.forEach(r => walk(`${r.type}::${r.name}`, r.inputs));
        walk("stack outputs", run.outputs);
        assert.deepEqual(leaks, []);
        let keysOnStdin = 0;
        for (const r of [...byType(run, REMOTE), ...byType(run, LOCAL)]) {
            for (const key of ["create", "update", "delete"]) {
                assert.ok(!isSecret(r.inputs[key]), `${r.name}.${key} is a plain command line`);
            }
            if (r.type === REMOTE) {
                assert.ok(isSecret(r.inputs.connection), `${r.name}'s connection (with the SSH key) is secret`);
            }
            const stdin = reveal(r.inputs.stdin);
            if (typeof stdin === "string" && /PRIVATE KEY|client-key-data|MOCK-ENCRYPTION-KEY/.test(stdin)) {
                assert.ok(isSecret(r.inputs.stdin), `${r.name}'s stdin is secret`);
                assert.ok(r.additionalSecretOutputs.includes("stdin"), `${r.name} keeps stdin secret in state`);
                keysOnStdin++;
            }
        }
        // Per node: etcd key, API server CA key, serving key, service-account key, encryption config,
        // two kubeconfigs, and the SSH key of the API server's two steps on the gateway (out of the load balancer
        // and back in); where pulumi runs, the SSH key of the two etcd snapshot steps, the two departure steps, the
        // load balancer's drain of leaving nodes and its real servers' gate.
        assert.equal(keysOnStdin, 3 * 9 + 6);
        assert.ok(isSecret(run.outputs.adminKubeconfig), "the admin kubeconfig output is secret");
        assert.ok(!isSecret(run.outputs.caCert), "the CA certificate is public");
    });

    test("files with keys are 0600, and everything is installed where the seed puts it", () => {
        const fileOf = (name: string) => scriptOf(plain(byName(run, name), "create"));
        assert.match(fileOf("etcd-control0-key"), /target='\/etc\/etcd\/kubernetes-key.pem'[\s\S]*chmod 0600/);
        assert.match(fileOf("kube-apiserver-control0-ca-key"), /target='\/var\/lib\/kubernetes\/ca-key.pem'[\s\S]*chmod 0600/);
        assert.match(fileOf("kube-scheduler-control0-config"), /target='\/etc\/kubernetes\/config\/kube-scheduler.yaml'/);
        assert.match(fileOf("api-load-balancer-ldirectord-config"), /target='\/etc\/ha.d\/ldirectord.cf'/);
        assert.match(fileOf("api-load-balancer-ldirectord-config"), /cp -a "\$target" "\$target.kthw-orig"/,
            "the package's own ldirectord.cf is kept");
        assert.match(scriptOf(plain(byName(run, "api-load-balancer-ldirectord-config"), "delete")),
            /mv -f '\/etc\/ha.d\/ldirectord.cf.kthw-orig' '\/etc\/ha.d\/ldirectord.cf'/, "and put back on destroy");
        assert.match(fileOf("api-load-balancer-ldirectord-ca"), /target='\/etc\/ha.d\/kubernetes-ca.pem'/);
        assert.match(fileOf("api-load-balancer-ldirectord-drop-in"),
            /target='\/etc\/systemd\/system\/ldirectord.service.d\/kubernetes-ca.conf'[\s\S]*if \[ "\$\(systemctl show -p NeedDaemonReload --value 'ldirectord'\)" != no \]; then systemctl daemon-reload; fi/,
            "the drop-in reaches a loaded ldirectord unit by a reload, an unloaded one when first asked for");
        assert.equal(reveal(byName(run, "api-load-balancer-ldirectord-drop-in").inputs.stdin),
            "[Service]\nEnvironment=PERL_LWP_SSL_CA_FILE=/etc/ha.d/kubernetes-ca.pem\n", "ldirectord's checks alone trust the cluster CA");
        assert.doesNotMatch(JSON.stringify(byType(run, REMOTE).map(r => reveal(r.inputs.create))), /update-ca-certificates/,
            "nothing else on the gateway trusts it");
        assert.match(scriptOf(plain(byName(run, "etcd-control0-data-dir"), "create")), /install -d -m 0700 '\/var\/lib\/etcd'/);
        assert.match(scriptOf(plain(byName(run, "etcd-control0-binary"), "create")),
            /github.com\/etcd-io\/etcd\/releases\/download\/v3.5.9\/etcd-v3.5.9-linux-arm64.tar.gz/);
        assert.match(scriptOf(plain(byName(run, "kube-scheduler-control1-binary"), "create")),
            /storage.googleapis.com\/kubernetes-release\/release\/v1.28.3\/bin\/linux\/arm64\/kube-scheduler/);
    });

    test("no certificate's subject equals the CA's (OpenSSL compares names case-insensitively)", () => {
        const name = (r: { inputs: Record<string, unknown> }) => JSON.stringify(reveal(r.inputs.subject)).toLowerCase();
        const ca = name(byType(run, "tls:index/selfSignedCert:SelfSignedCert")[0]);
        const leaves = byType(run, "tls:index/certRequest:CertRequest").map(name);
        assert.equal(leaves.length, 5);
        leaves.forEach(leaf => assert.notEqual(leaf, ca));
    });

    test("ldirectord takes a changed config by reload, never restart", () => {
        const ldirectord = byName(run, "api-load-balancer-ldirectord");
        const update = scriptOf(plain(ldirectord, "update"));
        assert.match(update, /systemctl reload 'ldirectord'/);
        // Only a daemon started before the CA drop-in existed restarts, once: it cannot get it by reload.
        const [migration] = /^if .*PERL_LWP_SSL_CA_FILE=.*; then\n[\s\S]*?\nfi$/m.exec(update) ?? [""];
        assert.match(migration, /\/proc\/\$pid\/environ[\s\S]*systemctl restart ldirectord/);
        assert.doesNotMatch(update.replace(migration, ""), /restart/);
    });

    test("stack outputs: the API URL, etcd endpoints, the CA", () => {
        assert.equal(run.outputs.apiUrl, "https://kubernetes:6443");
        assert.deepEqual(run.outputs.etcdEndpoints, ["https://192.168.1.11:2379", "https://192.168.1.12:2379", "https://192.168.1.13:2379"]);
        assert.match(String(run.outputs.caCert), /BEGIN CERTIFICATE/);
    });
});

describe("other shapes of cluster", () => {
    for (const count of [1, 5]) {
        test(`${count} control node(s)`, () => {
            const run = runProgram(devConfig({ nodes: nodes(count) }));
            checkGraph(run, count);
            const cf = reveal(byName(run, "api-load-balancer-ldirectord-config").inputs.stdin) as string;
            assert.equal(cf.split("\n").filter(l => l.includes("real=")).length, count);
            const etcd = reveal(byName(run, "etcd-control0-service").inputs.stdin) as string;
            assert.match(etcd, new RegExp(`--initial-cluster=${nodes(count).map(n => `${n.name}=https://${n.address}:2380`).join(",")} `));
        });
    }

    test("dual-stack service and pod ranges, and a gateway reached over IPv6", () => {
        const run = runProgram(devConfig({
            serviceCidr: "10.32.0.0/16,fd00:10:32::/108", clusterCidr: "10.0.0.0/12,fd00:10::/56",
            gateway: { name: "gateway", address: "fd00:1::10" },
        }));
        checkGraph(run, 3);
        const api = reveal(byName(run, "kube-apiserver-control0-service").inputs.stdin) as string;
        assert.match(api, /--service-cluster-ip-range=10\.32\.0\.0\/16,fd00:10:32::\/108 /);
        const cm = reveal(byName(run, "kube-controller-manager-control0-service").inputs.stdin) as string;
        assert.match(cm, /--cluster-cidr=10\.0\.0\.0\/12,fd00:10::\/56 /);
        const gateway = reveal(byName(run, "api-load-balancer-ldirectord-config").inputs.connection) as Record<string, unknown>;
        assert.equal(gateway.host, "fd00:1::10");
    });

    test("amd64 hosts and a mirror with checksums", () => {
        const sum = "a".repeat(64);
        const run = runProgram(devConfig({ arch: "amd64", mirrorUrl: "http://192.168.1.1:8080/", sha256: { "kube-apiserver": sum } }));
        checkGraph(run, 3);
        const binary = scriptOf(plain(byName(run, "kube-apiserver-control0-binary"), "create"));
        assert.match(binary, /url='http:\/\/192.168.1.1:8080\/kubernetes-release\/release\/v1.28.3\/bin\/linux\/amd64\/kube-apiserver'/);
        assert.match(binary, new RegExp(`expected='${sum}'`));
        assert.match(reveal(byName(run, "etcd-control0-service").inputs.stdin) as string, /ETCD_UNSUPPORTED_ARCH=amd64/);
    });
});

describe("preview and bad input", () => {
    test("a preview needs no SSH key, and keeps the recorded connection so the plan shows real changes only", () => {
        const run = runProgram({ sshPrivateKeyPath: "/nonexistent/id_ed25519" }, { mode: "preview" });
        checkGraph(run, 3);
        assert.ok(byType(run, REMOTE).every(r => r.ignoreChanges.includes("connection")));
    });

    test("`up` without the SSH key fails before any resource exists, naming the key", () => {
        const run = runProgram({ sshPrivateKeyPath: "/nonexistent/id_ed25519" }, { mode: "up" });
        assert.match(run.error ?? "", /control-plane:sshPrivateKeyPath: no SSH private key at \/nonexistent\/id_ed25519/);
        assert.deepEqual(run.registrations.filter(r => r.type !== "pulumi:pulumi:Stack"), []);
    });

    test("a bad config reports every problem at once, before any resource exists", () => {
        const run = runProgram(devConfig({ vip: "192.168.1.300", arch: "s390x", kubernetesVersion: "v1.28" }));
        assert.match(run.error ?? "", /control-plane:vip: "192.168.1.300" is not an IPv4 address/);
        assert.match(run.error ?? "", /control-plane:arch: unknown architecture "s390x"/);
        assert.match(run.error ?? "", /control-plane:kubernetesVersion: "v1.28" is not a version/);
        assert.deepEqual(run.registrations.filter(r => r.type !== "pulumi:pulumi:Stack"), []);
    });

    test("a non-JSON value for a list key names the key", () => {
        const run = runProgram(devConfig({ nodes: "control0" }));
        assert.match(run.error ?? "", /control-plane:nodes: "control0" is not a valid list or map/);
    });
});

describe("which steps each kind of change touches", () => {
    /** Remote and local steps whose inputs differ between two runs (names sorted, nodes folded to N). */
    const touched = (before: ProgramRun, after: ProgramRun): string[] => {
        const key = (r: Registration) => JSON.stringify([r.inputs.create, r.inputs.update, r.inputs.delete,
            reveal(r.inputs.stdin), r.inputs.triggers]);
        const was = new Map([...byType(before, REMOTE), ...byType(before, LOCAL)].map(r => [r.name, key(r)]));
        const names = [...byType(after, REMOTE), ...byType(after, LOCAL)].filter(r => was.get(r.name) !== key(r))
            .map(r => r.name.replace(/control\d/, "N"));
        return [...new Set(names)].sort();
    };
    const base = runProgram(devConfig());
    const daemonSteps = (daemon: string, ...more: string[]) => [`${daemon}-N-service`, ...more.map(m => `${daemon}-N-${m}`)];
    const loadBalancerGates = ["api-load-balancer-real-servers-healthy", "api-load-balancer-vip-healthy"];
    const cases: [string, Record<string, unknown>, string[]][] = [
        ["an etcd flag: a snapshot, the members, then the cluster gate", { etcdExtraArgs: { "heartbeat-interval": "200" } },
            ["etcd-backup-before-change-snapshot", ...daemonSteps("etcd"), "etcd-cluster-gate"]],
        ["an API server flag: each API server out of the load balancer, restarted, back in, and what waits for them", { apiServerExtraArgs: { "event-ttl": "2h" } },
            [...daemonSteps("kube-apiserver", "healthy", "out-of-load-balancer", "in-load-balancer"), ...loadBalancerGates]],
        ["a controller manager flag: the controller managers only", { controllerManagerExtraArgs: { v: "3" } },
            daemonSteps("kube-controller-manager", "healthy")],
        ["etcd's version: the preflight checks, a snapshot, the members' binaries and restarts", { etcdVersion: "3.5.35" },
            ["preflight-N-version-skew", "etcd-backup-before-change-snapshot", ...daemonSteps("etcd", "binary"), "etcd-cluster-gate"]],
    ];
    test("an up that changes nothing takes no snapshot: every step's inputs are the same", () => {
        assert.deepEqual(touched(base, runProgram(devConfig())), []);
    });
    test("a member removed: a snapshot is due before the others restart with the new member list", () => {
        const run = runProgram(devConfig({ nodes: nodes(3).slice(0, 2) }));
        assert.equal(run.error, undefined, run.error);
        assert.ok(touched(base, run).includes("etcd-backup-before-change-snapshot"));
        assert.ok(touched(base, run).includes("etcd-N-service"));
    });
    for (const [what, change, expected] of cases) {
        test(what, () => {
            const run = runProgram(devConfig(change));
            assert.equal(run.error, undefined, run.error);
            assert.deepEqual(touched(base, run), [...expected].sort());
        });
    }
});
