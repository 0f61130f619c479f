// The few building blocks every component is made of: a remote file, a binary install, a systemd service,
// a data directory and a health gate. Each is a remote.Command whose scripts come from a pure function
// below (tests lint and compare them); each step that changes a host has a delete that undoes exactly it,
// and says what it installs (its expectations, below each renderer), so that the host probe shows where a
// host differs and the step's update repairs it (drift.ts).
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { Machine } from "../config";
import { contentSha256, driftMarker, Expectation, withDriftMarker } from "./drift";
import { AddressQuery } from "./probe";
import { asRoot, FAST_SHA256, GiveUp, script, shq, waitUntil } from "./shell";
import { Host, SshAccess } from "./host";
import { scriptOnHost, sshLocalStep, sshSettings, SshSettings } from "./ssh";

export interface StepScripts {
    create: string;
    update?: string;
    delete?: string;
}

// ---------------------------------------------------------------------------------------------------------
// Pure script renderers.

export interface FileSpec {
    path: string;
    /** Octal mode, e.g. "0644"; keys and kubeconfigs get "0600". */
    mode: string;
    /** Directories this file lives in that the program owns: created 0755 if missing, removed when empty. */
    ownedDirs?: string[];
    /** Commands run after the file is written (update-ca-certificates). */
    afterWrite?: string[];
    /** Commands run after the file is removed. */
    afterRemove?: string[];
    /** What the file's `afterWrite` makes the host hold (a sysctl file's values): compared with the host too. */
    holds?: HeldState;
    /**
     * The file may already be there (a package's config file): keep the original beside it on the first
     * write and put it back on delete, instead of removing it.
     */
    keepOriginal?: boolean;
    /** `user:group` that owns the file (a daemon that runs as its own user reads it); default root's. */
    owner?: string;
}

/** Where a file's original is kept while the program owns the file. */
export const ORIGINAL_SUFFIX = ".kthw-orig";

/** Writes stdin to the file atomically (temp file, chmod, rename): content never touches a command line. */
export function fileScripts(spec: FileSpec): StepScripts {
    const dir = path.posix.dirname(spec.path);
    const owned = spec.ownedDirs ?? [];
    return {
        create: script(
            `target=${shq(spec.path)}`,
            `[ -d ${shq(dir)} ] || install -d -m 0755 ${shq(dir)}`,
            ...(spec.keepOriginal
                ? [`if [ -e "$target" ] && [ ! -e "$target${ORIGINAL_SUFFIX}" ]; then cp -a "$target" "$target${ORIGINAL_SUFFIX}"; fi`]
                : []),
            `tmp=$(mktemp "$target.XXXXXX")`,
            `trap 'rm -f "$tmp"' EXIT`,
            `cat > "$tmp"`,
            `chmod ${spec.mode} "$tmp"`,
            ...(spec.owner ? [`chown ${shq(spec.owner)} "$tmp"`] : []),
            `mv -f "$tmp" "$target"`,
            `trap - EXIT`,
            ...(spec.afterWrite ?? []),
        ),
        delete: script(
            spec.keepOriginal
                ? `if [ -e ${shq(spec.path + ORIGINAL_SUFFIX)} ]; then mv -f ${shq(spec.path + ORIGINAL_SUFFIX)} ${shq(spec.path)}; ` +
                    `else rm -f ${shq(spec.path)}; fi`
                : `rm -f ${shq(spec.path)}`,
            // Other files of the same directory are removed concurrently: gone is as good as removed.
            ...owned.map(d => `rmdir --ignore-fail-on-non-empty ${shq(d)} 2>/dev/null || [ ! -d ${shq(d)} ]`),
            ...(spec.afterRemove ?? []),
        ),
    };
}

/** Who owns what the steps write as root. */
const ROOT = "root:root";

/** A file step's file: its content's sha256, its mode, its owner (root's unless given: the step writes it as root). */
export function fileExpectations(spec: FileSpec, content: pulumi.Input<string>): Expectation<pulumi.Input<string>>[] {
    return [{ kind: "file", path: spec.path, sha256: contentSha256(content), mode: spec.mode, owner: spec.owner ?? ROOT },
        ...heldExpectations(spec.holds)];
}

/** What a step holds on its host while it is installed (addresses, kernel parameters), as expectations. */
function heldExpectations(holds: HeldState | undefined): Expectation<pulumi.Input<string>>[] {
    return [
        ...(holds?.addresses ?? []).map(a => ({ kind: "address" as const, device: a.device, address: a.address })),
        ...(holds?.sysctls ?? []).map(([key, value]) => ({ kind: "sysctl" as const, key, value })),
    ];
}

export interface BinarySpec {
    url: string;
    /** Expected sha256 of the download; empty: not checked. */
    sha256: string;
    /** For a .tar.gz: the folder inside the archive that holds the binaries. */
    archiveDir?: string;
    binaries: string[];
    installDir: string;
}

/**
 * Downloads into a temp dir, verifies the checksum, and only then installs: a failed download or a
 * mismatch leaves the host untouched, with an error naming the URL.
 */
export function binaryScripts(spec: BinarySpec): StepScripts {
    const source = spec.archiveDir ? `"$work/${spec.archiveDir}"` : `"$work"`;
    return {
        create: script(
            `url=${shq(spec.url)}`,
            `expected=${shq(spec.sha256)}`,
            `command -v curl >/dev/null || { echo "curl is required on $(hostname) to download $url" >&2; exit 1; }`,
            `work=$(mktemp -d)`,
            `trap 'rm -rf "$work"' EXIT`,
            `curl -fsSL --retry 2 --connect-timeout 10 -o "$work/download" "$url" ||`,
            `  { echo "download failed on $(hostname): $url" >&2; exit 1; }`,
            `if [ -n "$expected" ]; then`,
            `  ${FAST_SHA256}`,
            `  actual=$(fast_sha256 "$work/download" | cut -d' ' -f1)`,
            `  if [ "$actual" != "$expected" ]; then`,
            `    echo "checksum mismatch for $url on $(hostname): expected $expected, got $actual" >&2`,
            `    exit 1`,
            `  fi`,
            `fi`,
            ...(spec.archiveDir
                ? [`tar -xzf "$work/download" -C "$work"`]
                : [`mv "$work/download" "$work/${spec.binaries[0]}"`]),
            `install -d -m 0755 ${shq(spec.installDir)}`,
            ...spec.binaries.map(b => `install -m 0755 ${source}/${b} ${shq(`${spec.installDir}/${b}`)}`),
        ),
        delete: script(`rm -f ${spec.binaries.map(b => shq(`${spec.installDir}/${b}`)).join(" ")}`),
    };
}

/**
 * A binary step's binaries: each 0755 root's, and the checksum when it is the binary's own (a single file
 * download with `sha256`); a binary unpacked from an archive, or without `sha256`, is only checked to be there.
 */
export function binaryExpectations(spec: BinarySpec): Expectation[] {
    const ownSum = !spec.archiveDir && spec.sha256 !== "" ? spec.sha256 : undefined;
    return spec.binaries.map(b => ({ kind: "file", path: `${spec.installDir}/${b}`, sha256: ownSum, mode: "0755", owner: ROOT }));
}

/** What a running service keeps on its host (the VIP's unit: the address, the ARP settings). */
export interface HeldState {
    /** Addresses on interfaces. */
    addresses?: AddressQuery[];
    /** Kernel parameters and their values. */
    sysctls?: [string, string][];
}

export interface ServiceSpec {
    unitName: string;
    /** Changes whenever anything the service reads changes; a change re-runs the step, which restarts. */
    fingerprint: string;
    /**
     * The unit file is written from stdin; false for a unit a package ships (ldirectord), which is enabled and
     * disabled without systemctl's SysV hooks (see `serviceScripts`).
     */
    ownsUnitFile: boolean;
    /** How a running service takes a change: restart, or reload (ldirectord keeps its real servers' state). */
    onChange: "restart" | "reload";
    /**
     * On create, do not wait for startup: etcd's Type=notify start blocks until the cluster has quorum, so
     * members are started without blocking and a health gate waits for them. A change restarts one member of
     * a cluster that has quorum, and waits for it: with --no-block, the health poll after it could pass on the
     * old process before systemd had stopped it, and the next member restart while this one is away.
     */
    noBlock?: boolean;
    /** Commands run after the service is stopped and removed (its logs, its IPVS rules). */
    afterRemove?: string[];
    /**
     * A change is done only when this bounded poll passes after the restart (or reload): the step that
     * rolls the next node waits for it, so one node at a time is ever away.
     */
    afterChange?: WaitSpec;
    /** Commands a change runs before the restart (or reload): etcd hands its leadership over. */
    beforeChange?: string[];
    /** Commands a create runs before the first start: a joining etcd member is added to the cluster. */
    beforeStart?: string[];
    /** A create is done only when this bounded poll passes after the start: a joining etcd member is promoted. */
    afterStart?: WaitSpec;
    /** Mode of the unit file the step writes; default 0644, as the seed. */
    unitFileMode?: string;
    /**
     * What the running service keeps on the host: compared with the host like the unit, so a difference is
     * drift of this step, which its update (a restart) repairs.
     */
    holds?: HeldState;
}

/** A bounded poll on a host: what it waits for (in words), how to probe, how to explain a timeout. */
export interface WaitSpec {
    /** When to stop waiting before the time is up (a daemon that keeps exiting). */
    giveUp?: GiveUp;
    /** What the poll waits for, in words: it is printed while waiting and in the timeout error. */
    what: string;
    /** Shell lines defining what `probe` uses (functions, temp files). */
    setup?: string[];
    /** A command that succeeds once the component is healthy. */
    probe: string;
    timeoutSeconds: number;
    /** A command whose output explains a timeout (systemctl status, journal lines). */
    diagnose?: string;
}

/** The lines of a bounded poll. */
export function waitLines(spec: WaitSpec): string[] {
    return [...(spec.setup ?? []), ...waitUntil(spec.what, spec.probe, spec.timeoutSeconds, spec.diagnose, spec.giveUp)];
}

/** After a restart for a change, how many times systemd may restart a daemon that exits before the step fails. */
const CRASH_RESTARTS = 2;

/**
 * Reloads systemd's configuration only when it holds another version of `unit` (its file or a drop-in) than
 * the one on disk: a unit it has not loaded is read from disk, drop-ins included, when first asked for. A
 * reload costs about 3 s of CPU on the lab's emulated gateway.
 */
export function reloadIfStale(unit: string): string {
    return `if [ "$(systemctl show -p NeedDaemonReload --value ${shq(unit)})" != no ]; then systemctl daemon-reload; fi`;
}

export function serviceScripts(spec: ServiceSpec): StepScripts {
    const unit = shq(spec.unitName);
    const unitFile = shq(`/etc/systemd/system/${spec.unitName}.service`);
    const block = spec.noBlock ? " --no-block" : "";
    const install = spec.ownsUnitFile
        ? [`tmp=$(mktemp)`, `trap 'rm -f "$tmp"' EXIT`, `cat > "$tmp"`, `install -m ${spec.unitFileMode ?? "0644"} "$tmp" ${unitFile}`]
        : [];
    const header = `# re-run (and ${spec.onChange}) when the inputs change: ${spec.fingerprint}`;
    // A unit a package ships may come with a SysV script of the same name (ldirectord's does): systemctl's SysV
    // hooks would run update-rc.d on every enable and disable (8 s of the 11 s `systemctl enable ldirectord`
    // takes on the lab's emulated gateway). systemd runs the native unit; the rc.d links decide nothing.
    // SYSTEMCTL_SKIP_SYSV: systemd's docs/ENVIRONMENT.md. The units the program writes have no such script.
    const unitFiles = spec.ownsUnitFile ? "systemctl" : "SYSTEMCTL_SKIP_SYSV=1 systemctl";
    // `systemctl enable` and `disable` reload systemd's whole configuration by themselves, changed or not (2.2 s
    // on the lab's emulated gateway, 0.25 s on a control node), unless told not to. A start or restart needs a
    // reload only when systemd holds another version of the unit file than the one on disk: a unit it has
    // not loaded yet is read from disk when first asked for. The links `enable` makes matter at the next boot,
    // which reads them. A package's unit is the package's; its drop-in's own step reloads for the drop-in when needed.
    const reloadIfChanged = spec.ownsUnitFile ? [reloadIfStale(spec.unitName)] : [];
    const enable = [`${unitFiles} enable --no-reload --quiet ${unit}`, ...reloadIfChanged];
    const start = [...enable, `systemctl restart${block} ${unit}`];
    const change = spec.onChange === "reload"
        ? [...enable, `if systemctl is-active --quiet ${unit}; then systemctl reload ${unit}; else systemctl start ${unit}; fi`]
        : [...enable, `systemctl restart ${unit}`, ...(spec.afterChange ? [`restarted=$(systemctl show -p NRestarts --value ${unit})`] : [])];
    // A daemon that exits again and again after a restart for a change (a file a flag names that is missing, a
    // value it rejects once it runs: what the preflight's parse cannot tell) fails the step after systemd's
    // second restart of it (Restart=on-failure, RestartSec=5: about 12 s), not at the end of the wait. systemd
    // counts restarts (NRestarts) over the unit's life: from the count after this step's own restart.
    const afterChange = spec.afterChange && spec.onChange === "restart" ? {
        ...spec.afterChange,
        giveUp: { test: `[ "$(systemctl show -p NRestarts --value ${unit})" -ge $((restarted + ${CRASH_RESTARTS})) ]`,
            why: `${spec.unitName} keeps exiting: systemd restarted it ${CRASH_RESTARTS} times since this change restarted it` },
    } : spec.afterChange;
    return {
        create: script(header, ...install, ...(spec.beforeStart ?? []), ...start,
            ...(spec.afterStart ? waitLines(spec.afterStart) : [])),
        update: script(header, ...install, ...(spec.beforeChange ?? []), ...change,
            ...(afterChange ? waitLines(afterChange) : [])),
        delete: script(
            `${unitFiles} disable --no-reload --now --quiet ${unit} 2>/dev/null || true`,
            // Unloaded with its file: no trace of the unit stays in systemd.
            ...(spec.ownsUnitFile ? [`rm -f ${unitFile}`, `systemctl daemon-reload`] : []),
            `systemctl reset-failed ${unit} 2>/dev/null || true`,
            ...(spec.afterRemove ?? []),
        ),
    };
}

/**
 * A service step's unit file (when it writes one), the unit enabled and running, and what it `holds`: a
 * difference is repaired by the update, which installs the unit, enables it and restarts (or reloads) it.
 */
export function serviceExpectations(spec: Omit<ServiceSpec, "fingerprint">,
    unitContent: pulumi.Input<string> | undefined): Expectation<pulumi.Input<string>>[] {
    return [
        ...(spec.ownsUnitFile && unitContent !== undefined
            ? [{ kind: "file" as const, path: `/etc/systemd/system/${spec.unitName}.service`, sha256: contentSha256(unitContent),
                mode: spec.unitFileMode ?? "0644", owner: ROOT }]
            : []),
        { kind: "unit", name: spec.unitName },
        ...heldExpectations(spec.holds),
    ];
}

export interface DirectorySpec {
    path: string;
    mode: string;
    /** `user:group` that owns the directory and everything in it; default root's, as the seed. */
    owner?: string;
}

/** A data directory the program owns outright: created with its mode, removed with its contents. */
export function directoryScripts(spec: DirectorySpec): StepScripts {
    return {
        create: script(`install -d -m ${spec.mode} ${shq(spec.path)}`,
            ...(spec.owner ? [`chown -R ${shq(spec.owner)} ${shq(spec.path)}`] : [])),
        delete: script(`rm -rf ${shq(spec.path)}`),
    };
}

/** A directory step's directory: its mode, and its owner when the step sets one. */
export function directoryExpectations(spec: DirectorySpec): Expectation[] {
    return [{ kind: "directory", path: spec.path, mode: spec.mode, owner: spec.owner }];
}

export interface GateSpec extends WaitSpec {
    /** Changes whenever what the gate checks was restarted; the gate then runs again. */
    fingerprint: string;
}

/** A read-only bounded poll: it changes nothing on the host, so it has no delete. */
export function gateScript(spec: GateSpec): string {
    return script(`# re-run when the checked services change: ${spec.fingerprint}`, ...waitLines(spec));
}

/** A read-only check that a host has what the program expects, failing with what is missing. */
export function preconditionScript(checks: { test: string; message: string }[]): string {
    return script(
        `missing=()`,
        ...checks.map(c => `${c.test} || missing+=(${shq(c.message)})`),
        `if (( \${#missing[@]} > 0 )); then`,
        `  printf '%s: %s\\n' "$(hostname)" "\${missing[@]}" >&2`,
        `  exit 1`,
        `fi`,
    );
}

// ---------------------------------------------------------------------------------------------------------
// Resources.

type Scripted = pulumi.Input<StepScripts>;

export interface StepArgs {
    host: Host;
    scripts: Scripted;
    /** Passed on stdin: file content, unit files. Never on a command line. */
    stdin?: pulumi.Input<string>;
    /** The step replaces itself (instead of updating) when these change. */
    triggers?: pulumi.Input<string>[];
    /**
     * What the step installs, compared with the host (drift.ts): where the host differs, the create and update
     * scripts carry a new drift marker, so the step shows as an update and its update repairs the host.
     */
    expects?: Expectation<pulumi.Input<string>>[];
}

/** Runs a step's scripts as root on the host, with the host's SSH settings. */
export function remoteStep(name: string, args: StepArgs, opts: pulumi.CustomResourceOptions): command.remote.Command {
    const scripts = pulumi.output(args.scripts);
    const marker = args.expects ? driftMarker(name, args.host, args.expects) : pulumi.output("");
    const marked = pulumi.all([scripts, marker]).apply(([s, m]) => ({
        create: withDriftMarker(s.create, m),
        update: withDriftMarker(s.update ?? s.create, m),
    }));
    return new command.remote.Command(name, {
        connection: args.host.connection,
        create: marked.apply(s => asRoot(s.create)),
        update: marked.apply(s => asRoot(s.update)),
        delete: scripts.apply(s => (s.delete ? asRoot(s.delete) : undefined)) as pulumi.Output<string>,
        stdin: args.stdin,
        triggers: args.triggers,
        // The previous stdout in the environment needs AcceptEnv on the server; nothing here uses it.
        addPreviousOutputInEnv: false,
    }, pulumi.mergeOptions(args.host.stepOptions, {
        ...opts,
        // stdin can carry a private key: keep it (and anything echoed) a secret in state.
        additionalSecretOutputs: ["stdin", "stdout", "stderr"],
    }));
}

export function remoteFile(name: string, host: Host, spec: FileSpec, content: pulumi.Input<string>,
    opts: pulumi.CustomResourceOptions): command.remote.Command {
    return remoteStep(name, { host, scripts: fileScripts(spec), stdin: content, expects: fileExpectations(spec, content) }, opts);
}

export function binaryInstall(name: string, host: Host, spec: BinarySpec,
    opts: pulumi.CustomResourceOptions): command.remote.Command {
    return remoteStep(name, { host, scripts: binaryScripts(spec), expects: binaryExpectations(spec) }, opts);
}

export function dataDirectory(name: string, host: Host, spec: DirectorySpec,
    opts: pulumi.CustomResourceOptions): command.remote.Command {
    return remoteStep(name, { host, scripts: directoryScripts(spec), expects: directoryExpectations(spec) }, opts);
}

export function systemdService(name: string, host: Host, spec: Omit<ServiceSpec, "fingerprint">,
    fingerprint: pulumi.Input<string>, unitContent: pulumi.Input<string> | undefined,
    opts: pulumi.CustomResourceOptions): command.remote.Command {
    const scripts = pulumi.output(fingerprint).apply(f => serviceScripts({ ...spec, fingerprint: f }));
    return remoteStep(name, { host, scripts, stdin: unitContent, expects: serviceExpectations(spec, unitContent) }, opts);
}

/** A gate on a host; it is replaced (re-run) whenever its fingerprint changes. */
export function healthGate(name: string, host: Host, spec: Omit<GateSpec, "fingerprint">,
    fingerprint: pulumi.Input<string>, opts: pulumi.CustomResourceOptions): command.remote.Command {
    const create = pulumi.output(fingerprint).apply(f => gateScript({ ...spec, fingerprint: f }));
    return new command.remote.Command(name, {
        connection: host.connection,
        create: create.apply(asRoot),
        triggers: [fingerprint],
        addPreviousOutputInEnv: false,
    }, pulumi.mergeOptions(host.stepOptions, opts));
}

/**
 * A gate on a host, run from where `pulumi` runs over the shared SSH connection (components/remote/ssh.ts):
 * the same poll as `healthGate`, for a gate that re-runs within an `up` that already reached the host over
 * SSH (the gateway's, after each API server's drain), which then costs a session instead of a new
 * connection's key exchange, login and sudo. Replaced (re-run) whenever its fingerprint changes.
 */
export function sshHealthGate(name: string, ssh: SshAccess, host: Machine, spec: Omit<GateSpec, "fingerprint">,
    fingerprint: pulumi.Input<string>, opts: pulumi.CustomResourceOptions): command.local.Command {
    const text = pulumi.output(fingerprint).apply(f => sshGateScript(host, { ...spec, fingerprint: f }, sshSettings(ssh)));
    return sshLocalStep(name, ssh, { create: text.apply(t => `bash -c ${shq(t)}`), triggers: [fingerprint] }, opts);
}

/** The local script of `sshHealthGate`: the key on stdin, `gateScript` as root on `host` in one session. */
export function sshGateScript(host: Machine, spec: GateSpec, ssh: SshSettings): string {
    return scriptOnHost(ssh, host, gateScript(spec), "KTHW_GATE_SCRIPT");
}

/** A gate run where `pulumi` runs (checks what clients see, e.g. the VIP); stdin feeds `setup`. */
export function localHealthGate(name: string, spec: Omit<GateSpec, "fingerprint">, fingerprint: pulumi.Input<string>,
    stdin: pulumi.Input<string> | undefined, opts: pulumi.CustomResourceOptions): command.local.Command {
    const create = pulumi.output(fingerprint).apply(f => gateScript({ ...spec, fingerprint: f }));
    return new command.local.Command(name, {
        create: create.apply(text => `bash -c ${shq(text)}`),
        stdin,
        triggers: [fingerprint],
        addPreviousOutputInEnv: false,
    }, opts);
}

/** A read-only check of a host's prerequisites, run before anything on it changes. */
export function precondition(name: string, host: Host, checks: { test: string; message: string }[],
    opts: pulumi.CustomResourceOptions): command.remote.Command {
    return new command.remote.Command(name, {
        connection: host.connection,
        create: asRoot(preconditionScript(checks)),
        addPreviousOutputInEnv: false,
    }, pulumi.mergeOptions(host.stepOptions, opts));
}
