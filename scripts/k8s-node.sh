# scripts/k8s-node.sh - the real node of scripts/k8s.sh (sourced by it, not run): containerd + a kubelet.
#
# Why: kwok's nodes schedule but run nothing. A pod that really runs the notebook image needs a kubelet
# with a container runtime: Debian's containerd and runc, Debian's CNI plugins (containernetworking-plugins:
# a bridge with host-local addresses, no NetworkPolicy), and the kubelet toolchain/k8s.sh built. Everything
# (containerd's root, state and socket, the kubelet's root, pod logs, the bridge) is this cluster's own,
# under $D; the bridge is tfk-<hash> with 10.214.N.0/24, hash and N from the cluster's directory.
# The sandbox ("pause") image is made here from a 10-line static C program (registry.k8s.io is out of
# reach), and the local registry (scripts/registry.sh) is reached over plain HTTP via containerd's hosts.toml.
# Settings for a kubelet in a container on cgroup v1 without systemd: cgroupfs driver, no QoS cgroups, no
# node allocatable enforcement, swap allowed, failCgroupV1=false, local storage isolation off.

CTRD=$D/containerd
PAUSE_REF=tfbox.local/pause:1

ctr_() { "$BIN_CTR" --address "$CTRD/containerd.sock" -n k8s.io "$@"; }

cni_net() {  # prints "BRIDGE SUBNET-N" for this cluster
  local h
  h=$(printf '%s' "$D" | sha256sum | cut -c1-8)
  echo "tfk-$h $((16#${h:0:4} % 200 + 20))"
}

# can this process lower its oom_score_adj (CAP_SYS_RESOURCE)? A child tries, so ours stays as it is
can_lower_oom_score() { sh -c 'echo -1 >/proc/self/oom_score_adj' 2>/dev/null; }

write_containerd_config() {
  local port RESTRICT_OOM=false RUNC
  can_lower_oom_score || RESTRICT_OOM=true
  RUNC=${TFBOX_K8S_RUNC:-$(command -v runc)}
  mkdir -p "$CTRD/certs.d" "$D/cni"
  cat >"$CTRD/config.toml" <<EOF
version = 2
root = "$CTRD/root"
state = "$CTRD/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$CTRD/containerd.sock"
[ttrpc]
  address = "$CTRD/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$CTRD/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_REF"
  enable_selinux = false
  # without CAP_SYS_RESOURCE (a Firecracker VM's root here) nothing may lower its oom_score_adj; the CRI asks
  # -998 for every sandbox and runc's nsexec dies on it ("can't get final child's PID from pipe"). This
  # clamps every request to containerd's own score (0) instead, as for rootless containerd.
  restrict_oom_score_adj = $RESTRICT_OOM
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$RUNC"
        Root = "$CTRD/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$D/cni"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$CTRD/certs.d"
EOF
  # the local registries speak plain HTTP
  for port in ${TFBOX_REGISTRY_PORT:-5000} 5000; do
    mkdir -p "$CTRD/certs.d/127.0.0.1:$port"
    printf 'server = "http://127.0.0.1:%s"\n[host."http://127.0.0.1:%s"]\n  capabilities = ["pull", "resolve"]\n' \
      "$port" "$port" >"$CTRD/certs.d/127.0.0.1:$port/hosts.toml"
  done
  local bridge n
  read -r bridge n < <(cni_net)
  echo "$bridge" >"$D/bridge"
  cat >"$D/cni/10-tfbox.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "tfbox-$NAME",
  "plugins": [
    {"type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.214.$n.0/24"}]], "dataDir": "$D/cni-ipam"}}
  ]
}
EOF
}

# the sandbox image: a static `pause` (sleeps until signalled) as a one-layer image in docker-save format
make_pause_image() {
  local w=$D/pause
  [ -f "$w/pause.tar" ] && return 0
  mkdir -p "$w/rootfs"
  printf '%s\n' '#include <signal.h>' '#include <unistd.h>' 'static void bye(int s) { (void)s; _exit(0); }' \
    'int main(void) { signal(SIGTERM, bye); signal(SIGINT, bye); for (;;) pause(); }' >"$w/pause.c"
  gcc -static -Os -o "$w/rootfs/pause" "$w/pause.c" || die "gcc -static failed (the pause image needs gcc and libc6-dev)"
  strip "$w/rootfs/pause" 2>/dev/null || true
  python3 - "$w" "$PAUSE_REF" <<'PY'
import hashlib, io, json, sys, tarfile
w, ref = sys.argv[1], sys.argv[2]
layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as t:
    t.add(f"{w}/rootfs/pause", arcname="pause")
layer_bytes = layer.getvalue()
config = json.dumps({"architecture": "amd64", "os": "linux",
                     "config": {"Entrypoint": ["/pause"]},
                     "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer_bytes).hexdigest()]}}).encode()
manifest = json.dumps([{"Config": "config.json", "RepoTags": [ref], "Layers": ["layer.tar"]}]).encode()
with tarfile.open(f"{w}/pause.tar", "w") as out:
    for name, data in (("layer.tar", layer_bytes), ("config.json", config), ("manifest.json", manifest)):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        out.addfile(info, io.BytesIO(data))
PY
}

start_containerd() {
  pid_of containerd >/dev/null && return 0
  write_containerd_config
  mkdir -p "$CTRD"
  local real=$BIN
  BIN=$(dirname "$(command -v containerd || die "no containerd: apt-get install containerd (scripts/install-host-deps.sh)")")
  spawn containerd --config "$CTRD/config.toml"
  BIN=$real
  wait_for "containerd of $NAME" ctr_ version || return 1
  make_pause_image
  ctr_ images import "$D/pause/pause.tar" >/dev/null || die "importing the pause image failed"
}

# Cluster DNS: one CoreDNS (toolchain/coredns.sh) per cluster, on the pod bridge's gateway address port 53 (the
# kubelet's clusterDNS: every pod's resolv.conf names it, with the search path <ns>.svc.cluster.local ...).
# It serves cluster.local from this cluster's API server (the kubernetes plugin with the admin kubeconfig):
# a headless Service's name answers with its ready pods' addresses, which pods reach directly over the bridge.
# A ClusterIP Service's name answers with its ClusterIP, which nothing here routes (the kit runs no kube-proxy).
# Other names go to this host's resolvers (/etc/resolv.conf); without any, CoreDNS refuses them at once, so
# an unknown name never hangs a pod. Its readiness (the kubernetes plugin has synced) is on loopback only.
start_coredns() {
  local ip=$1 port bin upstream=""
  pid_of coredns >/dev/null && return 0
  bin=${TFBOX_COREDNS_BIN:-}
  [ -n "$bin" ] || bin=$("$ROOT/toolchain/coredns.sh" | tail -n1)
  [ -x "$bin/coredns" ] || die "no coredns in $bin (toolchain/coredns.sh builds it)"
  [ -f "$D/port.coredns-ready" ] || free_port >"$D/port.coredns-ready"
  port=$(cat "$D/port.coredns-ready")
  if grep -q '^[[:space:]]*nameserver[[:space:]]' /etc/resolv.conf 2>/dev/null; then
    upstream=".:53 {
    bind $ip
    errors
    forward . /etc/resolv.conf
    cache 30
}"
  fi
  cat >"$D/Corefile" <<EOF
cluster.local:53 {
    bind $ip
    ready 127.0.0.1:$port
    errors
    log . {
        class denial error
    }
    kubernetes cluster.local {
        kubeconfig $KUBECONFIG_FILE
    }
    cache 5
}
$upstream
EOF
  local real=$BIN
  BIN=$bin
  spawn coredns -conf "$D/Corefile"
  BIN=$real
  wait_for "coredns of $NAME on $ip:53" curl -fsS "http://127.0.0.1:$port/ready"
}

real_node() {
  local node=$1 port
  [[ $node =~ ^[a-z0-9][a-z0-9.-]{0,62}$ ]] || die "NODE must be a DNS name: '$node'"
  [ -x /usr/lib/cni/bridge ] || die "no CNI plugins in /usr/lib/cni: apt-get install containernetworking-plugins"
  command -v runc >/dev/null || die "no runc: apt-get install runc"
  start_containerd || { stop_all; return 1; }
  # the node's address is the pod bridge's gateway, made here before CNI would: the kubelet listens there
  # (the API server reaches it for logs, exec and port-forward at the node's InternalIP) and it is this
  # host's own, reachable from nothing beyond it
  local bridge n node_ip
  read -r bridge n < <(cni_net)
  node_ip=10.214.$n.1
  if ! ip link show "$bridge" >/dev/null 2>&1; then
    ip link add "$bridge" type bridge || die "cannot make the bridge $bridge"
  fi
  ip addr show dev "$bridge" | grep -q " $node_ip/24 " || ip addr add "$node_ip/24" dev "$bridge"
  ip link set "$bridge" up
  start_coredns "$node_ip" || { stop_all; return 1; }
  if ! pid_of kubelet >/dev/null; then
    [ -f "$D/port.kubelet" ] || free_port >"$D/port.kubelet"
    port=$(cat "$D/port.kubelet")
    mkdir -p "$D/kubelet" "$D/pod-logs"
    cat >"$D/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
port: $port
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $D/pki/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$CTRD/containerd.sock
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
failCgroupV1: false
localStorageCapacityIsolation: false
protectKernelDefaults: false
makeIPTablesUtilChains: false
serializeImagePulls: false
podLogsDir: $D/pod-logs
resolvConf: /etc/resolv.conf
clusterDNS: [$node_ip]
clusterDomain: cluster.local
evictionHard: {memory.available: "1%", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
EOF
    spawn kubelet --config "$D/kubelet.yaml" --kubeconfig "$KUBECONFIG_FILE" --root-dir "$D/kubelet" \
      --cert-dir "$D/kubelet/pki" --hostname-override "$node" --node-ip "$node_ip" \
      --node-labels "tfbox.dev/node=real"
  fi
  wait_for "kubelet node $node" kc wait --for=condition=Ready "node/$node" --timeout=1s
}

# import_image REF|TARBALL: pull REF (plain HTTP from a local registry) or import a `docker save` tarball
# (.tar or .tar.zst, e.g. scripts/tf-image.sh's cache) into the real node's containerd
import_image() {
  pid_of containerd >/dev/null || die "no real node in $NAME (scripts/k8s.sh node $NAME)"
  case $1 in
    *.tar.zst) zstd -q -dc "$1" | ctr_ images import - >/dev/null || die "importing $1 failed" ;;
    *.tar) ctr_ images import "$1" >/dev/null || die "importing $1 failed" ;;
    *) ctr_ images pull --plain-http "$1" >/dev/null || die "pulling $1 into $NAME's containerd failed" ;;
  esac
}
