// Throwaway directories for tests: all of a test process's under one root in the system's temp dir, removed
// when that process exits (Node's test runner runs each test file in a process of its own).
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

let root: string | undefined;

/** A new empty directory named after `what`, gone when the test process exits, passed or failed. */
export function scratchDir(what: string): string {
    if (root === undefined) {
        const created = fs.mkdtempSync(path.join(os.tmpdir(), "kcp-test-"));
        process.once("exit", () => fs.rmSync(created, { recursive: true, force: true }));
        root = created;
    }
    return fs.mkdtempSync(path.join(root, `${what}-`));
}

/** A scratch directory with fake programs in its bin/, by name: each one's script, executable. */
export function fakePrograms(what: string, programs: Record<string, string>): string {
    const dir = scratchDir(what);
    fs.mkdirSync(path.join(dir, "bin"));
    for (const [name, body] of Object.entries(programs)) {
        fs.writeFileSync(path.join(dir, "bin", name), body, { mode: 0o755 });
    }
    return dir;
}

/** The environment that runs `fakePrograms`' programs before the real ones, with FAKE, where they keep state. */
export function fakeEnv(dir: string): NodeJS.ProcessEnv {
    return { ...process.env, FAKE: dir, PATH: `${path.join(dir, "bin")}:${process.env.PATH}` };
}
