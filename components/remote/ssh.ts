// How the program reaches hosts with `ssh` from where `pulumi` runs (the etcd snapshot steps, the departures,
// the load balancer's drain around an API server's restart, the host probe), in one place: the options every
// such connection uses, with the host keys pinned in `hostKeys`, and the local step that carries the key.
//
// Those sessions share one connection per host (OpenSSH's ControlMaster): the first one opens it, the others
// of the same run (the probe, then each drain step on the gateway) open a session on it instead of a new
// connection, which saves a key exchange, an authentication and a login each (about a second on the lab's
// emulated gateway). The connection closes `SHARED_CONNECTION_SECONDS` after its last session, or within 15 s
// of its host going away (keepalives). Its socket is in a directory only this user can enter, named after the
// key and the pinned host keys: only a session that could open the connection itself uses it.
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { Machine } from "../config";
import { SshAccess } from "./host";
import { script, shq } from "./shell";

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

/** How long a shared connection stays open after its last session. */
export const SHARED_CONNECTION_SECONDS = 30;

/** The longest directory for the sockets: a Unix socket's path has at most 107 bytes (ssh adds 17 while it binds). */
const SHARED_DIR_MAX = 50;

/** The directory of the shared connections' sockets under `tmp` (`$TMPDIR`, or /tmp), for user `uid` (values or bash expansions). */
export function sharedConnectionDir(tmp: string, uid: number | string): string {
    return `${tmp}/kthw-ssh-${uid}`;
}

const hex16 = (...parts: (string | Buffer)[]) => {
    const hash = crypto.createHash("sha256");
    parts.forEach(part => hash.update(part));
    return hash.digest("hex").slice(0, 16);
};

/**
 * A shared connection's socket, in `dir`: named after who may share it (the key and the pinned host keys, as
 * ssh is given them) and where it goes (`user@address:port`).
 */
export function sharedConnectionSocket(dir: string, key: string | Buffer, knownHosts: string, target: string): string {
    return `${dir}/${hex16(key, knownHosts)}-${hex16(target)}`;
}

/** The ssh options that open or join the shared connection at `socket`. */
export function sharedConnectionOptions(socket: string): string[] {
    return ["-o", "ControlMaster=auto", "-o", `ControlPath=${socket}`, "-o", `ControlPersist=${SHARED_CONNECTION_SECONDS}`,
        "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"];
}

/**
 * The shared connection's socket for a session to `target` (`user@address:port`) with the key and known_hosts
 * text given, under `tmp`: none (a connection of its own) when the directory is not this user's alone (0700,
 * owned, no symlink), or its path is too long.
 */
export function sharedConnection(key: string | Buffer, knownHosts: string, target: string, tmp: string, uid: number,
    fs: { mkdirSync(p: string, o: { mode: number }): unknown; lstatSync(p: string): { isDirectory(): boolean; uid: number; mode: number } }): string | undefined {
    const dir = sharedConnectionDir(tmp, uid);
    try {
        try {
            fs.mkdirSync(dir, { mode: 0o700 });
        } catch {
            // There already (checked below), or not to be made: no shared connection then.
        }
        const st = fs.lstatSync(dir);
        if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o777) !== 0o700 || dir.length > SHARED_DIR_MAX) {
            return undefined;
        }
    } catch {
        return undefined;
    }
    return sharedConnectionSocket(dir, key, knownHosts, target);
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
        // The shared connection (sharedConnection, the same rule): its directory this user's alone, or none.
        `mux_prefix=''`,
        `mux_dir=${sharedConnectionDir("${TMPDIR:-/tmp}", "$(id -u)")}`,
        `mkdir -m 0700 "$mux_dir" 2>/dev/null || true`,
        `if [ -d "$mux_dir" ] && [ ! -L "$mux_dir" ] && [ -O "$mux_dir" ] &&`,
        `  [ "$(stat -c %a "$mux_dir")" = 700 ] && [ \${#mux_dir} -le ${SHARED_DIR_MAX} ] &&`,
        `  mux_id=$(cat "$secrets/key" "$secrets/known_hosts" | sha256sum 2>/dev/null); then`,
        `  mux_prefix=$mux_dir/\${mux_id:0:16}`,
        `fi`,
        `on() {`,
        `  local name=$1 address=$2 strict=no shared=() target`,
        `  shift 2`,
        `  if grep -q "^$name " "$secrets/known_hosts"; then strict=yes; fi`,
        `  if [ -n "$mux_prefix" ]; then`,
        `    target=$(printf '%s' ${shq(ssh.user)}@"$address":${ssh.port} | sha256sum)`,
        `    shared=(${sharedConnectionOptions(`"$mux_prefix-\${target:0:16}"`).join(" ")})`,
        `  fi`,
        // The options of components/remote/ssh.ts, one group a line.
        `  ssh ${first.join(" ")} \\`,
        ...rest.map(group => `    ${group.join(" ")} \\`),
        `    "\${shared[@]}" ${last.join(" ")} ${shq(ssh.user)}@"$address" "$@"`,
        `}`,
    ];
}

/**
 * A step where `pulumi` runs whose scripts reach the hosts over SSH: the key goes on stdin (a secret in
 * state); a preview without the key keeps the recorded one, so the plan shows real changes only.
 */
export function sshLocalStep(name: string, ssh: SshAccess,
    scripts: Pick<command.local.CommandArgs, "create" | "update" | "delete" | "triggers">,
    opts: pulumi.CustomResourceOptions): command.local.Command {
    return new command.local.Command(name, { ...scripts, stdin: ssh.privateKey, addPreviousOutputInEnv: false }, {
        ...opts,
        additionalSecretOutputs: ["stdin"],
        ignoreChanges: [...(opts.ignoreChanges ?? []), ...(ssh.keyMissing ? ["stdin"] : [])],
    });
}

/**
 * A local bash script (the key on its stdin, `localSshLines`) that runs `text` as root on `host` in one session,
 * after the comment lines of `header`.
 */
export function scriptOnHost(ssh: SshSettings, host: Machine, text: string, end: string, header: string[] = []): string {
    return script(...header, ...localSshLines(ssh), onHostAsRoot(host, text, end));
}

/** A line (after `localSshLines`) that runs `text` as root on `host`, the script on stdin through a quoted heredoc. */
export function onHostAsRoot(host: Machine, text: string, end: string): string {
    return [`on ${shq(host.name)} ${shq(host.address)} 'sudo -n bash -s' <<'${end}'`, ...text.trimEnd().split("\n"), end].join("\n");
}
