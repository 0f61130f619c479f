// How the program reaches hosts with `ssh` from where `pulumi` runs (the etcd snapshot steps, the host probe),
// in one place: the options every such connection uses, with the host keys pinned in `hostKeys`.
import { SshAccess } from "./host";

/** What an `ssh` from where `pulumi` runs needs to know, the key aside. */
export interface SshSettings {
    user: string;
    port: number;
    hostKeys: Record<string, string>;
    dialTimeoutSeconds: number;
    dialAttempts: number;
}

export function sshSettings(ssh: SshAccess): SshSettings {
    return {
        user: ssh.user, port: ssh.port, hostKeys: ssh.hostKeys,
        dialTimeoutSeconds: ssh.dialTimeoutSeconds, dialAttempts: ssh.dialAttempts,
    };
}

/** The known_hosts lines of the pinned host keys, by host name (`ssh` finds them through HostKeyAlias). */
export function pinnedHostLines(ssh: SshSettings): string[] {
    return Object.entries(ssh.hostKeys).map(([name, key]) => `${name} ${key}`);
}

/** Where one connection's files are and who it goes to; each a literal value or, in a bash script, a quoted expansion. */
export interface SshTarget {
    /** The private key file (0600). */
    key: string;
    /** The known_hosts file that holds `pinnedHostLines`. */
    knownHosts: string;
    /** The host's name, its key's name in known_hosts. */
    alias: string;
    /** `yes` when the host's key is pinned, else `no` (accepted, as the remote steps do). */
    strict: string;
}

/**
 * The options of every `ssh` from where `pulumi` runs, as argv words in groups (a bash script writes one
 * group a line): no user config, only the given key, never a prompt, the host key checked against the pinned
 * ones, dials bounded like the remote steps' (`sshDialTimeoutSeconds` x `sshDialAttempts`), the port last.
 * The values of `at` are used as given: words for execFile, or bash expansions such as `"$secrets/key"`.
 */
export function sshOptionGroups(ssh: SshSettings, at: SshTarget): string[][] {
    return [
        ["-F", "/dev/null", "-i", at.key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"],
        ["-o", `UserKnownHostsFile=${at.knownHosts}`, "-o", "GlobalKnownHostsFile=/dev/null"],
        ["-o", `HostKeyAlias=${at.alias}`, "-o", `StrictHostKeyChecking=${at.strict}`, "-o", "LogLevel=ERROR"],
        ["-o", `ConnectTimeout=${ssh.dialTimeoutSeconds}`, "-o", `ConnectionAttempts=${ssh.dialAttempts}`],
        ["-p", `${ssh.port}`],
    ];
}
