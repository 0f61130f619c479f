// kube-scheduler on one control node (seed: "Installing kube-scheduler").
import * as pulumi from "@pulumi/pulumi";
import { KUBERNETES_DIR } from "./apiServer";
import { kubernetesBinary } from "./artifacts";
import { ClusterConfig, versionParts } from "./config";
import { PkiFiles } from "./pki";
import { profileFlags, schedulerConfigEntries, unitFileMode } from "./profile";
import { flags, renderServiceUnit, withExtraArgs } from "./render/systemd";
import { toYaml } from "./render/yaml";
import { Daemon, installDaemon, unitDiagnosis } from "./remote/daemon";
import { Host } from "./remote/host";

export const SCHEDULER_KUBECONFIG = `${KUBERNETES_DIR}/kube-scheduler.kubeconfig`;
export const SCHEDULER_CONFIG_DIR = "/etc/kubernetes/config";
export const SCHEDULER_CONFIG = `${SCHEDULER_CONFIG_DIR}/kube-scheduler.yaml`;
/** The scheduler's secure port, where its /healthz answers. */
export const SCHEDULER_PORT = 10259;

/**
 * The KubeSchedulerConfiguration API version a release serves: v1beta2 until 1.22, v1beta3 from 1.23 (the
 * seed's choice for 1.28), v1 once v1beta3 is gone in 1.29.
 */
export function schedulerConfigApiVersion(kubernetesVersion: string): string {
    const [, minor] = versionParts(kubernetesVersion);
    const version = minor >= 29 ? "v1" : minor >= 23 ? "v1beta3" : "v1beta2";
    return `kubescheduler.config.k8s.io/${version}`;
}

/** The seed's /etc/kubernetes/config/kube-scheduler.yaml. */
export function renderSchedulerConfig(config: ClusterConfig): string {
    return toYaml({
        apiVersion: schedulerConfigApiVersion(config.kubernetesVersion),
        kind: "KubeSchedulerConfiguration",
        clientConnection: { kubeconfig: SCHEDULER_KUBECONFIG },
        leaderElection: { leaderElect: true },
        ...schedulerConfigEntries(config),
    });
}

/** The seed's kube-scheduler.service. */
export function renderSchedulerUnit(config: ClusterConfig): string {
    return renderServiceUnit({
        description: "Kubernetes Scheduler",
        documentation: "https://github.com/kubernetes/kubernetes",
        execStart: {
            program: "/usr/local/bin/kube-scheduler",
            args: flags(withExtraArgs(profileFlags(config, "scheduler", [
                ["config", SCHEDULER_CONFIG],
                ["v", config.logLevel],
            ]), config.schedulerExtraArgs)),
        },
    });
}

export interface SchedulerArgs {
    /** The validated cluster config. */
    config: ClusterConfig;
    /** The control node it runs on. */
    host: Host;
    /** Its kubeconfig. */
    pki: PkiFiles;
    /** The previous node's service: a change restarts one node's at a time. */
    rollAfter?: pulumi.Resource;
    /**
     * What its binary install and start wait for: every API server and the VIP on this node's lo, where its
     * kubeconfig's server is. Its kubeconfig and config install alongside etcd and the API servers.
     */
    api: pulumi.Resource[];
}

export class Scheduler extends pulumi.ComponentResource {
    readonly daemon: Daemon;

    constructor(name: string, args: SchedulerArgs, opts: pulumi.ComponentResourceOptions = {}) {
        super("kthw:index:Scheduler", name, {}, opts);
        const { config, host, pki } = args;
        const healthz = `https://127.0.0.1:${SCHEDULER_PORT}/healthz`;
        this.daemon = installDaemon(this, name, {
            host,
            binary: kubernetesBinary(config, "kube-scheduler"),
            files: [
                { what: "kubeconfig", path: SCHEDULER_KUBECONFIG, mode: "0600", content: pki.schedulerKubeconfig,
                    ownedDirs: [KUBERNETES_DIR] },
                { what: "config", path: SCHEDULER_CONFIG, mode: "0644", content: renderSchedulerConfig(config),
                    ownedDirs: [SCHEDULER_CONFIG_DIR, "/etc/kubernetes"] },
            ],
            service: { unitName: "kube-scheduler", unitFileMode: unitFileMode(config) },
            unit: renderSchedulerUnit(config),
            gate: {
                what: `kube-scheduler on ${host.name} to answer ${healthz}`,
                probe: `[ "$(curl -fsSk --max-time 5 ${healthz} 2>/dev/null)" = ok ]`,
                diagnose: unitDiagnosis("kube-scheduler"),
            },
            gateTimeoutSeconds: config.healthTimeoutSeconds,
            rollAfter: args.rollAfter,
            startAfter: args.api,
        }, opts.dependsOn);
        this.registerOutputs({ fingerprint: this.daemon.fingerprint });
    }
}
