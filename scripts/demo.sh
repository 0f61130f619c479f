#!/usr/bin/env bash
# npm run demo: from a fresh clone to a running control plane in the local lab. Builds the engine and
# the lab (cached after the first time), then `pulumi up` of the lab stack, and prints how to reach it.
# The stack's state lives in the lab's runtime dir, so it lives exactly as long as the lab: lab:down
# removes both, and a demo on a new lab never starts from a stale state.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
T0=$SECONDS
step() { printf '\n== [+%ss] %s\n' "$((SECONDS - T0))" "$*" >&2; }

step "npm ci (pinned Pulumi packages)"
[[ -d node_modules/@pulumi/pulumi ]] || npm ci --no-audit --no-fund
step "npm run engine (pulumi CLI and plugins from Go modules; skipped when built)"
npm run --silent engine
step "npm run lab:up (control0..2, the gateway VM, the binary mirror)"
npm run --silent lab:up
# shellcheck source=scripts/lab-engine.sh
source scripts/lab-engine.sh
state=$LAB_RUN/demo-state
step "pulumi up (stack lab, state in $state)"
mkdir -p "$state"
export PULUMI_BACKEND_URL="file://$state"
pulumi stack select --create lab --secrets-provider passphrase >/dev/null
lab/exec.sh pulumi up --yes --stack lab
pulumi stack output --stack lab adminKubeconfig --show-secrets >"$state/admin.kubeconfig"
chmod 0600 "$state/admin.kubeconfig"
kubectl=$(lab_kubectl)
step "done in $((SECONDS - T0))s"
cat <<MSG

The control plane is up behind https://kubernetes:6443 (VIP $LAB_VIP on the gateway). Reach it with:

  lab/exec.sh $kubectl --kubeconfig $state/admin.kubeconfig get namespaces

Look around: lab/ssh.sh control0 (or gateway), then sudo ipvsadm -Ln on the gateway.
Undo: PULUMI_BACKEND_URL=file://$state PULUMI_CONFIG_PASSPHRASE=$PULUMI_CONFIG_PASSPHRASE \\
  lab/exec.sh pulumi destroy --yes --stack lab ; npm run lab:down
MSG
