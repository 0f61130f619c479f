// kube-apiserver on one control node (seed: "Installing kube-apiserver"): binary, /var/lib/kubernetes
// files, the unit with every flag from config, and a gate on https://127.0.0.1:6443/readyz. A restart for a
// change is drained through the gateway: the API server leaves the load balancer first, comes back once it
// answers, and only then may the next node's restart.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { kubernetesBinary } from "./artifacts";
import { ClusterConfig, Machine, versionParts } from "./config";
import { clientUrl } from "./etcd";
import { PkiFiles } from "./pki";
import { apiServerProfileFiles, pkiFileMode, profileFlags, unitFileMode } from "./profile";
import { flags, renderServiceUnit, withExtraArgs } from "./render/systemd";
import { realServerWeightLines } from "./loadBalancer";
import { Daemon, DaemonSpec, installDaemon, restartFingerprint, serviceScriptsForm, unitDiagnosis } from "./remote/daemon";
import { withDriftRepairs } from "./remote/drift";
import { fingerprint } from "./remote/fingerprint";
import { Host, SshAccess } from "./remote/host";
import { childOptions } from "./remote/options";
import { changeStep } from "./remote/rolling";

/** Where the control plane's certificates, keys and configs live on a control node. */
export const KUBERNETES_DIR = "/var/lib/kubernetes";
const k8s = (file: string) => `${KUBERNETES_DIR}/${file}`;
export const AUDIT_LOG = "/var/log/audit.log";

/**
 * How a stopping API server that was not drained (stopped by hand, a reboot) leaves the load balancer before
 * it stops listening: /readyz fails at once, it keeps serving for the delay (ldirectord's checks take it to
 * weight 0 meanwhile), then closes its watches within the same time rather than waiting 60 s for them to end
 * by themselves. A restart the program makes is drained through the gateway first and needs none of it.
 */
export function shutdownFlags(config: ClusterConfig): [string, string][] {
    const seconds = config.apiServerShutdownDelaySeconds;
    // The watch grace period is a flag since Kubernetes 1.27.
    const watchGrace = versionParts(config.kubernetesVersion)[1] >= 27;
    return seconds === 0 ? [] : [
        ["shutdown-delay-duration", `${seconds}s`],
        ...(watchGrace ? [["shutdown-watch-termination-grace-period", `${seconds}s`] as [string, string]] : []),
    ];
}

/**
 * etcd's client in kube-apiserver retries a read that a member answers `Unavailable` (a leader change, a stop)
 * unless APIServerTracing, beta and on by default from Kubernetes 1.27 and locked on from 1.34, replaces its
 * retrying interceptor with the tracing one (`etcdClientRetries`): the gate off where it can be.
 */
export function etcdClientRetryFlags(config: ClusterConfig): [string, string][] {
    const minor = versionParts(config.kubernetesVersion)[1];
    return config.etcdClientRetries && minor >= 27 && minor <= 33 ? [["feature-gates", "APIServerTracing=false"]] : [];
}

/** The seed's kube-apiserver.service for one node, with `etcdClientRetryFlags` and `shutdownFlags` last. */
export function renderApiServerUnit(config: ClusterConfig, node: Machine): string {
    return renderServiceUnit({
        description: "Kubernetes API Server",
        documentation: "https://github.com/kubernetes/kubernetes",
        execStart: {
            program: "/usr/local/bin/kube-apiserver",
            args: flags(withExtraArgs(profileFlags(config, "apiServer", [
                ["advertise-address", node.address],
                ["allow-privileged", "true"],
                ["apiserver-count", config.nodes.length],
                ["audit-log-maxage", 30],
                ["audit-log-maxbackup", 3],
                ["audit-log-maxsize", 100],
                ["audit-log-path", AUDIT_LOG],
                ["authorization-mode", "Node,RBAC"],
                ["bind-address", "0.0.0.0"],
                ["client-ca-file", k8s("ca.pem")],
                ["enable-admission-plugins",
                    "NamespaceLifecycle,NodeRestriction,LimitRanger,ServiceAccount,DefaultStorageClass,ResourceQuota"],
                ["etcd-cafile", k8s("ca.pem")],
                ["etcd-certfile", k8s("kubernetes.pem")],
                ["etcd-keyfile", k8s("kubernetes-key.pem")],
                ["etcd-servers", config.nodes.map(clientUrl).join(",")],
                ["event-ttl", "1h"],
                ["encryption-provider-config", k8s("encryption-config.yaml")],
                ["kubelet-certificate-authority", k8s("ca.pem")],
                ["kubelet-client-certificate", k8s("kubernetes.pem")],
                ["kubelet-client-key", k8s("kubernetes-key.pem")],
                ["runtime-config", "'api/all=true'"],
                ["service-account-key-file", k8s("service-account.pem")],
                ["service-account-signing-key-file", k8s("service-account-key.pem")],
                ["service-account-issuer", `https://${config.vip}:${config.apiPort}`],
                ["service-cluster-ip-range", config.serviceCidr],
                ["service-node-port-range", config.nodePortRange],
                ["tls-cert-file", k8s("kubernetes.pem")],
                ["tls-private-key-file", k8s("kubernetes-key.pem")],
                ...(config.apiPort === 6443 ? [] : [["secure-port", config.apiPort] as [string, number]]),
                ["v", config.logLevel],
                ...etcdClientRetryFlags(config),
                ...shutdownFlags(config),
            ]), config.apiServerExtraArgs)),
        },
    });
}

export interface ApiServerArgs {
    /** The validated cluster config. */
    config: ClusterConfig;
    /** The control node this API server runs on. */
    host: Host;
    /** The load balancer's host: it takes this node out before a restart and back in after it. */
    gateway: Host;
    /** How the drain reaches the gateway, over SSH from where `pulumi` runs. */
    ssh: SshAccess;
    /** CA, serving pair, service-account pair, encryption config. */
    pki: PkiFiles;
    /** The previous node's `rolled` step: a change restarts one API server at a time. */
    rollAfter?: pulumi.Resource;
    /**
     * The drain's gateway steps act when created (default: they do nothing then, on a first install): a stack
     * deployed before they existed gets them beside a running load balancer, maybe with a change in the same run.
     */
    drainOnCreate?: boolean;
}

export class ApiServer extends pulumi.ComponentResource {
    readonly daemon: Daemon;
    /** The control node it runs on. */
    readonly node: string;
    /** Passes once a restart for a change is over: healthy, and back in the load balancer. */
    readonly rolled: pulumi.Resource;
    /** Takes this node out of the load balancer before its restart for a change. */
    readonly drained: command.local.Command;

    constructor(name: string, args: ApiServerArgs, opts: pulumi.ComponentResourceOptions = {}) {
        super("kthw:index:ApiServer", name, {}, opts);
        const { config, host, pki } = args;
        this.node = host.name;
        const file = (what: string, path: string, mode: string, content: pulumi.Input<string>) =>
            ({ what, path: k8s(path), mode: pkiFileMode(config, mode), content, ownedDirs: [KUBERNETES_DIR] });
        const readyz = `https://127.0.0.1:${config.apiPort}/readyz`;
        const spec: DaemonSpec = {
            host,
            binary: kubernetesBinary(config, "kube-apiserver"),
            files: [
                file("ca", "ca.pem", "0644", pki.caCert),
                file("ca-key", "ca-key.pem", "0600", pki.caKey),
                file("cert", "kubernetes.pem", "0644", pki.kubernetesCert),
                file("key", "kubernetes-key.pem", "0600", pki.kubernetesKey),
                file("service-account-cert", "service-account.pem", "0644", pki.serviceAccountCert),
                file("service-account-key", "service-account-key.pem", "0600", pki.serviceAccountKey),
                file("encryption-config", "encryption-config.yaml", "0600", pki.encryptionConfig),
                ...apiServerProfileFiles(config).map(f => ({ ...f, mode: "0600", ownedDirs: [KUBERNETES_DIR] })),
            ],
            // The audit log is the API server's own output: it goes with the service.
            service: { unitName: "kube-apiserver", afterRemove: [`rm -f ${AUDIT_LOG} /var/log/audit-*.log`],
                unitFileMode: unitFileMode(config) },
            unit: renderApiServerUnit(config, host),
            gate: {
                what: `kube-apiserver on ${host.name} to answer ${readyz}`,
                probe: `[ "$(curl -fsS --max-time 5 --cacert ${k8s("ca.pem")} ${readyz} 2>/dev/null)" = ok ]`,
                diagnose: unitDiagnosis("kube-apiserver"),
            },
            gateTimeoutSeconds: config.healthTimeoutSeconds,
            rollAfter: args.rollAfter,
        };
        // Every restart the service step makes (a change, the repair of a hand edit, or a new version of the
        // program that renders its scripts otherwise) is drained: out of the load balancer first (after the
        // previous node is back in, and once this node's binary and files are in place: a failed download or
        // checksum leaves it serving), back in once it answers /readyz again. The step that brings it back
        // follows each run of the one that took it out (its output: when it ran, from bash's own clock rather than
        // a `date` process on the gateway), so a failed restart that is retried, or reverted, still ends with the
        // node back in.
        const restarts = withDriftRepairs(fingerprint([restartFingerprint(spec), serviceScriptsForm(spec)]), [`${name}-service`]);
        let drained!: command.local.Command;
        this.daemon = installDaemon(this, name, {
            ...spec, before: (binary, files) => [drained = changeStep(`${name}-out-of-load-balancer`, args.ssh, args.gateway, {
                what: `take ${host.name}'s API server out of the load balancer before it restarts`,
                lines: [...realServerWeightLines(config, host, 0), `echo "\${EPOCHREALTIME:-$(date +%s%N)}"`], onCreate: args.drainOnCreate,
            }, restarts, childOptions(this, opts.dependsOn, ...(args.rollAfter ? [args.rollAfter] : []), binary, ...files))],
        }, opts.dependsOn);
        this.drained = drained;
        this.rolled = changeStep(`${name}-in-load-balancer`, args.ssh, args.gateway, {
            what: `bring ${host.name}'s API server back into the load balancer once it answers`,
            lines: realServerWeightLines(config, host, 1), onCreate: args.drainOnCreate,
        }, fingerprint([this.drained.stdout]), childOptions(this, opts.dependsOn, this.daemon.service));
        this.registerOutputs({ fingerprint: this.daemon.fingerprint });
    }
}
