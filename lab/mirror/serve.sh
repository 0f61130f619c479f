#!/usr/bin/env bash
# Serves the lab's binary mirror (built by lab/mirror/build.sh) over HTTP.
# Usage: lab/mirror/serve.sh ADDR PORT
#   ADDR  address to listen on (e.g. 127.0.0.1, or the lab bridge's address)
#   PORT  TCP port
# Env: KCP_MIRROR_DIR (default /var/cache/kcp/mirror)
# Runs in the foreground until it gets SIGINT/SIGTERM; the mirror base URL is
# http://ADDR:PORT (it replaces the scheme+host of the upstream release URLs).
set -euo pipefail

if (($# != 2)); then
  echo "usage: $0 ADDR PORT" >&2
  exit 2
fi
ADDR="$1"
PORT="$2"
MIRROR_DIR="${KCP_MIRROR_DIR:-${KCP_CACHE:-/var/cache/kcp}/mirror}"

if ! [[ "$PORT" =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65535)); then
  echo "serve.sh: bad port: $PORT" >&2
  exit 2
fi
[[ -d "$MIRROR_DIR" ]] || {
  echo "serve.sh: no mirror at $MIRROR_DIR (run lab/mirror/build.sh first)" >&2
  exit 1
}
[[ -f "$MIRROR_DIR/SHA256SUMS.json" ]] ||
  echo "serve.sh: warning: $MIRROR_DIR/SHA256SUMS.json missing (incomplete mirror?)" >&2

# exec: the server is this process, so the caller's kill $! / SIGTERM stops it.
exec python3 -u -m http.server --bind "$ADDR" --directory "$MIRROR_DIR" "$PORT"
