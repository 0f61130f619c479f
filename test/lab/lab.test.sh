#!/usr/bin/env bash
# Checks a lab that is up (npm run lab:up): the hosts look to the program like the seed's VMs.
set -euo pipefail
# shellcheck source=test/lab/helpers.sh
source "$(dirname "${BASH_SOURCE[0]}")/helpers.sh"

require_lab_up

on() { "$repo/lab/ssh.sh" "$@"; }

# --- the lab key and the pinned host keys
check_eq "lab key $LAB_KEY has mode 0600" 600 stat -c %a "$LAB_KEY"
stack=$repo/Pulumi.lab.yaml
check "Pulumi.lab.yaml exists" test -f "$stack"
# Every host's name and address, as /etc/hosts on every host and the runner must resolve them.
want_hosts=$(for h in "${LAB_HOSTS[@]}"; do echo "${LAB_IP[$h]} $h"; done | xargs)

for h in "${LAB_HOSTS[@]}"; do
  ip=${LAB_IP[$h]}
  check_eq "$h: SSH with the lab key reaches $ip as ubuntu" ubuntu on "$h" id -un
  check_eq "$h: passwordless sudo" 0 on "$h" sudo -n id -u
  check_eq "$h: hostname" "$h" on "$h" hostname
  check "$h: has $ip on enp0s1" on "$h" "ip -4 -o addr show dev enp0s1 | grep -qw 'inet $ip/24'"
  # The host key the host presents is the one pinned in known_hosts and Pulumi.lab.yaml.
  want=$(cut -d' ' -f1-2 "$LAB_HOSTKEYS/$h/ssh_host_ed25519_key.pub")
  got=$(lab_in_ns ssh-keyscan -T 5 -t ed25519 "$ip" 2>/dev/null | awk '{print $2" "$3}' | head -n1)
  check_eq "$h: presents its lab host key" "$want" echo "$got"
  check "$h: Pulumi.lab.yaml pins that host key" grep -qxF "    $h: $want" "$stack"
  # Pinning is real: the same host under another host's pinned key is refused.
  other=control0
  [[ $h == control0 ]] && other=control1
  mapfile -t opts < <(lab_ssh_opts "$other" nomux)
  check_not "$h: SSH refuses a host key pinned for another host" \
    lab_in_ns ssh "${opts[@]}" "ubuntu@$ip" true
  state=$(on "$h" "timeout 60 systemctl is-system-running --wait" 2>/dev/null || true)
  case $state in
    running | degraded)
      pass "$h: systemctl is-system-running answers: $state"
      [[ $state == degraded ]] &&
        on "$h" "systemctl --failed --no-legend --plain" 2>/dev/null | sed "s/^/    $h failed unit: /"
      ;;
    *) fail "$h: systemctl is-system-running answers running or degraded (got '$state')" ;;
  esac
  check_eq "$h: resolves kubernetes to the VIP" "$LAB_VIP" on "$h" "getent hosts kubernetes | awk '{print \$1}'"
  check_eq "$h: resolves kubernetes.kubenet to the VIP" "$LAB_VIP" on "$h" "getent hosts kubernetes.kubenet | awk '{print \$1}'"
  check_eq "$h: resolves every lab host (${LAB_HOSTS[*]})" "$want_hosts" \
    on "$h" "for n in ${LAB_HOSTS[*]}; do getent hosts \$n | awk '{print \$1\" \"\$2}'; done | xargs"
  check_not "$h: has no route out of the lab (ip route get 8.8.8.8 fails)" on "$h" ip route get 8.8.8.8
  check_eq "$h: has no default route" "" on "$h" ip route show default
done

# --- control nodes: what the program needs there
for n in "${LAB_NODES[@]}"; do
  # shellcheck disable=SC2016 # expanded on the node
  check "$n: arp_ignore/arp_announce writable" on "$n" '
    set -e
    old_i=$(sysctl -n net.ipv4.conf.all.arp_ignore); old_a=$(sysctl -n net.ipv4.conf.all.arp_announce)
    sudo sysctl -q -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
    [ "$(sysctl -n net.ipv4.conf.all.arp_ignore)" = 1 ] && [ "$(sysctl -n net.ipv4.conf.all.arp_announce)" = 2 ]
    sudo sysctl -q -w net.ipv4.conf.all.arp_ignore="$old_i" net.ipv4.conf.all.arp_announce="$old_a"'
  check "$n: can add the VIP on lo (ip addr add/del ${LAB_VIP}/32 dev lo)" on "$n" \
    "sudo ip addr add $LAB_VIP/32 dev lo && sudo ip addr del $LAB_VIP/32 dev lo"
  check "$n: curl, tar, gzip, systemctl present" on "$n" "command -v curl && command -v tar && command -v gzip && command -v systemctl"
  if [[ ${KCP_LAB_NO_MIRROR:-0} != 1 ]]; then
    check "$n: reaches the mirror http://$LAB_RUNNER_IP:$LAB_MIRROR_PORT" on "$n" \
      "curl -fsS -o /dev/null --max-time 5 http://$LAB_RUNNER_IP:$LAB_MIRROR_PORT/SHA256SUMS.json"
  fi
done

# Each container has its own cgroup: stopping a unit on one node leaves the same unit
# on another alone (the seed's failover check stops kube-apiserver on control0 only).
for n in control0 control1; do
  on "$n" "sudo systemctl stop kcp-lab-probe 2>/dev/null; sudo systemctl reset-failed kcp-lab-probe 2>/dev/null; sudo systemd-run -q --unit=kcp-lab-probe sleep 600" >/dev/null 2>&1 || true
done
on control0 sudo systemctl stop kcp-lab-probe >/dev/null 2>&1 || true
check_eq "control1: its unit survives stopping the same unit on control0 (own cgroups)" active \
  on control1 systemctl is-active kcp-lab-probe
on control1 sudo systemctl stop kcp-lab-probe >/dev/null 2>&1 || true
for n in "${LAB_NODES[@]}"; do
  check "$n: container init has its own cgroup on the host" sh -c \
    "grep -Eq ':/(.*/)?kcp-lab/$n(/|\$)' /proc/\$(cat '$LAB_RUN/nodes/$n/nspawn.pid')/cgroup"
done

# --- the gateway: IPVS and ldirectord as the seed's chapter needs them
gateway_priority() {
  local pid
  pid=$(<"$LAB_RUN/gateway/qemu.pid")
  ps -L -o ni= -p "$pid" | sort -u | tr -d ' ' | paste -sd ' '
  if [[ -e /proc/$pid/autogroup ]]; then awk '{print $NF}' "/proc/$pid/autogroup"; else echo -10; fi
}
check_eq "gateway: QEMU's threads and autogroup at nice -10 (first to the CPU)" "$(printf '%s\n' -10 -10)" gateway_priority
check "gateway: ip_vs loaded" on gateway "grep -qw '^ip_vs' /proc/modules && test -e /proc/net/ip_vs"
check "gateway: sudo ipvsadm -Ln runs" on gateway sudo -n ipvsadm -Ln
check "gateway: ldirectord installed" on gateway "dpkg-query -W -f='\${Status}' ldirectord | grep -q 'install ok installed'"
check_not "gateway: ldirectord not running" on gateway "pgrep -x ldirectord || systemctl is-active --quiet ldirectord"
check_not "gateway: ldirectord not enabled" on gateway "systemctl is-enabled --quiet ldirectord"
check "gateway: perl HTTPS for ldirectord checks" on gateway "perl -MLWP::UserAgent -MLWP::Protocol::https -MIO::Socket::SSL -e1"
check_not "gateway: /run/lock/subsys not pre-created" on gateway test -e /run/lock/subsys
check_eq "gateway: NIC is enp0s1 (the program's default nic)" enp0s1 on gateway \
  "ip -o link show | awk -F': ' '\$2 != \"lo\" {print \$2}' | xargs"

# --- the runner's namespace: no way out
check_not "runner: ip route get 8.8.8.8 fails in $LAB_NS" lab_in_ns ip route get 8.8.8.8
check_not "runner: ip route get 10.0.0.1 fails in $LAB_NS" lab_in_ns ip route get 10.0.0.1
check_eq "runner: no default route in $LAB_NS" "" lab_in_ns ip route show default
check_eq "runner: ip_forward off in $LAB_NS" 0 lab_in_ns cat /proc/sys/net/ipv4/ip_forward
check "runner: has $LAB_RUNNER_IP/24 on $LAB_BRIDGE" sh -c \
  "ip -n $LAB_NS -4 -o addr show dev $LAB_BRIDGE | grep -qw 'inet $LAB_RUNNER_IP/24'"
check_eq "runner: lab/exec.sh resolves kubernetes to the VIP" "$LAB_VIP" \
  "$repo/lab/exec.sh" sh -c "getent hosts kubernetes | awk '{print \$1}'"
check_eq "runner: lab/exec.sh resolves every lab host (${LAB_HOSTS[*]})" "$want_hosts" \
  "$repo/lab/exec.sh" sh -c "for n in ${LAB_HOSTS[*]}; do getent hosts \$n | awk '{print \$1\" \"\$2}'; done | xargs"
# No traffic is ever sent to an outside address: the routing checks above are the proof.

test_done
