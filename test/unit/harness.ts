// Runs the program once under Pulumi's runtime mocks and prints, as JSON, every registerResource request
// the mock monitor received (type, name, parent, dependencies, inputs with their secret markers) and the
// stack outputs. Config comes as JSON in argv[2]; argv[3] is "preview" or "up"; argv[5] lists the keys
// that are secrets in the stack file; argv[6] is the hosts as the probe finds them and the last deployment's
// stack outputs (`ProbeSetup`). One process per run, so every scenario starts from a clean runtime.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { MockMonitor } from "@pulumi/pulumi/runtime/mocks";
import { expectedFacts } from "../../components/remote/drift";
import { emptyFacts, HostFacts, ProbeQuery, setProbeRunner } from "../../components/remote/probe";

/** What the hosts have (the probe's facts, by host name: absent hosts have nothing), and the last deployment's outputs. */
export interface ProbeSetup {
    /** Facts by host name; a host not given has nothing the program installs. */
    hosts?: Record<string, HostFacts>;
    /** The stack outputs of the last deployment (the self-reference reads `driftMarkers` from them). */
    lastOutputs?: Record<string, unknown>;
    /** Hosts whose probe fails, as ssh fails to reach a host. */
    unreachable?: string[];
}

export interface Registration {
    type: string;
    name: string;
    urn: string;
    parent: string;
    custom: boolean;
    dependencies: string[];
    /** Inputs as sent to the engine: a secret is {"4dabf18193072939515e22adb298388d": "1b47...", value}. */
    inputs: Record<string, unknown>;
    additionalSecretOutputs: string[];
    ignoreChanges: string[];
    /** A resource read, not managed (the stack's reference to itself). */
    read?: boolean;
}

export interface ProgramRun {
    registrations: Registration[];
    /** Stack outputs as sent to the engine, secret markers included. */
    outputs: Record<string, unknown>;
    error?: string;
    /** The host probes the program ran, one entry per probe: host name and what it asked. */
    probes: { host: string; query: ProbeQuery }[];
    /** What each host reports when in sync with every step (components/remote/drift.ts). */
    expectedFacts?: Record<string, HostFacts>;
}

/** What the mocks answer for each resource type: fake PEMs and keys that tests can look for. */
export function mockState(type: string, name: string, inputs: Record<string, unknown>,
    lastOutputs: Record<string, unknown> = {}): Record<string, unknown> {
    const pem = (kind: string) => `-----BEGIN ${kind}-----\nMOCK ${name}\n-----END ${kind}-----\n`;
    switch (type) {
        case "tls:index/privateKey:PrivateKey":
            return { ...inputs, privateKeyPem: pem("RSA PRIVATE KEY"), publicKeyPem: pem("PUBLIC KEY") };
        case "tls:index/selfSignedCert:SelfSignedCert":
        case "tls:index/locallySignedCert:LocallySignedCert":
            return { ...inputs, certPem: pem("CERTIFICATE") };
        case "tls:index/certRequest:CertRequest":
            return { ...inputs, certRequestPem: pem("CERTIFICATE REQUEST") };
        case "random:index/randomBytes:RandomBytes":
            return { ...inputs, base64: `MOCK-ENCRYPTION-KEY-${name}`, hex: "00" };
        case "pulumi:pulumi:StackReference":
            return { ...inputs, outputs: lastOutputs, secretOutputNames: [] };
        case "command:local:Command":
        case "command:remote:Command":
            // What a step prints differs from one run of it to the next: here, from one set of its scripts to another.
            return { ...inputs, stdout: `ran ${crypto.createHash("sha256").update(JSON.stringify([inputs.create, inputs.update])).digest("hex").slice(0, 16)}`, stderr: "" };
        default:
            return { ...inputs, stdout: "", stderr: "" };
    }
}

async function main(): Promise<void> {
    const [configJson, mode, outFile, secretKeysJson, probeJson] = process.argv.slice(2);
    const setup = JSON.parse(probeJson ?? "{}") as ProbeSetup;
    const probes: ProgramRun["probes"] = [];
    setProbeRunner(async (host, query) => {
        probes.push({ host: host.name, query });
        if (setup.unreachable?.includes(host.name)) {
            throw new Error(`ssh: connect to host ${host.address} port 22: No route to host`);
        }
        return setup.hosts?.[host.name] ?? emptyFacts();
    });
    // A failing program also rejects the runtime's own promises: the result below is what counts.
    process.on("unhandledRejection", () => undefined);
    const registrations: Registration[] = [];
    let outputs: Record<string, unknown> = {};
    const register = MockMonitor.prototype.registerResource;
    MockMonitor.prototype.registerResource = function (this: MockMonitor, req: any, callback: any) {
        return register.call(this, req, (err: any, response: any) => {
            if (!err) {
                const opts = req.toObject();
                registrations.push({
                    type: req.getType(), name: req.getName(), urn: response.getUrn(), parent: req.getParent(),
                    custom: req.getCustom(), dependencies: req.getDependenciesList(),
                    inputs: req.getObject()?.toJavaScript() ?? {},
                    additionalSecretOutputs: req.getAdditionalsecretoutputsList(),
                    ignoreChanges: opts.ignorechangesList ?? [],
                });
            }
            callback(err, response);
        });
    };
    const read = MockMonitor.prototype.readResource;
    MockMonitor.prototype.readResource = function (this: MockMonitor, req: any, callback: any) {
        return read.call(this, req, (err: any, response: any) => {
            if (!err) {
                registrations.push({
                    type: req.getType(), name: req.getName(), urn: response.getUrn(), parent: req.getParent(), custom: true,
                    dependencies: req.getDependenciesList(), inputs: req.getProperties()?.toJavaScript() ?? {},
                    additionalSecretOutputs: req.getAdditionalsecretoutputsList(), ignoreChanges: [], read: true,
                });
            }
            callback(err, response);
        });
    };
    const registerOutputs = MockMonitor.prototype.registerResourceOutputs;
    MockMonitor.prototype.registerResourceOutputs = function (this: MockMonitor, req: any, callback: any) {
        if (req.getUrn().endsWith("::pulumi:pulumi:Stack::control-plane-test")) {
            outputs = req.getOutputs()?.toJavaScript() ?? {};
        }
        return registerOutputs.call(this, req, callback);
    };
    await pulumi.runtime.setMocks({
        newResource: args => ({ id: `${args.name}-id`, state: mockState(args.type, args.name, args.inputs, setup.lastOutputs) }),
        call: args => args.inputs,
    }, "control-plane", "test", mode !== "up", "organization");
    pulumi.runtime.setAllConfig(Object.fromEntries(Object.entries(JSON.parse(configJson) as Record<string, unknown>)
        .map(([key, value]) => [`control-plane:${key}`, typeof value === "string" ? value : JSON.stringify(value)])),
    (JSON.parse(secretKeysJson ?? "[]") as string[]).map(key => `control-plane:${key}`));
    let error: string | undefined;
    let expected: Record<string, HostFacts> | undefined;
    try {
        // index.ts exports its program as a function, as the Node.js language host runs it.
        await pulumi.runtime.runInPulumiStack(async () => {
            const program = require(path.join(__dirname, "..", "..", "index")) as unknown;
            return typeof program === "function" ? await (program as () => Promise<unknown>)() : program;
        });
        expected = await new Promise(resolve => expectedFacts().apply(facts => resolve(facts)));
        await pulumi.runtime.disconnect();
    } catch (e) {
        error = e instanceof Error ? e.message : String(e);
    }
    // Written to a file: in mock mode pulumi.log writes to stdout.
    fs.writeFileSync(outFile, JSON.stringify({ registrations, outputs, error, probes, expectedFacts: expected } as ProgramRun));
    process.exit(0);
}

if (require.main === module) {
    main().catch(e => {
        process.stderr.write(String(e?.stack ?? e));
        process.exit(1);
    });
}
