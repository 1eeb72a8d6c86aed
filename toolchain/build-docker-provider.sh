#!/usr/bin/env bash
# Build pulumi-resource-docker, the Pulumi docker resource provider, into <bindir>.
#
# Why this exists: the pulumi-docker Python SDK needs its provider plugin at the
# same version, and no release binary (nor the pulumi-docker provider Go module)
# is reachable from here. Only Go modules are. So we build our own bridged
# provider, the way pulumi-docker does: the Terraform docker provider
# (kreuzwerker/terraform-provider-docker) wrapped by the Pulumi Terraform bridge,
# with the resource tokens and property names of pulumi-docker (see
# toolchain/docker-provider/resources.go).
#
# The Terraform provider lives in an internal/ package, so we copy its module
# from the Go module cache into a temporary directory, add a small `shim`
# package to it (toolchain/docker-provider/shim/shim.go.txt), and point a
# temporary copy of our module at it with a `replace`.
#
# Usage: toolchain/build-docker-provider.sh <bindir>
# Does nothing if <bindir>/pulumi-resource-docker already exists.
# The version stamped into the binary is the pulumi-docker pin of requirements.txt.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 <bindir>" >&2
    exit 2
fi
bindir=$1
if [ -x "$bindir/pulumi-resource-docker" ]; then
    exit 0
fi

here=$(cd "$(dirname "$0")" && pwd)
src=$here/docker-provider
repo_root=$(dirname "$here")

# The Terraform docker provider: module path as served, and the path its go.mod declares.
upstream_module=github.com/kreuzwerker/terraform-provider-docker
upstream_path=github.com/terraform-providers/terraform-provider-docker
upstream_version=$(awk -v p="$upstream_path" '$1 == p { print $2 }' "$src/go.mod")

version=$(sed -n 's/^pulumi-docker==\([^[:space:];#]*\).*/\1/p' "$repo_root/requirements.txt")
if [ -z "$version" ] || [ -z "$upstream_version" ]; then
    echo "build-docker-provider: cannot read the pulumi-docker version or the upstream version" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null || true; rm -rf "$work"' EXIT

export CGO_ENABLED=0
export GOFLAGS=-mod=mod

echo "build-docker-provider: fetching $upstream_module@$upstream_version" >&2
upstream_dir=$(cd "$work" && go mod download -json "$upstream_module@$upstream_version" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [ -z "$upstream_dir" ]; then
    echo "build-docker-provider: go mod download gave no directory" >&2
    exit 1
fi

cp -R "$upstream_dir" "$work/upstream"
chmod -R u+w "$work/upstream"
mkdir -p "$work/upstream/shim"
cp "$src/shim/shim.go.txt" "$work/upstream/shim/shim.go"

mkdir -p "$work/provider"
(cd "$src" && tar -c --exclude=schema.json go.mod go.sum resources.go cmd) | tar -x -C "$work/provider"
cd "$work/provider"
go mod edit -replace "$upstream_path=../upstream"

# no_compose leaves out the docker_compose resource (pulumi-docker has none),
# and with it most of docker/compose.
tags=no_compose

echo "build-docker-provider: generating the Pulumi schema" >&2
go build -trimpath -tags "$tags" -o "$work/gen-schema" ./cmd/gen-schema
# tfgen prints hundreds of harmless doc-conversion warnings: show them only on failure.
if ! "$work/gen-schema" "$version" cmd/pulumi-resource-docker/schema.json "$work/upstream" \
    > "$work/gen-schema.log" 2>&1; then
    cat "$work/gen-schema.log" >&2
    exit 1
fi

# Compare resource tokens and property names with the pulumi-docker Python SDK,
# when a Python that has it at our version is at hand (TFBOX_PYTHON, else python3).
python=${TFBOX_PYTHON:-python3}
sdk_version=$("$python" -c 'import importlib.metadata as m; print(m.version("pulumi-docker"))' 2>/dev/null || true)
if [ "$sdk_version" = "$version" ]; then
    echo "build-docker-provider: checking names against the pulumi-docker $version Python SDK" >&2
    "$python" "$src/check_names.py" cmd/pulumi-resource-docker/schema.json >&2
else
    echo "build-docker-provider: pulumi-docker $version not importable by $python, name check skipped" >&2
fi

echo "build-docker-provider: building pulumi-resource-docker $version" >&2
mkdir -p "$bindir"
go build -trimpath -tags "$tags" \
    -ldflags "-s -w -X main.version=$version" \
    -o "$work/pulumi-resource-docker" ./cmd/pulumi-resource-docker
mv "$work/pulumi-resource-docker" "$bindir/pulumi-resource-docker"
echo "build-docker-provider: built $bindir/pulumi-resource-docker" >&2
