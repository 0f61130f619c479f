# shellcheck shell=bash
# Helpers of the lab tests: each check prints "PASS: name" or "FAIL: name" (what
# test/lab/run.sh counts) and the test file exits non-zero if any check failed.
TEST_FAILED=0
TEST_PASSES=0
TEST_FAILS=0

pass() {
  printf 'PASS: %s\n' "$*"
  TEST_PASSES=$((TEST_PASSES + 1))
}
fail() {
  printf 'FAIL: %s\n' "$*"
  TEST_FAILED=1
  TEST_FAILS=$((TEST_FAILS + 1))
}

# check NAME CMD...: PASS when CMD succeeds; on failure shows its output.
check() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then
    pass "$name"
  else
    fail "$name"
    [[ -z $out ]] || printf '%s\n' "$out" | sed 's/^/    /' | tail -n 15
  fi
}

# check_not NAME CMD...: PASS when CMD fails.
check_not() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then
    fail "$name"
    [[ -z $out ]] || printf '%s\n' "$out" | sed 's/^/    /' | tail -n 15
  else
    pass "$name"
  fi
}

# check_eq NAME WANT CMD...: PASS when CMD prints exactly WANT.
check_eq() {
  local name=$1 want=$2 out
  shift 2
  out=$("$@" 2>&1) || true
  if [[ $out == "$want" ]]; then
    pass "$name"
  else
    fail "$name (want '$want', got '$out')"
  fi
}

# test_done: the file's closing line, "N passed, N failed" (what .ci/run counts), and its exit status.
test_done() {
  echo "$TEST_PASSES passed, $TEST_FAILS failed"
  exit "$TEST_FAILED"
}

# require_lab_up: ends the test with one FAIL when the lab is not up (needs lab/lib.sh sourced first).
require_lab_up() {
  if ! lab_ns_exists; then
    fail "the lab is up (no network namespace $LAB_NS: run npm run lab:up first)"
    test_done
  fi
}
