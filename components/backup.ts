// No data lost: etcd snapshots kept where `pulumi` runs, and a new stack's etcd restored from one.
//
// - `EtcdBackup` (when: "change") runs before any etcd step: every member depends on it. Its script carries
//   a fingerprint of every member's restart fingerprint, so it runs again (and takes a snapshot) exactly
//   when some member will restart or be removed; an `up` that changes nothing takes none. On an empty stack
//   no member holds data yet: it says so and takes none.
// - `EtcdBackup` (when: "destroy") depends on every etcd member, so `destroy` deletes it first, while etcd
//   still runs: its delete takes the snapshot before any data dir is removed.
// - `EtcdRestoreUpload` copies `restoreFrom` to every control node before the members' data dir steps,
//   which restore it with `etcdutl snapshot restore` (components/etcd.ts).
//
// Each is a local command (bash where `pulumi` runs) that reaches the nodes with `ssh`: the SSH key arrives
// on stdin (a secret) into a 0600 temp file removed on exit, never on a command line or in the environment;
// host keys pinned in `hostKeys` are checked (others are accepted, as the remote steps do).
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { ClusterConfig, expandHome, Machine } from "./config";
import { ETCD_CTL_FUNCTION, ETCD_DATA_DIR, RESTORE_SNAPSHOT, RestoreSpec } from "./etcd";
import { SshAccess } from "./remote/host";
import { childOptions } from "./remote/options";
import { script, shq } from "./remote/shell";
import { localSshLines, SshSettings, sshLocalStep, sshSettings } from "./remote/ssh";

/** Exit status of the node script when the node holds no etcd data (a new cluster): nothing to back up. */
const NO_DATA = 3;

/** The heredoc delimiter of the member script inside the local one. */
const MEMBER_SCRIPT_END = "KTHW_MEMBER_SCRIPT";

/**
 * The script run on a member (as root, read from stdin by `sudo -n bash -s`): exits ${NO_DATA} when the node holds no etcd data; else checks the
 * member is healthy, saves a snapshot to a temp file, checks it with `etcdutl snapshot status`, reports the
 * status and sha256 on stderr and streams the snapshot on stdout. Leaves nothing behind.
 */
export function memberSnapshotScript(): string {
    const body = [
        `if [ ! -d ${ETCD_DATA_DIR}/member ]; then echo "$(hostname): no etcd data in ${ETCD_DATA_DIR}" >&2; exit ${NO_DATA}; fi`,
        ETCD_CTL_FUNCTION,
        `etcd_ctl endpoint health >/dev/null 2>&1 || { echo "$(hostname): etcd is not healthy here" >&2; exit 1; }`,
        `tmp=$(mktemp -d)`,
        `trap 'rm -rf "$tmp"' EXIT`,
        `etcd_ctl --command-timeout=120s snapshot save "$tmp/snapshot.db" >"$tmp/log" 2>&1 ||`,
        `  { cat "$tmp/log" >&2; echo "$(hostname): etcdctl snapshot save failed" >&2; exit 1; }`,
        `if command -v etcdutl >/dev/null; then status=$(etcdutl snapshot status "$tmp/snapshot.db" -w json)`,
        `else status=$(ETCDCTL_API=3 etcdctl snapshot status "$tmp/snapshot.db" -w json 2>/dev/null); fi ||`,
        `  { echo "$(hostname): the snapshot fails etcdutl snapshot status" >&2; exit 1; }`,
        `echo "kthw-status $status" >&2`,
        `echo "kthw-sha256 $(sha256sum "$tmp/snapshot.db" | cut -d' ' -f1)" >&2`,
        `cat "$tmp/snapshot.db"`,
    ];
    // Run by `sudo bash -s` from stdin: one function, read whole before it runs.
    return script(`main() {`, ...body.map(line => `  ${line}`), `}`, `main`);
}

export interface SnapshotSpec {
    nodes: Machine[];
    ssh: SshSettings;
    /** Absolute directory where pulumi runs; the stack's snapshots go to `<dir>/<stack>/`. */
    backupDir: string;
    keep: number;
    stack: string;
    /** Why: "before-change" or "before-destroy"; part of the file name. */
    reason: string;
    /** Snapshots are due whenever this changes (every member's restart fingerprint); none: before destroy. */
    fingerprint?: string;
}

/**
 * Where `pulumi` runs: asks each member in turn for a snapshot; the first healthy member's is checked
 * (size, sha256 against the member's) and written atomically, 0600, to
 * `<backupDir>/<stack>/<stack>-<UTC time>-<reason>.db` with its status beside it (`.json`); the newest
 * `keep` are kept. No member holding data (a new cluster): none is taken. Any other failure fails the step,
 * naming each member's error, before anything on the hosts changes.
 */
export function snapshotScript(spec: SnapshotSpec): string {
    const dir = path.posix.join(spec.backupDir, spec.stack);
    return script(
        spec.fingerprint === undefined ? `# a snapshot before destroy removes etcd's data`
            : `# a snapshot whenever an etcd member will restart or be removed: ${spec.fingerprint}`,
        ...localSshLines(spec.ssh),
        `dir=${shq(dir)}`,
        `mkdir -p "$dir"`,
        `chmod 0700 "$dir"`,
        `stamp=$(date -u +%Y%m%dT%H%M%SZ)`,
        `file="$dir/${spec.stack}-$stamp-${spec.reason}.db"`,
        `part="$file.partial"`,
        // The member's script goes on ssh's stdin: the command line stays `sudo -n bash -s`.
        `member_script=$(cat <<'${MEMBER_SCRIPT_END}'`,
        ...memberSnapshotScript().trimEnd().split("\n"),
        MEMBER_SCRIPT_END,
        `)`,
        `errors=()`,
        `empty=0`,
        `started=$SECONDS`,
        `members=(${spec.nodes.map(n => shq(`${n.name}=${n.address}`)).join(" ")})`,
        `for member in "\${members[@]}"; do`,
        `  name=\${member%%=*}`,
        `  rc=0`,
        `  on "$name" "\${member#*=}" 'sudo -n bash -s' <<<"$member_script" >"$part" 2>"$secrets/err" || rc=$?`,
        `  if [ "$rc" -eq ${NO_DATA} ]; then empty=$((empty + 1)); continue; fi`,
        `  if [ "$rc" -ne 0 ]; then errors+=("$name: $(tail -n 3 "$secrets/err" | tr '\\n' ' ')(exit $rc)"); continue; fi`,
        `  want=$(sed -n 's/^kthw-sha256 //p' "$secrets/err")`,
        `  got=$(sha256sum "$part" | cut -d' ' -f1)`,
        `  if [ ! -s "$part" ] || [ "$want" != "$got" ]; then errors+=("$name: the snapshot arrived damaged (sha256 $got, want $want)"); continue; fi`,
        `  status=$(sed -n 's/^kthw-status //p' "$secrets/err")`,
        `  printf '{"stack":"%s","member":"%s","taken":"%s","reason":"%s","sha256":"%s","status":%s}\\n' \\`,
        `    ${shq(spec.stack)} "$name" "$stamp" ${shq(spec.reason)} "$got" "$status" >"$file.json"`,
        `  mv -f "$part" "$file"`,
        `  find "$dir" -maxdepth 1 -name '*.db' -printf '%f\\n' | sort | head -n -${spec.keep} |`,
        `    while read -r old; do rm -f "$dir/$old" "$dir/$old.json"; done`,
        `  echo "etcd snapshot of $name: $file ($(stat -c %s "$file") bytes, $((SECONDS - started))s), status $status"`,
        `  exit 0`,
        `done`,
        `rm -f "$part"`,
        `if [ "$empty" -eq ${spec.nodes.length} ]; then`,
        `  echo "no etcd member holds data yet (a new cluster): no snapshot to take"`,
        `  exit 0`,
        `fi`,
        `echo "no etcd snapshot could be taken, so nothing was changed; each member said:" >&2`,
        `printf '  %s\\n' "\${errors[@]}" >&2`,
        `exit 1`,
    );
}

/** Copies the snapshot file to every node (0600, as root), checking its sha256 there. */
export function restoreUploadScript(nodes: Machine[], ssh: SshSettings, snapshot: string, sha256: string): string {
    return script(
        `# restore etcd from ${snapshot} (sha256 ${sha256})`,
        ...localSshLines(ssh),
        `snapshot=${shq(snapshot)}`,
        `[ "$(sha256sum "$snapshot" | cut -d' ' -f1)" = ${shq(sha256)} ] ||`,
        `  { echo "$snapshot changed since the program read it" >&2; exit 1; }`,
        `members=(${nodes.map(n => shq(`${n.name}=${n.address}`)).join(" ")})`,
        `for member in "\${members[@]}"; do`,
        `  name=\${member%%=*}`,
        `  address=\${member#*=}`,
        `  on "$name" "$address" ${shq(`sudo -n sh -c "umask 077 && cat > ${RESTORE_SNAPSHOT}"`)} <"$snapshot" ||`,
        `    { echo "copying $snapshot to $name failed" >&2; exit 1; }`,
        `  there=$(on "$name" "$address" ${shq(`sudo -n sha256sum ${RESTORE_SNAPSHOT}`)} </dev/null | cut -d' ' -f1)`,
        `  if [ "$there" != ${shq(sha256)} ]; then`,
        `    on "$name" "$address" ${shq(`sudo -n rm -f ${RESTORE_SNAPSHOT}`)} </dev/null || true`,
        `    echo "the snapshot arrived damaged on $name (sha256 $there)" >&2`,
        `    exit 1`,
        `  fi`,
        `  echo "copied $snapshot to $name:${RESTORE_SNAPSHOT}"`,
        `done`,
    );
}

/** Reads `restoreFrom` (checked to exist by validation): its sha256 and the restored cluster's token. */
export function restoreSpec(config: ClusterConfig): RestoreSpec | undefined {
    if (config.restoreFrom === "") {
        return undefined;
    }
    const sha256 = crypto.createHash("sha256").update(fs.readFileSync(expandHome(config.restoreFrom))).digest("hex");
    return { sha256, token: `${config.etcdClusterToken}-restored-${sha256.slice(0, 12)}` };
}

export interface EtcdBackupArgs {
    config: ClusterConfig;
    ssh: SshAccess;
    /** "change": before any member restarts or is removed; "destroy": before `destroy` removes the data. */
    when: "change" | "destroy";
    /** For "change": every member's restart fingerprint (the config's etcd inputs before members exist). */
    fingerprint?: pulumi.Input<string>;
}

/** A local command that takes an etcd snapshot where `pulumi` runs: see the top of this file. */
export class EtcdBackup extends pulumi.ComponentResource {
    readonly step: command.local.Command;

    constructor(name: string, args: EtcdBackupArgs, opts: pulumi.ComponentResourceOptions = {}) {
        super("kthw:index:EtcdBackup", name, {}, opts);
        const { config, ssh } = args;
        const spec = (fingerprint?: string): SnapshotSpec => ({
            nodes: config.nodes, ssh: sshSettings(ssh), backupDir: path.resolve(expandHome(config.backupDir)),
            keep: config.backupKeep, stack: pulumi.getStack(), reason: `before-${args.when}`, fingerprint,
        });
        const bash = (text: string) => `bash -c ${shq(text)}`;
        const scripts = args.when === "change"
            ? pulumi.output(args.fingerprint ?? "").apply(f => {
                const take = bash(snapshotScript(spec(f)));
                return { create: take, update: take, delete: undefined as string | undefined };
            })
            : pulumi.output({
                create: bash(script(`echo ${shq("destroy takes an etcd snapshot first (the delete of this step)")}`)),
                update: undefined as string | undefined,
                delete: bash(snapshotScript(spec())) as string | undefined,
            });
        this.step = sshLocalStep(`${name}-snapshot`, ssh, {
            create: scripts.create,
            update: scripts.update as pulumi.Output<string>,
            delete: scripts.delete as pulumi.Output<string>,
        }, childOptions(this, opts.dependsOn));
        this.registerOutputs({});
    }
}

export interface EtcdRestoreUploadArgs {
    config: ClusterConfig;
    ssh: SshAccess;
    restore: RestoreSpec;
    /**
     * The cluster exists already (restored by an earlier up, `restoreFrom` left set): the copy keeps what it did
     * then, even when the nodes change, and copies nothing more.
     */
    done?: boolean;
}

/** Copies `restoreFrom` to every control node, for the members' data dir steps to restore. */
export class EtcdRestoreUpload extends pulumi.ComponentResource {
    readonly step: command.local.Command;

    constructor(name: string, args: EtcdRestoreUploadArgs, opts: pulumi.ComponentResourceOptions = {}) {
        super("kthw:index:EtcdRestoreUpload", name, {}, opts);
        const { config, ssh, restore } = args;
        const text = restoreUploadScript(config.nodes, sshSettings(ssh), path.resolve(expandHome(config.restoreFrom)),
            restore.sha256);
        this.step = sshLocalStep(`${name}-upload`, ssh, { create: `bash -c ${shq(text)}` },
            { ...childOptions(this, opts.dependsOn), ignoreChanges: args.done ? ["create"] : [] });
        this.registerOutputs({});
    }
}
