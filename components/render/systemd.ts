// Renders systemd unit files from plain values, in the seed's layout: one flag a line, continued with " \".

/** A command line: the program, then one entry per flag or argument, each rendered on its own line. */
export interface CommandLine {
    program: string;
    args: string[];
}

export interface ServiceUnit {
    description: string;
    documentation?: string;
    /** Extra [Unit] entries in order, e.g. ["After", "network-online.target"]. */
    unitEntries?: [string, string][];
    /** [Service] entries before ExecStart (Type=, Environment=). */
    serviceEntries?: [string, string][];
    execStart: CommandLine;
    /** [Service] entries after ExecStart; defaults to the seed's restart policy. */
    serviceTail?: [string, string][];
    wantedBy?: string;
}

/** The seed's restart policy for every long-running control plane daemon. */
export const RESTART_ON_FAILURE: [string, string][] = [["Restart", "on-failure"], ["RestartSec", "5"]];

export function renderCommandLine(command: CommandLine): string {
    return [command.program, ...command.args].join(" \\\n  ");
}

/**
 * The command line of a unit that `renderServiceUnit` rendered, as systemd gives it to the program: each
 * argument a word, a value wholly in quotes (the seed's `--runtime-config='api/all=true'`) unquoted. Undefined
 * without an ExecStart.
 */
export function execStartOf(unit: string): CommandLine | undefined {
    const line = /^ExecStart=((?:.* \\\n)*.*)$/m.exec(unit)?.[1];
    if (line === undefined) {
        return undefined;
    }
    const [program, ...args] = line.split(" \\\n  ");
    return { program, args: args.map(arg => arg.replace(/^(--[^=]+=)(['"])(.*)\2$/, "$1$3")) };
}

export function renderServiceUnit(unit: ServiceUnit): string {
    const entry = ([key, value]: [string, string]) => `${key}=${value}`;
    const unitSection = [
        "[Unit]",
        `Description=${unit.description}`,
        ...(unit.documentation ? [`Documentation=${unit.documentation}`] : []),
        ...(unit.unitEntries ?? []).map(entry),
    ];
    const serviceSection = [
        "[Service]",
        ...(unit.serviceEntries ?? []).map(entry),
        `ExecStart=${renderCommandLine(unit.execStart)}`,
        ...(unit.serviceTail ?? RESTART_ON_FAILURE).map(entry),
    ];
    const installSection = ["[Install]", `WantedBy=${unit.wantedBy ?? "multi-user.target"}`];
    return [unitSection, serviceSection, installSection].map(section => section.join("\n")).join("\n\n") + "\n";
}

/** Renders `--name=value` flags in the given order; `true` renders a bare `--name`, as the seed's switches. */
export function flags(entries: [string, string | number | boolean][]): string[] {
    return entries.map(([name, value]) => (value === true ? `--${name}` : `--${name}=${value}`));
}

/** The seed's flags with the user's extra flags applied: a known flag changes in place, a new one is appended. */
export function withExtraArgs(base: [string, string | number | boolean][], extra: Record<string, string>):
    [string, string | number | boolean][] {
    const merged = base.map(([name, value]): [string, string | number | boolean] =>
        [name, name in extra ? extra[name] : value]);
    const known = new Set(base.map(([name]) => name));
    return [...merged, ...Object.entries(extra).filter(([name]) => !known.has(name))];
}
