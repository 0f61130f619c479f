#!/usr/bin/env bash
# lab/ssh.sh HOST [CMD...] — runs CMD on a lab host (control0..2, or control0..N-1 of a lab brought up with
# KCP_LAB_NODES=N; gateway) as ubuntu with the lab key, from inside the lab's network namespace, with the
# host key pinned (/var/lib/kcp-lab/ssh/known_hosts). Without CMD: an interactive shell.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lab/lib.sh
source "$here/lib.sh"

(($# >= 1)) || { echo "usage: $0 HOST [CMD...]   (HOST: ${LAB_HOSTS[*]})" >&2; exit 2; }
host=$1
shift
[[ -n ${LAB_IP[$host]:-} ]] || lab_die "$(lab_unknown_host "$host")"
lab_ns_exists || lab_die "the lab is not up (no network namespace $LAB_NS): npm run lab:up"
[[ -r $LAB_KEY ]] || lab_die "no lab key at $LAB_KEY: npm run lab:up"
mapfile -t opts < <(lab_ssh_opts "$host")
if (($# == 0)); then
  exec nsenter --net="$LAB_NS_PATH" -- ssh -t "${opts[@]}" "ubuntu@${LAB_IP[$host]}"
fi
exec nsenter --net="$LAB_NS_PATH" -- ssh "${opts[@]}" "ubuntu@${LAB_IP[$host]}" "$@"
