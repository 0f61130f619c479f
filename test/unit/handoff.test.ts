// etcd's leader handoff (leaderHandoff in components/etcd.ts), run for real in bash against a fake etcdctl:
// a leader moves its leadership to the preferred member, else to another started voter; a follower and a
// member that does not answer move nothing, and the script never fails the restart that follows it.
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { describe, test } from "node:test";
import { leaderHandoff } from "../../components/etcd";
import { fakeEnv, fakePrograms } from "./scratch";

// Members: control0 (the local one, id a0), control1 (b1, a learner when $FAKE/learner exists), control2 (c2).
const fakeEtcdctl = [
    "#!/usr/bin/env bash",
    "set -euo pipefail",
    "args=\"$*\"",
    "[ -e \"$FAKE/down\" ] && { echo 'context deadline exceeded' >&2; exit 1; }",
    "case $args in",
    "  *'endpoint status'*) echo \"https://127.0.0.1:2379, a0, 3.5.9, 25 kB, $(cat \"$FAKE/leader\"), false, 2, 8, 8, \" ;;",
    "  *'member list'*)",
    "    echo 'a0, started, control0, https://192.168.1.11:2380, https://192.168.1.11:2379, false'",
    "    echo \"b1, started, control1, https://192.168.1.12:2380, https://192.168.1.12:2379, $([ -e \"$FAKE/learner\" ] && echo true || echo false)\"",
    "    echo 'c2, started, control2, https://192.168.1.13:2380, https://192.168.1.13:2379, false' ;;",
    "  *'move-leader'*) echo \"${args##* }\" >>\"$FAKE/moved\" ;;",
    "  *) exit 2 ;;",
    "esac",
].join("\n") + "\n";

function run(setup: { leader: boolean; down?: boolean; learner?: boolean }, preferred?: string): { status: number | null; moved: string[]; out: string } {
    const fake = fakePrograms("handoff", { etcdctl: fakeEtcdctl });
    fs.writeFileSync(path.join(fake, "leader"), String(setup.leader));
    if (setup.down) {
        fs.writeFileSync(path.join(fake, "down"), "");
    }
    if (setup.learner) {
        fs.writeFileSync(path.join(fake, "learner"), "");
    }
    const script = ["set -euo pipefail", ...leaderHandoff(preferred), "echo restart follows"].join("\n");
    const result = spawnSync("bash", ["-c", script], {
        env: fakeEnv(fake), encoding: "utf8",
    });
    const movedFile = path.join(fake, "moved");
    const moved = fs.existsSync(movedFile) ? fs.readFileSync(movedFile, "utf8").trim().split("\n") : [];
    return { status: result.status, moved, out: result.stdout + result.stderr };
}

describe("etcd's leader handoff, run against a fake etcdctl", () => {
    test("a leader hands its leadership to the preferred member (the one restarted before it)", () => {
        const r = run({ leader: true }, "control2");
        assert.equal(r.status, 0, r.out);
        assert.deepEqual(r.moved, ["c2"]);
        assert.match(r.out, /handed its leadership to member c2[\s\S]*restart follows/);
    });

    test("without a preferred member, or when it is a learner, to another started voter", () => {
        assert.deepEqual(run({ leader: true }).moved, ["b1"]);
        assert.deepEqual(run({ leader: true, learner: true }, "control1").moved, ["c2"]);
    });

    test("a follower moves nothing", () => {
        const r = run({ leader: false }, "control1");
        assert.equal(r.status, 0, r.out);
        assert.deepEqual(r.moved, []);
    });

    test("a member that does not answer moves nothing and lets the restart go on", () => {
        const r = run({ leader: true, down: true }, "control1");
        assert.equal(r.status, 0, r.out);
        assert.deepEqual(r.moved, []);
        assert.match(r.out, /restart follows/);
    });
});
