#!/usr/bin/env bash
# scripts/gpu-proof/run.sh - the GPU proof: tfbox's own `pulumi up` on this GPU host, checked as a user would.
#
# Why: tfbox's GPU rows are proven in CI with stand-ins only; this proves them on a real GPU host with one
# command, without network, Docker or the NVIDIA Container Toolkit installed there (docs/gpu-proof.md).
# Run as root, on the GPU host, with a bundle made by `make gpu-proof-bundle` (scripts/gpu-proof/bundle.sh):
#
#   sudo ./run.sh                 # inside the bundle directory (bundle.sh puts a copy of this script there)
#   sudo scripts/gpu-proof/run.sh BUNDLE_DIR
#
# It verifies and joins the bundle's parts (MANIFEST.sha256), unpacks them under the work directory,
# starts a private Docker daemon with the NVIDIA runtime in CDI mode (nvidia-ctk cdi generate), builds a
# notebook image from this host's Python (torch/jax/numpy/tensorboard and their CUDA libraries, plus the
# bundle's Jupyter wheels; scripts/gpu-proof/build_image.py), makes the project's .venv from the bundle's
# wheels and runs the checks (scripts/gpu-proof/proof.py): `pulumi up` through scripts/up.sh in both GPU
# modes, the GPU and CUDA checks, absent GPUs, login, a kernel on the GPU, TensorBoard, doctor, no-change
# second run, destroy keeping the notebooks. It prints one summary, writes the whole log to a file, and
# exits non-zero if any check failed. The host is left as found: the daemon, its data and the libraries it
# had to add are removed at the end (TFBOX_GPU_PROOF_KEEP=1 keeps the work directory).
#
# Environment:
#   TFBOX_GPU_PROOF_WORK       work directory (default /var/tmp/tfbox-gpu-proof; emptied first)
#   TFBOX_GPU_PROOF_LOG        the full log (default $TFBOX_GPU_PROOF_WORK.log, outside the work directory)
#   TFBOX_GPU_PROOF_PYTHON     the host's Python with torch and/or jax, numpy and tensorboard (default python3)
#   TFBOX_GPU_PROOF_NVIDIA_LIB where the driver's libraries are (default: the directory of libcuda.so.1)
#   TFBOX_GPU_PROOF_LIBRARY    the GPU library the image takes from the host: auto (torch if installed, else jax),
#                              torch, jax or both (each brings GBs of CUDA libraries)
#   TFBOX_GPU_PROOF_STORAGE    the daemon's storage driver (default overlay2, falling back to vfs, which copies the
#                              whole image for every container: put the work directory on ext4/xfs, not on overlayfs)
#   TFBOX_GPU_PROOF_POOL       address pool of the daemon's networks (default 10.218.0.0/16)
#   TFBOX_GPU_PROOF_REHEARSAL  a fake GPU host (scripts/gpu-proof/fake-host.sh) for CI: the NVIDIA stand-ins
#                              (scripts/nvidia/) replace the toolkit's CDI runtime and hook; nothing else changes
#   TFBOX_GPU_PROOF_CDI=1      with a fake host: the toolkit's real runtime in CDI mode instead of the stand-ins,
#                              with the fake host's hand-written CDI spec (no GPU: only `cdi generate` is skipped)
set -euo pipefail

BUNDLE=$(cd "${1:-$(dirname "${BASH_SOURCE[0]}")}" && pwd)
WORK=${TFBOX_GPU_PROOF_WORK:-/var/tmp/tfbox-gpu-proof}
LOG=${TFBOX_GPU_PROOF_LOG:-$WORK.log}
HOSTPY=${TFBOX_GPU_PROOF_PYTHON:-python3}
REHEARSAL=${TFBOX_GPU_PROOF_REHEARSAL:-}
STORAGE=${TFBOX_GPU_PROOF_STORAGE:-overlay2}
POOL=${TFBOX_GPU_PROOF_POOL:-10.218.0.0/16}
LIBDIR=/usr/lib/x86_64-linux-gnu

die() { echo "run.sh: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "run as root: it starts a Docker daemon"
[ -f "$BUNDLE/MANIFEST.sha256" ] || die "$BUNDLE has no MANIFEST.sha256: give the directory \`make gpu-proof-bundle\` made"
HOSTPY=$(command -v "$HOSTPY") || die "no Python '${TFBOX_GPU_PROOF_PYTHON:-python3}' on this host (set TFBOX_GPU_PROOF_PYTHON)"
if [ -n "$REHEARSAL" ]; then REHEARSAL=$(cd "$REHEARSAL" && pwd) || die "no fake host at $TFBOX_GPU_PROOF_REHEARSAL"; fi
case $WORK in /*) ;; *) die "TFBOX_GPU_PROOF_WORK must be absolute" ;; esac
[ ${#WORK} -lt 60 ] || die "TFBOX_GPU_PROOF_WORK is too long for the daemon's socket path: $WORK"

D=$WORK/d                # the daemon's files
SOCK=$D/docker.sock
CHECKS=$WORK/checks.tsv  # one line per check: name, PASS/FAIL, seconds, detail (proof.py prints the summary)
ADDED=$WORK/added-libs   # libraries this run put into $LIBDIR, removed again at the end

cleanup() {
  local status=$? m daemon_pid
  daemon_pid=$(cat "$D/dockerd.child" 2>/dev/null || true)
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$daemon_pid" 2>/dev/null || true
  fi
  # shims and containers of this daemon only: their command lines name its exec-root
  for m in /proc/[0-9]*; do  # (no pgrep: a minimal GPU host may lack procps)
    tr '\0' ' ' <"$m/cmdline" 2>/dev/null | grep -qF -- "$D/exec/" && kill -KILL "${m#/proc/}" 2>/dev/null
  done
  for m in $(awk -v d="$WORK/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  if [ -f "$ADDED" ]; then while IFS= read -r m; do rm -f "$m"; done <"$ADDED"; fi
  if [ "${TFBOX_GPU_PROOF_KEEP:-}" != 1 ] && ! awk -v d="$WORK/" 'index($2, d) == 1 { f = 1 } END { exit !f }' /proc/self/mounts; then
    rm -rf --one-file-system "$WORK"
  fi
  exit "$status"
}

# step NAME CMD...: a check of its own, timed, its output in the log only. The command runs in a background
# subshell so that `set -e` holds inside it (in a function called from a condition bash ignores it); what
# it starts or adds is recorded in files ($D/dockerd.child, $ADDED) for cleanup.
step() {
  local name=$1 t0 rc=0
  shift
  t0=$(date +%s.%N)
  printf '\n==== %s (%s)\n' "$name" "$(date -u +%H:%M:%S)" >>"$LOG"
  (set -e; "$@") >>"$LOG" 2>&1 </dev/null &
  wait $! || rc=$?
  local took
  took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  if [ $rc -eq 0 ]; then
    printf '%s\tPASS\t%s\t\n' "$name" "$took" >>"$CHECKS"
  else
    printf '%s\tFAIL\t%s\texit %s, see the log\n' "$name" "$took" "$rc" >>"$CHECKS"
    printf '%s failed (exit %s); last lines of %s:\n' "$name" "$rc" "$LOG" >&2
    tail -n 25 "$LOG" >&2
    summary
    exit 1
  fi
}

summary() {
  if [ -x "$WORK/project/.venv/bin/python" ]; then
    "$WORK/project/.venv/bin/python" "$WORK/project/scripts/gpu-proof/proof.py" summary --checks "$CHECKS" --log "$LOG" || true
  else
    "$HOSTPY" - "$CHECKS" "$LOG" <<'EOF' || true
import sys
print("GPU proof: FAILED before the checks could run (log: %s)" % sys.argv[2])
for line in open(sys.argv[1]):
    name, verdict, took, detail = (line.rstrip("\n").split("\t") + ["", "", ""])[:4]
    print(f"  {verdict:4}  {took:>6} s  {name}  {detail}")
EOF
  fi
}

# ---------------------------------------------------------------- 1. bundle: verify, join, unpack
verify_and_unpack() {
  local archive parts
  (cd "$BUNDLE" && grep '\.part[0-9]*$' MANIFEST.sha256 | sha256sum --quiet -c -)
  for archive in base.tar.xz project.tar.xz; do
    parts=$(cd "$BUNDLE" && ls "$archive".part* | LC_ALL=C sort)
    [ -n "$parts" ] || { echo "no parts of $archive in $BUNDLE"; return 1; }
    (cd "$BUNDLE" && cat $parts) > "$WORK/$archive"
    (cd "$WORK" && grep "  $archive\$" "$BUNDLE/MANIFEST.sha256" | sha256sum --quiet -c -)
  done
  mkdir -p "$WORK/base"
  # xz where the host has it, else Python's own lzma (every CPython has it)
  if command -v xz >/dev/null; then
    xz -dc "$WORK/base.tar.xz" | tar -C "$WORK/base" -xf -
    xz -dc "$WORK/project.tar.xz" | tar -C "$WORK" -xf -
  else
    "$HOSTPY" -c 'import sys, tarfile; [tarfile.open(a, "r:xz").extractall(d) for a, d in ((sys.argv[1], sys.argv[2]), (sys.argv[3], sys.argv[4]))]' \
      "$WORK/base.tar.xz" "$WORK/base" "$WORK/project.tar.xz" "$WORK"
  fi
  rm -f "$WORK/base.tar.xz" "$WORK/project.tar.xz"
  cat "$WORK/base/VERSIONS"
  local want have
  want=$(sed -n 's/^python=//p' "$WORK/base/VERSIONS")
  have=$("$HOSTPY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  [ "$want" = "$have" ] || { echo "the bundle's wheels are for Python $want, $HOSTPY is $have: make the bundle with TFBOX_GPU_PROOF_PYTHON_VERSION=$have"; return 1; }
}

# ---------------------------------------------------------------- 2. the daemon, with the NVIDIA runtime
# Debian's dockerd needs these two in the system's library directory: it re-executes itself to unpack
# layers, and an LD_LIBRARY_PATH does not reach that (shared notes, gpu-machine-facts.md).
install_libs() {
  local lib
  for lib in "$WORK"/base/docker/lib/*; do
    if [ ! -e "$LIBDIR/$(basename "$lib")" ]; then
      install -m 0644 "$lib" "$LIBDIR/"
      echo "$LIBDIR/$(basename "$lib")" >>"$ADDED"
      echo "added $LIBDIR/$(basename "$lib") (removed again at the end)"
    fi
  done
}

nvidia_lib_dir() {
  local dir=${TFBOX_GPU_PROOF_NVIDIA_LIB:-}
  if [ -z "$dir" ]; then
    dir=$(ldconfig -p 2>/dev/null | awk '$1 == "libcuda.so.1" && /x86-64/ { print $NF; exit }')
    [ -n "$dir" ] || dir=$(ls /usr/local/nvidia/lib64/libcuda.so.1 /usr/lib/x86_64-linux-gnu/libcuda.so.1 2>/dev/null | head -n 1)
    [ -n "$dir" ] && dir=$(dirname "$(readlink -f "$dir")")
  fi
  [ -n "$dir" ] || { echo "libcuda.so.1 not found: set TFBOX_GPU_PROOF_NVIDIA_LIB to the driver's library directory"; return 1; }
  echo "$dir"
}

# The toolkit's CDI path: a CDI spec of this host's GPUs, and nvidia-container-runtime in CDI mode
# (with its config file named by NVIDIA_CTK_CONFIG_FILE_PATH, so nothing is written to /etc).
nvidia_cdi() {
  local nv=$WORK/base/nvidia/bin libdir
  mkdir -p "$D/cdi" "$D/nvidia"
  "$nv/nvidia-ctk" --version
  if [ -n "$REHEARSAL" ]; then
    # TFBOX_GPU_PROOF_CDI=1 on a fake host: the real runtime, with the fake host's hand-written spec
    cp "$REHEARSAL/cdi/nvidia.yaml" "$D/cdi/nvidia.yaml"
    echo "REHEARSAL (CDI): the real nvidia-container-runtime with the fake host's CDI spec (no nvidia-ctk cdi generate)"
  else
    libdir=$(nvidia_lib_dir)
    "$nv/nvidia-ctk" cdi generate --output="$D/cdi/nvidia.yaml" --nvidia-cdi-hook-path="$nv/nvidia-cdi-hook" \
      --library-search-path="$libdir"
  fi
  "$nv/nvidia-ctk" cdi list --spec-dir="$D/cdi"
  cat > "$D/nvidia/config.toml" <<EOF
[nvidia-container-runtime]
mode = "cdi"
runtimes = ["$WORK/base/docker/bin/runc"]

[nvidia-container-runtime.modes.cdi]
default-kind = "nvidia.com/gpu"
spec-dirs = ["$D/cdi"]

[nvidia-ctk]
path = "$nv/nvidia-ctk"
EOF
  printf '#!/bin/sh\nNVIDIA_CTK_CONFIG_FILE_PATH=%s exec %s "$@"\n' "$D/nvidia/config.toml" "$nv/nvidia-container-runtime" \
    > "$D/nvidia/nvidia-container-runtime"
  # dockerd takes the --gpus (device request) path only when this hook is on its PATH; in CDI mode the
  # runtime injects the devices, so an always-succeeding hook is all it needs (as on CI's daemons)
  printf '#!/bin/sh\nexit 0\n' > "$D/nvidia/nvidia-container-runtime-hook"
  chmod 755 "$D/nvidia/nvidia-container-runtime" "$D/nvidia/nvidia-container-runtime-hook"
  echo "runtime nvidia: $nv/nvidia-container-runtime in CDI mode, spec $D/cdi/nvidia.yaml"
}

# The rehearsal's swap (CI, no GPU): the stand-in runtime and hook of scripts/nvidia/, as scripts/dockerd.sh
# installs them, with the fake host's stand-in nvidia-smi put into GPU containers.
nvidia_standins() {
  local f smi=$REHEARSAL/container/nvidia-smi
  [ -f "$smi" ] || { echo "the fake host $REHEARSAL has no container/nvidia-smi"; return 1; }
  mkdir -p "$D/nvidia"
  cp "$smi" "$D/nvidia/nvidia-smi"
  for f in nvidia-container-runtime nvidia-container-runtime-hook; do
    sed -e "s#@NVIDIA_LOG@#$D/nvidia.log#g" -e "s#@NVIDIA_APPS@#$D/nvidia-apps#g" -e "s#@NVIDIA_SMI@#$D/nvidia/nvidia-smi#g" \
      -e "s#@RUNC@#$WORK/base/docker/bin/runc#g" "$WORK/project/scripts/nvidia/$f" > "$D/nvidia/$f"
    chmod 755 "$D/nvidia/$f"
  done
  "$WORK/base/nvidia/bin/nvidia-ctk" --version  # the toolkit is carried and runs; its CDI path needs a GPU
  echo "REHEARSAL: runtime nvidia and the hook are the stand-ins of scripts/nvidia/ (no GPU here)"
}

start_daemon() {
  local driver=$1 default_runtime=$2 i
  rm -rf "$D/data" "$D/exec" "$SOCK" "$D/docker.pid"
  mkdir -p "$D/data" "$D/exec"
  cat > "$D/daemon.json" <<EOF
{
  "runtimes": { "nvidia": { "path": "$D/nvidia/nvidia-container-runtime" } },
  "default-runtime": "$default_runtime",
  "default-address-pools": [ { "base": "$POOL", "size": 24 } ],
  "storage-driver": "$driver"
}
EOF
  # no firewall changes, no docker0: tfbox makes its own network, and published ports go through docker-proxy
  PATH="$D/nvidia:$WORK/base/docker/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    setsid dockerd --config-file "$D/daemon.json" --host "unix://$SOCK" --data-root "$D/data" --exec-root "$D/exec" \
      --pidfile "$D/docker.pid" --bridge none --iptables=false --ip-forward=false --ip-masq=false \
      </dev/null >>"$D/dockerd.log" 2>&1 &
  local daemon_pid=$!
  echo "$daemon_pid" > "$D/dockerd.child"
  for i in $(seq 1 300); do
    if DOCKER_HOST=unix://$SOCK docker info >/dev/null 2>&1; then
      DOCKER_HOST=unix://$SOCK docker info --format 'Docker {{.ServerVersion}}, storage {{.Driver}}, runtimes {{json .Runtimes}}, default {{.DefaultRuntime}}'
      return 0
    fi
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.2
  done
  echo "dockerd ($driver) did not come up; last lines of $D/dockerd.log:"
  tail -n 15 "$D/dockerd.log"
  kill -KILL "$daemon_pid" 2>/dev/null || true
  rm -f "$D/dockerd.child"
  return 1
}

daemon() {
  install_libs
  # the stand-in rehearsal keeps runc as the default, as CI's daemons do; with the toolkit the NVIDIA runtime
  # is the default, so that device requests (--gpus) go through its CDI injection too
  local default=nvidia
  if [ -n "$REHEARSAL" ] && [ "${TFBOX_GPU_PROOF_CDI:-}" != 1 ]; then nvidia_standins; default=runc; else nvidia_cdi; fi
  start_daemon "$STORAGE" "$default" && return 0
  [ "$STORAGE" = vfs ] && return 1
  echo "falling back to the vfs storage driver"
  start_daemon vfs "$default"
}

# ---------------------------------------------------------------- 3. the project's .venv from the bundle's wheels
venv() {
  local p=$WORK/project pip
  pip=$(ls "$WORK"/base/wheels/pip/pip-*.whl)
  "$HOSTPY" -m venv --without-pip "$p/.venv"
  "$p/.venv/bin/python" "$pip/pip" install -q --no-index --disable-pip-version-check --find-links "$WORK/base/wheels/venv" \
    -r "$p/requirements.txt" websocket-client
  touch "$p/.venv/.runtime"  # the Makefile's stamp: `make up` there would not reinstall from the network
  "$p/.venv/bin/python" -c 'import pulumi, pulumi_docker, websocket; print("venv ok: pulumi", pulumi.__version__ if hasattr(pulumi, "__version__") else "")'
}

# ---------------------------------------------------------------- main
mkdir -p "$(dirname "$WORK")"
if [ -d "$WORK" ]; then
  # a work directory of an interrupted earlier run: nothing may still be mounted below it
  if awk -v d="$WORK/" 'index($2, d) == 1 { f = 1 } END { exit !f }' /proc/self/mounts; then die "still mounted below $WORK"; fi
  rm -rf --one-file-system "$WORK"
fi
mkdir -p "$WORK" "$D"
: > "$LOG"
: > "$CHECKS"
trap cleanup EXIT
trap 'exit 130' INT TERM
echo "GPU proof on $(hostname), bundle $BUNDLE, log $LOG${REHEARSAL:+ (REHEARSAL with the fake host $REHEARSAL)}" | tee -a "$LOG"

step "bundle: parts verified, joined, unpacked" verify_and_unpack
export PATH="$WORK/base/docker/bin:$PATH"
label=
[ -z "$REHEARSAL" ] || label=" (stand-ins)"
[ -z "$REHEARSAL" ] || [ "${TFBOX_GPU_PROOF_CDI:-}" != 1 ] || label=" (CDI, the fake host's spec)"
step "Docker daemon with the NVIDIA runtime$label" daemon
step "notebook image from the host's Python" "$HOSTPY" "$WORK/project/scripts/gpu-proof/build_image.py" \
  --docker-host "unix://$SOCK" --wheels "$WORK/base/wheels/jupyter" --pip "$(ls "$WORK"/base/wheels/pip/pip-*.whl)" \
  --bashrc "$WORK/project/scripts/tf-image/bash.bashrc" --work "$WORK/image" --tag tfbox-gpu-proof/notebook:gpu
step "project .venv from the bundle's wheels" venv

rc=0
PATH="$WORK/base/toolchain/bin:$PATH" "$WORK/project/.venv/bin/python" "$WORK/project/scripts/gpu-proof/proof.py" checks \
  --project "$WORK/project" --docker-host "unix://$SOCK" --image tfbox-gpu-proof/notebook:gpu --checks "$CHECKS" --log "$LOG" \
  ${REHEARSAL:+--rehearsal} || rc=$?
"$WORK/project/.venv/bin/python" "$WORK/project/scripts/gpu-proof/proof.py" summary --checks "$CHECKS" --log "$LOG" || rc=1
exit "$rc"
