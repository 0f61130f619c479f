#!/usr/bin/env bash
# npm run e2e: the real program, with the real engine, against the lab (npm run lab:up first). It installs
# a control plane from an empty stack and checks it with etcdctl, curl, kubectl and ipvsadm, then proves
# idempotence, targeted restarts, reboot persistence, a fast failure on an unreachable host, and a destroy
# that leaves every host as it was. Prints "N passed, N failed"; exits non-zero on any failure.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
# shellcheck source=scripts/lab-engine.sh
source scripts/lab-engine.sh
[[ -f Pulumi.lab.yaml ]] || lab_die "no Pulumi.lab.yaml: npm run lab:up writes it"

STACK=lab
work=$(mktemp -d /tmp/kcp-e2e.XXXXXX)
# A fresh local backend: the run starts from an empty stack.
export PULUMI_BACKEND_URL="file://$work/state"
mkdir -p "$work/state" "$work/bin"
TEST_TAG=e2e
# shellcheck source=test/lib.sh
source test/lib.sh

run_pulumi() { lab/exec.sh pulumi --non-interactive --stack "$STACK" "$@"; }
on() { lab_ssh "$@"; }
# The kubectl the mirror built, run as the runner with the admin kubeconfig from the stack output.
kubectl_lab() { lab/exec.sh "$work/bin/kubectl" --kubeconfig "$work/admin.kubeconfig" "$@"; }
vip_healthz() { lab/exec.sh curl -fsS --max-time 5 --cacert "$work/ca.pem" https://kubernetes:6443/healthz; }
etcdctl_on() {
  local host=$1
  shift
  on "$host" sudo ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/etcd/ca.pem \
    --cert=/etc/etcd/kubernetes.pem --key=/etc/etcd/kubernetes-key.pem "$@"
}
# ipvs_weights: "address weight" per real server of the VIP, from ipvsadm on the gateway.
ipvs_weights() {
  on gateway sudo ipvsadm -Ln -t "$LAB_VIP:6443" | awk '$1 == "->" && $2 ~ /:6443$/ {sub(":6443", "", $2); print $2, $4}'
}
weight_of() { ipvs_weights | awk -v a="$1" '$1 == a {print $2}'; }
# weight_is ADDRESS WEIGHT / all_at_weight_one: conditions for wait_for, evaluated at every poll.
weight_is() { [[ $(weight_of "$1") == "$2" ]]; }
all_at_weight_one() { [[ $(ipvs_weights | awk '$2 == 1' | wc -l) -eq ${#LAB_NODES[@]} ]]; }
# start_times HOST: when each control plane service last started (monotonic) and how often systemd
# restarted it on its own (NRestarts), one "unit time restarts" a line.
start_times() {
  # shellcheck disable=SC2016 # expanded on the host
  on "$1" 'for u in etcd kube-apiserver kube-controller-manager kube-scheduler; do
    printf "%s %s %s\n" "$u" "$(systemctl show -p ActiveEnterTimestampMonotonic --value "$u")" \
      "$(systemctl show -p NRestarts --value "$u")"; done'
}
# snapshot HOST: what a host holds that the program could have changed: files under /etc, /usr/local and
# /var/lib (minus what the OS churns by itself), unit files, addresses, ARP sysctls, IPVS rules.
snapshot() {
  # shellcheck disable=SC2016 # expanded on the host
  on "$1" 'sudo find /etc /usr/local /var/lib -xdev \( -path /var/lib/systemd -o -path /var/lib/apt \
      -o -path /var/lib/dpkg -o -path /var/lib/sudo -o -path /var/lib/private -o -path /var/lib/dhcp \
      -o -path /etc/ssh/ssh_host_\* -o -path /var/lib/logrotate \) -prune -o -print | sort
    systemctl list-unit-files --no-legend --no-pager | sort
    ip -o addr show | awk "{print \$2, \$4}" | sort
    sysctl net.ipv4.conf.all.arp_ignore net.ipv4.conf.all.arp_announce
    if command -v ipvsadm >/dev/null; then sudo ipvsadm -Ln; fi'
}
# restarted HOST: the units restarted by a stop and start between the two start_times snapshots. A leader
# controller manager or scheduler whose local API server restarts loses its lease and exits; systemd then
# restarts it (Restart=on-failure, NRestarts + 1): that is Kubernetes' leader election, not the program.
restarted() {
  join "$work/starts-before.$1" "$work/starts-after.$1" | awk '$2 != $4 && $3 == $5 {print $1}'
}
# self_restarted HOST: the units systemd restarted on their own in that time.
self_restarted() {
  join "$work/starts-before.$1" "$work/starts-after.$1" | awk '$3 != $5 {print $1}' | tr '\n' ' '
}
services_active() {
  on "$1" systemctl is-active --quiet etcd kube-apiserver kube-controller-manager kube-scheduler kubernetes-vip
}

kubectl_src=$(lab_kubectl)
install -m 0755 "$kubectl_src" "$work/bin/kubectl"

test_log "snapshot of every host before up"
for h in "${LAB_HOSTS[@]}"; do snapshot "$h" >"$work/before.$h"; done

# A fresh stack in a fresh backend: a passphrase salt left in the generated stack file belongs to another.
sed -i '/^encryptionsalt:/d' Pulumi.lab.yaml
run_pulumi stack init --secrets-provider passphrase >/dev/null

# 1. up from an empty stack.
t=$SECONDS
if run_pulumi up --yes --skip-preview >"$work/up1.log" 2>&1; then
  pass "pulumi up from an empty stack ($((SECONDS - t))s)"
else
  fail "pulumi up from an empty stack"
  tail -n 60 "$work/up1.log" >&2
  test_done; exit
fi
run_pulumi stack output caCert >"$work/ca.pem"
run_pulumi stack output adminKubeconfig --show-secrets >"$work/admin.kubeconfig"
chmod 0600 "$work/admin.kubeconfig"

# 2. etcd.
members=$(etcdctl_on control0 member list)
check "etcdctl member list: every member started" \
  test "$(grep -c ', started, ' <<<"$members")" -eq "${#LAB_NODES[@]}"
check "etcdctl endpoint health --cluster: healthy" etcdctl_on control0 endpoint health --cluster

# 3. the API through the VIP.
check "curl https://kubernetes:6443/healthz through the VIP says ok" test "$(vip_healthz)" = ok
namespaces=$(kubectl_lab get namespaces -o name | sort | tr '\n' ' ')
check "kubectl get namespaces: default kube-node-lease kube-public kube-system ($namespaces)" \
  test "$namespaces" = "namespace/default namespace/kube-node-lease namespace/kube-public namespace/kube-system "
leases=$(kubectl_lab -n kube-system get leases -o name | tr '\n' ' ')
check "controller manager and scheduler hold their leases ($leases)" \
  grep -q 'lease.coordination.k8s.io/kube-controller-manager .*lease.coordination.k8s.io/kube-scheduler' <<<"$leases"

# 4. IPVS: one real server per node, weight 1; a stopped API server drops to 0, the VIP keeps answering.
check "ipvsadm -Ln: one real server per control node, weight 1" \
  wait_for "all real servers at weight 1" 60 all_at_weight_one
on control0 sudo systemctl stop kube-apiserver
check "a stopped API server drops to weight 0 within 10s" wait_for "control0 at weight 0" 10 weight_is "${LAB_IP[control0]}" 0
vip_failures=0
for _ in $(seq 1 20); do [[ $(vip_healthz 2>/dev/null) == ok ]] || vip_failures=$((vip_failures + 1)); done
check "20 requests through the VIP while control0's API server is down: $vip_failures failed" test "$vip_failures" -eq 0
on control0 sudo systemctl start kube-apiserver
check "a restarted API server returns to weight 1" wait_for "control0 back at weight 1" 60 weight_is "${LAB_IP[control0]}" 1

# 5. idempotence.
check "a second pulumi up changes nothing" run_pulumi up --yes --skip-preview --expect-no-changes

# 6. one apiserver flag changed: only the API servers restart.
for n in "${LAB_NODES[@]}"; do start_times "$n" >"$work/starts-before.$n"; done
run_pulumi config set --path 'apiServerExtraArgs.event-ttl' 2h
if run_pulumi up --yes --skip-preview >"$work/up-flag.log" 2>&1; then pass "pulumi up with a changed apiserver flag"; else
  fail "pulumi up with a changed apiserver flag"
  tail -n 40 "$work/up-flag.log" >&2
fi
for n in "${LAB_NODES[@]}"; do
  start_times "$n" >"$work/starts-after.$n"
  check "$n: kube-apiserver restarted with --event-ttl=2h" on "$n" grep -q -- --event-ttl=2h /etc/systemd/system/kube-apiserver.service
  check "$n: only kube-apiserver was restarted (restarted on their own after losing leadership: $(self_restarted "$n"))" \
    test "$(restarted "$n" | tr '\n' ' ')" = "kube-apiserver "
done
check "the VIP answers after the rolling restart" test "$(vip_healthz)" = ok

# 7. a control node restarts: the VIP on lo, the ARP sysctls and every service come back.
on control1 sudo systemctl reboot || true
wait_for "control1's container to stop" 60 bash -c "! kill -0 \$(cat '$LAB_RUN/nodes/control1/nspawn.pid')" || true
# lab:up starts the stopped container; it also rewrites the generated stack file, so keep this run's config.
cp Pulumi.lab.yaml "$work/Pulumi.lab.yaml"
bash lab/up.sh >"$work/lab-up-restart.log" 2>&1 || tail -n 20 "$work/lab-up-restart.log" >&2
cp "$work/Pulumi.lab.yaml" Pulumi.lab.yaml
check "control1 after a restart: every service active" wait_for "control1's services" 120 services_active control1
check "control1 after a restart: the VIP is on lo" on control1 "ip -o addr show dev lo | grep -q ' $LAB_VIP/32 '"
check "control1 after a restart: arp_ignore=1, arp_announce=2" \
  test "$(on control1 sysctl -n net.ipv4.conf.all.arp_ignore net.ipv4.conf.all.arp_announce | tr '\n' ' ')" = "1 2 "
check "control1 back at weight 1" wait_for "control1 back at weight 1" 90 weight_is "${LAB_IP[control1]}" 1

# 8. an unreachable host fails the step fast, naming it; after it is back, a re-run converges.
lab/exec.sh ip route add unreachable "${LAB_IP[control2]}/32"
run_pulumi config set --path 'schedulerExtraArgs.v' 3
t=$SECONDS
if run_pulumi up --yes --skip-preview >"$work/up-unreachable.log" 2>&1; then
  fail "pulumi up with control2 unreachable should fail"
else
  elapsed=$((SECONDS - t))
  check "pulumi up with control2 unreachable fails within 60s (${elapsed}s)" test "$elapsed" -lt 60
  check "the error is a failed SSH dial naming the unreachable host ${LAB_IP[control2]}:22" \
    grep -qE "dial tcp ${LAB_IP[control2]//./\\.}:22" "$work/up-unreachable.log"
  check "the other nodes' schedulers were updated meanwhile" \
    grep -qE "kube-scheduler-control0-service +updated" "$work/up-unreachable.log"
fi
lab/exec.sh ip route del unreachable "${LAB_IP[control2]}/32"
check "a re-run after the host is back converges" run_pulumi up --yes --skip-preview
check "and then changes nothing" run_pulumi preview --expect-no-changes
run_pulumi config rm --path 'schedulerExtraArgs.v'
run_pulumi config rm --path 'apiServerExtraArgs.event-ttl'

# 9. destroy leaves each host as it was.
if run_pulumi destroy --yes --skip-preview >"$work/destroy.log" 2>&1; then pass "pulumi destroy"; else
  fail "pulumi destroy"
  tail -n 40 "$work/destroy.log" >&2
fi
for h in "${LAB_HOSTS[@]}"; do
  snapshot "$h" >"$work/after.$h"
  if diff -u "$work/before.$h" "$work/after.$h" >"$work/diff.$h"; then pass "$h is as it was before up"; else
    fail "$h differs from before up"
    cat "$work/diff.$h" >&2
  fi
done

# 10. up after destroy works again.
check "pulumi up after destroy" run_pulumi up --yes --skip-preview
# destroy took the PKI too: this up made a new CA.
run_pulumi stack output caCert >"$work/ca.pem"
check "the VIP answers again" test "$(vip_healthz)" = ok
check "pulumi destroy again" run_pulumi destroy --yes --skip-preview

rm -rf "$work"
test_done
