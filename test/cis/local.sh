#!/usr/bin/env bash
# A local rehearsal of the lab's CIS check, no lab needed: for each profile, control0's files exactly as
# the program writes them and its daemons as stand-ins, checked by kube-bench through test/cis/run.sh.
#
#   bash test/cis/local.sh [seed|hardened]...      # default: both; needs root, unshare, go, node, jq
#
# Inside a private mount and PID namespace (nothing of it reaches this machine): a copy of /etc bind-mounted
# over /etc, tmpfs over /var/lib and /usr/local/bin, a no-op systemctl. There it runs, verbatim, the create
# scripts of control0's user, data dir, file and unit steps (test/unit/cisLayout.ts renders them under
# Pulumi's mocks), and starts, for each unit, a sleeping stand-in named like the daemon with the unit's
# ExecStart arguments, so kube-bench's `ps` checks see the real flags. What it cannot show: anything a
# running daemon does (ports, TLS), the mock PKI's content. Prints run.sh's three lines per profile; exits
# non-zero when the hardened profile has a FAIL that test/cis/not-applicable.txt does not list.
# shellcheck disable=SC2317 # cleanup and inner run indirectly (trap, the namespace's bash -c)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
profiles=("$@")
((${#profiles[@]} > 0)) || profiles=(seed hardened)
[ "$(id -u)" -eq 0 ] || { echo "local.sh needs root (unshare -m -p)" >&2; exit 2; }
cache=${KCP_CACHE:-/var/cache/kcp}
work=$(mktemp -d /tmp/kcp-cis.XXXXXX)
ns='' pid1=''
# The namespace's PID 1 ignores SIGTERM; SIGKILL ends it and every stand-in with it.
stop_ns() {
  if [ -n "$pid1" ]; then kill -KILL "$pid1" 2>/dev/null || true; fi
  if [ -n "$ns" ]; then wait "$ns" 2>/dev/null || true; fi
  ns='' pid1=''
}
cleanup() {
  stop_ns
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

bash "$here/build.sh" >/dev/null
(cd "$repo" && npx tsc -p tsconfig.json)
# The stand-in daemon: sleeps, whatever its arguments.
mkdir -p "$work/sleeper"
printf 'package main\n\nimport "time"\n\nfunc main() { time.Sleep(time.Hour) }\n' >"$work/sleeper/main.go"
(cd "$work/sleeper" && GO111MODULE=off CGO_ENABLED=0 GOTOOLCHAIN=local GOCACHE="$cache/go-build" go build -o sleeper main.go)

# inner LAYOUT: PID 1 of the namespace: builds the layout, starts the stand-ins, then waits to be killed.
inner() {
  local layout=$1 step name
  cp -a /etc/. "$layout/etc/"
  mount --bind "$layout/etc" /etc
  mount -t tmpfs tmpfs /var/lib
  mount -t tmpfs tmpfs /usr/local/bin
  mkdir -p "$layout/fakebin"
  printf '#!/bin/sh\nexit 0\n' >"$layout/fakebin/systemctl"
  chmod 0755 "$layout/fakebin/systemctl"
  for step in "$layout"/steps/*.sh; do
    PATH="$layout/fakebin:$PATH" bash "$step" <"${step%.sh}.in" >/dev/null
  done
  for name in "$layout"/daemons/*; do
    cp "$work/sleeper/sleeper" "/usr/local/bin/${name##*/}"
    mapfile -t args <"$name"
    "/usr/local/bin/${name##*/}" "${args[@]}" &
  done
  touch "$layout/ready"
  wait
}

status=0
for profile in "${profiles[@]}"; do
  layout=$work/$profile
  mkdir -p "$layout/etc"
  (cd "$repo" && node bin/test/unit/cisLayout.js "$profile" "$layout")
  export -f inner
  export work
  unshare -m -p -f --mount-proc bash -c "inner $(printf '%q' "$layout")" 2>"$layout/unshare.log" &
  ns=$!
  for _ in $(seq 100); do [ -e "$layout/ready" ] && break; sleep 0.1; done
  pid1=$(ps -o pid= --ppid "$ns" | tr -d ' ')
  [ -e "$layout/ready" ] || { cat "$layout/unshare.log" >&2; echo "the $profile layout did not come up" >&2; exit 2; }
  sleep 0.5
  echo "== profile $profile (control0's files and flags, stand-in daemons)"
  KCP_CIS_NAME=$profile KCP_CIS_OUT=${KCP_CIS_OUT_DIR:+$KCP_CIS_OUT_DIR/$profile.json} \
    bash "$here/run.sh" nsenter -t "$pid1" -m -p bash -c || {
    rc=$?
    # The seed fails the benchmark (that is why the hardened profile exists): only hardened sets the status.
    if [ "$profile" = hardened ] || [ "$rc" -ne 1 ]; then status=$rc; fi
  }
  stop_ns
done
exit "$status"
