#!/usr/bin/env bash
# Checks test/e2e/traffic.sh's sampling on files and processes of its own (no lab needed): how the watches'
# lines add up to the most etcd members and real servers down at once, and that a watch's remote loop prints a
# line a second and ends once traffic_stop's file appears.
set -euo pipefail
# shellcheck source=test/lab/helpers.sh
source "$(dirname "${BASH_SOURCE[0]}")/helpers.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck source=test/e2e/traffic.sh
source "$repo/test/e2e/traffic.sh"

# most NAME: what traffic_most_down makes of NAME's watch files, as "etcd lb".
most() { traffic_most_down "$1" && echo "$TRAFFIC_ETCD_DOWN $TRAFFIC_LB_DOWN"; }

printf '%s\n' "100 up" "101 down" "102 down" >"$work/traffic-a.watch.control0"
printf '%s\n' "100 up" "101 up" "102 down" >"$work/traffic-a.watch.control1"
printf '%s\n' "100 up" "101 up" "102 up" >"$work/traffic-a.watch.control2"
printf '%s\n' "100 0" "101 1" "102 0" >"$work/traffic-a.watch.gateway"
check_eq "two nodes down in the same second count 2; the gateway's most out at one sample" "2 1" most a

# One node sampled twice in a second (its loop drifted) while down counts once.
printf '%s\n' "100 up" "101 down" "101 down" "102 up" >"$work/traffic-b.watch.control0"
printf '%s\n' "100 up" "101 up" "102 up" >"$work/traffic-b.watch.control1"
printf '%s\n' "100 0" "101 0" >"$work/traffic-b.watch.gateway"
check_eq "a node's two samples in one second count once" "1 0" most b

# Down in different seconds, one at a time: a rolling restart.
printf '%s\n' "100 down" "101 up" "102 up" >"$work/traffic-c.watch.control0"
printf '%s\n' "100 up" "101 down" "102 up" >"$work/traffic-c.watch.control1"
printf '%s\n' "100 up" "101 up" "102 down" >"$work/traffic-c.watch.control2"
printf '%s\n' "100 1" "101 1" "102 1" >"$work/traffic-c.watch.gateway"
check_eq "one node down at a time counts 1" "1 1" most c

check_eq "nothing sampled (no session could be opened): 99, which fails the checks" "99 99" most d
: >"$work/traffic-e.watch.control0"
: >"$work/traffic-e.watch.gateway"
check_eq "empty watch files: 99" "99 99" most e

# The watch loop itself, with lab_ssh running the remote command here: a line a second, "<epoch> <output>",
# until the stop file appears, then it ends within the feeder's half second and the loop's second.
lab_ssh() { shift; bash -c "$*"; }
traffic_watch f local 'echo up' &
watcher=$!
sleep 2.5
: >"$work/traffic-f.stop"
t0=$SECONDS
ended() { ! kill -0 "$watcher" 2>/dev/null; }
check "the watch ends once the stop file appears" wait_for "the watch to end" 5 ended
check "... within 3 s ($((SECONDS - t0)) s)" test $((SECONDS - t0)) -le 3
wait "$watcher" || true
lines=$(wc -l <"$work/traffic-f.watch.local")
check "it printed a line a second while it ran ($lines lines in about 3 s)" test "$lines" -ge 2 -a "$lines" -le 4
check "each line is the second it was taken and the probe's output" \
  grep -qxE '[0-9]{10} up' "$work/traffic-f.watch.local"
check_not "... and nothing else" grep -qvxE '[0-9]{10} up' "$work/traffic-f.watch.local"

# traffic_started: back once the request loop's first answer and every host's first sample are there (here
# 1 s and 1.5 s on), not before; when the time is up, back all the same, saying what it still waits for.
(sleep 1 && : >"$work/traffic-g.first" && echo "100 up" >"$work/traffic-g.watch.control0" &&
  sleep 0.5 && echo "100 0" >"$work/traffic-g.watch.gateway") &
t0=${EPOCHREALTIME/./}
traffic_started g control0 gateway 2>"$work/g.err"
waited=$(((${EPOCHREALTIME/./} - t0) / 1000))
check "traffic_started returns once the loop answered and both watches sampled (${waited} ms, they were there at 1500)" \
  test "$waited" -ge 1500 -a "$waited" -lt 3000
check "... and said what it waited for" grep -q "waiting up to 30s for the request loop's first answer and a first sample from control0 gateway" "$work/g.err"
: >"$work/traffic-h.watch.control0"
echo "100 0" >"$work/traffic-h.watch.gateway"
# started_within SECONDS NAME HOST...: traffic_started with TRAFFIC_START_SECONDS=SECONDS, its stderr in $work/NAME.err.
started_within() { local TRAFFIC_START_SECONDS=$1; traffic_started "${@:2}" 2>"$work/$2.err"; }
t0=$SECONDS
check "with nothing from the loop nor control0, it returns when TRAFFIC_START_SECONDS is up" started_within 1 h control0 gateway
check "... within 3 s ($((SECONDS - t0)) s)" test $((SECONDS - t0)) -le 3
check "... naming the request loop and control0, not the gateway" grep -qx \
  "traffic h: after 1s, still waiting for the request loop's first answer, control0's first sample; going on (the checks on them will fail)" "$work/h.err"

test_done
