// The host probe: what each host has now of what the program installs, read in ONE ssh session per host per
// program run, every host in parallel, before any resource is registered.
//
// While the program constructs its resources (synchronously), steps say what they want observed on their host
// (`observe`: files, units, addresses, kernel parameters, versions); once construction is over index.ts calls
// `startProbes`, and the facts reach whoever asked (drift markers, drift.ts; the version skew refusal,
// preflight.ts). The remote side is a fixed read-only bash script, on ssh's stdin to `sudo -n bash -s` as the
// snapshot steps send theirs; what to observe is data in a quoted heredoc (never expanded), one item a line.
// It prints one line per fact: sha256 sums, modes, owners, unit states, never a file's content.
//
// Under Pulumi's mocks there is no host: tests feed facts with `setProbeRunner`.
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { Machine } from "../config";
import { script } from "./shell";
import { pinnedHostLines, SshSettings, sshOptionGroups } from "./ssh";

/** An address that should be on an interface. */
export interface AddressQuery {
    /** The interface, e.g. `lo`. */
    device: string;
    /** The address, without prefix length. */
    address: string;
}

/** A binary whose `--version` to read. */
export interface VersionQuery {
    /** Absolute path of the binary. */
    binary: string;
    /** ETCD_UNSUPPORTED_ARCH for it (etcd refuses to run on arm64 without it, `--version` included). */
    arch: string;
}

/** What to observe on one host. */
export interface ProbeQuery {
    /** Files and directories: sha256 (files), mode and owner. */
    files: string[];
    /** Files whose content is not compared (binaries from an archive): mode and owner only, their sha256 `*`. */
    stats: string[];
    /** systemd units: enabled? active? */
    units: string[];
    /** Addresses on interfaces: present? */
    addresses: AddressQuery[];
    /** Kernel parameters (`sysctl`): their value. */
    sysctls: string[];
    /** Binaries: the first line `--version` prints. */
    versions: VersionQuery[];
}

/** A file as the host has it; every field undefined when there is no such file. */
export interface FileFact {
    /** sha256 of the content, `*` when not read (`stats`), or `dir` for a directory. */
    sha256?: string;
    /** Octal mode as `stat -c %a` prints it (`644`). */
    mode?: string;
    /** `user:group`. */
    owner?: string;
}

/** A unit as systemd reports it (`-` when systemd prints nothing, e.g. no such unit). */
export interface UnitFact {
    /** `systemctl is-enabled`: enabled, disabled, masked, ... */
    enabled: string;
    /** `systemctl is-active`: active, inactive, failed, activating, ... */
    active: string;
}

/** What a probe found on one host. An item asked for but absent here was not found on the host. */
export interface HostFacts {
    files: Record<string, FileFact>;
    units: Record<string, UnitFact>;
    /** `${device} ${address}`: whether the address is on the interface. */
    addresses: Record<string, boolean>;
    sysctls: Record<string, string>;
    /** The first line of `<binary> --version`, by binary. */
    versions: Record<string, string>;
}

export const emptyQuery = (): ProbeQuery => ({ files: [], stats: [], units: [], addresses: [], sysctls: [], versions: [] });
export const emptyFacts = (): HostFacts => ({ files: {}, units: {}, addresses: {}, sysctls: {}, versions: {} });
export const addressKey = (a: AddressQuery) => `${a.device} ${a.address}`;

// ---------------------------------------------------------------------------------------------------------
// Pure: the remote script and its output.

/** Heredoc delimiter of the query inside the probe script. */
const QUERY_END = "KTHW_PROBE_QUERY";
/** The first and last line of the probe's output: lines before (a login banner) are ignored, a missing end fails. */
const BEGIN = "kthw-probe begin";
const END = "kthw-probe end";

/**
 * The query as data lines, one item each: `file PATH`, `stat PATH`, `unit NAME`, `addr DEVICE ADDRESS`, `sysctl KEY`,
 * `version ARCH PATH`; a file both hashed and only stat'ed is hashed.
 */
export function probeQueryLines(query: ProbeQuery): string[] {
    const word = (what: string, value: string) => {
        if (value === "" || /[\s]/.test(value)) {
            throw new Error(`probe: ${what} ${JSON.stringify(value)} must be one word`);
        }
        return value;
    };
    const last = (what: string, value: string) => {
        if (value === "" || /[\n\r]/.test(value) || value === QUERY_END) {
            throw new Error(`probe: ${what} ${JSON.stringify(value)} must be one line`);
        }
        return value;
    };
    return [
        ...query.files.map(f => `file ${last("path", f)}`),
        ...query.stats.filter(f => !query.files.includes(f)).map(f => `stat ${last("path", f)}`),
        ...query.units.map(u => `unit ${word("unit", u)}`),
        ...query.addresses.map(a => `addr ${word("device", a.device)} ${word("address", a.address)}`),
        ...query.sysctls.map(k => `sysctl ${word("key", k)}`),
        ...query.versions.map(v => `version ${word("arch", v.arch)} ${last("binary", v.binary)}`),
    ];
}

/**
 * The read-only script a probe runs as root (from stdin, `sudo -n bash -s`): for each item of the query, one
 * line `file SHA256|*|dir|- MODE OWNER PATH`, `unit ENABLED ACTIVE NAME`, `addr present|absent DEVICE ADDRESS`,
 * `sysctl KEY VALUE`, `version PATH FIRST-LINE`, between a begin and an end line. One function, read whole
 * before it runs; every command's stdin is /dev/null (the heredoc is the loop's).
 */
export function probeScript(query: ProbeQuery): string {
    return script(
        // Few processes per item: under emulation (the lab's gateway) each one costs tens of milliseconds.
        // OpenSSL's sha256 uses the CPU's SHA instructions, coreutils' does not: the Kubernetes binaries
        // (about 300 MB a node) hash about four times faster so; sha256sum where there is no openssl.
        `if command -v openssl >/dev/null 2>&1; then digest() { openssl dgst -sha256 -r; }; else digest() { sha256sum; }; fi`,
        `probe_file() {`,
        `  local sum`,
        `  if [ -d "$1" ]; then sum=dir`,
        `  elif [ -f "$1" ] && [ "$2" = stat ]; then sum='*'`,
        `  elif [ -f "$1" ]; then sum=$(digest <"$1"); sum=\${sum%% *}`,
        `  else printf 'file - - - %s\\n' "$1"; return 0; fi`,
        `  printf 'file %s %s %s\\n' "$sum" "$(stat -c '%a %U:%G' "$1")" "$1"`,
        `}`,
        `probe_unit() {`,
        `  local enabled active`,
        `  enabled=$(systemctl is-enabled "$1" 2>/dev/null) || true`,
        `  active=$(systemctl is-active "$1" 2>/dev/null) || true`,
        `  enabled=\${enabled%%$'\\n'*} active=\${active%%$'\\n'*}`,
        `  printf 'unit %s %s %s\\n' "\${enabled:--}" "\${active:--}" "$1"`,
        `}`,
        `probe_addr() {`,
        `  local state=absent`,
        `  if ip -o addr show dev "$1" 2>/dev/null |`,
        `    awk -v a="$2" '($3 == "inet" || $3 == "inet6") && index($4, a "/") == 1 { found = 1 } END { exit !found }'; then`,
        `    state=present`,
        `  fi`,
        `  printf 'addr %s %s %s\\n' "$state" "$1" "$2"`,
        `}`,
        `probe_sysctl() {`,
        `  local value`,
        `  value=$(sysctl -n "$1" 2>/dev/null | head -n 1 | tr -s '\\t ' '  ') || value=-`,
        `  printf 'sysctl %s %s\\n' "$1" "\${value:--}"`,
        `}`,
        `probe_version() {`,
        `  local line=-`,
        `  if [ -x "$2" ]; then`,
        `    line=$( { ETCD_UNSUPPORTED_ARCH="$1" timeout 10 "$2" --version 2>/dev/null || true; } | sed -n '1{s/[^[:print:]]//g;p;}')`,
        `  fi`,
        `  printf 'version %s %s\\n' "$2" "\${line:--}"`,
        `}`,
        `main() {`,
        `  local kind rest`,
        `  echo '${BEGIN}'`,
        `  while read -r kind rest; do`,
        `    case $kind in`,
        `      file) probe_file "$rest" sum </dev/null ;;`,
        `      stat) probe_file "$rest" stat </dev/null ;;`,
        `      unit) probe_unit "$rest" </dev/null ;;`,
        `      addr) probe_addr "\${rest%% *}" "\${rest#* }" </dev/null ;;`,
        `      sysctl) probe_sysctl "$rest" </dev/null ;;`,
        `      version) probe_version "\${rest%% *}" "\${rest#* }" </dev/null ;;`,
        `      *) echo "unknown probe item: $kind" >&2; exit 2 ;;`,
        `    esac`,
        `  done <<'${QUERY_END}'`,
        ...probeQueryLines(query),
        QUERY_END,
        `  echo '${END}'`,
        `}`,
        `main`,
    );
}

/** Parses a probe's output into facts; fails on anything it does not expect, or on an output cut short. */
export function parseProbeOutput(text: string): HostFacts {
    const lines = text.split("\n");
    const begin = lines.indexOf(BEGIN);
    const end = lines.indexOf(END);
    if (begin < 0 || end < begin) {
        throw new Error("the probe's output is incomplete (no begin and end lines)");
    }
    const facts = emptyFacts();
    const unset = (value: string) => (value === "-" ? undefined : value);
    for (const line of lines.slice(begin + 1, end)) {
        const words = line.split(" ");
        const rest = (from: number) => words.slice(from).join(" ");
        switch (words[0]) {
            case "file":
                if (words.length >= 5) {
                    facts.files[rest(4)] = { sha256: unset(words[1]), mode: unset(words[2]), owner: unset(words[3]) };
                    continue;
                }
                break;
            case "unit":
                if (words.length === 4) {
                    facts.units[words[3]] = { enabled: words[1], active: words[2] };
                    continue;
                }
                break;
            case "addr":
                if (words.length === 4 && (words[1] === "present" || words[1] === "absent")) {
                    facts.addresses[`${words[2]} ${words[3]}`] = words[1] === "present";
                    continue;
                }
                break;
            case "sysctl":
            case "version":
                // `<kind> <name> <value, spaces and all>`; "-": the host has none.
                if (words.length >= 3) {
                    if (rest(2) !== "-") {
                        (words[0] === "sysctl" ? facts.sysctls : facts.versions)[words[1]] = rest(2);
                    }
                    continue;
                }
                break;
        }
        throw new Error(`unexpected line in the probe's output: ${JSON.stringify(line.slice(0, 200))}`);
    }
    return facts;
}

// ---------------------------------------------------------------------------------------------------------
// Running a probe where pulumi runs.

/** Probes one host: its facts, or an error that says why not. */
export type ProbeRunner = (host: Machine, query: ProbeQuery) => Promise<HostFacts>;

/** No `ssh` where pulumi runs: the probe cannot run at all (a preview then goes on without it). */
export class ProbeUnavailable extends Error {}

/**
 * The real probe: `ssh` (argv only, no shell) with the options of components/remote/ssh.ts, a 0600 copy of the
 * key and the pinned host keys in a temp dir removed after, the script on stdin. Bounded: the dials as
 * configured, the script by a timeout of its own.
 */
export function sshProbeRunner(ssh: SshSettings, keyFile: string, sshCommand = "ssh"): ProbeRunner {
    const pinned = new Set(Object.keys(ssh.hostKeys));
    return async (host, query) => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kthw-probe-"));
        try {
            const key = path.join(dir, "key");
            const knownHosts = path.join(dir, "known_hosts");
            fs.writeFileSync(key, fs.readFileSync(keyFile), { mode: 0o600 });
            fs.writeFileSync(knownHosts, pinnedHostLines(ssh).map(line => `${line}\n`).join(""), { mode: 0o600 });
            const options = sshOptionGroups(ssh, {
                key, knownHosts, alias: host.name, strict: pinned.has(host.name) ? "yes" : "no",
            }).flat();
            const stdout = await run(sshCommand, [...options, `${ssh.user}@${host.address}`, "sudo -n bash -s"],
                probeScript(query), (ssh.dialTimeoutSeconds * ssh.dialAttempts + 60) * 1000);
            return parseProbeOutput(stdout);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    };
}

/** Runs a program with `input` on its stdin; its stdout, or an error with the end of its stderr. */
function run(file: string, args: string[], input: string, timeout: number): Promise<string> {
    return new Promise((resolve, reject) => {
        const child = execFile(file, args, { timeout, maxBuffer: 16 * 1024 * 1024, encoding: "utf8" }, (err, stdout, stderr) => {
            if (!err) {
                resolve(stdout);
                return;
            }
            if ((err as NodeJS.ErrnoException).code === "ENOENT") {
                reject(new ProbeUnavailable(`${file} (openssh-client) is not installed where pulumi runs`));
                return;
            }
            const said = stderr.trim().split("\n").slice(-3).join(" ").trim();
            reject(new Error(said !== "" ? said : err.killed ? `no answer within ${timeout / 1000}s` : err.message));
        });
        child.stdin?.on("error", () => undefined);
        child.stdin?.end(input);
    });
}

// ---------------------------------------------------------------------------------------------------------
// One probe per host per program run.

interface Wanted {
    host: Machine;
    query: ProbeQuery;
}

/** Facts by host name; undefined for a host that was not probed (no key in a preview). */
export type ProbedHosts = Map<string, HostFacts | undefined>;

const wanted = new Map<string, Wanted>();
let started = false;
let testRunner: ProbeRunner | undefined;
let settle: { resolve: (facts: ProbedHosts) => void; reject: (err: Error) => void };
const everyHost = new Promise<ProbedHosts>((resolve, reject) => { settle = { resolve, reject }; });
// Whoever asks gets the failure; the probes' own promise must not count as an unhandled one.
everyHost.catch(() => undefined);

/**
 * Asks for facts of a host, during construction; every host is probed once, when `startProbes` runs. The facts,
 * or undefined when the hosts are not probed.
 */
export function observe(host: Machine, want: Partial<ProbeQuery>): Promise<HostFacts | undefined> {
    if (started) {
        throw new Error(`probe of ${host.name}: asked for after the probes started (steps say what they observe while the program is constructed)`);
    }
    const entry = wanted.get(host.name) ?? { host, query: emptyQuery() };
    wanted.set(host.name, entry);
    const add = <T>(list: T[], items: T[] | undefined, key: (item: T) => string = String) => {
        for (const item of items ?? []) {
            if (!list.some(have => key(have) === key(item))) {
                list.push(item);
            }
        }
    };
    add(entry.query.files, want.files);
    add(entry.query.stats, want.stats);
    add(entry.query.units, want.units);
    add(entry.query.addresses, want.addresses, addressKey);
    add(entry.query.sysctls, want.sysctls);
    add(entry.query.versions, want.versions, v => v.binary);
    return everyHost.then(all => all.get(host.name));
}

/** Every host's facts, once probed (rejected, naming each host, when a probe failed). */
export function probed(): Promise<ProbedHosts> {
    return everyHost;
}

/** Tests: the runner that stands in for ssh (Pulumi's mocks have no host). */
export function setProbeRunner(runner: ProbeRunner | undefined): void {
    testRunner = runner;
}

/**
 * Probes every host something asked about, once each and all together, with `runner` (undefined: no probe,
 * saying `whyNot` in one log line). The facts go to whoever asked (`observe`, `probed`): a host that cannot be
 * probed fails them, naming the host and its address, in a preview as at `up` (with the key configured, a
 * preview is a refresh: it must not pass while a host is unseen); a preview without `ssh` where pulumi runs
 * goes on without the probe, as one without the key. Settles when the probes are over; never rejects.
 */
export async function startProbes(runner: ProbeRunner | undefined, whyNot: string): Promise<void> {
    started = true;
    const hosts = [...wanted.values()];
    const skip = (why: string) => {
        if (hosts.length > 0) {
            pulumi.log.info(`${why}: the hosts were not compared with what the program installed (drift is not shown)`);
        }
        settle.resolve(new Map(hosts.map(h => [h.host.name, undefined])));
    };
    const probe = runner && (testRunner ?? runner);
    if (!probe) {
        return skip(whyNot);
    }
    const results = await Promise.allSettled(hosts.map(async h => {
        const t0 = Date.now();
        try {
            return await probe(h.host, h.query);
        } finally {
            // Where a run's time goes (npm run bench reads it from the engine's events).
            void pulumi.log.debug(`probe of ${h.host.name}: ${Date.now() - t0} ms`);
        }
    }));
    const preview = pulumi.runtime.isDryRun();
    const unavailable = results.find(r => r.status === "rejected" && r.reason instanceof ProbeUnavailable);
    if (unavailable && preview) {
        skip(String((unavailable as PromiseRejectedResult).reason.message));
        return;
    }
    const failures = results.flatMap((r, i) => r.status === "rejected"
        ? [`${hosts[i].host.name} (${hosts[i].host.address}): ${r.reason instanceof Error ? r.reason.message : String(r.reason)}`] : []);
    if (failures.length > 0) {
        settle.reject(new pulumi.RunError(`cannot compare the hosts with what the program installed, so nothing was changed:\n` +
            failures.map(f => `  - ${f}`).join("\n")));
        return;
    }
    settle.resolve(new Map(hosts.map((h, i) => [h.host.name, results[i].status === "fulfilled" ? results[i].value : undefined])));
}
