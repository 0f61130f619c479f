#!/usr/bin/env bash
# `npm run test:engine`: tests that drive the real Pulumi engine built by `npm run engine`.
#   1. `pulumi preview` of the dev stack (no SSH key, no reachable host) plans exactly what the program registers
#      under Pulumi's mocks for the same config (test/unit/plan.ts), and prints no private key; with a throwaway
#      SSH key configured, the host probe cannot reach the hosts: the preview fails before any resource, naming
#      every host and its address, and prints nothing of the key.
#   2. `pulumi up` of the PKI-only stack (test/engine/pki-stack): certificates verify against the CA, carry the
#      expected SANs and identities, keys match; state holds no plaintext key; a second up changes nothing; the
#      CA lasts ten years, the others one; the serving certificate in its last 30 days (its end set so in state)
#      is replaced alone by a preview and renewed by up (the same key and CA); destroy empties the state.
#   3. .github/workflows/preview.yml passes actionlint (built from Go modules, pinned, cached outside the repo),
#      and actionlint does reject a broken copy of it.
# State lives in a file backend in a temp dir, secrets use the passphrase provider, and every pulumi command runs
# in a network namespace of its own with only loopback (when unshare works), so nothing can reach the network.
# Closing line: "N passed, N failed".
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${KCP_CACHE:-/var/cache/kcp}"
ACTIONLINT_VERSION="v1.7.12"
# The engine's environment as the lab scripts have it (the CLI in PULUMI_HOME, no update checks or plugin
# downloads, diffs in parallel), with this suite's own passphrase.
# shellcheck source=scripts/pulumi-env.sh
source "$ROOT/scripts/pulumi-env.sh"
if ! command -v go >/dev/null 2>&1; then
    export PATH="$PATH:/usr/local/go/bin"
fi
export PULUMI_DIY_BACKEND_NO_LEGACY_WARNING=true PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK=true
export PULUMI_CONFIG_PASSPHRASE="kcp-engine-test-only"
export GOCACHE="${GOCACHE:-$CACHE/go-build}" GOTOOLCHAIN=local

TMP="$(mktemp -d /tmp/kcp-engine-test.XXXXXX)"
TSOUT="$ROOT/.pulumi-test/engine-tsc-$$"
PKI_DIR="$ROOT/test/engine/pki-stack"
COMMAND_DIR="$ROOT/test/engine/command-stack"
cleanup() {
    rm -rf "$TMP" "$TSOUT"
    rm -f "$PKI_DIR"/Pulumi.engine-test-*.yaml "$COMMAND_DIR"/Pulumi.engine-test-*.yaml
}
trap cleanup EXIT
export PULUMI_BACKEND_URL="file://$TMP/state"
mkdir -p "$TMP/state"
# A home with no SSH key, no ~/.pulumi credentials: "a machine with no SSH key".
export HOME="$TMP/home"
mkdir -p "$HOME"

# shellcheck source=test/lib.sh
source "$ROOT/test/lib.sh"

# Every pulumi command runs without a network, loopback excepted (engine <-> plugins talk over 127.0.0.1).
ISOLATE=()
if unshare --net sh -c 'ip link set lo up' >/dev/null 2>&1; then
    ISOLATE=(unshare --net sh -c 'ip link set lo up && exec "$@"' isolated)
    echo "# pulumi runs in a network namespace with loopback only"
else
    echo "# unshare --net is not available: pulumi runs with the network, update checks and plugin downloads off"
fi
pulumi_() { "${ISOLATE[@]}" pulumi "$@"; }

# --- 0. the engine ----------------------------------------------------------------------------------------
ENGINE_OK=1
if ! command -v pulumi >/dev/null || ! command -v pulumi-language-nodejs >/dev/null; then
    fail "the engine is installed in $PULUMI_HOME/bin" "run: npm run engine"
    ENGINE_OK=0
else
    plugins="$(pulumi plugin ls --json 2>/dev/null || echo '[]')"
    missing=""
    for name in command tls random; do
        want="$(node -p "const p = require('$ROOT/node_modules/@pulumi/$name/package.json'); (p.pulumi && p.pulumi.version) || p.version")"
        jq -e --arg n "$name" --arg v "$want" 'any(.[]; .name == $n and .kind == "resource" and .version == $v)' \
            <<<"$plugins" >/dev/null || missing+=" $name@$want"
    done
    if [[ -z "$missing" ]]; then
        pass "engine $(pulumi version) with the resource plugins the npm SDKs pin"
    else
        fail "resource plugins installed at the versions the npm SDKs pin" "missing:$missing (run: npm run engine)"
        ENGINE_OK=0
    fi
fi

# --- 1. preview of the dev stack ----------------------------------------------------------------------------
# plain_stack_config FILE: the stack file's plain config, nothing else: no encryptionsalt, secretsprovider or
# encryptedkey (they belong to the stack the file was made for), no secure values (encrypted for that stack).
plain_stack_config() {
    (cd "$ROOT" && node -e '
        const YAML = require("yaml");
        const plain = v => Array.isArray(v) ? v.map(plain)
            : v !== null && typeof v === "object" ? Object.fromEntries(Object.entries(v)
                .filter(([, x]) => !(x !== null && typeof x === "object" && "secure" in x)).map(([k, x]) => [k, plain(x)]))
            : v;
        const stack = YAML.parse(require("fs").readFileSync(process.argv[1], "utf8")) ?? {};
        process.stdout.write(YAML.stringify({ config: plain(stack.config ?? {}) }));
    ' "$1")
}

test_dev_preview() {
    local project="$TMP/project" key="${1:-}" label="${2:-no SSH key}"
    rm -rf "$project"
    mkdir -p "$project"
    # A copy of the program with a stack file of its own: `stack init` writes its passphrase salt there, not
    # into Pulumi.dev.yaml, and what the user's stack file holds besides the seed's plain config (the salt
    # `pulumi stack select --create dev` wrote for their passphrase, values encrypted with it) stays out.
    cp -r "$ROOT/index.ts" "$ROOT/components" "$ROOT/Pulumi.yaml" "$ROOT/tsconfig.json" "$ROOT/tsconfig.pulumi.json" \
        "$ROOT/package.json" "$project/"
    ln -s "$ROOT/node_modules" "$project/node_modules"
    plain_stack_config "$ROOT/Pulumi.dev.yaml" >"$project/Pulumi.dev.yaml" \
        || { fail "dev stack ($label): a plain copy of Pulumi.dev.yaml"; return; }
    (cd "$project" && pulumi_ stack init dev --secrets-provider passphrase >/dev/null 2>&1) \
        || { fail "dev stack ($label): stack init"; return; }
    if [[ -n "$key" ]]; then
        (cd "$project" && pulumi_ config set --stack dev control-plane:sshPrivateKeyPath "$key" >/dev/null)
    fi
    local json="$TMP/preview-$3.json" plain="$TMP/preview-$3.txt"
    if [[ -n "$key" ]]; then
        # With the key, a preview compares the hosts: none is reachable here, so it fails, naming each.
        if (cd "$project" && pulumi_ preview --stack dev --non-interactive --diff >"$plain" 2>&1); then
            fail "dev stack ($label): pulumi preview fails when no host can be probed"
        else
            local host missing=""
            for host in "control0 (192.168.1.11)" "control1 (192.168.1.12)" "control2 (192.168.1.13)" "gateway (192.168.1.10)"; do
                grep -qF -- "- $host: " "$plain" || missing="$missing $host"
            done
            check "dev stack ($label): the preview fails before any resource, naming every host it could not probe (missing:$missing)" \
                bash -c "[ -z '$missing' ] && grep -qF 'cannot compare the hosts with what the program installed, so nothing was changed' '$plain' && ! grep -qE '^ +\+ +command:' '$plain'"
        fi
        check "dev stack ($label): no private key and nothing of the key file in its output" \
            holds_no_key "$key" "$plain"
        (cd "$project" && pulumi_ stack rm dev --yes --force >/dev/null 2>&1)
        return
    fi
    if (cd "$project" && pulumi_ preview --stack dev --non-interactive --json >"$json" 2>"$TMP/preview-$3.err"); then
        pass "dev stack ($label): pulumi preview --json succeeds"
    else
        fail "dev stack ($label): pulumi preview --json succeeds" "$(tail -n 20 "$TMP/preview-$3.err" "$json" | tr '\n' ' ' | cut -c1-1500)"
        return
    fi
    if (cd "$project" && pulumi_ preview --stack dev --non-interactive --diff >"$plain" 2>&1); then
        pass "dev stack ($label): plain pulumi preview --diff succeeds"
    else
        fail "dev stack ($label): plain pulumi preview --diff succeeds" "$(tail -n 20 "$plain" | tr '\n' ' ' | cut -c1-1500)"
    fi
    if grep -Eq -- '-----BEGIN [A-Z ]*PRIVATE KEY-----' "$json" "$plain"; then
        fail "dev stack ($label): no private key in the preview output" "$(grep -Eo -- '-----BEGIN [A-Z ]*PRIVATE KEY-----' "$json" "$plain" | sort -u | head -3)"
    else
        pass "dev stack ($label): no private key in the preview output (--json and plain)"
    fi

    # The plan: every step a create but the read of the stack's own outputs (the last deployment's drift markers),
    # and exactly the resources the program registers or reads under mocks.
    local ops reads
    ops="$(jq -r '[.steps[] | select(.op != "read") | .op] | unique | join(",")' "$json")"
    check "dev stack ($label): every planned step is a create (got: $ops)" test "$ops" = "create"
    reads="$(jq -r '[.steps[] | select(.op == "read") | .urn | split("::")[3]] | join(",")' "$json")"
    check "dev stack ($label): the one read is the stack's reference to itself (got: $reads)" test "$reads" = "last-deployment"
    jq -r '.steps[] | select((.urn | split("::")[2] | split("$") | last) as $t | ($t | startswith("pulumi:providers:") | not) and $t != "pulumi:pulumi:Stack")
        | "\(.urn | split("::")[2] | split("$") | last) \(.urn | split("::")[3])"' "$json" | sort >"$TMP/plan-engine-$3.txt"
    (cd "$project" && pulumi_ config --stack dev --json >"$TMP/config-$3.json")
    if node "$TSOUT/test/unit/plan.js" "$TMP/config-$3.json" 2>"$TMP/plan-mock-$3.err" | grep -v '^pulumi:pulumi:Stack ' \
        | sort >"$TMP/plan-mock-$3.txt" && [[ -s "$TMP/plan-mock-$3.txt" ]]; then
        local n types
        n="$(wc -l <"$TMP/plan-mock-$3.txt")"
        types="$(cut -d' ' -f1 "$TMP/plan-mock-$3.txt" | sort | uniq -c | awk '{printf "%s %s; ", $1, $2}')"
        if diff -u "$TMP/plan-mock-$3.txt" "$TMP/plan-engine-$3.txt" >"$TMP/plan-diff-$3.txt"; then
            pass "dev stack ($label): the engine plans exactly the $n resources the program registers under mocks"
            echo "       ($types)"
        else
            fail "dev stack ($label): the engine plans exactly the resources registered under mocks" \
                "$(head -n 30 "$TMP/plan-diff-$3.txt" | tr '\n' ' ')"
        fi
    else
        fail "dev stack ($label): the mock plan (test/unit/plan.ts) runs" "$(head -c 800 "$TMP/plan-mock-$3.err")"
    fi
    (cd "$project" && pulumi_ stack rm dev --yes --force >/dev/null 2>&1)
}

if [[ "$ENGINE_OK" == 1 ]]; then
    if [[ -f "$ROOT/index.ts" && -f "$ROOT/test/unit/plan.ts" ]]; then
        if (cd "$ROOT" && npx tsc -p tsconfig.json --outDir "$TSOUT" >"$TMP/tsc.log" 2>&1); then
            test_dev_preview "" "no SSH key" nokey
            keyfile="$TMP/id_ed25519"
            ssh-keygen -q -t ed25519 -N "" -C "KCP-ENGINE-TEST-KEY" -f "$keyfile"
            test_dev_preview "$keyfile" "throwaway SSH key configured" withkey
        else
            fail "the program and test/unit/plan.ts compile" "$(head -c 1500 "$TMP/tsc.log")"
        fi
    else
        fail "index.ts and test/unit/plan.ts exist"
    fi
fi

# --- 2. up / up / destroy of the PKI-only stack -----------------------------------------------------------
test_pki_stack() {
    local stack="engine-test-$$" out="$TMP/pki"
    mkdir -p "$out"
    local p=(--cwd "$PKI_DIR" --stack "$stack" --non-interactive)
    pulumi_ stack init "$stack" --cwd "$PKI_DIR" --secrets-provider passphrase >/dev/null 2>&1 \
        || { fail "pki stack: stack init"; return; }
    # A cluster unlike the seed, so the SANs below can only come from this config.
    pulumi_ config set-all "${p[@]}" --path \
        --plaintext 'cluster.nodes[0].name=cp-a' --plaintext 'cluster.nodes[0].address=10.240.0.11' \
        --plaintext 'cluster.nodes[1].name=cp-b' --plaintext 'cluster.nodes[1].address=10.240.0.12' \
        --plaintext 'cluster.gateway.name=lb' --plaintext 'cluster.gateway.address=10.240.0.10' \
        --plaintext 'cluster.vip=10.240.0.100' --plaintext 'cluster.vipName=api.kcp.test' \
        --plaintext 'cluster.serviceCidr=10.96.0.0/16' --plaintext 'cluster.clusterName=kcp-test' >/dev/null \
        || { fail "pki stack: config set"; return; }

    if pulumi_ up "${p[@]}" --yes --skip-preview >"$TMP/up1.log" 2>&1; then
        pass "pki stack: pulumi up creates the PKI ($(grep -Eo '[+] [0-9]+ created' "$TMP/up1.log" | tail -1))"
    else
        fail "pki stack: pulumi up" "$(tail -n 25 "$TMP/up1.log" | tr '\n' ' ' | cut -c1-2000)"
        return
    fi
    pulumi_ stack output "${p[@]}" --json --show-secrets >"$out/outputs.json"
    jq -r .caCert "$out/outputs.json" >"$out/ca.pem"
    jq -r .kubernetesCert "$out/outputs.json" >"$out/kubernetes.pem"
    jq -r .kubernetesKey "$out/outputs.json" >"$out/kubernetes-key.pem"
    jq -r .serviceAccountCert "$out/outputs.json" >"$out/service-account.pem"
    jq -r .serviceAccountKey "$out/outputs.json" >"$out/service-account-key.pem"
    local client
    for client in admin controllerManager scheduler; do
        jq -r ".${client}Kubeconfig" "$out/outputs.json" >"$out/$client.kubeconfig"
        sed -n 's/^ *client-certificate-data: *//p' "$out/$client.kubeconfig" | tr -d '"' | base64 -d >"$out/$client.pem" 2>/dev/null
        sed -n 's/^ *client-key-data: *//p' "$out/$client.kubeconfig" | tr -d '"' | base64 -d >"$out/$client-key.pem" 2>/dev/null
    done

    check "pki stack: the CA is a CA (basicConstraints CA:TRUE)" \
        bash -c "openssl x509 -in '$out/ca.pem' -noout -ext basicConstraints | grep -q 'CA:TRUE'"
    local cert
    for cert in kubernetes service-account admin controllerManager scheduler; do
        check "pki stack: openssl verify -CAfile ca.pem $cert.pem" \
            bash -c "openssl verify -CAfile '$out/ca.pem' '$out/$cert.pem' >/dev/null 2>&1"
    done
    check "pki stack: a certificate from another CA does not verify (the check can fail)" \
        bash -c "openssl req -x509 -newkey rsa:2048 -nodes -keyout '$out/other-key.pem' -out '$out/other.pem' -subj /CN=other -days 1 >/dev/null 2>&1 \
            && ! openssl verify -CAfile '$out/ca.pem' '$out/other.pem' >/dev/null 2>&1"

    # SANs: exactly what the program's kubernetesSans() computed for this config.
    local want got
    want="$(jq -r '.expectedSans | ((.dnsNames | map("DNS:" + .)) + (.ipAddresses | map("IP Address:" + .))) | .[]' "$out/outputs.json" | sort)"
    got="$(openssl x509 -in "$out/kubernetes.pem" -noout -ext subjectAltName | tail -n +2 | tr ',' '\n' | sed 's/^ *//' | sed '/^$/d' | sort)"
    if [[ -n "$want" && "$want" == "$got" ]]; then
        pass "pki stack: kubernetes.pem carries exactly the expected SANs ($(wc -l <<<"$got") entries)"
    else
        fail "pki stack: kubernetes.pem SANs" "want: $(tr '\n' ' ' <<<"$want")" "got:  $(tr '\n' ' ' <<<"$got")"
    fi
    local san
    for san in "DNS:cp-a" "DNS:api.kcp.test" "IP Address:10.240.0.12" "IP Address:10.240.0.100" "IP Address:10.96.0.1" \
        "DNS:kubernetes.default.svc.cluster.local" "IP Address:127.0.0.1"; do
        grep -qxF "$san" <<<"$got" || fail "pki stack: SAN $san present"
    done
    check "pki stack: admin client cert is CN=admin, O=system:masters" \
        bash -c "openssl x509 -in '$out/admin.pem' -noout -subject -nameopt RFC2253 | grep -q 'CN=admin' \
            && openssl x509 -in '$out/admin.pem' -noout -subject -nameopt RFC2253 | grep -q 'O=system:masters'"
    check "pki stack: kube-controller-manager kubeconfig authenticates as system:kube-controller-manager" \
        bash -c "openssl x509 -in '$out/controllerManager.pem' -noout -subject -nameopt RFC2253 | grep -q 'CN=system:kube-controller-manager'"
    check "pki stack: kubeconfigs point at https://api.kcp.test:6443 with cluster kcp-test" \
        bash -c "grep -q 'https://api.kcp.test:6443' '$out/admin.kubeconfig' && grep -q 'kcp-test' '$out/admin.kubeconfig'"
    for cert in kubernetes service-account admin; do
        check "pki stack: $cert key matches its certificate" bash -c \
            "[ \"\$(openssl x509 -in '$out/$cert.pem' -noout -pubkey)\" = \"\$(openssl pkey -in '$out/$cert-key.pem' -pubout)\" ]"
    done
    check "pki stack: the encryption config holds a 32-byte aescbc key" bash -c \
        "jq -r .encryptionConfig '$out/outputs.json' | sed -n 's/^ *secret: *//p' | tr -d '\"' | head -1 | base64 -d | wc -c | grep -qx 32"

    pulumi_ stack export "${p[@]}" >"$out/state.json"
    check "pki stack: state holds no plaintext private key (secrets are encrypted)" \
        bash -c "! grep -Eq -- '-----BEGIN [A-Z ]*PRIVATE KEY' '$out/state.json'"
    # The PKI's resources in state: the same tls/random resources the main program's plan has (test 1).
    jq -r '.deployment.resources[]? | select(.type | startswith("tls:") or startswith("random:")) | "\(.type) \(.urn | split("::")[3])"' \
        "$out/state.json" | sort >"$out/state-pki.txt"
    if [[ -s "$TMP/plan-mock-nokey.txt" ]]; then
        grep -E '^(tls|random):' "$TMP/plan-mock-nokey.txt" | sort >"$out/plan-pki.txt"
        check "pki stack: state has exactly the $(wc -l <"$out/plan-pki.txt") tls/random resources of the main program's plan" \
            diff -q "$out/plan-pki.txt" "$out/state-pki.txt"
    else
        check "pki stack: state has tls/random resources ($(wc -l <"$out/state-pki.txt"))" test -s "$out/state-pki.txt"
    fi

    if pulumi_ up "${p[@]}" --yes --expect-no-changes --json >"$TMP/up2.json" 2>"$TMP/up2.log"; then
        pass "pki stack: a second pulumi up reports no changes (--expect-no-changes)"
    else
        fail "pki stack: a second pulumi up reports no changes" "$(tail -n 25 "$TMP/up2.log" "$TMP/up2.json" | tr '\n' ' ' | cut -c1-2000)"
    fi
    # The engine's events carry every debug line the program sends; the SDK's print each resource's outputs,
    # private keys included (components/sdkLogs.ts drops them). With them asked for, the same up prints the
    # keys: the check can fail.
    check "pki stack: pulumi up --json prints no private key (the SDK's debug lines dropped)" \
        holds_no_key "$out/kubernetes-key.pem" "$TMP/up2.json"
    KTHW_SDK_DEBUG_LOGS=1 pulumi_ up "${p[@]}" --yes --expect-no-changes --json >"$TMP/up2-sdk-debug.json" 2>/dev/null
    check_not "pki stack: with KTHW_SDK_DEBUG_LOGS=1 the same up prints the private keys (the check can fail)" \
        holds_no_key "$out/kubernetes-key.pem" "$TMP/up2-sdk-debug.json"
    pulumi_ preview "${p[@]}" --json >"$out/preview2.json" 2>/dev/null
    check "pki stack: preview after up: every step is 'same'" \
        test "$(jq -r '[.steps[].op] | unique | join(",")' "$out/preview2.json")" = "same"

    # Lifetimes: the CA ten years, the others one year.
    check "pki stack: the CA is valid for ten years (still in 3,600 days)" \
        openssl x509 -noout -checkend $((3600 * 86400)) -in "$out/ca.pem"
    check "pki stack: kubernetes.pem is valid for a year (still in 364 days)" \
        openssl x509 -noout -checkend $((364 * 86400)) -in "$out/kubernetes.pem"
    check_not "pki stack: and not for 366 days" openssl x509 -noout -checkend $((366 * 86400)) -in "$out/kubernetes.pem"
    # Renewal by the real tls provider: the serving certificate as if it were 10 days from its end (its
    # validityEndTime in state), inside the last 30 days. A preview replaces it alone; up renews it: a new
    # certificate, the same key and CA, a year again; then nothing changes.
    pulumi_ stack export "${p[@]}" | aged_certificate pki-kubernetes 10 >"$out/aged.json"
    pulumi_ stack import "${p[@]}" --file "$out/aged.json" >/dev/null 2>&1 || fail "pki stack: stack import of the aged state"
    pulumi_ preview "${p[@]}" --json >"$out/preview-renewal.json" 2>/dev/null
    check_eq "pki stack: in its last 30 days, a preview replaces the serving certificate, for renewal, and nothing else" \
        "replace pki-kubernetes readyForRenewal" \
        jq -r '[.steps[] | select(.op != "same") | "\(.op) \(.urn | split("::") | last) \(.replaceReasons // [] | join(","))"] | join(";")' \
        "$out/preview-renewal.json"
    if pulumi_ up "${p[@]}" --yes --skip-preview >"$TMP/up-renewal.log" 2>&1; then
        pulumi_ stack output "${p[@]}" kubernetesCert >"$out/kubernetes-renewed.pem"
        check_not "pki stack: up renews it: another certificate" cmp -s "$out/kubernetes.pem" "$out/kubernetes-renewed.pem"
        check "pki stack: the renewed one verifies against the same CA" openssl verify -CAfile "$out/ca.pem" "$out/kubernetes-renewed.pem"
        check_eq "pki stack: with the same key" "$(openssl x509 -noout -pubkey -in "$out/kubernetes.pem")" \
            openssl x509 -noout -pubkey -in "$out/kubernetes-renewed.pem"
        check "pki stack: for a year again" openssl x509 -noout -checkend $((364 * 86400)) -in "$out/kubernetes-renewed.pem"
        check "pki stack: the up after the renewal changes nothing" pulumi_ up "${p[@]}" --yes --expect-no-changes
    else
        fail "pki stack: up renews the serving certificate" "$(tail -n 25 "$TMP/up-renewal.log" | tr '\n' ' ' | cut -c1-2000)"
    fi

    if pulumi_ destroy "${p[@]}" --yes --skip-preview >"$TMP/destroy.log" 2>&1; then
        pass "pki stack: pulumi destroy succeeds"
    else
        fail "pki stack: pulumi destroy" "$(tail -n 25 "$TMP/destroy.log" | tr '\n' ' ' | cut -c1-2000)"
    fi
    pulumi_ stack export "${p[@]}" >"$out/state-after.json"
    check "pki stack: after destroy the state has no resources" \
        test "$(jq '[.deployment.resources[]?] | length' "$out/state-after.json")" = 0
    pulumi_ stack rm "$stack" --cwd "$PKI_DIR" --yes >/dev/null 2>&1
}

if [[ "$ENGINE_OK" == 1 ]]; then
    test_pki_stack
fi

# --- 3. the command provider's lifecycle --------------------------------------------------------------------
# test/engine/command-stack: one local Command whose scripts log "<script> <tag>". Each `up` changes the config
# and the log must show exactly the script @pulumi/command runs: update on an input change, create-then-delete
# (the delete with the inputs from state) on a trigger change, delete on destroy.
test_command_stack() {
    local stack="engine-test-$$" out="$TMP/command"
    local p=(--cwd "$COMMAND_DIR" --stack "$stack" --non-interactive)
    mkdir -p "$out"
    pulumi_ stack init "$stack" --cwd "$COMMAND_DIR" --secrets-provider passphrase >/dev/null 2>&1 \
        || { fail "command stack: stack init"; return; }
    # up NAME TAG TRIGGER CONTENT: sets the config and runs pulumi up.
    up() {
        pulumi_ config set-all "${p[@]}" --plaintext "dir=$out" --plaintext "tag=$2" --plaintext "trigger=$3" \
            --secret "content=$4" >/dev/null || { fail "command stack: config set ($1)"; return 1; }
        if pulumi_ up "${p[@]}" --yes --skip-preview >"$TMP/command-$1.log" 2>&1; then
            return 0
        fi
        fail "command stack: pulumi up ($1)" "$(tail -n 25 "$TMP/command-$1.log" | tr '\n' ' ' | cut -c1-2000)"
        return 1
    }
    # The log as one line, "create a,update b,...".
    log_of() { paste -sd, "$out/log" 2>/dev/null; }
    log_is() { [[ "$(log_of)" == "$1" ]]; }

    up create a 1 secret-one || return
    check "command stack: up runs create once, with stdin (log: $(log_of))" \
        bash -c "[[ '$(log_of)' == 'create a' && \$(cat '$out/file') == secret-one ]]"
    check "command stack: the create script's stdout is an output" \
        test "$(pulumi_ stack output "${p[@]}" stdout 2>&1)" = "create done"
    if pulumi_ up "${p[@]}" --yes --skip-preview --expect-no-changes >"$TMP/command-again.log" 2>&1; then
        pass "command stack: a second up reports no changes (--expect-no-changes)"
    else
        fail "command stack: a second up reports no changes" "$(tail -n 25 "$TMP/command-again.log" | tr '\n' ' ' | cut -c1-2000)"
    fi
    pulumi_ stack export "${p[@]}" >"$out/state.json"
    check "command stack: the secret stdin is not in the state in plain" bash -c "! grep -q secret-one '$out/state.json'"

    up update b 1 secret-two || return
    check "command stack: changed inputs run update, not create (log: $(log_of))" \
        bash -c "[[ '$(log_of)' == 'create a,update b' && \$(cat '$out/file') == secret-two ]]"

    up replace c 2 secret-three || return
    check "command stack: a changed trigger replaces: create the new, then delete the old with its own inputs (log: $(log_of))" \
        log_is 'create a,update b,create c,delete b'

    if pulumi_ destroy "${p[@]}" --yes --skip-preview >"$TMP/command-destroy.log" 2>&1; then
        check "command stack: destroy runs delete with the state's inputs (log: $(log_of))" \
            log_is 'create a,update b,create c,delete b,delete c'
    else
        fail "command stack: pulumi destroy" "$(tail -n 25 "$TMP/command-destroy.log" | tr '\n' ' ' | cut -c1-2000)"
    fi
    # A failing step: the provider's error text is `<err>: running "<the whole script>":` and the output;
    # the secret went to stdin, so neither holds it.
    pulumi_ config set-all "${p[@]}" --plaintext "tag=d" --plaintext "fail=true" --secret "content=secret-four" >/dev/null
    if pulumi_ up "${p[@]}" --yes --skip-preview >"$TMP/command-fail.log" 2>&1; then
        fail "command stack: an up whose step fails fails"
    else
        check "command stack: a failing step's error shows its script and output (running \"...\": failing on purpose)" \
            grep -qE 'running ".*cat >.*failing on purpose' <(tr '\n' ' ' <"$TMP/command-fail.log")
        check "command stack: a failing step's error holds no secret from its stdin" \
            bash -c "! grep -q secret-four '$TMP/command-fail.log'"
    fi
    pulumi_ destroy "${p[@]}" --yes --skip-preview >/dev/null 2>&1
    pulumi_ stack rm "$stack" --cwd "$COMMAND_DIR" --yes >/dev/null 2>&1
}

if [[ "$ENGINE_OK" == 1 ]]; then
    test_command_stack
fi

# --- 4. the pull-request workflow -------------------------------------------------------------------------
ACTIONLINT_BIN="$CACHE/tools/actionlint-$ACTIONLINT_VERSION/actionlint"
if [[ ! -x "$ACTIONLINT_BIN" ]]; then
    mkdir -p "$(dirname "$ACTIONLINT_BIN")"
    GOBIN="$(dirname "$ACTIONLINT_BIN")" go install -trimpath "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION" \
        >"$TMP/actionlint-build.log" 2>&1 || fail "actionlint $ACTIONLINT_VERSION builds from Go modules" "$(tail -c 800 "$TMP/actionlint-build.log")"
fi
WORKFLOW="$ROOT/.github/workflows/preview.yml"
if [[ -x "$ACTIONLINT_BIN" ]]; then
    if (cd "$ROOT" && "$ACTIONLINT_BIN" -no-color .github/workflows/preview.yml >"$TMP/actionlint.log" 2>&1); then
        pass "actionlint $ACTIONLINT_VERSION accepts .github/workflows/preview.yml"
    else
        fail "actionlint accepts .github/workflows/preview.yml" "$(head -c 2000 "$TMP/actionlint.log")"
    fi
    # Negative control: the same workflow with an undefined step output and a bad runner label must be rejected.
    mkdir -p "$TMP/wf/.github/workflows"
    sed -e 's/steps\.versions\.outputs\./steps.no_such_step.outputs./' -e 's/runs-on: ubuntu-24.04/runs-on: ubuntu-14.04/' \
        "$WORKFLOW" >"$TMP/wf/.github/workflows/preview.yml"
    if (cd "$TMP/wf" && ! "$ACTIONLINT_BIN" -no-color .github/workflows/preview.yml >/dev/null 2>&1); then
        pass "actionlint rejects a broken copy of the workflow (the check can fail)"
    else
        fail "actionlint rejects a broken copy of the workflow"
    fi
fi
check "preview.yml runs on pull requests and previews the dev stack with pulumi/actions" \
    bash -c "grep -q '^  pull_request' '$WORKFLOW' && grep -Eq 'uses: pulumi/actions@' '$WORKFLOW' \
        && grep -Eq 'command: preview' '$WORKFLOW' && grep -Eq 'stack-name: dev' '$WORKFLOW'"

test_done
