#!/usr/bin/env bash
# scripts/gpu-proof/bundle.sh - pack what a GPU host lacks for the GPU proof (`make gpu-proof-bundle`).
#
# Why: a GPU host at hand (a lent machine, a user's own GPU box) may have no network, no Docker, no
# NVIDIA Container Toolkit, no Pulumi and no Jupyter; docs/gpu-proof.md. This packs, on a machine with
# the package registries (this project's CI machine is one):
#   - Debian 12's Docker daemon set (dockerd, docker-proxy, docker-init, containerd,
#     containerd-shim-runc-v2, runc, the docker CLI) from the installed docker.io/containerd/runc
#     packages, plus libdevmapper.so.1.02.1 and libseccomp.so.2, which an Ubuntu host lacks;
#   - the NVIDIA Container Toolkit's nvidia-ctk, nvidia-container-runtime and nvidia-cdi-hook, built from
#     Go modules (cgo) and cached under $TFBOX_CACHE/nvidia-toolkit/;
#   - tfbox's toolchain (pulumi, the language host, the docker provider: toolchain/ensure.sh's build);
#   - wheels for the host's Python (its version is a parameter): requirements.txt for the project's
#     .venv, the Jupyter set of jupyter-requirements.txt for the notebook image, and pip itself;
#   - the project (git archive of HEAD, with uncommitted changes to tracked files) and run.sh, the entry point on the GPU host.
# The payload is xz-compressed and split into parts of at most 60 MiB (a lent machine takes one part a
# call), with MANIFEST.sha256 over every part and every joined archive. The big, slow-changing part
# (base: binaries and wheels) is cached by its content under $TFBOX_CACHE/gpu-proof/, so a second bundle
# only compresses the project again.
#
# Usage: scripts/gpu-proof/bundle.sh [OUT_DIR]     (default build/gpu-proof; emptied first)
# Environment: TFBOX_GPU_PROOF_PYTHON_VERSION  the GPU host's Python, MAJOR.MINOR (default 3.12)
#              TFBOX_CACHE                      cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/tfbox)
# Needs: git, go (and gcc for cgo), python3 with pip, xz, and the docker.io, containerd and runc
# packages (scripts/install-host-deps.sh installs them).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${1:-$ROOT/build/gpu-proof}
PYVER=${TFBOX_GPU_PROOF_PYTHON_VERSION:-3.12}
CACHE=${TFBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tfbox}
TOOLKIT_VERSION=v1.20.2
PIP_VERSION=26.3
PART_SIZE=60M  # split's M is MiB

log() { printf 'bundle.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $PYVER =~ ^3\.[0-9]+$ ]] || die "TFBOX_GPU_PROOF_PYTHON_VERSION must be MAJOR.MINOR such as 3.12: '$PYVER'"
for cmd in git python3 xz split sha256sum; do command -v "$cmd" >/dev/null || die "$cmd not found"; done
PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin
command -v go >/dev/null || die "go not found: the NVIDIA Container Toolkit and tfbox's toolchain are built from Go modules"
started=$SECONDS

mkdir -p "$CACHE/gpu-proof"
STAGE=$(mktemp -d "$CACHE/gpu-proof/.stage.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
base=$STAGE/base
mkdir -p "$base/docker/bin" "$base/docker/lib" "$base/nvidia/bin" "$base/toolchain/bin" "$base/wheels"

# ---- Docker: Debian's binaries, from the installed packages (dpkg -L), not whatever is first on PATH
pkg_file() { # pkg_file PACKAGE NAME -> the package's own file ending in /NAME
  local f
  f=$(dpkg -L "$1" 2>/dev/null | grep -E "/(s?bin)/$2\$" | head -n 1 || true)
  [ -n "$f" ] && [ -x "$f" ] || die "$2 of Debian's $1 package not found (scripts/install-host-deps.sh installs it)"
  echo "$f"
}
for spec in docker.io:dockerd docker.io:docker-proxy docker.io:docker-init docker.io:docker \
    containerd:containerd containerd:containerd-shim-runc-v2 runc:runc; do
  cp -L "$(pkg_file "${spec%%:*}" "${spec#*:}")" "$base/docker/bin/"
done
for lib in libdevmapper.so.1.02.1 libseccomp.so.2; do
  src=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64/ { print $NF; exit }')
  [ -n "$src" ] || die "$lib not found on this machine (it comes with docker.io's dependencies)"
  cp -L "$src" "$base/docker/lib/$lib"
done

# ---- NVIDIA Container Toolkit: built once per version and Go version, then reused
gover=$(go env GOVERSION)
toolkit=$CACHE/nvidia-toolkit/$TOOLKIT_VERSION-$gover
if [ ! -x "$toolkit/bin/nvidia-cdi-hook" ]; then
  log "building the NVIDIA Container Toolkit $TOOLKIT_VERSION (cgo, about half a minute)"
  mkdir -p "$CACHE/nvidia-toolkit"
  work=$(mktemp -d "$CACHE/nvidia-toolkit/.build.XXXXXX")
  if ! (cd "$work" && GOBIN=$work/bin CGO_ENABLED=1 GOFLAGS=-trimpath go install -ldflags "-s -w" \
        "github.com/NVIDIA/nvidia-container-toolkit/cmd/nvidia-ctk@$TOOLKIT_VERSION" \
        "github.com/NVIDIA/nvidia-container-toolkit/cmd/nvidia-container-runtime@$TOOLKIT_VERSION" \
        "github.com/NVIDIA/nvidia-container-toolkit/cmd/nvidia-cdi-hook@$TOOLKIT_VERSION") >"$work/build.log" 2>&1; then
    tail -n 20 "$work/build.log" >&2; rm -rf "$work"; die "building the NVIDIA Container Toolkit failed"
  fi
  mv -T "$work" "$toolkit" 2>/dev/null || rm -rf "$work"  # someone else's equal build won the race
fi
cp "$toolkit"/bin/nvidia-ctk "$toolkit"/bin/nvidia-container-runtime "$toolkit"/bin/nvidia-cdi-hook "$base/nvidia/bin/"

# ---- tfbox's toolchain: our own build (not a pulumi that happens to be on PATH, whose plugins live elsewhere)
bindir=$(TFBOX_BUILD_TOOLCHAIN=1 "$ROOT/toolchain/ensure.sh" | tail -n 1)
[ -x "$bindir/pulumi" ] && [ -x "$bindir/pulumi-resource-docker" ] || die "toolchain/ensure.sh gave no pulumi and docker provider in '$bindir'"
cp -L "$bindir"/* "$base/toolchain/bin/"

# ---- wheels for the host's Python, cached per requirement files and version
abi=cp${PYVER/./}
wkey=$(cat "$ROOT/requirements.txt" "$HERE/jupyter-requirements.txt" <(echo "$PYVER $PIP_VERSION") | sha256sum | cut -c1-16)
wheels=$CACHE/gpu-proof/wheels-$abi-$wkey
if [ ! -f "$wheels/.complete" ]; then
  log "downloading wheels for CPython $PYVER (manylinux x86_64)"
  rm -rf "$wheels"; mkdir -p "$wheels/venv" "$wheels/jupyter" "$wheels/pip"
  platform=(--only-binary=:all: --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
            --platform manylinux2014_x86_64 --platform linux_x86_64 --platform any
            --python-version "$PYVER" --implementation cp --abi "$abi" --abi abi3 --abi none)
  # the .venv: requirements.txt with its dependencies, plus the kernel client the checks use
  python3 -m pip download -q --disable-pip-version-check "${platform[@]}" -d "$wheels/venv" \
    -r "$ROOT/requirements.txt" "websocket-client==$(sed -n 's/^websocket-client==//p' "$HERE/jupyter-requirements.txt")" >&2
  # the image: exactly the pinned set (no resolution: it is the closure already)
  python3 -m pip download -q --disable-pip-version-check --no-deps "${platform[@]}" -d "$wheels/jupyter" \
    -r "$HERE/jupyter-requirements.txt" >&2
  python3 -m pip download -q --disable-pip-version-check --no-deps -d "$wheels/pip" "pip==$PIP_VERSION" >&2
  touch "$wheels/.complete"
fi
cp -a "$wheels/venv" "$wheels/jupyter" "$wheels/pip" "$base/wheels/"

{
  echo "python=$PYVER"
  echo "toolkit=$TOOLKIT_VERSION"
  echo "docker=$("$base/docker/bin/dockerd" --version)"
  echo "pulumi=$("$base/toolchain/bin/pulumi" version 2>/dev/null)"
} > "$base/VERSIONS"

# ---- base archive: reused from the cache when its content is the same
bkey=$(cd "$base" && find . -type f | LC_ALL=C sort | while IFS= read -r f; do printf '%s %s\n' "$f" "$(sha256sum <"$f")"; done |
  sha256sum | cut -c1-16)
cached=$CACHE/gpu-proof/base-$bkey.tar.xz
if [ ! -f "$cached" ]; then
  log "compressing the base archive (binaries and wheels; xz, a minute or two)"
  tar -C "$base" --sort=name --owner=0 --group=0 --numeric-owner -cf - . | xz -T0 -6 > "$cached.tmp.$$"
  mv -f "$cached.tmp.$$" "$cached"
  find "$CACHE/gpu-proof" -maxdepth 1 -name 'base-*.tar.xz' ! -name "base-$bkey.tar.xz" -delete
fi

# ---- the output directory
rm -rf "$OUT"
mkdir -p "$OUT"
# HEAD, with uncommitted changes to tracked files (`git stash create` makes a commit of them, touching nothing)
tree=$(git -C "$ROOT" stash create)
git -C "$ROOT" archive --format=tar --prefix=project/ "${tree:-HEAD}" | xz -T0 -6 > "$STAGE/project.tar.xz"
split -b "$PART_SIZE" -d -a 2 "$cached" "$OUT/base.tar.xz.part"
split -b "$PART_SIZE" -d -a 2 "$STAGE/project.tar.xz" "$OUT/project.tar.xz.part"
install -m 0755 "$HERE/run.sh" "$OUT/run.sh"
{
  echo "tfbox GPU proof bundle, made $(date -u +%Y-%m-%dT%H:%M:%SZ) from $(git -C "$ROOT" rev-parse HEAD)"
  echo "for CPython $PYVER on x86-64 Linux; on the GPU host, as root: ./run.sh  (or: run.sh BUNDLE_DIR)"
  cat "$base/VERSIONS"
} > "$OUT/BUNDLE.txt"
# every part, then each joined archive (run.sh checks both)
(cd "$OUT" && sha256sum ./*.part* > MANIFEST.sha256 &&
  printf '%s  base.tar.xz\n' "$(sha256sum <"$cached" | cut -d' ' -f1)" >> MANIFEST.sha256 &&
  printf '%s  project.tar.xz\n' "$(sha256sum <"$STAGE/project.tar.xz" | cut -d' ' -f1)" >> MANIFEST.sha256)
sed -i 's#  \./#  #' "$OUT/MANIFEST.sha256"

log "bundle in $OUT ($((SECONDS - started)) s):"
(cd "$OUT" && ls -l --block-size=K ./*.part* | awk '{ print "  " $NF " " $5 }') >&2
echo "$OUT"
