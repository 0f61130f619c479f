# shellcheck shell=bash
# What every lab test sources: the lab's settings and helpers (lab/lib.sh, with $here and $repo), the
# tests' checks (test/lib.sh), and require_lab_up.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=lab/lib.sh
source "$repo/lab/lib.sh"
# shellcheck source=test/lib.sh
source "$repo/test/lib.sh"

# require_lab_up: ends the test with one FAIL when the lab is not up.
require_lab_up() {
  if ! lab_ns_exists; then
    fail "the lab is up (no network namespace $LAB_NS: run npm run lab:up first)"
    test_done
    exit
  fi
}
