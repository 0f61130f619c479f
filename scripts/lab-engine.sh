# shellcheck shell=bash
# Sourced by the scripts that run the real program against the lab (e2e, bench), with $repo set: the lab's
# settings and helpers, the engine's environment, and a clear stop when either is missing.
: "${repo:?set repo before sourcing scripts/lab-engine.sh}"
# shellcheck source=lab/lib.sh
source "$repo/lab/lib.sh"
# shellcheck source=scripts/pulumi-env.sh
source "$repo/scripts/pulumi-env.sh"
pulumi_need
lab_ns_exists || lab_die "the lab is not up: npm run lab:up"
