#!/usr/bin/env bash
# scripts/forget-node.sh NODE [PULUMI ARGS...]: a control node that is gone for good (a dead machine) leaves the
# stack's state without anything reaching it: every resource of NODE (its etcd member, API server, controller
# manager, scheduler, VIP and ARP steps, by their names `<component>-NODE[-<step>]`) is dropped from the state,
# and every other resource's dependencies on them with it, through `pulumi stack export` and `pulumi stack
# import` (a backup of the state is kept beside it). Nothing on any host changes. Then drop NODE from
# `control-plane:nodes` (and add its replacement) and run `pulumi up`: the other members remove its etcd member
# (README: "Replacing a dead control node"). PULUMI ARGS go to every pulumi command (e.g. --stack dev).
set -euo pipefail
(($# >= 1)) || { echo "usage: $0 NODE [PULUMI ARGS...]" >&2; exit 2; }
node_name=$1
shift
[[ $node_name =~ ^[a-z0-9]([a-z0-9-]*[a-z0-9])?$ ]] || { echo "$0: '$node_name' is not a host name" >&2; exit 2; }
command -v pulumi >/dev/null || { echo "$0: no pulumi CLI in PATH" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "exporting the state (pulumi stack export $*)"
pulumi stack export "$@" --file "$work/state.json"
backup="forget-node-$node_name-$(date -u +%Y%m%dT%H%M%SZ).state.json"
(umask 077 && cp "$work/state.json" "$work/$backup")

# Which resources are NODE's: the last part of the URN names the resource; NODE's are `<component>-NODE` and
# their steps `<component>-NODE-<step>`, never a longer name that merely starts with NODE.
node - "$node_name" "$work/state.json" "$work/forgotten.json" <<'EOF'
const fs = require("fs");
const [node, input, output] = process.argv.slice(2);
const state = JSON.parse(fs.readFileSync(input, "utf8"));
const resources = state.deployment.resources ?? [];
const escaped = node.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const mine = new RegExp(`-${escaped}(-[a-z0-9-]+)?$`);
const name = urn => urn.slice(urn.lastIndexOf("::") + 2);
const gone = new Set(resources.filter(r => mine.test(name(r.urn))).map(r => r.urn));
if (gone.size === 0) {
    console.error(`no resource of ${node} in the state: nothing to forget`);
    process.exit(3);
}
const kept = resources.filter(r => !gone.has(r.urn)).map(r => {
    const out = { ...r };
    if (out.dependencies) out.dependencies = out.dependencies.filter(u => !gone.has(u));
    if (out.propertyDependencies) {
        out.propertyDependencies = Object.fromEntries(Object.entries(out.propertyDependencies)
            .map(([k, us]) => [k, us.filter(u => !gone.has(u))]));
    }
    if (out.deletedWith && gone.has(out.deletedWith)) delete out.deletedWith;
    if (out.parent && gone.has(out.parent)) throw new Error(`${out.urn} is a child of a resource of ${node}`);
    return out;
});
state.deployment.resources = kept;
fs.writeFileSync(output, JSON.stringify(state, null, 2));
console.log(`forgetting ${gone.size} resources of ${node}:`);
for (const urn of gone) console.log(`  ${name(urn)}`);
EOF
pulumi stack import "$@" --file "$work/forgotten.json"
mkdir -p .pulumi-forgotten
mv "$work/$backup" ".pulumi-forgotten/$backup"
echo "$node_name is forgotten; the state before is in .pulumi-forgotten/$backup (it holds secrets encrypted, as the state does)"
echo "next: drop $node_name from control-plane:nodes, and pulumi up"
