#!/usr/bin/env bash
# Find or build the test kit's stand-in NVIDIA device plugin (toolchain/gpu-plugin/, a Go program on the
# kubelet device plugin API v1beta1) and print (as the LAST line on stdout) its bin directory. Logs go to stderr.
#
# Why its own script: toolchain/k8s.sh's hash is the cache key of the kit's slow build; the plugin is small
# and changes on its own. The build uses the Go module proxy (or the module cache the kit's kubelet build
# filled: k8s.io/kubelet and google.golang.org/grpc at the versions toolchain/gpu-plugin/go.mod pins).
# Builds land in $TFBOX_CACHE/gpu-plugin/<source hash>/bin and are reused.
# Environment: TFBOX_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/tfbox).
# Usage: TFBOX_GPU_PLUGIN_BIN="$(toolchain/gpu-plugin.sh | tail -n1)"
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$here/gpu-plugin
log() { printf 'gpu-plugin.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if ! command -v go >/dev/null 2>&1; then
    [ -x /usr/local/go/bin/go ] || die "Go is needed to build the stand-in device plugin and was not found"
    export PATH="/usr/local/go/bin:$PATH"
fi

cache_root=${TFBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tfbox}
mkdir -p "$cache_root/gpu-plugin"
source_hash=$(
    { go env GOVERSION; cat "$here/gpu-plugin.sh" "$src/go.mod" "$src/go.sum" "$src/main.go"; } | sha256sum | cut -c1-16
)
final=$cache_root/gpu-plugin/$source_hash
if [ -x "$final/bin/tfbox-gpu-plugin" ]; then
    log "reusing $final/bin"
    echo "$final/bin"
    exit 0
fi

work=$(mktemp -d "$cache_root/gpu-plugin/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
started=$SECONDS
cp "$src/go.mod" "$src/go.sum" "$src/main.go" "$work/"
mkdir -p "$work/out/bin"
(cd "$work" && CGO_ENABLED=0 GOFLAGS="-trimpath -mod=readonly" GOTOOLCHAIN=local \
    go build -ldflags "-s -w" -o "$work/out/bin/tfbox-gpu-plugin" .) >&2 || die "building tfbox-gpu-plugin failed"
"$work/out/bin/tfbox-gpu-plugin" --help >/dev/null 2>&1 || [ $? -eq 2 ] || die "the built tfbox-gpu-plugin does not run"
if mv -T "$work/out" "$final" 2>/dev/null; then
    log "built $final/bin in $((SECONDS - started))s"
else
    [ -x "$final/bin/tfbox-gpu-plugin" ] || die "could not move the build into $final"
    log "another build finished first; using it"
fi
echo "$final/bin"
