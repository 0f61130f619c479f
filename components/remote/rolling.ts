// Rolling a change one node at a time, without slowing down a first install.
//
// A daemon's service step restarts it on update and then waits, bounded, until the daemon is healthy again
// (`ServiceSpec.afterChange`); the next node's steps (binary, files, service) depend on it
// (`DaemonSpec.rollAfter`), so what a running daemon reads never changes under it. A service's create starts
// it without waiting, so on an empty stack the chain costs only each node's downloads and file writes in turn,
// and the component's own gates wait for all nodes together. A change reaches the nodes in the order of the
// `nodes` list, each only once the one before it is back.
//
// Some conditions are seen from another host (the gateway sees an API server back in the load balancer):
// `changeGate` is a step there that passes at once when created and, whenever what it watches changes,
// waits until its probe passes.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { Host } from "./host";
import { asRoot, script, shq } from "./shell";
import { waitLines, WaitSpec } from "./steps";

/** The scripts of a change gate: nothing to do on create, the bounded poll on update. Read-only, no delete. */
export function changeGateScripts(spec: WaitSpec, fingerprint: string): { create: string; update: string } {
    const header = `# waits whenever what it watches changes: ${fingerprint}`;
    return {
        create: script(header, `echo ${shq(`created: ${spec.what} is checked by the install's own gates`)}`),
        update: script(header, ...waitLines(spec)),
    };
}

/** A step on `host` that waits for `spec` whenever `fingerprint` changes (and not when created). */
export function changeGate(name: string, host: Host, spec: WaitSpec, fingerprint: pulumi.Input<string>,
    opts: pulumi.CustomResourceOptions): command.remote.Command {
    const scripts = pulumi.output(fingerprint).apply(f => changeGateScripts(spec, f));
    return new command.remote.Command(name, {
        connection: host.connection,
        create: scripts.apply(s => asRoot(s.create)),
        update: scripts.apply(s => asRoot(s.update)),
        addPreviousOutputInEnv: false,
    }, pulumi.mergeOptions(host.stepOptions, opts));
}

/**
 * One component per host, in order, each given the one before it (undefined for the first), so that each
 * can roll after the previous one.
 */
export function oneAtATime<T>(hosts: Host[], make: (host: Host, previous: T | undefined, index: number) => T): T[] {
    const made: T[] = [];
    hosts.forEach((host, i) => made.push(make(host, made[i - 1], i)));
    return made;
}
