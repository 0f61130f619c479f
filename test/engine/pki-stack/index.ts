// The main program's PKI, generated for real: CA, kubernetes serving cert, service-account pair, client certs,
// kubeconfigs and encryption config, from a cluster config validated exactly as the main program validates it.
import * as fs from "fs";
import * as pulumi from "@pulumi/pulumi";
import { validateConfig } from "../../../components/config";
import { clusterPki, kubernetesSans } from "../../../components/pki";
import { dropSdkDebugLogs } from "../../../components/sdkLogs";

// As the main program: the SDK's debug lines, which print the private keys below, are dropped.
dropSdkDebugLogs();

const raw = new pulumi.Config().getObject<Record<string, unknown>>("cluster") ?? {};
// pkiDir must stay empty: this stack exists to generate the PKI.
const { config, errors } = validateConfig({ ...raw, pkiDir: "" }, { exists: file => fs.existsSync(file) });
if (errors.length > 0) {
    throw new pulumi.RunError(`invalid cluster config:\n  ${errors.join("\n  ")}`);
}
const pki = clusterPki(config);

export const caCert = pki.caCert;
export const kubernetesCert = pki.kubernetesCert;
export const serviceAccountCert = pki.serviceAccountCert;
export const expectedSans = kubernetesSans(config);
// Secrets: read back with `pulumi stack output --show-secrets`.
export const kubernetesKey = pki.kubernetesKey;
export const serviceAccountKey = pki.serviceAccountKey;
export const adminKubeconfig = pki.adminKubeconfig;
export const controllerManagerKubeconfig = pki.controllerManagerKubeconfig;
export const schedulerKubeconfig = pki.schedulerKubeconfig;
export const encryptionConfig = pki.encryptionConfig;
