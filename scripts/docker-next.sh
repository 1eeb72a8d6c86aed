#!/usr/bin/env bash
# scripts/docker-next.sh - a newer Docker daemon next to the host's own, for the e2e test that proves a
# lab on a current Docker (API 1.44 and later), where the rest of the suite runs Debian 12's Docker 20.10.
#
# Debian 13 ("trixie") ships docker.io 26 linked against glibc >= 2.34, so its dockerd runs on Debian 12
# with the host's containerd and runc. It is fetched with apt from Debian's archive (the InRelease
# signature checked against debian-archive-keyring) into a private apt state, unpacked (not installed)
# under $TFBOX_CACHE/docker-next/<suite>, and reused from there. Prints the directory with dockerd,
# docker-proxy and docker-init as its last line: give it to scripts/dockerd.sh as TFBOX_DOCKERD_BIN.
#
# Environment: TFBOX_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/tfbox),
#              TFBOX_DOCKER_NEXT_SUITE (default trixie).
set -euo pipefail

suite=${TFBOX_DOCKER_NEXT_SUITE:-trixie}
cache=${TFBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tfbox}/docker-next/$suite
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
log() { printf 'docker-next.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [ -x "$cache/bin/dockerd" ] && "$cache/bin/dockerd" --version >/dev/null 2>&1; then
    log "reusing $("$cache/bin/dockerd" --version) from $cache"
    echo "$cache/bin"
    exit 0
fi
command -v apt-get >/dev/null || die "apt-get not found: this script fetches Debian's docker.io package"
[ -r "$keyring" ] || die "$keyring missing (apt-get install debian-archive-keyring)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/archives/partial" "$work/dl"
echo "deb [signed-by=$keyring] http://deb.debian.org/debian $suite main" >"$work/sources.list"
apt=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
     -o "Dir::State::Lists=$work/lists" -o "Dir::Cache::Archives=$work/archives"
     -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
log "reading Debian $suite's package index"
apt-get -q "${apt[@]}" update >&2 || die "apt-get update for $suite failed"
(cd "$work/dl" && apt-get -q "${apt[@]}" download docker.io tini >&2) || die "apt-get download docker.io failed"

mkdir -p "$work/root"
for deb in "$work"/dl/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
mkdir -p "$work/bin"
cp "$work/root/usr/sbin/dockerd" "$work/root/usr/sbin/docker-proxy" "$work/bin/"
# docker-init is a link to tini-static, which is in the tini package
cp -L "$work/root/usr/bin/tini-static" "$work/bin/docker-init"
"$work/bin/dockerd" --version >/dev/null || die "the unpacked dockerd does not run on this host"

mkdir -p "$(dirname "$cache")"
# staged next to the cache, then swapped in with one rename
rm -rf "$cache.new" && mkdir -p "$cache.new" && mv "$work/bin" "$cache.new/bin"
rm -rf "$cache" && mv "$cache.new" "$cache"
log "unpacked $("$cache/bin/dockerd" --version) into $cache"
echo "$cache/bin"
