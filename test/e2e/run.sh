#!/usr/bin/env bash
# npm run e2e: the real program, with the real engine, against the lab (npm run lab:up first). It installs
# a control plane from an empty stack and checks it with etcdctl, curl, kubectl and ipvsadm, then proves
# idempotence, hand edits shown and repaired (test/e2e/drift.sh), targeted restarts, reboot persistence, a fast
# failure on an unreachable host, nodes that join, leave and are replaced (test/e2e/membership.sh), a destroy
# whose snapshot a new stack restores (test/e2e/restore.sh), and that the last destroy leaves every host as it
# was. Prints "N passed, N failed"; exits non-zero on any failure.
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
# must_fail NAME WHY ARGS...: pulumi ARGS, its output in $work/NAME.log, must fail (WHY: because of what); true when
# it did, the seconds it took in $FAILED_IN; a run that passes fails the test.
must_fail() {
  local _t_log=$work/$1.log _t_why=$2 _t_start=$SECONDS
  shift 2
  if run_pulumi "$@" >"$_t_log" 2>&1; then
    fail "pulumi $1 should fail: $_t_why" "$(tail -n 20 "$_t_log")"
    return 1
  fi
  FAILED_IN=$((SECONDS - _t_start))
}
# changed_nothing LOG: no step of that pulumi run created, updated or deleted anything.
changed_nothing() { ! grep -qE "(created|updated|deleted) \(" "$1"; }
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
    if command -v ipvsadm >/dev/null; then sudo ipvsadm -Ln; sysctl net.ipv4.vs.expire_nodest_conn; fi'
}
# restarted_as_expected HOST "UNIT...": between the two start_times snapshots every UNIT started anew, and
# no other unit did but on its own: a leader controller manager or scheduler whose local API server restarts
# loses its lease and exits, and systemd restarts it (Restart=on-failure, NRestarts + 1): that is Kubernetes'
# leader election, not the program (and a unit the program restarts may have done that too).
restarted_as_expected() {
  join "$work/starts-before.$1" "$work/starts-after.$1" | awk -v want=" $2 " '
    { expected = index(want, " " $1 " ") > 0 }
    expected && $2 == $4 { print "not restarted: " $1; bad = 1 }
    !expected && $2 != $4 && $3 == $5 { print "restarted, not by systemd on its own: " $1; bad = 1 }
    END { exit bad }'
}
# self_restarted HOST: the units systemd restarted on their own in that time.
self_restarted() {
  join "$work/starts-before.$1" "$work/starts-after.$1" | awk '$3 != $5 {print $1}' | tr '\n' ' '
}
services_active() {
  on "$1" systemctl is-active --quiet etcd kube-apiserver kube-controller-manager kube-scheduler kubernetes-vip
}

# shellcheck source=test/e2e/traffic.sh
source test/e2e/traffic.sh
# shellcheck source=test/e2e/restore.sh
source test/e2e/restore.sh
# shellcheck source=test/e2e/drift.sh
source test/e2e/drift.sh
# shellcheck source=test/e2e/membership.sh
source test/e2e/membership.sh

kubectl_src=$(lab_kubectl)
install -m 0755 "$kubectl_src" "$work/bin/kubectl"

test_log "snapshot of every host before up"
for h in "${LAB_HOSTS[@]}"; do snapshot "$h" >"$work/before.$h"; done

# A fresh stack in a fresh backend: a passphrase salt left in the generated stack file belongs to another.
sed -i '/^encryptionsalt:/d' Pulumi.lab.yaml
run_pulumi stack init --secrets-provider passphrase >/dev/null
# The cluster starts on three nodes; a bigger lab's others join later (test/e2e/membership.sh).
LAB_NODES=(control0 control1 control2)
membership_set "${LAB_NODES[@]}"
# Snapshots of this run stay in its scratch dir.
run_pulumi config set backupDir "$work/backups"

# 0. preflight: a port of the control plane held by another program (sshd, in a unit of its own, on etcd's peer
# port) refuses the first up before anything changes, naming the node, the port and the holder.
squat() { on control1 sudo systemd-run --quiet --unit=kthw-e2e-squatter /usr/sbin/sshd -D -p 2380 -o PidFile=none; }
squatting() { on control1 "sudo ss -Hltn 'sport = :2380' | grep -q ."; }
squat
check "another program listens on control1:2380" wait_for "sshd of kthw-e2e-squatter.service on control1:2380" 30 squatting
if must_fail up-port-held "control1's port 2380 is held by another program" up --yes --skip-preview; then
  check "pulumi up with control1's port 2380 held fails within 60s (${FAILED_IN}s)" test "$FAILED_IN" -lt 60
  check "the refusal names control1, the port, what it is for and its holder (process, pid, unit)" \
    grep -qE "control1: port 2380 \(etcd's peer port\) is in use by sshd \(pid [0-9]+, kthw-e2e-squatter.service\), not etcd.service" \
    "$work/up-port-held.log"
  check "nothing was changed: no step ran before the refusal" changed_nothing "$work/up-port-held.log"
  check_not "no etcd on control0, whose ports were free" on control0 test -e /usr/local/bin/etcd
fi
on control1 sudo systemctl stop kthw-e2e-squatter

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
# Its HTTP endpoints on a port of their own (etcdClientHttpPort), the client port gRPC alone: stopped gracefully.
etcd_https() { on control0 sudo curl -sS --max-time 5 --cacert /etc/etcd/ca.pem --cert /etc/etcd/kubernetes.pem \
  --key /etc/etcd/kubernetes-key.pem "https://127.0.0.1:$1/health"; }
check "etcd answers /health on its HTTP port 2382" grep -q '"health":"true"' <(etcd_https 2382)
check_not "etcd's client port 2379 serves gRPC alone (no /health)" etcd_https 2379

# 3. the API through the VIP.
check "curl https://kubernetes:6443/healthz through the VIP says ok" test "$(vip_healthz)" = ok
namespaces=$(kubectl_lab get namespaces -o name | sort | tr '\n' ' ')
check "kubectl get namespaces: default kube-node-lease kube-public kube-system ($namespaces)" \
  test "$namespaces" = "namespace/default namespace/kube-node-lease namespace/kube-public namespace/kube-system "
leases=$(kubectl_lab -n kube-system get leases -o name | tr '\n' ' ')
check "controller manager and scheduler hold their leases ($leases)" \
  grep -q 'lease.coordination.k8s.io/kube-controller-manager .*lease.coordination.k8s.io/kube-scheduler' <<<"$leases"

# 4. IPVS: one real server per node, weight 1. An API server stopped by hand (not drained by the program) leaves
# the load balancer through ldirectord's checks of /readyz within its shutdown delay: no request through the VIP
# fails while it stops, is away and comes back (test/e2e/traffic.sh's loop, started before the stop).
check "ipvsadm -Ln: one real server per control node, weight 1" \
  wait_for "all real servers at weight 1" 60 all_at_weight_one
# A client port used again while IPVS still lists its old connection to a drained API server gets a server at
# weight 1 (README: Day 2), now and after a reboot (ip_vs loaded at boot, before systemd-sysctl).
check_eq "gateway: net.ipv4.vs.expire_nodest_conn = 1" "1" on gateway cat /proc/sys/net/ipv4/vs/expire_nodest_conn
check_eq "gateway: ip_vs loaded at boot (/etc/modules-load.d/kubernetes-ipvs.conf)" "ip_vs" \
  on gateway cat /etc/modules-load.d/kubernetes-ipvs.conf
traffic_start stopped-by-hand
sleep 2
on control0 sudo systemctl stop kube-apiserver
check "a stopped API server drops to weight 0 within 10s" wait_for "control0 at weight 0" 10 weight_is "${LAB_IP[control0]}" 0
sleep 2
on control0 sudo systemctl start kube-apiserver
check "a restarted API server returns to weight 1" wait_for "control0 back at weight 1" 60 weight_is "${LAB_IP[control0]}" 1
sleep 2
traffic_stop stopped-by-hand
check "an API server stopped by hand and started again: $TRAFFIC_FAILED of $TRAFFIC_SENT API requests through the VIP failed" \
  test "$TRAFFIC_FAILED" -eq 0 -a "$TRAFFIC_SENT" -gt 0
[[ ! -s $work/traffic-stopped-by-hand.errors ]] || head -n 5 "$work/traffic-stopped-by-hand.errors" >&2

# 5. idempotence; and no secret in the engine's events (the SDK's debug lines print every output, the SSH key of
# each remote step among them: components/sdkLogs.ts drops them).
if run_pulumi up --yes --skip-preview --expect-no-changes --json >"$work/up2.json" 2>"$work/up2.err"; then
  pass "a second pulumi up changes nothing"
else
  fail "a second pulumi up changes nothing" "$(tail -n 20 "$work/up2.err" "$work/up2.json")"
fi
check "its events (pulumi up --json) hold no private key and nothing of the SSH key" holds_no_key "$LAB_KEY" "$work/up2.json"

# 5b. drift: hand edits on the hosts show in a preview as updates of the steps concerned, and up repairs them.
drift_test

# 6. changes roll out one node at a time, under a bounded loop of real API requests through the VIP
# (test/e2e/traffic.sh): no request fails, at most one etcd member and one real server are away at once.
# rolled_up NAME WHAT: pulumi up of the config change just made, under traffic; asserts and records it.
# Not one request may fail, etcd's restarts and leader changes included: a member's client port serves gRPC alone
# (etcdClientHttpPort), which etcd stops gracefully, and kube-apiserver's etcd client retries a read that a
# member answers Unavailable ("leader changed") elsewhere (etcdClientRetries). The member restarts and leader
# changes (raft terms) of each change are reported beside it.
# raft_term: control0's raft term, empty when its etcd does not answer (a failed change).
raft_term() { { etcdctl_on control0 endpoint status 2>/dev/null || true; } | awk -F', ' '{print $7}'; }
rolled_up() {
  local name=$1 what=$2 t took term_before term_after elections etcd_restarts
  for n in "${LAB_NODES[@]}"; do start_times "$n" >"$work/starts-before.$n"; done
  term_before=$(raft_term)
  traffic_start "$name"
  # The up's own time: the samples before it and the loop's start are not part of it.
  t=$SECONDS
  if run_pulumi up --yes --skip-preview >"$work/up-$name.log" 2>&1; then took=$((SECONDS - t)); pass "pulumi up: $what (${took}s)"; else
    took=$((SECONDS - t))
    fail "pulumi up: $what"
    tail -n 40 "$work/up-$name.log" >&2
  fi
  traffic_stop "$name"
  for n in "${LAB_NODES[@]}"; do start_times "$n" >"$work/starts-after.$n"; done
  term_after=$(raft_term)
  elections=$((${term_after:-0} - ${term_before:-0}))
  ((elections >= 0)) || elections=0
  etcd_restarts=$(for n in "${LAB_NODES[@]}"; do join "$work/starts-before.$n" "$work/starts-after.$n"; done |
    awk '$1 == "etcd" && $2 != $4' | wc -l)
  check "$what: $TRAFFIC_FAILED of $TRAFFIC_SENT API requests through the VIP failed ($etcd_restarts etcd member restarts, $elections leader changes)" \
    test "$TRAFFIC_FAILED" -eq 0 -a "$TRAFFIC_SENT" -gt 0
  if [[ -s $work/traffic-$name.errors ]]; then
    head -n 10 "$work/traffic-$name.errors" >&2
    # What the API servers and etcd members logged as errors meanwhile, to tell the cause apart.
    for n in "${LAB_NODES[@]}"; do
      on "$n" "sudo journalctl -o short-precise --no-pager --since '-$((SECONDS - t + 5)) s' -u kube-apiserver -u etcd \
        | grep -E ' E[0-9]{4} |\"level\":\"(warn|error)\"' | tail -n 8" >&2 || true
    done
  fi
  check "$what: at most one etcd member down at any sampled moment (most: $TRAFFIC_ETCD_DOWN)" test "$TRAFFIC_ETCD_DOWN" -le 1
  check "$what: at most one real server out of the load balancer at any sampled moment (most: $TRAFFIC_LB_DOWN)" \
    test "$TRAFFIC_LB_DOWN" -le 1
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$what" "$took" "$TRAFFIC_SENT" "$TRAFFIC_FAILED" "$etcd_restarts" "$elections" \
    >>"$work/rolling.tsv"
}
# only_restarted UNIT: on every node, exactly UNIT was restarted by the last rolled_up (a leader controller
# manager or scheduler whose local API server restarts may be restarted by systemd: told apart by NRestarts).
only_restarted() {
  for n in "${LAB_NODES[@]}"; do
    check "$n: $1 restarted, nothing else but on its own (restarted on their own: $(self_restarted "$n"))" \
      restarted_as_expected "$n" "$1"
  done
}
# finished_before LOG A B: in a pulumi up's log, the last step matching A was done before the first step
# matching B started.
finished_before() {
  local last_a first_b
  last_a=$(grep -nE "$2 +updated" "$1" | tail -n 1 | cut -d: -f1)
  first_b=$(grep -nE "$3 +updat" "$1" | head -n 1 | cut -d: -f1)
  [[ -n $last_a && -n $first_b ]] && ((last_a < first_b))
}
# in_order LOG PATTERN...: in a pulumi up's log, the first line matching each pattern comes after the first
# line matching the one before it.
in_order() {
  local log=$1 line last=0 pattern
  shift
  for pattern in "$@"; do
    line=$(grep -nE "$pattern" "$log" | head -n 1 | cut -d: -f1)
    [[ -n $line ]] && ((line > last)) || return 1
    last=$line
  done
}
# version_on HOST BINARY: the version a binary on a host reports.
version_on() { on "$1" "/usr/local/bin/$2 --version" | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n 1; }
# runs_with HOST UNIT ARG: the unit's running main process was started with ARG (so a changed unit file was
# loaded and the daemon restarted, not only the file written).
runs_with() { on "$1" "tr '\\0' '\\n' < /proc/\$(systemctl show -p MainPID --value $2)/cmdline | grep -qxF -- $3"; }
# mirror_sha VERSION-PATH: the sha256 the mirror holds for an artifact.
mirror_sha() { cat "$LAB_MIRROR_DIR/$1.sha256"; }

run_pulumi config set --path 'etcdExtraArgs.snapshot-count' 20000
rolled_up etcd-flag "an etcd flag"
only_restarted etcd
for n in "${LAB_NODES[@]}"; do
  check "$n: etcd runs with --snapshot-count=20000" runs_with "$n" etcd --snapshot-count=20000
done

# A flag the API server does not know is refused before anything changes, in a preview as at up, naming each
# node, the daemon, the keys and what kube-apiserver said of it.
run_pulumi config set --path 'apiServerExtraArgs.evnt-ttl' 2h
for cmd in preview up; do
  args=("$cmd")
  [[ $cmd == preview ]] || args+=(--yes --skip-preview)
  if must_fail "$cmd-unknown-flag" "kube-apiserver does not know --evnt-ttl" "${args[@]}"; then
    check "pulumi $cmd with a flag kube-apiserver does not know is refused in ${FAILED_IN}s, naming control0 and the error" \
      grep -qE "control0: kube-apiserver [0-9.]+ refuses the command line .*apiServerExtraArgs.*: Error: unknown flag: --evnt-ttl" \
      "$work/$cmd-unknown-flag.log"
    check "pulumi $cmd: nothing was changed" changed_nothing "$work/$cmd-unknown-flag.log"
  fi
done
run_pulumi config rm --path 'apiServerExtraArgs.evnt-ttl'

run_pulumi config set --path 'apiServerExtraArgs.event-ttl' 2h
rolled_up apiserver-flag "an API server flag"
only_restarted kube-apiserver
drain_order=()
for n in "${LAB_NODES[@]}"; do
  drain_order+=("kube-apiserver-$n-out-of-load-balancer +updated" "kube-apiserver-$n-service +updated" "kube-apiserver-$n-in-load-balancer +updated")
done
check "each API server left the load balancer before its restart and was back in before the next one left (${LAB_NODES[*]})" \
  in_order "$work/up-apiserver-flag.log" "${drain_order[@]}"
check "after the roll every real server is back at weight 1" all_at_weight_one
for n in "${LAB_NODES[@]}"; do
  check "$n: kube-apiserver runs with --event-ttl=2h" runs_with "$n" kube-apiserver --event-ttl=2h
done

# A flag whose value parses but makes the API server exit at start (a file that is not there): the first node's
# restart gives up once systemd has restarted it twice, long before the health wait's end, with the journal's
# reason; the other real servers serve; taking the flag out again brings the node back (its unit, now drift).
run_pulumi config set --path 'apiServerExtraArgs.audit-policy-file' /etc/kubernetes/kthw-e2e-missing.yaml
if must_fail up-crash-loop "kube-apiserver cannot start without its audit policy" up --yes --skip-preview; then
  check "an API server that keeps exiting fails the up in ${FAILED_IN}s, well before the health wait's end" test "$FAILED_IN" -lt 60
  check "the error names control0's kube-apiserver, which keeps exiting" \
    grep -qE "kube-apiserver-control0-service .*kube-apiserver keeps exiting: systemd restarted it 2 times" "$work/up-crash-loop.log"
  check "and the journal's reason (the missing file)" grep -qF "open /etc/kubernetes/kthw-e2e-missing.yaml: no such file" "$work/up-crash-loop.log"
  check_not "only control0 was restarted" grep -qE "kube-apiserver-control[12]-service +updat" "$work/up-crash-loop.log"
  check "the other real servers still serve at weight 1" \
    test "$(ipvs_weights | awk -v c0="${LAB_IP[control0]}" '$1 != c0 && $2 == 1' | wc -l)" -eq $((${#LAB_NODES[@]} - 1))
fi
run_pulumi config rm --path 'apiServerExtraArgs.audit-policy-file'
check "with the flag taken out, up brings control0 back" run_pulumi up --yes --skip-preview
check "every real server is back at weight 1" all_at_weight_one
check "and then changes nothing" run_pulumi preview --expect-no-changes

run_pulumi config set --path 'controllerManagerExtraArgs.terminated-pod-gc-threshold' 500
rolled_up controller-manager-flag "a controller manager flag"
only_restarted kube-controller-manager
for n in "${LAB_NODES[@]}"; do
  check "$n: kube-controller-manager runs with --terminated-pod-gc-threshold=500" \
    runs_with "$n" kube-controller-manager --terminated-pod-gc-threshold=500
done

run_pulumi config set --path 'extraSans[0]' api.kcp.test
rolled_up certificate "a new SAN on the serving certificate"
only_restarted "etcd kube-apiserver"
# served_cert ARGS...: openssl x509 -noout ARGS on the certificate the API serves through the VIP.
served_cert() {
  lab/exec.sh openssl s_client -connect "$LAB_VIP:6443" -servername kubernetes </dev/null 2>/dev/null | openssl x509 -noout "$@"
}
served_sans() { served_cert -ext subjectAltName; }
check "the API serves the new certificate through the VIP (DNS:api.kcp.test)" grep -q 'DNS:api.kcp.test' <(served_sans)
for n in "${LAB_NODES[@]}"; do
  check "$n: etcd's certificate has the new SAN" \
    bash -c "lab/ssh.sh $n sudo openssl x509 -in /etc/etcd/kubernetes.pem -noout -ext subjectAltName | grep -q api.kcp.test"
done

# Renewal: the serving certificate as if it were 10 days from its end (its validityEndTime in state, inside
# the last 30 days): the tls provider renews it, with the same key and CA, and it rolls like the new SAN.
served_cert -serial >"$work/serial-before-renewal"
run_pulumi stack export | aged_certificate pki-kubernetes 10 >"$work/aged.json"
run_pulumi stack import --file "$work/aged.json" >/dev/null
rolled_up renewal "the serving certificate renewed in its last 30 days"
only_restarted "etcd kube-apiserver"
check "the pki-kubernetes certificate was replaced for its renewal" grep -qE "pki-kubernetes +replaced" "$work/up-renewal.log"
check_not "the API serves another certificate through the VIP" diff -q "$work/serial-before-renewal" <(served_cert -serial)
check "the served certificate is good for a year again" served_cert -checkend $((364 * 86400))
check "the served certificate still has the SAN api.kcp.test" grep -q 'DNS:api.kcp.test' <(served_sans)

etcd_tarball="etcd-io/etcd/releases/download/v$LAB_UPGRADE_ETCD_VERSION/etcd-v$LAB_UPGRADE_ETCD_VERSION-linux-amd64.tar.gz"
run_pulumi config set etcdVersion "$LAB_UPGRADE_ETCD_VERSION"
run_pulumi config set --path sha256.etcd "$(mirror_sha "$etcd_tarball")"
rolled_up etcd-upgrade "etcd upgrade to $LAB_UPGRADE_ETCD_VERSION"
only_restarted etcd
for n in "${LAB_NODES[@]}"; do
  check "$n: etcd reports $LAB_UPGRADE_ETCD_VERSION" test "$(version_on "$n" etcd)" = "$LAB_UPGRADE_ETCD_VERSION"
done
check "etcdctl endpoint status: every member serves $LAB_UPGRADE_ETCD_VERSION" \
  test "$(etcdctl_on control0 endpoint status --cluster -w json | jq -r '.[].Status.version' | sort -u)" = "$LAB_UPGRADE_ETCD_VERSION"

# A failed download or checksum stops a change before the node it is for leaves the load balancer: the
# Kubernetes upgrade with a wrong sha256 for kube-apiserver fails on control0, naming the URL, with every real
# server still at weight 1 and nothing restarted; the right sum then rolls the upgrade.
kube_binary() { echo "kubernetes-release/release/v$LAB_UPGRADE_KUBE_VERSION/bin/linux/amd64/$1"; }
run_pulumi config set kubernetesVersion "$LAB_UPGRADE_KUBE_VERSION"
for b in kube-controller-manager kube-scheduler; do
  run_pulumi config set --path "sha256.$b" "$(mirror_sha "$(kube_binary "$b")")"
done
run_pulumi config set --path sha256.kube-apiserver "$(printf '0%.0s' {1..64})"
for n in "${LAB_NODES[@]}"; do start_times "$n" >"$work/starts-before.$n"; done
kube_before=$(version_on control0 kube-apiserver)
if must_fail up-bad-checksum "the sha256 for kube-apiserver is wrong" up --yes --skip-preview; then
  check "a wrong sha256 for kube-apiserver fails the upgrade, naming the URL and control0" \
    grep -qF "checksum mismatch for http://$LAB_RUNNER_IP:$LAB_MIRROR_PORT/$(kube_binary kube-apiserver) on control0" "$work/up-bad-checksum.log"
  check_not "no API server left the load balancer for it" grep -qE "out-of-load-balancer +updat" "$work/up-bad-checksum.log"
  check "every real server is still at weight 1" all_at_weight_one
  for n in "${LAB_NODES[@]}"; do
    start_times "$n" >"$work/starts-after.$n"
    check "$n: nothing restarted but on its own (restarted on their own: $(self_restarted "$n"))" restarted_as_expected "$n" ""
  done
  check "control0's kube-apiserver still reports v$kube_before" test "$(version_on control0 kube-apiserver)" = "$kube_before"
fi
run_pulumi config set --path sha256.kube-apiserver "$(mirror_sha "$(kube_binary kube-apiserver)")"
rolled_up kubernetes-upgrade "Kubernetes upgrade to $LAB_UPGRADE_KUBE_VERSION"
for n in "${LAB_NODES[@]}"; do
  for b in kube-apiserver kube-controller-manager kube-scheduler; do
    check "$n: $b reports v$LAB_UPGRADE_KUBE_VERSION" test "$(version_on "$n" "$b")" = "$LAB_UPGRADE_KUBE_VERSION"
  done
done
check "the API through the VIP reports v$LAB_UPGRADE_KUBE_VERSION" \
  test "$(kubectl_lab version -o json | jq -r .serverVersion.gitVersion)" = "v$LAB_UPGRADE_KUBE_VERSION"
only_restarted "kube-apiserver kube-controller-manager kube-scheduler"
check "the upgrade ran in the skew policy's order: every API server before the first controller manager or scheduler" \
  finished_before "$work/up-kubernetes-upgrade.log" 'kube-apiserver-control[0-9]-service' 'kube-(controller-manager|scheduler)-control[0-9]-service' 
check "the VIP answers after the rolling changes" test "$(vip_healthz)" = ok

# The hardened profile (CIS): switching a running cluster to it and back is a change like any other, and
# kube-bench (test/cis/run.sh) finds no FAIL on a hardened node but the checks listed as not applicable.
run_pulumi config set profile hardened
rolled_up hardened "a switch to the hardened profile"
for n in "${LAB_NODES[@]}"; do
  if cis=$(bash test/cis/run.sh lab/ssh.sh "$n" 2>&1); then
    pass "$n: kube-bench, CIS 1.10 master/etcd/controlplane, hardened: no FAIL but the not-applicable ($(grep -E "^$n (PASS|FAIL) " <<<"$cis" | tr '\n' ' '))"
  else
    fail "$n: kube-bench, CIS 1.10 master/etcd/controlplane, hardened: FAILs beyond the not-applicable" "$cis"
  fi
done
check "hardened: etcd runs as its own user, its data dir etcd:etcd 0700" \
  test "$(on control0 'ps -o user= -C etcd; sudo stat -c "%U:%G %a" /var/lib/etcd' | tr '\n' ' ')" = "etcd etcd:etcd 700 "
run_pulumi config set profile seed
rolled_up seed-again "a switch back to the seed profile"
check "seed again: etcd runs as root" test "$(on control0 ps -o user= -C etcd)" = root
test_log "rolling changes (what, seconds, requests sent, failed, etcd member restarts, etcd leader changes):"
cat "$work/rolling.tsv" >&2

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

# 8. an unreachable host fails the run fast, naming it, before anything changes (the host probe comes before
# any resource); a preview fails the same way; after it is back, a re-run converges.
lab/exec.sh ip route add unreachable "${LAB_IP[control2]}/32"
run_pulumi config set --path 'schedulerExtraArgs.v' 3
if must_fail up-unreachable "control2 is unreachable" up --yes --skip-preview; then
  check "pulumi up with control2 unreachable fails within 60s (${FAILED_IN}s)" test "$FAILED_IN" -lt 60
  check "the error names the unreachable host and its address, control2 (${LAB_IP[control2]})" \
    grep -qF "control2 (${LAB_IP[control2]}): " "$work/up-unreachable.log"
  check "nothing was changed: no step ran before the probe failed" changed_nothing "$work/up-unreachable.log"
fi
if must_fail preview-unreachable "control2 is unreachable" preview; then
  check "a preview with control2 unreachable fails too, naming control2 (${LAB_IP[control2]})" \
    grep -qF "control2 (${LAB_IP[control2]}): " "$work/preview-unreachable.log"
fi
lab/exec.sh ip route del unreachable "${LAB_IP[control2]}/32"
check "a re-run after the host is back converges" run_pulumi up --yes --skip-preview
check "and then changes nothing" run_pulumi preview --expect-no-changes
# 9. nodes join, leave, and a dead one is replaced, under traffic (test/e2e/membership.sh). The cluster keeps
# the versions and flags of the changes above.
membership_test

# 10. lose no data: destroy takes a snapshot, and a new stack restores it (test/e2e/restore.sh); that
# restored stack's destroy is the run's last.
restore_test

# 11. destroy leaves each host as it was before the first up: every host the last destroy covered, the nodes
# that left in the membership test, and the gateway. A node the membership test powered off and forgot
# (scripts/forget-node.sh) is down and keeps what it had: it is not compared.
for h in "${LAB_HOSTS[@]}"; do
  if [[ " ${MEMBERSHIP_FORGOTTEN[*]} " == *" $h "* ]]; then continue; fi
  snapshot "$h" >"$work/after.$h"
  if diff -u "$work/before.$h" "$work/after.$h" >"$work/diff.$h"; then pass "$h is as it was before up"; else
    fail "$h differs from before up"
    cat "$work/diff.$h" >&2
  fi
done

rm -rf "$work"
test_done
