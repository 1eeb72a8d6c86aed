#!/usr/bin/env bash
# `make test`: lint, type checks, then one pytest run over the unit and the real-engine tests.
#
# The real-engine tests need, besides this repo: root (they start Docker daemons), Debian's
# docker.io / docker-registry / debootstrap, the Pulumi CLI + language host + docker provider
# (toolchain/ensure.sh finds or builds them) and a TensorFlow notebook image in a local registry
# (scripts/tf-image.sh builds it once and caches it). This script brings all of that up, hands
# the addresses to pytest through TFBOX_E2E_* variables and stops what it started on exit.
# In CI (CI=true) a missing prerequisite fails the run; elsewhere the e2e tests are skipped
# with the reason printed in pytest's summary.
#
#   scripts/test.sh [--e2e-only] [pytest args...]
# With --e2e-only, test files or directories among the pytest args replace tests/e2e, so
# `scripts/test.sh --e2e-only tests/e2e/test_auth.py` runs that module alone.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
venv=$root/.venv/bin
targets=(tests)
if [[ ${1:-} == --e2e-only ]]; then
  targets=(tests/e2e); shift
  for arg in "$@"; do [[ $arg == tests/* ]] && { targets=(); break; }; done
fi

log() { printf '\n== %s (%s)\n' "$*" "$(date +%H:%M:%S)" >&2; }

if [[ ${targets[0]:-} == tests ]]; then
  log "ruff"; "$venv/ruff" check .
  log "mypy"; "$venv/mypy" .
  # the docs site: every link and anchor must resolve (--strict), built into the git-ignored build/site
  log "docs"; NO_MKDOCS_2_WARNING=1 "$venv/mkdocs" build --strict  # not --quiet: it hides the warnings --strict counts
fi

export TFBOX_RUN=${TFBOX_RUN:-/tmp/tfbox-run}
started=()
cleanup() {
  local status=$?
  # SSH boxes (scripts/box.sh) the tests started and did not purge, e.g. after Ctrl-C
  local box
  for box in "$TFBOX_RUN"/box-*/box; do
    [[ -d $box ]] || continue
    box=${box%/box}; scripts/box.sh purge "${box##*/box-}" >/dev/null 2>&1 || true
  done
  # Kubernetes test kit clusters (scripts/k8s.sh) the tests started and did not purge
  local kube
  for kube in "$TFBOX_RUN"/k8s-*/admin.kubeconfig; do
    [[ -f $kube ]] || continue
    kube=${kube%/admin.kubeconfig}; scripts/k8s.sh purge "${kube##*/k8s-}" >/dev/null 2>&1 || true
  done
  for item in "${started[@]}"; do
    case $item in
      registry) scripts/registry.sh purge >/dev/null 2>&1 || true ;;
      daemon:*) scripts/dockerd.sh purge "${item#daemon:}" >/dev/null 2>&1 || true ;;
    esac
  done
  exit $status
}
trap cleanup EXIT

prepare_e2e() {
  if [[ $(id -u) -ne 0 ]]; then echo "the real-engine tests start Docker daemons and need root" >&2; return 1; fi
  log "host packages"; scripts/install-host-deps.sh
  log "pulumi toolchain"; TFBOX_TOOLCHAIN_BIN=$(TFBOX_PYTHON=$venv/python toolchain/ensure.sh | tail -n 1)
  export TFBOX_TOOLCHAIN_BIN
  # the Kubernetes test kit (tests/e2e/test_k8s_kit.py): etcd, the control plane, kwok, the kubernetes provider.
  # Built in the background while the image is made: a cold build is Go compiling (CPU), the image mostly
  # downloads and unpacks, so together they take less than one after the other. Reused in seconds when cached.
  log "kubernetes toolchain (in the background, beside the image)"
  mkdir -p "$TFBOX_RUN"
  local k8s_out=$TFBOX_RUN/k8s-toolchain.out k8s_err=$TFBOX_RUN/k8s-toolchain.err k8s_pid
  toolchain/k8s.sh >"$k8s_out" 2>"$k8s_err" & k8s_pid=$!
  # CoreDNS, the real node's cluster DNS (scripts/k8s-node.sh): its own small build and cache key, beside the kit
  local dns_out=$TFBOX_RUN/coredns-toolchain.out dns_err=$TFBOX_RUN/coredns-toolchain.err dns_pid
  toolchain/coredns.sh >"$dns_out" 2>"$dns_err" & dns_pid=$!
  log "local registry"
  # someone else's registry on this port stays theirs: only one started here is purged on exit
  if ! scripts/registry.sh status >/dev/null 2>&1; then started+=(registry); fi
  scripts/registry.sh start >/dev/null
  export TFBOX_E2E_REGISTRY=127.0.0.1:${TFBOX_REGISTRY_PORT:-5000}
  log "TensorFlow notebook image"
  local build_host
  build_host=$(scripts/dockerd.sh start build | sed -n 's/^DOCKER_HOST=//p'); started+=(daemon:build)
  DOCKER_HOST=$build_host scripts/tf-image.sh --push "$TFBOX_E2E_REGISTRY"
  export TFBOX_E2E_BUILD_HOST=$build_host
  log "kubernetes toolchain"
  local k8s_status=0
  wait "$k8s_pid" || k8s_status=$?
  cat "$k8s_err" >&2
  if [[ $k8s_status -ne 0 ]]; then echo "toolchain/k8s.sh failed (exit $k8s_status)" >&2; return 1; fi
  TFBOX_K8S_BIN=$(tail -n 1 "$k8s_out")
  export TFBOX_K8S_BIN
  log "CoreDNS (the real node's cluster DNS)"
  local dns_status=0
  wait "$dns_pid" || dns_status=$?
  cat "$dns_err" >&2
  if [[ $dns_status -ne 0 ]]; then echo "toolchain/coredns.sh failed (exit $dns_status)" >&2; return 1; fi
  TFBOX_COREDNS_BIN=$(tail -n 1 "$dns_out")
  export TFBOX_COREDNS_BIN
  export TFBOX_E2E=1
}

if [[ ${TFBOX_SKIP_E2E:-} != 1 ]]; then
  if ! prepare_e2e; then
    if [[ ${CI:-} == true ]]; then echo "CI: the real-engine tests could not be prepared; failing" >&2; exit 1; fi
    echo "real-engine tests will be skipped (see pytest's summary)" >&2
  fi
fi

log "pytest"
# Several pytest-xdist workers (TFBOX_TEST_WORKERS, default 3; 0 runs everything in this process): most of a
# real-engine test is waiting (the engine, Docker, Jupyter), not CPU. tests/conftest.py shares the files out
# (a file, or the files sharing a daemon that tests restart, on one worker) and each worker starts its own
# docker_a (tests/e2e/conftest.py). A failure prints as without workers; pytest args given here come last, so
# `-n 0` runs one process. The slowest steps in every log, so a run that got slower says where.
workers=${TFBOX_TEST_WORKERS:-3}
[[ $workers =~ ^[0-9]+$ ]] || { echo "TFBOX_TEST_WORKERS must be a number: '$workers'" >&2; exit 2; }
"$venv/python" -m pytest -n "$workers" --dist loadfile --durations=25 ${targets[@]+"${targets[@]}"} "$@"
