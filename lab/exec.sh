#!/usr/bin/env bash
# lab/exec.sh CMD... — runs CMD as the runner inside the lab's network namespace
# (address 192.168.1.1 on the lab bridge, no route out), with /etc/hosts resolving the
# control nodes (control0..2, or as many as the lab has: KCP_LAB_NODES), gateway and
# kubernetes(.kubenet) as the seed's DNS does
# (`ip netns exec` bind-mounts /etc/netns/kcplab/hosts over /etc/hosts).
# Example: lab/exec.sh pulumi up --stack lab ; lab/exec.sh kubectl get ns
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lab/lib.sh
source "$here/lib.sh"

(($# >= 1)) || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }
lab_ns_exists || lab_die "the lab is not up (no network namespace $LAB_NS): npm run lab:up"
[[ -f $LAB_NETNS_ETC/hosts ]] || lab_die "missing $LAB_NETNS_ETC/hosts: npm run lab:up"
exec ip netns exec "$LAB_NS" "$@"
