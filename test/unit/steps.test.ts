// The building blocks' scripts run for real with bash against a scratch directory: a file step writes,
// keeps a package's original and puts it back; a binary step verifies its checksum before installing.
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { test } from "node:test";
import { versionSkewCheck } from "../../components/preflight";
import { daemonServiceSpec, DaemonSpec, DIAGNOSIS_LINES, serviceScriptsForm, unitDiagnosis } from "../../components/remote/daemon";
import { Host } from "../../components/remote/host";
import { binaryScripts, fileScripts, serviceScripts } from "../../components/remote/steps";
import { fakeEnv, fakePrograms, scratchDir } from "./scratch";

const scratch = () => scratchDir("steps");
function bash(script: string, stdin = ""): { status: number | null; stderr: string } {
    const result = spawnSync("bash", ["-c", script], { input: stdin, encoding: "utf8" });
    return { status: result.status, stderr: result.stderr };
}

test("a file step writes its content with its mode, and its delete removes it and its empty owned dir", () => {
    const dir = path.join(scratch(), "etc", "etcd");
    const file = path.join(dir, "kubernetes-key.pem");
    const steps = fileScripts({ path: file, mode: "0600", ownedDirs: [dir] });
    assert.equal(bash(steps.create, "KEY\n").status, 0);
    assert.equal(fs.readFileSync(file, "utf8"), "KEY\n");
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.equal(bash(steps.create, "KEY2\n").status, 0, "a second run converges");
    assert.equal(fs.readFileSync(file, "utf8"), "KEY2\n");
    assert.equal(bash(steps.delete!).status, 0);
    assert.ok(!fs.existsSync(dir), "the owned directory is gone");
    assert.equal(bash(steps.delete!).status, 0, "a delete of what is already gone succeeds");
});

test("a file step keeps a package's original and puts it back on delete", () => {
    const file = path.join(scratch(), "ldirectord.cf");
    fs.writeFileSync(file, "# the package's example\n");
    const steps = fileScripts({ path: file, mode: "0644", keepOriginal: true });
    assert.equal(bash(steps.create, "checktimeout=5\n").status, 0);
    assert.equal(bash(steps.create, "checktimeout=6\n").status, 0);
    assert.equal(fs.readFileSync(file, "utf8"), "checktimeout=6\n");
    assert.equal(bash(steps.delete!).status, 0);
    assert.equal(fs.readFileSync(file, "utf8"), "# the package's example\n");
    assert.ok(!fs.existsSync(`${file}.kthw-orig`));
});

test("a binary step installs only what matches its checksum, and names the URL when it fails", () => {
    const dir = scratch();
    const artifact = path.join(dir, "kube-scheduler");
    fs.writeFileSync(artifact, "#!/bin/sh\necho scheduler\n");
    const sum = crypto.createHash("sha256").update(fs.readFileSync(artifact)).digest("hex");
    const installDir = path.join(dir, "bin");
    const spec = { url: `file://${artifact}`, binaries: ["kube-scheduler"], installDir };
    const bad = bash(binaryScripts({ ...spec, sha256: "0".repeat(64) }).create);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, new RegExp(`checksum mismatch for file://${artifact}`));
    assert.ok(!fs.existsSync(path.join(installDir, "kube-scheduler")), "nothing installed on a mismatch");
    const missing = bash(binaryScripts({ ...spec, url: `file://${dir}/nothing`, sha256: "" }).create);
    assert.match(missing.stderr, /download failed on .*: file:\/\/.*\/nothing/);
    const good = binaryScripts({ ...spec, sha256: sum });
    // Checked with openssl where there is one (the Debian package here), else with sha256sum: a PATH with
    // every tool the script needs but openssl.
    assert.equal(spawnSync("bash", ["-c", "command -v openssl"]).status, 0, "openssl is installed here, so both paths run");
    const noOpenssl = path.join(dir, "no-openssl");
    fs.mkdirSync(noOpenssl);
    for (const tool of ["curl", "mktemp", "rm", "sha256sum", "cut", "mv", "install", "hostname"]) {
        fs.symlinkSync(spawnSync("bash", ["-c", `command -v ${tool}`], { encoding: "utf8" }).stdout.trim(), path.join(noOpenssl, tool));
    }
    for (const PATH of [process.env.PATH!, noOpenssl]) {
        const env = { ...process.env, PATH };
        const mismatch = spawnSync("/bin/bash", ["-c", binaryScripts({ ...spec, sha256: "0".repeat(64) }).create], { encoding: "utf8", env });
        assert.match(mismatch.stderr, new RegExp(`expected 0{64}, got ${sum}`), `PATH=${PATH}: the sum it got`);
        const run = spawnSync("/bin/bash", ["-c", good.create], { encoding: "utf8", env });
        assert.equal(run.status, 0, run.stderr);
        assert.equal(fs.statSync(path.join(installDir, "kube-scheduler")).mode & 0o777, 0o755);
        assert.equal(bash(good.delete!).status, 0);
        assert.ok(!fs.existsSync(path.join(installDir, "kube-scheduler")));
    }
});

test("preflight refuses an upgrade that skips a minor release or goes back across one, and names the key", () => {
    const bin = path.join(scratch(), "kube-apiserver");
    const check = (wanted: string) => {
        const { test: probe, message } = versionSkewCheck("kubernetesVersion", bin, "Kubernetes v", wanted, "amd64");
        return { ok: bash(`set -euo pipefail; ${probe}`).status === 0, message };
    };
    assert.ok(check("1.30.0").ok, "nothing installed yet: any release");
    fs.writeFileSync(bin, "#!/bin/sh\necho 'Kubernetes v1.28.3'\n", { mode: 0o755 });
    for (const fine of ["1.28.3", "1.28.15", "1.28.1", "1.29.0"]) {
        assert.ok(check(fine).ok, `1.28.3 installed, ${fine} wanted: fine`);
    }
    for (const refused of ["1.30.0", "1.27.9", "2.0.0"]) {
        assert.ok(!check(refused).ok, `1.28.3 installed, ${refused} wanted: refused`);
    }
    assert.match(check("1.30.0").message, /^control-plane:kubernetesVersion: 1.30.0 is not one minor release step/);
    const etcd = path.join(scratch(), "etcd");
    fs.writeFileSync(etcd, "#!/bin/sh\nprintf 'etcd Version: 3.5.9\\nGit SHA: x\\n'\n", { mode: 0o755 });
    const etcdCheck = (wanted: string) =>
        bash(versionSkewCheck("etcdVersion", etcd, "etcd Version: ", wanted, "arm64").test).status === 0;
    assert.ok(etcdCheck("3.5.35") && etcdCheck("3.6.0"), "etcd: a patch, or the next minor");
    assert.ok(!etcdCheck("3.4.30") && !etcdCheck("3.7.0"), "etcd: back across a minor, or skipping one");
});

test("a service step reloads systemd only when it holds another version of the unit file, and enables a package's unit without SysV hooks", () => {
    // A fake systemctl on PATH that records each call with the SysV switch it was given, and answers
    // NeedDaemonReload with $NEED (what systemd says when it holds another version of the unit file than the disk's).
    const dir = scratch();
    const calls = path.join(dir, "calls");
    fs.writeFileSync(path.join(dir, "systemctl"), [
        "#!/bin/bash",
        `echo "skip=\${SYSTEMCTL_SKIP_SYSV:-} $*" >>${calls}`,
        `if [ "$1 $2 $3" = "show -p NeedDaemonReload" ]; then echo "$NEED"; fi`,
    ].join("\n") + "\n", { mode: 0o755 });
    // install(1) into a scratch root: the unit file's path is rewritten to stay inside it.
    const root = scratch();
    const run = (text: string, need = "no") => {
        fs.rmSync(calls, { force: true });
        const result = spawnSync("bash", ["-c", text.split("/etc/systemd/system/").join(`${root}/`)],
            { input: "[Unit]\n", encoding: "utf8", env: { ...process.env, PATH: `${dir}:${process.env.PATH}`, NEED: need } });
        assert.equal(result.status, 0, result.stderr);
        return fs.readFileSync(calls, "utf8").trim().split("\n").filter(l => !l.includes("NeedDaemonReload"));
    };
    // `systemctl enable` and `disable` reload by themselves unless --no-reload: every call that changes links says so.
    const noImplicitReload = (lines: string[]) =>
        assert.deepEqual(lines.filter(l => / (enable|disable) /.test(l) && !l.includes("--no-reload")), []);
    const packaged = serviceScripts({ unitName: "ldirectord", fingerprint: "f", ownsUnitFile: false, onChange: "reload" });
    assert.deepEqual(run(packaged.create, "yes"), ["skip=1 enable --no-reload --quiet ldirectord", "skip= restart ldirectord"]);
    const packagedUpdate = run(packaged.update!, "yes");
    assert.equal(packagedUpdate[0], "skip=1 enable --no-reload --quiet ldirectord");
    assert.ok(!packagedUpdate.some(l => l.includes("daemon-reload")), packagedUpdate.join("\n"));
    assert.deepEqual(run(packaged.delete!), ["skip=1 disable --no-reload --now --quiet ldirectord", "skip= reset-failed ldirectord"]);
    const own = serviceScripts({ unitName: "kube-scheduler", fingerprint: "f", ownsUnitFile: true, onChange: "restart" });
    const reloads = (lines: string[]) => lines.filter(l => l === "skip= daemon-reload").length;
    for (const [op, text] of [["create", own.create], ["update", own.update!]]) {
        for (const [need, expected] of [["no", 0], ["yes", 1], ["", 1]] as const) {
            const lines = run(text, need);
            noImplicitReload(lines);
            assert.equal(reloads(lines), expected, `${op}, NeedDaemonReload=${need}:\n${lines.join("\n")}`);
            assert.equal(lines[lines.length - 1], "skip= restart kube-scheduler", "the restart comes last, after any reload");
        }
    }
    assert.ok(fs.existsSync(path.join(root, "kube-scheduler.service")), "the unit file was installed");
    // Delete: the file goes, then one reload unloads it.
    const deleted = run(own.delete!);
    noImplicitReload(deleted);
    assert.deepEqual(deleted.slice(0, 2), ["skip= disable --no-reload --now --quiet kube-scheduler", "skip= daemon-reload"]);
    assert.ok(!fs.existsSync(path.join(root, "kube-scheduler.service")), "the unit file was removed");
});

test("the scripts' form of a daemon's service step: what a drain follows besides what the daemon reads", () => {
    const spec: DaemonSpec = {
        host: {} as Host,
        binary: { url: "http://mirror/kube-apiserver", sha256: "", binaries: ["kube-apiserver"], installDir: "/usr/local/bin" },
        files: [{ what: "ca", path: "/var/lib/kubernetes/ca.pem", mode: "0644", content: "CA-1" }],
        service: { unitName: "kube-apiserver" },
        unit: "[Service]\nExecStart=/usr/local/bin/kube-apiserver --v=1\n",
        gate: { what: "it to answer", probe: "true" },
        gateTimeoutSeconds: 60,
    };
    const form = serviceScriptsForm(spec);
    assert.match(form, /^[0-9a-f]{16}$/);
    // What the daemon reads is the restart fingerprint's part, not the form's: the form stays.
    assert.equal(serviceScriptsForm({ ...spec, unit: spec.unit.replace("--v=1", "--v=2"),
        files: [{ ...spec.files[0], content: "CA-2" }] }), form);
    // Whatever renders the service step's scripts otherwise changes it: what it removes, how it waits after a
    // restart, how long, its unit file's mode.
    for (const other of [
        { ...spec, service: { ...spec.service, afterRemove: ["rm -f /var/log/audit.log"] } },
        { ...spec, gate: { ...spec.gate!, probe: "false" } },
        { ...spec, gateTimeoutSeconds: 120 },
        { ...spec, service: { ...spec.service, unitFileMode: "0600" } },
    ]) {
        assert.notEqual(serviceScriptsForm(other), form);
    }
    // The step restarts on a change, then waits for the gate.
    const withFingerprint = serviceScripts({ ...daemonServiceSpec(spec), fingerprint: "f" });
    assert.match(withFingerprint.update!, /systemctl restart 'kube-apiserver'[\s\S]*until true/);
});

test("after a restart for a change, a daemon that keeps exiting fails the step at systemd's second restart of it, not at the end of the wait", () => {
    // A fake systemctl: NRestarts counts up by one at each read after the restart (the daemon exits, systemd
    // starts it again), from 7 (restarts of the unit's earlier life); or stays where the restart left it.
    const dir = scratch();
    fs.writeFileSync(path.join(dir, "systemctl"), [
        "#!/bin/bash",
        `if [ "$1 $2 $3" = "show -p NRestarts" ]; then n=$(cat ${dir}/n 2>/dev/null || echo 7); echo "$n"; [ "$CRASHING" = no ] || echo $((n + 1)) >${dir}/n; fi`,
        `if [ "$1" = status ]; then echo "kube-scheduler.service: Main process exited, code=exited, status=1/FAILURE"; fi`,
    ].join("\n") + "\n", { mode: 0o755 });
    const root = scratch();
    const spec = {
        unitName: "kube-scheduler", fingerprint: "f", ownsUnitFile: true, onChange: "restart" as const,
        afterChange: { what: "kube-scheduler to answer", probe: "false", timeoutSeconds: 4, diagnose: "systemctl status kube-scheduler" },
    };
    const run = (crashing: string) => {
        fs.rmSync(path.join(dir, "n"), { force: true });
        const started = Date.now();
        const result = spawnSync("bash", ["-c", serviceScripts(spec).update!.split("/etc/systemd/system/").join(`${root}/`)],
            { input: "[Unit]\n", encoding: "utf8", env: { ...process.env, PATH: `${dir}:${process.env.PATH}`, CRASHING: crashing } });
        return { ...result, seconds: (Date.now() - started) / 1000 };
    };
    const crash = run("yes");
    assert.equal(crash.status, 1);
    assert.ok(crash.seconds < 2.5, `failed at once (${crash.seconds}s), not after the 4s wait`);
    assert.match(crash.stderr, /gave up waiting for kube-scheduler to answer: kube-scheduler keeps exiting: systemd restarted it 2 times since this change restarted it\n.*Main process exited/);
    // A daemon that does not exit again is waited for the whole time.
    const steady = run("no");
    assert.equal(steady.status, 1);
    assert.ok(steady.seconds >= 3, `${steady.seconds}s: the whole wait (bash counts whole seconds)`);
    assert.match(steady.stderr, /^timed out after 4s waiting for kube-scheduler to answer\n/);
});

test("a unit's diagnosis shows the journal up to the daemon's last failed exit when a new run's lines have pushed it out of the last lines", () => {
    // A fake journalctl prints $FAKE/journal (the real one's -n 500 is ignored: the journals here are shorter);
    // a fake systemctl prints the status line.
    const dir = fakePrograms("diagnosis", {
        journalctl: "#!/bin/bash\ncat \"$FAKE/journal\"\n",
        systemctl: "#!/bin/bash\necho \"status of $*\"\n",
    });
    const diagnose = (journal: string[]) => {
        fs.writeFileSync(path.join(dir, "journal"), journal.map(l => `${l}\n`).join(""));
        const out = spawnSync("bash", ["-c", unitDiagnosis("kube-apiserver")], { encoding: "utf8", env: fakeEnv(dir) });
        assert.equal(out.status, 0, out.stderr);
        return out.stdout.split("\n").slice(0, -1);
    };
    const run = (pid: number, lines: number) => Array.from({ length: lines }, (_, i) => `kube-apiserver[${pid}]: FLAG ${i}`);
    const reason = "kube-apiserver[11]: E1207 run.go:74] \"command failed\" err=\"open /etc/kubernetes/missing.yaml: no such file or directory\"";
    const exited = "systemd[1]: kube-apiserver.service: Main process exited, code=exited, status=1/FAILURE";
    const restarted = ["systemd[1]: kube-apiserver.service: Scheduled restart job, restart counter is at 2.", "systemd[1]: Started kube-apiserver.service."];

    // Diagnosed 0.1 s into the third run: its 200 flags fill the last lines.
    const crashLoop = diagnose([...run(10, 200), "kube-apiserver[10]: E1207 the first run's reason", exited, ...restarted,
        ...run(11, 200), reason, exited, ...restarted, ...run(12, 200)]);
    assert.equal(crashLoop[0], "status of status --no-pager -n 0 kube-apiserver");
    assert.deepEqual(crashLoop.slice(1), [...run(11, 200).slice(-(DIAGNOSIS_LINES - 2)), reason, exited, "...",
        ...run(12, 200).slice(-DIAGNOSIS_LINES)]);
    // An exit among the last lines, or none at all: the last lines alone.
    const recent = [...run(11, 30), reason, exited, ...restarted, ...run(12, 5)];
    assert.deepEqual(diagnose(recent).slice(1), recent.slice(-DIAGNOSIS_LINES));
    const steady = run(12, 30);
    assert.deepEqual(diagnose(steady).slice(1), steady.slice(-DIAGNOSIS_LINES));
    assert.deepEqual(diagnose(steady.slice(0, 3)).slice(1), steady.slice(0, 3));
});
