// The drain around an API server's restart (components/apiServer.ts, components/loadBalancer.ts), run for real
// in bash: the change step's local script reaches the gateway through a fake `ssh` (which runs the remote
// command here, as `sudo` does) and sets the weight with a fake `ipvsadm` that keeps IPVS's table in a file;
// the real servers' gate after a roll reads that table the same way.
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { describe, test } from "node:test";
import { DEFAULTS } from "../../components/config";
import { drainScript, realServersGate, realServerWeightLines } from "../../components/loadBalancer";
import { changeStepScripts } from "../../components/remote/rolling";
import { sshGateScript } from "../../components/remote/steps";
import { fakeEnv, fakePrograms } from "./scratch";

const control0 = { name: "control0", address: "192.168.1.11" };
const gateway = { name: "gateway", address: "192.168.1.10" };
const VIRTUAL = "192.168.1.21:6443";

// `ipvsadm -Ln -t VIRTUAL` prints $FAKE/table (fails without it: no virtual service); `ipvsadm -e ... -r REAL
// ... -w W` rewrites REAL's weight there and logs the call.
const fakeIpvsadm = [
    "#!/usr/bin/env bash",
    "set -euo pipefail",
    "case $1 in",
    "  -Ln) [ -e \"$FAKE/table\" ] || { echo 'Memory allocation problem' >&2; exit 1; }",
    "       echo 'IP Virtual Server version 1.2.1 (size=4096)'; echo 'Prot LocalAddress:Port Scheduler Flags'",
    "       echo '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn'",
    `       echo 'TCP  ${VIRTUAL} wrr'; cat "$FAKE/table" ;;`,
    "  -e) echo \"$*\" >>\"$FAKE/calls\"",
    "      real=$5 weight=$8",
    "      [ ! -e \"$FAKE/broken\" ] || { echo 'Memory allocation problem' >&2; exit 255; }",
    "      [ -e \"$FAKE/table\" ] || { echo 'Service not defined' >&2; exit 255; }",
    "      grep -q \" $real \" \"$FAKE/table\" || { echo 'No such destination' >&2; exit 255; }",
    "      awk -v real=\"$real\" -v w=\"$weight\" '$2 == real {$4 = w} {print}' \"$FAKE/table\" >\"$FAKE/table.new\"",
    "      mv \"$FAKE/table.new\" \"$FAKE/table\" ;;",
    "  *) exit 2 ;;",
    "esac",
].join("\n") + "\n";
// ssh: logs its arguments, checks the key file it was given, and runs the remote command here.
const fakeSsh = [
    "#!/usr/bin/env bash",
    "set -euo pipefail",
    "printf '%s\\n' \"$*\" >>\"$FAKE/ssh\"",
    "args=(\"$@\")",
    "for i in \"${!args[@]}\"; do if [ \"${args[$i]}\" = -i ]; then key=${args[$((i + 1))]}; fi; done",
    "grep -q FAKE-KEY \"$key\"",
    "eval \"${args[-1]}\"",
].join("\n") + "\n";
const fakeSudo = "#!/usr/bin/env bash\n[ \"$1\" = -n ] && shift\nexec \"$@\"\n";

function run(text: string, table: string | undefined, stdin = "", broken = false): { status: number | null; out: string; calls: string[]; table?: string; ssh: string[] } {
    const fake = fakePrograms("drain", { ipvsadm: fakeIpvsadm, ssh: fakeSsh, sudo: fakeSudo });
    if (table !== undefined) {
        fs.writeFileSync(path.join(fake, "table"), table);
    }
    if (broken) {
        fs.writeFileSync(path.join(fake, "broken"), "");
    }
    const result = spawnSync("bash", ["-c", text], {
        input: stdin, encoding: "utf8",
        env: fakeEnv(fake),
    });
    const read = (file: string) => fs.existsSync(path.join(fake, file)) ? fs.readFileSync(path.join(fake, file), "utf8") : undefined;
    return {
        status: result.status, out: result.stdout + result.stderr,
        calls: read("calls")?.trim().split("\n") ?? [], table: read("table"), ssh: read("ssh")?.trim().split("\n") ?? [],
    };
}

const line = (address: string, weight: number, active = 3) => `  -> ${address}:6443            Route   ${weight}      ${active}          0\n`;
const TABLE = line("192.168.1.11", 1) + line("192.168.1.12", 1) + line("192.168.1.13", 1);
const weights = (table = "") => table.trim().split("\n").map(l => l.trim().split(/\s+/)[3]);
const lines = (weight: 0 | 1) => ["set -euo pipefail", ...realServerWeightLines(DEFAULTS, control0, weight)].join("\n");

describe("an API server out of the load balancer and back, against a fake ipvsadm", () => {
    test("out: only its real server goes to weight 0, the others keep theirs", () => {
        const r = run(lines(0), TABLE);
        assert.equal(r.status, 0, r.out);
        assert.deepEqual(r.calls, [`-e -t ${VIRTUAL} -r 192.168.1.11:6443 -g -w 0`]);
        assert.deepEqual(weights(r.table), ["0", "1", "1"]);
        assert.match(r.out, /control0's API server \(192.168.1.11:6443\) out of the load balancer: weight 0/);
    });

    test("back: weight 1 again", () => {
        const r = run(lines(1), line("192.168.1.11", 0) + line("192.168.1.12", 1));
        assert.equal(r.status, 0, r.out);
        assert.deepEqual(weights(r.table), ["1", "1"]);
    });

    test("not listed, or no virtual service yet: nothing to do, and no failure", () => {
        for (const table of [line("192.168.1.12", 1), undefined]) {
            const r = run(lines(0), table);
            assert.equal(r.status, 0, r.out);
            assert.equal(r.table, table, "nothing changed");
            assert.match(r.out, /control0's API server \(192.168.1.11:6443\) is not in the load balancer: nothing to do/);
            assert.doesNotMatch(r.out, /No such destination|Service not defined/, "the failed edit's error is not shown");
        }
    });

    test("listed, and the edit fails: the step fails with ipvsadm's error", () => {
        const r = run(lines(0), TABLE, "", true);
        assert.notEqual(r.status, 0, r.out);
        assert.match(r.out, /Memory allocation problem/);
        assert.equal(r.calls.length, 1, "the edit is tried once");
        assert.doesNotMatch(r.out, /out of the load balancer|nothing to do/);
        assert.deepEqual(weights(r.table), ["1", "1", "1"]);
    });

    test("the real servers' gate, over ssh: passes once every API server is at weight 1; else fails in time, saying what it waited for", () => {
        const ssh = { user: "ubuntu", port: 22, hostKeys: {}, dialTimeoutSeconds: 10, dialAttempts: 3 };
        const gate = (timeoutSeconds: number) =>
            sshGateScript(gateway, { ...realServersGate({ ...DEFAULTS, healthTimeoutSeconds: timeoutSeconds }), fingerprint: "f-1" }, ssh);
        const ready = run(gate(180), TABLE, "FAKE-KEY\n");
        assert.equal(ready.status, 0, ready.out);
        assert.equal(ready.ssh.length, 1, "one session to the gateway");
        assert.match(ready.ssh[0], /HostKeyAlias=gateway .*ubuntu@192.168.1.10 sudo -n bash -s$/);
        assert.match(ready.out, /ready: ldirectord to hold all 3 API servers of 192.168.1.21:6443 at weight 1/);
        const oneOut = run(gate(1), line("192.168.1.11", 0) + line("192.168.1.12", 1) + line("192.168.1.13", 1), "FAKE-KEY\n");
        assert.notEqual(oneOut.status, 0, oneOut.out);
        assert.match(oneOut.out, /timed out after 1s waiting for ldirectord to hold all 3 API servers/);
        assert.match(oneOut.out, /192.168.1.11:6443 +Route +0/, "the diagnosis shows IPVS's table");
        assert.deepEqual(oneOut.calls, [], "a gate changes nothing");
    });

    test("the change step's local script: a no-op when created; on a change, the weight set on the gateway over ssh", () => {
        const ssh = { user: "ubuntu", port: 22, hostKeys: {}, dialTimeoutSeconds: 10, dialAttempts: 3 };
        const scripts = changeStepScripts(gateway, { what: "take control0 out", lines: realServerWeightLines(DEFAULTS, control0, 0) },
            "fingerprint-1", ssh);
        const created = run(scripts.create, TABLE, "FAKE-KEY\n");
        assert.equal(created.status, 0, created.out);
        assert.deepEqual([created.ssh, created.calls], [[], []], "created: no session, no change");
        const changed = run(scripts.update, TABLE, "FAKE-KEY\n");
        assert.equal(changed.status, 0, changed.out);
        assert.equal(changed.ssh.length, 1, changed.out);
        assert.match(changed.ssh[0], /HostKeyAlias=gateway .*ubuntu@192.168.1.10 sudo -n bash -s$/);
        assert.deepEqual(weights(changed.table), ["0", "1", "1"]);
        const keyless = run(scripts.update, TABLE, "");
        assert.notEqual(keyless.status, 0);
        assert.match(keyless.out, /no SSH private key on stdin/);
        assert.deepEqual(keyless.calls, [], "without a key nothing changes");
        assert.throws(() => changeStepScripts(gateway, { what: "x", lines: [] }, "printed\nlines", ssh), /must be one line \(a fingerprint\)/,
            "what it follows goes in a comment line: a line break would run the rest");
    });
});

describe("leaving API servers drained before ldirectord drops them, against a fake ipvsadm", () => {
    const leaving = [{ name: "control3", address: "192.168.1.14" }, { name: "control4", address: "192.168.1.15" }];
    const withConnections = (active: number) => TABLE + line("192.168.1.14", 1, active) + line("192.168.1.15", 1, active);

    test("each to weight 0; connections IPVS still lists (a watch, an end it did not see) hold it up to the grace, no longer", () => {
        const r = run(["set -euo pipefail", drainScript(DEFAULTS, leaving, 1)].join("\n"), withConnections(3));
        assert.equal(r.status, 0, r.out);
        assert.deepEqual(r.calls, [`-e -t ${VIRTUAL} -r 192.168.1.14:6443 -g -w 0`, `-e -t ${VIRTUAL} -r 192.168.1.15:6443 -g -w 0`]);
        assert.deepEqual(weights(r.table), ["1", "1", "1", "0", "0"]);
        assert.match(r.out, /waiting up to 1s for the connections to control3, control4 to end/);
        assert.match(r.out, /6 connections to control3, control4 still listed by IPVS after 1s .*: their API servers' shutdown ends them/);
    });

    test("none listed: it goes on at once", () => {
        const r = run(["set -euo pipefail", drainScript(DEFAULTS, leaving, 30)].join("\n"), withConnections(0));
        assert.equal(r.status, 0, r.out);
        assert.match(r.out, /no connection to control3, control4 left/);
        assert.doesNotMatch(r.out, /still listed/);
    });
});
