#!/usr/bin/env bash
# scripts/gpu-proof/fake-host.sh - a fake GPU host for rehearsing the GPU proof where there is no GPU (CI).
#
# Why: run.sh is meant for a real GPU host; its rehearsal in CI (tests/e2e/test_gpu_proof.py) runs the very
# same entry point and bundle against this stand-in, so that every step but the GPU's own answers runs on
# each CI run. No chroot: a directory with what run.sh looks for on a GPU host, laid out like the real H200
# host of ../shared/notes/gpu-machine-facts.md (one GPU, driver 580.159.04, CUDA 13.0):
#   DIR/usr/local/nvidia/bin/nvidia-smi  the host's nvidia-smi: the stand-in of scripts/nvidia/ with one GPU,
#                                        which answers like the real capture (../shared/testdata/nvidia-smi/)
#   DIR/container/nvidia-smi             the same stand-in as GPU containers get it (through the stand-in hook)
#   DIR/cdi/nvidia.yaml                  a hand-written CDI spec of that GPU (nvidia.com/gpu=0, its UUID, all), which
#                                        mounts the stand-in at /usr/local/nvidia/bin/nvidia-smi, for TFBOX_GPU_PROOF_CDI=1
#                                        (the toolkit's real runtime in CDI mode, without `nvidia-ctk cdi generate`)
#   DIR/python                           the host's Python: a venv of this machine's python3 with numpy and
#                                        tensorboard (the GPU host's Python has torch and jax besides), made once
#                                        and cached under $TFBOX_CACHE/gpu-proof/
# Usage: scripts/gpu-proof/fake-host.sh DIR
#   prints the environment for run.sh: PATH (the fake nvidia-smi first), TFBOX_GPU_PROOF_PYTHON and
#   TFBOX_GPU_PROOF_REHEARSAL=DIR, which swaps the NVIDIA Container Toolkit's CDI runtime and hook for the
#   stand-ins (scripts/nvidia/); nothing else in run.sh changes.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DIR=${1:?usage: fake-host.sh DIR}
CACHE=${TFBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tfbox}
# the versions of scripts/tf-image/requirements.txt (its wheel cache serves them offline when present)
PINS=(numpy==2.4.6 tensorboard==2.21.0)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)

mkdir -p "$DIR/usr/local/nvidia/bin" "$DIR/container"
DIR=$(cd "$DIR" && pwd)
# one H200, as the capture; on the host every GPU is visible (no container selects them there)
sed -e 's/^NGPU=.*/NGPU=1/' "$ROOT/scripts/nvidia/nvidia-smi" > "$DIR/container/nvidia-smi"
sed -e 's/^NGPU=.*/NGPU=1/' -e 's/^CONTAINER_DEVICES=.*/CONTAINER_DEVICES=all/' "$ROOT/scripts/nvidia/nvidia-smi" \
  > "$DIR/usr/local/nvidia/bin/nvidia-smi"
mkdir -p "$DIR/cdi"
# in CDI mode nothing tells the stand-in which GPUs the container got: the spec mounts a copy fixed to GPU 0
sed -e 's/^NGPU=.*/NGPU=1/' -e 's/^CONTAINER_DEVICES=.*/CONTAINER_DEVICES=0/' "$ROOT/scripts/nvidia/nvidia-smi" > "$DIR/cdi/nvidia-smi"
chmod 755 "$DIR/container/nvidia-smi" "$DIR/usr/local/nvidia/bin/nvidia-smi" "$DIR/cdi/nvidia-smi"
uuid=$(NVIDIA_VISIBLE_DEVICES=0 "$DIR/container/nvidia-smi" --query-gpu=uuid --format=csv,noheader)
{
  echo "cdiVersion: 0.5.0"
  echo "kind: nvidia.com/gpu"
  echo "devices:"
  for name in 0 "$uuid" all; do
    printf -- '- name: "%s"\n  containerEdits:\n    env: ["TFBOX_FAKE_CDI_DEVICE=%s"]\n' "$name" "$name"
  done
  echo "containerEdits:"
  echo "  mounts:"
  echo "  - hostPath: $DIR/cdi/nvidia-smi"
  echo "    containerPath: /usr/local/nvidia/bin/nvidia-smi"
  echo "    options: [ro, nosuid, nodev, bind]"
} > "$DIR/cdi/nvidia.yaml"

ver=$("$PY" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
key=$(printf '%s\n' "$PY" "$ver" "${PINS[@]}" | sha256sum | cut -c1-12)
venv=$CACHE/gpu-proof/fake-python-$key
if [ ! -x "$venv/bin/tensorboard" ]; then
  mkdir -p "$CACHE/gpu-proof"
  # a venv's paths are absolute: made where it stays; a half-made one (no tensorboard script) is made again
  rm -rf "$venv"
  "$PY" -m venv "$venv" >&2
  links=()
  [ -d "$CACHE/wheels" ] && links=(--find-links "$CACHE/wheels")
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${links[@]}" "${PINS[@]}" >&2
fi
ln -sfn "$venv" "$DIR/python"
echo "export PATH=$DIR/usr/local/nvidia/bin:\$PATH"
echo "export TFBOX_GPU_PROOF_PYTHON=$DIR/python/bin/python3"
echo "export TFBOX_GPU_PROOF_REHEARSAL=$DIR"
