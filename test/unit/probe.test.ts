// The host probe and the drift markers as pure functions: the probe script run for real with bash against a
// scratch directory, its parser, the ssh runner against a fake `ssh`, the marker rule case by case, and the
// version skew policy as the probe applies it.
import { strict as assert } from "assert";
import { spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { describe, test } from "node:test";
import { localSshLines } from "../../components/remote/ssh";
import { DEFAULTS } from "../../components/config";
import { Expectation, factsInSync, isInSync, nextMarker, observedLine, probeQueryOf, withDriftMarker } from "../../components/remote/drift";
import {
    emptyFacts, emptyQuery, HostFacts, knownSums, knownVersions, parseProbeOutput, ProbeQuery, probeQueryLines, probeScript, ProbeUnavailable,
    sshProbeRunner,
} from "../../components/remote/probe";
import { sharedConnectionDir, sharedConnectionOptions, sharedConnectionSocket, sshOptionGroups } from "../../components/remote/ssh";
import { commandLineProblems, installedRelease, portProblems, skewAllowed, versionSkewProblems } from "../../components/preflight";
import { fakeEnv, fakePrograms, scratchDir } from "./scratch";

const scratch = () => scratchDir("probe");
const sha = (text: string) => crypto.createHash("sha256").update(text).digest("hex");
const query = (q: Partial<ProbeQuery>): ProbeQuery => ({ ...emptyQuery(), ...q });
/** The probe's script run for real here with bash, its output parsed. */
function runProbe(q: Partial<ProbeQuery>): HostFacts {
    const run = spawnSync("bash", ["-s"], { input: probeScript(query(q)), encoding: "utf8" });
    assert.equal(run.status, 0, run.stderr);
    return parseProbeOutput(run.stdout);
}

describe("the probe script", () => {
    test("reports each file's sha256, mode and owner, a directory, a missing file; never a content", () => {
        const dir = scratch();
        const key = path.join(dir, "kubernetes-key.pem");
        fs.writeFileSync(key, "SECRET-KEY-MATERIAL\n", { mode: 0o600 });
        const spaced = path.join(dir, "a file with spaces");
        fs.writeFileSync(spaced, "x", { mode: 0o644 });
        fs.chmodSync(spaced, 0o644);
        const binary = path.join(dir, "etcdutl");
        fs.writeFileSync(binary, "#!/bin/sh\n", { mode: 0o755 });
        fs.chmodSync(binary, 0o755);
        const text = probeScript(query({
            files: [key, dir, spaced, path.join(dir, "missing")],
            stats: [binary, key],
            sysctls: ["kernel.ostype", "kernel.no-such-parameter", "net.ipv4.ip_local_port_range"],
            addresses: [{ device: "lo", address: "127.0.0.1" }, { device: "lo", address: "192.0.2.99" }, { device: "nope0", address: "192.0.2.1" }],
            versions: [{ binary: "/bin/bash", arch: "amd64" }, { binary: path.join(dir, "no-binary"), arch: "arm64" }],
            units: ["kthw-no-such-unit"],
        }));
        const run = spawnSync("bash", ["-s"], { input: text, encoding: "utf8" });
        assert.equal(run.status, 0, run.stderr);
        assert.doesNotMatch(run.stdout, /SECRET-KEY-MATERIAL/);
        const user = `${os.userInfo().username}:${spawnSync("id", ["-gn"], { encoding: "utf8" }).stdout.trim()}`;
        const facts = parseProbeOutput(run.stdout);
        assert.deepEqual(facts.files[key], { sha256: sha("SECRET-KEY-MATERIAL\n"), mode: "600", owner: user });
        assert.deepEqual(facts.files[spaced], { sha256: sha("x"), mode: "644", owner: user });
        assert.equal(facts.files[dir].sha256, "dir");
        assert.deepEqual(facts.files[binary], { sha256: "*", mode: "755", owner: user }, "stat only: not read");
        assert.deepEqual(facts.files[path.join(dir, "missing")], { sha256: undefined, mode: undefined, owner: undefined });
        assert.equal(facts.sysctls["kernel.ostype"], "Linux");
        assert.equal(facts.sysctls["kernel.no-such-parameter"], undefined);
        // As `sysctl -n` prints it, its tab as one space.
        assert.equal(facts.sysctls["net.ipv4.ip_local_port_range"],
            fs.readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).join(" "));
        assert.deepEqual(facts.addresses, { "lo 127.0.0.1": true, "lo 192.0.2.99": false, "nope0 192.0.2.1": false });
        assert.match(facts.versions["/bin/bash"], /^GNU bash, version \d/);
        assert.equal(facts.versions[path.join(dir, "no-binary")], undefined);
        assert.ok(facts.units["kthw-no-such-unit"], "a unit line for every unit asked");
        assert.notEqual(facts.units["kthw-no-such-unit"].enabled, "enabled");
    });

    test("names each port's listeners with ss (a real server, listening twice: one line), a free port, and none without ss", async () => {
        const listen = (port: number, host: string) => new Promise<net.Server>((resolve, reject) => {
            const server = net.createServer().on("error", reject);
            server.listen(port, host, () => resolve(server));
        });
        const first = await listen(0, "127.0.0.1");
        const held = (first.address() as net.AddressInfo).port;
        const second = await listen(held, "127.0.0.2");
        const spare = await listen(0, "127.0.0.1");
        const free = (spare.address() as net.AddressInfo).port;
        await new Promise(resolve => spare.close(resolve));
        try {
            const text = probeScript(query({ ports: [held, free] }));
            const run = spawnSync("bash", ["-s"], { input: text, encoding: "utf8" });
            assert.equal(run.status, 0, run.stderr);
            const facts = parseProbeOutput(run.stdout);
            const cgroup = fs.readFileSync("/proc/self/cgroup", "utf8").match(/\/([^/\n]+\.service)\n/)?.[1];
            assert.deepEqual(facts.ports[String(held)], [{ pid: String(process.pid), unit: cgroup, process: "node" }]);
            assert.deepEqual(facts.ports[String(free)], []);
            // No ss (iproute2): nothing known, nothing said.
            const without = spawnSync("/bin/bash", ["-s"], { input: text, encoding: "utf8", env: { ...process.env, PATH: scratch() } });
            assert.equal(without.status, 0, without.stderr);
            assert.deepEqual(parseProbeOutput(without.stdout).ports, {});
        } finally {
            first.close();
            second.close();
        }
    });

    test("reads ss again while a port asked about has a listener no process holds, or one whose process is gone (a daemon exiting), at most 2 s", () => {
        // A fake ss: the controller manager's port without its process for the first ORPHANED calls, then held
        // by a process gone before its cgroup is read (a pid above any pid_max) until call GONE, then by a live
        // one (this test's own process); a port nobody asked about stays without a process throughout and is
        // never waited for.
        const dir = fakePrograms("probe-ss", {
            ss: ["#!/bin/bash", "n=$(($(cat \"$FAKE/calls\" 2>/dev/null || echo 0) + 1)); echo \"$n\" >\"$FAKE/calls\"",
                "echo 'LISTEN 0 4096 *:9999 *:*'",
                "if ((n <= ORPHANED)); then echo 'LISTEN 0 4096 *:10257 *:*'",
                "elif ((n <= GONE)); then echo 'LISTEN 0 4096 *:10257 *:* users:((\"kube-controller\",pid=4999999,fd=3))'",
                "else echo \"LISTEN 0 4096 *:10257 *:* users:((\\\"kube-controller\\\",pid=$LIVE,fd=3))\"; fi", ""].join("\n"),
        });
        const run = (orphaned: number, gone: number, ports: number[]) => {
            fs.rmSync(path.join(dir, "calls"), { force: true });
            const out = spawnSync("bash", ["-s"], { input: probeScript(query({ ports })), encoding: "utf8",
                env: { ...fakeEnv(dir), ORPHANED: String(orphaned), GONE: String(gone), LIVE: String(process.pid) } });
            assert.equal(out.status, 0, out.stderr);
            return { ports: parseProbeOutput(out.stdout).ports, calls: Number(fs.readFileSync(path.join(dir, "calls"), "utf8")) };
        };
        const unit = fs.readFileSync("/proc/self/cgroup", "utf8").match(/\/([^/\n]+\.service)\n/)?.[1];
        const live = { "10257": [{ pid: String(process.pid), unit, process: "kube-controller" }] };
        assert.deepEqual(run(3, 3, [10257]), { ports: live, calls: 4 }, "no process, then its own");
        assert.deepEqual(run(0, 3, [10257]), { ports: live, calls: 4 }, "a process gone before its cgroup was read, then its own");
        assert.deepEqual(run(2, 4, [10257]), { ports: live, calls: 5 });
        assert.deepEqual(run(1000, 1000, [10257]), { ports: { "10257": [{ pid: "-", unit: undefined, process: "-" }] }, calls: 21 });
        assert.deepEqual(run(0, 1000, [10257]), { ports: { "10257": [{ pid: "4999999", unit: undefined, process: "kube-controller" }] }, calls: 21 });
        assert.deepEqual(run(1000, 1000, [2380]), { ports: { "2380": [] }, calls: 1 }, "listeners of ports not asked about are not waited for");
    });

    test("parses port lines: free, one listener or more, unknown; refuses a malformed one", () => {
        const facts = parseProbeOutput(["kthw-probe begin", "port 2379 198 etcd.service etcd", "port 2380 free",
            "port 6443 12 - kube-apiserver", "port 6443 - - -", "port 10259 unknown", "kthw-probe end"].join("\n"));
        assert.deepEqual(facts.ports, {
            "2379": [{ pid: "198", unit: "etcd.service", process: "etcd" }],
            "2380": [],
            "6443": [{ pid: "12", unit: undefined, process: "kube-apiserver" }, { pid: "-", unit: undefined, process: "-" }],
        });
        assert.throws(() => parseProbeOutput("kthw-probe begin\nport 2379 busy\nkthw-probe end"), /unexpected line/);
        assert.throws(() => probeQueryLines(query({ ports: [70000] })), /must be a TCP port number/);
    });

    test("tries each daemon's command line with its binary: running (its process has it), ok, refused (what it said, its version), absent; one systemctl in all", async () => {
        const dir = scratch();
        const bin = path.join(dir, "bin");
        fs.mkdirSync(bin);
        const calls = path.join(dir, "calls");
        // As cobra does: the usage, then the error; and Go's flag package: the error, then the usage.
        const cobra = (known: string) => ["#!/bin/bash", 'for a in "$@"; do case $a in --version | ' + known + ') ;;',
            '  *) printf "Usage:\\n  x [flags]\\n\\nError: unknown flag: %s\\n" "${a%%=*}" >&2; exit 1 ;; esac; done',
            'echo "Kubernetes v1.28.3"', ""].join("\n");
        fs.writeFileSync(path.join(dir, "kube-apiserver"), cobra("--event-ttl=*"), { mode: 0o755 });
        fs.writeFileSync(path.join(dir, "kube-controller-manager"), cobra("--v=*"), { mode: 0o755 });
        fs.writeFileSync(path.join(dir, "etcd"), ["#!/bin/bash", 'for a in "$@"; do case $a in --version | --name=*) ;;',
            '  *) printf "flag provided but not defined: %s\\nUsage:\\n" "${a%%=*}" >&2; exit 2 ;; esac; done',
            'printf "etcd Version: 3.5.9\\nGit SHA: x\\n"', ""].join("\n"), { mode: 0o755 });
        // A daemon that runs: a real process (a copy of sleep) with the very command line asked about.
        const scheduler = path.join(dir, "kube-scheduler");
        fs.copyFileSync(spawnSync("bash", ["-c", "command -v sleep"], { encoding: "utf8" }).stdout.trim(), scheduler);
        fs.chmodSync(scheduler, 0o755);
        const running = spawn(scheduler, ["30"], { stdio: "ignore" });
        try {
            fs.writeFileSync(path.join(bin, "systemctl"), ["#!/bin/bash", `echo systemctl "$@" >>${calls}`,
                `printf '0\\n\\n0\\n\\n${running.pid}\\n\\n0\\n\\n0\\n\\n'`, ""].join("\n"), { mode: 0o755 });
            const ask = (unit: string, binary: string, ...args: string[]) => ({ unit, binary, args });
            const text = probeScript(query({ commandLines: [
                ask("kube-apiserver", path.join(dir, "kube-apiserver"), "--event-ttl=2h", "--evnt-ttl=2h"),
                ask("kube-controller-manager", path.join(dir, "kube-controller-manager"), "--v=2"),
                ask("kube-scheduler", scheduler, "30"),
                ask("etcd", path.join(dir, "etcd"), "--name=control0", "--snapshot-cont=1"),
                ask("kthw-none", path.join(dir, "missing"), "--v=2"),
            ] }));
            // Wait until the process runs the copy, not node's fork of itself.
            for (let i = 0; i < 50 && !fs.readFileSync(`/proc/${running.pid}/cmdline`, "utf8").startsWith(scheduler); i++) {
                await new Promise(resolve => setTimeout(resolve, 20));
            }
            const run = spawnSync("/bin/bash", ["-s"], { input: text, encoding: "utf8", env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
            assert.equal(run.status, 0, run.stderr);
            assert.deepEqual(parseProbeOutput(run.stdout).commandLines, {
                "kube-apiserver": { state: "refused", version: "Kubernetes v1.28.3", message: "Error: unknown flag: --evnt-ttl" },
                "kube-controller-manager": { state: "ok" },
                "kube-scheduler": { state: "running" },
                "etcd": { state: "refused", version: "etcd Version: 3.5.9", message: "flag provided but not defined: --snapshot-cont" },
                "kthw-none": { state: "absent" },
            });
            assert.deepEqual(fs.readFileSync(calls, "utf8").trim().split("\n"),
                ["systemctl show --property=MainPID --value -- kube-apiserver kube-controller-manager kube-scheduler etcd kthw-none"]);
            // A unit the probe asks about anyway: its main process comes with its states, from the one systemctl.
            fs.rmSync(calls);
            fs.writeFileSync(path.join(bin, "systemctl"), ["#!/bin/bash", `echo systemctl "$@" >>${calls}`,
                `printf 'UnitFileState=enabled\\nActiveState=active\\nMainPID=${running.pid}\\n'`, ""].join("\n"), { mode: 0o755 });
            const both = spawnSync("/bin/bash", ["-s"], { input: probeScript(query({ units: ["kube-scheduler"],
                commandLines: [ask("kube-scheduler", scheduler, "30")] })), encoding: "utf8", env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
            assert.equal(both.status, 0, both.stderr);
            assert.deepEqual(parseProbeOutput(both.stdout).commandLines, { "kube-scheduler": { state: "running" } });
            assert.deepEqual(fs.readFileSync(calls, "utf8").trim().split("\n"),
                ["systemctl show --property=UnitFileState,ActiveState,MainPID -- kube-scheduler"]);
        } finally {
            running.kill();
        }
        assert.throws(() => probeQueryLines(query({ commandLines: [{ unit: "etcd", binary: "/usr/local/bin/etcd", args: ["--name=a b"] }] })),
            /argument "--name=a b" must be one word/);
    });

    test("parses command line lines; refuses a malformed one, or what a binary said without its refusal", () => {
        const facts = parseProbeOutput(["kthw-probe begin", "argv etcd running", "argv kube-apiserver refused",
            "argv-version kube-apiserver Kubernetes v1.28.3", "argv-error kube-apiserver Error: unknown flag: --evnt-ttl",
            "argv kube-scheduler refused", "argv-version kube-scheduler ", "argv-error kube-scheduler ", "kthw-probe end"].join("\n"));
        assert.deepEqual(facts.commandLines, {
            "etcd": { state: "running" },
            "kube-apiserver": { state: "refused", version: "Kubernetes v1.28.3", message: "Error: unknown flag: --evnt-ttl" },
            "kube-scheduler": { state: "refused" },
        });
        assert.throws(() => parseProbeOutput("kthw-probe begin\nargv etcd maybe\nkthw-probe end"), /unexpected line/);
        assert.throws(() => parseProbeOutput("kthw-probe begin\nargv etcd ok\nargv-error etcd boom\nkthw-probe end"), /unexpected line/);
    });

    test("hashes big files with openssl where there is one, else with sha256sum, small ones with sha256sum: the same sums", () => {
        const dir = scratch();
        const file = path.join(dir, "kube-apiserver");
        fs.writeFileSync(file, crypto.randomBytes(3 * 1024 * 1024));
        const small = path.join(dir, "kube-apiserver.service");
        fs.writeFileSync(small, "[Unit]\n");
        const text = probeScript(query({ files: [file, small] }));
        // A PATH with every tool the script needs but openssl.
        const bin = path.join(dir, "bin");
        fs.mkdirSync(bin);
        for (const tool of ["sha256sum", "stat", "cat", "sed", "head"]) {
            const found = spawnSync("bash", ["-c", `command -v ${tool}`], { encoding: "utf8" }).stdout.trim();
            fs.symlinkSync(found, path.join(bin, tool));
        }
        const hasOpenssl = spawnSync("bash", ["-c", "command -v openssl"]).status === 0;
        assert.ok(hasOpenssl, "openssl is installed here (the Debian package), so both paths run");
        const sums = [process.env.PATH!, bin].map(PATH => {
            const run = spawnSync("/bin/bash", ["-s"], { input: text, encoding: "utf8", env: { ...process.env, PATH } });
            assert.equal(run.status, 0, run.stderr);
            const facts = parseProbeOutput(run.stdout);
            return [facts.files[file].sha256, facts.files[small].sha256];
        });
        const expected = [crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex"), sha("[Unit]\n")];
        assert.deepEqual(sums, [expected, expected]);
    });

    test("starts one stat, one digest for the files of 1 MiB or more and one for the rest, one systemctl; reads each unit's states from its own block", () => {
        const dir = scratch();
        const bin = path.join(dir, "bin");
        fs.mkdirSync(bin);
        const calls = path.join(dir, "calls");
        // Each tool records its call, then runs the real one; systemctl answers `show` as systemd does, a block a unit.
        for (const tool of ["stat", "openssl", "sha256sum"]) {
            const real = spawnSync("bash", ["-c", `command -v ${tool}`], { encoding: "utf8" }).stdout.trim();
            fs.writeFileSync(path.join(bin, tool), `#!/bin/bash\necho ${tool} >>${calls}\nexec ${real} "$@"\n`, { mode: 0o755 });
        }
        fs.writeFileSync(path.join(bin, "systemctl"), [
            "#!/bin/bash", `echo systemctl "$@" >>${calls}`,
            "printf 'ActiveState=active\\nUnitFileState=enabled\\n\\n'",
            "printf 'ActiveState=inactive\\nUnitFileState=\\n\\n'",
            "printf 'UnitFileState=disabled\\nActiveState=failed\\n'", ""].join("\n"), { mode: 0o755 });
        const files = ["a", "b", "c"].map(name => path.join(dir, name));
        files.forEach((f, i) => fs.writeFileSync(f, `content ${i}`));
        const bigFiles = ["etcd", "kube-apiserver"].map(name => path.join(dir, name));
        bigFiles.forEach((f, i) => fs.writeFileSync(f, Buffer.alloc(1024 * 1024 + i, i)));
        const text = probeScript(query({ files: [...files, ...bigFiles, path.join(dir, "missing")], stats: [path.join(dir, "calls")],
            units: ["etcd", "kthw-none", "kube-apiserver"] }));
        const run = spawnSync("/bin/bash", ["-s"], { input: text, encoding: "utf8", env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
        assert.equal(run.status, 0, run.stderr);
        const facts = parseProbeOutput(run.stdout);
        files.forEach((f, i) => assert.equal(facts.files[f].sha256, sha(`content ${i}`), f));
        bigFiles.forEach(f => assert.equal(facts.files[f].sha256, crypto.createHash("sha256").update(fs.readFileSync(f)).digest("hex"), f));
        assert.deepEqual(facts.units, {
            etcd: { enabled: "enabled", active: "active" },
            "kthw-none": { enabled: "-", active: "inactive" },
            "kube-apiserver": { enabled: "disabled", active: "failed" },
        });
        const called = fs.readFileSync(calls, "utf8").trim().split("\n");
        assert.deepEqual(called.map(c => c.split(" ")[0]).sort(), ["openssl", "sha256sum", "stat", "systemctl"]);
        assert.equal(called.find(c => c.startsWith("systemctl")), "systemctl show --property=UnitFileState,ActiveState,MainPID -- etcd kthw-none kube-apiserver");
    });

    test("is read-only and shellcheck-clean; what to observe is data in a quoted heredoc, never expanded", () => {
        const dir = scratch();
        const text = probeScript(query({ files: [`${dir}/$(touch ${dir}/pwned)`, "/etc/`id`"], units: ["etcd"] }));
        assert.match(text, /done <<'KTHW_PROBE_QUERY'\nfile .*\nfile \/etc\/`id`\nunit etcd\nKTHW_PROBE_QUERY\n/);
        const run = spawnSync("bash", ["-s"], { input: text, encoding: "utf8" });
        assert.equal(run.status, 0, run.stderr);
        assert.ok(!fs.existsSync(path.join(dir, "pwned")), "a path is never run");
        assert.doesNotMatch(text, /\b(rm|mv|chmod|chown|install|tee|systemctl (start|stop|restart|enable|disable))\b/);
        const file = path.join(dir, "probe.sh");
        fs.writeFileSync(file, text);
        const lint = spawnSync("shellcheck", ["--shell=bash", "--severity=style", file], { encoding: "utf8" });
        assert.equal(lint.status, 0, lint.stdout);
    });

    test("refuses an item that is not one word, or a path over two lines", () => {
        assert.throws(() => probeQueryLines(query({ units: ["two words"] })), /unit "two words" must be one word/);
        assert.throws(() => probeQueryLines(query({ files: ["/etc/a\nunit x"] })), /must be one line/);
    });

    test("the parser skips a banner before the begin line, and fails on an output cut short or a line it does not know", () => {
        const facts = parseProbeOutput("Welcome!\nkthw-probe begin\nunit enabled active etcd\naddr present lo 192.168.1.21\n" +
            "sysctl net.ipv4.conf.all.arp_ignore 1\nversion /usr/local/bin/etcd etcd Version: 3.5.9\nkthw-probe end\n");
        assert.deepEqual(facts.units.etcd, { enabled: "enabled", active: "active" });
        assert.equal(facts.addresses["lo 192.168.1.21"], true);
        assert.equal(facts.sysctls["net.ipv4.conf.all.arp_ignore"], "1");
        assert.equal(facts.versions["/usr/local/bin/etcd"], "etcd Version: 3.5.9");
        assert.throws(() => parseProbeOutput("kthw-probe begin\nunit enabled active etcd\n"), /incomplete/);
        assert.throws(() => parseProbeOutput("kthw-probe begin\ncat /etc/shadow\nkthw-probe end\n"), /unexpected line/);
    });

    test("a big file's sum read before is not read again while its identity holds; a file changed within the second has none", () => {
        // A big file unchanged for long: this very Node.js binary, read only.
        const old = process.execPath;
        const real = crypto.createHash("sha256").update(fs.readFileSync(old)).digest("hex");
        const first = runProbe({ files: [old] }).files[old];
        assert.equal(first.sha256, real);
        assert.match(first.identity ?? "", /^[0-9]+ [0-9]+ [0-9]+ [0-9]+\.[0-9]{9} [0-9]+\.[0-9]{9}$/);
        assert.equal(first.identity!.split(" ")[0], String(fs.statSync(old).size));
        // Given back with another sum: that sum is reported, so the file was not read.
        const fake = "a".repeat(64);
        assert.equal(runProbe({ files: [old], known: { [old]: `${first.identity} ${fake}` } }).files[old].sha256, fake);
        // Another identity (another inode, or any write, which moves the ctime): read again.
        const [size, device, inode, mtime, ctime] = first.identity!.split(" ");
        const moved = `${size} ${device} ${Number(inode) + 1} ${mtime} ${ctime}`;
        assert.equal(runProbe({ files: [old], known: { [old]: `${moved} ${fake}` } }).files[old].sha256, real);
        // A big file just written: hashed, but no identity to keep (a write in the same clock tick could follow).
        const fresh = path.join(scratch(), "kube-apiserver");
        fs.copyFileSync(old, fresh);
        const now = runProbe({ files: [fresh], known: { [fresh]: `${first.identity} ${fake}` } }).files[fresh];
        assert.deepEqual([now.sha256, now.identity], [real, undefined]);
        // Small files have none either, and a sum given for a file not asked is not sent.
        const small = path.join(scratch(), "a.pem");
        fs.writeFileSync(small, "x");
        assert.equal(runProbe({ files: [small] }).files[small].identity, undefined);
        assert.doesNotMatch(probeScript(query({ files: [small], known: { [old]: `${first.identity} ${fake}` } })), /^sum /m);
        assert.doesNotMatch(probeScript(query({ files: [old], known: { [old]: `not an identity ${fake}` } })), /^sum /m);
    });

    test("the sums kept for the next run: files with an identity, by host", () => {
        const facts = (files: HostFacts["files"]): HostFacts => ({ ...emptyFacts(), files });
        const identity = "123 39 2417086 1795886576.639438723 1795886576.639438723";
        const hosts = new Map<string, HostFacts | undefined>([
            ["control0", facts({
                "/usr/local/bin/kube-apiserver": { sha256: "e".repeat(64), mode: "755", owner: "root:root", identity },
                "/etc/etcd/ca.pem": { sha256: "c".repeat(64), mode: "644", owner: "root:root" },
                "/usr/local/bin/etcd": { sha256: "*", mode: "755", owner: "root:root", identity },
            })],
            ["gateway", facts({ "/etc/ha.d/ldirectord.cf": { sha256: "d".repeat(64), mode: "644", owner: "root:root" } })],
            ["control1", undefined],
        ]);
        const kept = knownSums(hosts);
        assert.deepEqual(kept, { control0: { "/usr/local/bin/kube-apiserver": `${identity} ${"e".repeat(64)}` } });
    });

    test("a binary's --version line read before is not read again while its identity holds, hashed or only stat'ed", () => {
        // Two old binaries: this very Node.js, big and hashed (its identity from the files' probe), and env, small
        // and only stat'ed (its identity from the versions' probe).
        const node = process.execPath;
        const env = fs.realpathSync("/usr/bin/env");
        const asked = { files: [node], stats: [env], versions: [node, env].map(binary => ({ binary, arch: "amd64" })) };
        const first = runProbe(asked);
        assert.equal(first.versions[node], process.version);
        assert.match(first.versions[env], /^env \(GNU coreutils\) /);
        const identity = (binary: string) => first.files[binary].identity!;
        assert.match(identity(env), /^[0-9]+ [0-9]+ [0-9]+ [0-9]+\.[0-9]{9} [0-9]+\.[0-9]{9}$/);
        assert.equal(identity(env).split(" ")[0], String(fs.statSync(env).size));
        // Given back with other lines: those are reported, so neither binary was started.
        const given = { [node]: `${identity(node)} v0.0.1-given`, [env]: `${identity(env)} env (given) 0.1` };
        assert.deepEqual(runProbe({ ...asked, knownVersions: given }).versions, { [node]: "v0.0.1-given", [env]: "env (given) 0.1" });
        // Another identity (another inode, or any write): started again.
        const [size, device, inode, mtime, ctime] = identity(env).split(" ");
        const moved = { [env]: `${size} ${device} ${Number(inode) + 1} ${mtime} ${ctime} env (given) 0.1` };
        assert.equal(runProbe({ ...asked, knownVersions: moved }).versions[env], first.versions[env]);
        // A binary just written has no identity to keep, and its line given for an older identity is not used.
        const fresh = path.join(scratch(), "kube-apiserver");
        fs.copyFileSync(env, fresh);
        fs.chmodSync(fresh, 0o755);
        const now = runProbe({ stats: [fresh], versions: [{ binary: fresh, arch: "amd64" }], knownVersions: { [fresh]: given[env] } });
        assert.deepEqual([now.versions[fresh], now.files[fresh].identity], [first.versions[env], undefined]);
        // A line for a binary not asked, or not a known line, is not sent.
        assert.doesNotMatch(probeScript(query({ ...asked, versions: [], knownVersions: given })), /^vknown /m);
        assert.doesNotMatch(probeScript(query({ ...asked, knownVersions: { [env]: `not an identity ${first.versions[env]}` } })), /^vknown /m);
        assert.match(probeScript(query({ ...asked, knownVersions: given })), /^vknown [0-9. ]+ \S+ env \(given\) 0\.1$/m);

        // Kept for the next run: the lines of binaries with an identity, by host.
        const kept = knownVersions(new Map<string, HostFacts | undefined>([["control0", first], ["control1", now], ["gateway", undefined]]));
        assert.deepEqual(kept, { control0: { [node]: `${identity(node)} ${process.version}`, [env]: `${identity(env)} ${first.versions[env]}` } });
    });
});

describe("the ssh probe runner, against a fake ssh", () => {
    const fakeSsh = [
        "#!/usr/bin/env bash",
        "# A fake ssh: records its argv, the key file's mode and its stdin, then answers as $FAKE/answer says.",
        "set -euo pipefail",
        "key=''",
        "args=(\"$@\")",
        "for ((i = 0; i < ${#args[@]}; i++)); do [ \"${args[i]}\" = -i ] && key=${args[i+1]}; done",
        "printf '%s\\n' \"$@\" >\"$FAKE/argv\"",
        "echo started >>\"$FAKE/started\"",
        "stat -c %a \"$key\" >\"$FAKE/key-mode\"",
        "cat \"$key\" >\"$FAKE/key-seen\"",
        "for ((i = 0; i < ${#args[@]}; i++)); do case ${args[i]} in UserKnownHostsFile=*) cp \"${args[i]#*=}\" \"$FAKE/known-hosts\" ;; esac; done",
        "cat >\"$FAKE/stdin\"",
        "case $(cat \"$FAKE/answer\") in",
        "  ok) printf 'kthw-probe begin\\nunit enabled active etcd\\nkthw-probe end\\n' ;;",
        "  refused) echo 'ssh: connect to host 192.168.1.13 port 22: Connection refused' >&2; exit 255 ;;",
        "  stale) if printf '%s\\n' \"$@\" | grep -q '^ControlMaster=auto$'; then echo 'mux_client_request_session: read from master failed: Connection reset by peer' >&2; exit 255; fi",
        "    printf 'kthw-probe begin\\nunit enabled active etcd\\nkthw-probe end\\n' ;;",
        "esac",
    ].join("\n") + "\n";
    const KEY = `-----BEGIN OPENSSH ${"PRIVATE"} KEY-----\nFAKE-PROBE-KEY\n-----END OPENSSH ${"PRIVATE"} KEY-----\n`;
    const settings = { user: "ubuntu", port: 2222, hostKeys: { control0: "ssh-ed25519 AAAAC3Nza" }, dialTimeoutSeconds: 7, dialAttempts: 2 };

    function setup(answer: string) {
        const fake = scratch();
        fs.writeFileSync(path.join(fake, "ssh"), fakeSsh, { mode: 0o755 });
        fs.writeFileSync(path.join(fake, "answer"), answer);
        const keyFile = path.join(fake, "id_ed25519");
        fs.writeFileSync(keyFile, KEY, { mode: 0o644 });
        process.env.FAKE = fake;
        return { fake, keyFile, run: sshProbeRunner(settings, keyFile, path.join(fake, "ssh")) };
    }

    test("one ssh with the shared options, the key a 0600 copy removed after, the script on stdin to sudo -n bash -s", async () => {
        const tmpBefore = new Set(fs.readdirSync(os.tmpdir()).filter(f => f.startsWith("kthw-probe-")));
        const { fake, keyFile, run } = setup("ok");
        const facts = await run({ name: "control0", address: "192.168.1.11" }, query({ units: ["etcd"] }));
        assert.deepEqual(facts.units.etcd, { enabled: "enabled", active: "active" });
        const argv = fs.readFileSync(path.join(fake, "argv"), "utf8").trim().split("\n");
        const keyCopy = argv[argv.indexOf("-i") + 1];
        assert.notEqual(keyCopy, keyFile, "a copy of the key, whatever the mode of the original");
        assert.equal(fs.readFileSync(path.join(fake, "key-mode"), "utf8").trim(), "600");
        assert.equal(fs.readFileSync(path.join(fake, "key-seen"), "utf8"), KEY);
        const expected = sshOptionGroups(settings, {
            key: keyCopy, knownHosts: argv.find(a => a.startsWith("UserKnownHostsFile="))!.slice("UserKnownHostsFile=".length),
            alias: "control0", strict: "yes",
        }).flat();
        const shared = sharedConnectionOptions(sharedConnectionSocket(sharedConnectionDir(process.env.TMPDIR || "/tmp", process.getuid!()),
            KEY, "control0 ssh-ed25519 AAAAC3Nza\n", "ubuntu@192.168.1.11:2222"));
        assert.deepEqual(argv, [...expected, ...shared, "ubuntu@192.168.1.11", "sudo -n bash -s"]);
        assert.ok(argv.includes("ConnectTimeout=7") && argv.includes("ConnectionAttempts=2") && argv.includes("BatchMode=yes"));
        assert.equal(fs.readFileSync(path.join(fake, "known-hosts"), "utf8"), "control0 ssh-ed25519 AAAAC3Nza\n");
        assert.equal(fs.readFileSync(path.join(fake, "stdin"), "utf8"), probeScript(query({ units: ["etcd"] })));
        assert.ok(!argv.some(a => a.includes("FAKE-PROBE-KEY")));
        const tmpAfter = fs.readdirSync(os.tmpdir()).filter(f => f.startsWith("kthw-probe-") && !tmpBefore.has(f));
        assert.deepEqual(tmpAfter, [], "the temp dir with the key copy is gone");
        // A host without a pinned key is accepted, as the remote steps accept it.
        await run({ name: "control1", address: "192.168.1.12" }, query({ units: ["etcd"] }));
        assert.ok(fs.readFileSync(path.join(fake, "argv"), "utf8").includes("StrictHostKeyChecking=no"));
    });

    test("the snapshot steps' ssh uses the very same options", () => {
        const text = localSshLines(settings).join("\n");
        for (const group of sshOptionGroups(settings, { key: `"$secrets/key"`, knownHosts: `"$secrets/known_hosts"`, alias: `"$name"`, strict: `"$strict"` })) {
            assert.ok(text.includes(group.join(" ")), group.join(" "));
        }
    });

    test("a session opened before the query is the one the probe uses; one opened for nothing ends with an empty script", async () => {
        const { fake, run } = setup("ok");
        const started = () => fs.existsSync(path.join(fake, "started")) ? fs.readFileSync(path.join(fake, "started"), "utf8").split("\n").length - 1 : 0;
        run.connect({ name: "control0", address: "192.168.1.11" });
        for (let i = 0; i < 100 && started() === 0; i++) {
            await new Promise(resolve => setTimeout(resolve, 20));
        }
        assert.equal(started(), 1, "ssh runs before the query is known");
        await new Promise(resolve => setTimeout(resolve, 100));
        assert.ok(!fs.existsSync(path.join(fake, "stdin")) || fs.readFileSync(path.join(fake, "stdin"), "utf8") === "", "and waits for its script");
        const facts = await run({ name: "control0", address: "192.168.1.11" }, query({ units: ["etcd"] }));
        assert.deepEqual(facts.units.etcd, { enabled: "enabled", active: "active" });
        assert.equal(started(), 1, "no second ssh");
        assert.equal(fs.readFileSync(path.join(fake, "stdin"), "utf8"), probeScript(query({ units: ["etcd"] })));
        run.connect({ name: "control1", address: "192.168.1.12" });
        run.close();
        for (let i = 0; i < 100 && fs.readFileSync(path.join(fake, "stdin"), "utf8") !== ""; i++) {
            await new Promise(resolve => setTimeout(resolve, 20));
        }
        assert.equal(fs.readFileSync(path.join(fake, "stdin"), "utf8"), "", "the unused session read an empty script");
    });

    test("the probe and the local SSH steps share one connection per host: the same socket, in a directory this user's alone", () => {
        const { fake, run } = setup("ok");
        const tmp = scratch();
        const onControl0 = (env: NodeJS.ProcessEnv) => {
            const text = [...localSshLines(settings), "on control0 192.168.1.11 true"].join("\n");
            const result = spawnSync("bash", ["-c", text], { input: KEY, encoding: "utf8", env: { ...process.env, ...env, PATH: `${fake}:${process.env.PATH}` } });
            assert.equal(result.status, 0, result.stderr);
            return fs.readFileSync(path.join(fake, "argv"), "utf8").trim().split("\n").filter(a => a.startsWith("ControlPath="));
        };
        const probeArgv = async (tmpdir: string) => {
            const before = process.env.TMPDIR;
            process.env.TMPDIR = tmpdir;
            try {
                await run({ name: "control0", address: "192.168.1.11" }, query({}));
            } finally {
                if (before === undefined) { delete process.env.TMPDIR; } else { process.env.TMPDIR = before; }
            }
            return fs.readFileSync(path.join(fake, "argv"), "utf8").trim().split("\n").filter(a => a.startsWith("ControlPath="));
        };
        const dir = sharedConnectionDir(tmp, process.getuid!());
        const step = onControl0({ TMPDIR: tmp });
        assert.deepEqual(step, [`ControlPath=${sharedConnectionSocket(dir, KEY, "control0 ssh-ed25519 AAAAC3Nza\n", "ubuntu@192.168.1.11:2222")}`]);
        assert.equal((fs.statSync(dir).mode & 0o777).toString(8), "700");
        return probeArgv(tmp).then(probe => {
            assert.deepEqual(probe, step, "the probe joins the steps' connection");
            // A directory someone else could enter: no shared connection, each session its own.
            fs.chmodSync(dir, 0o755);
            assert.deepEqual(onControl0({ TMPDIR: tmp }), []);
            return probeArgv(tmp);
        }).then(probe => assert.deepEqual(probe, []));
    });

    test("a shared connection that was open already and fails is tried once more on a connection of its own; a new one is not", async () => {
        const tmp = scratch();
        const before = process.env.TMPDIR;
        process.env.TMPDIR = tmp;
        try {
            const { fake, run } = setup("stale");
            const socket = sharedConnectionSocket(sharedConnectionDir(tmp, process.getuid!()), KEY, "control0 ssh-ed25519 AAAAC3Nza\n", "ubuntu@192.168.1.11:2222");
            const starts = () => fs.readFileSync(path.join(fake, "started"), "utf8").trim().split("\n").length;
            // No socket yet: the failure is the host's, said as is.
            await assert.rejects(run({ name: "control0", address: "192.168.1.11" }, query({ units: ["etcd"] })), /read from master failed/);
            assert.equal(starts(), 1);
            fs.writeFileSync(socket, "");
            const facts = await run({ name: "control0", address: "192.168.1.11" }, query({ units: ["etcd"] }));
            assert.deepEqual(facts.units.etcd, { enabled: "enabled", active: "active" });
            assert.equal(starts(), 3, "the stale connection, then one of its own");
            assert.ok(!fs.readFileSync(path.join(fake, "argv"), "utf8").includes("ControlMaster=auto"));
        } finally {
            if (before === undefined) { delete process.env.TMPDIR; } else { process.env.TMPDIR = before; }
        }
    });

    test("a failed ssh says what ssh said; no ssh at all is a probe that cannot run", async () => {
        const { run } = setup("refused");
        await assert.rejects(run({ name: "control2", address: "192.168.1.13" }, query({ units: ["etcd"] })),
            /ssh: connect to host 192.168.1.13 port 22: Connection refused/);
        const missing = sshProbeRunner(settings, setup("ok").keyFile, "/nonexistent/ssh");
        await assert.rejects(missing({ name: "control2", address: "192.168.1.13" }, query({})), (e: unknown) => e instanceof ProbeUnavailable);
    });
});

describe("drift markers, case by case", () => {
    const file: Expectation = { kind: "file", path: "/var/lib/kubernetes/kubernetes-key.pem", sha256: sha("key"), mode: "0600", owner: "root:root" };
    const unit: Expectation = { kind: "unit", name: "kube-scheduler" };
    const vip: Expectation[] = [{ kind: "address", device: "lo", address: "192.168.1.21" },
        { kind: "sysctl", key: "net.ipv4.conf.all.arp_ignore", value: "1" }];
    const all = [file, unit, ...vip];
    const inSync = () => factsInSync(all);
    const with_ = (change: (f: HostFacts) => void) => { const f = inSync(); change(f); return f; };

    test("what a step installs is what the probe asks", () => {
        const fromArchive: Expectation = { kind: "file", path: "/usr/local/bin/etcd", mode: "0755", owner: "root:root" };
        assert.deepEqual(probeQueryOf([...all, fromArchive, { kind: "directory", path: "/var/lib/etcd", mode: "0700" }]), {
            files: [file.kind === "file" ? file.path : ""], stats: ["/usr/local/bin/etcd", "/var/lib/etcd"], units: ["kube-scheduler"],
            addresses: [{ device: "lo", address: "192.168.1.21" }], sysctls: ["net.ipv4.conf.all.arp_ignore"],
        }, "a content is read only when it is compared");
    });

    test("in sync: the content, the mode (as stat prints it), the owner; a unit enabled and running or coming back", () => {
        assert.ok(all.every(e => isInSync(e, inSync())));
        assert.ok(!isInSync(file, with_(f => { f.files[(file as { path: string }).path].mode = "644"; })), "chmod 0644");
        assert.ok(!isInSync(file, with_(f => { f.files[(file as { path: string }).path].owner = "nobody:nogroup"; })), "chown");
        assert.ok(!isInSync(file, with_(f => { f.files[(file as { path: string }).path].sha256 = sha("edited"); })), "an edit");
        assert.ok(!isInSync(file, emptyFacts()), "deleted");
        assert.ok(isInSync({ ...file, sha256: undefined } as Expectation, with_(f => { f.files[(file as { path: string }).path].sha256 = sha("other"); })),
            "a binary from an archive: its sum is not compared");
        assert.ok(!isInSync(unit, with_(f => { f.units["kube-scheduler"] = { enabled: "disabled", active: "active" }; })), "disabled");
        assert.ok(!isInSync(unit, with_(f => { f.units["kube-scheduler"] = { enabled: "enabled", active: "inactive" }; })), "stopped");
        assert.ok(!isInSync(unit, with_(f => { f.units["kube-scheduler"] = { enabled: "enabled", active: "failed" }; })), "failed");
        assert.ok(isInSync(unit, with_(f => { f.units["kube-scheduler"] = { enabled: "enabled", active: "activating" }; })),
            "systemd restarting it on its own is not drift");
        assert.ok(!isInSync(vip[0], with_(f => { f.addresses["lo 192.168.1.21"] = false; })), "the VIP gone from lo");
        assert.ok(!isInSync(vip[1], with_(f => { f.sysctls["net.ipv4.conf.all.arp_ignore"] = "0"; })), "arp_ignore back to 0");
        const dir: Expectation = { kind: "directory", path: "/var/lib/etcd", mode: "0700" };
        assert.ok(isInSync(dir, factsInSync([dir])));
        assert.ok(!isInSync(dir, with_(f => { f.files["/var/lib/etcd"] = { sha256: "dir", mode: "755", owner: "root:root" }; })));
    });

    test("the marker: new step \"\", no facts or in sync: the previous one, a difference: a new one from what the host has and the previous", () => {
        const drifted = with_(f => { f.units["kube-scheduler"] = { enabled: "disabled", active: "inactive" }; });
        assert.equal(nextMarker(undefined, all, drifted), "", "a new step (the first up) carries no marker");
        assert.equal(nextMarker("", all, undefined), "", "no facts (no key)");
        assert.equal(nextMarker("0123456789abcdef", all, undefined), "0123456789abcdef");
        assert.equal(nextMarker("", all, inSync()), "", "steady state");
        const repair = nextMarker("", all, drifted);
        assert.match(repair, /^[0-9a-f]{16}$/, "a hand edit");
        assert.equal(nextMarker("", all, drifted), repair, "the same facts and previous give the same marker (preview and up agree)");
        assert.equal(nextMarker(repair, all, inSync()), repair, "the run after the repair keeps it: no diff");
        const again = nextMarker(repair, all, drifted);
        assert.ok(again !== repair && again !== "", "the same edit again after a repair is a new marker");
        const other = nextMarker("", all, with_(f => { f.files[(file as { path: string }).path].mode = "644"; }));
        assert.ok(other !== repair, "another difference, another marker");
        assert.deepEqual(all.map(e => observedLine(e, drifted)), [
            `file ${sha("key")} 600 root:root /var/lib/kubernetes/kubernetes-key.pem`, "unit disabled inactive kube-scheduler",
            "addr present lo 192.168.1.21", "sysctl net.ipv4.conf.all.arp_ignore 1"], "hashes and states only");
    });

    test("the marker line goes after the strict-mode header; an empty marker changes nothing", () => {
        const text = "#!/usr/bin/env bash\nset -euo pipefail\necho hi\n";
        assert.equal(withDriftMarker(text, ""), text);
        assert.equal(withDriftMarker(text, "0123456789abcdef"), "#!/usr/bin/env bash\nset -euo pipefail\n# drift repaired: 0123456789abcdef\necho hi\n");
    });
});

describe("the version skew policy from the probe", () => {
    test("reads the installed release from --version's first line", () => {
        assert.equal(installedRelease("Kubernetes v1.28.3", "Kubernetes v"), "1.28.3");
        assert.equal(installedRelease("etcd Version: 3.5.9", "etcd Version: "), "3.5.9");
        assert.equal(installedRelease(undefined, "Kubernetes v"), undefined);
        assert.equal(installedRelease("something else", "Kubernetes v"), undefined);
    });

    test("a patch up or down and the next minor are fine; skipping a minor, going back across one, another major are not", () => {
        for (const fine of ["1.28.3", "1.28.15", "1.28.1", "1.29.0"]) {
            assert.ok(skewAllowed("1.28.3", fine), fine);
        }
        for (const refused of ["1.30.0", "1.27.9", "2.0.0"]) {
            assert.ok(!skewAllowed("1.28.3", refused), refused);
        }
        assert.ok(skewAllowed(undefined, "1.30.0"), "nothing installed yet");
    });

    test("names the node, the key and what is installed", () => {
        const facts = new Map<string, HostFacts | undefined>([
            ["control0", { ...emptyFacts(), versions: { "/usr/local/bin/kube-apiserver": "Kubernetes v1.26.1", "/usr/local/bin/etcd": "etcd Version: 3.5.9" } }],
            ["control1", undefined],
        ]);
        const nodes = DEFAULTS.nodes.slice(0, 2);
        assert.deepEqual(versionSkewProblems({ ...DEFAULTS, etcdVersion: "3.6.1" }, nodes, facts), [
            "control0: control-plane:kubernetesVersion: 1.28.3 is not one minor release step from the Kubernetes installed here " +
            "(/usr/local/bin/kube-apiserver --version): upgrade one minor release at a time, and never back across one (installed: 1.26.1)",
        ]);
        assert.equal(versionSkewProblems({ ...DEFAULTS, kubernetesVersion: "1.27.4", etcdVersion: "3.7.0" }, nodes, facts).length, 1,
            "etcd 3.5.9 -> 3.7.0 skips a minor");
        assert.match(versionSkewProblems({ ...DEFAULTS, kubernetesVersion: "1.27.4", etcdVersion: "3.7.0" }, nodes, facts)[0],
            /^control0: control-plane:etcdVersion: 3.7.0 is not one minor release step from the etcd installed here/);
    });
});

describe("the daemons' command lines from the probe", () => {
    const nodes = DEFAULTS.nodes.slice(0, 2);
    const refused = (version: string) => ({ state: "refused" as const, version, message: "Error: unknown flag: --evnt-ttl" });
    const facts = (commandLines: HostFacts["commandLines"]) => new Map<string, HostFacts | undefined>([
        ["control0", { ...emptyFacts(), commandLines }], ["control1", undefined]]);

    test("refused by the release the change wants: the node, the daemon, the keys that set its flags, what it said", () => {
        assert.deepEqual(commandLineProblems(DEFAULTS, nodes, facts({
            "kube-apiserver": refused("Kubernetes v1.28.3"),
            "etcd": { state: "refused", version: "etcd Version: 3.5.9", message: "flag provided but not defined: -snapshot-cont" },
            "kube-scheduler": { state: "refused", version: "Kubernetes v1.28.3" },
        })), [
            "control0: kube-apiserver 1.28.3 refuses the command line this change would restart it with (its flags come from control-plane:apiServerExtraArgs and control-plane:profile): Error: unknown flag: --evnt-ttl",
            "control0: etcd 3.5.9 refuses the command line this change would restart it with (its flags come from control-plane:etcdExtraArgs and control-plane:profile): flag provided but not defined: -snapshot-cont",
            "control0: kube-scheduler 1.28.3 refuses the command line this change would restart it with (its flags come from control-plane:schedulerExtraArgs and control-plane:profile): no error line",
        ]);
    });

    test("running, parsed, absent, or refused by another release (an upgrade's binary is not there yet): nothing said", () => {
        assert.deepEqual(commandLineProblems(DEFAULTS, nodes, facts({
            "etcd": { state: "running" }, "kube-controller-manager": { state: "ok" }, "kube-scheduler": { state: "absent" },
        })), []);
        assert.deepEqual(commandLineProblems({ ...DEFAULTS, kubernetesVersion: "1.28.15" }, nodes, facts({ "kube-apiserver": refused("Kubernetes v1.28.3") })), []);
        assert.deepEqual(commandLineProblems(DEFAULTS, nodes, facts({ "kube-apiserver": refused("") })), [], "no version line: another binary");
    });
});

describe("the control plane's ports from the probe", () => {
    const nodes = DEFAULTS.nodes.slice(0, 2);
    const withPorts = (ports: HostFacts["ports"]) => new Map<string, HostFacts | undefined>([
        ["control0", { ...emptyFacts(), ports }], ["control1", undefined]]);

    test("free, or held by the daemon's own unit: fine; unknown (no ss, no probe): nothing said", () => {
        assert.deepEqual(portProblems(DEFAULTS, nodes, withPorts({
            "2379": [{ pid: "1", unit: "etcd.service", process: "etcd" }], "2380": [{ pid: "1", unit: "etcd.service", process: "etcd" }],
            "6443": [], "10257": [{ pid: "2", unit: "kube-controller-manager.service", process: "kube-controller" }],
        })), []);
    });

    test("held by anything else: the node, the port, what it is for, every holder, and the unit it should be", () => {
        assert.deepEqual(portProblems({ ...DEFAULTS, apiPort: 8443 }, nodes, withPorts({
            "8443": [{ pid: "9", unit: "haproxy.service", process: "haproxy" }, { pid: "10", process: "socat" }],
            "2379": [{ pid: "11", unit: "kube-apiserver.service", process: "kube-apiserver" }],
            "6443": [{ pid: "12", unit: "haproxy.service", process: "haproxy" }],
            "10259": [{ pid: "-", process: "-" }],
        })), [
            "control0: port 2379 (etcd's client port) is in use by kube-apiserver (pid 11, kube-apiserver.service), not etcd.service: stop it, or move it to another port",
            "control0: port 8443 (the API server's port (control-plane:apiPort)) is in use by haproxy (pid 9, haproxy.service), socat (pid 10), not kube-apiserver.service: stop it, or move it to another port",
            "control0: port 10259 (the scheduler's port) is in use by a listening socket no process holds, not kube-scheduler.service: stop it, or move it to another port",
        ]);
    });
});
