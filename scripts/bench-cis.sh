#!/usr/bin/env bash
# npm run bench:cis: the CIS Kubernetes Benchmark 1.10 (kube-bench v0.15.6, targets master, etcd and
# controlplane) on every control node of the lab, for both profiles, on one running cluster: `up` with
# profile seed, kube-bench; the same stack switched to hardened (a change like any other), kube-bench;
# switched back to seed, kube-bench; destroy. Needs npm run engine and npm run lab:up. Prints one row per
# profile and node with the counts and the FAIL ids; exits non-zero when a hardened node FAILs a check that
# test/cis/not-applicable.txt does not list. The JSON of each run stays in $KCP_CIS_KEEP when that is set.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# shellcheck source=scripts/lab-engine.sh
source scripts/lab-engine.sh
[[ -f Pulumi.lab.yaml ]] || lab_die "no Pulumi.lab.yaml: npm run lab:up writes it"
work=$(mktemp -d /tmp/kcp-bench-cis.XXXXXX)
export PULUMI_BACKEND_URL="file://$work/state"
mkdir -p "$work/state"
cp Pulumi.lab.yaml "$work/Pulumi.lab.yaml"
# The stack file is put back as it was: the profile set here is this run's alone.
trap 'cp "$work/Pulumi.lab.yaml" Pulumi.lab.yaml; rm -rf "$work"' EXIT
program() { lab/exec.sh pulumi --non-interactive --stack lab "$@"; }

bash test/cis/build.sh >/dev/null
sed -i '/^encryptionsalt:/d' Pulumi.lab.yaml
program stack init --secrets-provider passphrase >/dev/null
status=0
rows=()
# bench ROUND PROFILE: up with the profile, then kube-bench on every node.
bench() {
  local round=$1 profile=$2 node out rc
  program config set profile "$profile"
  echo "[bench:cis] $round: pulumi up with profile $profile" >&2
  program up --yes --skip-preview >"$work/$round.up.log" 2>&1 ||
    { tail -n 40 "$work/$round.up.log" >&2; lab_die "pulumi up with profile $profile failed"; }
  for node in "${LAB_NODES[@]}"; do
    rc=0
    out=$(KCP_CIS_NAME=$node KCP_CIS_OUT=${KCP_CIS_KEEP:+$KCP_CIS_KEEP/$round-$node.json} \
      bash test/cis/run.sh lab/ssh.sh "$node") || rc=$?
    ((rc != 2)) || lab_die "kube-bench did not run on $node"
    if [[ $profile == hardened ]] && ((rc != 0)); then status=1; fi
    # "node PASS p FAIL f WARN w INFO i" then "node FAIL ids..."
    rows+=("$(awk -v r="$round" 'NR == 1 {printf "%-10s %-9s %5s %5s %5s %5s  ", r, $1, $3, $5, $7, $9}
      NR == 2 {$1 = ""; $2 = ""; sub(/^ +/, ""); print ($0 == "" ? "-" : $0)}' <<<"$out")")
  done
}
[[ -z ${KCP_CIS_KEEP:-} ]] || mkdir -p "$KCP_CIS_KEEP"
bench seed seed
bench hardened hardened
bench seed-again seed
echo "[bench:cis] destroy" >&2
program destroy --yes --skip-preview >"$work/destroy.log" 2>&1 || { tail -n 40 "$work/destroy.log" >&2; status=1; }

printf '\n%-10s %-9s %5s %5s %5s %5s  %s\n' profile node PASS FAIL WARN INFO "FAIL ids"
printf '%s\n' "${rows[@]}"
exit "$status"
