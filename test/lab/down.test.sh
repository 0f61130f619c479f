#!/usr/bin/env bash
# Checks, after npm run lab:down, that nothing of the lab remains.
set -euo pipefail
# shellcheck source=test/lab/helpers.sh
source "$(dirname "${BASH_SOURCE[0]}")/helpers.sh"

check_not "no network namespace $LAB_NS (ip netns list)" sh -c "ip netns list | grep -qw $LAB_NS"
check_not "no $LAB_NS_PATH" test -e "$LAB_NS_PATH"
check_not "no /etc/netns/$LAB_NS" test -e "$LAB_NETNS_ETC"
check_not "no bridge $LAB_BRIDGE, tap $LAB_TAP or nspawn veth (vb-*) on the host" \
  sh -c "ip -o link show | awk -F': ' '{print \$2}' | grep -E '^($LAB_BRIDGE|$LAB_TAP|vb-control[0-9]|ve-control[0-9])(@|\$)'"

# shellcheck disable=SC2317 # called through check_not
lab_procs() {
  local p cmd found=1
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [[ $p == "$$" || $p == "$BASHPID" ]] && continue
    cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") || continue
    case $cmd in
      *systemd-nspawn*"$LAB_RUN"* | *qemu-system*kcp-gateway* | *"$LAB_RUN/"* | *serve.sh*"$LAB_RUNNER_IP"*)
        echo "$p: $cmd"
        found=0
        ;;
    esac
  done
  return "$found"
}
check_not "no lab processes (systemd-nspawn, qemu, mirror)" lab_procs
check_not "no mounts under $LAB_STATE" grep -qF " $LAB_STATE/" /proc/self/mountinfo
check_eq "no lab cgroups (kcp-lab) under /sys/fs/cgroup" "" find /sys/fs/cgroup -maxdepth 5 -type d -name kcp-lab
check_not "runtime dir $LAB_RUN removed" test -e "$LAB_RUN"

test_done
