#!/usr/bin/env bash
# Checks lab/lib.sh's process helpers on processes of their own (no lab needed).
set -euo pipefail
# shellcheck source=test/lab/helpers.sh
source "$(dirname "${BASH_SOURCE[0]}")/helpers.sh"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

sleep 30 &
echo "$!" >"$tmp/live.pid"
check "lab_pid_alive: a running process is alive" lab_pid_alive "$tmp/live.pid"
check "lab_pid_alive: ... and has the comm it is asked for" lab_pid_alive "$tmp/live.pid" sleep
check_not "lab_pid_alive: ... but not another comm" lab_pid_alive "$tmp/live.pid" systemd-nspawn
kill "$(<"$tmp/live.pid")"
wait "$(<"$tmp/live.pid")" || true
check_not "lab_pid_alive: a process that ended is not alive" lab_pid_alive "$tmp/live.pid"

# A zombie: the child of a parent that never reaps it (the parent execs into a sleep). The lab's orphans are
# zombies like this for a moment after they die, until this machine's PID 1 reaps them.
# shellcheck disable=SC2016 # expanded by the inner bash
bash -c 'sleep 0.1 & echo "$!" >"$1"; exec sleep 5' zombie-parent "$tmp/zombie.pid" &
parent=$!
zombie=""
for _ in $(seq 50); do
  [[ -s $tmp/zombie.pid ]] && zombie=$(<"$tmp/zombie.pid") &&
    [[ $(ps -o stat= -p "$zombie" 2>/dev/null) == Z* ]] && break
  sleep 0.1
done
check "the zombie exists (the case being tested)" bash -c "ps -o stat= -p '$zombie' | grep -q '^Z'"
check_not "lab_pid_alive: a zombie is not alive" lab_pid_alive "$tmp/zombie.pid" sleep
kill "$parent" 2>/dev/null || true
wait "$parent" 2>/dev/null || true
check_not "lab_pid_alive: no pid file, not alive" lab_pid_alive "$tmp/missing.pid"

# test/lib.sh itself: a daemon a check starts (lab:up's containers) must not hold the test's output pipe open,
# or whoever reads it (CI's tee) waits for ever. The daemon here lives 30 s; the reader must be done in 10.
cat >"$tmp/starts-a-daemon.sh" <<'EOF_TEST'
source "$1"
check "starts a daemon" bash -c 'sleep 30 >/dev/null 2>&1 </dev/null &'
test_done
EOF_TEST
# shellcheck disable=SC2016 # expanded by the inner bash
check "test/lib.sh: a daemon started in a check does not hold the test's output open" \
  timeout 10 bash -c 'bash "$1" "$2" 2>&1 | cat >/dev/null' _ "$tmp/starts-a-daemon.sh" "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

# test/lib.sh's failure details: a long output (a failed pulumi run: its error, then pages of outputs) shows
# its error line and the lines after it, not only its last 40.
cat >"$tmp/fails-long.sh" <<'EOF_TEST'
source "$1"
check "a pulumi run that fails" bash -c 'echo "Diagnostics:"; echo "    error: refused by the preflight checks:"; echo "      - control0: port 10257"; seq 100; exit 1'
test_done
EOF_TEST
details=$(bash "$tmp/fails-long.sh" "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" 2>&1 || true)
check "test/lib.sh: a long failed output shows its error line and the line after it" \
  awk '/FAIL: a pulumi run that fails/ { getline e; getline d; ok = e ~ /^ +error: refused/ && d ~ /^ +- control0: port 10257$/ }
    END { exit !ok }' <<<"$details"
check "test/lib.sh: ... and its last lines" grep -qE '^ +100$' <<<"$details"
check_not "test/lib.sh: ... not the lines between" grep -qE '^ +30$' <<<"$details"

# holds_no_key: a key's PEM header, or a line of its body wrapped otherwise, is found; a file without either is clean.
ssh-keygen -q -t ed25519 -N "" -C kcp-lib-test -f "$tmp/key"
printf 'nothing secret\n' >"$tmp/clean"
sed -n 2p "$tmp/key" | sed 's/^/"value": "/' >"$tmp/body-only"
check "holds_no_key: a file without the key passes" holds_no_key "$tmp/key" "$tmp/clean"
check_not "holds_no_key: the key file itself fails" holds_no_key "$tmp/key" "$tmp/clean" "$tmp/key"
check_not "holds_no_key: a line of the key's body alone fails" holds_no_key "$tmp/key" "$tmp/body-only"
check_not "holds_no_key: an empty key file fails (nothing to look for)" holds_no_key /dev/null "$tmp/clean"

test_done
