#!/usr/bin/env bash
# npm run bench: figures of the real program against the lab, each beside a baseline measured in the same run.
#   - wall times of cold up, no-change ups (the first reads every binary; later ones take an unchanged
#     binary's sum from the last run: the median of NOOP_RUNS), preview and destroy, beside the same engine's
#     time for an empty program (its no-change up the median of NOOP_RUNS too, run alternating with the
#     program's under the same load; ratio = program / empty), and its no-change up beside a program of the
#     same shape whose steps do nothing (scripts/bench/shape: the engine's own cost of that many steps, chained
#     as deep), with the CPU each took; a
#     no-change preview --refresh beside the plain preview (both probe every host once:
#     components/remote/probe.ts);
#   - cold up beside its critical path, read from the same up's event log: etcd reaching quorum (the cluster
#     gate), the first API server healthy, ldirectord's first passing checks (the real-servers gate), the first
#     controller manager and scheduler answering;
#   - the CPU the cold up took: the machine's (all its cores) and the emulated gateway's QEMU, beside its wall
#     time: where the machine is busy throughout, the CPU over the cores is the floor of that wall time;
#   - one row per rolling change (an etcd flag, an API server flag, a controller manager flag): its time, and
#     the requests a bounded loop sent through the VIP meanwhile and how many failed (test/e2e/traffic.sh).
# Needs npm run engine and npm run lab:up. Not a test: it prints figures.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# shellcheck source=scripts/lab-engine.sh
source scripts/lab-engine.sh
work=$(mktemp -d /tmp/kcp-bench.XXXXXX)
export PULUMI_BACKEND_URL="file://$work/state"
mkdir -p "$work/state" "$work/bin"
# shellcheck source=test/e2e/traffic.sh
source test/e2e/traffic.sh
# The baseline's stack file is this run's alone.
# BENCH_KEEP=1 keeps the scratch dir (the event logs, every step's output) and says where.
trap '[[ -n ${BENCH_KEEP:-} ]] && echo "kept $work" >&2 || rm -rf "$work"; rm -f scripts/bench/{empty,shape}/Pulumi.bench.yaml' EXIT

# timed NAME CMD...: runs CMD, records its wall time in milliseconds.
declare -A took
timed() {
  local name=$1 t0 t1
  shift
  t0=$(date +%s%N)
  "$@" >"$work/$name.log" 2>&1 || { tail -n 30 "$work/$name.log" >&2; lab_die "bench step $name failed"; }
  t1=$(date +%s%N)
  took[$name]=$(((t1 - t0) / 1000000))
}
seconds() { awk -v v="$1" 'BEGIN { printf "%.1f", v / 1000 }'; }
# repeated NAME RUNS: after runs NAME.1..NAME.RUNS were timed, took[NAME] is their median, spread[NAME] their
# range, and median_run[NAME] the run that gave the median (the figures vary by 10-40% between runs here).
declare -A spread median_run
repeated() {
  local name=$1 runs=$2 i sorted
  mapfile -t sorted < <(for ((i = 1; i <= runs; i++)); do echo "${took[$name.$i]} $i"; done | sort -n)
  read -r "took[$name]" "median_run[$name]" <<<"${sorted[(runs - 1) / 2]}"
  spread[$name]="$(seconds "${sorted[0]% *}")-$(seconds "${sorted[runs - 1]% *}") s"
}
# The steady no-change up and the empty program's are measured this many times each.
NOOP_RUNS=3
program() { lab/exec.sh pulumi --non-interactive --stack lab "$@"; }
empty() { (cd scripts/bench/empty && pulumi --non-interactive --stack bench "$@"); }
shape() { (cd scripts/bench/shape && pulumi --non-interactive --stack bench "$@"); }

for baseline in empty shape; do
  (cd "scripts/bench/$baseline" && pulumi stack init bench --secrets-provider passphrase >/dev/null)
done
# A fresh stack in a fresh backend: a passphrase salt left in the generated stack file belongs to another.
sed -i '/^encryptionsalt:/d' Pulumi.lab.yaml
cp Pulumi.lab.yaml "$work/Pulumi.lab.yaml"
program stack init --secrets-provider passphrase >/dev/null

echo "measuring the empty program (baseline)..." >&2
timed empty-up empty up --yes --skip-preview
# Its no-change up before the control plane runs on the lab (the figure earlier runs of this bench compared
# with); the baseline of the ratio is measured later, alternating with the program's own no-change ups.
for ((i = 1; i <= NOOP_RUNS; i++)); do timed "empty-noop-idle.$i" empty up --yes --skip-preview; done
repeated empty-noop-idle "$NOOP_RUNS"
echo "measuring the control plane program against the lab..." >&2
# stamped FILE CMD...: runs CMD, a pulumi command with --json, which streams the engine's events (stamped in
# whole seconds), and writes each as {"t": when it arrived, in ms precision, "e": the event}.
stamped() {
  local out=$1
  shift
  "$@" | perl -MTime::HiRes=time -ne 'printf "{\"t\":%.3f,\"e\":%s}\n", time, $_ if /^\{/' >"$out"
}
# busy_ticks: the machine's CPU time so far, in clock ticks: all of /proc/stat's but idle and iowait.
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
# qemu_ticks: the gateway's QEMU's CPU time so far (user and system), in clock ticks.
qemu_ticks() { awk '{ print $14 + $15 }' "/proc/$(<"$LAB_RUN/gateway/qemu.pid")/stat"; }
busy0=$(busy_ticks) qemu0=$(qemu_ticks)
timed cold-up stamped "$work/cold-up.events" program up --yes --skip-preview --json
cold_busy=$(($(busy_ticks) - busy0)) cold_qemu=$(($(qemu_ticks) - qemu0))
timed noop-up stamped "$work/noop-up.events" program up --yes --skip-preview --json
# The do-nothing program takes the deployed program's shape: its steps (custom resources but the engine's
# own), its tls keys, its longest chain of steps (dependencies and parents followed, a component no step).
read -r shape_steps shape_keys shape_depth < <(program stack export | jq -r '
  [.deployment.resources[] | select(.type | startswith("pulumi:") | not)] as $rs
  | ($rs | map({ key: .urn, value: ((.dependencies // []) + (if .parent then [.parent] else [] end)) }) | from_entries) as $deps
  | ($rs | map({ key: .urn, value: (if .custom then 1 else 0 end) }) | from_entries) as $weight
  | (reduce range(0; $rs | length) as $_ ({}; . as $d
      | reduce ($deps | keys[]) as $u ($d; .[$u] = $weight[$u] + ([$deps[$u][] | $d[.] // 0] | max // 0)))) as $depth
  | "\([$rs[] | select(.custom)] | length) \([$rs[] | select(.type | startswith("tls:index/privateKey"))] | length) \([$depth[]] | max)"')
shape config set steps "$shape_steps"
shape config set keys "$shape_keys"
shape config set depth "$shape_depth"
timed shape-up shape up --yes --skip-preview
# The lab at rest (its etcd members, API servers, ldirectord's checks): the machine's clock ticks over 5 s.
rest0=$(busy_ticks)
sleep 5
rest=$(($(busy_ticks) - rest0))
# Again, NOOP_RUNS times: the first no-change up reads every binary (the cold up's probe found none to keep
# a sum of); from the second on, the probes take an unchanged binary's sum from the last run
# (components/remote/probe.ts).
# The empty program's no-change ups alternate with these: both under the same load (the lab's etcd members,
# API servers and ldirectord's checks keep about half a core of this machine's two busy).
# The do-nothing program of the same shape alternates with both.
# measured NAME RUN CMD...: timed NAME.RUN CMD..., adding the machine's CPU ticks over it to cpu[NAME] (the lab's
# rest included) and the emulated gateway's QEMU's to gateway_cpu[NAME].
declare -A cpu gateway_cpu
measured() {
  local name=$1 run=$2 b0 q0
  shift 2
  b0=$(busy_ticks) q0=$(qemu_ticks)
  timed "$name.$run" "$@"
  cpu[$name]=$((${cpu[$name]:-0} + $(busy_ticks) - b0)) gateway_cpu[$name]=$((${gateway_cpu[$name]:-0} + $(qemu_ticks) - q0))
}
for ((i = 1; i <= NOOP_RUNS; i++)); do
  measured empty-noop "$i" empty up --yes --skip-preview
  measured shape-noop "$i" shape up --yes --skip-preview
  measured noop-up-again "$i" stamped "$work/noop-up-again.$i.events" program up --yes --skip-preview --json
done
for name in noop-up-again empty-noop shape-noop; do repeated "$name" "$NOOP_RUNS"; done
timed empty-preview empty preview
cp "$work/noop-up-again.${median_run[noop-up-again]}.events" "$work/noop-up-again.events"
timed preview program preview
timed preview-refresh program preview --refresh

# The critical path, in milliseconds, from the cold up's event log: how long each gate took (its step's
# start to its outputs), summed along the chain etcd -> one API server -> the load balancer -> one controller
# manager and one scheduler.
critical_ms=$(jq -rs '
  def took(pat): [ .[] | select(.e.resourcePreEvent or .e.resOutputsEvent)
    | { urn: (.e.resourcePreEvent.metadata.urn // .e.resOutputsEvent.metadata.urn), t: .t,
        end: (.e.resOutputsEvent != null) } | select(.urn | test(pat)) ]
    | group_by(.urn) | map((map(select(.end)) | .[0].t) - (map(select(.end | not)) | .[0].t)) | map(select(. != null));
  (took("etcd-cluster-gate$") | max) + (took("kube-apiserver-control[0-9]+-healthy$") | min)
  + (took("api-load-balancer-real-servers-healthy$") | max)
  + ([(took("kube-controller-manager-control[0-9]+-healthy$") | min), (took("kube-scheduler-control[0-9]+-healthy$") | min)] | max)
  | . * 1000 | floor' "$work/cold-up.events")

# Rolling changes under traffic through the VIP.
program stack output caCert >"$work/ca.pem"
program stack output adminKubeconfig --show-secrets >"$work/admin.kubeconfig"
install -m 0755 "$(lab_kubectl)" "$work/bin/kubectl"
declare -A sent failed
rolling() {
  local name=$1 key=$2 value=$3
  program config set --path "$key" "$value"
  traffic_start "$name"
  timed "$name" stamped "$work/$name.events" program up --yes --skip-preview --json
  traffic_stop "$name"
  sent[$name]=$TRAFFIC_SENT failed[$name]=$TRAFFIC_FAILED
}
rolling etcd-flag etcdExtraArgs.snapshot-count 20000
rolling apiserver-flag apiServerExtraArgs.event-ttl 2h
rolling controller-manager-flag controllerManagerExtraArgs.terminated-pod-gc-threshold 500
cp "$work/Pulumi.lab.yaml" Pulumi.lab.yaml
timed empty-destroy empty destroy --yes --skip-preview
timed destroy program destroy --yes --skip-preview

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }
row() { printf '%-40s %9ss %9ss %8sx\n' "$1" "$(seconds "${took[$2]}")" "$(seconds "$3")" "$(ratio "${took[$2]}" "$3")"; }
# The kernel's transparent huge pages change these figures by about a tenth (README): say which were on.
printf '\ntransparent huge pages: %s\n' "$(sed -n 's/.*\[\(.*\)\].*/\1/p' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo unknown)"
printf '\n%-40s %10s %10s %9s\n' "step" "program" "baseline" "ratio"
row "cold up / empty program" cold-up "${took[empty-up]}"
row "cold up / its critical path" cold-up "$critical_ms"
awk -v busy="$cold_busy" -v qemu="$cold_qemu" -v hz="$(getconf CLK_TCK)" -v ms="${took[cold-up]}" -v cores="$(nproc)" 'BEGIN {
  printf "  (the cold up took %.1f CPU-seconds of the machine'"'"'s %d cores in %.1f s, %.2f cores busy on average; the emulated gateway'"'"'s QEMU %.1f of them; their floor here: %.1f s)\n",
    busy / hz, cores, ms / 1000, busy / hz / (ms / 1000), qemu / hz, busy / hz / cores }'
row "no-change up, the first / empty program" noop-up "${took[empty-noop]}"
row "no-change up, again / empty program" noop-up-again "${took[empty-noop]}"
printf '  (medians of %s runs: the program %s, the empty program %s; the empty program before the control plane ran: %ss, %s)\n' \
  "$NOOP_RUNS" "${spread[noop-up-again]}" "${spread[empty-noop]}" "$(seconds "${took[empty-noop-idle]}")" "${spread[empty-noop-idle]}"
row "no-change up, again / its shape, doing nothing" noop-up-again "${took[shape-noop]}"
row "its shape, doing nothing / empty program" shape-noop "${took[empty-noop]}"
printf '  (the do-nothing program: %s steps, %s of them tls keys, chained %s deep, its last deployment read back; medians of %s runs: %s)\n' \
  "$shape_steps" "$shape_keys" "$shape_depth" "$NOOP_RUNS" "${spread[shape-noop]}"
# The CPU of one no-change up, the lab's rest over its time taken out: its own, beside the baselines'.
own_cpu() {
  local ms=0 i
  for ((i = 1; i <= NOOP_RUNS; i++)); do ms=$((ms + ${took[$1.$i]})); done
  awk -v ticks="${cpu[$1]}" -v rest="$rest" -v ms="$ms" -v runs="$NOOP_RUNS" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%.1f", (ticks - rest / 5 * ms / 1000) / hz / runs }'
}
printf '  (the CPU of one no-change up, the lab at rest taken out (%s CPU-seconds a second): the program %s CPU-seconds (the emulated gateway'"'"'s QEMU %s over the same time, its rest included); its shape doing nothing %s; the empty program %s)\n' \
  "$(awk -v r="$rest" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", r / 5 / hz }')" "$(own_cpu noop-up-again)" \
  "$(awk -v q="${gateway_cpu[noop-up-again]}" -v hz="$(getconf CLK_TCK)" -v runs="$NOOP_RUNS" 'BEGIN { printf "%.1f", q / hz / runs }')" \
  "$(own_cpu shape-noop)" "$(own_cpu empty-noop)"
row "preview / empty program" preview "${took[empty-preview]}"
row "preview --refresh / preview" preview-refresh "${took[preview]}"
row "destroy / empty program" destroy "${took[empty-destroy]}"
# Where a no-change up's time goes, from its event log: the program's start; the probes' scripts sent (the read
# of the last deployment and the program's construction are over then); each host's probe from its script
# sent (components/remote/probe.ts logs them); the end.
for run in noop-up noop-up-again; do
  jq -rs --arg run "$run" '
    (.[0].t) as $t0
    | def at(pat): [ .[] | select(.e.diagnosticEvent.message // "" | test(pat)) | .t - $t0 ] | first;
    "\($run), where the time goes: program running at \(at("^Running program") * 10 | floor / 10) s, last deployment read and the program constructed by \(at("^probes sent to") * 10 | floor / 10) s, probes from their script sent (ms): \([ .[] | .e.diagnosticEvent.message // "" | capture("^probe of (?<h>[^:]+): (?<ms>[0-9]+) ms") | "\(.h) \(.ms)" ] | join(", ")), done at \((.[-1].t - $t0) * 10 | floor / 10) s"
  ' "$work/$run.events"
done
printf '\n%-40s %10s %14s %8s\n' "rolling change (3 nodes)" "time" "VIP requests" "failed"
for name in etcd-flag apiserver-flag controller-manager-flag; do
  printf '%-40s %9ss %14s %8s\n' "$name" "$(seconds "${took[$name]}")" "${sent[$name]}" "${failed[$name]}"
done
