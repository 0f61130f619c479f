// The VIP in front of the API servers (seed: "Kubernetes API load balancer"): on each control node the VIP
// on `lo` with ARP kept quiet, on the gateway IPVS with direct routing run by ldirectord, which checks each
// API server's `lbHealthCheckPath` over HTTPS. The seed trusts the cluster CA system-wide for that, since
// ldirectord.cf cannot name a CA; ldirectord's checks are LWP requests, which take their CA file from
// PERL_LWP_SSL_CA_FILE, so the program gives ldirectord alone the CA through a unit drop-in: nothing else
// on the gateway trusts the cluster CA, and no `update-ca-certificates` runs (a minute under emulation).
// Everything is persisted by files and units the program owns, so a reboot brings it back, and `destroy`
// takes it away.
import * as pulumi from "@pulumi/pulumi";
import { ClusterConfig, Machine } from "./config";
import { PkiFiles } from "./pki";
import { renderServiceUnit } from "./render/systemd";
import { fingerprint } from "./remote/fingerprint";
import { Host, SshAccess } from "./remote/host";
import { childOptions } from "./remote/options";
import { script, shq } from "./remote/shell";
import { scriptOnHost, sshLocalStep, sshSettings } from "./remote/ssh";
import { GateSpec, localHealthGate, precondition, reloadIfStale, remoteFile, sshHealthGate, systemdService } from "./remote/steps";

export const ARP_SYSCTL_FILE = "/etc/sysctl.d/50-vip-arp.conf";
export const LDIRECTORD_CONFIG = "/etc/ha.d/ldirectord.cf";
/** The cluster CA, for ldirectord's HTTPS checks only. */
export const LDIRECTORD_CA_FILE = "/etc/ha.d/kubernetes-ca.pem";
export const LDIRECTORD_DROP_IN_DIR = "/etc/systemd/system/ldirectord.service.d";
export const LDIRECTORD_DROP_IN = `${LDIRECTORD_DROP_IN_DIR}/kubernetes-ca.conf`;
const LWP_CA_VARIABLE = "PERL_LWP_SSL_CA_FILE";
/** ldirectord's unit touches /var/lock/subsys/ldirectord and is marked failed when the folder is missing. */
export const SUBSYS_TMPFILES = "/etc/tmpfiles.d/ldirectord-subsys.conf";
export const VIP_UNIT = "kubernetes-vip";

/**
 * The gateway's IPVS settings, and the file that loads IPVS's module at boot (systemd-modules-load runs before
 * systemd-sysctl, which then finds the settings' keys).
 */
export const IPVS_SYSCTL_FILE = "/etc/sysctl.d/50-kubernetes-ipvs.conf";
export const IPVS_MODULES_FILE = "/etc/modules-load.d/kubernetes-ipvs.conf";

/**
 * A new connection whose client address and port match an old IPVS entry (a client port used again while the
 * entry lives: 15 minutes for one IPVS saw no end of, which in direct routing is any the server ended) is
 * scheduled afresh when that entry's real server is at weight 0, as a drained API server is, instead of being
 * sent to it as it restarts (refused). Connections in flight to a drained server go on. kube-proxy's IPVS mode
 * sets it too.
 */
export const IPVS_SYSCTLS: [string, string][] = [["net.ipv4.vs.expire_nodest_conn", "1"]];

/** /etc/sysctl.d/50-kubernetes-ipvs.conf on the gateway. */
export function renderIpvsSysctl(): string {
    return [
        "# A new connection is never sent to a drained (weight 0) API server by an old IPVS entry of its client port.",
        ...IPVS_SYSCTLS.map(([key, value]) => `${key} = ${value}`),
    ].join("\n") + "\n";
}

/** The seed's ARP settings: never answer or announce the VIP from a control node. */
export const ARP_SYSCTLS: [string, string][] = [["net.ipv4.conf.all.arp_announce", "2"], ["net.ipv4.conf.all.arp_ignore", "1"]];

/** The seed's /etc/sysctl.d/50-vip-arp.conf. */
export function renderArpSysctl(): string {
    return ARP_SYSCTLS.map(([key, value]) => `${key} = ${value}`).join("\n") + "\n";
}

/**
 * A oneshot unit that holds the VIP on an interface while it is active. On control nodes it applies the ARP
 * settings first (containers skip systemd-sysctl, so the unit does it), so the VIP is never announced.
 */
export function renderVipUnit(config: ClusterConfig, device: string, arpSysctlFile?: string): string {
    const address = `${config.vip}/32`;
    const deviceUnit = `sys-subsystem-net-devices-${device}.device`;
    return renderServiceUnit({
        description: `Kubernetes API virtual IP ${config.vip} on ${device}`,
        unitEntries: device === "lo"
            ? [["After", "network-pre.target"]]
            : [["BindsTo", deviceUnit], ["After", deviceUnit]],
        serviceEntries: [
            ["Type", "oneshot"],
            ["RemainAfterExit", "yes"],
            ...(arpSysctlFile ? [["ExecStartPre", `sysctl -p ${arpSysctlFile}`] as [string, string]] : []),
        ],
        execStart: { program: `ip addr replace ${address} dev ${device}`, args: [] },
        serviceTail: [["ExecStop", `-ip addr del ${address} dev ${device}`]],
    });
}

/** A drop-in for the packaged ldirectord unit: its HTTPS checks (LWP) trust the cluster CA file. */
export function renderLdirectordDropIn(): string {
    return ["[Service]", `Environment=${LWP_CA_VARIABLE}=${LDIRECTORD_CA_FILE}`].join("\n") + "\n";
}

/**
 * Before ldirectord takes a change by reload: a running ldirectord started without the CA variable (a stack
 * from before the drop-in) cannot get it by reload, so it restarts, once.
 */
export function ldirectordEnvironmentCheck(): string[] {
    return [
        `pid=$(systemctl show -p MainPID --value ldirectord)`,
        // grep -c reads all its input (grep -q could leave tr to a SIGPIPE, which pipefail takes for "absent").
        `if [ "\${pid:-0}" -gt 0 ] && [ "$(tr '\\0' '\\n' < "/proc/$pid/environ" | grep -cxF ${shq(`${LWP_CA_VARIABLE}=${LDIRECTORD_CA_FILE}`)})" -eq 0 ]; then`,
        `  echo "ldirectord runs without ${LWP_CA_VARIABLE}: restarting it once"`,
        `  systemctl restart ldirectord`,
        `fi`,
    ];
}

/**
 * The seed's /etc/ha.d/ldirectord.cf: one `real=` line per control node, HTTPS checks of `lbHealthCheckPath`
 * (the seed's /healthz, or /readyz, which a stopping API server fails while it still serves).
 */
export function renderLdirectordConfig(config: ClusterConfig): string {
    const port = config.apiPort;
    return [
        "checktimeout=5",
        "checkinterval=1",
        "autoreload=yes",
        "quiescent=yes",
        "",
        `virtual=${config.vip}:${port}`,
        `    servicename=${config.vipName}`,
        ...config.nodes.map(n => `    real=${n.address}:${port} gate`),
        "    scheduler=wrr",
        "    checktype=negotiate",
        "    service=https",
        `    request="${config.lbHealthCheckPath.replace(/^\//, "")}"`,
        `    receive="ok"`,
    ].join("\n") + "\n";
}

/** A bash function: `listed REAL` prints the real server's line in IPVS's table of the VIP (nothing when either is missing). */
function listedFunction(config: ClusterConfig): string {
    return `listed() { { ipvsadm -Ln -t ${config.vip}:${config.apiPort} 2>/dev/null || true; } | awk -v real="$1" '$1 == "->" && $2 == real'; }`;
}

/**
 * Takes one API server out of IPVS (weight 0: its connections go on, no new one reaches it) or brings it back
 * (weight 1), where IPVS lists it; nothing to do where it does not (no load balancer yet). Behind ldirectord's
 * back, which changes a weight only when a check's result changes: it takes the server to 0 if a check fails
 * meanwhile, and back to 1 once one passes again. One `ipvsadm` on the gateway in the usual case (each process
 * costs about 0.1 s on the lab's emulated gateway, and a roll runs this twice a node): IPVS's table is read
 * only when the edit fails, to tell "not listed" (nothing to do) from a real error (its message shown, the step
 * failed).
 */
export function realServerWeightLines(config: ClusterConfig, node: Machine, weight: 0 | 1): string[] {
    const real = `${node.address}:${config.apiPort}`;
    const who = `${node.name}'s API server (${real})`;
    const edit = `ipvsadm -e -t ${config.vip}:${config.apiPort} -r ${shq(real)} -g -w ${weight}`;
    return [
        listedFunction(config),
        `if failed=$(${edit} 2>&1); then`,
        `  echo ${shq(`${who} ${weight === 0 ? "out of" : "back in"} the load balancer: weight ${weight}`)}`,
        `elif [ -z "$(listed ${shq(real)})" ]; then`,
        `  echo ${shq(`${who} is not in the load balancer: nothing to do`)}`,
        `else`,
        `  echo "$failed" >&2`,
        `  exit 1`,
        `fi`,
    ];
}

/** The gateway's gate: every API server of the VIP at weight 1, as ldirectord holds one that passed its check. */
export function realServersGate(config: ClusterConfig): Omit<GateSpec, "fingerprint"> {
    const virtual = `${config.vip}:${config.apiPort}`;
    return {
        what: `ldirectord to hold all ${config.nodes.length} API servers of ${virtual} at weight 1`,
        probe: `ipvsadm -Ln -t ${virtual} | awk -v n=${config.nodes.length} '$1 == "->" && $4 == 1 { up++ } END { exit up != n }'`,
        timeoutSeconds: config.healthTimeoutSeconds,
        diagnose: `{ ipvsadm -Ln; tail -n 20 /var/log/ldirectord.log; }`,
    };
}

/** Seconds the drain of leaving API servers gives the connections IPVS lists for them to end before it goes on. */
export const LEAVING_DRAIN_SECONDS = 10;

/**
 * Drains leaving API servers before ldirectord.cf drops them: each still in IPVS gets weight 0 (no new
 * connection goes to it), then up to LEAVING_DRAIN_SECONDS for the connections IPVS lists for them to end, and
 * it goes on either way, saying how many are left. Waiting for none at all could last for ever: a client's
 * watch through the VIP (a kubelet's) lasts until the API server ends it, and in direct routing IPVS sees only
 * the clients' packets, so it lists for 15 minutes a connection the server ended. What is left ends with the
 * leaving API server's own shutdown, which serves on for `apiServerShutdownDelaySeconds` and closes its
 * watches (their clients come back through the VIP to the servers that stay). Reads nothing back.
 */
export function drainScript(config: ClusterConfig, leaving: Machine[], graceSeconds = LEAVING_DRAIN_SECONDS): string {
    const virtual = `${config.vip}:${config.apiPort}`;
    const reals = leaving.map(n => `${n.address}:${config.apiPort}`);
    const names = leaving.map(n => n.name).join(", ");
    return script(
        `# drain ${names} before ldirectord drops them`,
        listedFunction(config),
        `for real in ${reals.map(shq).join(" ")}; do`,
        `  if [ -n "$(listed "$real")" ]; then ipvsadm -e -t ${virtual} -r "$real" -g -w 0; echo "$real drained: weight 0"; fi`,
        `done`,
        `active() { local real; for real in ${reals.map(shq).join(" ")}; do listed "$real"; done | awk '{s += $5} END {print s + 0}'; }`,
        `echo ${shq(`waiting up to ${graceSeconds}s for the connections to ${names} to end`)}`,
        `deadline=$((SECONDS + ${graceSeconds}))`,
        `while [ "$(active)" -gt 0 ] && ((SECONDS < deadline)); do sleep 0.5; done`,
        `left=$(active)`,
        `if [ "$left" -eq 0 ]; then`,
        `  echo ${shq(`no connection to ${names} left`)}`,
        `else`,
        `  echo "$left connections to ${names} still listed by IPVS after ${graceSeconds}s (watches, or ones whose end it did not see): their API servers' shutdown ends them"`,
        `fi`,
    );
}

export interface IpvsLoadBalancerArgs {
    /** The validated cluster config. */
    config: ClusterConfig;
    /** Control nodes: each gets the VIP on `lo`. */
    nodes: Host[];
    /** The gateway: IPVS, ldirectord and the VIP on its NIC. */
    gateway: Host;
    /** How the drain of leaving nodes reaches the gateway, over SSH from where `pulumi` runs. */
    ssh: SshAccess;
    /** The cluster CA, which ldirectord's HTTPS checks trust. */
    pki: PkiFiles;
    /** Changes whenever an API server restarts; the VIP gate then runs again. */
    apiServerFingerprints: pulumi.Input<string>[];
    /**
     * The API servers. Only the two gates wait for them: the rest (the VIP on each node, the gateway's
     * prerequisites, CA trust, VIP and ldirectord) installs alongside etcd and the API servers.
     */
    apiServers: pulumi.Resource[];
    /** Control nodes that leave (components/membership.ts): drained before ldirectord.cf drops them. */
    leaving?: Machine[];
    /**
     * The health gates of joining nodes' API servers: ldirectord.cf lists them only once they answer, since a
     * reload adds a new real server at weight 1 until its first check (an API server not yet up would refuse
     * requests meanwhile). On an empty stack there are none: nothing is served before the first install ends.
     */
    joiningApiServers?: pulumi.Resource[];
    /**
     * Each API server's last step of a roll (back in the load balancer): ldirectord.cf is written, so
     * reloaded (`autoreload`), and ldirectord reloaded for a new CA, only once every roll is over, since a
     * reload puts a real server that a roll has taken out back at weight 1 while it restarts. None on an
     * empty stack, where nothing rolls and ldirectord installs alongside etcd and the API servers.
     */
    rolls?: pulumi.Resource[];
}

export class IpvsLoadBalancer extends pulumi.ComponentResource {
    /** Passes once https://<VIP>:<port>/healthz answers `ok` from where pulumi runs. */
    readonly ready: pulumi.Resource;
    /**
     * The VIP on each control node's `lo`, in the order of `nodes`: there the VIP's name reaches the node's
     * own API server, never the gateway.
     */
    readonly nodeVips: pulumi.Resource[];
    readonly url: string;

    constructor(name: string, args: IpvsLoadBalancerArgs, opts: pulumi.ComponentResourceOptions = {}) {
        super("kthw:index:IpvsLoadBalancer", name, {}, opts);
        const { config, gateway, pki } = args;
        const after = childOptions(this, opts.dependsOn);

        // Control nodes: the VIP on lo, ARP quiet.
        const nodeVips = this.nodeVips = args.nodes.map(node => {
            const arp = remoteFile(`${name}-${node.name}-arp-sysctl`, node, {
                path: ARP_SYSCTL_FILE, mode: "0644",
                // Back to the kernel's defaults once the VIP is gone.
                afterRemove: ["sysctl -q -w net.ipv4.conf.all.arp_announce=0 net.ipv4.conf.all.arp_ignore=0"],
            }, renderArpSysctl(), after);
            const unit = renderVipUnit(config, "lo", ARP_SYSCTL_FILE);
            // Running, it holds the VIP on lo and the ARP settings (its start applies them): a restart repairs both.
            return systemdService(`${name}-${node.name}-vip`, node,
                { unitName: VIP_UNIT, ownsUnitFile: true, onChange: "restart",
                    holds: { addresses: [{ device: "lo", address: config.vip }], sysctls: ARP_SYSCTLS } },
                fingerprint([unit, renderArpSysctl()]), unit, childOptions(this, opts.dependsOn, arp));
        });

        // The gateway: check what the seed installs with apt before changing anything.
        const ready = precondition(`${name}-gateway-prerequisites`, gateway, [
            { test: "command -v ipvsadm >/dev/null", message: "ipvsadm is not installed (apt install ipvsadm)" },
            { test: "command -v ldirectord >/dev/null", message: "ldirectord is not installed (apt install ldirectord)" },
            { test: `ip link show dev ${config.nic} >/dev/null 2>&1`,
                message: `no network interface ${config.nic} (config key control-plane:nic)` },
        ], after);
        const gatewayStep = childOptions(this, opts.dependsOn, ready);
        const gatewayUnit = renderVipUnit(config, config.nic);
        const gatewayVip = systemdService(`${name}-gateway-vip`, gateway,
            { unitName: VIP_UNIT, ownsUnitFile: true, onChange: "restart",
                holds: { addresses: [{ device: config.nic, address: config.vip }] } },
            fingerprint([gatewayUnit]), gatewayUnit, gatewayStep);
        // IPVS's module loaded at boot, so that systemd-sysctl applies its settings; applied now by the file's step.
        remoteFile(`${name}-ipvs-module`, gateway, { path: IPVS_MODULES_FILE, mode: "0644" }, "ip_vs\n", gatewayStep);
        remoteFile(`${name}-ipvs-sysctl`, gateway, {
            path: IPVS_SYSCTL_FILE, mode: "0644",
            afterWrite: ["[ -d /proc/sys/net/ipv4/vs ] || modprobe ip_vs", `sysctl -q -p ${IPVS_SYSCTL_FILE}`],
            // Back to the kernel's defaults (the module stays: ldirectord's ipvsadm loads it anyway).
            afterRemove: ["[ ! -d /proc/sys/net/ipv4/vs ] || sysctl -q -w net.ipv4.vs.expire_nodest_conn=0"],
            holds: { sysctls: IPVS_SYSCTLS },
        }, renderIpvsSysctl(), gatewayStep);
        const ldirectordCa = remoteFile(`${name}-ldirectord-ca`, gateway, { path: LDIRECTORD_CA_FILE, mode: "0644" },
            pki.caCert, gatewayStep);
        const dropIn = renderLdirectordDropIn();
        const ldirectordDropIn = remoteFile(`${name}-ldirectord-drop-in`, gateway, {
            path: LDIRECTORD_DROP_IN, mode: "0644", ownedDirs: [LDIRECTORD_DROP_IN_DIR],
            afterWrite: [reloadIfStale("ldirectord")], afterRemove: [reloadIfStale("ldirectord")],
        }, dropIn, gatewayStep);
        const subsysTmpfile = "d /run/lock/subsys 0755 root root -\n";
        const subsys = remoteFile(`${name}-lock-dir`, gateway, {
            path: SUBSYS_TMPFILES, mode: "0644",
            afterWrite: [`systemd-tmpfiles --create ${SUBSYS_TMPFILES}`],
            afterRemove: ["rmdir --ignore-fail-on-non-empty /run/lock/subsys 2>/dev/null || [ ! -d /run/lock/subsys ]"],
        }, subsysTmpfile, gatewayStep);
        const ldirectordConfig = renderLdirectordConfig(config);
        // Like the etcd departures, a step of every deployment that keeps its last script while no node leaves.
        const leaving = args.leaving ?? [];
        // Run from where pulumi runs, over SSH: a first install (no node leaves) opens no session to the gateway.
        const drainText = leaving.length > 0
            ? scriptOnHost(sshSettings(args.ssh), gateway, drainScript(config, leaving), "KTHW_DRAIN_SCRIPT")
            : script(`echo 'no control node leaves'`);
        const drain = [sshLocalStep(`${name}-drain-leaving`, args.ssh, { create: `bash -c ${shq(drainText)}` },
            { ...gatewayStep, ignoreChanges: leaving.length > 0 ? [] : ["create"] })];
        const configFile = remoteFile(`${name}-ldirectord-config`, gateway,
            // The ldirectord package ships an example ldirectord.cf: it comes back on destroy.
            { path: LDIRECTORD_CONFIG, mode: "0644", keepOriginal: true }, ldirectordConfig,
                childOptions(this, opts.dependsOn, ready, ...drain, ...(args.joiningApiServers ?? []), ...(args.rolls ?? [])));
        // A changed ldirectord.cf is reloaded, never restarted: after a start ldirectord holds every real
        // server at weight 0 until its first check passes, a short outage of the VIP.
        const ldirectord = systemdService(`${name}-ldirectord`, gateway, {
            unitName: "ldirectord", ownsUnitFile: false, onChange: "reload",
            beforeChange: ldirectordEnvironmentCheck(),
            afterRemove: [`ipvsadm -D -t ${config.vip}:${config.apiPort} 2>/dev/null || true`],
        }, fingerprint([ldirectordConfig, pki.caCert, dropIn]), undefined,
        childOptions(this, opts.dependsOn, ldirectordCa, ldirectordDropIn, subsys, configFile));

        // ldirectord adds each real server at weight 1, then holds it at 0 until its first check passes:
        // wait until every API server has passed its check, so the VIP serves from all of them. Over the shared
        // SSH connection: after a roll, the drain steps have just used it.
        const restarts = fingerprint([ldirectordConfig, pki.caCert, ...args.apiServerFingerprints]);
        const virtual = `${config.vip}:${config.apiPort}`;
        const realServers = sshHealthGate(`${name}-real-servers-healthy`, args.ssh, gateway, realServersGate(config),
            restarts, childOptions(this, opts.dependsOn, ldirectord, gatewayVip, ...args.apiServers));

        this.url = `https://${virtual}`;
        const healthz = `${this.url}/healthz`;
        this.ready = localHealthGate(`${name}-vip-healthy`, {
            what: `${healthz} to answer through the load balancer`,
            setup: [`ca=$(mktemp)`, `trap 'rm -f "$ca"' EXIT`, `cat > "$ca"`],
            probe: `[ "$(curl -fsS --max-time 5 --cacert "$ca" ${healthz} 2>/dev/null)" = ok ]`,
            timeoutSeconds: config.healthTimeoutSeconds,
            diagnose: `curl -sS --max-time 5 --cacert "$ca" ${healthz}`,
        }, restarts, pki.caCert, childOptions(this, opts.dependsOn, realServers, ...nodeVips));
        this.registerOutputs({ url: this.url });
    }
}
