// Every generated shell script passes shellcheck and every unit file passes `systemd-analyze verify`.
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { test } from "node:test";
import { byType, devConfig, LOCAL, nodes, plain, REMOTE, reveal, runProgram, scriptOf } from "./program";
import { scratchDir } from "./scratch";

// Both profiles: the hardened one adds steps (etcd's user) and unit lines (User=, ExecStartPre=+...).
const runs = [runProgram(devConfig({ nodes: nodes(3) })), runProgram(devConfig({ nodes: nodes(3), profile: "hardened" }))];
const commands = runs.flatMap((run, i) => [...byType(run, REMOTE), ...byType(run, LOCAL)].map(r => ({ ...r, name: `${r.name}.${i}` })));

test("every generated script passes shellcheck", () => {
    const dir = scratchDir("scripts");
    const files: string[] = [];
    for (const r of commands) {
        for (const key of ["create", "update", "delete"]) {
            if (typeof r.inputs[key] === "string") {
                const file = path.join(dir, `${r.name}.${key}.sh`);
                fs.writeFileSync(file, scriptOf(plain(r, key)));
                files.push(file);
            }
        }
    }
    assert.ok(files.length > 150, `${files.length} scripts`);
    const result = spawnSync("shellcheck", ["--shell=bash", "--severity=style", ...files], { encoding: "utf8" });
    assert.equal(result.error, undefined, "shellcheck is installed (.ci/run installs it)");
    assert.equal(result.status, 0, result.stdout);
    // A script with a real mistake is caught: the check can fail.
    const bad = path.join(dir, "bad.sh");
    fs.writeFileSync(bad, "#!/usr/bin/env bash\nrm -rf $target/*\n");
    assert.notEqual(spawnSync("shellcheck", [bad]).status, 0);
});

test("every unit file passes systemd-analyze verify", () => {
    const root = scratchDir("units");
    // A root with the system's own units and a stub for each program the units run.
    fs.mkdirSync(path.join(root, "usr/lib/systemd"), { recursive: true });
    fs.cpSync("/usr/lib/systemd/system", path.join(root, "usr/lib/systemd/system"), { recursive: true });
    const unitDir = path.join(root, "etc/systemd/system");
    fs.mkdirSync(unitDir, { recursive: true });
    const units = new Map<string, string>();
    for (const r of commands) {
        const stdin = reveal(r.inputs.stdin);
        if (typeof stdin === "string" && stdin.startsWith("[Unit]")) {
            units.set(`${r.name.replace(/\./g, "-")}.service`, stdin);
        }
    }
    assert.ok(units.size >= 2 * (4 * 3 + 3 + 1), `${units.size} units`);
    const names: string[] = [];
    for (const [name, text] of units) {
        fs.writeFileSync(path.join(unitDir, name), text);
        names.push(name);
        for (const match of text.matchAll(/^Exec\w+=[-+!@:]*(\S+)/gm)) {
            const program = match[1].startsWith("/") ? match[1] : `/usr/bin/${match[1]}`;
            fs.mkdirSync(path.join(root, path.dirname(program)), { recursive: true });
            fs.writeFileSync(path.join(root, program), "#!/bin/sh\n", { mode: 0o755 });
        }
    }
    const verify = (unitNames: string[]) =>
        spawnSync("systemd-analyze", ["verify", `--root=${root}`, ...unitNames], { encoding: "utf8" });
    const result = verify(names);
    assert.equal(result.error, undefined, "systemd-analyze is installed (.ci/run installs systemd)");
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stderr.trim(), "", "no warnings");
    // A unit with a typo is caught: the check can fail.
    fs.writeFileSync(path.join(unitDir, "typo.service"), "[Service]\nExecStart=/usr/local/bin/missing\nRestrat=always\n");
    const typo = verify(["typo.service"]);
    assert.ok(typo.status !== 0 || typo.stderr.includes("Unknown key"));
});

test("the repository's own bash scripts pass shellcheck, the kube-bench ones with set -euo pipefail", () => {
    const root = path.join(__dirname, "..", "..", "..");
    const listed = spawnSync("git", ["ls-files", "*.sh"], { cwd: root, encoding: "utf8" });
    assert.equal(listed.status, 0, listed.stderr);
    const scripts = [...listed.stdout.split("\n").filter(line => line !== ""), ".ci/run"];
    const kubeBench = ["test/cis/build.sh", "test/cis/run.sh", "test/cis/local.sh", "scripts/bench-cis.sh"];
    for (const file of [...kubeBench, "scripts/bench.sh", "lab/up.sh"]) {
        assert.ok(scripts.includes(file), `${file} is among the scripts checked`);
    }
    const result = spawnSync("shellcheck", ["-x", "--shell=bash", "--severity=style", ...scripts], { cwd: root, encoding: "utf8" });
    assert.equal(result.error, undefined, "shellcheck is installed (.ci/run installs it)");
    assert.equal(result.status, 0, result.stdout);
    for (const file of kubeBench) {
        assert.match(fs.readFileSync(path.join(root, file), "utf8"), /^set -euo pipefail$/m, file);
    }
});
