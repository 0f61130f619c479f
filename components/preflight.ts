// Preflight (kubeadm's word): read-only checks on every control node that run before anything on any host
// changes, and stop the program with an error that names the config key. Today: the version skew policy
// against what is installed, so an upgrade never skips a minor release nor goes back across one.
//
// It is checked twice: from the host probe (probe.ts), before any resource is registered, so `pulumi preview`
// refuses too; and by a remote step per node at `up`, the backstop when a preview had no SSH key.
import * as pulumi from "@pulumi/pulumi";
import { ClusterConfig, CONFIG_NAMESPACE, Machine, versionParts } from "./config";
import { Host } from "./remote/host";
import { childOptions } from "./remote/options";
import { observe, ProbedHosts } from "./remote/probe";
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

/** Throws the refusal, before any resource is registered, when a probed node breaks the policy. */
export function refuseVersionSkew(config: ClusterConfig, nodes: Machine[], facts: ProbedHosts): void {
    const problems = versionSkewProblems(config, nodes, facts);
    if (problems.length > 0) {
        throw refusal(`refused by the version skew policy, so nothing was changed:\n${problems.map(p => `  - ${p}`).join("\n")}`);
    }
}

export interface PreflightArgs {
    /** The validated cluster config. */
    config: ClusterConfig;
    /** Every control node. */
    nodes: Host[];
}

/** Read-only checks on every control node; everything else depends on this component. */
export class Preflight extends pulumi.ComponentResource {
    constructor(name: string, args: PreflightArgs, opts: pulumi.ComponentResourceOptions = {}) {
        super("kthw:index:Preflight", name, {}, opts);
        const { config } = args;
        for (const node of args.nodes) {
            // The probe reads the installed releases too (refuseVersionSkew); a failed probe reaches the program there.
            observe(node, { versions: RELEASES.map(r => ({ binary: r.binary, arch: config.arch })) }).catch(() => undefined);
            precondition(`${name}-${node.name}-version-skew`, node, RELEASES.map(r =>
                versionSkewCheck(r.key, r.binary, r.pattern, config[r.key], config.arch)), childOptions(this, opts.dependsOn));
        }
        this.registerOutputs({});
    }
}
