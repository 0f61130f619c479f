// Membership: the etcd cluster follows the `nodes` list, one member at a time, never losing quorum.
//
// Each deployment records, as the stack output `etcdMembership`, every member's address and the
// `--initial-cluster` and `--initial-cluster-state` its unit was written with; the next run reads it back
// (through the same reference to this very stack as the drift markers) and plans against it:
//
// - kept nodes (in the record and in `nodes`) keep their recorded flags: etcd reads them only on a member's
//   first start, so a membership change never rewrites, and never restarts, a member's unit for their sake;
// - leaving nodes (in the record, not in `nodes`) leave the load balancer first: it drains them (weight 0) and
//   drops them (components/loadBalancer.ts). Their members leave the cluster (`EtcdDepartures`: `member
//   remove` through a kept member, a leader handing its leadership over first) in two steps: before any member
//   joins or restarts, the dead ones (a roll must never count a dead member in its quorum), or all of them when
//   nodes join in the same up (a joining member's `--initial-cluster` must be the cluster as it is); the rest
//   once every API server has rolled to the new `--etcd-servers` (a member removed while an API server still
//   uses it fails the requests in flight to it). What runs on them is deleted at the end of the up, after
//   that, as `destroy` deletes it. A dead member is removed by the others: nothing reaches it;
// - joining nodes (in `nodes`, not in the record) join one at a time, before any kept member restarts:
//   each is added as a learner (`member add --learner`), starts with `--initial-cluster-state existing`
//   and the cluster as it is then, and is promoted once it has caught up (components/etcd.ts);
// - a change whose kept members are not a majority of the recorded ones (3 to 1, 2 of 3 removed at once) is
//   refused before any resource: the kept members alone must be able to commit the removals, even if every
//   leaving node is already gone.
//
// A new stack (no record) bootstraps every node at once with the seed's flags.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { CONFIG_NAMESPACE, ClusterConfig, Machine } from "./config";
import { clientUrl, etcdctlAt, peerUrl } from "./etcd";
import { SshAccess } from "./remote/host";
import { childOptions } from "./remote/options";
import { script, shq, waitUntil } from "./remote/shell";
import { localSshLines, onHostAsRoot, sshLocalStep, sshSettings } from "./remote/ssh";
import { refusal } from "./traces";

/** How a member's etcd was (or will be) first started: its unit's `--initial-cluster` and `--initial-cluster-state`. */
export interface MemberJoin {
    initialCluster: string;
    state: "new" | "existing";
}

/** One member of the recorded membership. */
export interface MemberRecord extends MemberJoin {
    address: string;
}

/** The stack output `etcdMembership`: every member by name. */
export type MembershipRecord = Record<string, MemberRecord>;

/** A node that joins a running cluster: the members it joins (itself included), in `nodes` order. */
export interface Joiner extends Machine {
    members: Machine[];
}

export interface MembershipPlan {
    /** Every node's unit flags, by name. */
    joins: Record<string, MemberJoin>;
    /** Nodes that join the running cluster, in `nodes` order. */
    joining: Joiner[];
    /** Recorded members that are no longer in `nodes`. */
    leaving: Machine[];
    /** Recorded members that stay. */
    kept: Machine[];
    /** The order members change in: the joining ones first, then the kept ones (`nodes` order within each). */
    order: Machine[];
    /** This deployment's record. */
    record: MembershipRecord;
    /** No earlier deployment: every member starts a new cluster (and `restoreFrom`, if set, restores it). */
    newCluster: boolean;
}

/** `--initial-cluster`: every member by name and peer URL. */
export function initialCluster(members: Machine[]): string {
    return members.map(n => `${n.name}=${peerUrl(n)}`).join(",");
}

/** The members a stack deployed before membership records had: its etcd service steps' drift markers. */
function membersFromMarkers(markers: Record<string, string> | undefined): string[] | undefined {
    if (markers === undefined) {
        return undefined;
    }
    return Object.keys(markers).map(k => /^etcd-(.+)-service$/.exec(k)?.[1]).filter((n): n is string => n !== undefined);
}

/**
 * Plans the change from the last deployment's membership to `nodes`, or throws an error naming the key and
 * what to do instead. `previous` is the last record; `previousMarkers` the last drift markers (a stack
 * deployed before records existed has those only).
 */
export function planMembership(config: ClusterConfig, previous?: MembershipRecord,
    previousMarkers?: Record<string, string>): MembershipPlan {
    const key = `${CONFIG_NAMESPACE}:nodes`;
    const bootstrap: MemberJoin = { initialCluster: initialCluster(config.nodes), state: "new" };
    const record = (joins: Record<string, MemberJoin>): MembershipRecord => Object.fromEntries(
        config.nodes.map(n => [n.name, { address: n.address, ...joins[n.name] }]));
    const everyoneBootstraps = (newCluster: boolean): MembershipPlan => {
        const joins = Object.fromEntries(config.nodes.map(n => [n.name, bootstrap]));
        return { joins, joining: [], leaving: [], kept: [...config.nodes], order: [...config.nodes], record: record(joins), newCluster };
    };
    if (previous === undefined || Object.keys(previous).length === 0) {
        const legacy = membersFromMarkers(previousMarkers);
        if (legacy === undefined || legacy.length === 0) {
            return everyoneBootstraps(true);
        }
        const names = config.nodes.map(n => n.name);
        if (legacy.length !== names.length || !legacy.every(n => names.includes(n))) {
            throw refusal(`${key}: this stack was deployed before the program recorded etcd's membership, ` +
                `with members ${[...legacy].sort().join(", ")}; run \`pulumi up\` once with those nodes unchanged, then change them`);
        }
        return everyoneBootstraps(false);
    }

    const errors: string[] = [];
    const recorded = Object.keys(previous);
    const kept = config.nodes.filter(n => previous[n.name] !== undefined);
    const leaving = recorded.filter(name => !config.nodes.some(n => n.name === name))
        .map(name => ({ name, address: previous[name].address }));
    for (const node of kept) {
        if (previous[node.name].address !== node.address) {
            errors.push(`${key}: ${node.name}'s address changed from ${previous[node.name].address} to ${node.address}: ` +
                `an etcd member cannot move; remove ${node.name} in one \`pulumi up\` and add it back in another`);
        }
    }
    const quorum = Math.floor(recorded.length / 2) + 1;
    if (kept.length < quorum) {
        errors.push(`${key}: removes ${leaving.map(n => n.name).join(", ")} of the ${recorded.length} etcd members at once: ` +
            `the ${kept.length} kept (${kept.map(n => n.name).join(", ") || "none"}) are not a majority of ${recorded.length}, ` +
            `so etcd would lose quorum if the ones removed are down; keep at least ${quorum} of them in this \`pulumi up\` ` +
            `and remove the rest in another`);
    }
    for (const gone of leaving) {
        const taken = config.nodes.find(n => n.address === gone.address && previous[n.name] === undefined);
        if (taken) {
            errors.push(`${key}: ${taken.name} takes the address of ${gone.name}, which leaves in the same \`pulumi up\`: ` +
                `remove ${gone.name} first, then add ${taken.name} in another`);
        }
    }
    if (errors.length > 0) {
        throw refusal(`refused before any change:\n${errors.map(e => `  - ${e}`).join("\n")}`);
    }

    const joins: Record<string, MemberJoin> = {};
    kept.forEach(n => { joins[n.name] = { initialCluster: previous[n.name].initialCluster, state: previous[n.name].state }; });
    const joining: Joiner[] = [];
    const inCluster = new Set(kept.map(n => n.name));
    for (const node of config.nodes.filter(n => previous[n.name] === undefined)) {
        inCluster.add(node.name);
        const members = config.nodes.filter(n => inCluster.has(n.name));
        joins[node.name] = { initialCluster: initialCluster(members), state: "existing" };
        joining.push({ ...node, members });
    }
    return { joins, joining, leaving, kept, order: [...joining, ...kept], record: record(joins), newCluster: false };
}

/**
 * A member that joined a running cluster (`--initial-cluster-state existing`), with the members it joined:
 * its service's create adds it as a learner and promotes it. Read from its flags, so the step stays the same
 * in every later run; undefined for a member of a new cluster.
 */
export function joinerOf(node: Machine, join: MemberJoin): Joiner | undefined {
    if (join.state !== "existing") {
        return undefined;
    }
    const members = join.initialCluster.split(",").map(entry => {
        const at = entry.indexOf("=");
        return { name: entry.slice(0, at), address: new URL(entry.slice(at + 1)).hostname };
    });
    return { ...node, members };
}

/** The shell function `peers_ctl`: etcdctl against the members a node joins, itself left out (its etcd is not up yet). */
function peersCtlFunction(joiner: Joiner): string {
    return `peers_ctl() { ${etcdctlAt(joiner.members.filter(m => m.name !== joiner.name))} "$@"; }`;
}

/**
 * The lines (on the joining node, before its etcd first starts) that add it to the cluster as a learner, once.
 * etcd refuses an add until every member has been connected to the others for a while ("unhealthy cluster"),
 * as just after another member joined: the add is retried, bounded.
 */
export function memberAddLines(joiner: Joiner, timeoutSeconds: number): string[] {
    return [
        peersCtlFunction(joiner),
        // member list: ID, status, name, peer URLs, client URLs, is learner.
        `listed() { peers_ctl member list 2>/dev/null | awk -F', ' -v peer=${shq(peerUrl(joiner))} '$4 == peer {found = 1} END {exit !found}'; }`,
        `added() { listed || { peers_ctl member add ${shq(joiner.name)} --peer-urls=${shq(peerUrl(joiner))} --learner >/dev/null 2>&1 &&`,
        `  echo "etcd member ${joiner.name} added to the cluster as a learner"; }; }`,
        `if [ -d /var/lib/etcd/member ]; then`,
        `  echo "etcd on $(hostname) holds data already: joined before"`,
        `else`,
        ...waitUntil(`the cluster to take ${joiner.name} as a learner (etcdctl member add --learner)`, "added", timeoutSeconds,
            "peers_ctl member list").map(line => `  ${line}`),
        `fi`,
    ];
}

/**
 * The bounded poll after a joining member's first start: once it has caught up, it is promoted (etcd refuses
 * to promote a learner that lags), and then the cluster is healthy with all its members started.
 */
export function promotionProbe(joiner: Joiner): { setup: string[]; probe: string } {
    return {
        setup: [
            peersCtlFunction(joiner),
            `promoted() {`,
            `  local row`,
            `  row=$(peers_ctl member list 2>/dev/null | awk -F', ' -v peer=${shq(peerUrl(joiner))} '$4 == peer')`,
            `  [ -n "$row" ] || return 1`,
            `  case "$row" in`,
            `    *", false") return 0 ;;`,
            `    *", true") peers_ctl member promote "\${row%%,*}" >/dev/null 2>&1 && echo "etcd member ${joiner.name} promoted to a voting member"; return 1 ;;`,
            `  esac`,
            `  return 1`,
            `}`,
        ],
        probe: "promoted",
    };
}

/**
 * Where `pulumi` runs, over SSH: waits until the gateway's IPVS holds the leaving nodes at weight 0 or no
 * longer lists them (the load balancer drains them first), then, on a kept member, removes each leaving member that is
 * still listed (a leader hands its leadership to that kept member first; with "unhealthy", only those whose
 * own endpoint fails its health check) and waits until the members that stay are all started and healthy.
 */
export function departureScript(config: ClusterConfig, leaving: Machine[], via: Machine, gateway: Machine,
    which: DepartureWhich, ssh: Parameters<typeof localSshLines>[0]): string {
    const virtual = `${config.vip}:${config.apiPort}`;
    // Drained (weight 0: the load balancer's drain step) or already dropped: no new request reaches them.
    const gatewayScript = script(
        `drained() { ipvsadm -Ln -t ${virtual} | awk -v reals=${shq(` ${leaving.map(n => `${n.address}:${config.apiPort}`).join(" ")} `)} \\`,
        `  '$1 == "->" && index(reals, " " $2 " ") > 0 && $4 != 0 {busy = 1} END {exit busy}'; }`,
        ...waitUntil(`the load balancer to drain ${leaving.map(n => n.name).join(", ")}`, "drained",
            config.healthTimeoutSeconds, "ipvsadm -Ln"));
    const all = [via, ...leaving];
    const memberScript = script(
        `etcd_ctl() { ${etcdctlAt([via])} "$@"; }`,
        `all_ctl() { ${etcdctlAt(all)} "$@"; }`,
        `self=$(etcd_ctl endpoint status | awk -F', ' '{print $2}')`,
        `[ -n "$self" ] || { echo "etcd on $(hostname) does not answer: no member can be removed through it" >&2; exit 1; }`,
        `for entry in ${leaving.map(n => shq(`${n.name} ${peerUrl(n)} ${clientUrl(n)}`)).join(" ")}; do`,
        `  read -r name peer client <<<"$entry"`,
        `  id=$(etcd_ctl member list | awk -F', ' -v peer="$peer" '$4 == peer {print $1}')`,
        `  if [ -z "$id" ]; then echo "etcd member $name has left already"; continue; fi`,
        ...(which === "unhealthy" ? [
            `  if ${etcdctlAt('"$client"')} endpoint health >/dev/null 2>&1; then`,
            `    echo "etcd member $name is healthy: it leaves once the API servers no longer use it"`,
            `    continue`,
            `  fi`,
        ] : []),
        // endpoint status: endpoint, ID, version, db size, is leader, ...
        `  if { all_ctl endpoint status 2>/dev/null || true; } | awk -F', ' -v id="$id" '$2 == id && $5 == "true" {found = 1} END {exit !found}'; then`,
        `    all_ctl move-leader "$self" >/dev/null && echo "etcd member $name handed its leadership to $(hostname)"`,
        `  fi`,
        `  etcd_ctl member remove "$id" >/dev/null`,
        `  echo "etcd member $name ($id) removed from the cluster"`,
        `done`,
        ...waitUntil(`the etcd members that stay to be started and healthy`,
            `{ etcd_ctl endpoint health --cluster >/dev/null 2>&1 && ! etcd_ctl member list | grep -q ', unstarted, '; }`,
            config.healthTimeoutSeconds, "{ etcd_ctl member list; etcd_ctl endpoint health --cluster; }"),
    );
    return script(
        `# etcd members leaving (${which}): ${leaving.map(n => `${n.name} (${n.address})`).join(", ")}`,
        ...localSshLines(ssh),
        onHostAsRoot(gateway, gatewayScript, "KTHW_GATEWAY_SCRIPT"),
        onHostAsRoot(via, memberScript, "KTHW_MEMBER_SCRIPT"),
    );
}

/**
 * Which leaving members a departure step removes: "all" (before any member joins: a joining member's
 * `--initial-cluster` counts none of them), "unhealthy" (before any member restarts: a roll must not count a dead
 * member in its quorum; a healthy one stays until the API servers no longer use it, so that no request in flight
 * to it fails), or "rest" (after the API servers have rolled).
 */
export type DepartureWhich = "all" | "unhealthy" | "rest";

export interface EtcdDeparturesArgs {
    config: ClusterConfig;
    ssh: SshAccess;
    /** Recorded members no longer in `nodes`. */
    leaving: Machine[];
    /** A kept member, through which the others are removed. */
    via: Machine;
    which: DepartureWhich;
}

/** The members of leaving nodes leave the cluster, once the load balancer has dropped them: see the top of this file. */
export class EtcdDepartures extends pulumi.ComponentResource {
    readonly step: command.local.Command;

    constructor(name: string, args: EtcdDeparturesArgs, opts: pulumi.ComponentResourceOptions = {}) {
        super("kthw:index:EtcdDepartures", name, {}, opts);
        const { config, ssh } = args;
        // A step of every deployment, so that none leaves a change behind: while no member leaves, it keeps
        // the script it last ran (ignoreChanges), and it runs again, as an update, when some member leaves.
        const none = args.leaving.length === 0;
        const text = none ? script(`echo ${shq(`no etcd member leaves (${args.which})`)}`)
            : departureScript(config, args.leaving, args.via, config.gateway, args.which, sshSettings(ssh));
        this.step = sshLocalStep(`${name}-member-remove`, ssh, { create: `bash -c ${shq(text)}` },
            { ...childOptions(this, opts.dependsOn), ignoreChanges: none ? ["create"] : [] });
        this.registerOutputs({});
    }
}
