#!/usr/bin/env bash
# Builds what the lab's mirror serves (cached; a second run only re-checks): the patch releases the e2e
# upgrades to (LAB_UPGRADE_KUBE_VERSION, LAB_UPGRADE_ETCD_VERSION in lab/lib.sh), then the program's default
# versions, whose sums SHA256SUMS.json keeps (it describes the last build). The upgrade targets go without
# kubectl: every client in the lab is the default release's (lab_kubectl), so a new machine compiles one
# kubectl, not two. Run by lab/up.sh, and by .ci/run in the background while the engine builds.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lab/lib.sh
source "$here/../lib.sh"
lab_log "mirror: lab/mirror/build.sh $LAB_UPGRADE_KUBE_VERSION $LAB_UPGRADE_ETCD_VERSION (the upgrade targets, no kubectl; cached when built)"
KCP_KUBE_BINS="kube-apiserver kube-controller-manager kube-scheduler" \
  bash "$here/build.sh" "$LAB_UPGRADE_KUBE_VERSION" "$LAB_UPGRADE_ETCD_VERSION"
lab_log "mirror: lab/mirror/build.sh (the defaults; cached when built)"
bash "$here/build.sh"
