// The building blocks' scripts run for real with bash against a scratch directory: a file step writes,
// keeps a package's original and puts it back; a binary step verifies its checksum before installing.
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { test } from "node:test";
import { versionSkewCheck } from "../../components/preflight";
import { binaryScripts, fileScripts, serviceScripts } from "../../components/remote/steps";

const scratch = () => fs.mkdtempSync(path.join(os.tmpdir(), "kcp-steps-"));
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
    assert.equal(bash(good.create).status, 0);
    assert.equal(fs.statSync(path.join(installDir, "kube-scheduler")).mode & 0o777, 0o755);
    assert.equal(bash(good.delete!).status, 0);
    assert.ok(!fs.existsSync(path.join(installDir, "kube-scheduler")));
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

test("a package's unit is enabled and disabled without systemctl's SysV hooks; a unit the program writes as ever", () => {
    // A fake systemctl on PATH that records each call with the SysV switch it was given.
    const dir = scratch();
    const calls = path.join(dir, "calls");
    fs.writeFileSync(path.join(dir, "systemctl"), `#!/bin/bash\necho "skip=\${SYSTEMCTL_SKIP_SYSV:-} $*" >>${calls}\n`, { mode: 0o755 });
    const run = (text: string) => {
        fs.rmSync(calls, { force: true });
        const result = spawnSync("bash", ["-c", text], { encoding: "utf8", env: { ...process.env, PATH: `${dir}:${process.env.PATH}` } });
        assert.equal(result.status, 0, result.stderr);
        return fs.readFileSync(calls, "utf8").trim().split("\n");
    };
    const packaged = serviceScripts({ unitName: "ldirectord", fingerprint: "f", ownsUnitFile: false, onChange: "reload" });
    assert.deepEqual(run(packaged.create), ["skip=1 enable --quiet ldirectord", "skip= restart ldirectord"]);
    assert.equal(run(packaged.update!)[0], "skip=1 enable --quiet ldirectord");
    assert.equal(run(packaged.delete!)[0], "skip=1 disable --now --quiet ldirectord");
    // The program's own units: the scripts of a deployed stack do not change.
    const own = serviceScripts({ unitName: "kube-scheduler", fingerprint: "f", ownsUnitFile: true, onChange: "restart" });
    assert.deepEqual(run(own.delete!).slice(0, 1), ["skip= disable --now --quiet kube-scheduler"]);
    assert.match(own.create, /\nsystemctl enable --quiet 'kube-scheduler'\nsystemctl restart 'kube-scheduler'/);
});
