// Rolling a change one node at a time, without slowing down a first install.
//
// A daemon's service step restarts it on update and then waits, bounded, until the daemon is healthy again
// (`ServiceSpec.afterChange`); the next node's steps (binary, files, service) depend on it
// (`DaemonSpec.rollAfter`), so what a running daemon reads never changes under it. A service's create starts
// it without waiting, so on an empty stack the chain costs only each node's downloads and file writes in turn,
// and the component's own gates wait for all nodes together. A change reaches the nodes in the order of the
// `nodes` list, each only once the one before it is back.
//
// Some actions of a change belong to another host: the gateway takes an API server out of the load balancer
// before it restarts and back in once it answers. `changeStep` is such an action, run from where `pulumi`
// runs over SSH: created, it does nothing and reaches no host (a first install waits for no session to the
// gateway); whenever what it follows changes, it runs its script on the host.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { Machine } from "../config";
import { Host, SshAccess } from "./host";
import { script, shq } from "./shell";
import { scriptOnHost, sshLocalStep, sshSettings, SshSettings } from "./ssh";

/** What a change step does on its host, in words and as script lines (run as root). */
export interface ChangeAction {
    what: string;
    lines: string[];
    /**
     * The action runs when the step is created too: the step is new beside a running installation (a stack
     * deployed before the step existed), so a change in the same run must not go without it.
     */
    onCreate?: boolean;
}

/**
 * The local scripts of a change step: a no-op on create (unless `onCreate`), the action on `host` over SSH on
 * update. No delete.
 */
export function changeStepScripts(host: Machine, action: ChangeAction, follows: string, ssh: SshSettings):
    { create: string; update: string } {
    if (/[\r\n]/.test(follows)) {
        throw new Error(`change step on ${host.name}: what it follows must be one line (a fingerprint), not ${JSON.stringify(follows.slice(0, 80))}`);
    }
    const header = `# runs on ${host.name} whenever what it follows changes: ${follows}`;
    const update = scriptOnHost(ssh, host, script(`# ${action.what}`, ...action.lines), "KTHW_CHANGE_SCRIPT", [header]);
    return {
        create: action.onCreate ? update : script(header, `echo ${shq(`created: nothing to do on a first install (${action.what})`)}`),
        update,
    };
}

/** A step that runs `action` on `host` whenever `follows` changes (and, unless `action.onCreate`, not when created). */
export function changeStep(name: string, ssh: SshAccess, host: Machine, action: ChangeAction,
    follows: pulumi.Input<string>, opts: pulumi.CustomResourceOptions): command.local.Command {
    const scripts = pulumi.output(follows).apply(f => changeStepScripts(host, action, f, sshSettings(ssh)));
    return sshLocalStep(name, ssh, {
        create: scripts.apply(s => `bash -c ${shq(s.create)}`),
        update: scripts.apply(s => `bash -c ${shq(s.update)}`),
    }, opts);
}

/**
 * One component per host, in order, each given the one before it (undefined for the first), so that each
 * can roll after the previous one. With `allAtOnce` (an empty stack: the daemons run nowhere yet, so there is
 * nothing to roll and nothing that must keep serving) each is given none: every node's steps go at once.
 */
export function oneAtATime<T>(hosts: Host[], make: (host: Host, previous: T | undefined, index: number) => T,
    options: { allAtOnce?: boolean } = {}): T[] {
    const made: T[] = [];
    hosts.forEach((host, i) => made.push(make(host, options.allAtOnce ? undefined : made[i - 1], i)));
    return made;
}
