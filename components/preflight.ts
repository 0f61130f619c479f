// Preflight (kubeadm's word): read-only checks on every control node that run before anything on any host
// changes, and stop an `up` with an error that names the config key. Today: the version skew policy
// against what is installed, so an upgrade never skips a minor release nor goes back across one.
import * as pulumi from "@pulumi/pulumi";
import { ClusterConfig, CONFIG_NAMESPACE } from "./config";
import { Host } from "./remote/host";
import { childOptions } from "./remote/options";
import { shq } from "./remote/shell";
import { precondition } from "./remote/steps";

/** What a binary on the node prints for `--version`, and the config key that sets its release. */
const RELEASES = [
    { key: "kubernetesVersion", binary: "/usr/local/bin/kube-apiserver", pattern: "Kubernetes v" },
    { key: "etcdVersion", binary: "/usr/local/bin/etcd", pattern: "etcd Version: " },
] as const;

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
        message: `${CONFIG_NAMESPACE}:${key}: ${wanted} is not one minor release step from the ${key === "etcdVersion" ? "etcd" : "Kubernetes"} ` +
            `installed here (${binary} --version): upgrade one minor release at a time, and never back across one`,
    };
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
            precondition(`${name}-${node.name}-version-skew`, node, RELEASES.map(r =>
                versionSkewCheck(r.key, r.binary, r.pattern, config[r.key], config.arch)), childOptions(this, opts.dependsOn));
        }
        this.registerOutputs({});
    }
}
