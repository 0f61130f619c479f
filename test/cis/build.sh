#!/usr/bin/env bash
# Builds kube-bench v0.15.6 from the unmodified upstream source into a cache and lays our cfg overlay on
# top of upstream's cfg. Only our changes live in the repo: test/cis/cfg/ (files we add or replace) and
# test/cis/*.patch (the few upstream checks whose audit commands name kubeadm paths).
#
#   bash test/cis/build.sh [GOARCH]        # GOARCH: amd64 or arm64, default this machine's
#
# Prints the cache dir, which then holds:
#   <GOARCH>/kube-bench   the static binary, rebuilt only when the source's hash changes
#   cfg/                  upstream cfg + our overlay, re-made on every call (cheap)
# Environment: KCP_UPSTREAM (default <repo>/../shared/upstream), KCP_CACHE (default /var/cache/kcp); the Go
# build cache is $KCP_CACHE/go-build, modules come from the Go module proxy (GOMODCACHE as set).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
upstream=${KCP_UPSTREAM:-$repo/../shared/upstream}
src=$upstream/kube-bench-v0.15.6
cache=${KCP_CACHE:-/var/cache/kcp}
out=$cache/kube-bench
version=v0.15.6
[ -f "$src/main.go" ] || { echo "no kube-bench source at $src (set KCP_UPSTREAM)" >&2; exit 1; }
command -v go >/dev/null || { echo "go is required to build kube-bench" >&2; exit 1; }
arch=${1:-$(GOTOOLCHAIN=local go env GOARCH)}
case $arch in amd64 | arm64) ;; *) echo "unsupported GOARCH $arch (amd64 or arm64)" >&2; exit 2 ;; esac
mkdir -p "$out/$arch"

# The source's hash: every file's path and content, in a stable order.
hash=$(cd "$src" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
if [ -x "$out/$arch/kube-bench" ] && [ "$(cat "$out/$arch/source.sha256" 2>/dev/null)" = "$hash" ]; then
  echo "kube-bench $version ($arch): up to date" >&2
else
  echo "kube-bench $version ($arch): building from $src" >&2
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cp -a "$src/." "$work/"
  (cd "$work" && CGO_ENABLED=0 GOOS=linux GOARCH=$arch GOTOOLCHAIN=local GOFLAGS=-buildvcs=false \
    GOCACHE="$cache/go-build" go build -gcflags=all=-dwarf=false -o kube-bench \
    -ldflags "-s -w -X github.com/aquasecurity/kube-bench/cmd.KubeBenchVersion=$version" .)
  install -m 0755 "$work/kube-bench" "$out/$arch/kube-bench.new"
  mv -f "$out/$arch/kube-bench.new" "$out/$arch/kube-bench"
  printf '%s\n' "$hash" >"$out/$arch/source.sha256"
fi

# Upstream's cfg, our files on top, then our patches to upstream's checks; swapped in whole.
rm -rf "$out/cfg.new"
cp -a "$src/cfg" "$out/cfg.new"
cp -a "$repo/test/cis/cfg/." "$out/cfg.new/"
for p in "$repo"/test/cis/*.patch; do
  [ -e "$p" ] || continue
  patch -s -p1 -d "$out/cfg.new" --no-backup-if-mismatch <"$p"
done
rm -rf "$out/cfg"
mv "$out/cfg.new" "$out/cfg"
echo "$out"
