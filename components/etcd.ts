// An etcd member on one control node (seed: "Installing etcd"): binaries, /etc/etcd certificates, the data
// dir, the unit, started without blocking; `EtcdClusterHealth` then waits until every member is healthy.
import * as pulumi from "@pulumi/pulumi";
import { etcdBinaries } from "./artifacts";
import { ClusterConfig, Machine } from "./config";
import { PkiFiles } from "./pki";
import { etcdServiceEntries, etcdUser, pkiFileMode, profileFlags, systemUserScripts, unitFileMode } from "./profile";
import { flags, renderServiceUnit, withExtraArgs } from "./render/systemd";
import { installDaemon } from "./remote/daemon";
import { fingerprint } from "./remote/fingerprint";
import { Host } from "./remote/host";
import { asList, childOptions } from "./remote/options";
import { dataDirectory, healthGate, remoteStep } from "./remote/steps";

export const ETCD_CONFIG_DIR = "/etc/etcd";
export const ETCD_DATA_DIR = "/var/lib/etcd";
const CA = `${ETCD_CONFIG_DIR}/ca.pem`;
const CERT = `${ETCD_CONFIG_DIR}/kubernetes.pem`;
const KEY = `${ETCD_CONFIG_DIR}/kubernetes-key.pem`;

export const peerUrl = (node: Machine) => `https://${node.address}:2380`;
export const clientUrl = (node: Machine) => `https://${node.address}:2379`;

/** `--initial-cluster`: every member by name and peer URL. */
export function initialCluster(config: ClusterConfig): string {
    return config.nodes.map(n => `${n.name}=${peerUrl(n)}`).join(",");
}

/** The seed's etcd.service for one member. */
export function renderEtcdUnit(config: ClusterConfig, node: Machine): string {
    return renderServiceUnit({
        description: "etcd",
        documentation: "https://github.com/coreos",
        serviceEntries: [["Type", "notify"], ["Environment", `ETCD_UNSUPPORTED_ARCH=${config.arch}`],
            ...etcdServiceEntries(config, ETCD_DATA_DIR)],
        execStart: {
            program: "/usr/local/bin/etcd",
            args: flags(withExtraArgs(profileFlags(config, "etcd", [
                ["name", node.name],
                ["cert-file", CERT],
                ["key-file", KEY],
                ["peer-cert-file", CERT],
                ["peer-key-file", KEY],
                ["trusted-ca-file", CA],
                ["peer-trusted-ca-file", CA],
                ["peer-client-cert-auth", true],
                ["client-cert-auth", true],
                ["initial-advertise-peer-urls", peerUrl(node)],
                ["listen-peer-urls", peerUrl(node)],
                ["listen-client-urls", `${clientUrl(node)},https://127.0.0.1:2379`],
                ["advertise-client-urls", clientUrl(node)],
                ["initial-cluster-token", config.etcdClusterToken],
                ["initial-cluster", initialCluster(config)],
                ["initial-cluster-state", "new"],
                ["data-dir", ETCD_DATA_DIR],
            ]), config.etcdExtraArgs)),
        },
    });
}

/** etcdctl against the local member with the member's own certificate, as the seed runs it. */
export const ETCDCTL = `ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert=${CA} --cert=${CERT} --key=${KEY}`;

/**
 * The cluster is healthy: every endpoint answers a health check (a linearizable read through each member,
 * so a member that answers has caught up with the leader) and `count` members are started.
 */
export function clusterHealth(count: number): { setup: string[]; probe: string; diagnose: string } {
    return {
        setup: [
            `etcd_ctl() { ${ETCDCTL} "$@"; }`,
            `healthy() {`,
            `  etcd_ctl endpoint health --cluster >/dev/null 2>&1 &&`,
            `    [ "$(etcd_ctl member list 2>/dev/null | grep -c ', started, ')" -eq ${count} ]`,
            `}`,
        ],
        probe: "healthy",
        diagnose: `{ etcd_ctl member list; etcd_ctl endpoint health --cluster; systemctl status --no-pager etcd; }`,
    };
}

export interface EtcdMemberArgs {
    /** The validated cluster config. */
    config: ClusterConfig;
    /** The control node this member runs on. */
    host: Host;
    /** Certificates: the CA and the kubernetes serving pair. */
    pki: PkiFiles;
    /**
     * The previous member's service: a change restarts one member at a time, each once the cluster is
     * healthy with the one before it back, so quorum is never lost. An empty stack starts them together.
     */
    rollAfter?: pulumi.Resource;
}

export class EtcdMember extends pulumi.ComponentResource {
    /** The running service; its fingerprint changes whenever the member restarts. */
    readonly service: pulumi.Resource;
    readonly fingerprint: pulumi.Output<string>;
    readonly clientUrl: string;

    constructor(name: string, args: EtcdMemberArgs, opts: pulumi.ComponentResourceOptions = {}) {
        super("kthw:index:EtcdMember", name, {}, opts);
        const { config, host, pki } = args;
        // Hardened: etcd runs as its own user, made first; it owns the data dir and its /etc/etcd files (0600).
        const user = etcdUser(config);
        const deps = user === undefined ? opts.dependsOn : [...asList(opts.dependsOn), remoteStep(`${name}-user`,
            { host, scripts: systemUserScripts(user, ETCD_DATA_DIR, [ETCD_DATA_DIR, ETCD_CONFIG_DIR]) }, childOptions(this, opts.dependsOn))];
        const owner = user === undefined ? {} : { owner: `${user}:${user}` };
        const dataDir = dataDirectory(`${name}-data-dir`, host, { path: ETCD_DATA_DIR, mode: "0700", ...owner },
            childOptions(this, deps));
        const file = (what: string, path: string, mode: string, content: pulumi.Input<string>) =>
            ({ what, path, mode: pkiFileMode(config, mode), content, ownedDirs: [ETCD_CONFIG_DIR], ...owner });
        const daemon = installDaemon(this, name, {
            host,
            binary: etcdBinaries(config),
            files: [
                file("ca", CA, "0644", pki.caCert),
                file("cert", CERT, "0644", pki.kubernetesCert),
                file("key", KEY, "0600", pki.kubernetesKey),
            ],
            service: { unitName: "etcd", noBlock: true, unitFileMode: unitFileMode(config) },
            unit: renderEtcdUnit(config, host),
            gateTimeoutSeconds: config.healthTimeoutSeconds,
            afterChange: {
                what: `etcd on ${host.name} to be back and all ${config.nodes.length} members healthy`,
                ...clusterHealth(config.nodes.length),
            },
            rollAfter: args.rollAfter,
            before: [dataDir],
        }, deps);
        this.service = daemon.service;
        this.fingerprint = daemon.fingerprint;
        this.clientUrl = clientUrl(host);
        this.registerOutputs({ fingerprint: this.fingerprint, clientUrl: this.clientUrl });
    }
}

export interface EtcdClusterHealthArgs {
    config: ClusterConfig;
    /** Where to ask: any member's host. */
    host: Host;
    /** Every member; the gate re-runs when any of them restarts. */
    members: EtcdMember[];
}

/**
 * Waits (bounded) until every member is started and healthy. Members are started concurrently and without
 * blocking, because a Type=notify etcd only reports ready once the cluster has quorum.
 */
export class EtcdClusterHealth extends pulumi.ComponentResource {
    readonly gate: pulumi.Resource;

    constructor(name: string, args: EtcdClusterHealthArgs, opts: pulumi.ComponentResourceOptions = {}) {
        super("kthw:index:EtcdClusterHealth", name, {}, opts);
        const count = args.config.nodes.length;
        this.gate = healthGate(`${name}-gate`, args.host, {
            what: `all ${count} etcd members to be started and healthy`,
            ...clusterHealth(count),
            timeoutSeconds: args.config.healthTimeoutSeconds,
        }, fingerprint(args.members.map(m => m.fingerprint)),
        childOptions(this, opts.dependsOn, ...args.members.map(m => m.service)));
        this.registerOutputs({});
    }
}
