#!/usr/bin/env bash
# npm run test:lab — the lab's tests.
#   1. brings the lab up (npm run lab:up) if it is not up, with 5 control nodes (KCP_LAB_NODES, default 5
#      here: lab.test.sh covers every node, nodes.test.sh resizes the lab to 3 and back; 5 cost little more
#      than 3), or resizes a lab that is up to KCP_LAB_NODES when that is set;
#   2. runs every test/lab/*.test.sh except down.test.sh against the lab that is up;
#   3. takes the lab down (npm run lab:down) and runs down.test.sh;
#   4. if the lab was up before this run, brings it up again (with the node count it had).
# KCP_LAB_TEST_DOWN=0 skips 3 and 4 (the lab stays up).
# A test file prints "PASS: name" / "FAIL: name" lines (TAP "ok"/"not ok" lines count too);
# a file that prints none counts as one test, passed when it exits 0.
# Last line: "N passed, N failed"; exit status non-zero when anything failed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=lab/lib.sh
source "$repo/lab/lib.sh"
# shellcheck source=test/lib.sh
source "$repo/test/lib.sh"

log() { printf '[test:lab %(%H:%M:%S)T] %s\n' -1 "$*"; }

# run_file FILE: runs one test file, streams its output, adds its counts to test/lib.sh's.
run_file() {
  local f=$1 out rc=0 p q t0=$SECONDS
  log "running ${f#"$repo"/}"
  out=$(mktemp)
  bash "$f" 2>&1 | tee "$out" || rc=$?
  p=$(grep -cE '^(PASS:|ok )' "$out" || true)
  q=$(grep -cE '^(FAIL:|not ok )' "$out" || true)
  rm -f "$out"
  if ((p + q == 0)); then
    if ((rc == 0)); then p=1; else q=1; fi
  elif ((rc != 0 && q == 0)); then
    q=1
    echo "FAIL: ${f##*/} exited $rc"
  fi
  TEST_PASSES=$((TEST_PASSES + p))
  TEST_FAILS=$((TEST_FAILS + q))
  log "${f##*/}: $p passed, $q failed in $((SECONDS - t0))s"
}

# step NAME CMD...: a lab step that must work (counted as a test).
step() {
  local name=$1 t0=$SECONDS
  shift
  log "$name"
  if "$@"; then
    pass "$name ($((SECONDS - t0))s)"
  else
    fail "$name ($((SECONDS - t0))s)"
    return 1
  fi
}

was_up=0 was_nodes=""
lab_ns_exists && was_up=1 && was_nodes=$(lab_recorded_node_count)
up_ok=1
if ((was_up == 0)); then
  nodes=${KCP_LAB_NODES:-5}
  step "npm run lab:up (KCP_LAB_NODES=$nodes)" env KCP_LAB_NODES="$nodes" bash "$repo/lab/up.sh" || up_ok=0
elif [[ -n ${KCP_LAB_NODES:-} && $KCP_LAB_NODES != "$was_nodes" ]]; then
  step "npm run lab:up (resize the lab that is up to KCP_LAB_NODES=$KCP_LAB_NODES)" bash "$repo/lab/up.sh" || up_ok=0
fi
# The tests follow the lab that is up (the node count lab:up recorded).
unset KCP_LAB_NODES

shopt -s nullglob
for f in "$here"/*.test.sh; do
  [[ ${f##*/} == down.test.sh ]] && continue
  if ((up_ok == 0)) && [[ ${f##*/} == lab.test.sh || ${f##*/} == nodes.test.sh ]]; then
    fail "${f##*/} (not run: lab:up failed)"
    continue
  fi
  run_file "$f"
done

if [[ ${KCP_LAB_TEST_DOWN:-1} != 0 ]]; then
  if step "npm run lab:down" bash "$repo/lab/down.sh"; then
    run_file "$here/down.test.sh"
    step "npm run lab:down again (nothing running)" bash "$repo/lab/down.sh" || true
  fi
  if ((was_up == 1)); then
    step "npm run lab:up (restore the lab that was up: ${was_nodes:-$LAB_DEFAULT_NODES} nodes)" \
      env KCP_LAB_NODES="${was_nodes:-$LAB_DEFAULT_NODES}" bash "$repo/lab/up.sh" || true
  fi
fi

test_done
