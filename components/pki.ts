// The cluster's PKI (chapter 4's files), generated with @pulumi/tls and @pulumi/random, or read from a
// directory of existing files. Private keys, the encryption key and kubeconfigs with keys are secrets.
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import * as tls from "@pulumi/tls";
import { ClusterConfig, expandHome } from "./config";
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

const VALIDITY_HOURS = 8760;
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
        const ca = new tls.SelfSignedCert(`${name}-ca`, {
            privateKeyPem: caKey.privateKeyPem,
            subject: subject("Kubernetes", "Kubernetes", "CA"),
            isCaCertificate: true,
            validityPeriodHours: VALIDITY_HOURS,
            allowedUses: ["cert_signing", "crl_signing", "digital_signature", "key_encipherment"],
        }, parent);

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
                validityPeriodHours: VALIDITY_HOURS,
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

/** The PKI the config asks for: generated, or chapter 4's files from `pkiDir`. */
export function clusterPki(config: ClusterConfig, opts?: pulumi.ComponentResourceOptions): PkiFiles {
    return config.pkiDir ? readPkiDir(config.pkiDir) : new Pki("pki", config, opts).files;
}
