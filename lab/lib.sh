# shellcheck shell=bash
# shellcheck disable=SC2034 # settings used by the scripts that source this file
# Shared settings and helpers of the local lab (sourced by lab/*.sh and test/lab/*.sh).
# The lab stands in for the seed's VMs: control0..2 (systemd-nspawn containers; KCP_LAB_NODES=N for
# control0..control{N-1}) and gateway (a QEMU/TCG VM), on one bridge inside the network namespace "kcplab".

LAB_NS=kcplab
LAB_NS_PATH=/run/netns/$LAB_NS
LAB_BRIDGE=kcpbr0
LAB_TAP=kcptap0
LAB_STATE=/var/lib/kcp-lab
LAB_RUN=$LAB_STATE/run
LAB_SSH_DIR=$LAB_STATE/ssh
LAB_KEY=$LAB_SSH_DIR/id_ed25519
LAB_HOSTKEYS=$LAB_SSH_DIR/hostkeys
LAB_KNOWN_HOSTS=$LAB_SSH_DIR/known_hosts
LAB_CACHE=${KCP_CACHE:-/var/cache/kcp}/lab
LAB_MIRROR_DIR=${KCP_MIRROR_DIR:-${KCP_CACHE:-/var/cache/kcp}/mirror}
LAB_NETNS_ETC=/etc/netns/$LAB_NS
LAB_SUITE=bookworm

LAB_RUNNER_IP=192.168.1.1
LAB_MIRROR_PORT=8080
# Patch releases the e2e upgrades the program's defaults (1.28.3, 3.5.9) to: the newest the Go module proxy serves.
LAB_UPGRADE_KUBE_VERSION=1.28.15
LAB_UPGRADE_ETCD_VERSION=3.5.35
LAB_VIP=192.168.1.21
# The control nodes: control0..control{N-1} at 192.168.1.(11+i), N = LAB_NODE_COUNT (set at the end of this
# file: KCP_LAB_NODES, else the count of the lab that is up, else LAB_DEFAULT_NODES, the code's default nodes).
LAB_DEFAULT_NODES=3
LAB_MAX_NODES=9
LAB_NODES_COUNT_FILE=$LAB_RUN/nodes-count
LAB_GATEWAY_MAC=52:54:00:6b:63:0a
LAB_GATEWAY_MEM=${KCP_LAB_GATEWAY_MEM:-384}

# Timeouts (seconds), overridable for slow machines.
LAB_BOOT_TIMEOUT=${KCP_LAB_BOOT_TIMEOUT:-180}
LAB_STOP_TIMEOUT=${KCP_LAB_STOP_TIMEOUT:-30}

LAB_NODE_PACKAGES=systemd,systemd-sysv,dbus,openssh-server,sudo,curl,ca-certificates,iproute2,procps,tar,gzip,kmod,netbase,iputils-ping,less
LAB_GATEWAY_PACKAGES=systemd,systemd-sysv,dbus,udev,openssh-server,sudo,curl,ca-certificates,iproute2,procps,tar,gzip,kmod,netbase,iputils-ping,less,linux-image-cloud-amd64,initramfs-tools,zstd,ipvsadm,ldirectord,libwww-perl,liblwp-protocol-https-perl,libio-socket-ssl-perl,perl-openssl-defaults

lab_log() { printf '[lab %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
lab_die() {
  lab_log "ERROR: $*"
  exit 1
}

lab_need_root() {
  [[ $(id -u) == 0 ]] || lab_die "the lab needs root (namespaces, nspawn, tap devices); run as root"
}

# lab_need_tools TOOL...: fail with the Debian packages to install when a tool is missing.
lab_need_tools() {
  local t missing=()
  for t in "$@"; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
  ((${#missing[@]} == 0)) ||
    lab_die "missing tools: ${missing[*]} (apt-get install debootstrap systemd-container qemu-system-x86 qemu-utils iproute2 openssh-client e2fsprogs util-linux)"
}

# lab_in_ns CMD...: run CMD in the lab's network namespace (only the network: unlike
# `ip netns exec`, this leaves /sys alone, which systemd-nspawn needs for cgroups).
lab_in_ns() { nsenter --net="$LAB_NS_PATH" -- "$@"; }

lab_ns_exists() { [[ -e $LAB_NS_PATH ]] && nsenter --net="$LAB_NS_PATH" -- true 2>/dev/null; }

# lab_wait DESCRIPTION TIMEOUT CMD...: poll CMD once a second until it succeeds.
lab_wait() {
  local what=$1 timeout=$2 t0=$SECONDS
  shift 2
  lab_log "waiting for $what (up to ${timeout}s)"
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS - t0 >= timeout)); then
      lab_log "ERROR: timed out after ${timeout}s waiting for $what"
      return 1
    fi
    sleep 1
  done
  lab_log "$what: ok after $((SECONDS - t0))s"
}

# lab_kubectl: the path of the kubectl the mirror built (from its mirror.json), or a clear stop.
lab_kubectl() {
  local rel
  rel=$(jq -er '.artifacts.kubectl.path' "$LAB_MIRROR_DIR/mirror.json" 2>/dev/null) ||
    lab_die "no kubectl in $LAB_MIRROR_DIR/mirror.json (npm run lab:up builds the mirror)"
  [[ -f $LAB_MIRROR_DIR/$rel ]] || lab_die "no kubectl at $LAB_MIRROR_DIR/$rel (npm run lab:up builds it)"
  printf '%s\n' "$LAB_MIRROR_DIR/$rel"
}

# lab_pid_alive PIDFILE [NAME]: the pid in PIDFILE runs (and its comm is NAME, if given). A zombie is dead:
# the lab's processes are orphans, and this machine's PID 1 reaps them only a second or so after they die.
lab_pid_alive() {
  local pid comm stat
  [[ -s $1 ]] || return 1
  pid=$(<"$1")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  stat=${stat##*) } # the fields after "(comm) ", the first of which is the state
  [[ ${stat%% *} != [ZX] ]] || return 1
  if [[ -n ${2:-} ]]; then
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [[ $comm == "$2"* ]] || return 1
  fi
}

# lab_cgroup_dirs NAME: the cgroup directories a container NAME runs in, one per hierarchy
# that systemd tracks units in (cgroup v2 at /sys/fs/cgroup, or name=systemd + unified
# in a v1/hybrid setup), each below the cgroup this script runs in. With --keep-unit
# and no systemd on the host, every container would otherwise share the cgroup of its
# nspawn process, and the containers' systemds would trample each other's units
# (stopping kube-apiserver on one node would kill it on all).
lab_cgroup_dirs() {
  local n=$1 cur
  if [[ $(stat -f -c %T /sys/fs/cgroup 2>/dev/null) == cgroup2fs ]]; then
    cur=$(awk -F: '$1 == "0" {print $3}' /proc/self/cgroup)
    printf '/sys/fs/cgroup%s/kcp-lab/%s\n' "${cur%/}" "$n"
    return 0
  fi
  if [[ -f /sys/fs/cgroup/systemd/cgroup.procs ]]; then
    cur=$(awk -F: '$2 == "name=systemd" {print $3}' /proc/self/cgroup)
    printf '/sys/fs/cgroup/systemd%s/kcp-lab/%s\n' "${cur%/}" "$n"
  fi
  if [[ -f /sys/fs/cgroup/unified/cgroup.procs ]]; then
    cur=$(awk -F: '$1 == "0" {print $3}' /proc/self/cgroup)
    printf '/sys/fs/cgroup/unified%s/kcp-lab/%s\n' "${cur%/}" "$n"
  fi
}

# lab_cgroup_pids DIR...: the processes in the cgroups DIR and all below them.
lab_cgroup_pids() {
  local d
  for d in "$@"; do
    [[ -d $d ]] || continue
    find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null
  done | sort -un
}

# lab_kill_cgroups DIR...: SIGKILL whatever runs in the cgroups DIR (e.g. a container
# whose systemd-nspawn was killed: its processes outlive it), and wait until they are gone.
lab_kill_cgroups() {
  local pids t0=$SECONDS
  while :; do
    mapfile -t pids < <(lab_cgroup_pids "$@")
    ((${#pids[@]} == 0)) && return 0
    if ((SECONDS - t0 >= 15)); then
      lab_log "WARNING: processes survive in ${*}: ${pids[*]}"
      return 1
    fi
    kill -KILL "${pids[@]}" 2>/dev/null || true
    sleep 0.5
  done
}

# The Debian mirror the host's apt uses (first non-security deb URI), default deb.debian.org.
lab_debian_mirror() {
  local uri=""
  if compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
    uri=$(awk '/^URIs:/ {for (i = 2; i <= NF; i++) if ($i !~ /security/) {print $i; exit}}' \
      /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
  fi
  if [[ -z $uri && -f /etc/apt/sources.list ]]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' \
      /etc/apt/sources.list | head -n1)
  fi
  printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

# lab_node_dirs: the control nodes that have a runtime dir (up, or left half way by a crash), whatever
# the node count says: what lab:down takes down and what lab:up stops when the lab shrinks.
lab_node_dirs() {
  local d
  for d in "$LAB_RUN"/nodes/control[0-9]; do [[ -d $d ]] && printf '%s\n' "${d##*/}"; done
  return 0
}

# /etc/hosts of every lab host (and of the runner via /etc/netns/kcplab/hosts): the
# seed's DNS resolves these names.
lab_hosts_file() {
  printf '127.0.0.1\tlocalhost\n'
  printf '::1\t\tlocalhost ip6-localhost ip6-loopback\n'
  printf '%s\trunner runner.kubenet\n' "$LAB_RUNNER_IP"
  local h
  for h in "${LAB_HOSTS[@]}"; do printf '%s\t%s %s.kubenet\n' "${LAB_IP[$h]}" "$h" "$h"; done
  printf '%s\tkubernetes kubernetes.kubenet\n' "$LAB_VIP"
}

# lab_ssh_opts HOST [nomux]: ssh options that pin HOST's lab host key. Connections
# share one master per host for 60s (ControlPersist; lab:down ends the masters).
lab_ssh_opts() {
  local host=$1
  if [[ ${2:-} == nomux || ! -d $LAB_RUN/ssh ]]; then
    printf '%s\n' -o ControlMaster=no -o ControlPath=none
  else
    printf '%s\n' -o ControlMaster=auto -o "ControlPath=$LAB_RUN/ssh/%k-%h-%r" -o ControlPersist=60
  fi
  printf '%s\n' -i "$LAB_KEY" -o IdentitiesOnly=yes -o BatchMode=yes \
    -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$LAB_KNOWN_HOSTS" \
    -o GlobalKnownHostsFile=/dev/null -o HostKeyAlias="$host" -o ConnectTimeout=5 \
    -o ServerAliveInterval=10 -o LogLevel=ERROR
}

# lab_unknown_host HOST: why HOST is no lab host (a control node beyond the count: how to grow the lab).
lab_unknown_host() {
  local msg="unknown lab host '$1' (known: ${LAB_HOSTS[*]})"
  if [[ $1 =~ ^control[0-9]$ ]]; then
    msg+="; the lab has $LAB_NODE_COUNT control nodes: KCP_LAB_NODES=$((${1#control} + 1)) npm run lab:up grows it"
  fi
  printf '%s\n' "$msg"
}

# lab_ssh HOST CMD...: run CMD on HOST as ubuntu over SSH from inside the namespace.
lab_ssh() {
  local host=$1 ip
  shift
  ip=${LAB_IP[$host]:-}
  [[ -n $ip ]] || lab_die "$(lab_unknown_host "$host")"
  local opts
  mapfile -t opts < <(lab_ssh_opts "$host")
  lab_in_ns ssh "${opts[@]}" "ubuntu@$ip" "$@"
}

# lab_node_count_valid N: N is a node count the lab can have (1..LAB_MAX_NODES: the addresses
# 192.168.1.11-19 stay below the VIP 192.168.1.21).
lab_node_count_valid() { [[ $1 =~ ^[1-9]$ ]] && (($1 <= LAB_MAX_NODES)); }

# lab_recorded_node_count: the node count lab:up recorded for the lab that is up (empty: none recorded).
lab_recorded_node_count() {
  local n=""
  [[ -r $LAB_NODES_COUNT_FILE ]] && n=$(<"$LAB_NODES_COUNT_FILE")
  if lab_node_count_valid "$n"; then printf '%s\n' "$n"; fi
}

# lab_set_nodes N: LAB_NODE_COUNT, LAB_NODES (control0..control{N-1}), LAB_HOSTS (those and gateway), LAB_IP.
lab_set_nodes() {
  local i
  LAB_NODE_COUNT=$1
  LAB_NODES=()
  for ((i = 0; i < LAB_NODE_COUNT; i++)); do LAB_NODES+=("control$i"); done
  LAB_HOSTS=("${LAB_NODES[@]}" gateway)
  unset LAB_IP
  declare -gA LAB_IP=([gateway]=192.168.1.10)
  for ((i = 0; i < LAB_NODE_COUNT; i++)); do LAB_IP[control$i]=192.168.1.$((11 + i)); done
}

# The node count: KCP_LAB_NODES if set (lab:up grows or shrinks a running lab to it), else what the lab that
# is up has (recorded by lab:up: lab/ssh.sh, the tests and lab:down follow a KCP_LAB_NODES=5 lab:up), else 3.
if [[ -n ${KCP_LAB_NODES:-} ]]; then
  lab_node_count_valid "$KCP_LAB_NODES" ||
    lab_die "KCP_LAB_NODES=$KCP_LAB_NODES: expected a number of control nodes from 1 to $LAB_MAX_NODES (default $LAB_DEFAULT_NODES)"
  lab_set_nodes "$KCP_LAB_NODES"
else
  _lab_n=$(lab_recorded_node_count)
  lab_set_nodes "${_lab_n:-$LAB_DEFAULT_NODES}"
  unset _lab_n
fi
