// The shape every control plane daemon shares: its binaries, its files, its unit (restarted when any of
// them changes) and, optionally, a health gate that waits until it answers. One place, five components.
import * as pulumi from "@pulumi/pulumi";
import { fingerprint, shortDigest } from "./fingerprint";
import { Host } from "./host";
import { childOptions } from "./options";
import { observe } from "./probe";
import { execStartOf } from "../render/systemd";
import { BinarySpec, binaryInstall, FileSpec, GateSpec, healthGate, remoteFile, ServiceSpec, serviceScripts, systemdService, WaitSpec } from "./steps";

export interface DaemonFile extends FileSpec {
    /** Short name of the step (`ca`, `key`, `kubeconfig`). */
    what: string;
    content: pulumi.Input<string>;
}

export interface DaemonSpec {
    host: Host;
    binary: BinarySpec;
    files: DaemonFile[];
    /** Files written by another component that this daemon reads: a change restarts it too. */
    readsAlso?: pulumi.Input<string>[];
    service: Omit<ServiceSpec, "fingerprint" | "ownsUnitFile" | "onChange" | "afterChange">;
    unit: string;
    gate?: Omit<GateSpec, "fingerprint" | "timeoutSeconds">;
    gateTimeoutSeconds: number;
    /**
     * What a restart for a change waits for before the next node may restart (see rolling.ts); default: the
     * gate's probe. etcd waits for the whole cluster instead.
     */
    afterChange?: Omit<WaitSpec, "timeoutSeconds">;
    /**
     * The previous node's step that this daemon's steps wait for: a change (its files, binary and restart)
     * rolls one node at a time. None on an empty stack, where every node's steps go at once (rolling.ts).
     */
    rollAfter?: pulumi.Input<pulumi.Resource>;
    /**
     * What the binary install and the service's start wait for beyond the component's own steps and
     * dependencies (a client of the API waits for the API servers: a newer one must never run first, not
     * even restarted by systemd after a crash); its files install without waiting for these.
     */
    startAfter?: pulumi.Input<pulumi.Resource>[];
    /**
     * Steps of the component that must precede the service (a data directory), or a function that makes
     * them once the binaries' and files' steps exist: a step that needs the binaries, or one that must not
     * act until everything the restart reads is in place (an API server's drain).
     */
    before?: pulumi.Resource[] | ((binary: pulumi.Resource, files: pulumi.Resource[]) => pulumi.Resource[]);
}

export interface Daemon {
    service: pulumi.Resource;
    /** The last step: the gate if there is one, else the service. */
    ready: pulumi.Resource;
    /** Changes whenever the daemon restarts. */
    fingerprint: pulumi.Output<string>;
}

/** Changes whenever anything the daemon reads changes, that is whenever its service step restarts it. */
export function restartFingerprint(spec: Pick<DaemonSpec, "unit" | "binary" | "files" | "readsAlso">): pulumi.Output<string> {
    return fingerprint([spec.unit, spec.binary.url, spec.binary.sha256,
        ...spec.files.map(f => f.content), ...(spec.readsAlso ?? [])]);
}

/** What the daemon's service step renders its scripts from, all but the fingerprint: it writes the unit and restarts on a change. */
export function daemonServiceSpec(spec: DaemonSpec): Omit<ServiceSpec, "fingerprint"> {
    const afterChange = spec.afterChange ?? spec.gate;
    return {
        ...spec.service, ownsUnitFile: true, onChange: "restart",
        afterChange: afterChange && { ...afterChange, timeoutSeconds: spec.gateTimeoutSeconds },
    };
}

/**
 * Changes whenever the service step's scripts would, with the same fingerprint: a new version of the program
 * that renders them otherwise runs the step's update, a restart, as a change of what the daemon reads does.
 */
export function serviceScriptsForm(spec: DaemonSpec): string {
    return shortDigest(serviceScripts({ ...daemonServiceSpec(spec), fingerprint: "" }));
}

/** Creates the steps of one daemon as children of `component`, named `${name}-<what>`. */
export function installDaemon(component: pulumi.ComponentResource, name: string, spec: DaemonSpec,
    deps: pulumi.CustomResourceOptions["dependsOn"]): Daemon {
    // Everything a daemon reads is written in turn too: a node's new files (another owner, a new CA) could
    // otherwise break a daemon that has not restarted yet, on the next node.
    const inTurn = spec.rollAfter ? [spec.rollAfter] : [];
    const after = childOptions(component, deps, ...inTurn);
    const installed = binaryInstall(`${name}-binary`, spec.host, spec.binary,
        childOptions(component, deps, ...inTurn, ...(spec.startAfter ?? [])));
    const files = spec.files.map(({ what, content, ...file }) =>
        remoteFile(`${name}-${what}`, spec.host, file, content, after));
    // The preflight tries the unit's command line with the installed binary before anything changes (a flag
    // it does not know, a value it cannot parse): preflight.ts.
    const command = execStartOf(spec.unit);
    if (command !== undefined) {
        observe(spec.host, { commandLines: [{ unit: spec.service.unitName, binary: command.program, args: command.args }] })
            .catch(() => undefined);
    }
    const restartOn = restartFingerprint(spec);
    const before = typeof spec.before === "function" ? spec.before(installed, files) : spec.before ?? [];
    const service = systemdService(`${name}-service`, spec.host, daemonServiceSpec(spec), restartOn, spec.unit,
    childOptions(component, deps, installed, ...files, ...before, ...inTurn, ...(spec.startAfter ?? [])));
    const ready = spec.gate
        ? healthGate(`${name}-healthy`, spec.host, { ...spec.gate, timeoutSeconds: spec.gateTimeoutSeconds },
            restartOn, childOptions(component, deps, service))
        : service;
    return { service, ready, fingerprint: restartOn };
}

/** How many journal lines a unit's diagnosis shows: the last ones, and those up to the daemon's last exit. */
export const DIAGNOSIS_LINES = 20;

/**
 * What the journal says about a unit, for a gate's timeout error: its status, then its journal's last lines,
 * preceded by the lines up to the daemon's last failed exit (systemd's "Main process exited") when that is
 * further back. A daemon that keeps exiting is diagnosed as systemd starts it again, and the new run's first
 * lines (the API server's 200 flags at --v=2) would push the reason the last run exited out of the last lines.
 */
export function unitDiagnosis(unit: string): string {
    const n = DIAGNOSIS_LINES;
    const upToLastExit = [
        `{ l[NR] = $0 } / Main process exited, / { x = NR }`,
        `END { from = NR > ${n} ? NR - ${n - 1} : 1`,
        `if (x && x < from) { for (i = x > ${n} ? x - ${n - 1} : 1; i <= x; i++) print l[i]; print "..." }`,
        `for (i = from; i <= NR; i++) print l[i] }`,
    ].join("; ");
    return `{ systemctl status --no-pager -n 0 ${unit}; journalctl -u ${unit} -n 500 --no-pager | awk '${upToLastExit}'; }`;
}
