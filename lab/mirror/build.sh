#!/usr/bin/env bash
# Builds the lab's binary mirror from Go modules fetched through the Go module
# proxy, and lays it out like the upstream release URLs:
#
#   <mirror>/kubernetes-release/release/v<K>/bin/linux/<arch>/{kube-apiserver,
#            kube-controller-manager,kube-scheduler,kubectl}[.sha256]
#   <mirror>/etcd-io/etcd/releases/download/v<E>/etcd-v<E>-linux-<arch>.tar.gz[.sha256]
#   <mirror>/SHA256SUMS.json   {"etcd": sha, "kube-apiserver": sha, ...}
#   <mirror>/mirror.json       versions, arch, relative paths and sha256s
#
# Usage: lab/mirror/build.sh [KUBE_VERSION [ETCD_VERSION [ARCH]]]
#   defaults (or env KUBE_VERSION / ETCD_VERSION / ARCH): 1.28.3 3.5.9 amd64
# Env:
#   KCP_CACHE       cache root (default /var/cache/kcp)
#   KCP_MIRROR_DIR  mirror output (default $KCP_CACHE/mirror)
#   KCP_BUILD_DIR   throwaway build modules (default $KCP_CACHE/mirror-build)
#   GOCACHE         go build cache (default $KCP_CACHE/go-build)
#   KCP_GOTOOLCHAIN toolchain for the builds (default: GOTOOLCHAIN or "local";
#                   e.g. go1.21.13 fetches that Go from the module proxy)
#   KCP_FORCE=1     rebuild even if the mirror already holds verified artifacts
#   KCP_ONLY        "kube", "etcd" or "" (both)
#   KCP_KUBE_BINS   the Kubernetes binaries to build, space-separated (default:
#                   kube-apiserver kube-controller-manager kube-scheduler kubectl)
#
# A second run with the same versions rebuilds nothing: it only re-hashes the
# artifacts, checks them against their .sha256 files, checks the versions the
# binaries print (when ARCH is the host's), and rewrites SHA256SUMS.json.
set -euo pipefail

KUBE_VERSION="${1:-${KUBE_VERSION:-1.28.3}}"
ETCD_VERSION="${2:-${ETCD_VERSION:-3.5.9}}"
ARCH="${3:-${ARCH:-amd64}}"
KUBE_VERSION="${KUBE_VERSION#v}"
ETCD_VERSION="${ETCD_VERSION#v}"

KCP_CACHE="${KCP_CACHE:-/var/cache/kcp}"
MIRROR_DIR="${KCP_MIRROR_DIR:-$KCP_CACHE/mirror}"
BUILD_DIR="${KCP_BUILD_DIR:-$KCP_CACHE/mirror-build}"
export GOCACHE="${GOCACHE:-$KCP_CACHE/go-build}"
export GOTOOLCHAIN="${KCP_GOTOOLCHAIN:-${GOTOOLCHAIN:-local}}"
export GOFLAGS="-buildvcs=false"
# The links strip the debug info (-s -w, as Kubernetes' and etcd's releases do), so the compiles make none
# (what that saves: docs/mirror.md).
BUILD_FLAGS=(-trimpath -gcflags=all=-dwarf=false)
# Kubernetes is built without its in-tree cloud providers (the `providerless` tag, as Kubernetes' own
# `make GOFLAGS=-tags=providerless` does): the lab runs none, and the AWS, Azure, GCE and vSphere SDKs are a
# fifth of the compile and a third of kube-apiserver's size (measured: docs/mirror.md). A binary's build info
# (`go version -m`) names its tags: one built with others is rebuilt, not reused.
KUBE_TAGS=providerless
KCP_FORCE="${KCP_FORCE:-0}"
KCP_ONLY="${KCP_ONLY:-}"

ALL_KUBE_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
read -r -a KUBE_BINS <<<"${KCP_KUBE_BINS:-${ALL_KUBE_BINS[*]}}"
KUBE_REL="kubernetes-release/release/v${KUBE_VERSION}/bin/linux/${ARCH}"
ETCD_NAME="etcd-v${ETCD_VERSION}-linux-${ARCH}"
ETCD_REL="etcd-io/etcd/releases/download/v${ETCD_VERSION}/${ETCD_NAME}.tar.gz"

log() { printf '[mirror %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for tool in go python3 sha256sum tar gzip; do
  command -v "$tool" >/dev/null 2>&1 || die "missing tool: $tool"
done
[[ "$KUBE_VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "bad kube version: $KUBE_VERSION"
[[ "$ETCD_VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "bad etcd version: $ETCD_VERSION"
[[ "$ARCH" =~ ^[a-z0-9]+$ ]] || die "bad arch: $ARCH"
for b in "${KUBE_BINS[@]}"; do
  [[ " ${ALL_KUBE_BINS[*]} " == *" $b "* ]] || die "KCP_KUBE_BINS: no such binary: $b (known: ${ALL_KUBE_BINS[*]})"
done
((${#KUBE_BINS[@]} > 0)) || die "KCP_KUBE_BINS names no binary"
HOST_ARCH="$(go env GOHOSTARCH)"

mkdir -p "$MIRROR_DIR" "$BUILD_DIR" "$GOCACHE"

# json_field FILE KEY.PATH -> value ("" when missing)
json_field() {
  python3 - "$1" "$2" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("" if v is None else v)
PY
}

# module_info MODULE@VERSION -> path of the .info file of that version
module_info() {
  local out
  out="$(cd "$BUILD_DIR" && go mod download -json "$1")" || die "go mod download $1 failed"
  printf '%s\n' "$out" >"$BUILD_DIR/.dl.json"
  json_field "$BUILD_DIR/.dl.json" Info
}

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# publish SRC REL MODE: copy SRC to MIRROR_DIR/REL atomically, write REL.sha256
publish() {
  local src="$1" rel="$2" mode="$3" dst sum
  dst="$MIRROR_DIR/$rel"
  mkdir -p "$(dirname "$dst")"
  cp "$src" "$dst.tmp.$$"
  chmod "$mode" "$dst.tmp.$$"
  sum="$(sha_of "$dst.tmp.$$")"
  mv -f "$dst.tmp.$$" "$dst"
  printf '%s\n' "$sum" >"$dst.sha256.tmp.$$"
  mv -f "$dst.sha256.tmp.$$" "$dst.sha256"
  log "published $rel ($sum)"
}

# artifact_ok REL: the artifact and its .sha256 exist and match
artifact_ok() {
  local f="$MIRROR_DIR/$1"
  [[ -f "$f" && -f "$f.sha256" ]] || return 1
  [[ "$(sha_of "$f")" == "$(tr -d '[:space:]' <"$f.sha256")" ]]
}

# check_version BINARY EXPECTED ARGS...: BINARY ARGS prints EXPECTED
check_version() {
  local bin="$1" want="$2" out
  shift 2
  [[ "$ARCH" == "$HOST_ARCH" ]] || return 0
  out="$("$bin" "$@" 2>&1)" || die "$bin $* failed: $out"
  [[ "$out" == *"$want"* ]] || die "$bin $* printed '$out', want '$want'"
}

# tidy_module DIR WHAT: makes DIR/go.mod from DIR/go.mod.want and tidies it, only when go.mod.want changed since
# the last tidy (or go.sum is missing): a tidy of Kubernetes' module graph takes minutes.
tidy_module() {
  local dir=$1 what=$2
  if ! cmp -s "$dir/go.mod.want" "$dir/go.mod.src" 2>/dev/null || [[ ! -f "$dir/go.sum" ]]; then
    cp "$dir/go.mod.want" "$dir/go.mod"
    cp "$dir/go.mod.want" "$dir/go.mod.src"
    rm -f "$dir/go.sum"
    log "go mod tidy ($what)"
    (cd "$dir" && go mod tidy) || die "go mod tidy failed in $dir"
  fi
}

# ---------------------------------------------------------------- kubernetes
# kube_tags_ok BINARY: BINARY was built with exactly KUBE_TAGS
kube_tags_ok() {
  go version -m "$1" 2>/dev/null | grep -qxF "$(printf '\tbuild\t-tags=%s' "$KUBE_TAGS")"
}

kube_cached() {
  local b
  for b in "${KUBE_BINS[@]}"; do
    artifact_ok "$KUBE_REL/$b" && kube_tags_ok "$MIRROR_DIR/$KUBE_REL/$b" || return 1
  done
}

build_kube() {
  local dir="$BUILD_DIR/kubernetes-v${KUBE_VERSION}" info commit btime major minor
  local staging_ver="v0.${KUBE_VERSION#*.}" m ldflags=() k v t0
  t0=$SECONDS
  log "kubernetes v${KUBE_VERSION} linux/${ARCH}: preparing throwaway module in $dir"
  mkdir -p "$dir"
  info="$(module_info "k8s.io/kubernetes@v${KUBE_VERSION}")"
  commit="$(json_field "$info" Origin.Hash)"
  btime="$(json_field "$info" Time)"
  major="${KUBE_VERSION%%.*}"
  minor="${KUBE_VERSION#*.}"; minor="${minor%%.*}"
  local kmod
  kmod="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/v${KUBE_VERSION}.mod"
  [[ -f "$kmod" ]] || die "missing $kmod"
  # Every staging module that k8s.io/kubernetes replaces with ./staging/...
  local staging=()
  mapfile -t staging < <(awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "$kmod" | sort -u)
  ((${#staging[@]} > 0)) || die "no staging replaces found in $kmod"
  {
    echo "module kcp.invalid/mirror/kubernetes"
    echo
    echo "go 1.20"
    echo
    echo "require k8s.io/kubernetes v${KUBE_VERSION}"
    echo
    echo "replace ("
    for m in "${staging[@]}"; do echo "	$m => $m $staging_ver"; done
    echo ")"
  } >"$dir/go.mod.want"
  {
    echo "//go:build tools"
    echo
    echo "package tools"
    echo
    echo "import ("
    for m in "${KUBE_BINS[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$m\""; done
    echo ")"
  } >"$dir/tools.go"
  tidy_module "$dir" "${#staging[@]} staging modules pinned to $staging_ver"
  ldflags=(-s -w)
  for k in buildDate gitCommit gitTreeState gitVersion gitMajor gitMinor; do
    case "$k" in
      buildDate) v="$btime" ;;
      gitCommit) v="$commit" ;;
      gitTreeState) v="clean" ;;
      gitVersion) v="v${KUBE_VERSION}" ;;
      gitMajor) v="$major" ;;
      gitMinor) v="$minor" ;;
    esac
    [[ -n "$v" ]] || continue
    ldflags+=("-X=k8s.io/client-go/pkg/version.$k=$v" "-X=k8s.io/component-base/version.$k=$v")
  done
  log "go build -tags=$KUBE_TAGS (GOTOOLCHAIN=$GOTOOLCHAIN, $(go env GOVERSION)) ${KUBE_BINS[*]}"
  rm -rf "$dir/out" && mkdir -p "$dir/out"
  local pkgs=()
  for m in "${KUBE_BINS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$m"); done
  (cd "$dir" && CGO_ENABLED=0 GOOS=linux GOARCH="$ARCH" \
    go build "${BUILD_FLAGS[@]}" -tags="$KUBE_TAGS" -ldflags="${ldflags[*]}" -o "$dir/out/" "${pkgs[@]}") ||
    die "kubernetes build failed (try KCP_GOTOOLCHAIN=go1.21.13)"
  for m in "${KUBE_BINS[@]}"; do publish "$dir/out/$m" "$KUBE_REL/$m" 0755; done
  rm -rf "$dir/out" # the mirror holds the only copy
  log "kubernetes built in $((SECONDS - t0))s"
}

verify_kube() {
  local b f
  for b in "${KUBE_BINS[@]}"; do
    f="$MIRROR_DIR/$KUBE_REL/$b"
    artifact_ok "$KUBE_REL/$b" || die "$KUBE_REL/$b does not match its .sha256"
    kube_tags_ok "$f" || die "$KUBE_REL/$b was not built with -tags=$KUBE_TAGS"
    if [[ "$b" == kubectl ]]; then
      check_version "$f" "v${KUBE_VERSION}" version --client
    else
      check_version "$f" "Kubernetes v${KUBE_VERSION}" --version
    fi
  done
  log "verified kubernetes v${KUBE_VERSION} (${KUBE_BINS[*]})"
}

# ---------------------------------------------------------------------- etcd
build_etcd() {
  local dir="$BUILD_DIR/etcd-v${ETCD_VERSION}" info sha m t0 mtime
  t0=$SECONDS
  local minor patch client_v2
  minor="${ETCD_VERSION#*.}"; minor="${minor%%.*}"
  patch="${ETCD_VERSION##*.}"
  # etcd's sibling modules are all published at v<E>, except client/v2, which
  # is published as v2.30<minor>.<patch> (3.5.9 -> v2.305.9).
  client_v2="v2.30${minor}.${patch}"
  local mods=(api/v3 client/pkg/v3 client/v3 pkg/v3 raft/v3 server/v3 etcdctl/v3 etcdutl/v3)
  log "etcd v${ETCD_VERSION} linux/${ARCH}: preparing throwaway module in $dir"
  mkdir -p "$dir"
  info="$(module_info "go.etcd.io/etcd/server/v3@v${ETCD_VERSION}")"
  sha="$(json_field "$info" Origin.Hash)"
  mtime="$(json_field "$info" Time)"
  {
    echo "module kcp.invalid/mirror/etcd"
    echo
    echo "go 1.19"
    echo
    echo "require ("
    for m in "${mods[@]}"; do echo "	go.etcd.io/etcd/$m v${ETCD_VERSION}"; done
    echo "	go.etcd.io/etcd/client/v2 $client_v2"
    echo ")"
    echo
    echo "replace ("
    for m in "${mods[@]}"; do echo "	go.etcd.io/etcd/$m => go.etcd.io/etcd/$m v${ETCD_VERSION}"; done
    echo "	go.etcd.io/etcd/client/v2 => go.etcd.io/etcd/client/v2 $client_v2"
    echo ")"
  } >"$dir/go.mod.want"
  cat >"$dir/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/etcdutl/v3"
	_ "go.etcd.io/etcd/server/v3"
)
GO
  tidy_module "$dir" "etcd modules pinned to v${ETCD_VERSION}, client/v2 $client_v2"
  local ldflags=(-s -w)
  [[ -n "$sha" ]] && ldflags+=("-X=go.etcd.io/etcd/api/v3/version.GitSHA=${sha:0:9}")
  log "go build (GOTOOLCHAIN=$GOTOOLCHAIN, $(go env GOVERSION)) etcd etcdctl etcdutl"
  rm -rf "$dir/out" && mkdir -p "$dir/out/$ETCD_NAME"
  (cd "$dir" && CGO_ENABLED=0 GOOS=linux GOARCH="$ARCH" \
    go build "${BUILD_FLAGS[@]}" -ldflags="${ldflags[*]}" -o "$dir/out/bin/" \
    go.etcd.io/etcd/server/v3 go.etcd.io/etcd/etcdctl/v3 go.etcd.io/etcd/etcdutl/v3) ||
    die "etcd build failed (try KCP_GOTOOLCHAIN=go1.21.13)"
  # go build names each binary after the last path element that is not a
  # major-version suffix: server, etcdctl, etcdutl.
  mv "$dir/out/bin/server" "$dir/out/$ETCD_NAME/etcd"
  mv "$dir/out/bin/etcdctl" "$dir/out/bin/etcdutl" "$dir/out/$ETCD_NAME/"
  # Reproducible tarball: fixed order, owner and mtime; gzip without a name/time.
  (cd "$dir/out" && tar --sort=name --owner=0 --group=0 --numeric-owner \
    --mtime="${mtime:-2000-01-01T00:00:00Z}" -cf - "$ETCD_NAME" | gzip -n -9 >"$ETCD_NAME.tar.gz")
  publish "$dir/out/$ETCD_NAME.tar.gz" "$ETCD_REL" 0644
  rm -rf "$dir/out" # the mirror holds the only copy
  log "etcd built in $((SECONDS - t0))s"
}

verify_etcd() {
  artifact_ok "$ETCD_REL" || die "$ETCD_REL does not match its .sha256"
  local tmp
  tmp="$(mktemp -d)"
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" RETURN
  tar -xzf "$MIRROR_DIR/$ETCD_REL" -C "$tmp"
  for b in etcd etcdctl etcdutl; do
    [[ -x "$tmp/$ETCD_NAME/$b" ]] || die "$ETCD_REL lacks $ETCD_NAME/$b"
  done
  check_version "$tmp/$ETCD_NAME/etcd" "etcd Version: ${ETCD_VERSION}" --version
  check_version "$tmp/$ETCD_NAME/etcdctl" "etcdctl version: ${ETCD_VERSION}" version
  check_version "$tmp/$ETCD_NAME/etcdutl" "etcdutl version: ${ETCD_VERSION}" version
  log "verified etcd v${ETCD_VERSION} (etcd etcdctl etcdutl)"
}

# -------------------------------------------------------------------- index
write_index() {
  python3 - "$MIRROR_DIR" "$KUBE_VERSION" "$ETCD_VERSION" "$ARCH" "$KUBE_REL" "$ETCD_REL" "${KUBE_BINS[@]}" <<'PY'
import json, os, sys
mirror, kv, ev, arch, kube_rel, etcd_rel, *bins = sys.argv[1:]
arts = {"etcd": etcd_rel}
arts.update({b: f"{kube_rel}/{b}" for b in bins})
sums, full = {}, {}
for name, rel in sorted(arts.items()):
    p = os.path.join(mirror, rel + ".sha256")
    if not os.path.exists(p):
        continue
    sums[name] = open(p).read().strip()
    full[name] = {"path": rel, "sha256": sums[name]}
def write(name, obj):
    tmp = os.path.join(mirror, name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, os.path.join(mirror, name))
write("SHA256SUMS.json", sums)
write("mirror.json", {"kubernetesVersion": kv, "etcdVersion": ev, "arch": arch, "artifacts": full})
PY
  log "wrote $MIRROR_DIR/SHA256SUMS.json and mirror.json"
}

# --------------------------------------------------------------------- main
T0=$SECONDS
log "mirror=$MIRROR_DIR kubernetes=v$KUBE_VERSION etcd=v$ETCD_VERSION arch=$ARCH GOCACHE=$GOCACHE"
if [[ "$KCP_ONLY" != kube ]]; then
  if [[ "$KCP_FORCE" == 1 ]] || ! artifact_ok "$ETCD_REL"; then build_etcd; else log "etcd v$ETCD_VERSION cached"; fi
  verify_etcd
fi
if [[ "$KCP_ONLY" != etcd ]]; then
  if [[ "$KCP_FORCE" == 1 ]] || ! kube_cached; then build_kube; else log "kubernetes v$KUBE_VERSION cached"; fi
  verify_kube
fi
write_index
log "done in $((SECONDS - T0))s; mirror uses $(du -sh "$MIRROR_DIR" | cut -f1)"
