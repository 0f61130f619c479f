#!/usr/bin/env bash
# Builds what the lab's mirror serves (cached; a second run only re-checks).
#
# Usage: lab/mirror/build-lab.sh [--idle] [defaults|upgrades|all]
#   defaults  the program's default versions, whose sums SHA256SUMS.json keeps: what the lab installs. Built
#             by lab/up.sh, and by .ci/run in the background while the engine builds.
#   upgrades  the patch releases the e2e upgrades to (LAB_UPGRADE_KUBE_VERSION, LAB_UPGRADE_ETCD_VERSION in
#             lab/lib.sh), without kubectl (every client in the lab is the default release's, lab_kubectl: a
#             new machine compiles one kubectl, not two), leaving SHA256SUMS.json and mirror.json alone. Only
#             the e2e's upgrades need them: lab/up.sh (and .ci/run, from its start) build them in the
#             background with --idle, and the e2e runs this again before its upgrades, which waits for that
#             build (build.sh's lock) or finds them built.
#   all       both, the defaults first (the default).
#   --idle    at the lowest CPU priority (lab_idle): the build takes only what the rest leaves.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lab/lib.sh
source "$here/../lib.sh"
if [[ ${1:-} == --idle ]]; then
  shift
  lab_idle bash "$here/build-lab.sh" "$@"
fi
what=${1:-all}
case $what in
  defaults | upgrades | all) ;;
  *)
    echo "usage: lab/mirror/build-lab.sh [--idle] [defaults|upgrades|all]" >&2
    exit 2
    ;;
esac
if [[ $what != upgrades ]]; then
  lab_log "mirror: lab/mirror/build.sh (the defaults; cached when built)"
  bash "$here/build.sh"
fi
if [[ $what != defaults ]]; then
  lab_log "mirror: lab/mirror/build.sh $LAB_UPGRADE_KUBE_VERSION $LAB_UPGRADE_ETCD_VERSION (the e2e's upgrade targets, no kubectl; cached when built)"
  KCP_KUBE_BINS="kube-apiserver kube-controller-manager kube-scheduler" KCP_MIRROR_INDEX=0 \
    bash "$here/build.sh" "$LAB_UPGRADE_KUBE_VERSION" "$LAB_UPGRADE_ETCD_VERSION"
fi
