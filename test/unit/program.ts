// Helpers for tests: run the program under mocks in a child process and query what it registered.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { scratchDir } from "./scratch";
import type { ProbeSetup, ProgramRun, Registration } from "./harness";

export const SECRET_SIG = "4dabf18193072939515e22adb298388d";

/** A throwaway SSH key file: its content is a marker the secret checks look for. */
export const SSH_KEY_MARKER = "MOCK-SSH-PRIVATE-KEY-MATERIAL";
export function sshKeyFile(): string {
    const dir = scratchDir("key");
    const file = path.join(dir, "id_ed25519");
    // Not a key: a PEM-shaped marker (the armour is built, so no key-shaped text sits in the repo).
    const armour = (edge: string) => `-----${edge} OPENSSH ${"PRIVATE"} KEY-----`;
    fs.writeFileSync(file, `${armour("BEGIN")}\n${SSH_KEY_MARKER}\n${armour("END")}\n`, { mode: 0o600 });
    return file;
}

export interface RunOptions {
    mode?: "preview" | "up";
    /** Config keys stored as secrets in the stack file (default: encryptionKey). */
    secretKeys?: string[];
    /** What the host probe finds, and the last deployment's stack outputs (default: empty hosts, a new stack). */
    probe?: ProbeSetup;
}

/** Runs index.ts with the given config (keys without namespace) and returns what it registered. */
export function runProgram(config: Record<string, unknown>, options: RunOptions = {}): ProgramRun & { stderr: string } {
    const harness = path.join(__dirname, "harness.js");
    const dir = scratchDir("run");
    const result = path.join(dir, "run.json");
    // A program that fails leaves the runtime's promises pending, and the runtime then exits non-zero:
    // the result file, written before that, is what counts.
    const child = spawnSync(process.execPath, [harness, JSON.stringify(config), options.mode ?? "up", result,
        JSON.stringify(options.secretKeys ?? ["encryptionKey"]), JSON.stringify(options.probe ?? {})],
        { stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 * 1024 * 1024 });
    if (!fs.existsSync(result)) {
        throw new Error(`the program did not run: ${child.stderr.toString()}`);
    }
    const run = JSON.parse(fs.readFileSync(result, "utf8")) as ProgramRun;
    const log = Buffer.concat([child.stdout, child.stderr]);
    fs.rmSync(dir, { recursive: true, force: true });
    return { ...run, stderr: log.toString() };
}

/** The seed's lab, as Pulumi.dev.yaml gives it, with a throwaway SSH key. */
export function devConfig(overrides: Record<string, unknown> = {}): Record<string, unknown> {
    return { sshPrivateKeyPath: sshKeyFile(), ...overrides };
}

export function nodes(count: number): { name: string; address: string }[] {
    return Array.from({ length: count }, (_, i) => ({ name: `control${i}`, address: `192.168.1.${11 + i}` }));
}

export const isSecret = (value: unknown): boolean =>
    value !== null && typeof value === "object" && (value as Record<string, unknown>)[SECRET_SIG] !== undefined;

/** A plain string input, failing if it is a secret or absent. */
export function plain(r: Registration, key: string): string {
    const value = r.inputs[key];
    if (typeof value !== "string") {
        throw new Error(`${r.name}.${key} is not a plain string: ${JSON.stringify(value)?.slice(0, 200)}`);
    }
    return value;
}

/** The value of an input whether secret or not. */
export function reveal(value: unknown): unknown {
    return isSecret(value) ? (value as Record<string, unknown>).value : value;
}

/** Turns `sudo -n bash -c '<script>'` (or `bash -c '<script>'`) back into the script. */
export function scriptOf(commandLine: string): string {
    const match = /^(?:sudo -n )?bash -c '([\s\S]*)'$/.exec(commandLine);
    if (!match) {
        throw new Error(`not a generated script: ${commandLine.slice(0, 80)}`);
    }
    return match[1].replace(/'\\''/g, "'");
}

export const byType = (run: ProgramRun, type: string) => run.registrations.filter(r => r.type === type);
export const byName = (run: ProgramRun, name: string): Registration => {
    const found = run.registrations.find(r => r.name === name);
    if (!found) {
        throw new Error(`no resource named ${name}; have ${run.registrations.map(r => r.name).join(", ")}`);
    }
    return found;
};
export const REMOTE = "command:remote:Command";
export const LOCAL = "command:local:Command";

/** Transitive dependencies of a resource, following the dependsOn edges the monitor received. */
export function dependsOn(run: ProgramRun, from: Registration, to: Registration): boolean {
    const byUrn = new Map(run.registrations.map(r => [r.urn, r]));
    const seen = new Set<string>();
    const stack = [...from.dependencies];
    while (stack.length > 0) {
        const urn = stack.pop()!;
        if (urn === to.urn) {
            return true;
        }
        if (!seen.has(urn)) {
            seen.add(urn);
            stack.push(...(byUrn.get(urn)?.dependencies ?? []));
        }
    }
    return false;
}

export const steps = (run: ProgramRun) => [...byType(run, REMOTE), ...byType(run, LOCAL)];
/** Everything the engine compares for a step, less what the new run ignores (a keyless preview keeps the key from the state). */
const inputsOf = (r: Registration, ignore: string[]) => JSON.stringify(
    [...["create", "update", "delete"].map(key => (ignore.includes(key) ? "ignored" : r.inputs[key])),
        ignore.includes("stdin") ? "ignored" : reveal(r.inputs.stdin), r.inputs.triggers]);
/** Steps whose inputs differ between two runs: what a preview would show as changes. */
export function changed(before: ProgramRun, after: ProgramRun): string[] {
    const was = new Map(steps(before).map(r => [r.name, r]));
    return steps(after).filter(r => !was.has(r.name) || inputsOf(was.get(r.name)!, r.ignoreChanges) !== inputsOf(r, r.ignoreChanges))
        .map(r => r.name).sort();
}
