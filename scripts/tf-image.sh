#!/usr/bin/env bash
# scripts/tf-image.sh - a local stand-in for tensorflow/tensorflow:latest-jupyter.
#
# Why: tfbox deploys TensorFlow's Jupyter image, but Docker Hub is out of reach here
# and in CI. This builds an image that behaves like it (working dir /tf, EXPOSE 8888,
# /etc/bash.bashrc, the same `bash -c "source /etc/bash.bashrc && jupyter notebook ..."`
# command, real tensorflow-cpu, TensorBoard, Notebook 7 on Jupyter Server 2) from
# Debian bookworm (debootstrap) and PyPI wheels, pinned in scripts/tf-image/.
# The result is cached as a zstd-compressed `docker save` tarball under
# ${TFBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tfbox}/images/, keyed by a hash of
# this script and scripts/tf-image/*, so later runs only `docker load` it.
# It also makes tfbox-test/nvidia-smi:latest: busybox-static plus the nvidia-smi
# stand-in (scripts/nvidia/nvidia-smi), FROM scratch.
#
# Usage: DOCKER_HOST=... scripts/tf-image.sh [--push REGISTRY] [--variant N] [--rebuild]
#   (no option)      load/build tfbox-test/tensorflow:latest-jupyter and
#                    tfbox-test/nvidia-smi:latest into the daemon
#   --push REG       also push them as REG/tensorflow/tensorflow:latest-jupyter,
#                    REG/tensorflow/tensorflow:latest-gpu-jupyter and
#                    REG/tfbox-test/nvidia-smi:latest (the REG/ tags are removed from the
#                    daemon again, so a deployment on it really pulls)
#   --variant N      use a variant of the image instead (same content plus one layer
#                    with /etc/tfbox-variant = N: a different digest, cheaply), tagged
#                    tfbox-test/tensorflow:latest-jupyter-vN; with --push it is pushed
#                    under the same registry tags. N=0 is the base image.
#   --rebuild        ignore the cached tarball and build again
# Prints one line per image: `LOCAL_TAG IMAGE_ID`, and per pushed tag `REF@DIGEST`.
# Needs root (debootstrap, chroot), debootstrap, zstd, python3 with pip (wheel
# download) on a cache miss; scripts/install-host-deps.sh installs them.
# Environment: TFBOX_CACHE, TFBOX_DEBIAN_MIRROR (default http://deb.debian.org/debian),
# TFBOX_BUILD_DIR (scratch space for the rootfs, default /var/tmp).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RECIPE=$HERE/tf-image
CACHE=${TFBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tfbox}
MIRROR=${TFBOX_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SMI_TAG=tfbox-test/nvidia-smi:latest

die() { echo "tf-image.sh: $*" >&2; exit 1; }
usage() { awk '/^# Usage:/ { on = 1 } /^set -euo/ { on = 0 } on' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

PUSH=
VARIANT=0
REBUILD=no
while [ $# -gt 0 ]; do
  case $1 in
    --push) [ $# -ge 2 ] || usage; PUSH=$2; shift ;;
    --push=*) PUSH=${1#--push=} ;;
    --variant) [ $# -ge 2 ] || usage; VARIANT=$2; shift ;;
    --variant=*) VARIANT=${1#--variant=} ;;
    --rebuild) REBUILD=yes ;;
    -h|--help) usage ;;
    *) echo "tf-image.sh: unknown argument: $1" >&2; usage ;;
  esac
  shift
done
[[ $VARIANT =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$ ]] || die "--variant must match [A-Za-z0-9][A-Za-z0-9_.-]*: '$VARIANT'"
PUSH=${PUSH%/}

command -v docker >/dev/null || die "docker CLI not found"
docker version >/dev/null 2>&1 || die "no Docker daemon answers at ${DOCKER_HOST:-the default socket} (start one: scripts/dockerd.sh start NAME)"

# The cache key: the recipe part of this script (between the `>>> recipe` and
# `<<< recipe` lines: what the image is made of and how) and every file in
# scripts/tf-image/ (names and contents). Usage text, load and push logic are not in it.
KEY=$(cd "$HERE" && {
  awk '/^# >>> recipe/ { on = 1 } on { print } /^# <<< recipe/ { on = 0 }' tf-image.sh
  for f in $(find tf-image -type f | LC_ALL=C sort); do echo "== $f"; cat "$f"; done
} | sha256sum | cut -c1-16)
TARBALL=$CACHE/images/tf-jupyter-$KEY.tar.zst

label_of() { # label_of IMAGE LABEL -> value, or nothing if no such image
  docker image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true
}

# >>> recipe: everything down to `<<< recipe` is part of the cache key.
TAG=tfbox-test/tensorflow:latest-jupyter
CMD_JSON='["bash","-c","source /etc/bash.bashrc && jupyter notebook --notebook-dir=/tf --ip 0.0.0.0 --no-browser --allow-root"]'
ENV_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# ---------------------------------------------------------------- build (cache miss)
WORK=
cleanup() {
  local m
  [ -n "$WORK" ] || return 0
  for m in $(awk -v d="$WORK/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  if awk -v d="$WORK/" 'index($2, d) == 1 { f = 1 } END { exit !f }' /proc/self/mounts; then
    echo "tf-image.sh: still mounted below $WORK, not deleting it" >&2
  else
    rm -rf --one-file-system "$WORK"
  fi
}

run_logged() { # run_logged LOG CMD... : quiet unless it fails
  local log=$1; shift
  if ! "$@" >>"$log" 2>&1; then
    echo "tf-image.sh: failed: $*; last lines of $log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
}

fetch_wheels() {
  local wheels=$CACHE/wheels stamp
  stamp=$wheels/.complete-$(sha256sum "$RECIPE/requirements.txt" | cut -c1-16)
  [ -f "$stamp" ] && return 0
  python3 -m pip --version >/dev/null 2>&1 || die "python3 with pip is needed on the host to download the wheels"
  mkdir -p "$wheels"
  # Wheels for the image's Python (CPython 3.11, glibc 2.36), whatever the host's is.
  run_logged "$WORK/pip-download.log" python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux_2_36_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux2014_x86_64 \
    --platform linux_x86_64 --platform any \
    --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
    -d "$wheels" -r "$RECIPE/requirements.txt"
  touch "$stamp"
}

build_base() {
  local root pkgs t0
  [ "$(id -u)" = 0 ] || die "building the image needs root (debootstrap, chroot)"
  command -v debootstrap >/dev/null || die "debootstrap not found (scripts/install-host-deps.sh)"
  command -v zstd >/dev/null || die "zstd not found (scripts/install-host-deps.sh)"
  t0=$(date +%s)
  mkdir -p "${TFBOX_BUILD_DIR:-/var/tmp}"
  WORK=$(mktemp -d "${TFBOX_BUILD_DIR:-/var/tmp}/tfbox-tf-image.XXXXXX")
  trap cleanup EXIT
  root=$WORK/rootfs
  echo "tf-image.sh: building $TAG (recipe $KEY; a few minutes, logs in $WORK)" >&2

  fetch_wheels

  pkgs=$(grep -v '^#' "$RECIPE/debian-packages.txt" | grep -v '^[[:space:]]*$' | paste -sd, -)
  mkdir -p "$CACHE/debs"
  run_logged "$WORK/debootstrap.log" debootstrap --variant=minbase --include="$pkgs" \
    --cache-dir="$CACHE/debs" bookworm "$root" "$MIRROR"

  # Python packages: installed by the image's own pip (chroot), offline, from the wheels.
  mkdir -p "$root/tmp/wheels"
  cp -al "$CACHE/wheels/." "$root/tmp/wheels/" 2>/dev/null || cp -a "$CACHE/wheels/." "$root/tmp/wheels/"
  cp "$RECIPE/requirements.txt" "$root/tmp/requirements.txt"
  mount -t proc proc "$root/proc"
  run_logged "$WORK/pip-install.log" chroot "$root" /usr/bin/env -i PATH="$ENV_PATH" HOME=/root LANG=C.UTF-8 \
    python3 -m pip install --no-index --find-links /tmp/wheels --no-deps --no-cache-dir \
    --break-system-packages --root-user-action=ignore --disable-pip-version-check \
    -r /tmp/requirements.txt
  run_logged "$WORK/check.log" chroot "$root" /usr/bin/env -i PATH="$ENV_PATH" HOME=/root LANG=C.UTF-8 \
    sh -c 'python3 -m pip check --disable-pip-version-check &&
           jupyter notebook --version && jupyter server --version && tensorboard --version &&
           TF_CPP_MIN_LOG_LEVEL=2 python3 -c "import tensorflow as tf; print(tf.__version__)"'
  umount "$root/proc"

  # Like TensorFlow's image: its bash.bashrc, a writable /tf, pip usable from notebooks.
  install -m 0644 "$RECIPE/bash.bashrc" "$root/etc/bash.bashrc"
  mkdir -p "$root/tf"
  chmod 0777 "$root/tf"
  rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
  # Keep it small: no package caches, lists, docs, logs or build leftovers.
  rm -rf "$root"/tmp/* "$root"/var/tmp/* "$root"/root/.cache \
    "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/var/log/* "$root"/dev/*
  : > "$root/etc/resolv.conf"
  echo tf > "$root/etc/hostname"
  : > "$root/etc/machine-id"

  tar -C "$root" --numeric-owner -cf - . | docker import \
    --change 'WORKDIR /tf' \
    --change 'EXPOSE 8888' \
    --change "ENV PATH=$ENV_PATH" \
    --change 'ENV LANG=C.UTF-8' \
    --change "LABEL tfbox.recipe=$KEY" \
    --change "CMD $CMD_JSON" \
    - "$TAG" >/dev/null

  mkdir -p "$CACHE/images"
  docker save "$TAG" | zstd -q -T0 -3 -o "$TARBALL.tmp.$$"
  mv -f "$TARBALL.tmp.$$" "$TARBALL"
  # Older recipes' tarballs are dead weight.
  find "$CACHE/images" -maxdepth 1 -name 'tf-jupyter-*.tar.zst' ! -name "tf-jupyter-$KEY.tar.zst" -delete
  cleanup
  WORK=
  trap - EXIT
  echo "tf-image.sh: built $TAG in $(( $(date +%s) - t0 ))s, cached as $TARBALL" >&2
}

# <<< recipe

ensure_base() {
  [ "$REBUILD" = no ] && [ "$(label_of "$TAG" tfbox.recipe)" = "$KEY" ] && return 0
  mkdir -p "$CACHE/images"
  if [ "$REBUILD" = no ] && [ -f "$TARBALL" ]; then load_base; return; fi
  # One build at a time per cache (several test daemons may ask at once); whoever
  # waited here loads what the other one built.
  exec 8>"$CACHE/images/.lock"
  flock 8
  if [ "$REBUILD" = no ] && [ -f "$TARBALL" ]; then
    load_base
  else
    build_base
    REBUILD=no
  fi
  flock -u 8
  exec 8>&-
}

load_base() {
  zstd -q -dc "$TARBALL" | docker load -q >/dev/null || die "docker load of $TARBALL failed"
  [ "$(label_of "$TAG" tfbox.recipe)" = "$KEY" ] || die "$TARBALL did not give $TAG with recipe $KEY"
}

# ---------------------------------------------------------------- variant
ensure_variant() { # -> prints the local tag of the variant
  local vtag=$TAG-v$VARIANT tmp cid
  if [ "$VARIANT" = 0 ]; then echo "$TAG"; return; fi
  if [ "$(label_of "$vtag" tfbox.variant)" = "$VARIANT" ] && [ "$(label_of "$vtag" tfbox.recipe)" = "$KEY" ]; then
    echo "$vtag"; return
  fi
  tmp=$(mktemp -d)
  echo "$VARIANT" > "$tmp/tfbox-variant"
  cid=$(docker create "$TAG")
  if tar -C "$tmp" -cf - tfbox-variant | docker cp - "$cid:/etc/" &&
     docker commit --change "LABEL tfbox.variant=$VARIANT" "$cid" "$vtag" >/dev/null; then
    docker rm "$cid" >/dev/null; rm -rf "$tmp"
  else
    docker rm "$cid" >/dev/null 2>&1 || true; rm -rf "$tmp"
    die "could not make variant $VARIANT"
  fi
  echo "$vtag"
}

# ---------------------------------------------------------------- nvidia-smi image
ensure_smi() {
  local key busybox tmp a tarball
  busybox=$(command -v busybox || true)
  [ -n "$busybox" ] || die "busybox not found (scripts/install-host-deps.sh installs busybox-static)"
  if ldd "$busybox" >/dev/null 2>&1; then
    [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 && busybox=/bin/busybox ||
      die "$busybox is dynamically linked; install busybox-static"
  fi
  key=$({ cat "$HERE/nvidia/nvidia-smi"; sha256sum < "$busybox"; } | sha256sum | cut -c1-16)
  [ "$(label_of "$SMI_TAG" tfbox.recipe)" = "$key" ] && return 0
  # Cached too, so that every daemon gets the very same image (and registry digest).
  tarball=$CACHE/images/nvidia-smi-$key.tar
  if [ -f "$tarball" ] && docker load -q -i "$tarball" >/dev/null &&
     [ "$(label_of "$SMI_TAG" tfbox.recipe)" = "$key" ]; then
    return 0
  fi
  tmp=$(mktemp -d)
  mkdir -p "$tmp/bin" "$tmp/usr/bin" "$tmp/tmp" "$tmp/etc"
  cp "$busybox" "$tmp/bin/busybox"
  for a in $("$busybox" --list); do
    [ "$a" = busybox ] || ln -s busybox "$tmp/bin/$a"
  done
  install -m 0755 "$HERE/nvidia/nvidia-smi" "$tmp/usr/bin/nvidia-smi"
  chmod 1777 "$tmp/tmp"
  if ! tar -C "$tmp" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - . | docker import \
      --change "ENV PATH=$ENV_PATH" \
      --change "LABEL tfbox.recipe=$key" \
      --change 'CMD ["nvidia-smi"]' \
      - "$SMI_TAG" >/dev/null; then
    rm -rf "$tmp"; die "could not import $SMI_TAG"
  fi
  rm -rf "$tmp"
  mkdir -p "$CACHE/images"
  docker save -o "$tarball.tmp.$$" "$SMI_TAG" && mv -f "$tarball.tmp.$$" "$tarball"
  find "$CACHE/images" -maxdepth 1 -name 'nvidia-smi-*.tar' ! -name "nvidia-smi-$key.tar" -delete
}

push() { # push LOCAL REMOTE -> prints REMOTE@DIGEST
  local out digest
  docker tag "$1" "$2"
  if ! out=$(docker push "$2" 2>&1); then
    docker rmi "$2" >/dev/null 2>&1 || true
    echo "$out" | tail -n 5 >&2
    die "push of $2 failed"
  fi
  digest=$(echo "$out" | grep -o 'digest: sha256:[0-9a-f]*' | tail -n 1 | cut -d' ' -f2)
  docker rmi "$2" >/dev/null
  echo "$2@$digest"
}

ensure_base
SRC=$(ensure_variant)
ensure_smi
echo "$SRC $(docker image inspect --format '{{.Id}}' "$SRC")"
echo "$SMI_TAG $(docker image inspect --format '{{.Id}}' "$SMI_TAG")"
if [ -n "$PUSH" ]; then
  push "$SRC" "$PUSH/tensorflow/tensorflow:latest-jupyter"
  push "$SRC" "$PUSH/tensorflow/tensorflow:latest-gpu-jupyter"
  push "$SMI_TAG" "$PUSH/tfbox-test/nvidia-smi:latest"
fi
