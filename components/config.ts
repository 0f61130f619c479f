// The program's configuration: every value the seed (chapter 5) hard-codes, typed, defaulted to the seed's
// lab and validated once, before any resource exists. `validateConfig` is pure: it takes the raw values and
// a view of the local file system, and returns every problem at once, each naming its config key.
import * as os from "os";
import * as path from "path";
import { cidrContains, cidrsOverlap, parseCidr, parseIPv4 } from "./net";

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
    /** IPv4 address on the lab network, reached over SSH. */
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
    /** Virtual IP of the Kubernetes API (seed: 192.168.1.21). */
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
    /** Service ClusterIP range (seed: 10.32.0.0/16); its first address is the `kubernetes` Service IP. */
    serviceCidr: string;
    /** Pod IP range (seed: 10.0.0.0/12). */
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
    /** Dial attempts before a step fails on an unreachable host. */
    sshDialAttempts: number;
    /** Seconds a health gate waits for a component before failing. */
    healthTimeoutSeconds: number;
    /** Extra or overriding flags per component. */
    etcdExtraArgs: ExtraArgs;
    apiServerExtraArgs: ExtraArgs;
    controllerManagerExtraArgs: ExtraArgs;
    schedulerExtraArgs: ExtraArgs;
    /** `seed` (chapter 5 exactly) or `hardened` (the CIS Kubernetes Benchmark settings, components/profile.ts). */
    profile: Profile;
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
    sshUser: "ubuntu",
    sshPort: 22,
    sshPrivateKeyPath: "~/.ssh/id_ed25519",
    hostKeys: {},
    sshDialTimeoutSeconds: 10,
    sshDialAttempts: 3,
    healthTimeoutSeconds: 180,
    etcdExtraArgs: {},
    apiServerExtraArgs: {},
    controllerManagerExtraArgs: {},
    schedulerExtraArgs: {},
    profile: "seed",
};

/** What each config key means, for Pulumi.yaml (`pulumi config` shows it). */
export const DESCRIPTIONS: Record<keyof ClusterConfig, string> = {
    nodes: "Control nodes (seed: control0..2 at 192.168.1.11-13); each runs etcd and the control plane.",
    gateway: "The load balancer machine (seed: gateway at 192.168.1.10).",
    nic: "Network interface of the gateway that carries the lab network and gets the VIP (seed: enp0s1).",
    vip: "Virtual IP of the Kubernetes API (seed: 192.168.1.21).",
    vipName: "DNS name of the VIP, used in kubeconfigs and as a SAN (seed: kubernetes).",
    apiPort: "Port of the API on every node and on the VIP (seed: 6443).",
    arch: "CPU architecture of the hosts: amd64 or arm64 (seed: arm64).",
    etcdVersion: "etcd release (seed: 3.5.9).",
    kubernetesVersion: "Kubernetes release (seed: 1.28.3).",
    serviceCidr: "Service ClusterIP range (seed: 10.32.0.0/16); its first address is the kubernetes Service IP.",
    clusterCidr: "Pod IP range (seed: 10.0.0.0/12).",
    nodePortRange: "NodePort range (seed: 30000-32767).",
    clusterName: "Cluster name for the controller manager and kubeconfigs (seed: kubernetes).",
    etcdClusterToken: "etcd's --initial-cluster-token (seed: etcd-cluster-0).",
    logLevel: "Log verbosity, --v of every Kubernetes component (seed: 2).",
    mirrorUrl: "Base URL of a mirror laid out like the upstream release URLs; empty: the upstream URLs.",
    sha256: "Expected sha256 per artifact (etcd tarball, kube binaries), verified on the host before install.",
    pkiDir: "Directory with chapter 4's files instead of the generated PKI; empty: generate it.",
    sshUser: "SSH login user with passwordless sudo on every host (seed: ubuntu).",
    sshPort: "SSH port on every host (22).",
    sshPrivateKeyPath: "Private key file for SSH; read at up, kept a secret.",
    hostKeys: "Pinned SSH host keys by host name, authorized_keys format (\"ssh-ed25519 AAAA...\").",
    sshDialTimeoutSeconds: "Seconds each SSH dial may take; with sshDialAttempts, bounds how long an unreachable host stalls.",
    sshDialAttempts: "Dial attempts before a step fails on an unreachable host.",
    healthTimeoutSeconds: "Seconds a health gate waits for a component before failing.",
    etcdExtraArgs: "Extra or overriding etcd flags: flag name without -- mapped to its value.",
    apiServerExtraArgs: "Extra or overriding kube-apiserver flags: flag name without -- mapped to its value.",
    controllerManagerExtraArgs: "Extra or overriding kube-controller-manager flags: flag name without -- mapped to its value.",
    schedulerExtraArgs: "Extra or overriding kube-scheduler flags: flag name without -- mapped to its value.",
    profile: "seed (chapter 5 exactly) or hardened (the CIS Kubernetes Benchmark settings of components/profile.ts).",
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

    // Machines: names and addresses.
    const checkMachine = (name: string, machine: unknown, where: string): machine is Machine => {
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
        if (typeof m.address !== "string" || parseIPv4(m.address) === undefined) {
            fail(name, `${where}: address ${JSON.stringify(m.address)} is not an IPv4 address`);
            ok = false;
        }
        return ok;
    };
    if (config.nodes.length === 0) {
        fail("nodes", "at least one control node is required");
    } else if (config.nodes.length % 2 === 0) {
        warnings.push(`${key("nodes")}: ${config.nodes.length} control nodes: an even etcd cluster tolerates ` +
            `no more failures than ${config.nodes.length - 1} nodes; use an odd count`);
    }
    const goodNodes = config.nodes.filter((node, i) => checkMachine("nodes", node, `node #${i}`));
    const goodGateway = checkMachine("gateway", config.gateway, "gateway");
    const machines = [...goodNodes, ...(goodGateway ? [config.gateway] : [])];
    const seen = (values: string[]) => values.filter((v, i) => values.indexOf(v) !== i);
    for (const dup of new Set(seen(machines.map(m => m.name)))) {
        fail("nodes", `host name ${dup} is used twice`);
    }
    for (const dup of new Set(seen(machines.map(m => m.address)))) {
        fail("nodes", `address ${dup} is used twice`);
    }

    // The VIP and its name.
    if (parseIPv4(config.vip) === undefined) {
        fail("vip", `${JSON.stringify(config.vip)} is not an IPv4 address`);
    } else {
        for (const m of machines.filter(m => m.address === config.vip)) {
            fail("vip", `${config.vip} is the address of ${m.name}; the VIP must be an unassigned address`);
        }
    }
    if (!DNS_NAME.test(config.vipName)) {
        fail("vipName", `${JSON.stringify(config.vipName)} is not a DNS name`);
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

    // Networks.
    const service = parseCidr(config.serviceCidr);
    const cluster = parseCidr(config.clusterCidr);
    if (!service) {
        fail("serviceCidr", `${JSON.stringify(config.serviceCidr)} is not a CIDR block such as 10.32.0.0/16`);
    } else if (service.prefix > 30) {
        fail("serviceCidr", `${config.serviceCidr} is too small for services`);
    }
    if (!cluster) {
        fail("clusterCidr", `${JSON.stringify(config.clusterCidr)} is not a CIDR block such as 10.0.0.0/12`);
    }
    if (service && cluster && cidrsOverlap(service, cluster)) {
        fail("serviceCidr", `${config.serviceCidr} overlaps clusterCidr ${config.clusterCidr}`);
    }
    for (const [name, block] of [["serviceCidr", service], ["clusterCidr", cluster]] as const) {
        for (const m of machines) {
            if (block && cidrContains(block, parseIPv4(m.address)!)) {
                fail(name, `${config[name]} contains the address of ${m.name} (${m.address})`);
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
    if (config.pkiDir !== "") {
        const dir = expandHome(config.pkiDir);
        const missing = PKI_FILES.filter(file => !files.exists(path.join(dir, file)));
        if (missing.length > 0) {
            fail("pkiDir", `${dir} lacks ${missing.join(", ")}`);
        }
    }

    // SSH.
    if (config.sshUser === "" || /\s/.test(config.sshUser)) {
        fail("sshUser", `${JSON.stringify(config.sshUser)} is not a user name`);
    }
    const names = machines.map(m => m.name);
    for (const [host, hostKey] of Object.entries(config.hostKeys)) {
        if (!names.includes(host)) {
            fail("hostKeys", `${host} is not a configured host (hosts: ${names.join(", ")})`);
        } else if (typeof hostKey !== "string" || !HOST_KEY.test(hostKey)) {
            fail("hostKeys", `${host}: expected "ssh-ed25519 AAAA..." (authorized_keys format)`);
        }
    }
    for (const [name, min, max] of [
        ["sshDialTimeoutSeconds", 1, 120], ["sshDialAttempts", 1, 20], ["healthTimeoutSeconds", 10, 3600],
        ["logLevel", 0, 10],
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
            } else {
                values[flag] = text;
            }
        }
        config[name] = values;
    }
    return { config, errors, warnings };
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
