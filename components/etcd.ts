// An etcd member on one control node (seed: "Installing etcd"): binaries, /etc/etcd certificates, the data
// dir, the unit, started without blocking; `EtcdClusterHealth` then waits until every member is healthy.
import * as pulumi from "@pulumi/pulumi";
import { etcdBinaries } from "./artifacts";
import { ClusterConfig, Machine, versionParts } from "./config";
import { initialCluster, Joiner, MemberJoin, memberAddLines, promotionProbe } from "./membership";
import { PkiFiles } from "./pki";
import { etcdServiceEntries, etcdUser, pkiFileMode, profileFlags, systemUserScripts, unitFileMode } from "./profile";
import { flags, renderServiceUnit, withExtraArgs } from "./render/systemd";
import { DaemonSpec, installDaemon, restartFingerprint } from "./remote/daemon";
import { fingerprint } from "./remote/fingerprint";
import { Host } from "./remote/host";
import { asList, childOptions } from "./remote/options";
import { shq, script } from "./remote/shell";
import { dataDirectory, directoryScripts, healthGate, remoteStep, StepScripts } from "./remote/steps";

export const ETCD_CONFIG_DIR = "/etc/etcd";
export const ETCD_DATA_DIR = "/var/lib/etcd";
const CA = `${ETCD_CONFIG_DIR}/ca.pem`;
const CERT = `${ETCD_CONFIG_DIR}/kubernetes.pem`;
const KEY = `${ETCD_CONFIG_DIR}/kubernetes-key.pem`;

/** The ports a member listens on: for its clients (the API servers, etcdctl), and for its peers. */
export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;
export const peerUrl = (node: Machine) => `https://${node.address}:${ETCD_PEER_PORT}`;
export const clientUrl = (node: Machine) => `https://${node.address}:${ETCD_CLIENT_PORT}`;

/**
 * The port of a member's HTTP endpoints apart from its client port (`etcdClientHttpPort`), where the release
 * has `--listen-client-http-urls` (etcd 3.5.8 and later); undefined: the seed's one port for gRPC and HTTP.
 */
export function etcdHttpPort(config: ClusterConfig): number | undefined {
    const [major, minor, patch] = versionParts(config.etcdVersion);
    const hasFlag = major > 3 || (major === 3 && (minor > 5 || (minor === 5 && patch >= 8)));
    return config.etcdClientHttpPort > 0 && hasFlag ? config.etcdClientHttpPort : undefined;
}

/** How a member of a new cluster starts: every node, state `new` (the seed's flags). */
export function bootstrapJoin(config: ClusterConfig): MemberJoin {
    return { initialCluster: initialCluster(config.nodes), state: "new" };
}

/**
 * The seed's etcd.service for one member, its HTTP endpoints on a port of their own (`etcdHttpPort`). `join`
 * gives `--initial-cluster` and `--initial-cluster-state`, which etcd reads only on a member's first start
 * (components/membership.ts): the seed's for a new cluster.
 */
export function renderEtcdUnit(config: ClusterConfig, node: Machine, join: MemberJoin = bootstrapJoin(config)): string {
    const httpPort = etcdHttpPort(config);
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
                ["listen-client-urls", `${clientUrl(node)},https://127.0.0.1:${ETCD_CLIENT_PORT}`],
                // The client port serves gRPC alone, which etcd then stops gracefully (etcdClientHttpPort).
                ...(httpPort === undefined ? [] :
                    [["listen-client-http-urls", `https://${node.address}:${httpPort},https://127.0.0.1:${httpPort}`] as [string, string]]),
                ["advertise-client-urls", clientUrl(node)],
                ["initial-cluster-token", config.etcdClusterToken],
                ["initial-cluster", join.initialCluster],
                ["initial-cluster-state", join.state],
                ["data-dir", ETCD_DATA_DIR],
            ]), config.etcdExtraArgs)),
        },
    });
}

/** Where `restoreFrom` waits on each node (components/backup.ts copies it there). */
export const RESTORE_SNAPSHOT = "/var/tmp/kthw-etcd-restore.db";

/** A restore: the snapshot's sha256 (checked on the node) and the restored cluster's new token. */
export interface RestoreSpec {
    sha256: string;
    /** --initial-cluster-token of the restored cluster: new, so no member of the old one can ever join it. */
    token: string;
}

/**
 * The member's data dir: created empty, or with a restore, filled from the snapshot by `etcdutl snapshot
 * restore` under the member's own name and peer URL, with the members it started with (into a temp dir, then
 * moved into place). A restore only fills an empty data dir: a member that holds data fails with what to do.
 * Its delete removes both.
 */
export function etcdDataDirScripts(config: ClusterConfig, node: Machine, restore?: RestoreSpec,
    join: MemberJoin = bootstrapJoin(config)): StepScripts {
    const plain = directoryScripts({ path: ETCD_DATA_DIR, mode: "0700" });
    if (!restore) {
        return plain;
    }
    const dir = shq(ETCD_DATA_DIR);
    return {
        create: script(
            `# restore etcd from the snapshot with sha256 ${restore.sha256}`,
            `if [ -d ${ETCD_DATA_DIR}/member ]; then`,
            `  echo "$(hostname): ${ETCD_DATA_DIR} already holds etcd data: restoreFrom restores only a new stack ` +
                `(destroy the old cluster first, or unset control-plane:restoreFrom)" >&2`,
            `  exit 1`,
            `fi`,
            `[ -f ${RESTORE_SNAPSHOT} ] || { echo "$(hostname): no snapshot at ${RESTORE_SNAPSHOT} to restore" >&2; exit 1; }`,
            `[ "$(sha256sum ${RESTORE_SNAPSHOT} | cut -d' ' -f1)" = ${shq(restore.sha256)} ] ||`,
            `  { echo "$(hostname): ${RESTORE_SNAPSHOT} is not the snapshot restoreFrom names" >&2; exit 1; }`,
            `command -v etcdutl >/dev/null || { echo "$(hostname): etcdutl is not installed" >&2; exit 1; }`,
            `work=$(mktemp -d /var/lib/kthw-etcd-restore.XXXXXX)`,
            `trap 'rm -rf "$work"' EXIT`,
            `etcdutl snapshot restore ${RESTORE_SNAPSHOT} --name ${shq(node.name)} ` +
                `--initial-cluster ${shq(join.initialCluster)} --initial-cluster-token ${shq(restore.token)} ` +
                `--initial-advertise-peer-urls ${shq(peerUrl(node))} --data-dir "$work/etcd"`,
            `rmdir ${dir} 2>/dev/null || true`,
            `mv "$work/etcd" ${dir}`,
            `chmod 0700 ${dir}`,
            `rm -f ${RESTORE_SNAPSHOT}`,
            `echo "$(hostname): etcd restored into ${ETCD_DATA_DIR} as member ${node.name}"`,
        ),
        delete: script(`rm -rf ${dir}`, `rm -f ${RESTORE_SNAPSHOT}`),
    };
}

/** etcdctl with a member's certificate against the given members' client URLs (or an endpoints expression). */
export function etcdctlAt(members: Machine[] | string): string {
    const endpoints = typeof members === "string" ? members : members.map(clientUrl).join(",");
    return `ETCDCTL_API=3 etcdctl --endpoints=${endpoints} --cacert=${CA} --cert=${CERT} --key=${KEY}`;
}

/** etcdctl against the local member with the member's own certificate, as the seed runs it. */
export const ETCDCTL = etcdctlAt(`https://127.0.0.1:${ETCD_CLIENT_PORT}`);
/** A shell function `etcd_ctl` that runs ETCDCTL with its arguments: the one line every etcd script starts with. */
export const ETCD_CTL_FUNCTION = `etcd_ctl() { ${ETCDCTL} "$@"; }`;

/**
 * The cluster is healthy: every endpoint answers a health check (a linearizable read through each member,
 * so a member that answers has caught up with the leader) and at least `count` members are started (more while
 * healthy members that leave are still in: they leave once the API servers have rolled, components/membership.ts).
 */
export function clusterHealth(count: number): { setup: string[]; probe: string; diagnose: string } {
    return {
        setup: [
            ETCD_CTL_FUNCTION,
            `healthy() {`,
            `  etcd_ctl endpoint health --cluster >/dev/null 2>&1 &&`,
            `    [ "$(etcd_ctl member list 2>/dev/null | grep -c ', started, ')" -ge ${count} ]`,
            `}`,
        ],
        probe: "healthy",
        diagnose: `{ etcd_ctl member list; etcd_ctl endpoint health --cluster; systemctl status --no-pager etcd; }`,
    };
}

/**
 * Before a member restarts for a change: if it leads, it hands leadership to `preferred` (the member that
 * restarted just before it, so no later restart in the roll moves it again), else to another started voter,
 * and waits (bounded) until it no longer leads. A roll then changes leaders once at most, where a leader
 * left to stop would pick its own successor, possibly one still due to restart. Each change of leader can
 * fail a quorum read that is in flight: kube-apiserver answers etcd's "leader changed" with a 500
 * (kubernetes/kubernetes#112152), so the fewer the better. A member that cannot hand over restarts anyway:
 * etcd's own shutdown hands leadership over too.
 */
export function leaderHandoff(preferred?: string): string[] {
    return [
        ETCD_CTL_FUNCTION,
        // endpoint status: endpoint, ID, version, db size, is leader, ...; member list: ID, status, name, ...
        // Best effort: a member that does not answer (its key just changed owner under it) restarts anyway.
        `self=$({ etcd_ctl endpoint status 2>/dev/null || true; } | awk -F', ' '$5 == "true" {print $2}')`,
        `if [ -n "$self" ]; then`,
        `  target=$({ etcd_ctl member list 2>/dev/null || true; } | awk -F', ' -v self="$self" -v preferred=${shq(preferred ?? "")} \\`,
        `    '$2 == "started" && $6 != "true" && $1 != self { if ($3 == preferred) { p = $1 } else if (o == "") { o = $1 } }`,
        `     END { print (p != "" ? p : o) }')`,
        `  if [ -n "$target" ] && etcd_ctl move-leader "$target" >/dev/null 2>&1; then`,
        `    echo "etcd on $(hostname) handed its leadership to member $target"`,
        `  fi`,
        `fi`,
    ];
}

/** What a member reads: its binaries, certificates and unit; a change to any of them restarts it. */
export function etcdDaemonFiles(config: ClusterConfig, node: Machine, pki: PkiFiles,
    join?: MemberJoin): Pick<DaemonSpec, "binary" | "files" | "unit"> {
    const file = (what: string, path: string, mode: string, content: pulumi.Input<string>) =>
        ({ what, path, mode: pkiFileMode(config, mode), content, ownedDirs: [ETCD_CONFIG_DIR], ...etcdOwner(config) });
    return {
        binary: etcdBinaries(config),
        files: [
            file("ca", CA, "0644", pki.caCert),
            file("cert", CERT, "0644", pki.kubernetesCert),
            file("key", KEY, "0600", pki.kubernetesKey),
        ],
        unit: renderEtcdUnit(config, node, join),
    };
}

/** Hardened: etcd runs as its own user, who owns the data dir and its /etc/etcd files. */
function etcdOwner(config: ClusterConfig): { owner?: string } {
    const user = etcdUser(config);
    return user === undefined ? {} : { owner: `${user}:${user}` };
}

/**
 * Changes exactly when some member will restart, join or be removed (every member's restart fingerprint, as
 * its service step carries it): the snapshot before a change is due then, and only then.
 */
export function etcdMembersFingerprint(config: ClusterConfig, pki: PkiFiles, joins: Record<string, MemberJoin>): pulumi.Output<string> {
    // A change of members changes the certificate's SANs, and so every kept member's fingerprint.
    return fingerprint(config.nodes.map(node => restartFingerprint(etcdDaemonFiles(config, node, pki, joins[node.name]))));
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
    /** The previous member's name: a leader hands its leadership to it before it restarts (leaderHandoff). */
    handOffTo?: string;
    /** Restore the data dir from `restoreFrom` (copied to the node by a step in dependsOn). */
    restore?: RestoreSpec;
    /** The unit's first-start flags (components/membership.ts); default: the seed's, a member of a new cluster. */
    join?: MemberJoin;
    /** Set for a member that joins (or joined) a running cluster: its create adds it as a learner, starts it and promotes it. */
    joiner?: Joiner;
}

export class EtcdMember extends pulumi.ComponentResource {
    /** The running service; its fingerprint changes whenever the member restarts. */
    readonly service: pulumi.Resource;
    readonly fingerprint: pulumi.Output<string>;
    readonly clientUrl: string;
    /** The member's name (its node's). */
    readonly memberName: string;

    constructor(name: string, args: EtcdMemberArgs, opts: pulumi.ComponentResourceOptions = {}) {
        super("kthw:index:EtcdMember", name, {}, opts);
        const { config, host, pki } = args;
        // A change reaches this member's steps once the previous member is back (see rolling.ts).
        const inTurn = [...asList(opts.dependsOn), ...(args.rollAfter ? [args.rollAfter] : [])];
        // Hardened: etcd's user is made first (see etcdOwner).
        const user = etcdUser(config);
        const deps = user === undefined ? inTurn : [...inTurn, remoteStep(`${name}-user`,
            { host, scripts: systemUserScripts(user, ETCD_DATA_DIR, [ETCD_DATA_DIR, ETCD_CONFIG_DIR]) }, childOptions(this, inTurn))];
        // Without a restore the seed's step exactly; a restore needs etcdutl, so it follows the binary step.
        const restore = args.restore;
        const dataDir = (binary?: pulumi.Resource) => restore
            ? remoteStep(`${name}-data-dir`, { host, scripts: etcdDataDirScripts(config, host, restore, args.join) },
                childOptions(this, deps, ...(binary ? [binary] : [])))
            : dataDirectory(`${name}-data-dir`, host, { path: ETCD_DATA_DIR, mode: "0700", ...etcdOwner(config) },
                childOptions(this, deps));
        // A change restarts a member of the whole cluster; a join waits for the members it joins.
        const members = config.nodes.length;
        const health = clusterHealth(members);
        const joiner = args.joiner;
        const daemon = installDaemon(this, name, {
            host,
            ...etcdDaemonFiles(config, host, pki, args.join),
            service: {
                unitName: "etcd", noBlock: true, unitFileMode: unitFileMode(config),
                beforeChange: leaderHandoff(args.handOffTo),
                // Joining a running cluster: added as a learner before it starts, promoted once caught up.
                ...(joiner ? {
                    beforeStart: memberAddLines(joiner, config.healthTimeoutSeconds),
                    afterStart: {
                        what: `etcd on ${host.name} to join, catch up and be promoted, and all ${joiner.members.length} members healthy`,
                        setup: [...promotionProbe(joiner).setup, ...clusterHealth(joiner.members.length).setup],
                        probe: `{ ${promotionProbe(joiner).probe} && ${clusterHealth(joiner.members.length).probe}; }`,
                        timeoutSeconds: config.healthTimeoutSeconds,
                        diagnose: health.diagnose,
                    },
                } : {}),
            },
            gateTimeoutSeconds: config.healthTimeoutSeconds,
            afterChange: {
                what: `etcd on ${host.name} to be back and all ${members} members healthy`,
                ...health,
            },
            rollAfter: args.rollAfter,
            before: restore ? (binary: pulumi.Resource) => [dataDir(binary)] : [dataDir()],
        }, deps);
        this.service = daemon.service;
        this.fingerprint = daemon.fingerprint;
        this.clientUrl = clientUrl(host);
        this.memberName = host.name;
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
