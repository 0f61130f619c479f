// The program's configuration: every value the seed (chapter 5) hard-codes, typed, defaulted to the seed's
// lab and validated once, before any resource exists. `validateConfig` is pure: it takes the raw values and
// a view of the local file system, and returns every problem at once, each naming its config key.
import * as os from "os";
import * as path from "path";
import { Address, Cidr, cidrContains, cidrsOverlap, parseAddress, parseCidr, sameAddress } from "./net";

/** The config namespace: keys are `control-plane:<key>` in Pulumi.<stack>.yaml. */
export const CONFIG_NAMESPACE = "control-plane";

export type Arch = "amd64" | "arm64";
export const ARCHES: Arch[] = ["amd64", "arm64"];

/** `seed`: chapter 5 exactly; `hardened`: the CIS Kubernetes Benchmark settings of components/profile.ts. */
export type Profile = "seed" | "hardened";
export const PROFILES: Profile[] = ["seed", "hardened"];

/** Artifacts the program downloads; `sha256` keys name them. */
export const ARTIFACTS = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"] as const;
export type Artifact = typeof ARTIFACTS[number];

/** Files of chapter 4 that `pkiDir` must hold when the program does not generate the PKI itself. */
export const PKI_FILES = [
    "ca.pem", "ca-key.pem", "kubernetes.pem", "kubernetes-key.pem", "service-account.pem",
    "service-account-key.pem", "encryption-config.yaml", "kube-controller-manager.kubeconfig",
    "kube-scheduler.kubeconfig", "admin.kubeconfig",
] as const;

export interface Machine {
    /** Short host name (`hostname -s`); etcd member name and SAN. */
    name: string;
    /** IP address, reached over SSH; IPv4 on control nodes (they serve the IPv4 VIP), IPv4 or IPv6 on the gateway. */
    address: string;
}

/** Component flags added to, or overriding, the seed's flags: flag name without `--` mapped to its value. */
export type ExtraArgs = Record<string, string>;

export interface ClusterConfig {
    /** Control nodes (seed: control0..2 at 192.168.1.11-13); each runs etcd and the control plane. */
    nodes: Machine[];
    /** The load balancer machine (seed: gateway at 192.168.1.10). */
    gateway: Machine;
    /** Network interface of the gateway that carries the lab network and gets the VIP (seed: enp0s1). */
    nic: string;
    /** Virtual IP of the Kubernetes API, IPv4 (seed: 192.168.1.21). */
    vip: string;
    /** DNS name of the VIP, used in kubeconfigs and as a SAN (seed: kubernetes). */
    vipName: string;
    /** Port of the API on every node and on the VIP (seed: 6443). */
    apiPort: number;
    /** CPU architecture of the hosts: amd64 or arm64 (seed: arm64). */
    arch: Arch;
    /** etcd release (seed: 3.5.9). */
    etcdVersion: string;
    /** Kubernetes release (seed: 1.28.3). */
    kubernetesVersion: string;
    /**
     * Service ClusterIP range (seed: 10.32.0.0/16), or dual-stack: IPv4 first, then IPv6
     * (10.32.0.0/16,fd00:10:32::/108); the first address of the first block is the `kubernetes` Service IP.
     */
    serviceCidr: string;
    /** Pod IP range (seed: 10.0.0.0/12), or dual-stack: an IPv4 and an IPv6 block joined by a comma. */
    clusterCidr: string;
    /** NodePort range (seed: 30000-32767). */
    nodePortRange: string;
    /** Cluster name for the controller manager and kubeconfigs (seed: kubernetes). */
    clusterName: string;
    /** etcd's --initial-cluster-token (seed: etcd-cluster-0). */
    etcdClusterToken: string;
    /** Log verbosity, --v of every Kubernetes component (seed: 2). */
    logLevel: number;
    /** Base URL of a mirror laid out like the upstream release URLs; empty: the upstream URLs. */
    mirrorUrl: string;
    /** Expected sha256 per artifact (etcd tarball, kube binaries), verified on the host before install. */
    sha256: Partial<Record<Artifact, string>>;
    /** Directory with chapter 4's files instead of the generated PKI; empty: generate it. */
    pkiDir: string;
    /** More DNS names and IP addresses for the API/etcd serving certificate; a change rolls out node by node. */
    extraSans: string[];
    /** SSH login user with passwordless sudo on every host (seed: ubuntu). */
    sshUser: string;
    /** SSH port on every host (22). */
    sshPort: number;
    /** Private key file for SSH; read at `up`, kept a secret. */
    sshPrivateKeyPath: string;
    /** Pinned SSH host keys by host name, authorized_keys format ("ssh-ed25519 AAAA..."). */
    hostKeys: Record<string, string>;
    /** Seconds each SSH dial may take; with `sshDialAttempts`, bounds how long an unreachable host stalls. */
    sshDialTimeoutSeconds: number;
    /**
     * SSH dial attempts per step before it fails on an unreachable host. The command provider makes
     * `dialErrorLimit` + 1 attempts, backing off 0.1 s x 1.5^n between them: a refused port fails in about
     * half a second, a silent host in about sshDialAttempts x sshDialTimeoutSeconds.
     */
    sshDialAttempts: number;
    /** Seconds a health gate waits for a component before failing. */
    healthTimeoutSeconds: number;
    /**
     * The path ldirectord checks on each API server (seed: /healthz; default /readyz, which a stopping API
     * server fails at once while it still serves, so it leaves the load balancer before it stops listening).
     */
    lbHealthCheckPath: string;
    /**
     * Seconds a stopping API server keeps serving after /readyz fails (--shutdown-delay-duration), long enough
     * for ldirectord's checks to take it out when the program did not drain it first (stopped by hand, a
     * reboot), and then lets its watches drain (--shutdown-watch-termination-grace-period) instead of holding
     * its stop for 60 s; 0: the seed's flags. A restart the program makes is drained through the gateway first,
     * yet still waits this long: each of a rolling change's restarts pays it. Default 3: ldirectord checks
     * every second (about 1.2 s a round on the lab's emulated gateway) and took a stopped API server to weight 0
     * within 0.5-1.6 s of SIGTERM in 11 stops by hand there, none of 308 requests failing under 6 of them.
     */
    apiServerShutdownDelaySeconds: number;
    /**
     * The port each etcd member serves its HTTP endpoints on (`/health`, `/metrics`, `/version`; TLS with client
     * certificates, as its client port), apart from its client port, which then serves gRPC alone
     * (`--listen-client-http-urls`, etcd 3.5.8 and later; 0, or an older etcd: the seed's one port for both).
     * etcd stops a gRPC server that has the port to itself gracefully: the requests in flight through a member
     * that restarts are answered, and its clients are told to go elsewhere; the seed's shared port makes etcd
     * stop it at once, and kube-apiserver passes what its client got then on as a 500 (README: Day 2). Default 2382.
     */
    etcdClientHttpPort: number;
    /**
     * kube-apiserver retries a read that etcd answers `Unavailable` (`etcdserver: leader changed` when the leader
     * changes under it, a member that stops) on another member, as etcd's client does by itself: on Kubernetes
     * 1.27-1.33 that takes `--feature-gates=APIServerTracing=false`, since the tracing interceptor that the gate
     * (beta, on by default there) adds to the etcd client replaces the client's retrying one (grpc-go keeps one
     * unary interceptor: k8s.io/apiserver storagebackend/factory/etcd3.go), and the error goes to the API's client as
     * a 500 (kubernetes/kubernetes#112152). false: the seed's flags. Default true.
     */
    etcdClientRetries: boolean;
    /** Extra or overriding flags per component. */
    etcdExtraArgs: ExtraArgs;
    apiServerExtraArgs: ExtraArgs;
    controllerManagerExtraArgs: ExtraArgs;
    schedulerExtraArgs: ExtraArgs;
    /** `seed` (chapter 5 exactly) or `hardened` (the CIS Kubernetes Benchmark settings, components/profile.ts). */
    profile: Profile;
    /**
     * Where `pulumi` runs, the directory that keeps etcd snapshots (relative: to the project directory),
     * one subdirectory per stack; a snapshot is taken before any change that restarts or removes an etcd
     * member and before `destroy` removes the data.
     */
    backupDir: string;
    /** How many snapshots of this stack `backupDir` keeps (the newest). */
    backupKeep: number;
    /** A snapshot file where `pulumi` runs that a new stack's etcd starts from (`etcdutl snapshot restore`); empty: none. */
    restoreFrom: string;
    /**
     * The Secrets encryption key (base64 of 32 bytes) of the cluster a snapshot came from, a Pulumi secret
     * (`pulumi config set --secret`); empty: a generated one. Only with the generated PKI.
     */
    encryptionKey: string;
}

/** The seed's lab: every default is the value chapter 5 hard-codes. */
export const DEFAULTS: ClusterConfig = {
    nodes: [
        { name: "control0", address: "192.168.1.11" },
        { name: "control1", address: "192.168.1.12" },
        { name: "control2", address: "192.168.1.13" },
    ],
    gateway: { name: "gateway", address: "192.168.1.10" },
    nic: "enp0s1",
    vip: "192.168.1.21",
    vipName: "kubernetes",
    apiPort: 6443,
    arch: "arm64",
    etcdVersion: "3.5.9",
    kubernetesVersion: "1.28.3",
    serviceCidr: "10.32.0.0/16",
    clusterCidr: "10.0.0.0/12",
    nodePortRange: "30000-32767",
    clusterName: "kubernetes",
    etcdClusterToken: "etcd-cluster-0",
    logLevel: 2,
    mirrorUrl: "",
    sha256: {},
    pkiDir: "",
    extraSans: [],
    sshUser: "ubuntu",
    sshPort: 22,
    sshPrivateKeyPath: "~/.ssh/id_ed25519",
    hostKeys: {},
    sshDialTimeoutSeconds: 10,
    sshDialAttempts: 3,
    healthTimeoutSeconds: 180,
    lbHealthCheckPath: "/readyz",
    apiServerShutdownDelaySeconds: 3,
    etcdClientHttpPort: 2382,
    etcdClientRetries: true,
    etcdExtraArgs: {},
    apiServerExtraArgs: {},
    controllerManagerExtraArgs: {},
    schedulerExtraArgs: {},
    profile: "seed",
    backupDir: "backups",
    backupKeep: 5,
    restoreFrom: "",
    encryptionKey: "",
};

/** What each config key means, for Pulumi.yaml (`pulumi config` shows it). */
export const DESCRIPTIONS: Record<keyof ClusterConfig, string> = {
    nodes: "Control nodes (seed: control0..2 at 192.168.1.11-13); each runs etcd and the control plane.",
    gateway: "The load balancer machine (seed: gateway at 192.168.1.10).",
    nic: "Network interface of the gateway that carries the lab network and gets the VIP (seed: enp0s1).",
    vip: "Virtual IP of the Kubernetes API, IPv4 (seed: 192.168.1.21).",
    vipName: "DNS name of the VIP, used in kubeconfigs and as a SAN (seed: kubernetes).",
    apiPort: "Port of the API on every node and on the VIP (seed: 6443).",
    arch: "CPU architecture of the hosts: amd64 or arm64 (seed: arm64).",
    etcdVersion: "etcd release (seed: 3.5.9).",
    kubernetesVersion: "Kubernetes release (seed: 1.28.3).",
    serviceCidr: "Service ClusterIP range (seed: 10.32.0.0/16), or dual-stack: IPv4 first, then IPv6 (10.32.0.0/16,fd00:10:32::/108); " +
        "the first address of the first block is the kubernetes Service IP.",
    clusterCidr: "Pod IP range (seed: 10.0.0.0/12), or dual-stack: an IPv4 and an IPv6 block joined by a comma.",
    nodePortRange: "NodePort range (seed: 30000-32767).",
    clusterName: "Cluster name for the controller manager and kubeconfigs (seed: kubernetes).",
    etcdClusterToken: "etcd's --initial-cluster-token (seed: etcd-cluster-0).",
    logLevel: "Log verbosity, --v of every Kubernetes component (seed: 2).",
    mirrorUrl: "Base URL of a mirror laid out like the upstream release URLs; empty: the upstream URLs.",
    sha256: "Expected sha256 per artifact (etcd tarball, kube binaries), verified on the host before install.",
    pkiDir: "Directory with chapter 4's files instead of the generated PKI; empty: generate it.",
    extraSans: "More DNS names and IP addresses for the API/etcd serving certificate; a change rolls out node by node.",
    sshUser: "SSH login user with passwordless sudo on every host (seed: ubuntu).",
    sshPort: "SSH port on every host (22).",
    sshPrivateKeyPath: "Private key file for SSH; read at up, kept a secret.",
    hostKeys: "Pinned SSH host keys by host name, authorized_keys format (\"ssh-ed25519 AAAA...\").",
    sshDialTimeoutSeconds: "Seconds each SSH dial may take; with sshDialAttempts, bounds how long an unreachable host stalls.",
    sshDialAttempts: "SSH dial attempts per step (the command provider's dialErrorLimit + 1, backing off 0.1 s x 1.5^n): a silent host fails in about sshDialAttempts x sshDialTimeoutSeconds.",
    healthTimeoutSeconds: "Seconds a health gate waits for a component before failing.",
    lbHealthCheckPath: "Path ldirectord checks on each API server (seed: /healthz); /readyz takes a stopping API server out before it stops listening.",
    apiServerShutdownDelaySeconds: "Seconds a stopping API server keeps serving after /readyz fails, then lets watches drain, for a stop the program did not drain (by hand, a reboot); 0: the seed's flags.",
    etcdClientHttpPort: "Port of etcd's HTTP endpoints (health, metrics) apart from its client port, which then serves gRPC alone and is stopped gracefully (etcd 3.5.8 and later); 0: the seed's one port.",
    etcdClientRetries: "kube-apiserver retries a read etcd answers Unavailable (a leader change) on another member: on Kubernetes 1.27-1.33, --feature-gates=APIServerTracing=false, whose tracing interceptor replaces etcd's client's retrying one; false: the seed's flags.",
    etcdExtraArgs: "Extra or overriding etcd flags: flag name without -- mapped to its value.",
    apiServerExtraArgs: "Extra or overriding kube-apiserver flags: flag name without -- mapped to its value.",
    controllerManagerExtraArgs: "Extra or overriding kube-controller-manager flags: flag name without -- mapped to its value.",
    schedulerExtraArgs: "Extra or overriding kube-scheduler flags: flag name without -- mapped to its value.",
    profile: "seed (chapter 5 exactly) or hardened (the CIS Kubernetes Benchmark settings of components/profile.ts).",
    backupDir: "Directory where pulumi runs that keeps etcd snapshots, one subdirectory per stack (relative: to the project); " +
        "a snapshot is taken before any change that restarts or removes an etcd member and before destroy.",
    backupKeep: "How many snapshots of this stack backupDir keeps (the newest).",
    restoreFrom: "A snapshot file where pulumi runs that a new stack's etcd starts from (etcdutl snapshot restore); empty: none.",
    encryptionKey: "The Secrets encryption key (base64 of 32 bytes) of the cluster a snapshot came from, set with --secret; " +
        "empty: a generated one. Only with the generated PKI.",
};

/** Every config key the program reads; Pulumi.yaml declares each of them. */
export const CONFIG_KEYS = Object.keys(DEFAULTS) as (keyof ClusterConfig)[];

/** What validation may look at on the machine that runs Pulumi. */
export interface LocalFiles {
    exists(file: string): boolean;
}

export interface Validated {
    config: ClusterConfig;
    errors: string[];
    warnings: string[];
}

/** Expands a leading `~/` the way a shell would, so stack files can name keys portably. */
export function expandHome(file: string): string {
    return file.startsWith("~/") ? path.join(os.homedir(), file.slice(2)) : file;
}

const HOSTNAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const DNS_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const VERSION = /^[0-9]+\.[0-9]+\.[0-9]+$/;
const FLAG_NAME = /^[a-z0-9][a-z0-9-]*$/;
const HOST_KEY = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,2}( .*)?$/;

function typeName(value: unknown): string {
    return Array.isArray(value) ? "list" : value === null ? "null" : typeof value;
}

/**
 * Merges raw values over the defaults and checks them all. `raw` holds what the stack file gives, already
 * parsed from YAML (objects for object keys); absent keys take the seed's defaults.
 */
export function validateConfig(raw: Record<string, unknown>, files: LocalFiles): Validated {
    const errors: string[] = [];
    const warnings: string[] = [];
    const key = (name: string) => `${CONFIG_NAMESPACE}:${name}`;
    const fail = (name: string, message: string) => errors.push(`${key(name)}: ${message}`);

    for (const name of Object.keys(raw)) {
        if (!(CONFIG_KEYS as string[]).includes(name)) {
            fail(name, `unknown key (known: ${CONFIG_KEYS.join(", ")})`);
        }
    }
    const config: ClusterConfig = { ...DEFAULTS };
    for (const name of CONFIG_KEYS) {
        if (raw[name] === undefined) {
            continue;
        }
        const want = typeName(DEFAULTS[name]);
        const got = typeName(raw[name]);
        if (want !== got) {
            fail(name, `expected a ${want}, got a ${got}`);
            continue;
        }
        (config as unknown as Record<string, unknown>)[name] = raw[name];
    }

    // Machines: names and addresses. Control nodes are IPv4: IPVS direct routing hands them the IPv4 VIP's
    // packets (a real server must be of the VIP's family), and each API server advertises its node's address.
    const addresses = new Map<Machine, Address>();
    const checkMachine = (name: string, machine: unknown, where: string, ipv6: boolean): machine is Machine => {
        if (machine === null || typeof machine !== "object" || Array.isArray(machine)) {
            fail(name, `${where} must be an object with name and address`);
            return false;
        }
        const m = machine as Record<string, unknown>;
        let ok = true;
        if (typeof m.name !== "string" || !HOSTNAME.test(m.name)) {
            fail(name, `${where}: name ${JSON.stringify(m.name)} is not a valid host name`);
            ok = false;
        }
        const address = parseAddress(m.address);
        if (!address) {
            fail(name, `${where}: address ${JSON.stringify(m.address)} is not an ${ipv6 ? "IP" : "IPv4"} address`);
            ok = false;
        } else if (address.kind() === "ipv6" && !ipv6) {
            fail(name, `${where}: address ${m.address} is IPv6, which this design cannot serve yet: control nodes ` +
                "need IPv4 addresses (IPVS direct routing forwards the IPv4 VIP to them)");
            ok = false;
        } else {
            addresses.set(machine as Machine, address);
        }
        return ok;
    };
    if (config.nodes.length === 0) {
        fail("nodes", "at least one control node is required");
    } else if (config.nodes.length % 2 === 0) {
        warnings.push(`${key("nodes")}: ${config.nodes.length} control nodes: an even etcd cluster tolerates ` +
            `no more failures than ${config.nodes.length - 1} nodes; use an odd count`);
    }
    const goodNodes = config.nodes.filter((node, i) => checkMachine("nodes", node, `node #${i}`, false));
    const goodGateway = checkMachine("gateway", config.gateway, "gateway", true);
    const machines = [...goodNodes, ...(goodGateway ? [config.gateway] : [])];
    const seen = (values: string[]) => values.filter((v, i) => values.indexOf(v) !== i);
    for (const dup of new Set(seen(machines.map(m => m.name)))) {
        fail("nodes", `host name ${dup} is used twice`);
    }
    // Compared as addresses, in their canonical form: fd00::11 and fd00:0::11 are one address.
    for (const dup of new Set(seen(machines.map(m => addresses.get(m)!.toString())))) {
        fail("nodes", `address ${dup} is used twice`);
    }

    // The VIP and its name.
    const vip = parseAddress(config.vip);
    if (!vip) {
        fail("vip", `${JSON.stringify(config.vip)} is not an IPv4 address`);
    } else if (vip.kind() === "ipv6") {
        fail("vip", `${config.vip} is IPv6, which this design cannot serve yet: the VIP is IPv4 (IPVS direct ` +
            "routing with the VIP on every control node's lo, kept silent there by the IPv4-only ARP sysctls " +
            "arp_ignore and arp_announce)");
    } else {
        for (const m of machines.filter(m => sameAddress(addresses.get(m)!, vip))) {
            fail("vip", `${config.vip} is the address of ${m.name}; the VIP must be an unassigned address`);
        }
    }
    if (!DNS_NAME.test(config.vipName)) {
        fail("vipName", `${JSON.stringify(config.vipName)} is not a DNS name`);
    }
    if (!/^\/[A-Za-z0-9_./-]*$/.test(config.lbHealthCheckPath)) {
        fail("lbHealthCheckPath", `${JSON.stringify(config.lbHealthCheckPath)} is not a URL path such as /readyz`);
    }
    if (!/^[a-zA-Z0-9_.:-]{1,15}$/.test(config.nic)) {
        fail("nic", `${JSON.stringify(config.nic)} is not a network interface name`);
    }
    const checkPort = (name: keyof ClusterConfig, value: number) => {
        if (!Number.isInteger(value) || value < 1 || value > 65535) {
            fail(name, `${value} is not a TCP port`);
        }
    };
    checkPort("apiPort", config.apiPort);
    checkPort("sshPort", config.sshPort);
    // A port another daemon listens on too is refused by the preflight's portClashes (stack.ts).
    if (config.etcdClientHttpPort !== 0) {
        checkPort("etcdClientHttpPort", config.etcdClientHttpPort);
    }

    // Networks: one block, or two of different families (dual-stack), as Kubernetes 1.28 takes them.
    const blocks = (name: "serviceCidr" | "clusterCidr", example: string): Cidr[] => {
        const parsed = config[name].split(",").map(parseCidr);
        if (parsed.length > 2 || parsed.some(block => !block)) {
            fail(name, `${JSON.stringify(config[name])} is not a CIDR block such as ${example}, or an IPv4 and an ` +
                "IPv6 block joined by a comma (dual-stack)");
            return [];
        }
        const good = parsed as Cidr[];
        if (good.length === 2 && good[0].family === good[1].family) {
            fail(name, `${config[name]}: a dual-stack range is one IPv4 and one IPv6 block`);
            return [];
        }
        return good;
    };
    const service = blocks("serviceCidr", "10.32.0.0/16");
    const cluster = blocks("clusterCidr", "10.0.0.0/12");
    if (service[0]?.family === "ipv6") {
        fail("serviceCidr", `${config.serviceCidr}: the first (primary) block is IPv6, which this design cannot ` +
            "serve yet: kube-apiserver needs the primary service block in the family of the address it advertises, " +
            "the control node's IPv4 address (put the IPv4 block first)");
    }
    for (const block of service) {
        // kube-apiserver 1.28 allocates at most 2^20 service addresses: at least a /12 (IPv4) or /108 (IPv6).
        if (block.hostBits < 2) {
            fail("serviceCidr", `${block.text} is too small for services`);
        } else if (block.hostBits > 20) {
            fail("serviceCidr", `${block.text} is too large: kube-apiserver takes at most a ` +
                `/${block.prefix + block.hostBits - 20} (2^20 addresses)`);
        }
        for (const other of cluster.filter(other => cidrsOverlap(block, other))) {
            fail("serviceCidr", `${block.text} overlaps clusterCidr ${other.text}`);
        }
    }
    for (const [name, list] of [["serviceCidr", service], ["clusterCidr", cluster]] as const) {
        for (const block of list) {
            for (const m of machines.filter(m => cidrContains(block, addresses.get(m)!))) {
                fail(name, `${block.text} contains the address of ${m.name} (${m.address})`);
            }
        }
    }
    const range = /^([0-9]{1,5})-([0-9]{1,5})$/.exec(config.nodePortRange);
    if (!range || Number(range[1]) < 1 || Number(range[2]) > 65535 || Number(range[1]) >= Number(range[2])) {
        fail("nodePortRange", `${JSON.stringify(config.nodePortRange)} is not a port range such as 30000-32767`);
    } else if (Number(range[1]) <= config.apiPort && config.apiPort <= Number(range[2])) {
        fail("nodePortRange", `${config.nodePortRange} contains the API port ${config.apiPort}`);
    }

    // Releases and downloads.
    if (!PROFILES.includes(config.profile)) {
        fail("profile", `unknown profile ${JSON.stringify(config.profile)} (known: ${PROFILES.join(", ")})`);
    }
    if (!ARCHES.includes(config.arch)) {
        fail("arch", `unknown architecture ${JSON.stringify(config.arch)} (known: ${ARCHES.join(", ")})`);
    }
    if (!VERSION.test(config.etcdVersion)) {
        fail("etcdVersion", `${JSON.stringify(config.etcdVersion)} is not a version such as 3.5.9 (no leading v)`);
    }
    if (!VERSION.test(config.kubernetesVersion)) {
        fail("kubernetesVersion",
            `${JSON.stringify(config.kubernetesVersion)} is not a version such as 1.28.3 (no leading v)`);
    } else if (!isSupportedKubernetes(config.kubernetesVersion)) {
        fail("kubernetesVersion", `${config.kubernetesVersion} is not supported (1.22 or newer)`);
    }
    if (config.mirrorUrl !== "" && !/^https?:\/\/[^\s/]+(\/[^\s]*)?$/.test(config.mirrorUrl)) {
        fail("mirrorUrl", `${JSON.stringify(config.mirrorUrl)} is not an http(s) URL`);
    }
    for (const [artifact, sum] of Object.entries(config.sha256)) {
        if (!(ARTIFACTS as readonly string[]).includes(artifact)) {
            fail("sha256", `unknown artifact ${artifact} (known: ${ARTIFACTS.join(", ")})`);
        } else if (typeof sum !== "string" || !/^[0-9a-f]{64}$/.test(sum)) {
            fail("sha256", `${artifact}: ${JSON.stringify(sum)} is not a sha256 hex digest`);
        }
    }
    for (const san of config.extraSans) {
        if (typeof san !== "string" || (parseAddress(san) === undefined && !DNS_NAME.test(san))) {
            fail("extraSans", `${JSON.stringify(san)} is neither a DNS name nor an IP address`);
        }
    }
    if (config.pkiDir !== "") {
        const dir = expandHome(config.pkiDir);
        const missing = PKI_FILES.filter(file => !files.exists(path.join(dir, file)));
        if (missing.length > 0) {
            fail("pkiDir", `${dir} lacks ${missing.join(", ")}`);
        }
    }

    // Backups and restore. The encryption key is a secret: no message repeats it.
    if (config.backupDir.trim() === "" || /[\n\0]/.test(config.backupDir)) {
        fail("backupDir", `${JSON.stringify(config.backupDir)} is not a directory path`);
    }
    if (config.restoreFrom !== "" && !files.exists(expandHome(config.restoreFrom))) {
        fail("restoreFrom", `no snapshot file at ${expandHome(config.restoreFrom)}`);
    }
    if (config.encryptionKey !== "") {
        if (!isEncryptionKey(config.encryptionKey)) {
            fail("encryptionKey", "is not the base64 of 32 bytes (the value of the stack output encryptionKey)");
        }
        if (config.pkiDir !== "") {
            fail("encryptionKey", "pkiDir brings its own encryption-config.yaml: leave encryptionKey empty");
        }
    }

    // SSH.
    if (config.sshUser === "" || /\s/.test(config.sshUser)) {
        fail("sshUser", `${JSON.stringify(config.sshUser)} is not a user name`);
    }
    const names = machines.map(m => m.name);
    for (const [host, hostKey] of Object.entries(config.hostKeys)) {
        if (typeof hostKey !== "string" || !HOST_KEY.test(hostKey)) {
            fail("hostKeys", `${host}: expected "ssh-ed25519 AAAA..." (authorized_keys format)`);
        } else if (!names.includes(host)) {
            // Kept: a node that joins later, or left, keeps its pinned key; a typo shows here.
            warnings.push(`${key("hostKeys")}: ${host} is not a configured host (hosts: ${names.join(", ")}): its key is not used`);
        }
    }
    for (const [name, min, max] of [
        ["sshDialTimeoutSeconds", 1, 120], ["sshDialAttempts", 1, 20], ["healthTimeoutSeconds", 10, 3600],
        ["logLevel", 0, 10], ["apiServerShutdownDelaySeconds", 0, 60], ["backupKeep", 1, 100],
    ] as const) {
        const value = config[name];
        if (!Number.isInteger(value) || value < min || value > max) {
            fail(name, `${value} is not a whole number from ${min} to ${max}`);
        }
    }
    for (const name of ["etcdExtraArgs", "apiServerExtraArgs", "controllerManagerExtraArgs", "schedulerExtraArgs"] as const) {
        // `pulumi config set --path k.flag 3` stores a number: numbers and booleans are flag values too.
        const values: ExtraArgs = {};
        for (const [flag, value] of Object.entries(config[name] as Record<string, unknown>)) {
            const text = typeof value === "number" || typeof value === "boolean" ? String(value) : value;
            if (!FLAG_NAME.test(flag)) {
                fail(name, `${JSON.stringify(flag)} is not a flag name (write it without the leading --)`);
            } else if (typeof text !== "string" || /[\n\\]/.test(text)) {
                fail(name, `${flag}: the value must be a single-line string, number or boolean`);
            } else if (/[\s'"$%]/.test(text)) {
                // The unit would not pass it as written: systemd splits at whitespace, removes quotes and expands
                // $ and % in ExecStart.
                fail(name, `${flag}: ${JSON.stringify(text)} has whitespace, a quote, $ or %, which systemd would split, unquote or expand in the unit`);
            } else {
                values[flag] = text;
            }
        }
        config[name] = values;
    }
    return { config, errors, warnings };
}

/** An aescbc key as encryption-config.yaml holds it: the base64 of exactly 32 bytes. */
export function isEncryptionKey(value: string): boolean {
    return /^[A-Za-z0-9+/]{43}=$/.test(value) && Buffer.from(value, "base64").length === 32;
}

/** Parses "1.28.3" into [1, 28, 3]. */
export function versionParts(version: string): [number, number, number] {
    const [major, minor, patch] = version.split(".").map(Number);
    return [major, minor, patch];
}

function isSupportedKubernetes(version: string): boolean {
    const [major, minor] = versionParts(version);
    return major === 1 && minor >= 22;
}
