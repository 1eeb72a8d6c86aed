#!/usr/bin/env bash
# `make local-docker`: a Docker host for machines that cannot reach Docker Hub (like this
# project's CI machine): a private dockerd (scripts/dockerd.sh), a registry on 127.0.0.1
# (scripts/registry.sh) and the locally built TensorFlow notebook image pushed to it
# (scripts/tf-image.sh; built once, then cached). Prints the two variables `make up` needs:
#
#   eval "$(scripts/local-docker.sh)" && make up
#
# Stop it again with: scripts/dockerd.sh stop local && scripts/registry.sh stop
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-host-deps.sh >&2
scripts/registry.sh start >/dev/null
registry=127.0.0.1:${TFBOX_REGISTRY_PORT:-5000}
host=$(scripts/dockerd.sh start local | sed -n 's/^DOCKER_HOST=//p')
DOCKER_HOST=$host scripts/tf-image.sh --push "$registry" >&2
echo "export DOCKER_HOST=$host"
echo "export TFBOX_IMAGE=$registry/tensorflow/tensorflow:latest-jupyter"
