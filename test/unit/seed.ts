// Reads the reference procedure (test/fixtures/seed-05.md, a copy of the seed's chapter 5) and gives the
// files it writes with `cat <<EOF | sudo tee PATH`, with its shell variables set as on control0.
import * as fs from "fs";
import * as path from "path";

export const SEED = fs.readFileSync(path.join(__dirname, "..", "..", "..", "test", "fixtures", "seed-05.md"), "utf8");

/** The seed's own values of its shell variables, as they are on control0. */
const SEED_VARS: Record<string, string> = { arch: "arm64", vmname: "control0", vmaddr: "192.168.1.11" };

/** Every heredoc file of the seed by path, variables expanded and `\\` unescaped as bash does. */
export function seedFiles(): Record<string, string> {
    const files: Record<string, string> = {};
    const heredoc = /cat <<EOF \| sudo tee (\S+)\n([\s\S]*?)\nEOF\n/g;
    for (const match of SEED.matchAll(heredoc)) {
        files[match[1]] = match[2]
            .replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string, b: string) => SEED_VARS[a ?? b] ?? `$${a ?? b}`)
            .replace(/\\\\/g, "\\") + "\n";
    }
    return files;
}

/** The seed's sysctl file for the VIP (from its cloud-init write_files). */
export function seedArpSysctl(): string {
    const match = /path: \/etc\/sysctl\.d\/50-vip-arp\.conf\n\s+content: \|\n((?:\s{6}.*\n)+)/.exec(SEED);
    if (!match) {
        throw new Error("the seed has no 50-vip-arp.conf");
    }
    return match[1].split("\n").map(line => line.trim()).filter(Boolean).join("\n") + "\n";
}

export interface ParsedUnit {
    /** Section name -> its lines other than ExecStart, in order. */
    sections: Record<string, string[]>;
    program: string;
    /** ExecStart's flags, each as `--name=value` or a bare `--switch`. */
    flags: string[];
}

/** Parses a unit file; ExecStart's flags are normalised (`--name value` and `--name=value` alike). */
export function parseUnit(text: string): ParsedUnit {
    const joined = text.replace(/\\\n\s*/g, " ");
    const sections: Record<string, string[]> = {};
    let current = "";
    let exec: string[] = [];
    for (const line of joined.split("\n").map(l => l.trim()).filter(Boolean)) {
        const header = /^\[(\w+)\]$/.exec(line);
        if (header) {
            current = header[1];
            sections[current] = [];
        } else if (line.startsWith("ExecStart=")) {
            exec = line.slice("ExecStart=".length).trim().split(/\s+/);
        } else {
            sections[current].push(line);
        }
    }
    const flags: string[] = [];
    for (let i = 1; i < exec.length; i++) {
        const token = exec[i];
        if (!token.startsWith("--")) {
            throw new Error(`ExecStart argument without its --: ${token}`);
        }
        if (!token.includes("=") && exec[i + 1] !== undefined && !exec[i + 1].startsWith("--")) {
            flags.push(`${token}=${exec[++i]}`);
        } else {
            flags.push(token);
        }
    }
    return { sections, program: exec[0], flags };
}
