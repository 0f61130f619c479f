# shellcheck shell=bash
# test/e2e/drift.sh: a hand edit shows, and up repairs it (README, "Drift"). Sourced by test/e2e/run.sh, which
# calls `drift_test` once, while the cluster of the stack $STACK is up, healthy and in sync. It proves, against
# the lab:
#   - five hand edits (control1's kube-apiserver unit --v=2 to --v=6, control1's ARP sysctl file deleted,
#     control2's kubernetes-key.pem made 0644, control0's kube-scheduler replaced by one with another sha256,
#     control2's kube-scheduler disabled and stopped) make `pulumi preview --refresh` propose exactly the five
#     steps concerned, as updates, each with a drift marker in its script;
#   - `pulumi up --refresh` repairs each fact, restarting only the two services whose own step drifted, with no
#     API request through the VIP failing meanwhile;
#   - then `pulumi preview --refresh --expect-no-changes` passes, and a plain preview too;
#   - the same edit again is repaired by a plain `pulumi up` (the program probes on every run), and the `up`
#     after it changes nothing.
# What it expects from run.sh (defined there before it is sourced or called): run_pulumi, on, start_times,
# restarted_as_expected, self_restarted, traffic_start/traffic_stop (test/e2e/traffic.sh), $work, LAB_NODES;
# test/lib.sh's check, check_eq, pass, fail, test_log.
# What it leaves: the hosts as the program installed them (every edit repaired); the stack config unchanged.
# shellcheck disable=SC2154 # work, LAB_NODES and the TRAFFIC_* results are run.sh's and traffic.sh's

DRIFT_UNIT=/etc/systemd/system/kube-apiserver.service
DRIFT_ARP=/etc/sysctl.d/50-vip-arp.conf
DRIFT_KEY=/var/lib/kubernetes/kubernetes-key.pem
DRIFT_BIN=/usr/local/bin/kube-scheduler
# The steps the edits concern, as `pulumi preview --json` names them: "op name", sorted, comma-separated.
# The five steps concerned, and the drain through the gateway around the repair's restart of control1's API server.
DRIFT_WANT="update api-load-balancer-control1-arp-sysctl, update kube-apiserver-control1-in-load-balancer, update kube-apiserver-control1-out-of-load-balancer, update kube-apiserver-control1-service, update kube-apiserver-control2-key, update kube-scheduler-control0-binary, update kube-scheduler-control2-service"

# drift_sha HOST FILE: the file's sha256 on the host.
drift_sha() { on "$1" sudo sha256sum "$2" | cut -d' ' -f1; }
# drift_unit HOST UNIT: "enabled active" when the unit is both.
drift_unit() { on "$1" "systemctl is-enabled $2; systemctl is-active $2" | tr '\n' ' ' | sed 's/ $//'; }
# drift_mode HOST FILE: "mode user:group".
drift_mode() { on "$1" "sudo stat -c '%a %U:%G' $2"; }
# drift_changes JSON: what a `pulumi preview --json` proposes besides reads and refreshes, "op name" sorted.
drift_changes() {
  jq -r '[.steps[] | select(.op != "same" and .op != "read" and .op != "refresh") | "\(.op) \(.urn | split("::") | last)"]
    | sort | join(", ")' "$1"
}
# drift_marked JSON: every proposed update's new create script but the drain's carries a drift marker.
drift_marked() {
  jq -e '[.steps[] | select(.op == "update" and (.urn | test("-(out-of|in)-load-balancer$") | not))
    | .newState.inputs.create | test("# drift repaired: [0-9a-f]{16}")] | length == 5 and all' "$1" >/dev/null
}
# drift_runs_with HOST FLAG: the running kube-apiserver has FLAG on its command line.
drift_runs_with() { on "$1" "pgrep -a -x kube-apiserver" | grep -q -- " $2\( \|$\)"; }

drift_test() {
  local sha t n
  test_log "drift: five hand edits on the hosts, then preview, up, preview"
  check "drift: before, the hosts are as the program installed them (a preview proposes nothing)" \
    run_pulumi preview --expect-no-changes
  sha=$(drift_sha control0 "$DRIFT_BIN")
  for n in "${LAB_NODES[@]}"; do start_times "$n" >"$work/starts-before.$n"; done

  # The hand edits, each as an operator would make it (as root, in place).
  check "drift: control1: --v=2 to --v=6 in $DRIFT_UNIT" on control1 sudo bash -s -- "$DRIFT_UNIT" <<'EOF'
set -euo pipefail
sed -i 's/--v=2\b/--v=6/' "$1"
grep -q -- '--v=6' "$1"
EOF
  check "drift: control1: $DRIFT_ARP deleted" on control1 sudo rm "$DRIFT_ARP"
  check "drift: control2: $DRIFT_KEY made 0644" on control2 sudo chmod 0644 "$DRIFT_KEY"
  # The same binary and one more byte: another sha256, and it still runs; a new inode (the running one stays).
  check "drift: control0: $DRIFT_BIN replaced by a binary with another sha256" on control0 sudo bash -s -- "$DRIFT_BIN" <<'EOF'
set -euo pipefail
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
cp "$1" "$tmp"
printf '\0' >>"$tmp"
install -m 0755 "$tmp" "$1.kthw-drift"
mv -f "$1.kthw-drift" "$1"
EOF
  check "drift: control2: kube-scheduler disabled and stopped" on control2 sudo systemctl disable --now --quiet kube-scheduler
  check "drift: control0: $DRIFT_BIN's sha256 changed" test "$(drift_sha control0 "$DRIFT_BIN")" != "$sha"

  # The preview shows them, as updates of exactly the steps concerned.
  t=$SECONDS
  if run_pulumi preview --refresh --json >"$work/drift-preview.json" 2>"$work/drift-preview.err"; then
    pass "drift: pulumi preview --refresh --json ($((SECONDS - t))s, one probe per host included)"
  else
    fail "drift: pulumi preview --refresh --json" "$(tail -n 20 "$work/drift-preview.err")"
  fi
  check_eq "drift: the preview proposes exactly the five steps concerned, as updates, and the drain around control1's API server restart" "$DRIFT_WANT" \
    drift_changes "$work/drift-preview.json"
  check "drift: each of the five with a drift marker in its script" drift_marked "$work/drift-preview.json"

  # The up repairs them, under traffic through the VIP.
  traffic_start drift
  t=$SECONDS
  if run_pulumi up --refresh --yes --skip-preview >"$work/up-drift.log" 2>&1; then
    pass "drift: pulumi up --refresh ($((SECONDS - t))s)"
  else
    fail "drift: pulumi up --refresh" "$(tail -n 40 "$work/up-drift.log")"
  fi
  traffic_stop drift
  check "drift: $TRAFFIC_FAILED of $TRAFFIC_SENT API requests through the VIP failed during the repair" \
    test "$TRAFFIC_FAILED" -eq 0 -a "$TRAFFIC_SENT" -gt 0
  for n in "${LAB_NODES[@]}"; do start_times "$n" >"$work/starts-after.$n"; done
  check "drift: control0: nothing restarted (a binary reinstalled restarts nothing; on their own: $(self_restarted control0))" \
    restarted_as_expected control0 ""
  check "drift: control1: only kube-apiserver restarted (on their own: $(self_restarted control1))" \
    restarted_as_expected control1 kube-apiserver
  check "drift: control2: only kube-scheduler restarted (on their own: $(self_restarted control2))" \
    restarted_as_expected control2 kube-scheduler

  # Each fact is back.
  check "drift: control1: $DRIFT_UNIT has --v=2 again" on control1 "grep -q -- '--v=2' $DRIFT_UNIT && ! grep -q -- '--v=6' $DRIFT_UNIT"
  check "drift: control1: kube-apiserver runs with --v=2" drift_runs_with control1 --v=2
  check_eq "drift: control1: $DRIFT_ARP is back" "$(printf 'net.ipv4.conf.all.arp_announce = 2\nnet.ipv4.conf.all.arp_ignore = 1')" \
    on control1 cat "$DRIFT_ARP"
  check "drift: control1: arp_ignore=1, arp_announce=2" \
    test "$(on control1 sysctl -n net.ipv4.conf.all.arp_ignore net.ipv4.conf.all.arp_announce | tr '\n' ' ')" = "1 2 "
  check_eq "drift: control2: $DRIFT_KEY is 0600 root:root again" "600 root:root" drift_mode control2 "$DRIFT_KEY"
  check_eq "drift: control0: $DRIFT_BIN has its sha256 again" "$sha" drift_sha control0 "$DRIFT_BIN"
  check_eq "drift: control2: kube-scheduler enabled and active again" "enabled active" drift_unit control2 kube-scheduler

  # The run after the repair is clean.
  check "drift: then pulumi preview --refresh --expect-no-changes passes" run_pulumi preview --refresh --expect-no-changes
  check "drift: and a plain pulumi preview --expect-no-changes" run_pulumi preview --expect-no-changes

  # The same edit again: a new marker, repaired by a plain up (the program probes on every run).
  on control2 sudo chmod 0644 "$DRIFT_KEY"
  check "drift: the same chmod again, then a plain pulumi up" run_pulumi up --yes --skip-preview
  check_eq "drift: ... repairs it again" "600 root:root" drift_mode control2 "$DRIFT_KEY"
  check "drift: and the up after it changes nothing" run_pulumi up --yes --skip-preview --expect-no-changes
}
