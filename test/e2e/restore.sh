# shellcheck shell=bash
# test/e2e/restore.sh: lose no data. Sourced by test/e2e/run.sh, which calls `restore_test` once, while the
# cluster of the stack $STACK is up and healthy. It proves, against the lab:
#   - an up that changes nothing takes no snapshot; destroy takes one (in backupDir, named by stack and time);
#   - a fresh stack with restoreFrom and the old cluster's encryptionKey (a Pulumi secret) brings back a
#     namespace, a configmap and a secret whose value reads the same through kubectl; etcdctl shows every
#     restored member started and healthy;
#   - the encryption key never lands in the stack file in plain text.
# What it expects from run.sh (defined there before it is sourced or called):
#   run_pulumi, kubectl_lab, etcdctl_on, on, $work (a scratch dir, removed by run.sh), $STACK, LAB_NODES,
#   $work/admin.kubeconfig and $work/ca.pem of the running cluster; test/lib.sh's check, pass, fail, test_log.
# What it leaves: the stack $STACK re-created (the old one is removed: its state is gone after destroy) and
# destroyed again, its config as before but for the new secrets salt; the snapshots in $work/backups.
# Timings go to the log: the snapshot's (from destroy's output) and the restoring up's.
# shellcheck disable=SC2154 # work, STACK and LAB_NODES are run.sh's

# restore_encrypted_at_rest NS NAME: the secret's value in etcd is aescbc ciphertext of key1, not plain text.
restore_encrypted_at_rest() {
  local stored
  stored=$(etcdctl_on control0 get "/registry/secrets/$1/$2" --print-value-only | head -c 64 | tr -d '\0')
  [[ $stored == k8s:enc:aescbc:v1:key1:* ]]
}

# restore_snapshot_kept FILE: the snapshot is 0600 and its etcdutl status is beside it.
restore_snapshot_kept() {
  [[ -s $1 && $(stat -c %a "$1") == 600 ]] && grep -q '"totalKey"' "$1.json"
}

# restore_members_started: every member of the restored cluster listed as started.
restore_members_started() {
  [[ $(etcdctl_on control0 member list | grep -c ', started, ') -eq ${#LAB_NODES[@]} ]]
}

# restore_count PATTERN: how many snapshots of the stack in backupDir match PATTERN.
restore_count() {
  find "$work/backups/$STACK" -maxdepth 1 -name "$1" 2>/dev/null | wc -l
}

restore_test() {
  local ns=kthw-restore value key snapshot took got before
  test_log "restore: objects in the cluster, destroy (a snapshot), a fresh stack restored from it"

  # A secret value only this run knows: in variables and pipes, never on a command line or in a file.
  value=$(head -c 18 /dev/urandom | base64)
  check "restore: kubectl create namespace $ns" kubectl_lab create namespace "$ns"
  check "restore: kubectl create configmap settings" kubectl_lab -n "$ns" create configmap settings --from-literal=color=blue
  if printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\n  namespace: %s\ntype: Opaque\nstringData:\n  token: "%s"\n' \
    "$ns" "$value" | kubectl_lab apply -f - >/dev/null; then pass "restore: kubectl apply a secret"; else fail "restore: kubectl apply a secret"; fi
  check "restore: the secret is encrypted at rest in etcd (k8s:enc:aescbc:v1:key1)" restore_encrypted_at_rest "$ns" creds

  # Snapshots go to this run's scratch dir; the up that moves them there re-runs the snapshot steps.
  run_pulumi config set backupDir "$work/backups"
  check "restore: pulumi up with backupDir in the scratch dir" run_pulumi up --yes --skip-preview
  before=$(restore_count '*.db')
  check "restore: an up that changes nothing" run_pulumi up --yes --skip-preview --expect-no-changes
  check "restore: ... takes no snapshot ($before before, $(restore_count '*.db') after)" test "$(restore_count '*.db')" -eq "$before"

  # The key the old cluster encrypts Secrets with, kept in memory (a Pulumi secret output) for the new stack.
  key=$(run_pulumi stack output encryptionKey --show-secrets)
  if [[ ${#key} -eq 44 ]]; then pass "restore: the stack output encryptionKey is a 32-byte key"; else fail "restore: no encryptionKey output"; fi

  took=$SECONDS
  if run_pulumi destroy --yes --skip-preview >"$work/destroy-restore.log" 2>&1; then
    pass "restore: pulumi destroy ($((SECONDS - took))s)"
  else
    fail "restore: pulumi destroy" "$(tail -n 30 "$work/destroy-restore.log")"
  fi
  snapshot=$(find "$work/backups/$STACK" -maxdepth 1 -name "$STACK-*-before-destroy.db" | sort | tail -n 1)
  check "restore: destroy kept a snapshot in backupDir, 0600, its etcdutl status beside it ($snapshot)" \
    restore_snapshot_kept "$snapshot"
  test_log "restore: the snapshot before destroy: $(grep -ao 'etcd snapshot of [^)]*)' "$work/destroy-restore.log" | tail -n 1)"
  for n in "${LAB_NODES[@]}"; do
    check "restore: destroy removed /var/lib/etcd on $n" on "$n" test ! -e /var/lib/etcd
  done

  # A fresh stack: new state, a new secrets salt; the config file (nodes, mirror, versions) is kept.
  run_pulumi stack rm --yes --preserve-config >/dev/null
  sed -i '/^encryptionsalt:/d' Pulumi."$STACK".yaml
  run_pulumi stack init --secrets-provider passphrase >/dev/null
  printf '%s' "$key" | run_pulumi config set --secret encryptionKey
  run_pulumi config set restoreFrom "$snapshot"
  check_not "restore: the encryption key is not in the stack file in plain text" grep -qFf <(printf '%s\n' "$key") Pulumi."$STACK".yaml

  took=$SECONDS
  if run_pulumi up --yes --skip-preview >"$work/up-restore.log" 2>&1; then
    pass "restore: pulumi up of a fresh stack restored from the snapshot ($((SECONDS - took))s)"
  else
    fail "restore: pulumi up of a fresh stack restored from the snapshot" "$(tail -n 40 "$work/up-restore.log")"
    return 0
  fi
  test_log "restore: the restoring up took $((SECONDS - took))s"
  run_pulumi stack output caCert >"$work/ca.pem"
  run_pulumi stack output adminKubeconfig --show-secrets >"$work/admin.kubeconfig"
  chmod 0600 "$work/admin.kubeconfig"

  check "restore: etcdctl endpoint health --cluster: every restored member healthy" etcdctl_on control0 endpoint health --cluster
  check "restore: etcdctl member list: ${#LAB_NODES[@]} members started" restore_members_started
  check "restore: namespace $ns is back" kubectl_lab get namespace "$ns"
  check_eq "restore: configmap settings is back, color=blue" blue kubectl_lab -n "$ns" get configmap settings -o 'jsonpath={.data.color}'
  got=$(kubectl_lab -n "$ns" get secret creds -o 'jsonpath={.data.token}' | base64 -d) || got=""
  if [[ -n $got && $got == "$value" ]]; then pass "restore: secret creds is back and its value reads the same"; else
    fail "restore: secret creds is back and its value reads the same (${#got} bytes read)"
  fi
  for n in "${LAB_NODES[@]}"; do
    check "restore: no copy of the snapshot left on $n" on "$n" test ! -e /var/tmp/kthw-etcd-restore.db
  done
  check "restore: a second up of the restored stack changes nothing" run_pulumi up --yes --skip-preview --expect-no-changes

  check "restore: pulumi destroy of the restored stack" run_pulumi destroy --yes --skip-preview
  check "restore: ... took a snapshot first" test "$(restore_count "$STACK-*-before-destroy.db")" -ge 2
  run_pulumi config rm restoreFrom
  run_pulumi config rm encryptionKey
  run_pulumi config rm backupDir
}
