# shellcheck shell=bash
# Sourced by test/e2e/run.sh and scripts/bench.sh, with lab/lib.sh sourced and $work set: what clients see
# while a change rolls out.
#   traffic_start NAME   in the background, until traffic_stop (and for TRAFFIC_MAX_SECONDS at most):
#                        - a real API request through the VIP every 0.2 s (5/s at most): an authenticated
#                          list of kube-system's configmaps, a quorum read that reaches etcd, answered 200;
#                        - once a second, how many etcd members are not active and how many of the load
#                          balancer's real servers are not at weight 1.
#   traffic_stop NAME    ends both and sets TRAFFIC_SENT, TRAFFIC_FAILED, TRAFFIC_ETCD_RESTART (the failed
#                        requests that kube-apiserver answered with a 500 passing on what etcd's client got from a
#                        member restarting: "leader changed" for a quorum read in flight when the leader changes,
#                        "server closed the stream without sending trailers" or "transport is closing" for one in
#                        flight to the member that stops; kubernetes/kubernetes#112152, etcd-io/etcd#8916; "malformed
#                        header: missing HTTP content-type" for one that reaches it as it stops: with TLS, etcd serves
#                        gRPC through grpc-go's Server.ServeHTTP, which returns without writing a response once the
#                        server is stopped (addConn refuses), so the client reads an empty 200),
#                        TRAFFIC_ETCD_DOWN and TRAFFIC_LB_DOWN
#                        (the most seen down at one sampled moment); the failed requests' errors (curl's, or
#                        the status and the start of the body) are in $work/traffic-NAME.errors.
# Needs $work/ca.pem and $work/admin.kubeconfig (the stack outputs), and kubectl in $work/bin.
: "${work:?set work before sourcing test/e2e/traffic.sh}"
TRAFFIC_MAX_SECONDS=${TRAFFIC_MAX_SECONDS:-900}
TRAFFIC_PIDS=()

# traffic_credentials: the admin client certificate and key out of the kubeconfig, for curl (0600, in $work).
traffic_credentials() {
  [[ -s $work/admin.crt ]] && return 0
  local field
  for field in client-certificate-data:admin.crt client-key-data:admin.key; do
    (umask 077 && "$work/bin/kubectl" --kubeconfig "$work/admin.kubeconfig" config view --raw \
      -o jsonpath="{.users[0].user.${field%%:*}}" | base64 -d >"$work/${field#*:}")
  done
}

traffic_start() {
  local name=$1
  traffic_credentials
  rm -f "$work/traffic-$name".*
  # The request loop runs inside the lab's network namespace, where `kubernetes` resolves to the VIP.
  # shellcheck disable=SC2016 # expanded by the inner bash
  lab/exec.sh bash -c '
    set -u
    w=$1 name=$2 max=$3 sent=0 failed=0 deadline=$((SECONDS + max))
    url="https://kubernetes:6443/api/v1/namespaces/kube-system/configmaps?limit=1"
    while [[ ! -e $w/traffic-$name.stop ]] && ((SECONDS < deadline)); do
      sent=$((sent + 1))
      code=$(curl -sS -o "$w/traffic-$name.body" -w "%{http_code}" --max-time 5 --cacert "$w/ca.pem" \
        --cert "$w/admin.crt" --key "$w/admin.key" "$url" 2>>"$w/traffic-$name.errors") || true
      if [[ $code != 200 ]]; then
        failed=$((failed + 1))
        printf "%(%H:%M:%S)T request %s: HTTP %s %s\n" -1 "$sent" "$code" \
          "$(head -c 400 "$w/traffic-$name.body" 2>/dev/null | tr -s "\n" " ")" >>"$w/traffic-$name.errors"
      fi
      sleep 0.2
    done
    echo "$sent $failed" >"$w/traffic-$name.requests"' traffic "$work" "$name" "$TRAFFIC_MAX_SECONDS" &
  TRAFFIC_PIDS=($!)
  (
    local etcd_down lb_down most_etcd=0 most_lb=0 n deadline=$((SECONDS + TRAFFIC_MAX_SECONDS))
    while [[ ! -e $work/traffic-$name.stop ]] && ((SECONDS < deadline)); do
      etcd_down=0
      for n in "${LAB_NODES[@]}"; do
        lab_ssh "$n" systemctl is-active --quiet etcd 2>/dev/null || etcd_down=$((etcd_down + 1))
      done
      # Only LAB_NODES' real servers count: a node that joins or leaves is out of the load balancer on purpose.
      lb_down=$(lab_ssh gateway sudo ipvsadm -Ln -t "$LAB_VIP:6443" 2>/dev/null |
        awk -v reals=" $(for n in "${LAB_NODES[@]}"; do printf '%s:6443 ' "${LAB_IP[$n]}"; done)" \
          '$1 == "->" && index(reals, " " $2 " ") > 0 && $4 != 1' | wc -l)
      ((etcd_down > most_etcd)) && most_etcd=$etcd_down
      ((lb_down > most_lb)) && most_lb=$lb_down
      echo "$most_etcd $most_lb" >"$work/traffic-$name.down"
      sleep 1
    done
  ) &
  TRAFFIC_PIDS+=($!)
}

traffic_stop() {
  local name=$1
  : >"$work/traffic-$name.stop"
  wait "${TRAFFIC_PIDS[@]}" || true
  read -r TRAFFIC_SENT TRAFFIC_FAILED <"$work/traffic-$name.requests" || TRAFFIC_SENT=0 TRAFFIC_FAILED=0
  read -r TRAFFIC_ETCD_DOWN TRAFFIC_LB_DOWN <"$work/traffic-$name.down" || TRAFFIC_ETCD_DOWN=99 TRAFFIC_LB_DOWN=99
  TRAFFIC_ETCD_RESTART=$(grep -cE 'HTTP 500 .*"message": "(etcdserver: leader changed|rpc error: code = (Internal|Unavailable) desc = (server closed the stream without sending trailers|transport is closing)|rpc error: code = Unknown desc = malformed header: missing HTTP content-type)"' \
    "$work/traffic-$name.errors" || true)
  export TRAFFIC_SENT TRAFFIC_FAILED TRAFFIC_ETCD_RESTART TRAFFIC_ETCD_DOWN TRAFFIC_LB_DOWN
}
