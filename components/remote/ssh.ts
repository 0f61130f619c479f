// How the program reaches hosts with `ssh` from where `pulumi` runs (the etcd snapshot steps, the departures,
// the load balancer's drain around an API server's restart, the host probe), in one place: the options every
// such connection uses, with the host keys pinned in `hostKeys`, and the local step that carries the key.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { Machine } from "../config";
import { SshAccess } from "./host";
import { shq } from "./shell";

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

/**
 * Lines that read the SSH private key from stdin into a 0600 temp file, write the pinned host keys to a temp
 * known_hosts (by host name, through HostKeyAlias) and define `on NAME ADDRESS CMD`, which runs CMD there (its stdin is the caller's to give).
 * Both files are removed on exit.
 */
export function localSshLines(ssh: SshSettings): string[] {
    const pinned = pinnedHostLines(ssh);
    const [first, ...rest] = sshOptionGroups(ssh,
        { key: `"$secrets/key"`, knownHosts: `"$secrets/known_hosts"`, alias: `"$name"`, strict: `"$strict"` });
    const last = rest.pop()!;
    return [
        `umask 077`,
        `secrets=$(mktemp -d)`,
        `trap 'rm -rf "$secrets"' EXIT`,
        `cat > "$secrets/key"`,
        `[ -s "$secrets/key" ] || { echo "no SSH private key on stdin" >&2; exit 1; }`,
        ...(pinned.length > 0 ? [`printf '%s\\n' ${pinned.map(shq).join(" ")} > "$secrets/known_hosts"`]
            : [`: > "$secrets/known_hosts"`]),
        `command -v ssh >/dev/null || { echo "ssh (openssh-client) is required where pulumi runs to reach the hosts" >&2; exit 1; }`,
        `on() {`,
        `  local name=$1 address=$2 strict=no`,
        `  shift 2`,
        `  if grep -q "^$name " "$secrets/known_hosts"; then strict=yes; fi`,
        // The options of components/remote/ssh.ts, one group a line.
        `  ssh ${first.join(" ")} \\`,
        ...rest.map(group => `    ${group.join(" ")} \\`),
        `    ${last.join(" ")} ${shq(ssh.user)}@"$address" "$@"`,
        `}`,
    ];
}

/**
 * A step where `pulumi` runs whose scripts reach the hosts over SSH: the key goes on stdin (a secret in
 * state); a preview without the key keeps the recorded one, so the plan shows real changes only.
 */
export function sshLocalStep(name: string, ssh: SshAccess, scripts: Pick<command.local.CommandArgs, "create" | "update" | "delete">,
    opts: pulumi.CustomResourceOptions): command.local.Command {
    return new command.local.Command(name, { ...scripts, stdin: ssh.privateKey, addPreviousOutputInEnv: false }, {
        ...opts,
        additionalSecretOutputs: ["stdin"],
        ignoreChanges: [...(opts.ignoreChanges ?? []), ...(ssh.keyMissing ? ["stdin"] : [])],
    });
}

/** A line (after `localSshLines`) that runs `text` as root on `host`, the script on stdin through a quoted heredoc. */
export function onHostAsRoot(host: Machine, text: string, end: string): string {
    return [`on ${shq(host.name)} ${shq(host.address)} 'sudo -n bash -s' <<'${end}'`, ...text.trimEnd().split("\n"), end].join("\n");
}
