// Membership: the plan from the last deployment's record to `nodes` (pure), the graph of each kind of change
// under mocks (grow, shrink, replace, refusals), and the join and departure scripts' logic.
import { strict as assert } from "assert";
import { describe, test } from "node:test";
import { DEFAULTS } from "../../components/config";
import { planMembership } from "../../components/membership";
import type { ProgramRun } from "./harness";
import { byName, changed, dependsOn, devConfig, LOCAL, nodes, plain, reveal, runProgram, scriptOf } from "./program";

const config = (count: number, extra: { name: string; address: string }[] = []) =>
    ({ ...DEFAULTS, nodes: [...nodes(count), ...extra] });
const cluster = (names: string[]) => names.map(n => `${n}=https://192.168.1.${11 + Number(n.slice(7))}:2380`).join(",");

describe("the membership plan", () => {
    const three = planMembership(config(3));

    test("a new stack: every node bootstraps with the seed's flags, in the order of nodes", () => {
        assert.deepEqual(Object.values(three.joins), Array(3).fill({ initialCluster: cluster(["control0", "control1", "control2"]), state: "new" }));
        assert.deepEqual(three.order.map(n => n.name), ["control0", "control1", "control2"]);
        assert.deepEqual([three.joining, three.leaving], [[], []]);
        assert.deepEqual(Object.keys(three.record), ["control0", "control1", "control2"]);
    });

    test("3 to 5: the new nodes join one at a time, first, each into the cluster as it is then; the kept keep their flags", () => {
        const plan = planMembership(config(5), three.record);
        assert.deepEqual(plan.order.map(n => n.name), ["control3", "control4", "control0", "control1", "control2"]);
        assert.deepEqual(plan.joins.control3, { initialCluster: cluster(["control0", "control1", "control2", "control3"]), state: "existing" });
        assert.deepEqual(plan.joins.control4, { initialCluster: cluster(["control0", "control1", "control2", "control3", "control4"]), state: "existing" });
        assert.deepEqual(plan.joins.control0, three.joins.control0);
        assert.deepEqual(plan.joining.map(j => j.members.length), [4, 5]);
        assert.deepEqual(plan.leaving, []);
    });

    test("5 to 3: the two leave; the kept keep their flags; nothing joins", () => {
        const five = planMembership(config(5), three.record);
        const back = planMembership(config(3), five.record);
        assert.deepEqual(back.leaving.map(n => n.name), ["control3", "control4"]);
        assert.deepEqual(back.joins.control1, three.joins.control1);
        assert.deepEqual(back.order.map(n => n.name), ["control0", "control1", "control2"]);
    });

    test("a replacement in one edit: control2 leaves, control3 joins the two kept", () => {
        const plan = planMembership({ ...DEFAULTS, nodes: [...nodes(2), { name: "control3", address: "192.168.1.14" }] }, three.record);
        assert.deepEqual(plan.leaving.map(n => n.name), ["control2"]);
        assert.deepEqual(plan.joins.control3, { initialCluster: cluster(["control0", "control1", "control3"]), state: "existing" });
    });

    test("refused: the kept not a majority of the members (3 to 1; 2 of 3 replaced at once), naming the key", () => {
        assert.throws(() => planMembership(config(1), three.record),
            /control-plane:nodes: removes control1, control2 of the 3 etcd members at once: the 1 kept \(control0\) are not a majority of 3.*keep at least 2/);
        assert.throws(() => planMembership({ ...DEFAULTS, nodes: [nodes(1)[0], ...nodes(5).slice(3)] }, three.record),
            /removes control1, control2 of the 3 etcd members at once/);
        const five = planMembership(config(5), three.record);
        assert.throws(() => planMembership(config(2), five.record), /the 2 kept \(control0, control1\) are not a majority of 5/);
        assert.doesNotThrow(() => planMembership(config(3), five.record));
    });

    test("refused: a kept member's address changed; a new node on the address of one that leaves", () => {
        const moved = { ...DEFAULTS, nodes: [...nodes(2), { name: "control2", address: "192.168.1.99" }] };
        assert.throws(() => planMembership(moved, three.record), /control2's address changed from 192.168.1.13 to 192.168.1.99: an etcd member cannot move/);
        const reused = { ...DEFAULTS, nodes: [...nodes(2), { name: "control9", address: "192.168.1.13" }] };
        assert.throws(() => planMembership(reused, three.record), /control9 takes the address of control2, which leaves in the same/);
    });

    test("a stack deployed before records: unchanged nodes bootstrap as before; changed ones are refused", () => {
        const markers = { "etcd-control0-service": "", "etcd-control1-service": "", "etcd-control2-service": "", "etcd-control0-binary": "" };
        assert.deepEqual(planMembership(config(3), undefined, markers).joins, three.joins);
        assert.throws(() => planMembership(config(5), undefined, markers), /deployed before the program recorded etcd's membership, with members control0, control1, control2/);
    });
});

describe("membership changes under mocks", () => {
    const first = runProgram(devConfig({ nodes: nodes(3) }));
    const grown = runProgram(devConfig({ nodes: nodes(5) }), { probe: { lastOutputs: first.outputs } });
    const unit = (run: ProgramRun, node: string) => reveal(byName(run, `etcd-${node}-service`).inputs.stdin) as string;

    test("the record is a stack output, and an unchanged run records the same", () => {
        assert.equal(first.error, undefined, first.error);
        const again = runProgram(devConfig({ nodes: nodes(3) }), { probe: { lastOutputs: first.outputs } });
        assert.deepEqual(again.outputs.etcdMembership, first.outputs.etcdMembership);
        assert.deepEqual(Object.keys(first.outputs.etcdMembership as object), ["control0", "control1", "control2"]);
    });

    test("on a deployed stack ldirectord.cf changes only once every API server's roll is over (a reload puts a drained one back)", () => {
        const again = runProgram(devConfig({ nodes: nodes(3) }), { probe: { lastOutputs: first.outputs } });
        const shrunk = runProgram(devConfig({ nodes: nodes(3) }), { probe: { lastOutputs: grown.outputs } });
        for (const [what, run, names] of [["unchanged", again, nodes(3)], ["grow", grown, nodes(5)], ["shrink", shrunk, nodes(3)]] as const) {
            const config = byName(run, "api-load-balancer-ldirectord-config");
            for (const n of names) {
                assert.ok(dependsOn(run, config, byName(run, `kube-apiserver-${n.name}-in-load-balancer`)), `${what}: after ${n.name}'s roll`);
            }
            assert.ok(dependsOn(run, byName(run, "api-load-balancer-ldirectord"), config), `${what}: ldirectord's reload after it`);
        }
        // An empty stack rolls nothing: ldirectord installs alongside the API servers.
        const config = byName(first, "api-load-balancer-ldirectord-config");
        assert.ok(!dependsOn(first, config, byName(first, "kube-apiserver-control0-in-load-balancer")));
    });

    test("grow: a kept member's unit does not change; a new one starts as an existing cluster's", () => {
        assert.equal(grown.error, undefined, grown.error);
        for (const n of ["control0", "control1", "control2"]) {
            assert.equal(unit(grown, n), unit(first, n), `${n}'s unit is unchanged`);
        }
        assert.match(unit(grown, "control3"), /--initial-cluster-state=existing/);
        assert.match(unit(grown, "control4"), new RegExp(`--initial-cluster=${cluster(["control0", "control1", "control2", "control3", "control4"])} `));
    });

    test("grow: a joining member's create adds it as a learner before it starts and waits for its promotion", () => {
        const create = scriptOf(plain(byName(grown, "etcd-control3-service"), "create"));
        const add = create.indexOf("member add 'control3' --peer-urls='https://192.168.1.14:2380' --learner");
        const start = create.indexOf("systemctl restart --no-block 'etcd'");
        const promote = create.indexOf("member promote");
        assert.ok(add > 0 && add < start && start < promote, create);
        assert.match(create, /--endpoints=https:\/\/192.168.1.11:2379,https:\/\/192.168.1.12:2379,https:\/\/192.168.1.13:2379 /);
        assert.match(create, /all 4 members healthy/);
        assert.match(scriptOf(plain(byName(grown, "etcd-control4-service"), "create")), /all 5 members healthy/);
        // A bootstrap member's create does neither.
        assert.doesNotMatch(scriptOf(plain(byName(first, "etcd-control0-service"), "create")), /member add|member promote/);
    });

    test("grow: the new members join one at a time, before any kept member restarts", () => {
        const step = (name: string) => byName(grown, name);
        assert.ok(dependsOn(grown, step("etcd-control4-service"), step("etcd-control3-service")));
        assert.ok(dependsOn(grown, step("etcd-control0-binary"), step("etcd-control4-service")));
        assert.ok(dependsOn(grown, step("etcd-control0-service"), step("etcd-control4-service")));
        assert.ok(!dependsOn(grown, step("etcd-control3-service"), step("etcd-control0-service")));
        // No member leaves: the departure steps keep whatever they last ran, so a grow leaves no change behind.
        for (const name of ["etcd-departures-member-remove", "etcd-departures-after-roll-member-remove"]) {
            assert.match(scriptOf(plain(byName(grown, name), "create")), /no etcd member leaves/);
            assert.deepEqual(byName(grown, name).ignoreChanges, ["create"]);
        }
        assert.deepEqual(byName(grown, "api-load-balancer-drain-leaving").ignoreChanges, ["create"]);
        // ldirectord.cf lists a new node only once its API server answers (a reload adds it at weight 1).
        const config = byName(grown, "api-load-balancer-ldirectord-config");
        for (const n of ["control3", "control4"]) {
            assert.ok(dependsOn(grown, config, step(`kube-apiserver-${n}-healthy`)), `ldirectord.cf waits for ${n}'s API server`);
        }
        assert.ok(!dependsOn(grown, config, step("kube-apiserver-control0-healthy")), "not for a kept one's");
        assert.ok(!dependsOn(first, byName(first, "api-load-balancer-ldirectord-config"), byName(first, "kube-apiserver-control0-healthy")),
            "nor on an empty stack");
        // Every kept member restarts for the certificate's new SANs; its wait counts five members.
        assert.match(scriptOf(plain(step("etcd-control0-service"), "update")), /all 5 members healthy/);
    });

    test("shrink: the load balancer drains, then the members leave, before any etcd step; the rest is deleted", () => {
        const shrunk = runProgram(devConfig({ nodes: nodes(3) }), { probe: { lastOutputs: grown.outputs } });
        assert.equal(shrunk.error, undefined, shrunk.error);
        assert.ok(!shrunk.registrations.some(r => /control[34]/.test(r.name)), "nothing of control3 and control4 is registered");
        const departures = byName(shrunk, "etcd-departures-member-remove");
        assert.equal(departures.type, LOCAL);
        assert.ok(dependsOn(shrunk, departures, byName(shrunk, "etcd-backup-before-change-snapshot")), "a snapshot first");
        for (const n of ["control0", "control1", "control2"]) {
            for (const step of ["binary", "cert", "service"]) {
                assert.ok(dependsOn(shrunk, byName(shrunk, `etcd-${n}-${step}`), departures), `etcd-${n}-${step} after the departures`);
            }
        }
        const remove = scriptOf(plain(departures, "create"));
        assert.match(remove, /the load balancer to drain control3, control4/);
        assert.match(remove, /for entry in 'control3 https:\/\/192.168.1.14:2380 https:\/\/192.168.1.14:2379' 'control4 https:\/\/192.168.1.15:2380 https:\/\/192.168.1.15:2379'; do/);
        assert.ok(remove.indexOf("ipvsadm -Ln") < remove.indexOf("member remove"), "dropped by the load balancer first");
        assert.match(remove, /the etcd members that stay to be started and healthy/);
        // Before any etcd change only the dead ones leave; the healthy ones once every API server has rolled
        // to the new --etcd-servers, and before anything on their nodes is deleted (deletes come last).
        assert.match(remove, /is healthy: it leaves once the API servers no longer use it/);
        const late = byName(shrunk, "etcd-departures-after-roll-member-remove");
        assert.doesNotMatch(scriptOf(plain(late, "create")), /is healthy: it leaves once/);
        for (const n of ["control0", "control1", "control2"]) {
            assert.ok(dependsOn(shrunk, late, byName(shrunk, `kube-apiserver-${n}-in-load-balancer`)), `after ${n}'s API server rolled`);
        }
        assert.doesNotMatch(remove, /MOCK-SSH-PRIVATE-KEY-MATERIAL/);
        const drain = byName(shrunk, "api-load-balancer-drain-leaving");
        assert.equal(drain.type, LOCAL, "from where pulumi runs");
        assert.match(scriptOf(plain(drain, "create")), /^on 'gateway' '192.168.1.10' 'sudo -n bash -s' <<'KTHW_DRAIN_SCRIPT'$/m, "on the gateway");
        assert.deepEqual(drain.ignoreChanges, [], "it runs when nodes leave");
        assert.deepEqual(departures.ignoreChanges, []);
        const drained = scriptOf(plain(drain, "create"));
        assert.match(drained, /ipvsadm -e -t 192.168.1.21:6443 -r "\$real" -g -w 0/);
        assert.match(drained, /for real in '192.168.1.14:6443' '192.168.1.15:6443'; do/);
        assert.match(drained, /waiting up to 10s for the connections to control3, control4 to end/);
        assert.ok(dependsOn(shrunk, byName(shrunk, "api-load-balancer-ldirectord-config"), drain), "drained before ldirectord.cf drops them");
        const cf = reveal(byName(shrunk, "api-load-balancer-ldirectord-config").inputs.stdin) as string;
        assert.equal(cf.split("\n").filter(l => l.includes("real=")).length, 3);
        // The kept members' units are the ones they started with.
        assert.equal(unit(shrunk, "control1"), unit(first, "control1"));
    });

    test("the run after each change changes nothing: the joined keep their join, the order does not show", () => {
        const shrunk = runProgram(devConfig({ nodes: nodes(3) }), { probe: { lastOutputs: grown.outputs } });
        const replacement = [...nodes(2), { name: "control3", address: "192.168.1.14" }];
        const replaced = runProgram(devConfig({ nodes: replacement }), { probe: { lastOutputs: first.outputs } });
        for (const [name, run, config] of [["grow", grown, nodes(5)], ["shrink", shrunk, nodes(3)], ["replace", replaced, replacement]] as const) {
            assert.equal(run.error, undefined, run.error);
            const after = runProgram(devConfig({ nodes: config }), { probe: { hosts: run.expectedFacts, lastOutputs: run.outputs } });
            assert.deepEqual(changed(run, after), [], `after ${name}`);
        }
        // The replacement joined the two kept members, once every leaving member had left (none stays for later).
        const early = scriptOf(plain(byName(replaced, "etcd-departures-member-remove"), "create"));
        assert.match(early, /etcd members leaving \(all\): control2/);
        assert.doesNotMatch(early, /is healthy: it leaves once/);
        assert.match(scriptOf(plain(byName(replaced, "etcd-departures-after-roll-member-remove"), "create")), /no etcd member leaves/);
        assert.ok(dependsOn(replaced, byName(replaced, "etcd-control3-service"), byName(replaced, "etcd-departures-member-remove")));
        assert.match(scriptOf(plain(byName(replaced, "etcd-control3-service"), "create")), /all 3 members healthy/);
    });

    test("refused before any resource: 3 to 1, naming the key", () => {
        const run = runProgram(devConfig({ nodes: nodes(1) }), { probe: { lastOutputs: first.outputs } });
        assert.match(run.error ?? "", /control-plane:nodes: removes control1, control2 of the 3 etcd members at once/);
        assert.deepEqual(run.registrations.filter(r => r.type !== "pulumi:pulumi:Stack" && !r.read), []);
    });
});
