#!/usr/bin/env bash
# Checks that lab:up repairs a lab that crashed half way: a control node whose
# systemd-nspawn was SIGKILLed (its container lives on, orphaned) is ended and
# booted again, and the rest of the lab is left running.
set -euo pipefail
# shellcheck source=test/lab/helpers.sh
source "$(dirname "${BASH_SOURCE[0]}")/helpers.sh"

require_lab_up

n=control2
pidfile=$LAB_RUN/nodes/$n/nspawn.pid
old=$(cat "$pidfile")
gw_old=$(cat "$LAB_RUN/gateway/qemu.pid")
c0_old=$(cat "$LAB_RUN/nodes/control0/nspawn.pid")
mapfile -t cgs < <(lab_cgroup_dirs "$n")
kill -KILL "$old"
sleep 1
check "$n: its container outlives the SIGKILLed nspawn (the crash being tested)" \
  test -n "$(lab_cgroup_pids "${cgs[@]}")"
mirror=()
[[ ${KCP_LAB_NO_MIRROR:-0} == 1 ]] || mirror=(KCP_LAB_SKIP_MIRROR_BUILD=1)
check "lab:up after the crash succeeds" env "${mirror[@]}" bash "$repo/lab/up.sh"
new=$(cat "$pidfile")
check "$n: a new systemd-nspawn runs" lab_pid_alive "$pidfile" systemd-nspawn
check "$n: the new nspawn is not the old one" test "$new" != "$old"
inits=$(grep -c . "${cgs[0]}/payload/init.scope/cgroup.procs" 2>/dev/null || echo 0)
check_eq "$n: exactly one container init in its cgroup" 1 echo "$inits"
check_eq "$n: SSH + sudo work again" 0 "$repo/lab/ssh.sh" "$n" sudo -n id -u
check_eq "gateway: left running (same QEMU)" "$gw_old" cat "$LAB_RUN/gateway/qemu.pid"
check_eq "control0: left running (same nspawn)" "$c0_old" cat "$LAB_RUN/nodes/control0/nspawn.pid"

test_done
