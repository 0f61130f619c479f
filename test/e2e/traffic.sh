# shellcheck shell=bash
# Sourced by test/e2e/run.sh and scripts/bench.sh, with lab/lib.sh sourced and $work set: what clients see
# while a change rolls out.
#   traffic_start NAME   in the background, until traffic_stop (and for TRAFFIC_MAX_SECONDS at most):
#                        - a real API request through the VIP every 0.2 s (5/s at most): an authenticated
#                          list of kube-system's configmaps, a quorum read that reaches etcd, answered 200;
#                        - once a second, through one SSH session per host, which etcd members are not
#                          active and how many of the load balancer's real servers are not at weight 1.
#                        It returns once both run: the first request answered, each host's first sample taken
#                        (traffic_started).
#   traffic_stop NAME    ends both and sets TRAFFIC_SENT, TRAFFIC_FAILED, TRAFFIC_ETCD_DOWN and TRAFFIC_LB_DOWN
#                        (the most down in one second, and at one sample of the gateway); the failed requests' errors (curl's, or
#                        the status and the start of the body) are in $work/traffic-NAME.errors.
# Needs $work/ca.pem and $work/admin.kubeconfig (the stack outputs), and kubectl in $work/bin.
: "${work:?set work before sourcing test/e2e/traffic.sh}"
TRAFFIC_MAX_SECONDS=${TRAFFIC_MAX_SECONDS:-900}
TRAFFIC_START_SECONDS=${TRAFFIC_START_SECONDS:-30}
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
  # The request loop runs inside the lab's network namespace, where `kubernetes` resolves to the VIP: a curl
  # process per request, each a new connection (HTTP/1.1, `Connection: close`) that the API server closes, as it
  # does a plain HTTP/1.1 client's. That is the hard case for the load balancer: in direct routing IPVS sees
  # only the client's packets, so it keeps listing such a connection as active for 15 minutes, and a client
  # port used again within them would reach that connection's server even drained and stopped (a few requests
  # were refused so, before the gateway set net.ipv4.vs.expire_nodest_conn; README: Day 2), and the drain of
  # leaving nodes must not wait for IPVS's count to reach 0 (it waited 180 s and failed; README: Membership).
  # shellcheck disable=SC2016 # expanded by the inner bash
  lab/exec.sh bash -c '
    set -u
    w=$1 name=$2 max=$3 sent=0 failed=0 deadline=$((SECONDS + max))
    url="https://kubernetes:6443/api/v1/namespaces/kube-system/configmaps?limit=1"
    while [[ ! -e $w/traffic-$name.stop ]] && ((SECONDS < deadline)); do
      sent=$((sent + 1))
      code=$(curl -sS --http1.1 -H "Connection: close" -o "$w/traffic-$name.body" -w "%{http_code}" --max-time 5 --cacert "$w/ca.pem" \
        --cert "$w/admin.crt" --key "$w/admin.key" "$url" 2>>"$w/traffic-$name.errors") || true
      if [[ $code != 200 ]]; then
        failed=$((failed + 1))
        printf "%(%H:%M:%S)T request %s: HTTP %s %s\n" -1 "$sent" "$code" \
          "$(head -c 400 "$w/traffic-$name.body" 2>/dev/null | tr -s "\n" " ")" >>"$w/traffic-$name.errors"
      fi
      ((sent > 1)) || : >"$w/traffic-$name.first"
      sleep 0.2
    done
    echo "$sent $failed" >"$w/traffic-$name.requests"' traffic "$work" "$name" "$TRAFFIC_MAX_SECONDS" &
  TRAFFIC_PIDS=($!)
  # The sampling: one SSH session per host for the whole change, each printing a line a second (not a login
  # per sample, which on the emulated gateway cost a third of a core, taken from the change it measures).
  local n reals=""
  for n in "${LAB_NODES[@]}"; do
    traffic_watch "$name" "$n" 'systemctl is-active --quiet etcd && echo up || echo down' &
    TRAFFIC_PIDS+=($!)
    # /proc/net/ip_vs names a real server as hex address:port (192.168.1.11:6443 is C0A8010B:192B).
    # shellcheck disable=SC2086 # the address's four octets
    reals+=" $(IFS=. && printf '%02X%02X%02X%02X' ${LAB_IP[$n]}):192B"
  done
  # Only LAB_NODES' real servers count: a node that joins or leaves is out of the load balancer on purpose.
  traffic_watch "$name" gateway "down=0; while read -r arrow real _ weight _; do
      [[ \$arrow == '->' && ' $reals ' == *\" \$real \"* && \$weight != 1 ]] && down=\$((down + 1)); done </proc/net/ip_vs
    echo \$down" &
  TRAFFIC_PIDS+=($!)
  traffic_started "$name" "${LAB_NODES[@]}" gateway
}

# traffic_started NAME HOST...: waits, TRAFFIC_START_SECONDS at most, until the request loop has had its first
# answer and each HOST's watch has taken its first sample, so that what follows starts beside a loop already
# running: sampled from its first second, and not sharing the CPU with the watches' SSH logins (on the emulated
# gateway, a core for a second or more). When the time is up it says what it still waits for and returns all
# the same: the checks on what was not sampled fail then (traffic_most_down's 99, no request sent).
traffic_started() {
  local name=$1 host list deadline=$((SECONDS + TRAFFIC_START_SECONDS))
  local -a missing
  shift
  echo "traffic $name: waiting up to ${TRAFFIC_START_SECONDS}s for the request loop's first answer and a first sample from $*" >&2
  while :; do
    missing=()
    [[ -e $work/traffic-$name.first ]] || missing+=("the request loop's first answer")
    for host in "$@"; do [[ -s $work/traffic-$name.watch.$host ]] || missing+=("$host's first sample"); done
    ((${#missing[@]} > 0)) || return 0
    if ((SECONDS >= deadline)); then
      printf -v list '%s, ' "${missing[@]}"
      echo "traffic $name: after ${TRAFFIC_START_SECONDS}s, still waiting for ${list%, }; going on (the checks on them will fail)" >&2
      return 0
    fi
    sleep 0.1
  done
}

# traffic_watch NAME HOST PROBE: on HOST, until traffic_stop (or TRAFFIC_MAX_SECONDS), once a second PROBE's
# output after the second it ran, into $work/traffic-NAME.watch.HOST. The remote loop waits on its input,
# which ends when the local feeder does.
traffic_watch() {
  local name=$1 host=$2 probe=$3 deadline=$((SECONDS + TRAFFIC_MAX_SECONDS))
  while [[ ! -e $work/traffic-$name.stop ]] && ((SECONDS < deadline)); do sleep 0.5; done |
    lab_ssh "$host" "while :; do printf '%(%s)T %s\n' -1 \"\$($probe)\"; read -rt 1 _; ((\$? > 128)) || exit 0; done" \
      >"$work/traffic-$name.watch.$host" 2>/dev/null || true
}

# traffic_most_down NAME: from the watches' files, TRAFFIC_ETCD_DOWN, the most etcd members down in one second
# (the nodes' lines by the second they were taken, each node once a second), and TRAFFIC_LB_DOWN, the most
# real servers out at one sample of the gateway; 99 for either when nothing was sampled, which fails the checks.
traffic_most_down() {
  local name=$1
  TRAFFIC_ETCD_DOWN=$(awk '{ seen = 1 } $2 != "up" && !((FILENAME, $1) in counted) { counted[FILENAME, $1]; down[$1]++ }
    END { m = 0; for (t in down) if (down[t] > m) m = down[t]; print seen ? m : 99 }' "$work/traffic-$name.watch."control* 2>/dev/null)
  TRAFFIC_LB_DOWN=$(awk '{ seen = 1; if ($2 > m) m = $2 } END { print seen ? m + 0 : 99 }' "$work/traffic-$name.watch.gateway" 2>/dev/null)
  TRAFFIC_ETCD_DOWN=${TRAFFIC_ETCD_DOWN:-99} TRAFFIC_LB_DOWN=${TRAFFIC_LB_DOWN:-99}
}

traffic_stop() {
  local name=$1
  : >"$work/traffic-$name.stop"
  wait "${TRAFFIC_PIDS[@]}" || true
  read -r TRAFFIC_SENT TRAFFIC_FAILED <"$work/traffic-$name.requests" || TRAFFIC_SENT=0 TRAFFIC_FAILED=0
  traffic_most_down "$name"
  export TRAFFIC_SENT TRAFFIC_FAILED TRAFFIC_ETCD_DOWN TRAFFIC_LB_DOWN
}
