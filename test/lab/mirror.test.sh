#!/usr/bin/env bash
# Tests the lab's binary mirror: serves it with lab/mirror/serve.sh on
# 127.0.0.1 and a free port, fetches every artifact with curl, checks it
# against its .sha256 file and SHA256SUMS.json, and checks that each binary
# prints the configured version. Needs a built mirror (lab/mirror/build.sh).
# Env: KUBE_VERSION (1.28.3), ETCD_VERSION (3.5.9), ARCH (amd64),
#      KCP_MIRROR_DIR (/var/cache/kcp/mirror)
# Prints "PASS: ..." / "FAIL: ..." lines (as test/lab/run.sh counts them) and a
# final line "N passed, N failed"; exits non-zero on any failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KUBE_VERSION="${KUBE_VERSION:-1.28.3}"; KUBE_VERSION="${KUBE_VERSION#v}"
ETCD_VERSION="${ETCD_VERSION:-3.5.9}"; ETCD_VERSION="${ETCD_VERSION#v}"
ARCH="${ARCH:-amd64}"
export KCP_MIRROR_DIR="${KCP_MIRROR_DIR:-${KCP_CACHE:-/var/cache/kcp}/mirror}"

KUBE_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
KUBE_REL="kubernetes-release/release/v${KUBE_VERSION}/bin/linux/${ARCH}"
ETCD_NAME="etcd-v${ETCD_VERSION}-linux-${ARCH}"
ETCD_REL="etcd-io/etcd/releases/download/v${ETCD_VERSION}/${ETCD_NAME}.tar.gz"

# shellcheck source=test/lib.sh
source "$ROOT/test/lib.sh"

WORK="$(mktemp -d)"
SERVER_PID=""
ETCD_PID=""
APISERVER_PID=""
ETCD_CLIENT_PORT=""
stop_pid() {
  if [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; then
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
  fi
}
cleanup() {
  stop_pid "$APISERVER_PID"
  stop_pid "$ETCD_PID"
  stop_pid "$SERVER_PID"
  rm -rf "$WORK"
}
trap cleanup EXIT

for tool in curl python3 sha256sum tar; do
  command -v "$tool" >/dev/null || { fail "tool $tool missing"; test_done; exit; }
done

# --- serve.sh argument handling ---------------------------------------------
rc=0; bash "$ROOT/lab/mirror/serve.sh" >/dev/null 2>&1 || rc=$?
if ((rc == 2)); then pass "serve.sh without arguments exits 2"; else fail "serve.sh without arguments exited $rc"; fi
rc=0; bash "$ROOT/lab/mirror/serve.sh" 127.0.0.1 notaport >/dev/null 2>&1 || rc=$?
if ((rc == 2)); then pass "serve.sh rejects a bad port"; else fail "serve.sh with a bad port exited $rc"; fi

if [[ ! -f "$KCP_MIRROR_DIR/SHA256SUMS.json" ]]; then
  fail "no mirror at $KCP_MIRROR_DIR (run: bash lab/mirror/build.sh)"
  test_done; exit
fi

# --- start the server -------------------------------------------------------
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:${PORT}"
bash "$ROOT/lab/mirror/serve.sh" 127.0.0.1 "$PORT" >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
up=0
for _ in $(seq 1 100); do
  if curl -fsS -o /dev/null "$BASE/SHA256SUMS.json" 2>/dev/null; then up=1; break; fi
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.1
done
if ((up)); then pass "serve.sh serves on $BASE"; else
  fail "serve.sh did not come up on $BASE: $(cat "$WORK/serve.log")"; test_done; exit
fi

curl -fsS -o "$WORK/SHA256SUMS.json" "$BASE/SHA256SUMS.json"
# sums_get NAME: sha256 of NAME in SHA256SUMS.json ("" if absent)
sums_get() {
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' "$WORK/SHA256SUMS.json" "$1"
}
keys="$(python3 -c 'import json,sys; print(" ".join(sorted(json.load(open(sys.argv[1])))))' "$WORK/SHA256SUMS.json")"
if [[ "$keys" == "etcd kube-apiserver kube-controller-manager kube-scheduler kubectl" ]]; then
  pass "SHA256SUMS.json names exactly etcd and the four kube binaries"
else
  fail "SHA256SUMS.json keys are '$keys'"
fi

code="$(curl -s -o /dev/null -w '%{http_code}' "$BASE/no/such/artifact")"
if [[ "$code" == 404 ]]; then pass "missing path answers 404"; else fail "missing path answered $code"; fi

# fetch_check NAME REL: download REL and its .sha256, compare with SHA256SUMS.json
fetch_check() {
  local name="$1" rel="$2" out="$WORK/dl-$1" got want listed
  if ! curl -fsS -o "$out" "$BASE/$rel"; then fail "$name: GET /$rel"; return 1; fi
  if ! want="$(curl -fsS "$BASE/$rel.sha256")"; then fail "$name: GET /$rel.sha256"; return 1; fi
  want="$(printf '%s' "$want" | tr -d '[:space:]')"
  got="$(sha256sum "$out" | cut -d' ' -f1)"
  listed="$(sums_get "$name")"
  if [[ ! "$want" =~ ^[0-9a-f]{64}$ ]]; then fail "$name: .sha256 is not a bare hex sha256: '$want'"; return 1; fi
  if [[ "$got" == "$want" ]]; then pass "$name: fetched /$rel matches its .sha256"; else
    fail "$name: sha256 $got != .sha256 $want"; return 1
  fi
  if [[ "$got" == "$listed" ]]; then pass "$name: matches SHA256SUMS.json"; else
    fail "$name: sha256 $got != SHA256SUMS.json '$listed'"; return 1
  fi
}

# expect_output DESC WANT CMD...: CMD succeeds and its output contains WANT
expect_output() {
  local desc="$1" want="$2" out rc=0
  shift 2
  out="$("$@" 2>&1)" || rc=$?
  if ((rc == 0)) && [[ "$out" == *"$want"* ]]; then pass "$desc: '$want'"; else
    fail "$desc: want '$want', exit $rc, got: $(printf '%s' "$out" | head -5)"
  fi
}

HOST_ARCH="$(uname -m)"; [[ "$HOST_ARCH" == x86_64 ]] && HOST_ARCH=amd64
[[ "$HOST_ARCH" == aarch64 ]] && HOST_ARCH=arm64

# --- kubernetes binaries ----------------------------------------------------
for b in "${KUBE_BINS[@]}"; do
  fetch_check "$b" "$KUBE_REL/$b" || continue
  chmod +x "$WORK/dl-$b"
  # Built without the in-tree cloud providers (lab/mirror/build.sh): the build info names the tag.
  if go version -m "$WORK/dl-$b" 2>/dev/null | grep -qxF "$(printf '\tbuild\t-tags=providerless')"; then
    pass "$b: built with -tags=providerless (go version -m)"
  else
    fail "$b: its build info does not name -tags=providerless"
  fi
  if [[ "$ARCH" != "$HOST_ARCH" ]]; then continue; fi
  if [[ "$b" == kubectl ]]; then
    expect_output "kubectl version --client" "Client Version: v${KUBE_VERSION}" "$WORK/dl-$b" version --client
  else
    expect_output "$b --version" "Kubernetes v${KUBE_VERSION}" "$WORK/dl-$b" --version
    out="$("$WORK/dl-$b" --version 2>&1 || true)"
    if [[ "$out" == "Kubernetes v${KUBE_VERSION}" ]]; then pass "$b --version prints exactly 'Kubernetes v${KUBE_VERSION}'"; else
      fail "$b --version printed '$out'"
    fi
  fi
done
if [[ "$ARCH" == "$HOST_ARCH" && -x "$WORK/dl-kubectl" ]]; then
  out="$("$WORK/dl-kubectl" version --client -o json 2>&1 || true)"
  if python3 - "$KUBE_VERSION" "$out" <<'PY'
import json, sys
want = sys.argv[1]
v = json.loads(sys.argv[2])["clientVersion"]
major, minor = want.split(".")[:2]
assert v["gitVersion"] == "v" + want, v
assert v["major"] == major and v["minor"] == minor, v
assert len(v["gitCommit"]) == 40 and v["gitTreeState"] == "clean", v
assert v["platform"] == "linux/amd64" or v["platform"].startswith("linux/"), v
PY
  then pass "kubectl version info: gitVersion/major/minor/gitCommit/gitTreeState set"; else
    fail "kubectl version --client -o json: $out"
  fi
fi

# free_ports N: N distinct free TCP ports on 127.0.0.1
free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# etcd_smoke DIR: start DIR/etcd on loopback, put and get a key with DIR/etcdctl;
# etcd keeps running (ETCD_PID, ETCD_CLIENT_PORT) for apiserver_smoke.
etcd_smoke() {
  local dir="$1" cport pport pid ok=0 out
  read -r cport pport < <(free_ports 2)
  "$dir/etcd" --name smoke --data-dir "$WORK/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
    --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "smoke=http://127.0.0.1:$pport" >"$WORK/etcd.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    if "$dir/etcdctl" --endpoints "127.0.0.1:$cport" --dial-timeout 1s endpoint health >/dev/null 2>&1; then ok=1; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if ((ok)) && "$dir/etcdctl" --endpoints "127.0.0.1:$cport" put kcp-mirror smoke >/dev/null 2>&1 &&
    out="$("$dir/etcdctl" --endpoints "127.0.0.1:$cport" get --print-value-only kcp-mirror 2>&1)" &&
    [[ "$out" == smoke ]]; then
    pass "etcd serves on loopback; etcdctl put/get round-trips"
    ETCD_PID=$pid
    ETCD_CLIENT_PORT=$cport
  else
    fail "etcd smoke test: $(tail -5 "$WORK/etcd.log")"
    stop_pid "$pid"
  fi
}

# apiserver_smoke: start the fetched kube-apiserver on loopback against the
# smoke etcd (self-signed serving cert, AlwaysAllow), then use the fetched
# kubectl to read its version and create and list a namespace.
apiserver_smoke() {
  local sport ok=0 out k
  if [[ -z "$ETCD_CLIENT_PORT" || ! -x "$WORK/dl-kube-apiserver" || ! -x "$WORK/dl-kubectl" ]]; then
    fail "kube-apiserver smoke test: not run (no etcd or binaries)"
    return
  fi
  if ! command -v openssl >/dev/null; then
    echo "# skipping the kube-apiserver smoke test: no openssl"
    return
  fi
  read -r sport < <(free_ports 1)
  openssl genrsa -out "$WORK/sa.key" 2048 2>/dev/null
  # AlwaysAllow turns anonymous requests off: authenticate with a static token.
  echo 'kcp-mirror-smoke-token,smoke,smoke,"system:masters"' >"$WORK/tokens.csv"
  "$WORK/dl-kube-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$sport" \
    --endpoint-reconciler-type none --cert-dir "$WORK/apiserver-certs" \
    --authorization-mode AlwaysAllow --token-auth-file "$WORK/tokens.csv" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$WORK/sa.key" --service-account-signing-key-file "$WORK/sa.key" \
    --service-cluster-ip-range 10.32.0.0/24 </dev/null >"$WORK/apiserver.log" 2>&1 &
  APISERVER_PID=$!
  k=("$WORK/dl-kubectl" --server "https://127.0.0.1:$sport" --insecure-skip-tls-verify
    --token kcp-mirror-smoke-token --request-timeout 5s)
  for _ in $(seq 1 180); do
    if curl -skf --max-time 2 -H 'Authorization: Bearer kcp-mirror-smoke-token' \
      "https://127.0.0.1:$sport/readyz" >/dev/null 2>&1; then ok=1; break; fi
    kill -0 "$APISERVER_PID" 2>/dev/null || break
    sleep 0.5
  done
  if ((ok)); then pass "kube-apiserver serves /readyz on loopback against etcd"; else
    fail "kube-apiserver did not get ready: $(tail -5 "$WORK/apiserver.log")"
    stop_pid "$APISERVER_PID"; APISERVER_PID=""
    return
  fi
  out="$("${k[@]}" version -o json </dev/null 2>&1 || true)"
  if [[ "$out" == *'"gitVersion": "v'"$KUBE_VERSION"'"'*'"gitVersion": "v'"$KUBE_VERSION"'"'* ]]; then
    pass "kubectl version: client and server are v$KUBE_VERSION"
  else
    fail "kubectl version: $out"
  fi
  if out="$("${k[@]}" create namespace kcp-mirror-smoke </dev/null 2>&1)" &&
    out="$("${k[@]}" get namespace kcp-mirror-smoke -o 'jsonpath={.metadata.name}' </dev/null 2>&1)" &&
    [[ "$out" == kcp-mirror-smoke ]]; then
    pass "kubectl creates and reads a namespace through kube-apiserver and etcd"
  else
    fail "kubectl create/get namespace: $out"
  fi
  stop_pid "$APISERVER_PID"; APISERVER_PID=""
}

# --- etcd tarball -----------------------------------------------------------
if fetch_check etcd "$ETCD_REL"; then
  mkdir -p "$WORK/etcd"
  listing="$(tar -tzf "$WORK/dl-etcd" | sort | tr '\n' ' ')"
  case "$listing" in
    *"$ETCD_NAME/etcd "*"$ETCD_NAME/etcdctl "*) pass "etcd tarball has $ETCD_NAME/{etcd,etcdctl}" ;;
    *) fail "etcd tarball layout: $listing" ;;
  esac
  bad="$(tar -tzf "$WORK/dl-etcd" | grep -v "^$ETCD_NAME/" || true)"
  if [[ -z "$bad" ]]; then pass "etcd tarball holds only $ETCD_NAME/"; else fail "etcd tarball has entries outside $ETCD_NAME/: $bad"; fi
  tar -xzf "$WORK/dl-etcd" -C "$WORK/etcd"
  if [[ "$ARCH" == "$HOST_ARCH" ]]; then
    expect_output "etcd --version" "etcd Version: ${ETCD_VERSION}" "$WORK/etcd/$ETCD_NAME/etcd" --version
    expect_output "etcdctl version" "etcdctl version: ${ETCD_VERSION}" "$WORK/etcd/$ETCD_NAME/etcdctl" version
    if [[ -x "$WORK/etcd/$ETCD_NAME/etcdutl" ]]; then
      expect_output "etcdutl version" "etcdutl version: ${ETCD_VERSION}" "$WORK/etcd/$ETCD_NAME/etcdutl" version
    fi
    etcd_smoke "$WORK/etcd/$ETCD_NAME"
    apiserver_smoke
    stop_pid "$ETCD_PID"; ETCD_PID=""
  fi
fi

# --- static binaries (CGO_ENABLED=0) ----------------------------------------
if command -v file >/dev/null; then
  for f in "$WORK/dl-kube-apiserver" "$WORK/etcd/$ETCD_NAME/etcd"; do
    [[ -f "$f" ]] || continue
    if file "$f" | grep -q 'statically linked'; then pass "$(basename "${f#*dl-}") is statically linked"; else
      fail "$(basename "${f#*dl-}") is not static: $(file "$f")"
    fi
  done
fi

# --- serve.sh stops on SIGTERM ----------------------------------------------
kill -TERM "$SERVER_PID"
stopped=0
for _ in $(seq 1 50); do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then stopped=1; break; fi
  sleep 0.1
done
if ((stopped)); then pass "serve.sh stops on SIGTERM"; else fail "serve.sh still running after SIGTERM"; fi
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""

test_done
