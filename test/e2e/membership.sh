# shellcheck shell=bash
# Sourced by test/e2e/run.sh: control nodes added, removed and replaced by editing control-plane:nodes, each
# `pulumi up` under the bounded request loop through the VIP (run.sh's rolled_up):
#   - 3 to 5: control3 and control4 join (learners, promoted), every kept member takes the new certificate in turn;
#   - 5 to 3: control3 and control4 are drained, leave etcd, and everything on them is undone;
#   - a dead node replaced: control2 powered off, forgotten by scripts/forget-node.sh, then one edit drops it and
#     adds control3; the other members remove its etcd member.
# After each: etcd's started voting members are the nodes, healthy; IPVS's real servers are the nodes at weight 1;
# kubectl works; a kept member's unit did not change; a node that left is as it was before the e2e's first up
# (run.sh's snapshot, compared as the destroy check compares it).
# Uses run.sh's run_pulumi, rolled_up, etcdctl_on, on, kubectl_lab, snapshot, ipvs_weights, $work, $STACK and
# lab/lib.sh's LAB_NODES (the cluster's nodes: set here as the cluster changes), LAB_IP, LAB_RUN.
# shellcheck disable=SC2154 # work and STACK are run.sh's
# The nodes powered off and forgotten (never destroyed): run.sh's last check does not compare them.
MEMBERSHIP_FORGOTTEN=()

# membership_set NODE...: the stack's control-plane:nodes, in this order.
membership_set() {
  local n json=""
  for n in "$@"; do json+="${json:+,}{\"name\":\"$n\",\"address\":\"${LAB_IP[$n]}\"}"; done
  run_pulumi config set nodes "[$json]"
}
membership_voters() {
  etcdctl_on "$1" member list | awk -F', ' '$2 == "started" && $6 == "false" {print $3}' | sort | tr '\n' ' '
}
membership_reals() {
  ipvs_weights | awk '$2 == 1 {print $1}' | sort | tr '\n' ' '
}
membership_unit_sha() { on "$1" sha256sum /etc/systemd/system/etcd.service | cut -d' ' -f1; }

# membership_agrees NODE...: etcd, IPVS and the API agree that the control plane is NODE...
membership_agrees() {
  local want_names want_reals n
  want_names=$(printf '%s\n' "$@" | sort | tr '\n' ' ')
  want_reals=$(for n in "$@"; do echo "${LAB_IP[$n]}"; done | sort | tr '\n' ' ')
  check_eq "membership: etcd's started voting members are $want_names" "$want_names" membership_voters "$1"
  check "membership: etcdctl endpoint health --cluster: healthy" etcdctl_on "$1" endpoint health --cluster
  check "membership: IPVS's real servers are $want_names at weight 1" \
    wait_for "the real servers of $want_names at weight 1" 60 test_membership_reals "$want_reals"
  check "membership: kubectl get namespaces through the VIP" kubectl_lab get namespaces
}
test_membership_reals() { [[ $(membership_reals) == "$1" ]]; }

# membership_left NODE: NODE is as it was before the first up.
membership_left() {
  snapshot "$1" >"$work/after-membership.$1"
  if diff -u "$work/before.$1" "$work/after-membership.$1" >"$work/diff-membership.$1"; then
    pass "membership: $1 left: it is as it was before up"
  else
    fail "membership: $1 left: it differs from before up" "$(cat "$work/diff-membership.$1")"
  fi
}

membership_test() {
  local spare=(control3 control4) n
  if [[ -z ${LAB_IP[control4]:-} ]]; then
    fail "membership: the lab has no control3 and control4 (KCP_LAB_NODES=5 npm run lab:up)"
    return 0
  fi
  test_log "membership: 3 to 5, 5 to 3, a dead node replaced"
  for n in "${LAB_NODES[@]}"; do membership_unit_sha "$n" >"$work/unit-sha.$n"; done

  # 3 to 5. The request loop and the sampler watch the kept nodes: the new ones are not in the cluster yet.
  membership_set control0 control1 control2 control3 control4
  rolled_up grow "control3 and control4 join (3 to 5)"
  LAB_NODES=(control0 control1 control2 control3 control4)
  membership_agrees "${LAB_NODES[@]}"
  for n in control0 control1 control2; do
    check_eq "membership: $n's etcd unit did not change" "$(cat "$work/unit-sha.$n")" membership_unit_sha "$n"
  done
  check "membership: control4's etcd joined with --initial-cluster-state=existing" \
    on control4 grep -q -- --initial-cluster-state=existing /etc/systemd/system/etcd.service
  check "membership: an up after it changes nothing" run_pulumi preview --expect-no-changes

  # 5 to 3: the two leave; the request loop watches the nodes that stay.
  membership_set control0 control1 control2
  LAB_NODES=(control0 control1 control2)
  rolled_up shrink "control3 and control4 leave (5 to 3)"
  membership_agrees "${LAB_NODES[@]}"
  for n in "${spare[@]}"; do membership_left "$n"; done
  check "membership: an up after it changes nothing" run_pulumi preview --expect-no-changes
  check "membership: the members left once the API servers had rolled, before anything on control3 and control4 was deleted" \
    in_order "$work/up-shrink.log" 'kube-apiserver-control2-in-load-balancer +updated' \
    'etcd-departures-after-roll-member-remove +(created|updated)' '(etcd|kube-[a-z-]+)-control[34]-[a-z-]+ +delet'

  # A dead node: control2 powered off, its real server at weight 0 before the loop starts.
  on control2 sudo systemctl poweroff || true
  wait_for "control2's container to stop" 60 bash -c "! kill -0 \$(cat '$LAB_RUN/nodes/control2/nspawn.pid') 2>/dev/null" || true
  check "membership: control2 powered off is out of the load balancer" wait_for "control2 at weight 0" 30 weight_is "${LAB_IP[control2]}" 0
  MEMBERSHIP_FORGOTTEN+=(control2)
  if PATH=$PATH bash scripts/forget-node.sh control2 --stack "$STACK" --non-interactive >"$work/forget.log" 2>&1; then
    pass "membership: scripts/forget-node.sh control2 ($(grep -c '^  ' "$work/forget.log") resources forgotten)"
  else
    fail "membership: scripts/forget-node.sh control2" "$(tail -n 20 "$work/forget.log")"
  fi
  membership_set control0 control1 control3
  LAB_NODES=(control0 control1)
  rolled_up replace "the dead control2 replaced by control3"
  LAB_NODES=(control0 control1 control3)
  membership_agrees "${LAB_NODES[@]}"
  check "membership: an up after it changes nothing" run_pulumi preview --expect-no-changes
  check "membership: a change that would lose quorum (3 to 1) is refused before anything changes" \
    membership_refused control0
  membership_set "${LAB_NODES[@]}"
}

# membership_refused NODE: an up with only NODE fails naming control-plane:nodes, and changes nothing.
membership_refused() {
  membership_set "$1"
  ! run_pulumi up --yes --skip-preview >"$work/up-refused.log" 2>&1 &&
    grep -q 'control-plane:nodes: removes .* of the 3 etcd members at once' "$work/up-refused.log" &&
    changed_nothing "$work/up-refused.log"
}
