// The SDK's debug lines, which print secrets and cost a call to the engine each.
//
// The Node.js SDK sends the engine a debug line of its own for each step of each resource's registration
// (`log.debug` in @pulumi/pulumi/runtime/resource.js, 3.276.0): "Registering resource", "RegisterResource RPC
// prepared", "RegisterResource RPC finished: ...; resp: " followed by the engine's whole response, outputs
// included, and the same for reads. Secret outputs are plain text there: the SSH private key of every
// remote step's connection, the TLS private keys, the kubeconfigs. The engine passes those lines on to
// whatever shows its events, `pulumi up --json` and `pulumi up --debug`: 147 private keys in one no-change
// `up --json` of this program, the SSH key 112 times and TLS keys 35. Each line is also a gRPC call of its own,
// one after the other: 511 of them in that `up`, about half a second of its wall time on the lab (alternating
// runs, README).
//
// So the SDK's debug lines are dropped, unless KTHW_SDK_DEBUG_LOGS is set (to debug the SDK itself, knowing
// what they print). The program's own debug lines (where a run's time goes, which `npm run bench` reads) go
// to the engine through `debug` below, whatever was dropped.
import * as pulumi from "@pulumi/pulumi";

type Debug = typeof pulumi.log.debug;

// The SDK's modules all share this one object (`__importStar` of an ES module returns the module itself).
const sdkLog = pulumi.log as { debug: Debug };
const toEngine: Debug = sdkLog.debug;

/** A debug line of the program's own: it carries no secret and reaches the engine whatever was dropped. */
export function debug(message: string): Promise<void> {
    return toEngine(message);
}

/** Drops the SDK's own debug lines (every `pulumi.log.debug` but `debug` above), unless KTHW_SDK_DEBUG_LOGS is set. */
export function dropSdkDebugLogs(env: NodeJS.ProcessEnv = process.env): void {
    sdkLog.debug = env.KTHW_SDK_DEBUG_LOGS ? toEngine : () => Promise.resolve();
}
