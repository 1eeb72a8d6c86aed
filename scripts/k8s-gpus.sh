# scripts/k8s-gpus.sh - GPUs for the real node of scripts/k8s.sh (sourced by it, not run): the stand-in
# NVIDIA device plugin (toolchain/gpu-plugin.sh builds it) registered with the node's kubelet.
#
# Why: the real node has no GPUs; the kubelet's own device manager, fed by this plugin, makes it advertise
# `nvidia.com/gpu`, hand devices to containers (NVIDIA_VISIBLE_DEVICES + the stand-in nvidia-smi of
# scripts/nvidia/, mounted read-only) and drop allocatable when a device turns unhealthy, as with NVIDIA's
# plugin. No real GPU, driver, NVML or CUDA is involved.
# It registers through the kubelet's plugin watcher ($D/kubelet/plugins_registry): the older device-plugins
# socket is fixed at /var/lib/kubelet/device-plugins, shared by every kit kubelet on the host.
# Its control files live in $D/gpu-plugin/ (unhealthy, no-smi: see toolchain/gpu-plugin/main.go).

GPU_PLUGIN=tfbox-gpu-plugin

gpu_plugin_bin() {
  if [ -n "${TFBOX_GPU_PLUGIN_BIN:-}" ]; then echo "$TFBOX_GPU_PLUGIN_BIN"; return; fi
  "$ROOT/toolchain/gpu-plugin.sh" | tail -n1
}

real_node_name() { kc get nodes -l tfbox.dev/node=real -o jsonpath='{.items[0].metadata.name}' 2>/dev/null; }

# node_gpus WHICH: the real node's capacity or allocatable nvidia.com/gpu ("" when it has none)
node_gpus() { kc get node "$(real_node_name)" -o jsonpath="{.status.$1.nvidia\\.com/gpu}" 2>/dev/null; }

# gpus COUNT [unhealthy=I,J..] [no-smi]: COUNT GPUs on the real node, those listed unhealthy (indices or
# UUIDs); with no-smi, containers get no nvidia-smi. Rerun to change health: the plugin rereads its files.
# Waits until the node's allocatable says so.
gpus() {
  local count=${1:?COUNT} unhealthy="" no_smi=false arg want
  shift
  [[ $count =~ ^[1-8]$ ]] || die "COUNT must be 1..8: '$count'"
  for arg in "$@"; do
    case $arg in
      unhealthy=*) unhealthy=${arg#unhealthy=}; [[ $unhealthy =~ ^[A-Za-z0-9,-]*$ ]] || die "unhealthy=I,J: '$arg'" ;;
      no-smi) no_smi=true ;;
      *) die "gpus NAME COUNT [unhealthy=I,J..] [no-smi]: '$arg'" ;;
    esac
  done
  pid_of kubelet >/dev/null && [ -d "$D/kubelet/plugins_registry" ] || die "no real node in $NAME (scripts/k8s.sh node $NAME)"
  local g=$D/gpu-plugin
  mkdir -p "$g"
  tr ',' '\n' <<<"$unhealthy" | sed '/^$/d' >"$g/unhealthy.new" && mv "$g/unhealthy.new" "$g/unhealthy"
  if $no_smi; then touch "$g/no-smi"; else rm -f "$g/no-smi"; fi
  if [ "$(cat "$g/count" 2>/dev/null)" != "$count" ]; then stop_proc "$GPU_PLUGIN"; fi
  if ! pid_of "$GPU_PLUGIN" >/dev/null; then
    install -m 0755 "$ROOT/scripts/nvidia/nvidia-smi" "$g/nvidia-smi"
    echo "$count" >"$g/count"
    local real=$BIN
    BIN=$(gpu_plugin_bin)
    [ -x "$BIN/$GPU_PLUGIN" ] || die "no $GPU_PLUGIN in $BIN (toolchain/gpu-plugin.sh builds it)"
    spawn "$GPU_PLUGIN" --registry-dir "$D/kubelet/plugins_registry" --count "$count" \
      --nvidia-smi "$g/nvidia-smi" --state-dir "$g" --poll 500ms
    BIN=$real
  fi
  want=$((count - $(sed '/^$/d' "$g/unhealthy" | wc -l)))
  local deadline=$((SECONDS + TIMEOUT))
  while [ "$SECONDS" -lt "$deadline" ]; do
    [ "$(node_gpus capacity)" = "$count" ] && [ "$(node_gpus allocatable)" = "$want" ] && return 0
    sleep 0.5
  done
  die "the real node of $NAME shows nvidia.com/gpu capacity '$(node_gpus capacity)', allocatable '$(node_gpus allocatable)' (wanted $count, $want); $D/$GPU_PLUGIN.log: $(tail -n 5 "$D/$GPU_PLUGIN.log" 2>/dev/null)"
}
