# shellcheck shell=bash
# The environment every script that runs the real engine shares (e2e, demo, bench): the CLI and plugins
# that `npm run engine` installed, a local file backend and a passphrase secrets provider (no Pulumi
# account), no update checks (no network), diffs in parallel.
# shellcheck disable=SC2034 # used by the scripts that source this file

export PULUMI_HOME=${PULUMI_HOME:-$HOME/.pulumi}
export PATH=$PULUMI_HOME/bin:$PATH
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PULUMI_CONFIG_PASSPHRASE=${PULUMI_CONFIG_PASSPHRASE:-kubernetes-the-hard-way-lab}
# The engine diffs each step against its last state with the provider while it takes the program's next
# registrations, instead of one diff after the other in its event loop (an engine option, off by default;
# pkg/resource/deploy/step_generator.go). Measured on the lab: a no-change up 0.3-1.0 s faster in each of six
# alternating pairs, means 8.1 s against 8.6 s (README: Using it).
export PULUMI_PARALLEL_DIFF=${PULUMI_PARALLEL_DIFF:-true}
# The engine runs at most this many steps at once; its default is four per core (cmd/pulumi/operations/up.go),
# 8 here, and the emulated gateway's seven slow first steps then held seven of them while the control nodes'
# steps ran one at a time (the API servers' files 3.2 s after etcd's gate instead of 0.8 s). Three alternating
# pairs of cold ups on the lab: 39.8, 38.2, 33.4 s with 8 against 36.2, 35.2, 33.0 s with 64 (README: Using it).
export PULUMI_PARALLEL=${PULUMI_PARALLEL:-64}

# pulumi_need: fail early, with the fix, when the engine is not built.
pulumi_need() {
  command -v pulumi >/dev/null 2>&1 || {
    echo "no pulumi CLI in $PULUMI_HOME/bin: run npm run engine first" >&2
    exit 1
  }
}
