// Lose no data: the etcd snapshot steps in the graph (before every member restart and removal, and before
// destroy removes the data), a restore on a new stack, the encryption key kept as a secret, and the local
// snapshot script run for real against a fake `ssh`.
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { describe, test } from "node:test";
import { memberSnapshotScript, restoreUploadScript, snapshotScript } from "../../components/backup";
import type { ProgramRun } from "./harness";
import { byName, changed, dependsOn, byType, devConfig, isSecret, LOCAL, nodes, plain, REMOTE, reveal, runProgram, scriptOf, SSH_KEY_MARKER } from "./program";
import { fakeEnv, fakePrograms, scratchDir } from "./scratch";


const scratch = () => scratchDir("backup");
const names = nodes(3).map(n => n.name);

describe("the snapshot steps in the graph", () => {
    const run = runProgram(devConfig());
    const before = byName(run, "etcd-backup-before-change-snapshot");
    const atDestroy = byName(run, "etcd-backup-before-destroy-snapshot");

    test("the snapshot precedes every etcd restart: every etcd member step waits for it", () => {
        assert.equal(run.error, undefined, run.error);
        const etcdSteps = byType(run, REMOTE).filter(r => /^etcd-control\d-/.test(r.name));
        assert.equal(etcdSteps.length, 3 * 6, "binary, ca, cert, key, data dir and service per member");
        for (const step of etcdSteps) {
            assert.ok(dependsOn(run, step, before), `${step.name} waits for the snapshot`);
        }
        names.forEach(n => assert.ok(dependsOn(run, byName(run, `etcd-${n}-service`), before)));
        // It runs after the read-only preflight checks, before nothing else it could wait for.
        names.forEach(n => assert.ok(dependsOn(run, before, byName(run, `preflight-${n}-version-skew`))));
        assert.ok(!dependsOn(run, before, byName(run, "etcd-control0-binary")));
    });

    test("the snapshot before destroy depends on every etcd service and data dir, so destroy deletes it first", () => {
        for (const n of names) {
            for (const step of ["service", "data-dir", "binary", "key"]) {
                assert.ok(dependsOn(run, atDestroy, byName(run, `etcd-${n}-${step}`)), `after etcd-${n}-${step}`);
            }
        }
        assert.ok(dependsOn(run, atDestroy, byName(run, "etcd-cluster-gate")));
        for (const r of byType(run, REMOTE).filter(r => r.name.startsWith("etcd-"))) {
            assert.ok(!dependsOn(run, r, atDestroy), `${r.name} does not wait for it (it is deleted before them)`);
        }
    });

    test("the snapshot scripts: taken on create and update before a change, only by the delete before destroy", () => {
        for (const key of ["create", "update"]) {
            const text = scriptOf(plain(before, key));
            assert.match(text, /^# a snapshot whenever an etcd member will restart or be removed: [0-9a-f]{16}$/m);
            assert.match(text, /etcdctl --endpoints=https:\/\/127.0.0.1:2379 .* "\$@"; \}\n.*\n.*\n.*\n.*snapshot save/);
            assert.match(text, /etcdutl snapshot status "\$tmp\/snapshot.db" -w json/);
            assert.match(text, new RegExp(`dir='${path.resolve("backups")}/test'`), "backupDir under the project, per stack");
            assert.match(text, /head -n -5 \|/, "keeps the newest 5");
            assert.match(text, /'sudo -n bash -s' <<<"\$member_script"/, "the member's script goes on stdin");
        }
        assert.equal(before.inputs.delete, undefined, "nothing to undo: the snapshots stay");
        assert.doesNotMatch(scriptOf(plain(atDestroy, "create")), /ssh|snapshot save/, "created: nothing to do");
        assert.match(scriptOf(plain(atDestroy, "delete")), /^# a snapshot before destroy removes etcd's data$/m);
        assert.match(scriptOf(plain(atDestroy, "delete")), /file="\$dir\/test-\$stamp-before-destroy.db"/);
        for (const r of [before, atDestroy]) {
            assert.ok(isSecret(r.inputs.stdin), `${r.name}: the SSH key is its stdin, a secret`);
            assert.match(reveal(r.inputs.stdin) as string, new RegExp(SSH_KEY_MARKER));
            assert.ok(r.additionalSecretOutputs.includes("stdin"));
            for (const key of ["create", "update", "delete"]) {
                assert.doesNotMatch(String(r.inputs[key] ?? ""), /PRIVATE KEY|MOCK-SSH/);
            }
        }
    });

    test("the snapshot's inputs change with an etcd flag, and not with an API server flag", () => {
        const inputs = (r: ProgramRun) => JSON.stringify(byName(r, "etcd-backup-before-change-snapshot").inputs);
        assert.notEqual(inputs(runProgram(devConfig({ etcdExtraArgs: { "snapshot-count": "20000" } }))), inputs(run));
        assert.equal(inputs(runProgram(devConfig({ apiServerExtraArgs: { "event-ttl": "2h" } }))), inputs(run));
    });

    test("the shipped member script passes shellcheck", () => {
        const file = path.join(scratch(), "member.sh");
        fs.writeFileSync(file, memberSnapshotScript());
        const result = spawnSync("shellcheck", ["--shell=bash", "--severity=style", file], { encoding: "utf8" });
        assert.equal(result.status, 0, result.stdout);
    });
});

describe("restore on a new stack", () => {
    const dir = scratch();
    const snapshot = path.join(dir, "lab-20260101T000000Z-before-destroy.db");
    fs.writeFileSync(snapshot, "a snapshot of etcd");
    const sha = crypto.createHash("sha256").update("a snapshot of etcd").digest("hex");
    const key = crypto.randomBytes(32).toString("base64");
    const run = runProgram(devConfig({ restoreFrom: snapshot, encryptionKey: key }));

    test("restoreFrom: the snapshot is copied to every node, then each member's data dir restores it", () => {
        assert.equal(run.error, undefined, run.error);
        const upload = byName(run, "etcd-restore-upload");
        assert.equal(upload.type, LOCAL);
        assert.ok(isSecret(upload.inputs.stdin), "the SSH key on stdin");
        const copy = scriptOf(plain(upload, "create"));
        assert.match(copy, new RegExp(`snapshot='${snapshot}'`));
        assert.match(copy, /members=\('control0=192.168.1.11' 'control1=192.168.1.12' 'control2=192.168.1.13'\)/);
        assert.ok(dependsOn(run, upload, byName(run, "etcd-backup-before-change-snapshot")));
        nodes(3).forEach(({ name, address }) => {
            const dataDir = byName(run, `etcd-${name}-data-dir`);
            const create = scriptOf(plain(dataDir, "create"));
            assert.match(create, new RegExp(`etcdutl snapshot restore /var/tmp/kthw-etcd-restore.db --name '${name}' ` +
                `--initial-cluster 'control0=https://192.168.1.11:2380,control1=https://192.168.1.12:2380,control2=https://192.168.1.13:2380' ` +
                `--initial-cluster-token 'etcd-cluster-0-restored-${sha.slice(0, 12)}' ` +
                `--initial-advertise-peer-urls 'https://${address}:2380' --data-dir "\\$work/etcd"`));
            assert.match(create, /already holds etcd data: restoreFrom restores only a new stack/, "never over live data");
            assert.match(create, new RegExp(`= '${sha}' \\]`), "the snapshot's sha256 is checked on the node");
            assert.ok(dependsOn(run, dataDir, upload), `${dataDir.name} after the copy`);
            assert.ok(dependsOn(run, dataDir, byName(run, `etcd-${name}-binary`)), `${dataDir.name} after etcdutl is installed`);
            assert.ok(dependsOn(run, byName(run, `etcd-${name}-service`), dataDir));
        });
        // The unit is the seed's: a restored data dir ignores the initial-cluster flags.
        assert.equal(reveal(byName(run, "etcd-control0-service").inputs.stdin),
            reveal(byName(runProgram(devConfig()), "etcd-control0-service").inputs.stdin));
    });

    test("restoreFrom left set, then nodes join: they start empty; the copy keeps what it did; nothing more changes", () => {
        const config = { restoreFrom: snapshot, encryptionKey: key, nodes: nodes(5) };
        const grown = runProgram(devConfig(config), { probe: { hosts: run.expectedFacts, lastOutputs: run.outputs } });
        assert.equal(grown.error, undefined, grown.error);
        assert.deepEqual(byName(grown, "etcd-restore-upload").ignoreChanges, ["create"]);
        for (const name of ["control3", "control4"]) {
            assert.doesNotMatch(scriptOf(plain(byName(grown, `etcd-${name}-data-dir`), "create")), /snapshot restore/);
        }
        assert.equal(plain(byName(grown, "etcd-control0-data-dir"), "create"), plain(byName(run, "etcd-control0-data-dir"), "create"));
        const after = runProgram(devConfig(config), { probe: { hosts: grown.expectedFacts, lastOutputs: grown.outputs } });
        assert.deepEqual(changed(grown, after), []);
        assert.deepEqual(byName(run, "etcd-restore-upload").ignoreChanges, [], "a new stack copies it");
    });

    test("without restoreFrom: no copy, and the seed's data dir step", () => {
        const plainRun = runProgram(devConfig());
        assert.equal(plainRun.registrations.filter(r => r.name.startsWith("etcd-restore")).length, 0);
        assert.equal(scriptOf(plain(byName(plainRun, "etcd-control0-data-dir"), "create")),
            "#!/usr/bin/env bash\nset -euo pipefail\ninstall -d -m 0700 '/var/lib/etcd'\n");
    });

    test("encryptionKey: the API servers encrypt with it (the generated key second), and it never shows", () => {
        const config = reveal(byName(run, "kube-apiserver-control0-encryption-config").inputs.stdin) as string;
        assert.match(config, new RegExp(`- name: key1\\n +secret: ${key.replace(/[+/]/g, "\\$&")}\\n +- name: key2\\n +secret: MOCK-ENCRYPTION-KEY`));
        assert.ok(isSecret(run.outputs.encryptionKey), "the stack output is a secret");
        assert.equal(reveal(run.outputs.encryptionKey), key);
        const leaks: string[] = [];
        const walk = (where: string, value: unknown): void => {
            if (isSecret(value)) {
                return;
            }
            if (typeof value === "string" && value.includes(key)) {
                leaks.push(where);
            } else if (value !== null && typeof value === "object") {
                Object.entries(value).forEach(([k, v]) => walk(`${where}.${k}`, v));
            }
        };
        run.registrations.forEach(r => walk(r.name, r.inputs));
        walk("outputs", run.outputs);
        assert.deepEqual(leaks, []);
        assert.doesNotMatch(run.stderr, new RegExp(key.replace(/[+/]/g, "\\$&")), "nor in the program's log");
    });

    test("without encryptionKey the generated key is the stack output, a secret", () => {
        const plainRun = runProgram(devConfig());
        assert.ok(isSecret(plainRun.outputs.encryptionKey));
        assert.equal(reveal(plainRun.outputs.encryptionKey), "MOCK-ENCRYPTION-KEY-pki-encryption-key");
    });

    test("an encryptionKey in plain text in the stack file, or not a key, is refused without repeating it", () => {
        const plainText = runProgram(devConfig({ encryptionKey: key }), { secretKeys: [] });
        assert.match(plainText.error ?? "", /control-plane:encryptionKey: is stored in plain text in the stack file; set it with `pulumi config set --secret encryptionKey`/);
        const bad = runProgram(devConfig({ encryptionKey: "c2VjcmV0" }));
        assert.match(bad.error ?? "", /control-plane:encryptionKey: is not the base64 of 32 bytes/);
        assert.doesNotMatch(bad.error ?? "", /c2VjcmV0/);
        assert.match(runProgram(devConfig({ restoreFrom: path.join(dir, "missing.db") })).error ?? "",
            /control-plane:restoreFrom: no snapshot file at .*missing.db/);
        assert.match(runProgram(devConfig({ backupKeep: 0 })).error ?? "", /control-plane:backupKeep: 0 is not a whole number from 1 to 100/);
    });
});

describe("the local snapshot script, run for real against a fake ssh", () => {
    const SSH_KEY = `-----BEGIN OPENSSH ${"PRIVATE"} KEY-----\nFAKE-KEY\n-----END OPENSSH ${"PRIVATE"} KEY-----\n`;
    const fakeSsh = [
        "#!/usr/bin/env bash",
        "# A fake ssh: the member's behaviour comes from $FAKE/<host alias>.mode; records what it was given.",
        "set -euo pipefail",
        "alias='' key=''",
        "while [ $# -gt 0 ]; do",
        "  case $1 in",
        "    -o) case $2 in HostKeyAlias=*) alias=${2#*=} ;; esac; shift 2 ;;",
        "    -i) key=$2; shift 2 ;;",
        "    -F | -p) shift 2 ;;",
        "    -*) shift ;;",
        "    *) break ;;",
        "  esac",
        "done",
        "printf '%s %s\\n' \"$alias\" \"$*\" >>\"$FAKE/argv\"",
        "stat -c %a \"$key\" >>\"$FAKE/key-modes\"",
        "cat \"$key\" >\"$FAKE/key-seen\"",
        "cat >\"$FAKE/stdin-$alias\"",
        "snap=$FAKE/snapshot.db",
        "case $(cat \"$FAKE/$alias.mode\") in",
        "  empty) echo \"$alias: no etcd data in /var/lib/etcd\" >&2; exit 3 ;;",
        "  down) echo \"$alias: etcd is not healthy here\" >&2; exit 1 ;;",
        "  damaged) echo \"kthw-sha256 0000\" >&2; cat \"$snap\" ;;",
        "  ok) echo 'kthw-status {\"hash\":1,\"revision\":7,\"totalKey\":3,\"totalSize\":20480}' >&2",
        "      echo \"kthw-sha256 $(sha256sum \"$snap\" | cut -d' ' -f1)\" >&2",
        "      cat \"$snap\" ;;",
        "esac",
    ].join("\n") + "\n";

    function setup(modes: Record<string, string>) {
        const fake = fakePrograms("backup", { ssh: fakeSsh });
        fs.mkdirSync(path.join(fake, "tmp"));
        fs.writeFileSync(path.join(fake, "snapshot.db"), crypto.randomBytes(20000));
        for (const [host, mode] of Object.entries(modes)) {
            fs.writeFileSync(path.join(fake, `${host}.mode`), mode);
        }
        return fake;
    }
    function runScript(fake: string, keep = 5, backupDir = path.join(fake, "backups")) {
        const text = snapshotScript({
            nodes: nodes(3), backupDir, keep, stack: "lab", reason: "before-change", fingerprint: "0123456789abcdef",
            ssh: { user: "ubuntu", port: 22, hostKeys: { control1: "ssh-ed25519 AAAAC3Nza" }, dialTimeoutSeconds: 10, dialAttempts: 3 },
        });
        const result = spawnSync("bash", ["-c", text], {
            input: SSH_KEY, encoding: "utf8",
            env: { ...fakeEnv(fake), TMPDIR: path.join(fake, "tmp") },
        });
        return { ...result, dir: path.join(backupDir, "lab") };
    }

    test("the first healthy member's snapshot is kept, 0600, named by stack and time, with its status; the key only in a temp file", () => {
        const fake = setup({ control0: "down", control1: "ok", control2: "ok" });
        const result = runScript(fake);
        assert.equal(result.status, 0, result.stderr);
        const files = fs.readdirSync(result.dir).sort();
        assert.equal(files.length, 2, files.join());
        assert.match(files[0], /^lab-\d{8}T\d{6}Z-before-change\.db$/);
        assert.equal(files[1], `${files[0]}.json`);
        const kept = path.join(result.dir, files[0]);
        assert.deepEqual(fs.readFileSync(kept), fs.readFileSync(path.join(fake, "snapshot.db")));
        assert.equal(fs.statSync(kept).mode & 0o777, 0o600);
        assert.equal(fs.statSync(result.dir).mode & 0o777, 0o700);
        const status = JSON.parse(fs.readFileSync(path.join(result.dir, files[1]), "utf8"));
        assert.equal(status.member, "control1");
        assert.equal(status.status.revision, 7);
        assert.match(result.stdout, /etcd snapshot of control1: .*lab-.*-before-change.db \(20000 bytes, \d+s\)/);
        // The key went to ssh as a 0600 file (never on its command line), and the file is gone.
        assert.equal(fs.readFileSync(path.join(fake, "key-seen"), "utf8"), SSH_KEY);
        assert.deepEqual([...new Set(fs.readFileSync(path.join(fake, "key-modes"), "utf8").trim().split("\n"))], ["600"]);
        assert.doesNotMatch(fs.readFileSync(path.join(fake, "argv"), "utf8"), /FAKE-KEY/);
        assert.match(fs.readFileSync(path.join(fake, "argv"), "utf8"), /^control1 ubuntu@192.168.1.12 sudo -n bash -s$/m);
        assert.match(fs.readFileSync(path.join(fake, "stdin-control1"), "utf8"), /snapshot save "\$tmp\/snapshot.db"/);
        // Only the directory of the shared connections' sockets (components/remote/ssh.ts), empty here (a fake ssh).
        const left = fs.readdirSync(path.join(fake, "tmp"));
        assert.deepEqual(left, [`kthw-ssh-${process.getuid!()}`], "no temp file is left");
        assert.deepEqual(fs.readdirSync(path.join(fake, "tmp", left[0])), []);
        assert.doesNotMatch(result.stdout + result.stderr, /FAKE-KEY/);
    });

    test("the newest backupKeep snapshots are kept", () => {
        const fake = setup({ control0: "ok" });
        const dir = path.join(fake, "backups", "lab");
        fs.mkdirSync(dir, { recursive: true });
        for (const day of ["01", "02", "03"]) {
            fs.writeFileSync(path.join(dir, `lab-200001${day}T000000Z-before-change.db`), "old");
            fs.writeFileSync(path.join(dir, `lab-200001${day}T000000Z-before-change.db.json`), "{}");
        }
        const result = runScript(fake, 2);
        assert.equal(result.status, 0, result.stderr);
        const dbs = fs.readdirSync(dir).filter(f => f.endsWith(".db")).sort();
        assert.equal(dbs.length, 2);
        assert.equal(dbs[0], "lab-20000103T000000Z-before-change.db");
        assert.ok(!fs.existsSync(path.join(dir, "lab-20000101T000000Z-before-change.db.json")));
    });

    test("a new cluster (no member holds data): no snapshot, no failure", () => {
        const fake = setup({ control0: "empty", control1: "empty", control2: "empty" });
        const result = runScript(fake);
        assert.equal(result.status, 0, result.stderr);
        assert.match(result.stdout, /no etcd member holds data yet \(a new cluster\): no snapshot to take/);
        assert.deepEqual(fs.readdirSync(result.dir), []);
    });

    test("no healthy member, or a damaged transfer: the step fails naming each member, and keeps nothing", () => {
        const fake = setup({ control0: "down", control1: "empty", control2: "damaged" });
        const result = runScript(fake);
        assert.equal(result.status, 1);
        assert.match(result.stderr, /no etcd snapshot could be taken, so nothing was changed; each member said:/);
        assert.match(result.stderr, /control0: control0: etcd is not healthy here \(exit 1\)/);
        assert.match(result.stderr, /control2: the snapshot arrived damaged/);
        assert.deepEqual(fs.readdirSync(result.dir), []);
    });

    test("the restore copy sends the file on ssh's stdin and checks it there", () => {
        const text = restoreUploadScript(nodes(1), { user: "ubuntu", port: 2222, hostKeys: {}, dialTimeoutSeconds: 5, dialAttempts: 2 },
            "/srv/snap.db", "ab".repeat(32));
        assert.match(text, /on "\$name" "\$address" 'sudo -n sh -c "umask 077 && cat > \/var\/tmp\/kthw-etcd-restore.db"' <"\$snapshot"/);
        assert.match(text, /-p 2222 'ubuntu'@"\$address"/);
        const file = path.join(scratch(), "upload.sh");
        fs.writeFileSync(file, text);
        assert.equal(spawnSync("shellcheck", ["--shell=bash", "--severity=style", file]).status, 0);
    });
});
