#!/usr/bin/env bash
# npm run demo: from a fresh clone to a running control plane in the local lab. Builds the engine and
# the lab (cached after the first time), then `pulumi up` of the lab stack, and prints how to reach it.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# shellcheck source=scripts/pulumi-env.sh
source scripts/pulumi-env.sh
state=/var/lib/kcp-lab/state
step() { printf '\n== %s\n' "$*" >&2; }

step "npm ci (pinned Pulumi packages)"
[[ -d node_modules/@pulumi/pulumi ]] || npm ci --no-audit --no-fund
step "npm run engine (pulumi CLI and plugins from Go modules; skipped when built)"
npm run --silent engine
step "npm run lab:up (control0..2, the gateway VM, the binary mirror)"
npm run --silent lab:up
step "pulumi up (stack lab, state in $state)"
mkdir -p "$state"
export PULUMI_BACKEND_URL="file://$state"
pulumi stack select --create lab --secrets-provider passphrase >/dev/null
lab/exec.sh pulumi up --yes --stack lab
pulumi stack output --stack lab adminKubeconfig --show-secrets >"$state/admin.kubeconfig"
chmod 0600 "$state/admin.kubeconfig"
kubectl=/var/cache/kcp/mirror/kubernetes-release/release/v1.28.3/bin/linux/amd64/kubectl
chmod +x "$kubectl"
cat <<MSG

The control plane is up behind https://kubernetes:6443 (VIP 192.168.1.21 on the gateway). Reach it with:

  lab/exec.sh $kubectl --kubeconfig $state/admin.kubeconfig get namespaces

Look around: lab/ssh.sh control0 (or gateway), then sudo ipvsadm -Ln on the gateway.
Undo: PULUMI_BACKEND_URL=file://$state PULUMI_CONFIG_PASSPHRASE=$PULUMI_CONFIG_PASSPHRASE \\
  lab/exec.sh pulumi destroy --yes --stack lab ; npm run lab:down
MSG
