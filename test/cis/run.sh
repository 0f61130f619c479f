#!/usr/bin/env bash
# Runs kube-bench v0.15.6 (CIS Kubernetes Benchmark 1.10, targets master, etcd and controlplane) on one
# control node with our cfg overlay, and summarises it.
#
#   bash test/cis/run.sh PREFIX...
#
# PREFIX is a command that runs a shell command line on the node the way ssh does: this script calls
# `PREFIX '<command line>'` twice (uname -m, then the run with kube-bench and its cfg as a tar stream on
# stdin); the command line runs kube-bench as root, through `sudo -n` unless it is root already, so PREFIX
# may log in as a user with passwordless sudo. E.g.
#   bash test/cis/run.sh lab/ssh.sh control0           # a lab node
#   bash test/cis/run.sh ssh ubuntu@192.168.1.11       # any node
#   bash test/cis/run.sh bash -c                       # this machine
# It builds kube-bench for the node's arch first (test/cis/build.sh, cached).
# Environment: KCP_CIS_OUT=FILE keeps kube-bench's JSON there; KCP_CIS_NAME labels the output (default:
# the node's host name); KCP_CIS_NA=FILE the not-applicable list (default test/cis/not-applicable.txt).
# stdout, three lines, e.g.:
#   control0 PASS 60 FAIL 2 WARN 9 INFO 0
#   control0 FAIL 1.1.13 1.1.14
#   control0 WARN 1.1.9 1.1.10 1.2.1 ...
# Exit: 0 when every FAIL is listed as not applicable; 1 when another check FAILs; 2 when it cannot run.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
(($# >= 1)) || { sed -n '2,23s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; exit 2; }
command -v jq >/dev/null || { echo "jq is required" >&2; exit 2; }
na_file=${KCP_CIS_NA:-$here/not-applicable.txt}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

machine=$("$@" 'uname -m') || { echo "cannot reach the node with: $*" >&2; exit 2; }
case $machine in
  x86_64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "unsupported machine $machine" >&2; exit 2 ;;
esac
cache=$(bash "$here/build.sh" "$arch")

# On the node: a temp dir for the binary and cfg, removed on exit; the JSON on stdout. kube-bench exits 0
# whatever it finds; --benchmark spares it the version probe (no kubectl on the nodes).
# shellcheck disable=SC2016 # expanded on the node
remote='set -euo pipefail; d=$(mktemp -d); trap "rm -rf \"\$d\"" EXIT; tar -xzf - -C "$d"; cd "$d";'
remote+=' ./kube-bench run --config-dir cfg --config cfg/config.yaml --benchmark cis-1.10'
remote+=' --targets master,etcd,controlplane --json 2>/dev/null; hostname -s >&2'
tar -C "$cache" -czf - --transform "s|^$arch/||" "$arch/kube-bench" cfg |
  "$@" "if [ \"\$(id -u)\" -eq 0 ]; then bash -c $(printf '%q' "$remote"); else sudo -n bash -c $(printf '%q' "$remote"); fi" \
    >"$work/result.json" 2>"$work/stderr" ||
  { cat "$work/stderr" >&2; echo "kube-bench failed on the node ($*)" >&2; exit 2; }
jq -e '.Totals' "$work/result.json" >/dev/null 2>&1 || { echo "no kube-bench JSON from the node ($*)" >&2; exit 2; }
name=${KCP_CIS_NAME:-$(tail -n 1 "$work/stderr")}
[[ -z ${KCP_CIS_OUT:-} ]] || cp "$work/result.json" "$KCP_CIS_OUT"

ids() { jq -r --arg s "$1" '[.Controls[].tests[].results[] | select(.status == $s) | .test_number] | join(" ")' "$work/result.json"; }
jq -r --arg n "$name" '.Totals | "\($n) PASS \(.total_pass) FAIL \(.total_fail) WARN \(.total_warn) INFO \(.total_info)"' \
  "$work/result.json"
fails=$(ids FAIL)
printf '%s FAIL %s\n%s WARN %s\n' "$name" "$fails" "$name" "$(ids WARN)"
unexpected=()
for id in $fails; do
  grep -q "^${id//./\\.} " "$na_file" || unexpected+=("$id")
done
if ((${#unexpected[@]} > 0)); then
  echo "$name: FAIL beyond the not-applicable checks: ${unexpected[*]}" >&2
  exit 1
fi
