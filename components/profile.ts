// The `profile` config key: `seed` is chapter 5 exactly; `hardened` is what the CIS Kubernetes Benchmark 1.10
// (Kubernetes 1.28, checked by kube-bench's cis-1.10) asks of the control plane, in one place: flag sets per
// daemon as data, the audit policy and the admission config as pure renderers, the mode of unit files and
// of /var/lib/kubernetes files, and etcd's own user. Components call the small functions at the bottom; with
// `seed` each of them returns exactly what the component did before, so every seed file stays the same.
import { ClusterConfig, ExtraArgs } from "./config";
import { toYaml } from "./render/yaml";
import { script, shq } from "./remote/shell";
import { StepScripts } from "./remote/steps";

export type Daemon = "etcd" | "apiServer" | "controllerManager" | "scheduler";

/** Where the hardened API server's extra files live (beside the seed's, in /var/lib/kubernetes). */
export const AUDIT_POLICY_FILE = "/var/lib/kubernetes/audit-policy.yaml";
export const ADMISSION_CONFIG_FILE = "/var/lib/kubernetes/admission-control.yaml";

/**
 * TLS 1.2 suites with forward secrecy and AEAD only (CIS 1.2.29's list minus its CBC suites); TLS 1.3's are
 * not configurable in Go and always on. Both RSA and ECDSA serving keys are covered.
 */
export const TLS_CIPHER_SUITES = [
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

/** Admission plugins the hardened API server enables on top of the seed's (CIS 1.2.3, 1.2.9, 1.2.11). */
export const HARDENED_ADMISSION_PLUGINS = ["EventRateLimit", "DenyServiceExternalIPs", "AlwaysPullImages"];

export interface FlagSet {
    /** Flags set to these values: a flag the seed has changes in place, a new one is appended. */
    set: ExtraArgs;
    /** Comma-separated list flags the seed has, with these entries appended. */
    append?: Record<string, string[]>;
}

/** The hardened flags of each daemon, by CIS check. */
export const HARDENED_FLAGS: Record<Daemon, FlagSet> = {
    etcd: {
        set: {
            "cipher-suites": TLS_CIPHER_SUITES.join(","),
            "tls-min-version": "TLS1.2",
        },
    },
    apiServer: {
        set: {
            "profiling": "false",                                   // 1.2.15
            "audit-log-maxage": "30",                               // 1.2.17
            "audit-log-maxbackup": "10",                            // 1.2.18
            "audit-log-maxsize": "100",                             // 1.2.19
            "audit-policy-file": AUDIT_POLICY_FILE,                 // 3.2.1, 3.2.2
            "request-timeout": "300s",                              // 1.2.20
            "admission-control-config-file": ADMISSION_CONFIG_FILE, // 1.2.9's EventRateLimit config
            "tls-min-version": "VersionTLS12",
            "tls-cipher-suites": TLS_CIPHER_SUITES.join(","),       // 1.2.29
        },
        append: { "enable-admission-plugins": HARDENED_ADMISSION_PLUGINS },
    },
    controllerManager: {
        set: {
            "bind-address": "127.0.0.1",                            // 1.3.7
            "profiling": "false",                                   // 1.3.2
            "terminated-pod-gc-threshold": "100",                   // 1.3.1
        },
    },
    scheduler: {
        set: {
            "bind-address": "127.0.0.1",                            // 1.4.2
            "profiling": "false",                                   // 1.4.1 (and enableProfiling: false in its config)
        },
    },
};

/** The seed's flags with a flag set applied (changed in place, new ones appended in order). */
export function applyFlagSet(base: [string, string | number | boolean][], flagSet: FlagSet):
    [string, string | number | boolean][] {
    const appended = base.map(([name, value]): [string, string | number | boolean] =>
        [name, flagSet.append?.[name] ? [String(value), ...flagSet.append[name]].join(",") : value]);
    const known = new Set(base.map(([name]) => name));
    return [
        ...appended.map(([name, value]): [string, string | number | boolean] =>
            [name, name in flagSet.set ? flagSet.set[name] : value]),
        ...Object.entries(flagSet.set).filter(([name]) => !known.has(name)),
    ];
}

/**
 * The audit policy (CIS 3.2.1, 3.2.2): Secrets, ConfigMaps and TokenReviews at Metadata only (never their
 * content); exec, attach, port-forward and proxy into pods and services at Metadata; changes to Pods and
 * Deployments with their request; everything else at Metadata, less the load balancer's health checks and
 * the leader-election lease renewals that would otherwise fill the log every second.
 */
export function renderAuditPolicy(): string {
    const writes = ["create", "update", "patch", "delete", "deletecollection"];
    return toYaml({
        apiVersion: "audit.k8s.io/v1",
        kind: "Policy",
        omitStages: ["RequestReceived"],
        rules: [
            { level: "None", nonResourceURLs: ["/healthz*", "/readyz*", "/livez*", "/version"] },
            {
                level: "None",
                users: ["system:kube-controller-manager", "system:kube-scheduler"],
                verbs: ["get", "update"],
                resources: [{ group: "coordination.k8s.io", resources: ["leases"] }],
            },
            {
                level: "Metadata",
                resources: [
                    { group: "", resources: ["secrets", "configmaps"] },
                    { group: "authentication.k8s.io", resources: ["tokenreviews"] },
                ],
            },
            {
                level: "Metadata",
                resources: [{ group: "", resources: ["pods/exec", "pods/attach", "pods/portforward", "pods/proxy", "services/proxy"] }],
            },
            {
                level: "Request",
                verbs: writes,
                resources: [{ group: "", resources: ["pods"] }, { group: "apps", resources: ["deployments"] }],
            },
            { level: "Metadata" },
        ],
    });
}

/** The admission config (CIS 1.2.9): EventRateLimit's limits, inline, per namespace and per user. */
export function renderAdmissionConfig(): string {
    return toYaml({
        apiVersion: "apiserver.config.k8s.io/v1",
        kind: "AdmissionConfiguration",
        plugins: [{
            name: "EventRateLimit",
            configuration: {
                apiVersion: "eventratelimit.admission.k8s.io/v1alpha1",
                kind: "Configuration",
                limits: [
                    { type: "Namespace", qps: 50, burst: 100, cacheSize: 2000 },
                    { type: "User", qps: 10, burst: 50 },
                ],
            },
        }],
    });
}

/** etcd's own user (CIS 1.1.12): created by the program unless it exists, with its group. */
export const ETCD_USER = "etcd";
/** The GECOS comment that marks a user (and group) the program created, so its delete removes only those. */
export const CREATED_USER = "created by kthw with its group";
export const CREATED_USER_ONLY = "created by kthw in an existing group";

/**
 * Creates a system user (and its group unless one exists), marking what it created in the user's comment;
 * the delete gives `handBack` paths back to root (a seed etcd runs as root) and removes only what it made,
 * also from the shadow tools' backups (/etc/passwd- ...), so no line of it stays in /etc.
 */
export function systemUserScripts(user: string, home: string, handBack: string[]): StepScripts {
    const u = shq(user);
    const options = `--system --no-log-init --no-create-home --home-dir ${shq(home)} --shell /usr/sbin/nologin`;
    const forget = (files: string[]) =>
        `for f in ${files.map(f => `/etc/${f}-`).join(" ")}; do if [ -f "$f" ]; then sed -i ${shq(`/^${user}:/d`)} "$f"; fi; done`;
    return {
        create: script(
            `if ! getent passwd ${u} >/dev/null; then`,
            `  if getent group ${u} >/dev/null; then`,
            `    useradd ${options} --gid ${u} --comment ${shq(CREATED_USER_ONLY)} ${u}`,
            `  else`,
            `    useradd ${options} --user-group --comment ${shq(CREATED_USER)} ${u}`,
            `  fi`,
            `fi`,
        ),
        delete: script(
            ...handBack.map(p => `if [ -e ${shq(p)} ]; then chown -R root:root ${shq(p)}; fi`),
            `comment=$(getent passwd ${u} | cut -d: -f5) || comment=''`,
            `case "$comment" in`,
            `  ${shq(CREATED_USER)})`,
            `    userdel ${u}`,
            `    if getent group ${u} >/dev/null; then groupdel ${u}; fi`,
            `    ${forget(["passwd", "shadow", "group", "gshadow"])}`,
            `    ;;`,
            `  ${shq(CREATED_USER_ONLY)})`,
            `    userdel ${u}`,
            `    ${forget(["passwd", "shadow"])}`,
            `    ;;`,
            `  *) ;;`,
            `esac`,
        ),
    };
}

// ---------------------------------------------------------------------------------------------------------
// Hooks the components call: with `seed` each returns what the component did before.

const hardened = (config: ClusterConfig) => config.profile === "hardened";

/** A daemon's flags under the profile (the user's extra args go on top of these). */
export function profileFlags(config: ClusterConfig, daemon: Daemon, base: [string, string | number | boolean][]):
    [string, string | number | boolean][] {
    return hardened(config) ? applyFlagSet(base, HARDENED_FLAGS[daemon]) : base;
}

/** Mode of the unit files in /etc/systemd/system (CIS 1.1.1, 1.1.3, 1.1.5, 1.1.7). */
export function unitFileMode(config: ClusterConfig): string {
    return hardened(config) ? "0600" : "0644";
}

/** Mode of a file in /var/lib/kubernetes or /etc/etcd: everything 0600 when hardened (CIS 1.1.20: certificates too). */
export function pkiFileMode(config: ClusterConfig, seedMode: string): string {
    return hardened(config) ? "0600" : seedMode;
}

/** The user etcd runs as and owns its data dir and /etc/etcd files; undefined: root, as the seed. */
export function etcdUser(config: ClusterConfig): string | undefined {
    return hardened(config) ? ETCD_USER : undefined;
}

/** [Service] entries of etcd.service beyond the seed's: its user, and its data dir taken over at each start. */
export function etcdServiceEntries(config: ClusterConfig, dataDir: string): [string, string][] {
    return hardened(config)
        ? [["User", ETCD_USER], ["Group", ETCD_USER], ["ExecStartPre", `+chown -R ${ETCD_USER}:${ETCD_USER} ${dataDir}`]]
        : [];
}

/** Files the hardened API server reads beyond the seed's: the audit policy and the admission config. */
export function apiServerProfileFiles(config: ClusterConfig): { what: string; path: string; content: string }[] {
    return hardened(config)
        ? [
            { what: "audit-policy", path: AUDIT_POLICY_FILE, content: renderAuditPolicy() },
            { what: "admission-config", path: ADMISSION_CONFIG_FILE, content: renderAdmissionConfig() },
        ]
        : [];
}

/** KubeSchedulerConfiguration entries beyond the seed's (the --profiling flag is ignored beside --config). */
export function schedulerConfigEntries(config: ClusterConfig): { enableProfiling?: boolean } {
    return hardened(config) ? { enableProfiling: false } : {};
}
