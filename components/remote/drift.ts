// Drift: a hand edit on a host shows in `pulumi preview` as an update of the step concerned, and `pulumi up`
// repairs it by that update; the preview after the repair is clean.
//
// `remote.Command` has no real refresh, so every step that changes a host says what it installs as
// expectations (a file's sha256, mode and owner; a unit enabled and running; an address on an interface; a
// kernel parameter), the host probe (probe.ts) reads what the host has, and the step carries a marker in
// its create and update scripts, one comment line `# drift repaired: <marker>` (none when the marker is
// empty). With `previous` the marker the step had in the last deployment (stack output `driftMarkers`, read
// back through a reference to this very stack; undefined when the step is new):
//
//   marker = step new ? "" : in sync ? previous : sha256(what the host has, previous)[0:16]
//
// - first up (or the first up of a stack deployed before markers existed): every step new, every marker "",
//   every script byte for byte what it was;
// - steady state: in sync, marker = previous: the scripts do not change, no diff;
// - a hand edit: not in sync, a new marker: the step's scripts change, so preview shows an update (never a
//   replacement: a replacement would run the old delete after the new create and remove the file) and up
//   runs the step's update, which rewrites the file, reinstalls the binary, or installs, enables and restarts
//   the unit; the marker is exported, so it is the next run's `previous`;
// - the run after the repair: in sync, marker = previous = the repair's marker, the script in the state: no diff;
// - a config change: the step changes anyway; its marker changes too (the host differs from the new desired
//   state), and the run after is in sync with it again;
// - an up that failed mid-way: a step that did not run still differs on the host, so the next run computes a
//   marker unlike the one in its state (from a newer `previous`, or the same facts and the same `previous`)
//   and the update is shown again; a step that did run is in sync, so it keeps the marker it ran with if the
//   outputs were saved, and runs once more, harmlessly, if they were not;
// - no SSH key (a preview in review) or no `ssh` where a preview runs: no facts, marker = previous, no diff.
//
// A marker is a digest of hashes, modes and unit states: it reveals nothing of a file's content.
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { Machine } from "../config";
import { shortDigest } from "./fingerprint";
import { addressKey, emptyFacts, HostFacts, observe, probed, ProbeQuery } from "./probe";

/** A file the step writes. */
export interface FileExpectation<Sha = string> {
    kind: "file";
    path: string;
    /** sha256 of the content; undefined: not compared (a binary unpacked from an archive whose sum is the archive's). */
    sha256?: Sha;
    /** Octal, as the step's chmod or install gets it ("0644"). */
    mode: string;
    /** `user:group`. */
    owner: string;
}

/** A directory the step makes. */
export interface DirectoryExpectation {
    kind: "directory";
    path: string;
    mode: string;
    /** `user:group`, when the step sets it. */
    owner?: string;
}

/** A unit the step enables and starts: enabled, and running (or being started again by systemd). */
export interface UnitExpectation {
    kind: "unit";
    name: string;
}

/** An address a running unit keeps on an interface. */
export interface AddressExpectation {
    kind: "address";
    device: string;
    address: string;
}

/** A kernel parameter a running unit keeps. */
export interface SysctlExpectation {
    kind: "sysctl";
    key: string;
    value: string;
}

/** What a step installs, as a host in sync has it; `Sha` is pulumi.Input<string> while content is still an Output. */
export type Expectation<Sha = string> =
    FileExpectation<Sha> | DirectoryExpectation | UnitExpectation | AddressExpectation | SysctlExpectation;

// ---------------------------------------------------------------------------------------------------------
// Pure.

/** A unit counts as running when active, or on its way back (systemd restarting it on its own, a reload). */
const RUNNING = ["active", "activating", "reloading"];

/** sha256 of a file's content, as `sha256sum` prints it on the host. */
export function contentSha256(content: pulumi.Input<string>): pulumi.Output<string> {
    return pulumi.output(content).apply(text => crypto.createHash("sha256").update(text, "utf8").digest("hex"));
}

/** What the probe must read for these expectations. */
export function probeQueryOf(expectations: Expectation<unknown>[]): Partial<ProbeQuery> {
    const query: Required<Pick<ProbeQuery, "files" | "stats" | "units" | "addresses" | "sysctls">> =
        { files: [], stats: [], units: [], addresses: [], sysctls: [] };
    for (const e of expectations) {
        switch (e.kind) {
            case "file":
                (e.sha256 === undefined ? query.stats : query.files).push(e.path);
                break;
            case "directory":
                query.stats.push(e.path);
                break;
            case "unit":
                query.units.push(e.name);
                break;
            case "address":
                query.addresses.push({ device: e.device, address: e.address });
                break;
            case "sysctl":
                query.sysctls.push(e.key);
                break;
        }
    }
    return query;
}

const sameMode = (want: string, have: string | undefined) => have !== undefined && parseInt(want, 8) === parseInt(have, 8);

/** Whether the host has what one expectation says. */
export function isInSync(e: Expectation, facts: HostFacts): boolean {
    switch (e.kind) {
        case "file": {
            const f = facts.files[e.path] ?? {};
            return f.sha256 !== undefined && f.sha256 !== "dir" && (e.sha256 === undefined || f.sha256 === e.sha256) &&
                sameMode(e.mode, f.mode) && f.owner === e.owner;
        }
        case "directory": {
            const f = facts.files[e.path] ?? {};
            return f.sha256 === "dir" && sameMode(e.mode, f.mode) && (e.owner === undefined || f.owner === e.owner);
        }
        case "unit": {
            const u = facts.units[e.name];
            return u !== undefined && u.enabled === "enabled" && RUNNING.includes(u.active);
        }
        case "address":
            return facts.addresses[addressKey(e)] === true;
        case "sysctl":
            return facts.sysctls[e.key] === e.value;
    }
}

/** What the host has for one expectation, as one line (hashes, modes, states: never content). */
export function observedLine(e: Expectation, facts: HostFacts): string {
    switch (e.kind) {
        case "file":
        case "directory": {
            const f = facts.files[e.path] ?? {};
            return `file ${f.sha256 ?? "-"} ${f.mode ?? "-"} ${f.owner ?? "-"} ${e.path}`;
        }
        case "unit": {
            const u = facts.units[e.name];
            return `unit ${u?.enabled ?? "-"} ${u?.active ?? "-"} ${e.name}`;
        }
        case "address":
            return `addr ${facts.addresses[addressKey(e)] ? "present" : "absent"} ${e.device} ${e.address}`;
        case "sysctl":
            return `sysctl ${e.key} ${facts.sysctls[e.key] ?? "-"}`;
    }
}

/**
 * The step's marker (see the top of this file): "" for a new step; `previous` without facts or when the host is
 * in sync; else a new digest of what the host has and `previous`, so each new difference makes a new marker.
 */
export function nextMarker(previous: string | undefined, expectations: Expectation[], facts: HostFacts | undefined): string {
    if (previous === undefined) {
        return "";
    }
    if (facts === undefined || expectations.every(e => isInSync(e, facts))) {
        return previous;
    }
    const observed = expectations.map(e => observedLine(e, facts));
    return shortDigest([observed, previous]);
}

/** The comment a non-empty marker adds to a script, after its strict-mode header. */
export function withDriftMarker(text: string, marker: string): string {
    if (marker === "") {
        return text;
    }
    const lines = text.split("\n");
    const at = lines[1] === "set -euo pipefail" ? 2 : lines[0].startsWith("#!") ? 1 : 0;
    return [...lines.slice(0, at), `# drift repaired: ${marker}`, ...lines.slice(at)].join("\n");
}

/** The facts of a host in sync with these expectations (tests feed them back as what the host has). */
export function factsInSync(expectations: Expectation[], into: HostFacts = emptyFacts()): HostFacts {
    for (const e of expectations) {
        switch (e.kind) {
            case "file":
                into.files[e.path] = { sha256: e.sha256 ?? "*", mode: e.mode.replace(/^0+(?=.)/, ""), owner: e.owner };
                break;
            case "directory":
                into.files[e.path] = { sha256: "dir", mode: e.mode.replace(/^0+(?=.)/, ""), owner: e.owner ?? "root:root" };
                break;
            case "unit":
                into.units[e.name] = { enabled: "enabled", active: "active" };
                break;
            case "address":
                into.addresses[addressKey(e)] = true;
                break;
            case "sysctl":
                into.sysctls[e.key] = e.value;
                break;
        }
    }
    return into;
}

// ---------------------------------------------------------------------------------------------------------
// Every drift-aware step of one program run.

interface Watched {
    host: Machine;
    expectations: pulumi.Output<Expectation[]>;
    marker: pulumi.Output<string>;
}

const watched = new Map<string, Watched>();
let previousMarkers: pulumi.Output<Record<string, string> | undefined> = pulumi.output(undefined);

/** The markers of the last deployment (stack output `driftMarkers`); set before any step is constructed. */
export function usePreviousMarkers(markers: pulumi.Input<Record<string, string> | undefined>): void {
    previousMarkers = pulumi.output(markers);
}

/**
 * The drift marker of step `name` on `host`, which installs what `expectations` say; asks the probe for what
 * it needs. Not a secret: a digest of hashes and states.
 */
export function driftMarker(name: string, host: Machine, expectations: Expectation<pulumi.Input<string>>[]): pulumi.Output<string> {
    if (watched.has(name)) {
        throw new Error(`drift: step ${name} is watched twice`);
    }
    const facts = pulumi.output(observe(host, probeQueryOf(expectations)));
    const expected = pulumi.output(expectations) as pulumi.Output<Expectation[]>;
    const previous = previousMarkers.apply(markers => markers?.[name]);
    const marker = pulumi.all([previous, facts]).apply(([prev, have]) =>
        prev === undefined ? pulumi.output("") : have === undefined ? pulumi.output(prev)
            : expected.apply(want => nextMarker(prev, want, have)));
    const plain = pulumi.unsecret(marker);
    watched.set(name, { host, expectations: expected, marker: plain });
    return plain;
}

/** Every drift-aware step's marker, "" included: the stack output `driftMarkers`, the next run's `previous`. */
export function driftMarkers(): pulumi.Output<Record<string, string>> {
    return pulumi.all(Object.fromEntries([...watched].map(([name, w]) => [name, w.marker])));
}

/**
 * `fingerprint`, changed also by a drift repair of any of these steps (their markers, once every step is
 * constructed and the hosts probed); unchanged while all their markers are empty. For a step that must run
 * before such a repair (an etcd snapshot before a member restarts).
 */
export function withDriftRepairs(fingerprint: pulumi.Input<string>, steps: string[]): pulumi.Output<string> {
    const markers = pulumi.output(probed()).apply(() =>
        pulumi.all(steps.map(name => watched.get(name)?.marker ?? pulumi.output(""))));
    return pulumi.all([fingerprint, markers]).apply(([f, ms]) => ms.every(m => m === "") ? f
        : shortDigest([f, ms]));
}

/** Tests: what every host reports when it is in sync with every step, by host name. */
export function expectedFacts(): pulumi.Output<Record<string, HostFacts>> {
    return pulumi.unsecret(pulumi.all([...watched.values()].map(w => w.expectations)).apply(lists => {
        const byHost: Record<string, HostFacts> = {};
        [...watched.values()].forEach((w, i) => {
            byHost[w.host.name] = factsInSync(lists[i], byHost[w.host.name] ?? emptyFacts());
        });
        return byHost;
    }));
}
