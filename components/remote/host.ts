// How the program reaches a machine: SSH settings shared by every remote step, with bounded dialing so an
// unreachable host fails a step in seconds (naming the host) instead of retrying for minutes.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { ClusterConfig, Machine } from "../config";

export interface SshAccess {
    user: string;
    port: number;
    /** The private key, a secret; a placeholder when `keyMissing`. */
    privateKey: pulumi.Output<string>;
    hostKeys: Record<string, string>;
    dialTimeoutSeconds: number;
    dialAttempts: number;
    /**
     * True in a preview without the key file (a pull-request check): steps keep the connection recorded in
     * state, so the plan shows only real changes.
     */
    keyMissing: boolean;
}

/** A machine plus everything a remote step needs to reach it. */
export interface Host extends Machine {
    connection: command.types.input.remote.ConnectionArgs;
    /** Resource options every step on this host carries. */
    stepOptions: pulumi.CustomResourceOptions;
}

export function sshAccess(config: ClusterConfig, privateKey: pulumi.Output<string>, keyMissing: boolean): SshAccess {
    return {
        user: config.sshUser,
        port: config.sshPort,
        privateKey,
        hostKeys: config.hostKeys,
        dialTimeoutSeconds: config.sshDialTimeoutSeconds,
        dialAttempts: config.sshDialAttempts,
        keyMissing,
    };
}

export function hostFor(machine: Machine, ssh: SshAccess): Host {
    return {
        ...machine,
        connection: {
            host: machine.address,
            port: ssh.port,
            user: ssh.user,
            privateKey: ssh.privateKey,
            hostKey: ssh.hostKeys[machine.name],
            perDialTimeout: ssh.dialTimeoutSeconds,
            // The provider dials dialErrorLimit + 1 times.
            dialErrorLimit: ssh.dialAttempts - 1,
        },
        stepOptions: ssh.keyMissing ? { ignoreChanges: ["connection"] } : {},
    };
}
