// Certificate lifetimes: the generated PKI's (the CA ten years and kept as it was made, every other
// certificate one year and renewed in its last 30 days), and the expiry warnings, against real certificates
// that openssl makes here.
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { describe, test } from "node:test";
import { CA_VALIDITY_HOURS, expiryWarnings, kubeconfigClientCert, LEAF_VALIDITY_HOURS, renderKubeconfig, RENEWAL_HOURS } from "../../components/pki";
import { byName, changed, devConfig, runProgram } from "./program";
import { scratchDir } from "./scratch";

const DAY = 86400_000;
const openssl = (...args: string[]) => {
    const run = spawnSync("openssl", args, { encoding: "utf8" });
    assert.equal(run.status, 0, run.stderr);
};

/**
 * A scratch directory with a CA valid `caDays` and a key (or the CA of directory `sameCaAs`); `cert(name, days)`
 * signs a leaf with it.
 */
function scratchCa(caDays: number, sameCaAs?: string) {
    const dir = scratchDir("certs");
    const at = (file: string) => path.join(dir, file);
    if (sameCaAs !== undefined) {
        for (const file of ["ca.pem", "ca-key.pem"]) {
            fs.copyFileSync(path.join(sameCaAs, file), at(file));
        }
    } else {
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", at("ca-key.pem"), "-out", at("ca.pem"),
            "-days", String(caDays), "-subj", "/CN=Kubernetes/OU=CA");
    }
    const cert = (name: string, days: number, subject = `/CN=${name}`) => {
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", at(`${name}-key.pem`), "-out", at(`${name}.csr`), "-subj", subject);
        openssl("x509", "-req", "-in", at(`${name}.csr`), "-CA", at("ca.pem"), "-CAkey", at("ca-key.pem"),
            "-CAcreateserial", "-days", String(days), "-out", at(`${name}.pem`));
        return fs.readFileSync(at(`${name}.pem`), "utf8");
    };
    return { dir, at, cert, ca: fs.readFileSync(at("ca.pem"), "utf8") };
}

/** A complete pkiDir (chapter 4's files): each certificate valid 400 days unless `days` says otherwise. */
function pkiDir(days: { ca?: number; kubernetes?: number; admin?: number } = {}, sameCaAs?: string) {
    const pki = scratchCa(days.ca ?? 400, sameCaAs);
    const kubeconfig = (name: string, valid: number) => renderKubeconfig({ clusterName: "kubernetes",
        server: "https://kubernetes:6443", caCertPem: pki.ca, userName: name, clientCertPem: pki.cert(name, valid), clientKeyPem: "KEY" });
    pki.cert("kubernetes", days.kubernetes ?? 400);
    pki.cert("service-account", 400);
    fs.writeFileSync(pki.at("admin.kubeconfig"), kubeconfig("admin", days.admin ?? 400));
    fs.writeFileSync(pki.at("kube-controller-manager.kubeconfig"), kubeconfig("kube-controller-manager", 400));
    fs.writeFileSync(pki.at("kube-scheduler.kubeconfig"), kubeconfig("kube-scheduler", 400));
    fs.writeFileSync(pki.at("encryption-config.yaml"), "kind: EncryptionConfig\n");
    return pki;
}

describe("expiry warnings", () => {
    test("a certificate inside its window: its name, days left, end and remedy; outside it, expired, or not a certificate", () => {
        const { ca, cert } = scratchCa(20);
        const leaf = cert("kubernetes", 400);
        const now = new Date();
        const warnings = expiryWarnings([
            { what: "the cluster CA", pem: ca, hours: 90 * 24, remedy: "rotate it" },
            { what: "the serving certificate", pem: leaf, hours: 30 * 24, remedy: "renew it" },
            { what: "junk", pem: "not a certificate", hours: 30 * 24, remedy: "-" },
        ], now);
        assert.equal(warnings.length, 1, warnings.join("\n"));
        assert.match(warnings[0], /^the cluster CA expires in 19 days, on \d{4}-\d\d-\d\dT[\d:.]+Z: rotate it$/);
        const end = Date.parse(/on (\S+):/.exec(warnings[0])![1]);
        assert.ok(Math.abs(end - (now.getTime() + 20 * DAY)) < 120_000, "the CA's own end, 20 days from now");
        assert.deepEqual(expiryWarnings([{ what: "the cluster CA", pem: ca, hours: 10 * 24, remedy: "x" }], now), [],
            "20 days left: outside a 10-day window");
        assert.match(expiryWarnings([{ what: "the cluster CA", pem: ca, hours: 1, remedy: "x" }], new Date(now.getTime() + 21 * DAY))[0],
            /^the cluster CA expired, on /);
    });

    test("reads the client certificate a kubeconfig embeds", () => {
        const { ca, cert } = scratchCa(20);
        const client = cert("admin", 5, "/CN=admin/O=system:masters");
        const kubeconfig = renderKubeconfig({ clusterName: "kubernetes", server: "https://kubernetes:6443", caCertPem: ca,
            userName: "admin", clientCertPem: client, clientKeyPem: "KEY" });
        assert.equal(kubeconfigClientCert(kubeconfig), client);
        assert.equal(kubeconfigClientCert("apiVersion: v1\nusers: []\n"), undefined);
    });

    test("every run warns of what pkiDir holds inside its window, naming each; a generated PKI's leaves renew instead", () => {
        const pki = pkiDir({ ca: 20, kubernetes: 10, admin: 5 });
        const run = runProgram(devConfig({ pkiDir: pki.dir }));
        assert.equal(run.error, undefined, run.error);
        const warned = (what: string) => new RegExp(`${what} expires in \\d+ days, on `).test(run.stderr);
        assert.ok(warned("the cluster CA"), run.stderr);
        assert.ok(warned("the API server's and etcd's serving certificate"), run.stderr);
        assert.ok(warned("the admin client certificate"), run.stderr);
        for (const quiet of ["the service-account certificate", "the controller manager's client certificate", "the scheduler's client certificate"]) {
            assert.ok(!warned(quiet), `${quiet}: 400 days left`);
        }
        assert.match(run.stderr, /renew it in pkiDir; the next `up` rolls it out node by node/);
    });
});

describe("the generated PKI's lifetimes", () => {
    test("the CA ten years and kept as made; every other certificate one year, renewed in its last 30 days", () => {
        const run = runProgram(devConfig());
        assert.equal(run.error, undefined, run.error);
        const ca = byName(run, "pki-ca");
        assert.equal(ca.inputs.validityPeriodHours, CA_VALIDITY_HOURS);
        assert.equal(CA_VALIDITY_HOURS, 87600);
        assert.equal(ca.inputs.earlyRenewalHours ?? 0, 0, "the CA is never renewed by the program");
        assert.deepEqual(ca.ignoreChanges, ["validityPeriodHours"], "a stack's CA keeps the lifetime it was made with");
        const leaves = run.registrations.filter(r => r.type === "tls:index/locallySignedCert:LocallySignedCert");
        assert.deepEqual(leaves.map(l => l.name).sort(), ["pki-admin", "pki-kube-controller-manager", "pki-kube-scheduler",
            "pki-kubernetes", "pki-service-account"]);
        for (const leaf of leaves) {
            assert.equal(leaf.inputs.validityPeriodHours, LEAF_VALIDITY_HOURS, leaf.name);
            assert.equal(leaf.inputs.earlyRenewalHours, RENEWAL_HOURS, leaf.name);
        }
        assert.equal(RENEWAL_HOURS, 720);
        assert.doesNotMatch(run.stderr, /expire/, "the mocks' certificates do not parse: no warning");
    });
});

describe("a CA does not roll", () => {
    test("on a running cluster, pkiDir with another CA is refused before any resource, naming the key; new certificates from the same CA roll", () => {
        const first = pkiDir();
        const deployed = runProgram(devConfig({ pkiDir: first.dir }));
        assert.equal(deployed.error, undefined, deployed.error);
        assert.equal(deployed.outputs.caCert, first.ca, "the stack records the CA it runs with");

        const otherCa = pkiDir();
        const refused = runProgram(devConfig({ pkiDir: otherCa.dir }), { probe: { lastOutputs: deployed.outputs } });
        assert.match(refused.error ?? "", new RegExp(`refused before any change:\\n  - control-plane:pkiDir: ${otherCa.dir}/ca.pem ` +
            "is not the CA this cluster runs with \\(the stack output caCert\\)"));
        assert.match(refused.error ?? "", /restore it into a new one with the new CA \(restoreFrom\)/);
        assert.deepEqual(refused.registrations.filter(r => r.type !== "pulumi:pulumi:Stack" && !r.read), [], "no resource registered");

        const renewed = pkiDir({}, first.dir);
        const rolled = runProgram(devConfig({ pkiDir: renewed.dir }), { probe: { lastOutputs: deployed.outputs } });
        assert.equal(rolled.error, undefined, rolled.error);
        assert.ok(changed(deployed, rolled).includes("etcd-control0-cert"), "the new serving certificate rolls");

        // A new stack (nothing recorded) takes any CA.
        assert.equal(runProgram(devConfig({ pkiDir: otherCa.dir })).error, undefined);
    });
});
