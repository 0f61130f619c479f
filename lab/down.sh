#!/usr/bin/env bash
# npm run lab:down — stops the local lab and leaves the machine as lab:up found it:
# no namespace, bridge, tap/veth, container or VM process, no mounts, no runtime dir.
# Keeps the caches (/var/cache/kcp) and the SSH keys (/var/lib/kcp-lab/ssh).
# Safe with nothing running and after a crash half way.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# lab:down takes down every node that is up (lab_node_dirs), whatever KCP_LAB_NODES says.
unset KCP_LAB_NODES
# shellcheck source=lab/lib.sh
source "$here/lib.sh"

T0=$SECONDS

# pids_of_lab: processes that belong to the lab: started with a path under the
# runtime dir (nspawn, qemu), or living in the lab's network namespace.
pids_of_lab() {
  local p ns_ino="" cmd
  [[ -e $LAB_NS_PATH ]] && ns_ino=$(stat -L -c %i "$LAB_NS_PATH" 2>/dev/null || true)
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [[ $p == "$$" || $p == "$BASHPID" ]] && continue
    cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") || continue
    if [[ $cmd == *"$LAB_RUN/"* ]]; then
      echo "$p"
    elif [[ -n $ns_ino && $ns_ino != 0 && $(stat -L -c %i "/proc/$p/ns/net" 2>/dev/null) == "$ns_ino" ]]; then
      echo "$p"
    fi
  done
}

# stop_pidfile PIDFILE NAME SIGNAL: signal the process in PIDFILE (if it is NAME).
stop_pidfile() {
  local pidfile=$1 name=$2 sig=$3
  if lab_pid_alive "$pidfile" "$name"; then
    lab_log "stopping $name (pid $(<"$pidfile")) with SIG$sig"
    kill -s "$sig" "$(<"$pidfile")" 2>/dev/null || true
  fi
}

wait_gone() {
  local timeout=$1 t0=$SECONDS p left
  shift
  while ((SECONDS - t0 < timeout)); do
    left=0
    for p in "$@"; do [[ -d /proc/$p ]] && left=1; done
    ((left == 0)) && return 0
    sleep 0.5
  done
  return 1
}

stop_processes() {
  local pids=() f p n
  # The mirror (its own session: serve.sh execs the server).
  if lab_pid_alive "$LAB_RUN/mirror.pid"; then
    p=$(<"$LAB_RUN/mirror.pid")
    lab_log "stopping the mirror (pid $p)"
    kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true
    pids+=("$p")
  fi
  # Containers: SIGTERM makes systemd-nspawn shut the container down in order.
  # Every node that has a runtime dir, whatever KCP_LAB_NODES says (a lab brought up with more).
  for n in $(lab_node_dirs); do
    f=$LAB_RUN/nodes/$n/nspawn.pid
    if lab_pid_alive "$f" systemd-nspawn; then
      # Read first: the pidfile can go with the process.
      p=$(<"$f")
      stop_pidfile "$f" systemd-nspawn TERM
      pids+=("$p")
    fi
  done
  # The gateway VM's disk is a throwaway overlay: just stop QEMU.
  f=$LAB_RUN/gateway/qemu.pid
  if lab_pid_alive "$f" qemu-system-x86; then
    # Read first: QEMU removes its pidfile as it exits.
    p=$(<"$f")
    stop_pidfile "$f" qemu-system-x86 TERM
    pids+=("$p")
  fi
  if ((${#pids[@]} > 0)); then
    lab_log "waiting for ${#pids[@]} lab processes to exit (up to ${LAB_STOP_TIMEOUT}s)"
    if ! wait_gone "$LAB_STOP_TIMEOUT" "${pids[@]}"; then
      lab_log "still running after ${LAB_STOP_TIMEOUT}s: killing"
      for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
      wait_gone 10 "${pids[@]}" || lab_log "WARNING: some lab processes survived SIGKILL: ${pids[*]}"
    fi
  fi
  # Containers whose nspawn is gone (killed above or before): their processes live on
  # in the containers' cgroups.
  local cgs=()
  [[ -f $LAB_RUN/cgroups ]] && mapfile -t cgs <"$LAB_RUN/cgroups"
  mapfile -t -O "${#cgs[@]}" cgs < <(find /sys/fs/cgroup -maxdepth 5 -type d -name kcp-lab 2>/dev/null)
  if ((${#cgs[@]} > 0)) && [[ -n $(lab_cgroup_pids "${cgs[@]}") ]]; then
    lab_log "ending processes left in the containers' cgroups"
    lab_kill_cgroups "${cgs[@]}" || true
  fi
  # Anything else of the lab (no pidfile after a crash, strays in the namespace).
  mapfile -t pids < <(pids_of_lab)
  if ((${#pids[@]} > 0)); then
    lab_log "stopping leftover lab processes: ${pids[*]}"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    if ! wait_gone 10 "${pids[@]}"; then
      kill -KILL "${pids[@]}" 2>/dev/null || true
      wait_gone 5 "${pids[@]}" || lab_log "WARNING: lab processes survived SIGKILL: ${pids[*]}"
    fi
  fi
}

unmount_all() {
  local m
  # Deepest first; the mount table escapes spaces as \040 (the lab's paths have none).
  for _ in 1 2 3; do
    mapfile -t mounts < <(awk -v run="$LAB_RUN/" 'index($5, run) == 1 {print $5}' /proc/self/mountinfo | sort -r)
    ((${#mounts[@]} == 0)) && return 0
    for m in "${mounts[@]}"; do
      lab_log "unmounting $m"
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
  done
  mapfile -t mounts < <(awk -v run="$LAB_RUN/" 'index($5, run) == 1 {print $5}' /proc/self/mountinfo)
  ((${#mounts[@]} == 0)) || lab_die "could not unmount: ${mounts[*]}"
}

# The containers' cgroups (lab_cgroup_dirs), deepest first: cgroupfs removes only empty ones.
remove_cgroups() {
  local dirs=() d
  [[ -f $LAB_RUN/cgroups ]] && mapfile -t dirs <"$LAB_RUN/cgroups"
  # After a crash the list may be gone: the lab's cgroups are named kcp-lab.
  mapfile -t -O "${#dirs[@]}" dirs < <(find /sys/fs/cgroup -maxdepth 5 -type d -name kcp-lab 2>/dev/null)
  for d in "${dirs[@]}"; do
    [[ -d $d ]] || continue
    find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
    d=${d%/*}
    if [[ ${d##*/} == kcp-lab ]]; then rmdir "$d" 2>/dev/null || true; fi
  done
  for d in "${dirs[@]}"; do
    [[ ! -d $d ]] || lab_log "WARNING: could not remove cgroup $d (processes left in it?)"
  done
}

remove_network() {
  if [[ -e $LAB_NS_PATH ]]; then
    lab_log "deleting network namespace $LAB_NS (bridge $LAB_BRIDGE, tap $LAB_TAP, veths)"
    ip netns delete "$LAB_NS" 2>/dev/null || { umount "$LAB_NS_PATH" 2>/dev/null || true; rm -f "$LAB_NS_PATH"; }
  fi
  rm -rf "$LAB_NETNS_ETC"
  rmdir /etc/netns 2>/dev/null || true
  # /run/netns was made by `ip netns add` for the lab: take it away again if now empty.
  if [[ -f $LAB_RUN/created-run-netns && -d /run/netns ]] && [[ -z $(ls -A /run/netns) ]]; then
    umount /run/netns 2>/dev/null || true
    rmdir /run/netns 2>/dev/null || true
  fi
}

main() {
  lab_need_root
  lab_need_tools ip nsenter
  stop_processes
  unmount_all
  remove_cgroups
  remove_network
  rm -rf "$LAB_RUN"
  rm -f "$repo/Pulumi.lab.yaml.tmp"
  lab_log "lab is down in $((SECONDS - T0))s (caches kept: $LAB_CACHE, keys kept: $LAB_SSH_DIR)"
}

main "$@"
