#!/usr/bin/env bash
# scripts/box.sh - a "box" for tfbox's real-engine tests: a separate host reached over SSH.
#
# Why: tfbox's headline use is `docker:host: ssh://user@gpu-box`. A box is what the tests use as
# that GPU server: its own network namespace (a veth pair to the host, 10.215.N.2/24 on the box,
# 10.215.N.1 on the host side), a private Docker daemon inside it with iptables on and the
# NVIDIA stand-ins (scripts/dockerd.sh with TFBOX_NETNS), and Debian's openssh-server on
# 10.215.N.2:22: key login only, host key generated per box.
#
# Users (machine-wide, made once): `tfbox`, in group `tfbox-box` which owns every box's Docker
# socket, and `tfbox-nodocker`, a user without Docker rights. Both log in with the box's client
# key (and, if given, PUBKEY). The box's sshd points sessions at its daemon (SetEnv DOCKER_HOST),
# so `ssh tfbox@box docker ...` uses it as `docker` would use /var/run/docker.sock on a real box.
# Pulls: 127.0.0.1:$TFBOX_REGISTRY_PORT inside the box is forwarded (socat) to the host's local
# registry through the veth, so the same image reference works everywhere.
#
# Usage:
#   scripts/box.sh start NAME [PUBKEY]  start what is not running (idempotent; PUBKEY, once given, stays
#                                       authorized with the box's own client key); prints KEY=VALUE lines:
#                                       BOX_IP, SSH_PORT, HOST_KEY (public, for known_hosts), IDENTITY
#                                       (the box's client key), DOCKER_HOST (the box daemon's socket,
#                                       for the tests' own checks), NETNS
#   scripts/box.sh docker-stop NAME     stop the box's Docker daemon only (start brings it back)
#   scripts/box.sh stop NAME            stop sshd, the daemon and the forwarders; keys and data kept
#   scripts/box.sh purge NAME           stop and delete everything of the box (namespace, veth, data)
#   scripts/box.sh status NAME          exit 0 if sshd and the daemon run
# Files: ${TFBOX_RUN:-/tmp/tfbox-run}/box-NAME/ (the daemon's, and box/ for sshd and keys).
# Needs root, openssh-server, socat, iproute2 (scripts/install-host-deps.sh).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUN_BASE=${TFBOX_RUN:-/tmp/tfbox-run}
REGISTRY_PORT=${TFBOX_REGISTRY_PORT:-5000}
GROUP=tfbox-box
USERS=(tfbox tfbox-nodocker)

die() { echo "box.sh: $*" >&2; exit 1; }
usage() { awk '/^# Usage:/ { on = 1 } /^# Files:/ { on = 0 } on' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

[ $# -ge 2 ] && [ $# -le 3 ] || usage
CMD=$1
NAME=$2
PUBKEY=${3:-}
[[ $NAME =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,27}$ ]] || die "NAME must be 1-28 chars of [A-Za-z0-9_.-]: '$NAME'"

# the base must be ours alone (scripts/run-base.sh); 0711 so the box's users reach its socket below it
. "$HERE/run-base.sh"
ensure_run_base "$RUN_BASE" 0711 || die "refusing to use TFBOX_RUN=$RUN_BASE"
chmod o+x,g+x "$RUN_BASE"  # a base dockerd.sh made (0700): the box's users must traverse it
DNAME=box-$NAME
D=$RUN_BASE/$DNAME
B=$D/box
H=$(printf '%s' "$D" | sha256sum | cut -c1-10)
NS=tfbx-$H
VH=tb${H}h  # host end of the veth (15 chars at most)
VB=tb${H}b  # box end, renamed eth0 inside
dockerd_sh() { TFBOX_NETNS=$NS TFBOX_DOCKERD_GROUP=$GROUP TFBOX_RUN_MODE=0711 "$HERE/dockerd.sh" "$@"; }

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
stop_pidfile() {
  local pid
  if [ -s "$1" ]; then
    pid=$(cat "$1")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 25); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
}

# Machine-wide, once: the socket group and the two users (no password, key login only).
ensure_users() {
  exec 7>"${TMPDIR:-/tmp}/tfbox-box-users.lock"
  flock 7
  getent group "$GROUP" >/dev/null || groupadd --system "$GROUP"
  local u
  for u in "${USERS[@]}"; do
    if ! getent passwd "$u" >/dev/null; then
      useradd --system --no-create-home --home-dir / --shell /bin/sh "$u"
    fi
    # '*': no password can match, yet the account is not "locked" (sshd refuses locked accounts)
    usermod -p '*' "$u"
  done
  usermod -a -G "$GROUP" tfbox
  gpasswd -d tfbox-nodocker "$GROUP" >/dev/null 2>&1 || true
  flock -u 7
}

# Pick (once, then remembered) N for 10.215.N.0/24, free on the host and among boxes under RUN_BASE.
subnet_index() {
  local n used all
  # a captured listing: `ip | grep -q` under pipefail fails when ip gets SIGPIPE
  all=$(ip -4 -o addr show)
  if [ -s "$B/subnet" ]; then
    n=$(cat "$B/subnet")
    if ! grep " 10\.215\.$n\.1/" <<<"$all" | grep -vq " $VH "; then echo "$n"; return; fi
    rm -f "$B/subnet"
  fi
  used=$(cat "$RUN_BASE"/*/box/subnet 2>/dev/null || true)
  for n in $(seq 1 254); do
    grep -qx "$n" <<<"$used" && continue
    grep -q " 10\.215\.$n\." <<<"$all" && continue
    echo "$n" >"$B/subnet"
    echo "$n"
    return
  done
  die "no free 10.215.N.0/24 left for a box"
}

setup_net() {
  [ -e "/run/netns/$NS" ] || ip netns add "$NS"
  ip -n "$NS" link set lo up
  exec 8>"${TMPDIR:-/tmp}/tfbox-box-subnets.lock"
  flock 8
  N=$(subnet_index)
  if ! ip link show "$VH" >/dev/null 2>&1; then
    ip -n "$NS" link del eth0 2>/dev/null || true
    ip link add "$VH" type veth peer name "$VB"
    ip link set "$VB" netns "$NS"
    ip -n "$NS" link set "$VB" name eth0
  fi
  local have
  have=$(ip -4 -o addr show dev "$VH")
  if ! grep -q " 10\.215\.$N\.1/24" <<<"$have"; then
    ip addr flush dev "$VH"
    ip addr add "10.215.$N.1/24" dev "$VH"
  fi
  flock -u 8
  ip link set "$VH" up
  have=$(ip -n "$NS" -4 -o addr show dev eth0)
  if ! grep -q " 10\.215\.$N\.2/24" <<<"$have"; then
    ip -n "$NS" addr flush dev eth0
    ip -n "$NS" addr add "10.215.$N.2/24" dev eth0
  fi
  ip -n "$NS" link set eth0 up
}

# 127.0.0.1:REGISTRY_PORT in the box -> host side of the veth -> the host's 127.0.0.1:REGISTRY_PORT.
# The host-side listener binds only the veth's address.
start_forwarders() {
  if ! alive "$B/fwd-host.pid"; then
    setsid socat "TCP-LISTEN:$REGISTRY_PORT,bind=10.215.$N.1,fork,reuseaddr" "TCP:127.0.0.1:$REGISTRY_PORT" \
      </dev/null >>"$B/socat.log" 2>&1 7>&- 8>&- 9>&- &
    echo $! >"$B/fwd-host.pid"
  fi
  if ! alive "$B/fwd-box.pid"; then
    setsid nsenter "--net=/run/netns/$NS" socat "TCP-LISTEN:$REGISTRY_PORT,bind=127.0.0.1,fork,reuseaddr" \
      "TCP:10.215.$N.1:$REGISTRY_PORT" </dev/null >>"$B/socat.log" 2>&1 7>&- 8>&- 9>&- &
    echo $! >"$B/fwd-box.pid"
  fi
}

write_sshd_config() {
  mkdir -p "$B/authorized_keys"
  [ -s "$B/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C "$DNAME-host" -f "$B/ssh_host_ed25519_key"
  [ -s "$B/client_key" ] || ssh-keygen -q -t ed25519 -N '' -C "$DNAME-client" -f "$B/client_key"
  local keys u
  keys=$(cat "$B/client_key.pub")
  if [ -n "$PUBKEY" ]; then
    [ -s "$PUBKEY" ] || die "no public key at $PUBKEY"
    cp "$PUBKEY" "$B/extra_key.pub"
  fi
  # a key given once stays authorized across later starts without it (e.g. after docker-stop)
  [ ! -s "$B/extra_key.pub" ] || keys+=$'\n'$(cat "$B/extra_key.pub")
  for u in "${USERS[@]}"; do printf '%s\n' "$keys" >"$B/authorized_keys/$u"; done
  chmod 644 "$B"/authorized_keys/*
  cat >"$B/sshd_config" <<EOF
# sshd of the tfbox test box $NAME (scripts/box.sh)
ListenAddress 10.215.$N.2:22
HostKey $B/ssh_host_ed25519_key
PidFile $B/sshd.pid
AuthorizedKeysFile $B/authorized_keys/%u
# the box's files live under /tmp (world-writable): the ownership checks would refuse them
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UsePAM no
AllowUsers ${USERS[*]}
X11Forwarding no
AllowTcpForwarding yes
# what /var/run/docker.sock is on a real box: this box's daemon
SetEnv DOCKER_HOST=unix://$D/docker.sock
EOF
}

start_sshd() {
  if alive "$B/sshd.pid"; then return; fi
  mkdir -p /run/sshd  # sshd's privilege separation directory
  /usr/sbin/sshd -t -f "$B/sshd_config" || die "sshd refuses $B/sshd_config"
  nsenter "--net=/run/netns/$NS" /usr/sbin/sshd -f "$B/sshd_config" -E "$B/sshd.log" </dev/null 7>&- 8>&- 9>&-
  for _ in $(seq 1 50); do alive "$B/sshd.pid" && return; sleep 0.1; done
  tail -n 20 "$B/sshd.log" >&2 || true
  die "sshd of box $NAME did not start"
}

wait_port() { # wait_port IP PORT: until something accepts there (seen from the host)
  for _ in $(seq 1 50); do
    if timeout 1 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  die "nothing answers on $1:$2"
}

cmd_start() {
  [ "$(id -u)" = 0 ] || die "needs root (network namespaces, users, dockerd)"
  for c in sshd ssh-keygen socat ip; do PATH=$PATH:/usr/sbin command -v "$c" >/dev/null || die "$c not found (run scripts/install-host-deps.sh)"; done
  mkdir -p "$B"
  exec 9>"$B/.lock"
  flock -w 60 9 || die "timed out waiting for another start/stop of box $NAME"
  ensure_users
  setup_net
  start_forwarders
  write_sshd_config
  dockerd_sh start "$DNAME" >/dev/null
  start_sshd
  wait_port "10.215.$N.2" 22
  echo "BOX_IP=10.215.$N.2"
  echo "SSH_PORT=22"
  echo "HOST_KEY=$(cut -d' ' -f1,2 "$B/ssh_host_ed25519_key.pub")"
  echo "IDENTITY=$B/client_key"
  echo "DOCKER_HOST=unix://$D/docker.sock"
  echo "NETNS=$NS"
}

cmd_docker_stop() {
  [ -d "$D" ] || return 0
  dockerd_sh stop "$DNAME" >/dev/null
}

cmd_stop() {
  [ -d "$B" ] || return 0
  exec 9>"$B/.lock"
  flock -w 60 9 || die "timed out waiting for another start/stop of box $NAME"
  stop_pidfile "$B/sshd.pid"
  stop_pidfile "$B/fwd-box.pid"
  stop_pidfile "$B/fwd-host.pid"
  dockerd_sh stop "$DNAME" >/dev/null
}

cmd_purge() {
  if [ -d "$B" ]; then cmd_stop; fi
  if [ -d "$D" ]; then dockerd_sh purge "$DNAME" >/dev/null; fi
  ip link del "$VH" 2>/dev/null || true
  if [ -e "/run/netns/$NS" ]; then ip netns del "$NS"; fi
  rm -rf --one-file-system "$D"
}

cmd_status() {
  alive "$B/sshd.pid" && dockerd_sh status "$DNAME"
}

case $CMD in
  start) cmd_start ;;
  docker-stop) cmd_docker_stop ;;
  stop) cmd_stop ;;
  purge) cmd_purge ;;
  status) cmd_status ;;
  *) usage ;;
esac
