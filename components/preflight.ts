// Preflight (kubeadm's word): read-only checks on every control node that run before anything on any host
// changes, and stop the program with an error that names the culprit:
// - the version skew policy against what is installed, so an upgrade never skips a minor release nor goes back
//   across one (naming the config key);
// - the control plane's ports: each port a daemon will listen on is free, or held by that daemon's own unit
//   (kubeadm's `Port-6443` check), so a node where something else holds 2380 is refused before any file is
//   written on any host, instead of an etcd that cannot bind and a health gate that times out minutes later.
//
// Both come from the host probe (probe.ts), before any resource is registered, so `pulumi preview` refuses
// too. The version skew policy is also checked by a remote step per node at `up`, the backstop when a preview
// had no SSH key (an `up` always probes).
import * as pulumi from "@pulumi/pulumi";
import { ClusterConfig, CONFIG_NAMESPACE, Machine, versionParts } from "./config";
import { CONTROLLER_MANAGER_PORT } from "./controllerManager";
import { ETCD_CLIENT_PORT, ETCD_PEER_PORT, etcdHttpPort } from "./etcd";
import { SCHEDULER_PORT } from "./scheduler";
import { Host } from "./remote/host";
import { childOptions } from "./remote/options";
import { Listener, observe, ProbedHosts } from "./remote/probe";
import { shq } from "./remote/shell";
import { precondition } from "./remote/steps";
import { refusal } from "./traces";

/** What a binary on the node prints for `--version`, and the config key that sets its release. */
const RELEASES = [
    { key: "kubernetesVersion", binary: "/usr/local/bin/kube-apiserver", pattern: "Kubernetes v" },
    { key: "etcdVersion", binary: "/usr/local/bin/etcd", pattern: "etcd Version: " },
] as const;

/** The refusal, naming the key; the same words from the probe and from the remote check. */
export function versionSkewMessage(key: string, binary: string, wanted: string): string {
    return `${CONFIG_NAMESPACE}:${key}: ${wanted} is not one minor release step from the ${key === "etcdVersion" ? "etcd" : "Kubernetes"} ` +
        `installed here (${binary} --version): upgrade one minor release at a time, and never back across one`;
}

/**
 * The shell test that refuses a move from the installed release to `wanted` that skips a minor or goes
 * back across one (a patch up or down, and no release installed yet, are fine). Pure, for tests.
 */
export function versionSkewCheck(key: string, binary: string, pattern: string, wanted: string, arch: string): { test: string; message: string } {
    const [major, minor] = wanted.split(".").map(Number);
    // etcd refuses to start on arm64 without ETCD_UNSUPPORTED_ARCH, --version included.
    const installed = `$( { ETCD_UNSUPPORTED_ARCH=${arch} ${binary} --version 2>/dev/null || true; } | sed -n ${shq(`s/^${pattern}\\([0-9]*\\.[0-9]*\\)\\..*/\\1/p`)} | head -n 1)`;
    return {
        test: `{ have=${installed}; [ -z "$have" ] || { [ "\${have%%.*}" -eq ${major} ] && ` +
            `[ "\${have#*.}" -le ${minor} ] && [ $((\${have#*.} + 1)) -ge ${minor} ]; }; }`,
        message: versionSkewMessage(key, binary, wanted),
    };
}

/** The release in a `--version` line (`Kubernetes v1.28.3`, `etcd Version: 3.5.9`), or undefined. */
export function installedRelease(line: string | undefined, pattern: string): string | undefined {
    if (line === undefined || !line.startsWith(pattern)) {
        return undefined;
    }
    return /^([0-9]+\.[0-9]+\.[0-9]+)/.exec(line.slice(pattern.length))?.[1];
}

/** The skew policy: same major, and the minor the installed one or the next (no release installed: anything). */
export function skewAllowed(installed: string | undefined, wanted: string): boolean {
    if (installed === undefined) {
        return true;
    }
    const [haveMajor, haveMinor] = versionParts(installed);
    const [major, minor] = versionParts(wanted);
    return haveMajor === major && haveMinor <= minor && haveMinor + 1 >= minor;
}

/** What each control node's probe says against the policy: one line per refusal, `node: message`. Pure. */
export function versionSkewProblems(config: ClusterConfig, nodes: Machine[], facts: ProbedHosts): string[] {
    return nodes.flatMap(node => RELEASES.flatMap(r => {
        const installed = installedRelease(facts.get(node.name)?.versions[r.binary], r.pattern);
        return skewAllowed(installed, config[r.key]) ? []
            : [`${node.name}: ${versionSkewMessage(r.key, r.binary, config[r.key])} (installed: ${installed})`];
    }));
}

/** A TCP port a daemon of every control node listens on, and the systemd unit that may hold it. */
export interface ControlPlanePort {
    port: number;
    unit: string;
    /** What it is, in words, with the config key that sets it if any. */
    what: string;
}

/** The ports every control node's daemons listen on. */
export function controlPlanePorts(config: ClusterConfig): ControlPlanePort[] {
    const etcdHttp = etcdHttpPort(config);
    return [
        { port: ETCD_CLIENT_PORT, unit: "etcd.service", what: "etcd's client port" },
        { port: ETCD_PEER_PORT, unit: "etcd.service", what: "etcd's peer port" },
        ...(etcdHttp === undefined ? [] :
            [{ port: etcdHttp, unit: "etcd.service", what: `etcd's HTTP port (${CONFIG_NAMESPACE}:etcdClientHttpPort)` }]),
        { port: config.apiPort, unit: "kube-apiserver.service", what: `the API server's port (${CONFIG_NAMESPACE}:apiPort)` },
        { port: CONTROLLER_MANAGER_PORT, unit: "kube-controller-manager.service", what: "the controller manager's port" },
        { port: SCHEDULER_PORT, unit: "kube-scheduler.service", what: "the scheduler's port" },
    ];
}

/** Two daemons of a control node on one port (`apiPort` or `etcdClientHttpPort` set to another's), in words. */
export function portClashes(config: ClusterConfig): string[] {
    const ports = controlPlanePorts(config);
    return ports.flatMap((p, i) => ports.slice(0, i).filter(q => q.port === p.port)
        .map(q => `${p.what} and ${q.what} are the same port, ${p.port}: each daemon needs its own`));
}

// A listener `ss` names no process for (one the kernel holds, or one that stayed after its process while the
// probe read it again for 2 s) is said so, not as `- (pid -)`.
const holder = (l: Listener) => l.pid === "-" ? "a listening socket no process holds"
    : `${l.process} (pid ${l.pid}${l.unit ? `, ${l.unit}` : ""})`;

/**
 * Every port of `controlPlanePorts` that something other than its own unit listens on, one line per node and
 * port: `node: port N (what) is in use by PROCESS (pid P, UNIT), not UNIT`. Pure.
 */
export function portProblems(config: ClusterConfig, nodes: Machine[], facts: ProbedHosts): string[] {
    return nodes.flatMap(node => controlPlanePorts(config).flatMap(p => {
        const others = (facts.get(node.name)?.ports?.[String(p.port)] ?? []).filter(l => l.unit !== p.unit);
        return others.length === 0 ? []
            : [`${node.name}: port ${p.port} (${p.what}) is in use by ${others.map(holder).join(", ")}, not ${p.unit}: stop it, or move it to another port`];
    }));
}

/** Each daemon's release (whose key and `--version` line it shares, RELEASES) and the key of its extra flags. */
const [KUBERNETES, ETCD] = RELEASES;
const DAEMONS: Record<string, { release: (typeof RELEASES)[number]; extraArgs: string }> = {
    "etcd": { release: ETCD, extraArgs: "etcdExtraArgs" },
    "kube-apiserver": { release: KUBERNETES, extraArgs: "apiServerExtraArgs" },
    "kube-controller-manager": { release: KUBERNETES, extraArgs: "controllerManagerExtraArgs" },
    "kube-scheduler": { release: KUBERNETES, extraArgs: "schedulerExtraArgs" },
};

/**
 * A daemon whose installed binary refuses the command line the change would restart it with (a flag it does
 * not know, a value it cannot parse): one line each, naming the node, the daemon, the keys that set its flags
 * and what the binary said. Only where the installed binary is the release the change wants: an upgrade's new
 * binary is not on the host yet, and an older one may not know its flags. Pure.
 */
export function commandLineProblems(config: ClusterConfig, nodes: Machine[], facts: ProbedHosts): string[] {
    return nodes.flatMap(node => Object.entries(facts.get(node.name)?.commandLines ?? {}).flatMap(([unit, fact]) => {
        const daemon = DAEMONS[unit];
        const wanted = daemon && config[daemon.release.key];
        if (fact.state !== "refused" || daemon === undefined || installedRelease(fact.version, daemon.release.pattern) !== wanted) {
            return [];
        }
        return [`${node.name}: ${unit} ${wanted} refuses the command line this change would restart it with ` +
            `(its flags come from ${CONFIG_NAMESPACE}:${daemon.extraArgs} and ${CONFIG_NAMESPACE}:profile): ${fact.message ?? "no error line"}`];
    }));
}

/** Throws the refusal, before any resource is registered, when a probed node fails a preflight check. */
export function refuseByPreflight(config: ClusterConfig, nodes: Machine[], facts: ProbedHosts): void {
    const problems = [...versionSkewProblems(config, nodes, facts), ...portProblems(config, nodes, facts),
        ...commandLineProblems(config, nodes, facts)];
    if (problems.length > 0) {
        throw refusal(`refused by the preflight checks, so nothing was changed:\n${problems.map(p => `  - ${p}`).join("\n")}`);
    }
}

export interface PreflightArgs {
    /** The validated cluster config. */
    config: ClusterConfig;
    /** Every control node. */
    nodes: Host[];
}

/**
 * Read-only checks on every control node (the version skew policy; the ports and the daemons' command lines from
 * the probe alone, the latter asked by each daemon's steps, remote/daemon.ts); everything else depends on this
 * component.
 */
export class Preflight extends pulumi.ComponentResource {
    constructor(name: string, args: PreflightArgs, opts: pulumi.ComponentResourceOptions = {}) {
        super("kthw:index:Preflight", name, {}, opts);
        const { config } = args;
        for (const node of args.nodes) {
            // The probe reads the installed releases and the ports' listeners (refuseByPreflight); a failed probe
            // reaches the program there.
            observe(node, {
                versions: RELEASES.map(r => ({ binary: r.binary, arch: config.arch })),
                ports: controlPlanePorts(config).map(p => p.port),
            }).catch(() => undefined);
            precondition(`${name}-${node.name}-version-skew`, node, RELEASES.map(r =>
                versionSkewCheck(r.key, r.binary, r.pattern, config[r.key], config.arch)), childOptions(this, opts.dependsOn));
        }
        this.registerOutputs({});
    }
}
