#!/usr/bin/env bash
# `npm run engine`: builds a pinned Pulumi toolchain from Go modules and installs it the way the official
# installer lays it out:
#   $PULUMI_HOME/bin/pulumi                  the CLI (github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
#   $PULUMI_HOME/bin/pulumi-language-nodejs  the Node.js language host (engine/langhost, ours)
#   resource plugins command, tls, random    via `pulumi plugin install resource NAME VERSION --file BINARY`
# Versions come from package-lock.json / node_modules/@pulumi/*/package.json (plugins) and
# engine/versions.env (the engine, see there why). Nothing is downloaded but Go modules from the module proxy.
# Idempotent: when `pulumi version`, the language host's -version, `pulumi plugin ls` and a hash of engine/
# already match, it only prints the versions. Caches live outside the repo:
#   GOCACHE       /var/cache/kcp/go-build (override with GOCACHE or KCP_CACHE)
#   work dir      /var/cache/kcp/engine  (generated CLI module, built binaries)
#   GOMODCACHE    go's default ($HOME/go/pkg/mod)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENGINE="$ROOT/engine"
# engine/versions.env is KEY=value lines; read, not sourced.
PULUMI_ENGINE_VERSION="${PULUMI_ENGINE_VERSION-$(sed -n 's/^PULUMI_ENGINE_VERSION=//p' "$ENGINE/versions.env")}"

CACHE="${KCP_CACHE:-/var/cache/kcp}"
WORK="$CACHE/engine"
OUT="$WORK/out"
export GOCACHE="${GOCACHE:-$CACHE/go-build}"
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
export PULUMI_HOME="${PULUMI_HOME:-$HOME/.pulumi}"
export PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
if ! command -v go >/dev/null 2>&1; then
    export PATH="/usr/local/go/bin:$PATH"
fi
BIN="$PULUMI_HOME/bin"
PULUMI="$BIN/pulumi"

log() { printf 'engine: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Version of an npm package as package-lock.json pins it.
lock_version() {
    node -e 'const l = require(process.argv[1]); const p = l.packages["node_modules/" + process.argv[2]];
        if (!p) { process.exit(1); } process.stdout.write(p.version);' "$ROOT/package-lock.json" "$1" \
        || die "$1 is not in package-lock.json"
}

# Plugin version a provider SDK asks for: its package.json "pulumi.version" once npm ci ran, else the lock.
plugin_version() {
    local pj="$ROOT/node_modules/@pulumi/$1/package.json"
    if [[ -f "$pj" ]]; then
        node -e 'const p = require(process.argv[1]); process.stdout.write((p.pulumi && p.pulumi.version) || p.version);' "$pj"
    else
        lock_version "@pulumi/$1"
    fi
}

SDK_VERSION="$(lock_version @pulumi/pulumi)"
CLI_VERSION="${PULUMI_ENGINE_VERSION:-$SDK_VERSION}"
PLUGIN_NAMES=(command tls random)
declare -A PLUGIN_VERSION=()
for name in "${PLUGIN_NAMES[@]}"; do
    PLUGIN_VERSION[$name]="$(plugin_version "$name")"
done

# Anything that changes what gets built changes this hash: our sources, go.mod/go.sum, this script.
source_hash() {
    {
        printf '%s\n' "$CLI_VERSION" "$(go version)"
        for name in "${PLUGIN_NAMES[@]}"; do printf '%s=%s\n' "$name" "${PLUGIN_VERSION[$name]}"; done
        (cd "$ENGINE" && find . -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' -o -name '*.sh' -o -name '*.env' \) \
            -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    } | sha256sum | cut -d' ' -f1
}
STAMP="$BIN/.kcp-engine-source"
HASH="$(source_hash)"

print_versions() {
    printf 'pulumi                  %s\n' "$("$PULUMI" version)"
    printf 'pulumi-language-nodejs  %s\n' "$("$BIN/pulumi-language-nodejs" -version)"
    printf '@pulumi/pulumi (npm)    %s\n' "$SDK_VERSION"
    "$PULUMI" plugin ls
}

plugins_installed() {
    local listed name
    listed="$("$PULUMI" plugin ls --json 2>/dev/null)" || return 1
    for name in "${PLUGIN_NAMES[@]}"; do
        node -e 'const l = JSON.parse(process.argv[1]);
            process.exit(l.some(p => p.name === process.argv[2] && p.kind === "resource" && p.version === process.argv[3]) ? 0 : 1);' \
            "$listed" "$name" "${PLUGIN_VERSION[$name]}" || return 1
    done
}

already_installed() {
    [[ -x "$PULUMI" && -x "$BIN/pulumi-language-nodejs" && -f "$STAMP" ]] || return 1
    [[ "$(cat "$STAMP")" == "$HASH" ]] || return 1
    [[ "$("$PULUMI" version 2>/dev/null)" == "v$CLI_VERSION" ]] || return 1
    [[ "$("$BIN/pulumi-language-nodejs" -version 2>/dev/null)" == "$CLI_VERSION" ]] || return 1
    plugins_installed
}

if already_installed; then
    log "pinned versions already installed in $PULUMI_HOME (nothing to build)"
    print_versions
    exit 0
fi

mkdir -p "$OUT" "$GOCACHE" "$BIN"
started=$SECONDS
step() { log "$1 ($((SECONDS - started))s so far)"; }

# 1. The CLI, from a throwaway module that requires the published pkg and sdk modules. Upstream's go.mod files
# replace pkg/sdk with sibling folders (which `go install module@version` refuses); a dependency's replaces are
# not inherited anyway, so only their non-local replaces are repeated here.
step "building pulumi v$CLI_VERSION"
CLI_MOD="$WORK/cli"
rm -rf "$CLI_MOD"
mkdir -p "$CLI_MOD"
cat >"$CLI_MOD/go.mod" <<GOMOD
module kcp.local/engine/cli

go $(go env GOVERSION | sed 's/^go//')

require (
	github.com/pulumi/pulumi/pkg/v3 v$CLI_VERSION
	github.com/pulumi/pulumi/sdk/v3 v$CLI_VERSION
)
GOMOD
cat >"$CLI_MOD/tools.go" <<'GOSRC'
//go:build tools

package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
GOSRC
for mod in pkg sdk; do
    upstream_mod="$(cd "$CLI_MOD" && go mod download -json "github.com/pulumi/pulumi/$mod/v3@v$CLI_VERSION" \
        | node -e 'let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
            const j = JSON.parse(s); if (j.Error) { console.error(j.Error); process.exit(1); } process.stdout.write(j.GoMod); });')" \
        || die "the Go module proxy does not serve github.com/pulumi/pulumi/$mod/v3@v$CLI_VERSION (see engine/versions.env)"
    # Versioned (non-local) replaces only: a local one has no New.Version.
    while read -r repl; do
        [[ -n "$repl" ]] && (cd "$CLI_MOD" && go mod edit -replace "$repl")
    done < <(go mod edit -json "$upstream_mod" | node -e 'let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
        for (const r of JSON.parse(s).Replace || []) {
            if (r.New.Version) { console.log(r.Old.Path + (r.Old.Version ? "@" + r.Old.Version : "") + "=" + r.New.Path + "@" + r.New.Version); }
        } });')
done
(cd "$CLI_MOD" && go mod tidy \
    && go build -trimpath -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$CLI_VERSION" \
        -o "$OUT/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)

# 2. Our Node.js language host and resource plugins (engine/*/go.mod + go.sum pin every dependency).
step "building pulumi-language-nodejs"
(cd "$ENGINE/langhost" && go build -mod=readonly -trimpath -ldflags "-s -w -X main.Version=$CLI_VERSION" \
    -o "$OUT/pulumi-language-nodejs" .)
step "building pulumi-resource-command v${PLUGIN_VERSION[command]}"
(cd "$ENGINE/command" && go build -mod=readonly -trimpath -ldflags "-s -w -X main.Version=${PLUGIN_VERSION[command]}" \
    -o "$OUT/pulumi-resource-command" ./cmd/pulumi-resource-command)
for name in tls random; do
    step "building pulumi-resource-$name v${PLUGIN_VERSION[$name]}"
    (cd "$ENGINE/providers" && go build -mod=readonly -trimpath -ldflags "-s -w -X main.Version=${PLUGIN_VERSION[$name]}" \
        -o "$OUT/pulumi-resource-$name" "./cmd/pulumi-resource-$name")
done

# 3. Install.
step "installing into $PULUMI_HOME"
install -m 0755 "$OUT/pulumi" "$OUT/pulumi-language-nodejs" "$BIN/"
for name in "${PLUGIN_NAMES[@]}"; do
    "$PULUMI" plugin install resource "$name" "${PLUGIN_VERSION[$name]}" --file "$OUT/pulumi-resource-$name" --reinstall
done
printf '%s\n' "$HASH" >"$STAMP"
step "done"
print_versions
