// For test/cis/local.sh: runs the program under mocks for a profile and writes what control0's steps would
// do on the host, as files: steps/NN.sh (+ NN.in, its stdin) for every step that writes a file, a unit, the
// data dir or etcd's user, verbatim; daemons/NAME (one ExecStart argument a line) for each daemon. Steps
// that download or wait (binaries, gates) are left out: local.sh stands in fake daemons for them.
import * as fs from "fs";
import * as path from "path";
import { byType, devConfig, plain, REMOTE, reveal, runProgram, scriptOf } from "./program";

const [profile, out] = process.argv.slice(2);
const run = runProgram(devConfig({ profile }));
if (run.error) {
    throw new Error(run.error);
}
fs.mkdirSync(path.join(out, "steps"), { recursive: true });
fs.mkdirSync(path.join(out, "daemons"), { recursive: true });
const steps = byType(run, REMOTE).filter(r => /^(etcd|kube-[a-z-]+)-control0-/.test(r.name) && !/-(binary|healthy)$/.test(r.name));
// Users and directories first, then files, then units: the order dependsOn gives them.
const rank = (name: string) => (/-user$/.test(name) ? 0 : /-data-dir$/.test(name) ? 1 : /-service$/.test(name) ? 3 : 2);
steps.sort((a, b) => rank(a.name) - rank(b.name));
steps.forEach((r, i) => {
    const base = path.join(out, "steps", `${String(i).padStart(2, "0")}-${r.name}`);
    fs.writeFileSync(`${base}.sh`, scriptOf(plain(r, "create")));
    const stdin = reveal(r.inputs.stdin);
    fs.writeFileSync(`${base}.in`, typeof stdin === "string" ? stdin : "");
    if (typeof stdin === "string" && stdin.startsWith("[Unit]")) {
        const exec = /^ExecStart=([\s\S]*?)\n(?!\s)/m.exec(stdin)![1].split(" \\\n  ");
        const daemon = path.basename(exec[0]);
        fs.writeFileSync(path.join(out, "daemons", daemon), exec.slice(1).map(a => a.replace(/'/g, "")).join("\n") + "\n");
    }
});
