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
