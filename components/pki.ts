// The cluster's PKI (chapter 4's files), generated with @pulumi/tls and @pulumi/random, or read from a
// directory of existing files. Private keys, the encryption key and kubeconfigs with keys are secrets.
//
// Lifetimes, as kubeadm's: the CA ten years, every other certificate one year, renewed by the first `up` in its
// last 30 days (the tls provider's `earlyRenewalHours`: the preview shows it replaced, with the same key and CA,
// and the files it is in roll out node by node like any change). The CA is never renewed by the program: a new
// CA has to be trusted by every member before it signs anything, which is not automated. Every run warns of a
// CA expiring within 90 days, and of a certificate of `pkiDir` (renewed by whoever made it) within 30.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import * as tls from "@pulumi/tls";
import { parse as parseYaml } from "yaml";
import { ClusterConfig, CONFIG_NAMESPACE, expandHome } from "./config";
import { firstServiceIP, parseAddress } from "./net";
import { toYaml } from "./render/yaml";

/** Every file chapter 5 copies onto the hosts, as Pulumi values. */
export interface PkiFiles {
    caCert: pulumi.Output<string>;
    caKey: pulumi.Output<string>;
    kubernetesCert: pulumi.Output<string>;
    kubernetesKey: pulumi.Output<string>;
    serviceAccountCert: pulumi.Output<string>;
    serviceAccountKey: pulumi.Output<string>;
    encryptionConfig: pulumi.Output<string>;
    controllerManagerKubeconfig: pulumi.Output<string>;
    schedulerKubeconfig: pulumi.Output<string>;
    adminKubeconfig: pulumi.Output<string>;
    /**
     * The key that encrypts Secrets (base64), a secret: a snapshot's Secrets decrypt only with it. Absent
     * with `pkiDir` (its encryption-config.yaml is the file to keep).
     */
    encryptionKey?: pulumi.Output<string>;
}

export interface SubjectAltNames {
    dnsNames: string[];
    ipAddresses: string[];
}

/**
 * SANs of the API and etcd serving certificate: every control node by name and address, the VIP and its
 * name, loopback, and the `kubernetes` Service by its ClusterIP and DNS names.
 */
export function kubernetesSans(config: ClusterConfig): SubjectAltNames {
    const serviceNames = ["kubernetes", "kubernetes.default", "kubernetes.default.svc",
        "kubernetes.default.svc.cluster", "kubernetes.default.svc.cluster.local"];
    const unique = (values: string[]) => [...new Set(values)];
    const extraIps = config.extraSans.filter(san => parseAddress(san) !== undefined);
    const extraNames = config.extraSans.filter(san => !extraIps.includes(san));
    return {
        dnsNames: unique([...config.nodes.map(n => n.name), config.vipName, ...serviceNames, "localhost", ...extraNames]),
        ipAddresses: unique([...config.nodes.map(n => n.address), config.vip, "127.0.0.1",
            firstServiceIP(config.serviceCidr), ...extraIps]),
    };
}

/** The URL every kubeconfig points at: the VIP's name, as chapter 4 configured them. */
export function apiServerUrl(config: ClusterConfig): string {
    return `https://${config.vipName}:${config.apiPort}`;
}

export interface KubeconfigValues {
    clusterName: string;
    server: string;
    caCertPem: string;
    userName: string;
    clientCertPem: string;
    clientKeyPem: string;
}

const base64 = (text: string) => Buffer.from(text, "utf8").toString("base64");

/** A kubeconfig with embedded certificates, as `kubectl config set-cluster --embed-certs` writes it. */
export function renderKubeconfig(v: KubeconfigValues): string {
    return toYaml({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ cluster: { "certificate-authority-data": base64(v.caCertPem), server: v.server }, name: v.clusterName }],
        contexts: [{ context: { cluster: v.clusterName, user: v.userName }, name: "default" }],
        "current-context": "default",
        preferences: {},
        users: [{ name: v.userName, user: {
            "client-certificate-data": base64(v.clientCertPem),
            "client-key-data": base64(v.clientKeyPem),
        } }],
    });
}

/**
 * Encryption at rest for Secrets with an aescbc key (32 random bytes, base64), identity as fallback. More
 * keys decrypt what they encrypted (a restored cluster's key first, the stack's generated one after it).
 */
export function renderEncryptionConfig(...keysBase64: string[]): string {
    return toYaml({
        kind: "EncryptionConfiguration",
        apiVersion: "apiserver.config.k8s.io/v1",
        resources: [{
            resources: ["secrets"],
            providers: [{ aescbc: { keys: [...new Set(keysBase64)].map((secret, i) => ({ name: `key${i + 1}`, secret })) } },
                { identity: {} }],
        }],
    });
}

/** Client identities: who each kubeconfig authenticates as (CN = user, O = group). */
export const CLIENTS = {
    controllerManager: { commonName: "system:kube-controller-manager", organization: "system:kube-controller-manager" },
    scheduler: { commonName: "system:kube-scheduler", organization: "system:kube-scheduler" },
    admin: { commonName: "admin", organization: "system:masters" },
} as const;

/** The CA's lifetime: ten years (a stack made before it keeps its CA's one year: see `Pki`). */
export const CA_VALIDITY_HOURS = 10 * 8760;
/** Every other certificate's lifetime: one year. */
export const LEAF_VALIDITY_HOURS = 8760;
/** A generated certificate is renewed by the first `up` in its last this many hours (30 days). */
export const RENEWAL_HOURS = 30 * 24;
/** Every run warns of a CA that expires within this many hours (90 days). */
export const CA_WARNING_HOURS = 90 * 24;
const LEAF_USES = ["digital_signature", "key_encipherment", "server_auth", "client_auth"];

/** Generates the PKI: CA, serving cert, service-account pair, client certs, kubeconfigs, encryption key. */
export class Pki extends pulumi.ComponentResource {
    readonly files: PkiFiles;

    constructor(name: string, config: ClusterConfig, opts?: pulumi.ComponentResourceOptions) {
        super("kthw:index:Pki", name, {}, opts);
        const parent = { parent: this };
        // The CA's OU sets it apart: OpenSSL compares names case-insensitively, so a CA "Kubernetes" and a
        // leaf "kubernetes" with the same O and OU would make the leaf look self-signed.
        const subject = (commonName: string, organization: string, organizationalUnit = "Kubernetes The Hard Way") =>
            ({ commonName, organization, organizationalUnit });

        const caKey = new tls.PrivateKey(`${name}-ca-key`, { algorithm: "RSA", rsaBits: 2048 }, parent);
        // A new lifetime would replace the CA, and with it every certificate, at once on every node: a stack
        // whose CA was made with another one keeps it (ignoreChanges), and is warned before it expires.
        const ca = new tls.SelfSignedCert(`${name}-ca`, {
            privateKeyPem: caKey.privateKeyPem,
            subject: subject("Kubernetes", "Kubernetes", "CA"),
            isCaCertificate: true,
            validityPeriodHours: CA_VALIDITY_HOURS,
            allowedUses: ["cert_signing", "crl_signing", "digital_signature", "key_encipherment"],
        }, { ...parent, ignoreChanges: ["validityPeriodHours"] });

        const leaf = (what: string, commonName: string, organization: string, sans?: SubjectAltNames) => {
            const key = new tls.PrivateKey(`${name}-${what}-key`, { algorithm: "RSA", rsaBits: 2048 }, parent);
            const request = new tls.CertRequest(`${name}-${what}-csr`, {
                privateKeyPem: key.privateKeyPem,
                subject: subject(commonName, organization),
                dnsNames: sans?.dnsNames,
                ipAddresses: sans?.ipAddresses,
            }, parent);
            const cert = new tls.LocallySignedCert(`${name}-${what}`, {
                certRequestPem: request.certRequestPem,
                caPrivateKeyPem: caKey.privateKeyPem,
                caCertPem: ca.certPem,
                validityPeriodHours: LEAF_VALIDITY_HOURS,
                earlyRenewalHours: RENEWAL_HOURS,
                allowedUses: LEAF_USES,
            }, parent);
            return { certPem: cert.certPem, keyPem: pulumi.secret(key.privateKeyPem) };
        };

        const kubernetes = leaf("kubernetes", "kubernetes", "Kubernetes", kubernetesSans(config));
        const serviceAccount = leaf("service-account", "service-accounts", "Kubernetes");
        const kubeconfig = (what: keyof typeof CLIENTS) => {
            const client = leaf(what === "controllerManager" ? "kube-controller-manager"
                : what === "scheduler" ? "kube-scheduler" : "admin", CLIENTS[what].commonName, CLIENTS[what].organization);
            return pulumi.secret(pulumi.all([ca.certPem, client.certPem, client.keyPem]).apply(([caPem, certPem, keyPem]) =>
                renderKubeconfig({
                    clusterName: config.clusterName, server: apiServerUrl(config), caCertPem: caPem,
                    userName: CLIENTS[what].commonName, clientCertPem: certPem, clientKeyPem: keyPem,
                })));
        };
        // A restored cluster (config encryptionKey) encrypts with the key of the cluster its snapshot came
        // from; the generated key stays as a second key, so nothing it encrypted becomes unreadable.
        const generated = new random.RandomBytes(`${name}-encryption-key`, { length: 32 }, parent).base64;
        const given = config.encryptionKey !== "" ? pulumi.secret(config.encryptionKey) : undefined;
        const keys = pulumi.secret(given ? pulumi.all([given, generated]) : pulumi.all([generated]));

        this.files = {
            caCert: ca.certPem,
            caKey: pulumi.secret(caKey.privateKeyPem),
            kubernetesCert: kubernetes.certPem,
            kubernetesKey: kubernetes.keyPem,
            serviceAccountCert: serviceAccount.certPem,
            serviceAccountKey: serviceAccount.keyPem,
            encryptionConfig: pulumi.secret(keys.apply(k => renderEncryptionConfig(...k))),
            controllerManagerKubeconfig: kubeconfig("controllerManager"),
            schedulerKubeconfig: kubeconfig("scheduler"),
            adminKubeconfig: kubeconfig("admin"),
            encryptionKey: pulumi.secret(keys.apply(k => k[0])),
        };
        this.registerOutputs({ ...this.files });
    }
}

/** Chapter 4's files from a directory; every file holding a key is a secret. */
export function readPkiDir(dir: string): PkiFiles {
    const read = (file: string) => fs.readFileSync(path.join(expandHome(dir), file), "utf8");
    const plain = (file: string) => pulumi.output(read(file));
    const secret = (file: string) => pulumi.secret(read(file));
    return {
        caCert: plain("ca.pem"),
        caKey: secret("ca-key.pem"),
        kubernetesCert: plain("kubernetes.pem"),
        kubernetesKey: secret("kubernetes-key.pem"),
        serviceAccountCert: plain("service-account.pem"),
        serviceAccountKey: secret("service-account-key.pem"),
        encryptionConfig: secret("encryption-config.yaml"),
        controllerManagerKubeconfig: secret("kube-controller-manager.kubeconfig"),
        schedulerKubeconfig: secret("kube-scheduler.kubeconfig"),
        adminKubeconfig: secret("admin.kubeconfig"),
    };
}

/** The certificate a PEM holds, or undefined when it does not parse. */
function parsedCertificate(pem: string): crypto.X509Certificate | undefined {
    try {
        return new crypto.X509Certificate(pem);
    } catch {
        return undefined;
    }
}

/** A certificate's identity: its SHA-256 fingerprint, or its trimmed text when it does not parse. */
function certificateIdentity(pem: string): string {
    return parsedCertificate(pem)?.fingerprint256 ?? pem.trim();
}

/**
 * Why a change of CA through `pkiDir` cannot go ahead on a running cluster, or undefined: a new CA does not
 * roll one node at a time (the first etcd member to restart would hold a certificate its peers do not trust),
 * so `pkiDir`'s ca.pem must be the CA the last deployment ran with (its stack output `caCert`). A new cluster,
 * or a stack with no CA recorded, may take any. Reads pkiDir's ca.pem.
 */
export function caChangeProblem(config: ClusterConfig, previousCaCert: string | undefined, newCluster: boolean): string | undefined {
    if (config.pkiDir === "" || previousCaCert === undefined || newCluster) {
        return undefined;
    }
    const ca = fs.readFileSync(path.join(expandHome(config.pkiDir), "ca.pem"), "utf8");
    if (certificateIdentity(ca) === certificateIdentity(previousCaCert)) {
        return undefined;
    }
    return `${CONFIG_NAMESPACE}:pkiDir: ${config.pkiDir}/ca.pem is not the CA this cluster runs with (the stack output caCert). ` +
        "A new CA cannot roll out one node at a time: every etcd member and API server would have to trust both CAs " +
        "first, which the program does not do. Keep the old ca.pem and ca-key.pem in pkiDir and sign the new " +
        "certificates with them; or rotate with downtime: destroy the stack (a snapshot is taken) and restore it " +
        "into a new one with the new CA (restoreFrom)";
}

/** The client certificate a kubeconfig embeds (`client-certificate-data`, base64 PEM), if any. */
export function kubeconfigClientCert(kubeconfig: string): string | undefined {
    const data = (parseYaml(kubeconfig) as { users?: { user?: Record<string, unknown> }[] } | undefined)
        ?.users?.[0]?.user?.["client-certificate-data"];
    return typeof data === "string" ? Buffer.from(data, "base64").toString("utf8") : undefined;
}

/**
 * A warning for each certificate that expires within its window (`hours` from `now`), or has expired: its
 * name, its end, how many days are left, and what to do. Certificates that do not parse are left to the
 * daemons that read them. Pure.
 */
export function expiryWarnings(certs: { what: string; pem: string; hours: number; remedy: string }[], now: Date): string[] {
    return certs.flatMap(c => {
        const cert = parsedCertificate(c.pem);
        if (cert === undefined) {
            return [];
        }
        const end = new Date(cert.validTo);
        const left = end.getTime() - now.getTime();
        if (left > c.hours * 3600_000) {
            return [];
        }
        const when = left <= 0 ? "expired" : `expires in ${Math.floor(left / 86400_000)} days`;
        return [`${c.what} ${when}, on ${end.toISOString()}: ${c.remedy}`];
    });
}

/**
 * Warns, at every run, of what `expiryWarnings` names as the program installs it: the CA, and the other
 * certificates of `pkiDir` (generated ones are renewed instead). Each on its own, so that a certificate being
 * renewed (unknown in a preview) hides no other.
 */
export function warnOfExpiry(files: PkiFiles, fromPkiDir: boolean): void {
    const warn = (what: string, pem: pulumi.Output<string | undefined>, hours: number, remedy: string) =>
        pem.apply(p => expiryWarnings(p ? [{ what, pem: p, hours, remedy }] : [], new Date()).forEach(w => pulumi.log.warn(w)));
    warn("the cluster CA", files.caCert, CA_WARNING_HOURS, "the program does not rotate a CA, and every certificate " +
        "it signed stops being trusted then: plan a new cluster PKI (README, Day 2: certificates)");
    if (!fromPkiDir) {
        return;
    }
    const remedy = "renew it in pkiDir; the next `up` rolls it out node by node";
    warn("the API server's and etcd's serving certificate", files.kubernetesCert, RENEWAL_HOURS, remedy);
    warn("the service-account certificate", files.serviceAccountCert, RENEWAL_HOURS, remedy);
    for (const [what, kubeconfig] of [["the controller manager's", files.controllerManagerKubeconfig],
        ["the scheduler's", files.schedulerKubeconfig], ["the admin", files.adminKubeconfig]] as const) {
        warn(`${what} client certificate`, kubeconfig.apply(kubeconfigClientCert), RENEWAL_HOURS, remedy);
    }
}

/** The PKI the config asks for: generated, or chapter 4's files from `pkiDir`; warns of what expires soon. */
export function clusterPki(config: ClusterConfig, opts?: pulumi.ComponentResourceOptions): PkiFiles {
    const files = config.pkiDir ? readPkiDir(config.pkiDir) : new Pki("pki", config, opts).files;
    warnOfExpiry(files, config.pkiDir !== "");
    return files;
}
