// The host probe: what each host has now of what the program installs, read in ONE ssh session per host per
// program run, every host in parallel, before any resource is registered.
//
// Before the program constructs its resources, index.ts opens each host's session (`connectProbes`: ssh, login,
// sudo, then bash waits for its script). While the program constructs them (synchronously), steps say what they
// want observed on their host (`observe`: files, units, addresses, kernel parameters, versions); once
// construction is over index.ts calls `startProbes`, each session gets its script, and the facts reach whoever
// asked (drift markers, drift.ts; the version skew refusal, preflight.ts). The remote side is a fixed
// read-only bash script, on ssh's stdin to `sudo -n bash -s` as the snapshot steps send theirs; what to observe
// is data in a quoted heredoc (never expanded), one item a line.
// It prints one line per fact: sha256 sums, modes, owners, unit states, never a file's content. A binary's sum
// is kept (stack output `probeSums`) with the file's identity (size, inode, times): the next run does not read
// the binary again while that holds, about 300 MB a control node. So is the line its `--version` printed (stack
// output `probeVersions`): the next run does not start it again (0.16-0.21 s a control node on an idle lab, for
// kube-apiserver and etcd, on the path of every step).
//
// Under Pulumi's mocks there is no host: tests feed facts with `setProbeRunner`.
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { Machine } from "../config";
import { FAST_SHA256, script } from "./shell";
import { pinnedHostLines, sharedConnection, sharedConnectionOptions, SshSettings, sshOptionGroups } from "./ssh";
import { refusal } from "../traces";
import { debug } from "../sdkLogs";

/** An address that should be on an interface. */
export interface AddressQuery {
    /** The interface, e.g. `lo`. */
    device: string;
    /** The address, without prefix length. */
    address: string;
}

/** A binary whose `--version` to read. */
export interface VersionQuery {
    /** Absolute path of the binary. */
    binary: string;
    /** ETCD_UNSUPPORTED_ARCH for it (etcd refuses to run on arm64 without it, `--version` included). */
    arch: string;
}

/** A daemon's command line to try before it is restarted with it (the preflight, preflight.ts). */
export interface CommandLineQuery {
    /** Its systemd service, e.g. `kube-apiserver`: a line its running process has already is not tried again. */
    unit: string;
    /** Absolute path of the installed binary. */
    binary: string;
    /** Its arguments as the program receives them, one word each (no whitespace). */
    args: string[];
}

/** What the installed binary makes of a command line (`CommandLineQuery`). */
export interface CommandLineFact {
    /**
     * `running`: the unit's process runs with it; `ok`: the binary parsed it (`--version` after it); `refused`:
     * it did not; `absent`: no binary.
     */
    state: "running" | "ok" | "refused" | "absent";
    /** What the binary said when it refused (its error line). */
    message?: string;
    /** The first line of the binary's `--version` when it refused: whether it is the release the change wants. */
    version?: string;
}

/** What to observe on one host. */
export interface ProbeQuery {
    /** Files and directories: sha256 (files), mode and owner. */
    files: string[];
    /** Files whose content is not compared (binaries from an archive): mode and owner only, their sha256 `*`. */
    stats: string[];
    /** systemd units: enabled? active? */
    units: string[];
    /** Addresses on interfaces: present? */
    addresses: AddressQuery[];
    /** Kernel parameters (`sysctl`): their value. */
    sysctls: string[];
    /** Binaries: the first line `--version` prints. */
    versions: VersionQuery[];
    /** TCP ports: who listens on each (`ss`), for the preflight (preflight.ts). */
    ports: number[];
    /** Daemons' command lines: does the installed binary accept each (flag names and values)? For the preflight. */
    commandLines: CommandLineQuery[];
    /**
     * Sums an earlier probe read, by path: `IDENTITY SHA256` (`FileFact.identity`). A file of `files` whose
     * identity is still this one is not read again: its sum is this one.
     */
    known?: Record<string, string>;
    /**
     * Lines an earlier probe's `--version` printed, by binary: `IDENTITY LINE`. A binary of `versions` (and of
     * `files` or `stats`, which give its identity) whose identity is still this one is not started: its line is
     * this one.
     */
    knownVersions?: Record<string, string>;
}

/** A file as the host has it; every field undefined when there is no such file. */
export interface FileFact {
    /** sha256 of the content, `*` when not read (`stats`), or `dir` for a directory. */
    sha256?: string;
    /** Octal mode as `stat -c %a` prints it (`644`). */
    mode?: string;
    /** `user:group`. */
    owner?: string;
    /**
     * For a file of 1 MiB or more (a binary), or a binary whose version was asked, unchanged for a second:
     * `SIZE DEVICE INODE MTIME CTIME` as `stat` prints them (times to the nanosecond). Any write changes the
     * ctime, and the clock only moves on: while the identity holds, so do the sum and the version line
     * (`ProbeQuery.known`, `knownVersions`). Undefined for other files, and for one changed in the second before
     * the probe, which a write in the same clock tick could change unseen.
     */
    identity?: string;
}

/** A unit as systemd reports it (`-` when systemd prints nothing, e.g. no such unit). */
export interface UnitFact {
    /** `systemctl is-enabled`: enabled, disabled, masked, ... */
    enabled: string;
    /** `systemctl is-active`: active, inactive, failed, activating, ... */
    active: string;
}

/** A process listening on a TCP port, as `ss -p` and its cgroup name it. */
export interface Listener {
    /** Its process id, `-` when `ss` could not say (no such right). */
    pid: string;
    /** The systemd service it runs in (`etcd.service`), undefined when none (a login session's process) or unknown. */
    unit?: string;
    /** Its process name (`comm`, at most 15 characters), `-` when unknown. */
    process: string;
}

/** What a probe found on one host. An item asked for but absent here was not found on the host. */
export interface HostFacts {
    files: Record<string, FileFact>;
    units: Record<string, UnitFact>;
    /** `${device} ${address}`: whether the address is on the interface. */
    addresses: Record<string, boolean>;
    sysctls: Record<string, string>;
    /** The first line of `<binary> --version`, by binary. */
    versions: Record<string, string>;
    /** Who listens on each port asked for, by port: none, one or more; absent where the host has no `ss` (iproute2). */
    ports: Record<string, Listener[]>;
    /** What each daemon's binary makes of its command line, by unit. */
    commandLines: Record<string, CommandLineFact>;
}

export const emptyQuery = (): ProbeQuery =>
    ({ files: [], stats: [], units: [], addresses: [], sysctls: [], versions: [], ports: [], commandLines: [] });
export const emptyFacts = (): HostFacts =>
    ({ files: {}, units: {}, addresses: {}, sysctls: {}, versions: {}, ports: {}, commandLines: {} });
export const addressKey = (a: AddressQuery) => `${a.device} ${a.address}`;

// ---------------------------------------------------------------------------------------------------------
// Pure: the remote script and its output.

/** Heredoc delimiter of the query inside the probe script. */
const QUERY_END = "KTHW_PROBE_QUERY";
/** The first and last line of the probe's output: lines before (a login banner) are ignored, a missing end fails. */
const BEGIN = "kthw-probe begin";
const END = "kthw-probe end";
/** Files of this many bytes or more (the binaries) are hashed with OpenSSL where there is one, and their sums kept. */
const BIG_FILE = 1024 * 1024;
/** `stat`'s line for a file: `MODE USER:GROUP` then its identity (`FileFact.identity`). */
const STAT_FORMAT = "%a %U:%G %s %d %i %.9Y %.9Z";
/** A file's identity as `stat` prints it: `SIZE DEVICE INODE MTIME CTIME`. */
const IDENTITY = "[0-9]+ [0-9]+ [0-9]+ [0-9]+(\\.[0-9]+)? [0-9]+(\\.[0-9]+)?";
/** A known sum: `IDENTITY SHA256`. */
const KNOWN_SUM = new RegExp(`^${IDENTITY} [0-9a-f]{64}$`);
/** A known version line: `IDENTITY LINE`, the line printable characters only, no space at either end. */
const KNOWN_VERSION = new RegExp(`^${IDENTITY} [\\x21-\\x7e]([\\x20-\\x7e]*[\\x21-\\x7e])?$`);

/**
 * The query as data lines, one item each: `file PATH`, `stat PATH`, `unit NAME`, `addr DEVICE ADDRESS`, `sysctl KEY`,
 * `version ARCH PATH`, `port NUMBER`, `argv UNIT PATH ARG...`, `sum IDENTITY SHA256 PATH` (a known sum of a file asked),
 * `vknown IDENTITY PATH LINE` (a known version line of a binary asked, its path one word); a file both hashed and
 * only stat'ed is hashed.
 */
export function probeQueryLines(query: ProbeQuery): string[] {
    const word = (what: string, value: string) => {
        if (value === "" || /[\s]/.test(value)) {
            throw new Error(`probe: ${what} ${JSON.stringify(value)} must be one word`);
        }
        return value;
    };
    const last = (what: string, value: string) => {
        if (value === "" || /[\n\r]/.test(value) || value === QUERY_END) {
            throw new Error(`probe: ${what} ${JSON.stringify(value)} must be one line`);
        }
        return value;
    };
    return [
        ...query.files.map(f => `file ${last("path", f)}`),
        ...query.stats.filter(f => !query.files.includes(f)).map(f => `stat ${last("path", f)}`),
        ...query.units.map(u => `unit ${word("unit", u)}`),
        ...query.addresses.map(a => `addr ${word("device", a.device)} ${word("address", a.address)}`),
        ...query.sysctls.map(k => `sysctl ${word("key", k)}`),
        ...query.versions.map(v => `version ${word("arch", v.arch)} ${last("binary", v.binary)}`),
        ...query.ports.map(port => {
            if (!Number.isInteger(port) || port < 1 || port > 65535) {
                throw new Error(`probe: port ${JSON.stringify(port)} must be a TCP port number`);
            }
            return `port ${port}`;
        }),
        ...query.commandLines.map(c => ["argv", word("unit", c.unit), word("binary", c.binary),
            ...c.args.map(a => word("argument", a))].join(" ")),
        ...Object.entries(query.known ?? {}).filter(([f, known]) => query.files.includes(f) && KNOWN_SUM.test(known))
            .map(([f, known]) => `sum ${known} ${last("path", f)}`),
        ...Object.entries(query.knownVersions ?? {})
            .filter(([b, known]) => query.versions.some(v => v.binary === b) && /^\S+$/.test(b) && KNOWN_VERSION.test(known))
            .map(([b, known]) => {
                const words = known.split(" ");
                return `vknown ${words.slice(0, 5).join(" ")} ${b} ${words.slice(5).join(" ")}`;
            }),
    ];
}

/**
 * The read-only script a probe runs as root (from stdin, `sudo -n bash -s`): for each item of the query, one
 * line `file SHA256|*|dir|- MODE OWNER PATH` (and `ident IDENTITY PATH` after a big file's, see
 * `FileFact.identity`), `unit ENABLED ACTIVE NAME`, `addr present|absent DEVICE ADDRESS`, `sysctl KEY VALUE`,
 * `version PATH FIRST-LINE`, `port NUMBER free|unknown` or `port NUMBER PID UNIT|- PROCESS` for each of its listeners,
 * `argv UNIT running|ok|absent` or `argv UNIT refused` then `argv-version UNIT FIRST-LINE` and `argv-error UNIT LINE`,
 * between a begin and an end line. One function, read whole before it runs; every
 * command's stdin is /dev/null (the heredoc is the loop's).
 *
 * Few processes in all: under emulation (the lab's gateway) each one costs tens of milliseconds, a `systemctl`
 * hundreds. The query is read into lists first; then one `stat` for every file, one digest for the files of
 * 1 MiB or more and one for the rest (OpenSSL's sha256 uses the CPU's SHA instructions, coreutils' does not:
 * the Kubernetes binaries, about 300 MB a node, hash about four times faster so; sha256sum, which starts about
 * 100 ms sooner on the emulated gateway, for small files, and for all where there is no openssl), one
 * `systemctl show` for every unit, addresses and kernel parameters read by bash itself (from `ip -o` and
 * /proc/sys), one `ss` for every port (each listener's unit from its /proc cgroup), the main processes of the
 * daemons whose command lines are asked about from the same `systemctl show` (another only for a unit not asked
 * about), and a binary run only for a line its daemon does not run with yet. Both tools print a line per file in the order given; a file that changes under the probe (fewer
 * lines) is read again alone.
 */
export function probeScript(query: ProbeQuery): string {
    return script(
        FAST_SHA256,
        `files=() stats=() hashed=() units=() addrs=() sysctls=() versions=() ports=() argvs=()`,
        `declare -A mode=() size=() ident=() sum=() knownid=() knownsum=() knownvid=() knownvline=() identsaid=() mainpid=()`,
        // Seconds since the epoch as the probe starts, before it reads any file.
        `printf -v start '%(%s)T' -1`,
        // FILE...: one stat for all, each line `MODE USER:GROUP SIZE DEVICE INODE MTIME CTIME` into mode[FILE],
        // size[FILE] and ident[FILE] (from SIZE on); again one by one when one failed.
        `stat_all() {`,
        `  local lines=() i words=()`,
        `  (($# > 0)) || return 0`,
        `  mapfile -t lines < <(stat -c '${STAT_FORMAT}' -- "$@" 2>/dev/null </dev/null)`,
        `  if ((\${#lines[@]} != $#)); then`,
        `    lines=()`,
        `    for i in "$@"; do lines+=("$(stat -c '${STAT_FORMAT}' -- "$i" 2>/dev/null </dev/null || echo '- - 0 - - - -')"); done`,
        `  fi`,
        `  for ((i = 1; i <= $#; i++)); do`,
        `    read -r -a words <<<"\${lines[i - 1]}"`,
        `    mode[\${!i}]="\${words[0]} \${words[1]}" size[\${!i}]=\${words[2]} ident[\${!i}]="\${words[*]:2}"`,
        `  done`,
        `}`,
        // TOOL FILE...: one run of TOOL for all into sum[FILE] (the first word of each line; sha256sum escapes odd
        // names with a \).
        `digest_all() {`,
        `  local tool=$1 lines=() i line`,
        `  shift`,
        `  (($# > 0)) || return 0`,
        `  mapfile -t lines < <("$tool" "$@" 2>/dev/null </dev/null)`,
        `  if ((\${#lines[@]} != $#)); then`,
        `    lines=()`,
        `    for i in "$@"; do lines+=("$("$tool" "$i" 2>/dev/null </dev/null || echo -)"); done`,
        `  fi`,
        `  for ((i = 1; i <= $#; i++)); do line=\${lines[i - 1]#\\\\}; sum[\${!i}]=\${line%% *}; done`,
        `}`,
        // FILE: its identity line, once a run, once its ctime is a second older than the probe's start.
        `ident_line() {`,
        `  local ctime=\${ident[$1]:-}`,
        `  ctime=\${ctime##* }`,
        `  [[ -z \${identsaid[$1]:-} && $ctime =~ ^[0-9]+ ]] && ((\${ctime%.*} < start - 1)) || return 0`,
        `  identsaid[$1]=1`,
        `  printf 'ident %s %s\\n' "\${ident[$1]}" "$1"`,
        `}`,
        `probe_files() {`,
        `  local f kind big=() small=()`,
        `  for f in "\${files[@]}"; do`,
        `    kind=\${f%% *} f=\${f#* }`,
        `    if [ -d "$f" ]; then sum[$f]=dir stats+=("$f")`,
        `    elif [ -f "$f" ] && [ "$kind" = stat ]; then sum[$f]='*' stats+=("$f")`,
        `    elif [ -f "$f" ]; then hashed+=("$f") stats+=("$f")`,
        `    fi`,
        `  done`,
        `  stat_all "\${stats[@]}"`,
        `  for f in "\${hashed[@]}"; do`,
        `    if [[ \${knownid[$f]:-} == "\${ident[$f]}" ]]; then sum[$f]=\${knownsum[$f]}`,
        `    elif ((\${size[$f]:-0} >= ${BIG_FILE})); then big+=("$f")`,
        `    else small+=("$f")`,
        `    fi`,
        `  done`,
        `  digest_all fast_sha256 "\${big[@]}"`,
        `  digest_all sha256sum "\${small[@]}"`,
        `  for f in "\${files[@]}"; do`,
        `    f=\${f#* }`,
        `    printf 'file %s %s %s\\n' "\${sum[$f]:--}" "\${mode[$f]:-- -}" "$f"`,
        // A big file's identity.
        `    if [[ \${sum[$f]:-} =~ ^[0-9a-f]{64}$ ]] && ((\${size[$f]:-0} >= ${BIG_FILE})); then ident_line "$f"; fi`,
        `  done`,
        `}`,
        // One systemctl for every unit: blocks of NAME=VALUE lines, a blank line between units, in the order given;
        // each unit's main process too, for probe_argvs.
        `probe_units() {`,
        `  local line i=0 enabled=() active=()`,
        `  ((\${#units[@]} > 0)) || return 0`,
        `  while IFS= read -r line; do`,
        `    case $line in`,
        `      '') i=$((i + 1)) ;;`,
        `      UnitFileState=*) enabled[i]=\${line#*=} ;;`,
        `      ActiveState=*) active[i]=\${line#*=} ;;`,
        `      MainPID=*) mainpid[\${units[i]}]=\${line#*=} ;;`,
        `    esac`,
        `  done < <(systemctl show --property=UnitFileState,ActiveState,MainPID -- "\${units[@]}" 2>/dev/null </dev/null)`,
        `  for ((i = 0; i < \${#units[@]}; i++)); do`,
        `    printf 'unit %s %s %s\\n' "\${enabled[i]:--}" "\${active[i]:--}" "\${units[i]}"`,
        `  done`,
        `}`,
        // Lines as \`ip -o\` prints them: \`2: lo    inet 192.168.1.21/32 scope global lo ...\`.
        `probe_addr() {`,
        `  local state=absent words=()`,
        `  while read -r -a words; do`,
        `    if [[ \${words[2]:-} == inet || \${words[2]:-} == inet6 ]] && [[ \${words[3]:-} == "$2/"* ]]; then state=present; fi`,
        `  done < <(ip -o addr show dev "$1" 2>/dev/null </dev/null)`,
        `  printf 'addr %s %s %s\\n' "$state" "$1" "$2"`,
        `}`,
        // As sysctl reads it: dots separate the path's parts unless it has slashes; tabs and runs of spaces as one space.
        `probe_sysctl() {`,
        `  local path=$1 words=()`,
        `  [[ $path == */* ]] || path=\${path//.//}`,
        `  if [ -f "/proc/sys/$path" ] && read -r -a words <"/proc/sys/$path" 2>/dev/null && ((\${#words[@]} > 0)); then`,
        `    printf 'sysctl %s %s\\n' "$1" "\${words[*]}"`,
        `  else`,
        `    printf 'sysctl %s -\\n' "$1"`,
        `  fi`,
        `}`,
        // ARCH BINARY: the first line its --version prints, printable characters only.
        `version_line() { { ETCD_UNSUPPORTED_ARCH="$1" timeout 10 "$2" --version 2>/dev/null </dev/null || true; } | sed -n '1{s/[^[:print:]]//g;p;}'; }`,
        // A binary whose identity is the one its known line was read at is not started; a binary's identity is
        // printed, as a big file's, for the next run.
        `probe_version() {`,
        `  local line=-`,
        `  if [ -x "$2" ]; then`,
        `    if [[ -n \${knownvid[$2]:-} && \${knownvid[$2]} == "\${ident[$2]:-}" ]]; then line=\${knownvline[$2]}`,
        `    else line=$(version_line "$1" "$2")`,
        `    fi`,
        `  fi`,
        `  printf 'version %s %s\\n' "$2" "\${line:--}"`,
        `  if [[ \${line:--} != - ]]; then ident_line "$2"; fi`,
        `}`,
        // One ss for every port: each listener once (an address family or an address more is the same one), its
        // process and pid as \`users:(("NAME",pid=PID,fd=N))\`, its systemd service from its cgroup's path.
        // A listener of a port asked about that no process holds, or whose process is gone by the time its
        // cgroup is read, is read again, every 0.1 s for at most 2 s: a daemon that is exiting (a controller
        // manager whose API server went away; an API server that fails after it bound its port, restarted by
        // systemd every few seconds) leaves its socket listening for a moment. One that stays is said as it is.
        `probe_ports() {`,
        `  local words=() port pid unit comm alive line tries=0 orphans users='users:\\(\\("([^"]*)",pid=([0-9]+)'`,
        `  local -A listeners=() seen=() asked=()`,
        `  ((\${#ports[@]} > 0)) || return 0`,
        `  if ! command -v ss >/dev/null 2>&1; then`,
        `    for port in "\${ports[@]}"; do printf 'port %s unknown\\n' "$port"; done`,
        `    return 0`,
        `  fi`,
        `  for port in "\${ports[@]}"; do asked[$port]=1; done`,
        `  while :; do`,
        `    listeners=() seen=() orphans=0`,
        `    while read -r -a words; do`,
        `      port=\${words[3]:-} port=\${port##*:} pid=- unit=- comm=- alive=`,
        `      if [[ "\${words[*]}" =~ $users ]]; then`,
        `        comm=\${BASH_REMATCH[1]//[^[:graph:]]/?} pid=\${BASH_REMATCH[2]}`,
        `        if { while IFS= read -r line; do if [[ $line =~ /([^/]+\\.service)$ ]]; then unit=\${BASH_REMATCH[1]}; fi; done <"/proc/$pid/cgroup"; } 2>/dev/null; then alive=1; fi`,
        `      fi`,
        `      [[ -n $alive || -z \${asked[$port]:-} ]] || orphans=1`,
        `      [[ -z \${seen["$port $pid"]:-} ]] || continue`,
        `      seen["$port $pid"]=1`,
        `      listeners[$port]+="port $port $pid $unit $comm"$'\\n'`,
        `    done < <(ss -Hltnp 2>/dev/null </dev/null)`,
        `    ((orphans == 1 && ++tries <= 20)) || break`,
        `    sleep 0.1`,
        `  done`,
        `  for port in "\${ports[@]}"; do`,
        `    if [[ -n \${listeners[$port]:-} ]]; then printf '%s' "\${listeners[$port]}"; else printf 'port %s free\\n' "$port"; fi`,
        `  done`,
        `}`,
        // Each daemon's command line: \`running\` when its unit's main process has it already; else the binary parses it and prints its version (\`--version\` after it), or says what it refuses:
        // the error line (cobra's \`Error: ...\`, Go's flag package's own words) and its plain version.
        `probe_argvs() {`,
        `  local item unit bin pids=() pid i names=() running=() words=() out line arch=amd64`,
        `  ((\${#argvs[@]} > 0)) || return 0`,
        // etcd runs on arm64 only with ETCD_UNSUPPORTED_ARCH set to it, --version included.
        `  case \${HOSTTYPE:-} in aarch64 | arm64) arch=arm64 ;; esac`,
        // The main processes probe_units did not read: one systemctl for those.
        `  for item in "\${argvs[@]}"; do [[ -n \${mainpid[\${item%% *}]:-} ]] || names+=("\${item%% *}"); done`,
        `  if ((\${#names[@]} > 0)); then`,
        `    mapfile -t pids < <(systemctl show --property=MainPID --value -- "\${names[@]}" 2>/dev/null </dev/null | grep -v '^$')`,
        `    for ((i = 0; i < \${#names[@]}; i++)); do mainpid[\${names[i]}]=\${pids[i]:-0}; done`,
        `  fi`,
        `  for item in "\${argvs[@]}"; do`,
        `    read -r -a words <<<"$item"`,
        `    unit=\${words[0]} bin=\${words[1]} pid=\${mainpid[\${words[0]}]:-0}`,
        `    if [ ! -x "$bin" ]; then printf 'argv %s absent\\n' "$unit"; continue; fi`,
        `    if [ "$pid" != 0 ] && mapfile -d '' -t running <"/proc/$pid/cmdline" 2>/dev/null && [ "\${running[*]}" = "\${words[*]:1}" ]; then`,
        `      printf 'argv %s running\\n' "$unit"`,
        `    elif out=$(ETCD_UNSUPPORTED_ARCH=$arch timeout 10 "$bin" "\${words[@]:2}" --version 2>&1 </dev/null); then`,
        `      printf 'argv %s ok\\n' "$unit"`,
        `    else`,
        `      line=$(printf '%s\\n' "$out" | grep -m 1 -E '^(Error: |flag provided but not defined|invalid (value|argument) )' || printf '%s\\n' "$out" | head -n 1)`,
        `      printf 'argv %s refused\\nargv-version %s %s\\nargv-error %s %s\\n' "$unit" "$unit" \\`,
        `        "$(version_line "$arch" "$bin")" "$unit" "$(printf '%s' "\${line:0:300}" | tr -c '[:print:]' ' ')"`,
        `    fi`,
        `  done`,
        `}`,
        `main() {`,
        `  local kind rest item s d i m c sha f`,
        `  echo '${BEGIN}'`,
        `  while read -r kind rest; do`,
        `    case $kind in`,
        `      file | stat) files+=("$kind $rest") ;;`,
        `      unit) units+=("$rest") ;;`,
        `      addr) addrs+=("$rest") ;;`,
        `      sysctl) sysctls+=("$rest") ;;`,
        `      version) versions+=("$rest") ;;`,
        `      port) ports+=("$rest") ;;
      argv) argvs+=("$rest") ;;`,
        `      sum) read -r s d i m c sha f <<<"$rest"; knownid[$f]="$s $d $i $m $c" knownsum[$f]=$sha ;;`,
        `      vknown) read -r s d i m c f line <<<"$rest"; knownvid[$f]="$s $d $i $m $c" knownvline[$f]=$line ;;`,
        `      *) echo "unknown probe item: $kind" >&2; exit 2 ;;`,
        `    esac`,
        `  done <<'${QUERY_END}'`,
        ...probeQueryLines(query),
        QUERY_END,
        `  probe_files`,
        `  probe_units`,
        `  for item in "\${addrs[@]}"; do probe_addr "\${item%% *}" "\${item#* }"; done`,
        `  for item in "\${sysctls[@]}"; do probe_sysctl "$item"; done`,
        `  for item in "\${versions[@]}"; do probe_version "\${item%% *}" "\${item#* }"; done`,
        `  probe_ports`,
        `  probe_argvs`,
        `  echo '${END}'`,
        `}`,
        `main`,
    );
}

/** Parses a probe's output into facts; fails on anything it does not expect, or on an output cut short. */
export function parseProbeOutput(text: string): HostFacts {
    const lines = text.split("\n");
    const begin = lines.indexOf(BEGIN);
    const end = lines.indexOf(END);
    if (begin < 0 || end < begin) {
        throw new Error("the probe's output is incomplete (no begin and end lines)");
    }
    const facts = emptyFacts();
    const unset = (value: string) => (value === "-" ? undefined : value);
    for (const line of lines.slice(begin + 1, end)) {
        const words = line.split(" ");
        const rest = (from: number) => words.slice(from).join(" ");
        switch (words[0]) {
            case "file":
                if (words.length >= 5) {
                    facts.files[rest(4)] = { sha256: unset(words[1]), mode: unset(words[2]), owner: unset(words[3]) };
                    continue;
                }
                break;
            case "ident":
                if (words.length >= 7 && facts.files[rest(6)] !== undefined) {
                    facts.files[rest(6)].identity = words.slice(1, 6).join(" ");
                    continue;
                }
                break;
            case "unit":
                if (words.length === 4) {
                    facts.units[words[3]] = { enabled: words[1], active: words[2] };
                    continue;
                }
                break;
            case "addr":
                if (words.length === 4 && (words[1] === "present" || words[1] === "absent")) {
                    facts.addresses[`${words[2]} ${words[3]}`] = words[1] === "present";
                    continue;
                }
                break;
            case "port":
                // `port N free`, `port N unknown`, or one line per listener: `port N PID UNIT|- PROCESS`.
                if (words.length === 3 && /^[0-9]+$/.test(words[1]) && (words[2] === "free" || words[2] === "unknown")) {
                    if (words[2] === "free") {
                        facts.ports[words[1]] = [];
                    }
                    continue;
                }
                if (words.length === 5 && /^[0-9]+$/.test(words[1]) && /^([0-9]+|-)$/.test(words[2])) {
                    (facts.ports[words[1]] ??= []).push({ pid: words[2], unit: unset(words[3]), process: words[4] });
                    continue;
                }
                break;
            case "argv":
                if (words.length === 3 && ["running", "ok", "refused", "absent"].includes(words[2])) {
                    facts.commandLines[words[1]] = { state: words[2] as CommandLineFact["state"] };
                    continue;
                }
                break;
            case "argv-version":
            case "argv-error":
                if (words.length >= 2 && facts.commandLines[words[1]]?.state === "refused") {
                    const said = rest(2).trim();
                    if (said !== "") {
                        facts.commandLines[words[1]][words[0] === "argv-error" ? "message" : "version"] = said;
                    }
                    continue;
                }
                break;
            case "sysctl":
            case "version":
                // `<kind> <name> <value, spaces and all>`; "-": the host has none.
                if (words.length >= 3) {
                    if (rest(2) !== "-") {
                        (words[0] === "sysctl" ? facts.sysctls : facts.versions)[words[1]] = rest(2);
                    }
                    continue;
                }
                break;
        }
        throw new Error(`unexpected line in the probe's output: ${JSON.stringify(line.slice(0, 200))}`);
    }
    return facts;
}

// ---------------------------------------------------------------------------------------------------------
// Running a probe where pulumi runs.

/** Probes one host: its facts, or an error that says why not. */
export type ProbeRunner = (host: Machine, query: ProbeQuery) => Promise<HostFacts>;

/** A runner that can open a host's session before the query is known (`connectProbes`). */
export interface ConnectingProbeRunner extends ProbeRunner {
    /** Opens the host's session now: ssh, sudo and bash then wait for the script. */
    connect(host: Machine): void;
    /** Ends the sessions opened but not used (their bash reads an empty script). */
    close(): void;
}

/** No `ssh` where pulumi runs: the probe cannot run at all (a preview then goes on without it). */
export class ProbeUnavailable extends Error {}

/** One `ssh ... sudo -n bash -s` waiting for its script on stdin. */
interface Session {
    child: ChildProcess;
    /** Its stdout once it ended well, or why not. */
    output: Promise<string>;
    /** It joined a shared connection that was open already. */
    joined: boolean;
}

/**
 * The real probe: `ssh` (argv only, no shell) with the options of components/remote/ssh.ts and the shared
 * connection, a 0600 copy of the key and the pinned host keys in a temp dir removed after, the script on
 * stdin. A host's session may open before the script is known (`connect`, while the program is constructed),
 * so that the key exchange, login and sudo are over by then. Bounded: the dials as configured, the script by a
 * timeout of its own from when it is sent.
 */
export function sshProbeRunner(ssh: SshSettings, keyFile: string, sshCommand = "ssh"): ConnectingProbeRunner {
    const pinned = new Set(Object.keys(ssh.hostKeys));
    const knownHostsText = pinnedHostLines(ssh).map(line => `${line}\n`).join("");
    const keyBytes = fs.readFileSync(keyFile);
    const sessions = new Map<string, Session>();
    const open = (host: Machine, share = true): Session => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kthw-probe-"));
        const removeDir = () => fs.rmSync(dir, { recursive: true, force: true });
        // A program that fails before its probes exits with the session still open: the key's copy goes with it.
        process.once("exit", removeDir);
        const key = path.join(dir, "key");
        const knownHosts = path.join(dir, "known_hosts");
        fs.writeFileSync(key, keyBytes, { mode: 0o600 });
        fs.writeFileSync(knownHosts, knownHostsText, { mode: 0o600 });
        const socket = share ? sharedConnection(keyBytes, knownHostsText, `${ssh.user}@${host.address}:${ssh.port}`,
            process.env.TMPDIR || "/tmp", process.getuid?.() ?? -1, fs) : undefined;
        const options = [
            ...sshOptionGroups(ssh, { key, knownHosts, alias: host.name, strict: pinned.has(host.name) ? "yes" : "no" }).flat(),
            ...(socket ? sharedConnectionOptions(socket) : []),
        ];
        // A connection that was open already may have died with its host (a reboot) before its keepalives tell.
        const joined = socket !== undefined && fs.existsSync(socket);
        const child = spawn(sshCommand, [...options, `${ssh.user}@${host.address}`, "sudo -n bash -s"], { stdio: "pipe" });
        const output = new Promise<string>((resolve, reject) => {
            let stdout = "";
            let stderr = "";
            child.stdout!.setEncoding("utf8").on("data", (chunk: string) => { stdout += chunk; });
            child.stderr!.setEncoding("utf8").on("data", (chunk: string) => { stderr = (stderr + chunk).slice(-4096); });
            child.stdin!.on("error", () => undefined);
            child.on("error", (err: NodeJS.ErrnoException) => {
                removeDir();
                reject(err.code === "ENOENT" ? new ProbeUnavailable(`${sshCommand} (openssh-client) is not installed where pulumi runs`) : err);
            });
            child.on("close", (code, signal) => {
                removeDir();
                process.removeListener("exit", removeDir);
                if (code === 0) {
                    resolve(stdout);
                    return;
                }
                const said = stderr.trim().split("\n").slice(-3).join(" ").trim();
                reject(new Error(said !== "" ? said : signal ? `ended by ${signal}` : `ssh exited with ${code}`));
            });
        });
        output.catch(() => undefined);
        // Waiting for its script does not keep the program alive.
        for (const handle of [child, child.stdin, child.stdout, child.stderr]) {
            (handle as { unref?: () => void } | null)?.unref?.();
        }
        return { child, output, joined };
    };
    const seconds = ssh.dialTimeoutSeconds * ssh.dialAttempts + 60;
    const send = async (session: Session, query: ProbeQuery) => {
        session.child.ref();
        let timedOut = false;
        const timer = setTimeout(() => { timedOut = true; session.child.kill(); }, seconds * 1000);
        session.child.stdin!.end(probeScript(query));
        try {
            return parseProbeOutput(await session.output);
        } catch (err) {
            throw timedOut ? new Error(`no answer within ${seconds}s`) : err;
        } finally {
            clearTimeout(timer);
        }
    };
    const runner = (async (host: Machine, query: ProbeQuery) => {
        const session = sessions.get(host.name) ?? open(host);
        sessions.delete(host.name);
        try {
            return await send(session, query);
        } catch (err) {
            // Once more on a connection of its own: the shared one may have been stale.
            if (session.joined && !(err instanceof ProbeUnavailable)) {
                return send(open(host, false), query);
            }
            throw err;
        }
    }) as ConnectingProbeRunner;
    runner.connect = host => {
        if (!sessions.has(host.name)) {
            sessions.set(host.name, open(host));
        }
    };
    runner.close = () => {
        sessions.forEach(session => session.child.stdin!.end());
        sessions.clear();
    };
    return runner;
}

// ---------------------------------------------------------------------------------------------------------
// One probe per host per program run.

interface Wanted {
    host: Machine;
    query: ProbeQuery;
}

/** Facts by host name; undefined for a host that was not probed (no key in a preview). */
export type ProbedHosts = Map<string, HostFacts | undefined>;

const wanted = new Map<string, Wanted>();
let started = false;
let testRunner: ProbeRunner | undefined;
let settle: { resolve: (facts: ProbedHosts) => void; reject: (err: Error) => void };
const everyHost = new Promise<ProbedHosts>((resolve, reject) => { settle = { resolve, reject }; });
// Whoever asks gets the failure; the probes' own promise must not count as an unhandled one.
everyHost.catch(() => undefined);

/**
 * Asks for facts of a host, during construction; every host is probed once, when `startProbes` runs. The facts,
 * or undefined when the hosts are not probed.
 */
export function observe(host: Machine, want: Partial<ProbeQuery>): Promise<HostFacts | undefined> {
    if (started) {
        throw new Error(`probe of ${host.name}: asked for after the probes started (steps say what they observe while the program is constructed)`);
    }
    const entry = wanted.get(host.name) ?? { host, query: emptyQuery() };
    wanted.set(host.name, entry);
    const add = <T>(list: T[], items: T[] | undefined, key: (item: T) => string = String) => {
        for (const item of items ?? []) {
            if (!list.some(have => key(have) === key(item))) {
                list.push(item);
            }
        }
    };
    add(entry.query.files, want.files);
    add(entry.query.stats, want.stats);
    add(entry.query.units, want.units);
    add(entry.query.addresses, want.addresses, addressKey);
    add(entry.query.sysctls, want.sysctls);
    add(entry.query.versions, want.versions, v => v.binary);
    add(entry.query.ports, want.ports);
    add(entry.query.commandLines, want.commandLines, c => c.unit);
    return everyHost.then(all => all.get(host.name));
}

/** `{host: {path: value}}` of what each host's facts give (`keep`: the value for a path, or undefined), hosts with none left out. */
function keptByHost(hosts: ProbedHosts, keep: (facts: HostFacts) => [string, string | undefined][]): Record<string, Record<string, string>> {
    const kept: Record<string, Record<string, string>> = {};
    for (const [host, facts] of hosts) {
        const values = facts === undefined ? [] : keep(facts).filter((e): e is [string, string] => e[1] !== undefined);
        if (values.length > 0) {
            kept[host] = Object.fromEntries(values);
        }
    }
    return kept;
}

/** A stack output of `keptByHost`'s shape, read back: anything else is ignored, as is a value `valid` refuses. */
function readKept(value: unknown, valid: RegExp): Record<string, Record<string, string>> {
    const kept: Record<string, Record<string, string>> = {};
    if (typeof value !== "object" || value === null) {
        return kept;
    }
    for (const [host, values] of Object.entries(value as Record<string, unknown>)) {
        if (typeof values === "object" && values !== null) {
            kept[host] = Object.fromEntries(Object.entries(values as Record<string, unknown>)
                .filter((entry): entry is [string, string] => typeof entry[1] === "string" && valid.test(entry[1])));
        }
    }
    return kept;
}

/**
 * The sums of the big files the probes read or reused, by host and path, where the file has an identity: the
 * stack output `probeSums`, which the next run gives back to `useKnownSums`.
 */
export function knownSums(hosts: ProbedHosts): Record<string, Record<string, string>> {
    return keptByHost(hosts, facts => Object.entries(facts.files).map(([file, f]) => {
        const value = `${f.identity} ${f.sha256}`;
        return [file, f.identity !== undefined && KNOWN_SUM.test(value) ? value : undefined];
    }));
}

/**
 * The lines the binaries' `--version` printed, by host and binary, where the binary has an identity: the stack
 * output `probeVersions`, which the next run gives back to `useKnownVersions`.
 */
export function knownVersions(hosts: ProbedHosts): Record<string, Record<string, string>> {
    return keptByHost(hosts, facts => Object.entries(facts.versions).map(([binary, line]) => {
        const value = `${facts.files[binary]?.identity} ${line}`;
        return [binary, facts.files[binary]?.identity !== undefined && KNOWN_VERSION.test(value) ? value : undefined];
    }));
}

let lastKnown: Record<string, Record<string, string>> = {};
let lastKnownVersions: Record<string, Record<string, string>> = {};

/**
 * The sums the last run's probes read (its stack output `probeSums`; anything else is ignored): this run's
 * probes do not read those files again while their identity holds (the Kubernetes binaries, about 300 MB a node).
 */
export function useKnownSums(value: unknown): void {
    lastKnown = readKept(value, KNOWN_SUM);
}

/**
 * The version lines the last run's probes read (its stack output `probeVersions`; anything else is ignored):
 * this run's probes do not start those binaries again while their identity holds.
 */
export function useKnownVersions(value: unknown): void {
    lastKnownVersions = readKept(value, KNOWN_VERSION);
}

/** Every host's facts, once probed (rejected, naming each host, when a probe failed). */
export function probed(): Promise<ProbedHosts> {
    return everyHost;
}

/** Tests: the runner that stands in for ssh (Pulumi's mocks have no host). */
export function setProbeRunner(runner: ProbeRunner | undefined): void {
    testRunner = runner;
}

const closeUnused = (runner: ProbeRunner | undefined) => (runner as Partial<ConnectingProbeRunner> | undefined)?.close?.();

let chosen: { runner: ProbeRunner | undefined; whyNot: string } = { runner: undefined, whyNot: "no probe runner" };

/**
 * How the hosts are probed (`runner`; undefined: not at all, saying `whyNot` in one log line), chosen before
 * the program is constructed, and the sessions of `hosts` opened now (a runner that can), so that each is
 * logged in and waiting for its script when the probes start.
 */
export function connectProbes(runner: ProbeRunner | ConnectingProbeRunner | undefined, whyNot: string, hosts: Machine[]): void {
    chosen = { runner, whyNot };
    if (runner && !testRunner && "connect" in runner) {
        hosts.forEach(host => runner.connect(host));
    }
}

/**
 * Probes every host something asked about, once each and all together, with the runner of `connectProbes`.
 * The facts go to whoever asked (`observe`, `probed`): a host that cannot be probed fails them, naming the
 * host and its address, in a preview as at `up` (with the key configured, a preview is a refresh: it must not
 * pass while a host is unseen); a preview without `ssh` where pulumi runs goes on without the probe, as one
 * without the key. Settles when the probes are over; never rejects.
 */
export async function startProbes(): Promise<void> {
    started = true;
    const { runner, whyNot } = chosen;
    const hosts = [...wanted.values()];
    const skip = (why: string) => {
        closeUnused(runner);
        if (hosts.length > 0) {
            pulumi.log.info(`${why}: the hosts were not compared with what the program installed (drift is not shown)`);
        }
        settle.resolve(new Map(hosts.map(h => [h.host.name, undefined])));
    };
    const probe = runner && (testRunner ?? runner);
    if (!probe) {
        return skip(whyNot);
    }
    // Where a run's time goes (npm run bench reads these lines from the engine's events): the program is
    // constructed once its probes are sent.
    void debug(`probes sent to ${hosts.length} hosts`);
    const running = hosts.map(async h => {
        const t0 = Date.now();
        try {
            const known = lastKnown[h.host.name];
            const knownVersions = lastKnownVersions[h.host.name];
            return await probe(h.host, { ...h.query, ...(known && { known }), ...(knownVersions && { knownVersions }) });
        } finally {
            void debug(`probe of ${h.host.name}: ${Date.now() - t0} ms`);
        }
    });
    // Sessions opened for hosts nothing asked about end now.
    closeUnused(runner);
    const results = await Promise.allSettled(running);
    const preview = pulumi.runtime.isDryRun();
    const unavailable = results.find(r => r.status === "rejected" && r.reason instanceof ProbeUnavailable);
    if (unavailable && preview) {
        skip(String((unavailable as PromiseRejectedResult).reason.message));
        return;
    }
    const failures = results.flatMap((r, i) => r.status === "rejected"
        ? [`${hosts[i].host.name} (${hosts[i].host.address}): ${r.reason instanceof Error ? r.reason.message : String(r.reason)}`] : []);
    if (failures.length > 0) {
        settle.reject(refusal(`cannot compare the hosts with what the program installed, so nothing was changed:\n` +
            failures.map(f => `  - ${f}`).join("\n")));
        return;
    }
    settle.resolve(new Map(hosts.map((h, i) => [h.host.name, results[i].status === "fulfilled" ? results[i].value : undefined])));
}
