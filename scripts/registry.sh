#!/usr/bin/env bash
# scripts/registry.sh - a local Docker registry for tfbox's real-engine tests.
#
# Why: tfbox pulls tensorflow/tensorflow:*-jupyter and, with imageTrackRegistry,
# watches the registry digest of the tag. Docker Hub is out of reach here and in CI,
# so tests push the local image (scripts/tf-image.sh --push 127.0.0.1:PORT) to
# Debian's docker-registry (distribution 2.x) and deploy from it. Docker talks plain
# HTTP to it because 127.0.0.0/8 is an insecure registry by default. Deletes are
# enabled, so tests can also remove manifests.
#
# Usage: scripts/registry.sh start|stop|purge|status [PORT]   (PORT default 5000,
#        or TFBOX_REGISTRY_PORT)
#   start   start it (or find it running) on 127.0.0.1:PORT, wait until /v2/ answers,
#           print REGISTRY=127.0.0.1:PORT
#   stop    stop it, keep its storage;  purge  stop it and delete its storage
# Files: ${TFBOX_RUN:-/tmp/tfbox-run}/registry-PORT/ (config.yml, registry.pid,
# registry.log, data/).
set -euo pipefail

RUN_BASE=${TFBOX_RUN:-/tmp/tfbox-run}
TIMEOUT=${TFBOX_REGISTRY_TIMEOUT:-30}

die() { echo "registry.sh: $*" >&2; exit 1; }
usage() { awk '/^# Usage:/ { on = 1 } /^set -euo/ { on = 0 } on' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

[ $# -ge 1 ] && [ $# -le 2 ] || usage
CMD=$1
PORT=${2:-${TFBOX_REGISTRY_PORT:-5000}}
[[ $PORT =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] || die "bad port: $PORT"
ADDR=127.0.0.1:$PORT
# the base must be ours alone: it holds the registry's pid file and config (scripts/run-base.sh)
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/run-base.sh"
ensure_run_base "$RUN_BASE" || die "refusing to use TFBOX_RUN=$RUN_BASE"
D=$RUN_BASE/registry-$PORT
PIDFILE=$D/registry.pid
LOG=$D/registry.log

reg_pid() {
  local pid
  [ -s "$PIDFILE" ] || return 1
  pid=$(cat "$PIDFILE")
  [ -n "$pid" ] && [ -d "/proc/$pid" ] && grep -q registry "/proc/$pid/comm" 2>/dev/null || return 1
  echo "$pid"
}

answers() {
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://$ADDR/v2/" 2>/dev/null)" = 200 ]
}

cmd_start() {
  local bin pid i
  bin=$(command -v docker-registry || true)
  [ -n "$bin" ] || die "docker-registry not found (scripts/install-host-deps.sh installs it)"
  mkdir -p "$D/data"
  exec 9>"$D/.lock"
  flock -w "$TIMEOUT" 9 || die "timed out waiting for another start/stop"
  if reg_pid >/dev/null && answers; then
    echo "REGISTRY=$ADDR"
    return
  fi
  if pid=$(reg_pid); then kill "$pid" 2>/dev/null || true; sleep 0.5; fi
  if answers; then die "something else already answers on http://$ADDR/v2/"; fi
  cat > "$D/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $D/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: $ADDR
  secret: tfbox-local-registry
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: false
EOF
  setsid "$bin" serve "$D/config.yml" </dev/null >>"$LOG" 2>&1 9>&- &
  pid=$!
  echo "$pid" > "$PIDFILE"
  for i in $(seq 1 $((TIMEOUT * 5))); do
    if answers; then echo "REGISTRY=$ADDR"; return; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PIDFILE"
      echo "registry.sh: docker-registry exited; last lines of $LOG:" >&2
      tail -n 20 "$LOG" >&2
      exit 1
    fi
    sleep 0.2
  done
  kill "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
  echo "registry.sh: no answer from http://$ADDR/v2/ within ${TIMEOUT}s; last lines of $LOG:" >&2
  tail -n 20 "$LOG" >&2
  exit 1
}

cmd_stop() {
  local pid i
  [ -d "$D" ] || return 0
  exec 9>"$D/.lock"
  flock -w "$TIMEOUT" 9 || die "timed out waiting for another start/stop"
  if pid=$(reg_pid); then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
}

case $CMD in
  start) cmd_start ;;
  stop) cmd_stop ;;
  purge) cmd_stop; rm -rf "$D" ;;
  status) reg_pid >/dev/null && answers ;;
  *) usage ;;
esac
