#!/usr/bin/env bash
# npm run bench: wall times of the real program against the lab, each beside the same engine's time for an
# empty program measured in the same run (ratio = program / empty): cold up, no-change up, preview,
# destroy; and the failed requests of a bounded request loop through the VIP while one apiserver flag
# changes (a rolling restart). Needs npm run engine and npm run lab:up. Not a test: it prints figures.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# shellcheck source=scripts/lab-engine.sh
source scripts/lab-engine.sh
work=$(mktemp -d /tmp/kcp-bench.XXXXXX)
export PULUMI_BACKEND_URL="file://$work/state"
mkdir -p "$work/state"
# The baseline's stack file is this run's alone.
trap 'rm -rf "$work" scripts/bench/empty/Pulumi.bench.yaml' EXIT

# timed NAME CMD...: runs CMD, records its wall time in seconds (milliseconds precision).
declare -A took
timed() {
  local name=$1 t0 t1
  shift
  t0=$(date +%s%N)
  "$@" >"$work/$name.log" 2>&1 || { tail -n 30 "$work/$name.log" >&2; lab_die "bench step $name failed"; }
  t1=$(date +%s%N)
  took[$name]=$(((t1 - t0) / 1000000))
}
program() { lab/exec.sh pulumi --non-interactive --stack lab "$@"; }
empty() { (cd scripts/bench/empty && pulumi --non-interactive --stack bench "$@"); }

(cd scripts/bench/empty && pulumi stack init bench --secrets-provider passphrase >/dev/null)
# A fresh stack in a fresh backend: a passphrase salt left in the generated stack file belongs to another.
sed -i '/^encryptionsalt:/d' Pulumi.lab.yaml
program stack init --secrets-provider passphrase >/dev/null

echo "measuring the empty program (baseline)..." >&2
timed empty-up empty up --yes --skip-preview
timed empty-noop empty up --yes --skip-preview
timed empty-preview empty preview
timed empty-destroy empty destroy --yes --skip-preview
echo "measuring the control plane program against the lab..." >&2
timed cold-up program up --yes --skip-preview
timed noop-up program up --yes --skip-preview
timed preview program preview

# Requests through the VIP, once every 0.2s for at most 240s, while one apiserver flag changes.
program stack output caCert >"$work/ca.pem"
program config set --path 'apiServerExtraArgs.event-ttl' 2h
(
  sent=0 failures=0 deadline=$((SECONDS + 240))
  while [[ ! -f $work/flag-done ]] && ((SECONDS < deadline)); do
    sent=$((sent + 1))
    lab/exec.sh curl -fsS --max-time 2 --cacert "$work/ca.pem" https://kubernetes:6443/healthz >/dev/null 2>&1 ||
      failures=$((failures + 1))
    sleep 0.2
  done
  echo "$sent $failures" >"$work/loop"
) &
loop=$!
timed flag-up program up --yes --skip-preview
touch "$work/flag-done"
wait "$loop"
read -r sent failures <"$work/loop"
program config rm --path 'apiServerExtraArgs.event-ttl'
timed destroy program destroy --yes --skip-preview

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }
row() { printf '%-28s %9.1fs %9.1fs %8sx\n' "$1" "$(awk -v v="${took[$2]}" 'BEGIN{print v/1000}')" \
  "$(awk -v v="${took[$3]}" 'BEGIN{print v/1000}')" "$(ratio "${took[$2]}" "${took[$3]}")"; }
printf '\n%-28s %10s %10s %9s\n' "step" "program" "empty" "ratio"
row "cold up" cold-up empty-up
row "no-change up" noop-up empty-noop
row "preview" preview empty-preview
row "destroy" destroy empty-destroy
printf '%-28s %9.1fs\n' "up with one apiserver flag" "$(awk -v v="${took[flag-up]}" 'BEGIN{print v/1000}')"
printf 'VIP requests during that up:  %s sent, %s failed\n' "$sent" "$failures"
