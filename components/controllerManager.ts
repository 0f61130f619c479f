// kube-controller-manager on one control node (seed: "Installing kube-controller-manager").
import * as pulumi from "@pulumi/pulumi";
import { KUBERNETES_DIR } from "./apiServer";
import { kubernetesBinary } from "./artifacts";
import { ClusterConfig } from "./config";
import { PkiFiles } from "./pki";
import { profileFlags, unitFileMode } from "./profile";
import { flags, renderServiceUnit, withExtraArgs } from "./render/systemd";
import { Daemon, installDaemon, unitDiagnosis } from "./remote/daemon";
import { Host } from "./remote/host";

const k8s = (file: string) => `${KUBERNETES_DIR}/${file}`;
export const CONTROLLER_MANAGER_KUBECONFIG = k8s("kube-controller-manager.kubeconfig");
/** The controller manager's secure port, where its /healthz answers. */
export const CONTROLLER_MANAGER_PORT = 10257;

/** The seed's kube-controller-manager.service. */
export function renderControllerManagerUnit(config: ClusterConfig): string {
    return renderServiceUnit({
        description: "Kubernetes Controller Manager",
        documentation: "https://github.com/kubernetes/kubernetes",
        execStart: {
            program: "/usr/local/bin/kube-controller-manager",
            args: flags(withExtraArgs(profileFlags(config, "controllerManager", [
                ["bind-address", "0.0.0.0"],
                ["cluster-cidr", config.clusterCidr],
                ["cluster-name", config.clusterName],
                ["cluster-signing-cert-file", k8s("ca.pem")],
                ["cluster-signing-key-file", k8s("ca-key.pem")],
                ["kubeconfig", CONTROLLER_MANAGER_KUBECONFIG],
                ["leader-elect", "true"],
                ["root-ca-file", k8s("ca.pem")],
                ["service-account-private-key-file", k8s("service-account-key.pem")],
                ["service-cluster-ip-range", config.serviceCidr],
                ["use-service-account-credentials", "true"],
                ["v", config.logLevel],
            ]), config.controllerManagerExtraArgs)),
        },
    });
}

export interface ControllerManagerArgs {
    /** The validated cluster config. */
    config: ClusterConfig;
    /** The control node it runs on (its API server wrote the CA and service-account files). */
    host: Host;
    /** Its kubeconfig, plus the CA and service-account key it reads. */
    pki: PkiFiles;
    /** The previous node's service: a change restarts one node's at a time. */
    rollAfter?: pulumi.Resource;
    /**
     * What its binary install and start wait for: every API server (this node's writes the files it reads) and
     * the VIP on this node's lo, where its kubeconfig's server is. Its kubeconfig installs alongside etcd and
     * the API servers.
     */
    api: pulumi.Resource[];
}

export class ControllerManager extends pulumi.ComponentResource {
    readonly daemon: Daemon;

    constructor(name: string, args: ControllerManagerArgs, opts: pulumi.ComponentResourceOptions = {}) {
        super("kthw:index:ControllerManager", name, {}, opts);
        const { config, host, pki } = args;
        const healthz = `https://127.0.0.1:${CONTROLLER_MANAGER_PORT}/healthz`;
        this.daemon = installDaemon(this, name, {
            host,
            binary: kubernetesBinary(config, "kube-controller-manager"),
            files: [{ what: "kubeconfig", path: CONTROLLER_MANAGER_KUBECONFIG, mode: "0600",
                content: pki.controllerManagerKubeconfig, ownedDirs: [KUBERNETES_DIR] }],
            readsAlso: [pki.caCert, pki.caKey, pki.serviceAccountKey],
            service: { unitName: "kube-controller-manager", unitFileMode: unitFileMode(config) },
            unit: renderControllerManagerUnit(config),
            gate: {
                // Its serving certificate is self-signed, generated at start: only liveness is checked here.
                what: `kube-controller-manager on ${host.name} to answer ${healthz}`,
                probe: `[ "$(curl -fsSk --max-time 5 ${healthz} 2>/dev/null)" = ok ]`,
                diagnose: unitDiagnosis("kube-controller-manager"),
            },
            gateTimeoutSeconds: config.healthTimeoutSeconds,
            rollAfter: args.rollAfter,
            startAfter: args.api,
        }, opts.dependsOn);
        this.registerOutputs({ fingerprint: this.daemon.fingerprint });
    }
}
