// Prints what the program registers under mocks for a stack's config, one "type name" line per resource,
// sorted: the plan a real `pulumi preview` must match. Input: the JSON of `pulumi config --json` (file path
// in argv[2]); values are taken as the program sees them (strings, lists and maps as JSON).
import * as fs from "fs";
import { runProgram } from "./program";

interface ConfigEntry {
    value?: string;
    objectValue?: unknown;
}

const entries = JSON.parse(fs.readFileSync(process.argv[2], "utf8")) as Record<string, ConfigEntry>;
const config: Record<string, unknown> = {};
for (const [key, entry] of Object.entries(entries)) {
    if (key.startsWith("control-plane:")) {
        config[key.slice("control-plane:".length)] = entry.objectValue ?? entry.value;
    }
}
const run = runProgram(config, { mode: "preview" });
if (run.error) {
    process.stderr.write(`${run.error}\n`);
    process.exit(1);
}
process.stdout.write(run.registrations.map(r => `${r.type} ${r.name}`).sort().join("\n") + "\n");
