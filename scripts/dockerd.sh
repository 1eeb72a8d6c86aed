#!/usr/bin/env bash
# scripts/dockerd.sh - a private Docker daemon per NAME for tfbox's real-engine tests.
#
# Why: the e2e tests and `make` need a Docker host they own (no Docker Hub, no GPUs
# here), several at once, that looks like a GPU host to Docker: the daemon gets
# NVIDIA stand-ins from scripts/nvidia/ (nvidia-container-runtime-hook on its PATH,
# which turns on Docker's --gpus/device-request path, and a runtime named `nvidia`
# for the recipe's `--runtime=nvidia -e NVIDIA_VISIBLE_DEVICES=...`). Both log what
# they were asked for to RUN/NAME/nvidia.log. A test lists stand-in GPU processes in RUN/NAME/nvidia-apps.
#
# Usage:
#   scripts/dockerd.sh start NAME   start (or find running) daemon; prints DOCKER_HOST=unix://...
#   scripts/dockerd.sh stop NAME    graceful stop (containers stop), data kept
#   scripts/dockerd.sh purge NAME   stop and delete all its data
#   scripts/dockerd.sh env NAME     print DOCKER_HOST=unix://... (running or not)
#   scripts/dockerd.sh status NAME  exit 0 if it answers
# Everything lives under ${TFBOX_RUN:-/tmp/tfbox-run}/NAME/ (keep it short: unix
# socket paths are limited to ~100 chars). Each daemon has its own bridge
# (tfb-<hash>, 10.213.N.1/24) and address pool; iptables are off (unless TFBOX_NETNS), published ports
# go through docker-proxy on the host, so 127.0.0.1:PORT answers from the host.
# Environment: TFBOX_RUN, TFBOX_DOCKERD_BIN (see below), TFBOX_DOCKERD_TIMEOUT (seconds to wait, default 60),
#   TFBOX_NETNS: run the daemon inside that (existing) network namespace, with its bridge there and
#     iptables ON (Docker's inter-network isolation needs them; they change only that namespace's
#     tables). scripts/box.sh uses it for the SSH "boxes".
#   TFBOX_DOCKERD_GROUP: the group that owns the daemon's socket (who may use it; default docker).
#   TFBOX_DOCKERD_DEFAULT_RUNTIME: `nvidia` makes the stand-in runtime the daemon's default (a GPU host set up
#     with `nvidia-ctk runtime configure --set-as-default`): every container's NVIDIA_VISIBLE_DEVICES counts.
#   TFBOX_RUN_MODE: the mode a new run base gets (default 0700; scripts/run-base.sh refuses an unsafe one).
#   TFBOX_DOCKERD_NVIDIA_CDI=TOOLKIT_BIN:SPEC_DIR: runtime `nvidia` is NVIDIA's real runtime in CDI mode (below).
#   TFBOX_NVIDIA_DRIVER, TFBOX_NVIDIA_CUDA: the driver version and the CUDA version (MAJOR.MINOR) the
#     stand-in nvidia-smi reports and the stand-in hook checks images against (default 580.159.04 and
#     13.0, the real capture's); taken at each start.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUN_BASE=${TFBOX_RUN:-/tmp/tfbox-run}
TIMEOUT=${TFBOX_DOCKERD_TIMEOUT:-60}
NETNS=${TFBOX_NETNS:-}
SOCK_GROUP=${TFBOX_DOCKERD_GROUP:-}
NVIDIA_DRIVER=${TFBOX_NVIDIA_DRIVER:-580.159.04}
NVIDIA_CUDA=${TFBOX_NVIDIA_CUDA:-13.0}
NVIDIA_CDI=${TFBOX_DOCKERD_NVIDIA_CDI:-}

die() { echo "dockerd.sh: $*" >&2; exit 1; }
usage() { awk '/^# Usage:/ { on = 1 } /^set -euo/ { on = 0 } on' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

[ $# -eq 2 ] || usage
CMD=$1
NAME=$2
[[ $NAME =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$ ]] || die "NAME must be 1-32 chars of [A-Za-z0-9_.-]: '$NAME'"

# the base must be ours alone: it holds the daemons' sockets, pid files and configs (scripts/run-base.sh)
. "$HERE/run-base.sh"
[ "$CMD" = env ] || ensure_run_base "$RUN_BASE" "${TFBOX_RUN_MODE:-0700}" || die "refusing to use TFBOX_RUN=$RUN_BASE"

D=$RUN_BASE/$NAME
SOCK=$D/docker.sock
PIDFILE=$D/docker.pid
LOG=$D/dockerd.log
# Bridge names are limited to 15 chars.
BRIDGE=tfb-$(printf '%s' "$D" | sha256sum | cut -c1-10)
[ ${#SOCK} -lt 100 ] || die "socket path too long (${#SOCK} chars): $SOCK; set a shorter TFBOX_RUN"

# `ip` on the host, or inside the daemon's network namespace.
nsip() {
  if [ -n "$NETNS" ]; then ip -n "$NETNS" "$@"; else ip "$@"; fi
}

daemon_pid() {
  local pid
  [ -s "$PIDFILE" ] || return 1
  pid=$(cat "$PIDFILE")
  [ -n "$pid" ] && [ -d "/proc/$pid" ] && grep -q dockerd "/proc/$pid/comm" 2>/dev/null || return 1
  echo "$pid"
}

answers() {
  curl -sf --max-time 5 --unix-socket "$SOCK" http://docker/_ping >/dev/null 2>&1
}

# Pick (once, then remembered) a /24 for this daemon's bridge: 10.213.N.0/24 with N
# not used by another tfbox daemon under RUN_BASE nor by any interface on the host.
# A remembered N that another bridge took while this daemon was stopped is chosen again.
# Callers hold the machine-wide lock (see start), so two daemons starting at once,
# even under different RUN_BASEs, never pick the same N.
# (grep reads a captured listing, never a pipe from `ip`: with pipefail, `ip | grep -q` fails
# when grep exits first and ip gets SIGPIPE, which read as "free" and gave two bridges one subnet)
addresses() { nsip -4 -o addr show; }

subnet_taken_elsewhere() {
  local all
  all=$(addresses)
  grep " 10\.213\.$1\.1/" <<<"$all" | grep -v " $BRIDGE " >/dev/null
}

subnet_index() {
  local used n all
  if [ -s "$D/subnet" ]; then
    n=$(cat "$D/subnet")
    if ! subnet_taken_elsewhere "$n"; then echo "$n"; return; fi
    rm -f "$D/subnet"
  fi
  used=$(cat "$RUN_BASE"/*/subnet 2>/dev/null || true)
  all=$(addresses)
  for n in $(seq 1 254); do
    grep -qx "$n" <<<"$used" && continue
    grep -q " 10\.213\.$n\." <<<"$all" && continue
    echo "$n" > "$D/subnet"
    echo "$n"
    return
  done
  die "no free 10.213.N.0/24 left for a bridge"
}

setup_bridge() {
  local n=$1
  if ! nsip link show "$BRIDGE" >/dev/null 2>&1; then
    nsip link add name "$BRIDGE" type bridge || die "cannot create bridge $BRIDGE (need root)"
  fi
  if subnet_taken_elsewhere "$n"; then
    die "10.213.$n.1 (remembered in $D/subnet) is taken by another interface; purge $NAME or free it"
  fi
  local mine
  mine=$(nsip -4 -o addr show dev "$BRIDGE")
  if ! grep -q " 10\.213\.$n\.1/24" <<<"$mine"; then
    nsip addr flush dev "$BRIDGE"
    nsip addr add "10.213.$n.1/24" dev "$BRIDGE"
  fi
  nsip link set "$BRIDGE" up
}

install_standins() {
  local bin=$D/bin runc f
  runc=$(command -v runc || true)
  [ -n "$runc" ] || die "runc not found (scripts/install-host-deps.sh installs docker.io)"
  [[ $NVIDIA_DRIVER =~ ^[0-9]+(\.[0-9]+)*$ ]] || die "TFBOX_NVIDIA_DRIVER must be a version such as 580.159.04: '$NVIDIA_DRIVER'"
  [[ $NVIDIA_CUDA =~ ^[0-9]+\.[0-9]+$ ]] || die "TFBOX_NVIDIA_CUDA must be MAJOR.MINOR such as 13.0: '$NVIDIA_CUDA'"
  mkdir -p "$bin"
  for f in nvidia-container-runtime-hook nvidia-container-runtime nvidia-smi; do
    sed -e "s#@NVIDIA_LOG@#$D/nvidia.log#g" -e "s#@NVIDIA_APPS@#$D/nvidia-apps#g" -e "s#@NVIDIA_SMI@#$bin/nvidia-smi#g" -e "s#@RUNC@#$runc#g" \
      -e "s#^DRIVER=.*#DRIVER=$NVIDIA_DRIVER#" -e "s#^CUDA=.*#CUDA=$NVIDIA_CUDA#" \
      "$HERE/nvidia/$f" > "$bin/$f.tmp"
    chmod 755 "$bin/$f.tmp"
    mv -f "$bin/$f.tmp" "$bin/$f"
  done
}

# TFBOX_DOCKERD_NVIDIA_CDI=TOOLKIT_BIN:SPEC_DIR: runtime `nvidia` is the NVIDIA Container Toolkit's real
# nvidia-container-runtime (TOOLKIT_BIN, e.g. the one scripts/gpu-proof/bundle.sh builds) in CDI mode with
# the CDI specs of SPEC_DIR, as on a current GPU host; the hook only switches on Docker's --gpus path.
install_cdi_runtime() {
  local toolkit=${NVIDIA_CDI%%:*} specs=${NVIDIA_CDI#*:} runc
  [ -x "$toolkit/nvidia-container-runtime" ] || die "TFBOX_DOCKERD_NVIDIA_CDI: no nvidia-container-runtime in '$toolkit'"
  [ -d "$specs" ] || die "TFBOX_DOCKERD_NVIDIA_CDI: no CDI spec directory '$specs'"
  runc=$(command -v runc)
  printf '[nvidia-container-runtime]\nmode = "cdi"\nruntimes = ["%s"]\n\n[nvidia-container-runtime.modes.cdi]\ndefault-kind = "nvidia.com/gpu"\nspec-dirs = ["%s"]\n' \
    "$runc" "$specs" > "$D/bin/nvidia-cdi.toml"
  printf '#!/bin/sh\nNVIDIA_CTK_CONFIG_FILE_PATH=%s exec %s "$@"\n' "$D/bin/nvidia-cdi.toml" "$toolkit/nvidia-container-runtime" \
    > "$D/bin/nvidia-container-runtime"
  printf '#!/bin/sh\nexit 0\n' > "$D/bin/nvidia-container-runtime-hook"
  chmod 755 "$D/bin/nvidia-container-runtime" "$D/bin/nvidia-container-runtime-hook"
}

write_config() {
  local n=$1 default_runtime=
  # TFBOX_DOCKERD_DEFAULT_RUNTIME=nvidia: every container runs under the stand-in nvidia runtime unless it names
  # another, as on GPU hosts set up with `nvidia-ctk runtime configure --set-as-default`
  case ${TFBOX_DOCKERD_DEFAULT_RUNTIME:-} in
    '') ;;
    nvidia|runc) default_runtime="\"default-runtime\": \"$TFBOX_DOCKERD_DEFAULT_RUNTIME\"," ;;
    *) die "TFBOX_DOCKERD_DEFAULT_RUNTIME must be nvidia or runc: '$TFBOX_DOCKERD_DEFAULT_RUNTIME'" ;;
  esac
  cat > "$D/daemon.json" <<EOF
{
  $default_runtime
  "runtimes": {
    "nvidia": { "path": "$D/bin/nvidia-container-runtime" }
  },
  "default-address-pools": [ { "base": "10.214.$n.0/24", "size": 28 } ]
}
EOF
}

cmd_start() {
  command -v dockerd >/dev/null || die "dockerd not found (run scripts/install-host-deps.sh)"
  command -v docker >/dev/null || die "docker CLI not found (run scripts/install-host-deps.sh)"
  mkdir -p "$D"
  exec 9>"$D/.lock"
  flock -w "$TIMEOUT" 9 || die "timed out waiting for another start/stop of $NAME"
  if daemon_pid >/dev/null && answers; then
    echo "DOCKER_HOST=unix://$SOCK"
    return
  fi
  if pid=$(daemon_pid); then
    # A daemon of ours that does not answer: stop it before starting a new one.
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 $((TIMEOUT * 5))); do [ -d "/proc/$pid" ] || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE" "$SOCK"
  local n
  exec 8>"${TMPDIR:-/tmp}/tfbox-dockerd-subnets.lock"
  flock 8
  n=$(subnet_index)
  setup_bridge "$n"
  flock -u 8
  install_standins
  [ -z "$NVIDIA_CDI" ] || install_cdi_runtime
  write_config "$n"
  mkdir -p "$D/data" "$D/exec"
  # Outside a namespace of its own the daemon must leave the host's firewall alone; inside one,
  # iptables on as on a real host (published ports, masquerading, isolation between networks).
  local net_flags=(--iptables=false --ip-masq=false) wrap=()
  if [ -n "$NETNS" ]; then net_flags=(--iptables=true --ip-masq=true); wrap=(nsenter "--net=/run/netns/$NETNS"); fi
  [ -z "$SOCK_GROUP" ] || net_flags+=(--group "$SOCK_GROUP")
  # The stand-in hook must be on the daemon's PATH when it starts.
  # TFBOX_DOCKERD_BIN: a directory with another dockerd (and its docker-proxy, docker-init) to run instead,
  # e.g. the newer Docker that scripts/docker-next.sh unpacks
  PATH="$D/bin:${TFBOX_DOCKERD_BIN:+$TFBOX_DOCKERD_BIN:}/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    setsid "${wrap[@]}" dockerd \
      --config-file "$D/daemon.json" \
      --host "unix://$SOCK" \
      --data-root "$D/data" \
      --exec-root "$D/exec" \
      --pidfile "$PIDFILE" \
      --bridge "$BRIDGE" \
      "${net_flags[@]}" \
      --cgroup-parent "tfbox-$NAME" \
      --storage-driver overlay2 \
      </dev/null >>"$LOG" 2>&1 8>&- 9>&- &
  local child=$! i
  for i in $(seq 1 $((TIMEOUT * 5))); do
    if answers && DOCKER_HOST="unix://$SOCK" docker info >/dev/null 2>&1; then
      echo "DOCKER_HOST=unix://$SOCK"
      return
    fi
    if ! kill -0 "$child" 2>/dev/null; then
      echo "dockerd.sh: dockerd for $NAME exited; last lines of $LOG:" >&2
      tail -n 20 "$LOG" >&2
      exit 1
    fi
    sleep 0.2
  done
  echo "dockerd.sh: dockerd for $NAME did not answer within ${TIMEOUT}s; last lines of $LOG:" >&2
  tail -n 20 "$LOG" >&2
  exit 1
}

# Containers of a stopped daemon leave no processes; a killed one may leave shims.
stop_daemon() {
  local pid i
  if pid=$(daemon_pid); then
    kill -TERM "$pid"
    # dockerd stops containers (their own stop timeouts, 10s default) then exits.
    for i in $(seq 1 $((TIMEOUT * 5))); do [ -d "/proc/$pid" ] || break; sleep 0.2; done
    if [ -d "/proc/$pid" ]; then
      echo "dockerd.sh: dockerd $NAME (pid $pid) did not stop in ${TIMEOUT}s, killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      sleep 1
    fi
  fi
  # Leftovers of this daemon only: processes whose command line names our exec-root.
  for pid in $(pgrep -f -- "$D/exec/" || true); do kill -KILL "$pid" 2>/dev/null || true; done
  rm -f "$PIDFILE" "$SOCK"
  if nsip link show "$BRIDGE" >/dev/null 2>&1; then nsip link del "$BRIDGE" 2>/dev/null || true; fi
}

unmount_all() {
  local m
  # Deepest first.
  for m in $(awk -v d="$D/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
}

cmd_stop() {
  [ -d "$D" ] || return 0
  exec 9>"$D/.lock"
  flock -w "$TIMEOUT" 9 || die "timed out waiting for another start/stop of $NAME"
  stop_daemon
  unmount_all
}

cmd_purge() {
  [ -d "$D" ] || return 0
  cmd_stop
  unmount_all
  if awk -v d="$D/" 'index($2, d) == 1 { f = 1 } END { exit !f }' /proc/self/mounts; then
    die "still mounted below $D; not deleting it"
  fi
  rm -rf --one-file-system "$D"
}

case $CMD in
  start) cmd_start ;;
  stop) cmd_stop ;;
  purge) cmd_purge ;;
  env) echo "DOCKER_HOST=unix://$SOCK" ;;
  status) daemon_pid >/dev/null && answers ;;
  *) usage ;;
esac
