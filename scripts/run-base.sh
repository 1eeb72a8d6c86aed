#!/usr/bin/env bash
# scripts/run-base.sh - the run base of the test daemons, registry and SSH boxes (${TFBOX_RUN:-/tmp/tfbox-run}).
#
# Why: dockerd.sh, registry.sh and box.sh run as root and write sockets, pid files, daemon configs and
# an sshd config below the run base, then trust them (kill the pid in a pid file, `rm -rf` a daemon's
# directory at purge). A base in /tmp that another user made first (a directory of theirs, a symlink to
# somewhere else, or one anyone may write) would hand them those files. So the base is made here, mode
# 0700 and ours, and one that is a symlink, someone else's, or group/world-writable is refused.
#
# Usage: sourced (`. run-base.sh; ensure_run_base DIR [MODE]`) or run (`scripts/run-base.sh DIR [MODE]`).
# MODE (default 0700) is what a new base gets; box.sh passes 0711 so its users may reach the box's
# socket below it (traverse only: they can neither list nor write the base).

ensure_run_base() {
  local dir=$1 mode=${2:-0700} owner perms
  [ -n "$dir" ] || { echo "run base: empty path (TFBOX_RUN)" >&2; return 1; }
  case $dir in /*) ;; *) dir=$PWD/$dir ;; esac
  if [ ! -e "$dir" ] && [ ! -L "$dir" ]; then
    mkdir -p -- "$(dirname -- "$dir")" && mkdir -m "$mode" -- "$dir" 2>/dev/null || [ -d "$dir" ] || {
      echo "run base $dir: cannot create it. Fix: set TFBOX_RUN to a directory of your own" >&2; return 1; }
  fi
  if [ -L "$dir" ]; then
    echo "run base $dir is a symlink (to $(readlink -- "$dir")); refusing to follow it. Fix: remove it, or set TFBOX_RUN to a directory of your own" >&2
    return 1
  fi
  [ -d "$dir" ] || { echo "run base $dir is not a directory. Fix: remove it, or set TFBOX_RUN elsewhere" >&2; return 1; }
  owner=$(stat -c %u -- "$dir")
  if [ "$owner" != "$(id -u)" ]; then
    echo "run base $dir belongs to uid $owner, not to us (uid $(id -u)); someone else made it first. Fix: check what is in it, remove it, or set TFBOX_RUN to a directory of your own" >&2
    return 1
  fi
  perms=$(stat -c %a -- "$dir")
  if (( 8#$perms & 8#022 )); then
    echo "run base $dir is group- or world-writable (mode $perms). Fix: chmod go-w $dir (or remove it), or set TFBOX_RUN to a directory of your own" >&2
    return 1
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  [ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: scripts/run-base.sh DIR [MODE]" >&2; exit 2; }
  ensure_run_base "$@"
fi
