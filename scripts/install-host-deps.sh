#!/usr/bin/env bash
# scripts/install-host-deps.sh - host packages for tfbox's real-engine tests.
#
# Why: CI and fresh machines start with nothing running and maybe nothing installed;
# scripts/dockerd.sh, scripts/registry.sh and scripts/tf-image.sh need a Docker
# daemon (Debian's docker.io: dockerd, containerd, runc, docker-proxy), Debian's
# docker-registry, debootstrap, busybox-static, iptables/iproute2, zstd, curl and a
# docker CLI; scripts/box.sh (the SSH boxes) needs openssh-server and -client, socat,
# nsenter; scripts/gpu-proof/bundle.sh needs xz and gcc (cgo). Installs with apt only what is missing; runs `apt-get update` only
# then. Quiet on success. Needs root (or sudo).
set -euo pipefail

die() { echo "install-host-deps.sh: $*" >&2; exit 1; }

# command that must exist -> Debian package providing it
declare -A NEED=(
  [dockerd]=docker.io
  [containerd]=containerd
  [runc]=runc
  [docker-proxy]=docker.io
  [docker-init]=docker.io
  [docker-registry]=docker-registry
  [debootstrap]=debootstrap
  [iptables]=iptables
  [ip]=iproute2
  [zstd]=zstd
  [curl]=curl
  [flock]=util-linux
  [setsid]=util-linux
  [chromium]=chromium            # the real-browser e2e test (tests/e2e/test_auth.py)
  [chromedriver]=chromium-driver
  [pgrep]=procps
  [chroot]=coreutils
  [nsenter]=util-linux
  [sshd]=openssh-server
  [ssh]=openssh-client
  [ssh-keygen]=openssh-client
  [socat]=socat
  [xz]=xz-utils                  # the GPU proof's bundle (scripts/gpu-proof/bundle.sh)
  [gcc]=gcc                      # cgo, for the NVIDIA Container Toolkit the bundle builds; the k8s kit's pause image
  [openssl]=openssl              # the k8s test kit's certificates (scripts/k8s.sh)
)

missing=()
for cmd in "${!NEED[@]}"; do
  PATH=$PATH:/usr/sbin:/sbin command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEED[$cmd]}")
done
# The nvidia-smi image needs a static busybox (busybox-static ships /bin/busybox).
if ! [ -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then
  missing+=(busybox-static)
fi
# The k8s test kit's real node (scripts/k8s-node.sh): Debian's CNI plugins (bridge, host-local, loopback).
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
# docker CLI: docker.io ships one; any docker CLI on PATH will do.
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
# tf-image.sh downloads wheels with the host's pip.
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
# debootstrap checks signatures with Debian's archive keyring.
[ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
# CA certificates for curl/pip.
[ -e /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)

[ ${#missing[@]} -eq 0 ] && exit 0

mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
SUDO=
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || die "need root to install: ${pkgs[*]}"
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
# Keep apt from starting the system's dockerd (and its iptables rules): tfbox runs
# its own daemons (scripts/dockerd.sh). Only if no policy-rc.d is in place already.
policy=
if [ ! -e /usr/sbin/policy-rc.d ]; then
  policy=/usr/sbin/policy-rc.d
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
fi
trap 'rm -f "$log"; [ -z "$policy" ] || $SUDO rm -f "$policy"' EXIT
if ! { $SUDO apt-get update -qq && \
       $SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}"; } >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  die "apt-get install failed for: ${pkgs[*]}"
fi
