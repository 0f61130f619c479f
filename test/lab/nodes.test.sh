#!/usr/bin/env bash
# Checks the node count (KCP_LAB_NODES) on the lab that is up: lab:up recorded it, lab/lib.sh and
# lab/ssh.sh follow it without KCP_LAB_NODES, Pulumi.lab.yaml lists the nodes, a bad count is refused;
# then lab:up resizes the running lab (to 3, or to 5 from 3) and back: the nodes it adds come up with SSH
# and their addresses, the ones it drops are gone, every host (the gateway too) and the runner resolve
# exactly the nodes that are up, Pulumi.lab.yaml follows, and the gateway and control0 keep running.
set -euo pipefail
# shellcheck source=test/lab/helpers.sh
source "$(dirname "${BASH_SOURCE[0]}")/helpers.sh"

require_lab_up

on() { "$repo/lab/ssh.sh" "$@"; }
stack=$repo/Pulumi.lab.yaml
mirror=()
[[ ${KCP_LAB_NO_MIRROR:-0} == 1 ]] || mirror=(KCP_LAB_SKIP_MIRROR_BUILD=1)

n0=$(lab_recorded_node_count)
check "lab:up recorded the node count in $LAB_NODES_COUNT_FILE" test -n "$n0"
[[ -n $n0 ]] || { test_done; exit; }

# yaml_nodes: the control-plane:nodes entries of Pulumi.lab.yaml, "name address" each, on one line.
yaml_nodes() {
  awk '/^  control-plane:nodes:/ {on = 1; next} on && /^    - name: / {n = $3; next}
       on && /^      address: / {printf "%s%s %s", sep, n, $2; sep = " "; next} {on = 0} END {print ""}' "$stack"
}
# yaml_host_keys: the host names under control-plane:hostKeys, on one line.
yaml_host_keys() {
  awk '/^  control-plane:hostKeys:/ {on = 1; next} on && /^    [a-z0-9]+: / {print substr($1, 1, length($1) - 1); next}
       {on = 0}' "$stack" | xargs
}
# resolved HOST: what HOST resolves control0..control8 to ("address name" each), on one line.
# shellcheck disable=SC2016 # expanded where it runs
resolve_all='for i in 0 1 2 3 4 5 6 7 8; do getent hosts control$i | awk "{print \$1, \$2}"; done | xargs'
resolved() {
  if [[ $1 == runner ]]; then "$repo/lab/exec.sh" sh -c "$resolve_all"; else on "$1" "$resolve_all"; fi
}

# check_nodes: the lab has the nodes of LAB_NODES (lab_set_nodes) and nothing else.
check_nodes() {
  local n=$LAB_NODE_COUNT h want="" i
  for h in "${LAB_NODES[@]}"; do want+="${want:+ }${LAB_IP[$h]} $h"; done
  check_eq "$n nodes: the node count recorded is $n" "$n" lab_recorded_node_count
  # shellcheck disable=SC2016 # expanded by that bash
  check_eq "$n nodes: lab/lib.sh without KCP_LAB_NODES has ${LAB_NODES[*]}" "${LAB_NODES[*]}" \
    env -u KCP_LAB_NODES bash -c 'source "$1"; echo "${LAB_NODES[*]}"' _ "$repo/lab/lib.sh"
  check_eq "$n nodes: node runtime dirs are those of ${LAB_NODES[*]}" "${LAB_NODES[*]}" sh -c "ls '$LAB_RUN/nodes' | xargs"
  for h in "${LAB_NODES[@]}"; do
    check_eq "$n nodes: $h answers lab/ssh.sh with its name and ${LAB_IP[$h]}/24" "$h ${LAB_IP[$h]}/24" \
      on "$h" "{ hostname; ip -4 -o addr show dev enp0s1 | awk '{print \$4}'; } | xargs"
  done
  for h in "${LAB_HOSTS[@]}" runner; do
    check_eq "$n nodes: $h resolves exactly the nodes that are up" "$want" resolved "$h"
  done
  for ((i = n; i < LAB_MAX_NODES; i++)); do
    check_not "$n nodes: no veth of control$i in $LAB_NS" sh -c "ip -n $LAB_NS -o link show | grep -q 'vb-control$i@'"
  done
  check_not "$n nodes: no mount of a node beyond control$((n - 1))" \
    sh -c "grep -E ' $LAB_RUN/nodes/control[$n-9]/' /proc/self/mountinfo"
  if ((n < LAB_MAX_NODES)); then
    # shellcheck disable=SC2016 # expanded by that sh
    check "$n nodes: lab/ssh.sh control$n is refused, naming KCP_LAB_NODES" \
      sh -c '! out=$("$1" control$2 true 2>&1) && echo "$out" | grep -q "KCP_LAB_NODES=$(($2 + 1)) npm run lab:up"' \
      _ "$repo/lab/ssh.sh" "$n"
  fi
  if ((n == LAB_DEFAULT_NODES)); then
    check_eq "$n nodes: Pulumi.lab.yaml leaves the nodes to the code's default (control0..2)" "" yaml_nodes
  else
    check_eq "$n nodes: Pulumi.lab.yaml lists the $n nodes" "$(for h in "${LAB_NODES[@]}"; do echo "$h ${LAB_IP[$h]}"; done | xargs)" yaml_nodes
  fi
  check_eq "$n nodes: Pulumi.lab.yaml pins the host keys of ${LAB_HOSTS[*]}" "${LAB_HOSTS[*]}" yaml_host_keys
}

lab_set_nodes "$n0"
check_nodes

# A bad count is refused before anything changes.
for bad in 0 10 abc; do
  # shellcheck disable=SC2016 # expanded by that sh
  check "KCP_LAB_NODES=$bad: lab:up refuses it, naming KCP_LAB_NODES" sh -c \
    'if out=$(KCP_LAB_NODES="$1" bash "$2" 2>&1); then exit 1; fi
     echo "$out" | grep "ERROR: KCP_LAB_NODES=$1: expected a number of control nodes from 1 to 9"' _ "$bad" "$repo/lab/up.sh"
done
check_eq "the bad counts left the lab's node count alone" "$n0" lab_recorded_node_count

# Resize the running lab and back: one way grows it, the other shrinks it.
if ((n0 == 3)); then m=5; else m=3; fi
gw=$(cat "$LAB_RUN/gateway/qemu.pid")
c0=$(cat "$LAB_RUN/nodes/control0/nspawn.pid")
for to in "$m" "$n0"; do
  check "lab:up with KCP_LAB_NODES=$to resizes the running lab to $to nodes" \
    env KCP_LAB_NODES="$to" "${mirror[@]}" bash "$repo/lab/up.sh"
  lab_set_nodes "$to"
  check_nodes
  check_eq "$to nodes: the gateway kept running (same QEMU)" "$gw" cat "$LAB_RUN/gateway/qemu.pid"
  check_eq "$to nodes: control0 kept running (same nspawn)" "$c0" cat "$LAB_RUN/nodes/control0/nspawn.pid"
done

test_done
