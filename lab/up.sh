#!/usr/bin/env bash
# npm run lab:up — brings up the local lab that stands in for the seed's VMs:
#   network namespace kcplab, bridge kcpbr0 with the runner at 192.168.1.1/24 (no route out)
#   control0..2  systemd-nspawn containers (systemd, sshd) at 192.168.1.11-13; KCP_LAB_NODES=N (1-9):
#                control0..control{N-1} at 192.168.1.11..(10+N), all on one cached rootfs (an overlay each)
#   gateway      QEMU/TCG VM (Debian cloud kernel with ip_vs, ipvsadm, ldirectord) at 192.168.1.10
#   binary mirror http://192.168.1.1:8080 (lab/mirror/serve.sh)
# and writes Pulumi.lab.yaml. Idempotent: on a running lab it only checks and repairs, and grows or shrinks
# the lab to KCP_LAB_NODES if that differs from the count the lab has (recorded in $LAB_RUN/nodes-count).
#   the mirror holds the program's default versions and the patch releases the e2e upgrades to
#   (LAB_UPGRADE_KUBE_VERSION, LAB_UPGRADE_ETCD_VERSION in lab/lib.sh)
# Env: KCP_LAB_NODES (control nodes, 1-9; default: the count of the lab that is up, else 3),
#      KCP_LAB_BOOT_TIMEOUT (s, default 180), KCP_LAB_NO_MIRROR=1 (no mirror at all), KCP_LAB_NO_KVM=1 (TCG),
#      KCP_LAB_SKIP_MIRROR_BUILD=1 (serve the mirror as it is, without lab/mirror/build.sh).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=lab/lib.sh
source "$here/lib.sh"

T0=$SECONDS

setup_network() {
  mkdir -p "$LAB_RUN"
  install -d -m 0700 "$LAB_RUN/ssh"
  if ! lab_ns_exists; then
    # Remember whether /run/netns was there before us, so lab:down can restore that.
    [[ -d /run/netns ]] || : >"$LAB_RUN/created-run-netns"
    [[ -e $LAB_NS_PATH ]] && { umount "$LAB_NS_PATH" 2>/dev/null || true; rm -f "$LAB_NS_PATH"; }
    lab_log "creating network namespace $LAB_NS"
    ip netns add "$LAB_NS"
  fi
  ip -n "$LAB_NS" link set lo up
  if ! ip -n "$LAB_NS" link show "$LAB_BRIDGE" >/dev/null 2>&1; then
    lab_log "creating bridge $LAB_BRIDGE with the runner address $LAB_RUNNER_IP/24"
    ip -n "$LAB_NS" link add "$LAB_BRIDGE" type bridge
  fi
  ip -n "$LAB_NS" link set "$LAB_BRIDGE" up
  ip -n "$LAB_NS" addr replace "$LAB_RUNNER_IP/24" dev "$LAB_BRIDGE"
  # No way out: no default route, no forwarding.
  ip -n "$LAB_NS" route flush default 2>/dev/null || true
  lab_in_ns sh -c 'echo 0 > /proc/sys/net/ipv4/ip_forward'
  # Name resolution for commands run with `ip netns exec kcplab` (lab/exec.sh).
  mkdir -p "$LAB_NETNS_ETC"
  lab_hosts_file >"$LAB_NETNS_ETC/hosts"
}

# Per-node files written into the node's overlay (upper layer) before it boots.
node_files() {
  local n=$1 root=$2
  printf '%s\n' "$n" >"$root/etc/hostname"
  lab_hosts_file >"$root/etc/hosts"
  cat >"$root/etc/systemd/network/10-kcp-lab.network" <<EOF
[Match]
Name=enp0s1 host0

[Network]
Address=${LAB_IP[$n]}/24
LinkLocalAddressing=no
IPv6AcceptRA=no
EOF
  install -m 0600 "$LAB_HOSTKEYS/$n/ssh_host_ed25519_key" "$root/etc/ssh/ssh_host_ed25519_key"
  install -m 0644 "$LAB_HOSTKEYS/$n/ssh_host_ed25519_key.pub" "$root/etc/ssh/ssh_host_ed25519_key.pub"
  install -d -m 0700 -o 1000 -g 1000 "$root/home/ubuntu/.ssh"
  install -m 0600 -o 1000 -g 1000 "$LAB_KEY.pub" "$root/home/ubuntu/.ssh/authorized_keys"
}

start_node() {
  local n=$1 d=$LAB_RUN/nodes/$1
  local root=$d/root pidfile=$d/nspawn.pid
  if lab_pid_alive "$pidfile" systemd-nspawn; then
    lab_log "$n: running (nspawn pid $(<"$pidfile"))"
    return 0
  fi
  # Its own cgroup (see lab_cgroup_dirs), recorded for lab:down.
  local cgs=() c
  mapfile -t cgs < <(lab_cgroup_dirs "$n")
  # A container whose nspawn died (killed, crashed) can live on: end it before a restart.
  if [[ -n $(lab_cgroup_pids "${cgs[@]}") ]]; then
    lab_log "$n: ending what is left of its previous container"
    lab_kill_cgroups "${cgs[@]}" || lab_die "$n: could not end its previous container"
  fi
  mkdir -p "$d/upper" "$d/work" "$root"
  if ! mountpoint -q "$root"; then
    mount -t overlay "kcplab-$n" \
      -o "lowerdir=$LAB_CACHE/node-rootfs,upperdir=$d/upper,workdir=$d/work" "$root"
  fi
  node_files "$n" "$root"
  for c in "${cgs[@]}"; do
    mkdir -p "$c"
    grep -qxF "$c" "$LAB_RUN/cgroups" 2>/dev/null || echo "$c" >>"$LAB_RUN/cgroups"
  done
  lab_log "$n: starting systemd-nspawn (log: $d/console.log)"
  # nsenter, setsid and the cgroup-entering bash all exec: $! is the nspawn process itself.
  # shellcheck disable=SC2016 # expanded by that bash
  nsenter --net="$LAB_NS_PATH" -- setsid bash -c \
    'while [ "$1" != -- ]; do echo $$ >"$1/cgroup.procs" || exit 1; shift; done; shift; exec "$@"' \
    kcp-lab-cgroup "${cgs[@]}" -- systemd-nspawn --quiet --register=no --keep-unit --boot \
    --machine="$n" --hostname="$n" --directory="$root" --network-bridge="$LAB_BRIDGE" \
    --resolv-conf=off --timezone=off --link-journal=no --console=read-only \
    </dev/null >"$d/console.log" 2>&1 4>&- &
  echo "$!" >"$pidfile"
}

nspawn_gone() { ! lab_pid_alive "$1" systemd-nspawn; }

# stop_node NAME: takes a control node the lab no longer has (it shrinks) down as lab:down would:
# orderly poweroff, what is left in its cgroups, its ssh master, overlay, cgroups and runtime dir.
stop_node() {
  local n=$1 d=$LAB_RUN/nodes/$1 cgs=() c s
  mapfile -t cgs < <(lab_cgroup_dirs "$n")
  if lab_pid_alive "$d/nspawn.pid" systemd-nspawn; then
    lab_log "$n: stopping (SIGTERM to systemd-nspawn $(<"$d/nspawn.pid"): orderly poweroff)"
    kill -TERM "$(<"$d/nspawn.pid")" 2>/dev/null || true
    lab_wait "$n's systemd-nspawn to exit" "$LAB_STOP_TIMEOUT" nspawn_gone "$d/nspawn.pid" ||
      kill -KILL "$(<"$d/nspawn.pid")" 2>/dev/null || true
  fi
  lab_kill_cgroups "${cgs[@]}" || lab_die "$n: could not end its container"
  for s in "$LAB_RUN/ssh/$n-"*; do
    [[ -S $s ]] || continue
    lab_in_ns ssh -o ControlPath="$s" -O exit "$n" >/dev/null 2>&1 || true
    rm -f "$s"
  done
  if mountpoint -q "$d/root"; then umount "$d/root" 2>/dev/null || umount -l "$d/root"; fi
  for c in "${cgs[@]}"; do
    [[ ! -d $c ]] || find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || true
    [[ ! -d $c ]] || lab_log "WARNING: could not remove cgroup $c"
  done
  if [[ -f $LAB_RUN/cgroups ]]; then
    grep -vE "/kcp-lab/$n\$" "$LAB_RUN/cgroups" >"$LAB_RUN/cgroups.tmp" || true
    mv -f "$LAB_RUN/cgroups.tmp" "$LAB_RUN/cgroups"
  fi
  rm -rf "$d"
  lab_log "$n: removed"
}

# sync_node_hosts: /etc/hosts of the running nodes lists every host of the lab (it grew or shrank).
sync_node_hosts() {
  local n f
  for n in "${LAB_NODES[@]}"; do
    f=$LAB_RUN/nodes/$n/root/etc/hosts
    lab_hosts_file | cmp -s - "$f" && continue
    lab_log "$n: rewriting /etc/hosts for ${LAB_HOSTS[*]}"
    lab_hosts_file >"$f.kcp-lab"
    mv -f "$f.kcp-lab" "$f"
  done
}

# sync_gateway_hosts: the same on the gateway, whose image was built with the default nodes' /etc/hosts.
sync_gateway_hosts() {
  local have
  have=$(lab_ssh gateway cat /etc/hosts) || lab_die "gateway: could not read /etc/hosts"
  [[ $have == "$(lab_hosts_file)" ]] && return 0
  lab_log "gateway: rewriting /etc/hosts for ${LAB_HOSTS[*]}"
  lab_hosts_file | lab_ssh gateway 'sudo sh -c "cat >/etc/hosts.kcp-lab && mv -f /etc/hosts.kcp-lab /etc/hosts"' ||
    lab_die "gateway: could not write /etc/hosts"
}

# kvm_works: /dev/kvm is there and a guest really runs on it: the gateway's kernel, booted without a disk,
# prints its banner within 10 s. A /dev/kvm of PVM alone (the kvm_pvm module, no kvm_intel or kvm_amd: KVM in
# a VM that offers no nested virtualization) runs only guest kernels built for PVM, which is not in mainline
# Linux and so not in Debian's: the trial is skipped (it took 10 s, QEMU silent at 100% CPU).
kvm_works() {
  [[ ${KCP_LAB_NO_KVM:-0} != 1 && -r /dev/kvm && -w /dev/kvm ]] || return 1
  if [[ -d /sys/module/kvm_pvm && ! -d /sys/module/kvm_intel && ! -d /sys/module/kvm_amd ]]; then
    lab_log "gateway: /dev/kvm is PVM's (kvm_pvm), which runs only PVM guest kernels, not Debian's: software emulation (TCG)"
    return 1
  fi
  local probe=$LAB_RUN/gateway/kvm-probe.log
  rm -f "$probe"
  timeout 10 qemu-system-x86_64 -machine q35 -accel kvm -m 128 -smp 1 -nodefaults -no-user-config -display none \
    -vga none -no-reboot -kernel "$LAB_CACHE/gateway/vmlinuz" -append "console=ttyS0 panic=-1" \
    -serial "file:$probe" >/dev/null 2>&1 || true
  if grep -q 'Linux version' "$probe" 2>/dev/null; then return 0; fi
  lab_log "gateway: /dev/kvm runs no guest here (no kernel banner within 10s): software emulation (TCG)"
  return 1
}

start_gateway() {
  local d=$LAB_RUN/gateway img=$LAB_CACHE/gateway
  local pidfile=$d/qemu.pid
  mkdir -p "$d"
  if ! ip -n "$LAB_NS" link show "$LAB_TAP" >/dev/null 2>&1; then
    ip -n "$LAB_NS" tuntap add dev "$LAB_TAP" mode tap
  fi
  ip -n "$LAB_NS" link set "$LAB_TAP" master "$LAB_BRIDGE" up
  if lab_pid_alive "$pidfile" qemu-system-x86; then
    lab_log "gateway: running (qemu pid $(<"$pidfile"))"
    gateway_first "$(<"$pidfile")"
    return 1
  fi
  [[ -f $d/disk.qcow2 ]] ||
    qemu-img create -q -f qcow2 -F qcow2 -b "$img/base.qcow2" "$d/disk.qcow2"
  # KVM where it works here, software emulation (TCG) otherwise.
  local accel=tcg,tb-size=256 kind=TCG
  if kvm_works; then accel=kvm kind=KVM; fi
  echo "$kind" >"$d/accel"
  lab_log "gateway: starting QEMU/$kind (serial console: $d/console.log)"
  rm -f "$pidfile"
  lab_in_ns qemu-system-x86_64 -name kcp-gateway -machine q35 -accel "$accel" \
    -m "$LAB_GATEWAY_MEM" -smp 1 -nodefaults -no-user-config -display none -vga none \
    -kernel "$img/vmlinuz" -initrd "$img/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 net.ifnames=1 mitigations=off no_timer_check panic=5 systemd.show_status=auto" \
    -drive "file=$d/disk.qcow2,if=none,id=disk0,format=qcow2,discard=unmap" \
    -device virtio-blk-pci,drive=disk0,addr=0x2 \
    -netdev "tap,id=net0,ifname=$LAB_TAP,script=no,downscript=no" \
    -device "virtio-net-pci,netdev=net0,addr=0x1,mac=$LAB_GATEWAY_MAC" \
    -device virtio-rng-pci,addr=0x3 \
    -serial "file:$d/console.log" -daemonize -pidfile "$pidfile" 4>&-
  gateway_first "$(<"$pidfile")"
  date +%s >"$d/started"
  return 0
}

# gateway_first PID: the gateway stands for a machine of its own, yet shares this machine's cores with the
# control nodes' containers, and under emulation every step on it (an SSH login, a daemon-reload) takes
# seconds of CPU: when both want the CPU, QEMU gets it first. Its autogroup (QEMU's own session: a plain nice
# ranks a process only within its autogroup) and every thread of it at nice -10.
gateway_first() {
  if [[ -w /proc/$1/autogroup ]]; then echo -10 >"/proc/$1/autogroup"; fi
  local threads
  mapfile -t threads < <(ls "/proc/$1/task")
  renice -n -10 -p "${threads[@]}" >/dev/null
}

start_mirror() {
  local pidfile=$LAB_RUN/mirror.pid
  if [[ ${KCP_LAB_NO_MIRROR:-0} == 1 ]]; then
    lab_log "mirror: skipped (KCP_LAB_NO_MIRROR=1)"
    return 0
  fi
  if lab_pid_alive "$pidfile"; then
    lab_log "mirror: serving (pid $(<"$pidfile"))"
  else
    [[ -f $repo/lab/mirror/serve.sh ]] || lab_die "lab/mirror/serve.sh is missing"
    lab_log "mirror: starting lab/mirror/serve.sh $LAB_RUNNER_IP $LAB_MIRROR_PORT (log: $LAB_RUN/mirror.log)"
    nsenter --net="$LAB_NS_PATH" -- setsid bash "$repo/lab/mirror/serve.sh" "$LAB_RUNNER_IP" "$LAB_MIRROR_PORT" \
      </dev/null >"$LAB_RUN/mirror.log" 2>&1 4>&- &
    echo "$!" >"$pidfile"
  fi
  lab_wait "the mirror on http://$LAB_RUNNER_IP:$LAB_MIRROR_PORT" 30 \
    lab_in_ns curl -fsS -o /dev/null --max-time 2 "http://$LAB_RUNNER_IP:$LAB_MIRROR_PORT/SHA256SUMS.json" || {
    tail -n 20 "$LAB_RUN/mirror.log" >&2
    lab_die "the mirror did not come up (log: $LAB_RUN/mirror.log)"
  }
}

ssh_ready() { lab_ssh "$1" sudo -n true; }

# gateway_ready: SSH works; stops the wait at once (by exiting the poll) if QEMU is gone.
# A kernel panic under a loaded TCG reboots the guest (panic=5) and the wait goes on.
gateway_ready() {
  if ! lab_pid_alive "$LAB_RUN/gateway/qemu.pid" qemu-system-x86; then
    # lab_wait hides the poll's output: report on fd 4, the script's stderr.
    tail -n 30 "$LAB_RUN/gateway/console.log" >&4
    lab_log "ERROR: QEMU of the gateway exited (serial console: $LAB_RUN/gateway/console.log)" 2>&4
    exit 1
  fi
  ssh_ready gateway
}

# Pulumi.lab.yaml: only what the lab must override (the nodes too when their count is not the code's
# default control0..2); keeps a present encryptionsalt line.
write_stack_file() {
  local f=$repo/Pulumi.lab.yaml salt="" h c
  [[ -f $f ]] && salt=$(grep -E '^encryptionsalt:' "$f" || true)
  {
    [[ -n $salt ]] && printf '%s\n' "$salt"
    printf '# Generated by lab/up.sh (npm run lab:up): the local lab. Do not edit; do not commit.\n'
    printf 'config:\n'
    printf '  control-plane:arch: amd64\n'
    printf '  control-plane:nic: enp0s1\n'
    printf '  control-plane:mirrorUrl: http://%s:%s\n' "$LAB_RUNNER_IP" "$LAB_MIRROR_PORT"
    printf '  control-plane:sshPrivateKeyPath: %s\n' "$LAB_KEY"
    if ((LAB_NODE_COUNT != LAB_DEFAULT_NODES)); then
      printf '  control-plane:nodes:\n'
      for h in "${LAB_NODES[@]}"; do printf '    - name: %s\n      address: %s\n' "$h" "${LAB_IP[$h]}"; done
    fi
    printf '  control-plane:hostKeys:\n'
    for h in "${LAB_HOSTS[@]}"; do
      printf '    %s: %s\n' "$h" "$(cut -d' ' -f1-2 "$LAB_HOSTKEYS/$h/ssh_host_ed25519_key.pub")"
    done
    if [[ -f $LAB_MIRROR_DIR/SHA256SUMS.json ]]; then
      printf '  control-plane:sha256:\n'
      for c in etcd kube-apiserver kube-controller-manager kube-scheduler; do
        h=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' \
          "$LAB_MIRROR_DIR/SHA256SUMS.json" "$c")
        [[ $h =~ ^[0-9a-f]{64}$ ]] || lab_die "$LAB_MIRROR_DIR/SHA256SUMS.json has no sha256 for $c"
        printf '    %s: %s\n' "$c" "$h"
      done
    else
      lab_log "WARNING: $LAB_MIRROR_DIR/SHA256SUMS.json missing: Pulumi.lab.yaml has no sha256 sums"
    fi
  } >"$f.tmp"
  mv -f "$f.tmp" "$f"
  lab_log "wrote $f"
}

main() {
  exec 4>&2
  lab_need_root
  lab_need_tools ip nsenter setsid systemd-nspawn qemu-system-x86_64 qemu-img ssh ssh-keygen mountpoint curl python3
  [[ -c /dev/net/tun ]] || lab_die "/dev/net/tun is missing (QEMU's tap needs it)"
  bash "$here/build.sh"
  if [[ ${KCP_LAB_NO_MIRROR:-0} == 1 || ${KCP_LAB_SKIP_MIRROR_BUILD:-0} == 1 ]]; then
    lab_log "mirror: not building (KCP_LAB_NO_MIRROR / KCP_LAB_SKIP_MIRROR_BUILD)"
  else
    [[ -f $repo/lab/mirror/build-lab.sh ]] || lab_die "lab/mirror/build-lab.sh is missing (or set KCP_LAB_NO_MIRROR=1)"
    bash "$repo/lab/mirror/build-lab.sh"
  fi
  setup_network
  local n gw_started=0 gw_t0 was
  was=$(lab_recorded_node_count)
  if [[ -n $was && $was != "$LAB_NODE_COUNT" ]]; then
    lab_log "the lab has $was control nodes: KCP_LAB_NODES=$LAB_NODE_COUNT resizes it to ${LAB_NODES[*]}"
  fi
  echo "$LAB_NODE_COUNT" >"$LAB_NODES_COUNT_FILE"
  for n in $(lab_node_dirs); do
    [[ -n ${LAB_IP[$n]:-} ]] || stop_node "$n"
  done
  for n in "${LAB_NODES[@]}"; do start_node "$n"; done
  sync_node_hosts
  if start_gateway; then gw_started=1; fi
  gw_t0=$(cat "$LAB_RUN/gateway/started" 2>/dev/null || date +%s)
  start_mirror
  for n in "${LAB_NODES[@]}"; do
    lab_wait "SSH + sudo on $n (${LAB_IP[$n]})" "$LAB_BOOT_TIMEOUT" ssh_ready "$n" || {
      tail -n 30 "$LAB_RUN/nodes/$n/console.log" >&2
      lab_die "$n did not come up (console: $LAB_RUN/nodes/$n/console.log)"
    }
  done
  lab_wait "SSH + sudo on gateway (${LAB_IP[gateway]}, QEMU/$(cat "$LAB_RUN/gateway/accel" 2>/dev/null) boot)" \
    "$LAB_BOOT_TIMEOUT" gateway_ready || {
    tail -n 30 "$LAB_RUN/gateway/console.log" >&2
    lab_pid_alive "$LAB_RUN/gateway/qemu.pid" qemu-system-x86 || lab_die "QEMU of the gateway exited"
    lab_die "gateway did not come up (serial console: $LAB_RUN/gateway/console.log)"
  }
  ((gw_started == 0)) || lab_log "gateway: boot to SSH took $(($(date +%s) - gw_t0))s"
  sync_gateway_hosts
  write_stack_file
  lab_log "lab is up in $((SECONDS - T0))s: ${LAB_HOSTS[*]} (ssh: lab/ssh.sh HOST CMD; runner: lab/exec.sh CMD)"
}

main "$@"
