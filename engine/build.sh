#!/usr/bin/env bash
# `npm run engine`: builds the Pulumi toolchain the program runs on and installs it the way the official
# installer lays it out:
#   $PULUMI_HOME/bin/pulumi                  the CLI: github.com/pulumi/pulumi/pkg/v3/cmd/pulumi at the
#                                            @pulumi/pulumi version of package-lock.json, from Go modules
#   $PULUMI_HOME/bin/pulumi-language-nodejs  the Node.js language host, upstream source
#   resource plugins command, tls, random    upstream source, via `pulumi plugin install resource NAME VERSION --file`
# The upstream sources are read from ../shared/upstream (KCP_UPSTREAM), unmodified; each is copied into the work
# dir, given the go.mod edits its README names (and nothing else), and built with one set of flags for all
# (BUILD_FLAGS: the language host's upstream flags, so that the builds share compiled packages), each beside
# the CLI's module in a Go workspace (cli_workspace: the modules they share with the CLI at the higher of the
# two versions, their own Pulumi SDK kept). Which
# folder holds what is in engine/versions.env; plugin versions are what the npm SDKs ask for, and the build
# stops if that is not the version of the source. Nothing is downloaded but Go modules from the module proxy.
# Idempotent: when the versions, `pulumi plugin ls` and a hash of the inputs match, it only prints the versions.
# Caches live outside the repo:
#   GOCACHE       /var/cache/kcp/go-build (override with GOCACHE or KCP_CACHE)
#   work dir      /var/cache/kcp/engine  (generated CLI module, copies of the upstream sources, binaries)
#   GOMODCACHE    go's default ($HOME/go/pkg/mod)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENGINE="$ROOT/engine"
UPSTREAM="${KCP_UPSTREAM:-$ROOT/../shared/upstream}"
# engine/versions.env is KEY=value lines; read, not sourced.
setting() { sed -n "s/^$1=//p" "$ENGINE/versions.env"; }
PULUMI_ENGINE_VERSION="${PULUMI_ENGINE_VERSION-$(setting PULUMI_ENGINE_VERSION)}"
LANGHOST_SRC="$(setting LANGHOST_SRC)"
LANGHOST_VERSION="$(setting LANGHOST_VERSION)"
declare -A PLUGIN_SRC=([command]="$(setting COMMAND_SRC)" [tls]="$(setting TLS_SRC)" [random]="$(setting RANDOM_SRC)")
# The variable each plugin's ldflags set to its version, as upstream's Makefiles do (the command provider's
# takes a leading v, the bridged providers' the plain version).
declare -A PLUGIN_VERSION_VAR=(
    [command]=github.com/pulumi/pulumi-command/provider/pkg/version.Version=v
    [tls]=github.com/pulumi/pulumi-tls/provider/v5/pkg/version.Version=
    [random]=github.com/pulumi/pulumi-random/provider/v4/pkg/version.Version=
)

CACHE="${KCP_CACHE:-/var/cache/kcp}"
WORK="$CACHE/engine"
OUT="$WORK/out"
export GOCACHE="${GOCACHE:-$CACHE/go-build}"
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
# One build configuration for all five binaries: the language host's (pure Go, no cgo; paths trimmed; the
# pure-Go os/user as upstream's CLI release asks; grpc without x/net/trace). A package compiled once is then
# a cache hit wherever another binary needs it at the same version: the std library, grpc, protobuf, the
# Pulumi SDK's shared parts (measured: 425 of 3,791 package compiles fewer on a new machine, and one std
# library instead of three). Every link strips the debug info (`-ldflags -s -w`, as upstream's releases do), so
# no compile makes it either (`-gcflags=all=-dwarf=false`: measured on a lab mirror build, 9% less time and 22%
# less build cache; see docs/engine.md).
export CGO_ENABLED=0
BUILD_FLAGS=(-trimpath "-tags=osusergo,grpcnotrace" -gcflags=all=-dwarf=false)
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

[[ -d $UPSTREAM ]] || die "no upstream sources at $UPSTREAM (set KCP_UPSTREAM to the shared/upstream folder)"
for src in "$LANGHOST_SRC" "${PLUGIN_SRC[@]}"; do
    [[ -n $src && -d $UPSTREAM/$src ]] || die "engine/versions.env names '$src', which $UPSTREAM does not hold"
done
# A plugin is stamped with the version of its source, never with another: the npm SDK must ask for exactly it.
for name in "${PLUGIN_NAMES[@]}"; do
    src_version="$(setting "${name^^}_VERSION")"
    [[ $src_version == "${PLUGIN_VERSION[$name]}" ]] || die "@pulumi/$name asks for plugin ${PLUGIN_VERSION[$name]}," \
        "but ${PLUGIN_SRC[$name]} is $src_version: pin @pulumi/$name to $src_version in package.json"
done

# Anything that changes what gets built changes this hash: the upstream sources, this script, versions.env.
source_hash() {
    {
        printf '%s\n' "$CLI_VERSION" "$(go version)"
        for name in "${PLUGIN_NAMES[@]}"; do printf '%s=%s\n' "$name" "${PLUGIN_VERSION[$name]}"; done
        (cd "$ENGINE" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
        (cd "$UPSTREAM" && find "$LANGHOST_SRC" "${PLUGIN_SRC[@]}" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
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
    [[ "$("$BIN/pulumi-language-nodejs" -version 2>/dev/null)" == "v$LANGHOST_VERSION" ]] || return 1
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

# copy_upstream SRC DEST: a fresh writable copy of an upstream folder (shared/ is read-only, and the builds
# write go.sum edits and generated files).
copy_upstream() {
    rm -rf "$2"
    mkdir -p "$(dirname "$2")"
    cp -R "$UPSTREAM/$1" "$2"
    chmod -R u+w "$2"
}

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
    && GOWORK=off go build "${BUILD_FLAGS[@]}" -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$CLI_VERSION" \
        -o "$OUT/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)

# cli_workspace NAME DIR: writes $WORK/NAME.work, a Go workspace of the CLI's module and the module in DIR, for
# DIR's build (GOWORK). A workspace's build list takes, of every module the two require, the higher version;
# the CLI's are mostly the higher (a newer Pulumi), so DIR's binary is built against the CLI's grpc, protobuf,
# golang.org/x and cloud SDKs, and every package the CLI compiled at the same version, with the same
# dependencies, is a cache hit (measured: 3,608 package compiles for the five binaries before, 2,364 after;
# docs/engine.md). DIR keeps the Pulumi SDK of its own source (pkg/v3 and sdk/v3 replaced with its go.mod's
# versions): none of the four compiles against the CLI's. engine/versions.env may name more replaces
# (<NAME>_WORK_REPLACE, space-separated old=new@version).
cli_workspace() {
    local work="$WORK/$1.work" dir=$2 mod version repl
    rm -f "$work" "$work.sum"
    GOWORK="$work" go work init "$CLI_MOD" "$dir"
    for mod in github.com/pulumi/pulumi/pkg/v3 github.com/pulumi/pulumi/sdk/v3; do
        version="$(cd "$dir" && GOWORK=off go list -m -f '{{.Version}}' "$mod")" || die "$dir does not require $mod"
        GOWORK="$work" go work edit -replace "$mod=$mod@$version"
    done
    for repl in $(setting "${1^^}_WORK_REPLACE"); do GOWORK="$work" go work edit -replace "$repl"; done
    printf '%s\n' "$work"
}

# 2. The Node.js language host. Its go.mod replaces pkg/sdk with the monorepo's own folders, which are not
# here: those two replaces give way to the published modules at the language host's own tag.
step "building pulumi-language-nodejs v$LANGHOST_VERSION from $LANGHOST_SRC"
src="$WORK/src/langhost"
copy_upstream "$LANGHOST_SRC" "$src"
(cd "$src" \
    && go mod edit -dropreplace github.com/pulumi/pulumi/pkg/v3 -dropreplace github.com/pulumi/pulumi/sdk/v3 \
        -require "github.com/pulumi/pulumi/pkg/v3@v$LANGHOST_VERSION" -require "github.com/pulumi/pulumi/sdk/v3@v$LANGHOST_VERSION" \
    && go mod tidy)
langhost_work="$(cli_workspace langhost "$src")"
(cd "$src" && GOWORK="$langhost_work" go build -mod=readonly "${BUILD_FLAGS[@]}" \
    -ldflags "-w -s -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$LANGHOST_VERSION" \
    -o "$OUT/pulumi-language-nodejs" .)

# 3. The resource plugins, each from its upstream provider/ folder. tls and random embed a schema that
# `go generate` stamps with the version; tls needs one replace (engine/versions.env, TLS_GOMOD_REPLACE).
# The generator runs with BUILD_FLAGS too (through GOFLAGS, which `go run` reads), so that what it compiles
# is the build's.
for name in "${PLUGIN_NAMES[@]}"; do
    version="${PLUGIN_VERSION[$name]}"
    step "building pulumi-resource-$name v$version from ${PLUGIN_SRC[$name]}"
    src="$WORK/src/$name"
    copy_upstream "${PLUGIN_SRC[$name]}" "$src"
    replace="$(setting "${name^^}_GOMOD_REPLACE")"
    (
        cd "$src/provider"
        # A replaced module's hashes are not in upstream's go.sum: tidy adds them (and changes nothing else).
        if [[ -n $replace ]]; then go mod edit -replace "$replace" && go mod tidy; fi
        GOWORK="$(cli_workspace "$name" "$src/provider")"
        export GOWORK
        if [[ -f cmd/pulumi-resource-$name/generate.go ]]; then
            GOFLAGS="$GOFLAGS ${BUILD_FLAGS[*]}" VERSION="$version" go generate "./cmd/pulumi-resource-$name"
        fi
        go build "${BUILD_FLAGS[@]}" -ldflags "-s -w -X ${PLUGIN_VERSION_VAR[$name]}$version" \
            -o "$OUT/pulumi-resource-$name" "./cmd/pulumi-resource-$name"
    )
done

# 4. Install.
step "installing into $PULUMI_HOME"
install -m 0755 "$OUT/pulumi" "$OUT/pulumi-language-nodejs" "$BIN/"
for name in "${PLUGIN_NAMES[@]}"; do
    "$PULUMI" plugin install resource "$name" "${PLUGIN_VERSION[$name]}" --file "$OUT/pulumi-resource-$name" --reinstall
done
printf '%s\n' "$HASH" >"$STAMP"
step "done"
print_versions
