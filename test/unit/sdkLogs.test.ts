// The SDK's debug lines (a resource's outputs, secrets included, in plain text; a gRPC call each) are dropped,
// and the program's own still reach the engine: a gRPC server stands in for the engine, and resources are
// registered under the SDK's mocks as the program registers them.
import { strict as assert } from "assert";
import { after, before, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import * as pulumi from "@pulumi/pulumi";
import { debug, dropSdkDebugLogs } from "../../components/sdkLogs";

/* eslint-disable @typescript-eslint/no-var-requires */
const { EngineService } = require("@pulumi/pulumi/proto/engine_grpc_pb");
const enginePb = require("@pulumi/pulumi/proto/engine_pb");
const { Empty } = require("google-protobuf/google/protobuf/empty_pb");
const settings = require("@pulumi/pulumi/runtime/settings");
/* eslint-enable @typescript-eslint/no-var-requires */

/** A secret the mocks give every resource as an output, as the tls provider gives a private key. */
const SECRET = "KCP-TEST-PRIVATE-KEY-BODY";
/** The sign the engine marks a secret with (the SDK's `specialSecretSig`). */
const secretValue = (value: string) => ({ "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", value });

const received: string[] = [];
const server = new grpc.Server();

before(async () => {
    type Call = { request: { getMessage(): string } };
    type Reply = (err: null, response: unknown) => void;
    server.addService(EngineService, {
        log: (call: Call, reply: Reply) => { received.push(call.request.getMessage()); reply(null, new Empty()); },
        getRootResource: (_: unknown, reply: Reply) => reply(null, new enginePb.GetRootResourceResponse()),
        setRootResource: (_: unknown, reply: Reply) => reply(null, new enginePb.SetRootResourceResponse()),
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0",
        grpc.ServerCredentials.createInsecure(), (err, bound) => err ? reject(err) : resolve(bound)));
    // The SDK talks to this engine; the mocks keep the address (setMockOptions takes it from the options).
    settings.resetOptions("project", "stack", -1, `127.0.0.1:${port}`, "", false, "organization");
    await pulumi.runtime.setMocks({
        newResource: args => ({ id: `${args.name}-id`, state: { ...args.inputs, privateKey: secretValue(SECRET) } }),
        call: args => args.inputs,
    }, "project", "stack", false);
});

after(() => server.forceShutdown());

class Thing extends pulumi.CustomResource {
    declare readonly privateKey: pulumi.Output<string>;
    constructor(name: string) {
        super("kthw:test:Thing", name, { privateKey: undefined });
    }
}

/** Registers a resource and waits for its outputs, then for every log line sent so far (they go in order). */
async function register(name: string): Promise<string[]> {
    const from = received.length;
    const key = new Thing(name).privateKey;
    assert.equal(await pulumi.isSecret(key), true, "the output is a secret");
    await debug(`registered ${name}`);
    return received.slice(from);
}

test("asked for (KTHW_SDK_DEBUG_LOGS), the SDK's lines reach the engine, a secret output in plain text among them", async () => {
    dropSdkDebugLogs({ KTHW_SDK_DEBUG_LOGS: "1" });
    const lines = await register("kept");
    assert.ok(lines.some(line => line.startsWith("Registering resource: t=kthw:test:Thing, name=kept")), lines.join("\n"));
    assert.ok(lines.some(line => line.startsWith("RegisterResource RPC finished") && line.includes(SECRET)),
        "the SDK prints the engine's response, the secret in it (what the drop is for)");
    assert.equal(lines[lines.length - 1], "registered kept");
});

test("by default the SDK's lines are dropped: the engine gets the program's own line alone", async () => {
    dropSdkDebugLogs({});
    const lines = await register("dropped");
    assert.deepEqual(lines, ["registered dropped"]);
    assert.ok(!received.slice(-1)[0].includes(SECRET));
});
