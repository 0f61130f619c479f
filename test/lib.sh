# shellcheck shell=bash
# The one idiom of the bash tests (test/lab, test/engine, test/e2e). Source it, then:
#   check NAME CMD...              PASS when CMD succeeds (its output is shown only when it fails)
#   check_not NAME CMD...          PASS when CMD fails
#   check_eq NAME WANT CMD...      PASS when CMD prints exactly WANT
#   pass NAME / fail NAME [DETAIL...]   a result the test decides itself (DETAIL lines indented below)
#   wait_for WHAT SECONDS CMD...   polls CMD once a second until it succeeds; status 1 after SECONDS
#   test_log MESSAGE               a progress line on stderr
#   test_done                      the closing line "N passed, N failed" (what .ci/run counts); status 1
#                                  when anything failed: a test's last command (or `test_done; exit` to stop)
# A result is one line, "PASS: NAME" or "FAIL: NAME" (what test/lab/run.sh counts). With TEST_TAG set (e.g.
# TEST_TAG=e2e), results and progress go to stderr as "[TAG HH:MM:SS +Ns] ...", and test_done logs the time
# the whole run took: for long runs.
TEST_PASSES=0
TEST_FAILS=0
TEST_T0=$SECONDS
# Progress lines go to stderr (inside a check, to what the check captures). Not a duplicate of stderr on a
# fd of its own: every process the tests start would inherit it, and a daemon started in a test (lab:up's
# containers) would then hold the pipe of whoever reads the test's output open for ever (seen: CI's tee of
# test:lab never ended).
TEST_LOG_FD=2

# _test_out: where results go, stdout (or the log, with TEST_TAG).
_test_out() {
  if [[ -n ${TEST_TAG:-} ]]; then cat >&"$TEST_LOG_FD"; else cat; fi
}
_test_line() {
  if [[ -n ${TEST_TAG:-} ]]; then
    printf '[%s %(%H:%M:%S)T +%ss] %s\n' "$TEST_TAG" -1 "$((SECONDS - TEST_T0))" "$*" >&"$TEST_LOG_FD"
  else
    printf '%s\n' "$*"
  fi
}
# _test_details TEXT...: the lines of each TEXT (its last 40) indented under the result. A longer TEXT shows
# its first error lines (and the 4 after each) before that: a failed pulumi run ends with its outputs, and its
# error (what a CI log must say) comes before them.
_test_details() {
  local _t_d
  for _t_d in "$@"; do
    [[ -n $_t_d ]] || continue
    if (($(printf '%s\n' "$_t_d" | wc -l) > 40)); then
      { printf '%s\n' "$_t_d" | grep -m 5 -A 4 -iE '(^|[^[:alnum:]])error' || true; echo "..."; } | sed 's/^/    /' | _test_out
    fi
    printf '%s\n' "$_t_d" | tail -n 40 | sed 's/^/    /' | _test_out
  done
}

# aged_certificate NAME DAYS: a stack export (stdin, as `pulumi stack export` prints it) in which the tls
# certificate NAME ends DAYS from now (its validityEndTime), as if that much time had passed (stdout).
aged_certificate() {
  jq --arg name "::$1" --arg at "$(date -u -d "+$2 days" +%Y-%m-%dT%H:%M:%SZ)" \
    '(.deployment.resources[] | select(.urn | endswith($name)) | .outputs.validityEndTime) = $at'
}

test_log() {
  if [[ -n ${TEST_TAG:-} ]]; then _test_line "$*"; else printf '%s\n' "$*" >&"$TEST_LOG_FD"; fi
}

pass() {
  TEST_PASSES=$((TEST_PASSES + 1))
  _test_line "PASS: $1"
}
fail() {
  TEST_FAILS=$((TEST_FAILS + 1))
  _test_line "FAIL: $1"
  _test_details "${@:2}"
}

# The helpers' locals carry a _t_ prefix: bash scopes dynamically, so a local named like a variable of the
# calling test (out, name) would hide it from the command under check.
check() {
  local _t_name=$1 _t_out
  shift
  if _t_out=$("$@" 2>&1); then pass "$_t_name"; else fail "$_t_name" "$_t_out"; fi
}
check_not() {
  local _t_name=$1 _t_out
  shift
  if _t_out=$("$@" 2>&1); then fail "$_t_name" "$_t_out"; else pass "$_t_name"; fi
}
check_eq() {
  local _t_name=$1 _t_want=$2 _t_out
  shift 2
  _t_out=$("$@" 2>&1) || true
  if [[ $_t_out == "$_t_want" ]]; then pass "$_t_name"; else fail "$_t_name (want '$_t_want', got '$_t_out')"; fi
}

# holds_no_key KEYFILE FILE...: true when no FILE holds a private key's PEM or OpenSSH header, nor the second
# line of KEYFILE (a line of its base64 body: the key itself, however it is wrapped).
holds_no_key() {
  local _t_body
  _t_body=$(sed -n 2p "$1")
  shift
  [[ -n $_t_body ]] || { echo "no key body to look for" >&2; return 1; }
  ! grep -lE -- '-----BEGIN [A-Z ]*PRIVATE KEY' "$@" && ! grep -lF -- "$_t_body" "$@"
}

wait_for() {
  local _t_what=$1 _t_timeout=$2 _t_t0=$SECONDS
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS - _t_t0 < _t_timeout)) || return 1
    sleep 1
  done
  test_log "$_t_what after $((SECONDS - _t_t0))s"
}

test_done() {
  [[ -z ${TEST_TAG:-} ]] || test_log "$TEST_TAG took $((SECONDS - TEST_T0))s"
  echo "$TEST_PASSES passed, $TEST_FAILS failed"
  return $((TEST_FAILS > 0))
}
