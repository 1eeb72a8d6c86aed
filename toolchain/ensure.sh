#!/usr/bin/env bash
# Find or build the Pulumi toolchain tfbox runs with, and print (as the LAST line on stdout) a directory to
# put first on PATH. Logs go to stderr.
#
# Why this exists: on our build machines Pulumi's release downloads (get.pulumi.com, GitHub releases) are
# unreachable; only package registries and the Go module proxy are. So we build from Go modules:
#   - the CLI `pulumi` from github.com/pulumi/pulumi/pkg/v3 (module in toolchain/pulumi-cli/),
#   - our own minimal Python language host `pulumi-language-python` (toolchain/language-python/), because the
#     upstream host's module is not served by the proxy, plus the Python scripts it needs from sdk/v3,
#   - the docker provider `pulumi-resource-docker` (toolchain/build-docker-provider.sh).
# Anywhere else, install Pulumi normally (https://www.pulumi.com/docs/install/) and this script just reports it.
#
# Versions come from requirements.txt (`pulumi==`, `pulumi-docker==`), the single source of truth.
#
# Environment:
#   TFBOX_BUILD_TOOLCHAIN  set (non-empty) to build even when a `pulumi` is already on PATH
#   TFBOX_CACHE            cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/tfbox); builds land in
#                          $TFBOX_CACHE/toolchain/<versions>-<source hash>/bin and are reused
#
# Usage: PATH="$(toolchain/ensure.sh | tail -n1):$PATH"
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(dirname "$here")

log() { printf 'ensure.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# pin NAME -> the version pinned as NAME==X in requirements.txt
pin() {
    sed -n "s/^$1==\([^[:space:];#]*\).*/\1/p" "$repo_root/requirements.txt" | head -n1
}
pulumi_version=$(pin pulumi)
docker_version=$(pin pulumi-docker)
[ -n "$pulumi_version" ] || die "no pulumi==<version> pin in requirements.txt"
[ -n "$docker_version" ] || die "no pulumi-docker==<version> pin in requirements.txt"

# 1. An installed Pulumi wins unless a build is forced.
if [ -z "${TFBOX_BUILD_TOOLCHAIN:-}" ] && existing=$(command -v pulumi 2>/dev/null); then
    existing_dir=$(cd "$(dirname "$existing")" && pwd)
    have=$(PULUMI_SKIP_UPDATE_CHECK=1 "$existing" version 2>/dev/null || true)
    if [ "${have#v}" != "$pulumi_version" ]; then
        log "warning: $existing is version '${have:-unknown}', requirements.txt pins $pulumi_version"
    fi
    log "using the pulumi on PATH ($existing_dir); set TFBOX_BUILD_TOOLCHAIN=1 to build $pulumi_version instead"
    echo "$existing_dir"
    exit 0
fi

# 2. Build (or reuse) our own.
if ! command -v go >/dev/null 2>&1; then
    [ -x /usr/local/go/bin/go ] || die "Go is needed to build the Pulumi toolchain and was not found"
    export PATH="/usr/local/go/bin:$PATH"
fi

cache_root=${TFBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tfbox}
mkdir -p "$cache_root/toolchain"
# Builds killed mid-way (SIGKILL, reboot) leave .build.* directories behind; drop those older than a day.
find "$cache_root/toolchain" -mindepth 1 -maxdepth 1 -name '.build.*' -mmin +1440 -exec rm -rf {} + 2>/dev/null || true
# Work next to the final location (same filesystem) so that publishing a build is one atomic rename.
work=$(mktemp -d "$cache_root/toolchain/.build.XXXXXX")
cleanup() { chmod -R u+w "$work" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# Snapshot our Go modules first and hash the snapshot, so the binaries always match the key even if someone
# edits the sources while a build runs.
cp -R "$here/pulumi-cli" "$here/language-python" "$work/"

# hash_files DIR PATH...: a line per file (relative path, content hash), in a stable order.
# Missing paths are skipped (e.g. before build-docker-provider.sh exists).
hash_files() {
    local dir=$1 p
    shift
    for p in "$@"; do
        [ -e "$dir/$p" ] || continue
        (cd "$dir" && find "$p" -type f ! -name '*.pyc' ! -path '*/__pycache__/*')
    done | LC_ALL=C sort | while IFS= read -r f; do printf '%s %s\n' "$f" "$(sha256sum <"$dir/$f")"; done
}
# The key covers the pins, the Go version and every source file that shapes the binaries: editing any of
# them (or bumping requirements.txt) builds a fresh directory, while older ones stay usable.
source_hash=$(
    {
        printf '%s\n' "$pulumi_version" "$docker_version" "$(go env GOVERSION)"
        hash_files "$work" pulumi-cli language-python
        hash_files "$here" ensure.sh build-docker-provider.sh docker-provider
    } | sha256sum | cut -c1-16
)
key="pulumi-${pulumi_version}_docker-${docker_version}_${source_hash}"
final="$cache_root/toolchain/$key"

if [ -d "$final/bin" ]; then
    log "reusing $final/bin"
    echo "$final/bin"
    exit 0
fi

bin="$work/out/bin"
mkdir -p "$bin"

export CGO_ENABLED=0
# -mod=mod: we build the snapshots retargeted at the pinned versions (below), so go may have to add go.sum
# entries; the committed go.mod/go.sum are never touched.
export GOFLAGS="-trimpath -mod=mod"
ldflags="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$pulumi_version"

# pin_module DIR: point a snapshot of one of our modules at the pinned pulumi version, so that bumping
# requirements.txt is enough (the committed go.mod is still worth updating; we warn when it lags).
pin_module() {
    local dir=$1 mod current
    for mod in github.com/pulumi/pulumi/pkg/v3 github.com/pulumi/pulumi/sdk/v3; do
        current=$(awk -v m="$mod" '$1 == m { print $2 } $1 == "require" && $2 == m { print $3 }' "$dir/go.mod" | head -n1)
        [ -n "$current" ] || continue
        if [ "$current" != "v$pulumi_version" ]; then
            log "warning: toolchain/$(basename "$dir")/go.mod requires $mod $current; building v$pulumi_version (update it)"
        fi
        (cd "$dir" && go mod edit -require="$mod@v$pulumi_version")
    done
}

started=$SECONDS

log "building pulumi v$pulumi_version (a cold build takes several minutes; Go's build cache makes later ones quick)"
pin_module "$work/pulumi-cli"
(cd "$work/pulumi-cli" && go build -ldflags "$ldflags" -o "$bin/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi) >&2
log "built pulumi in $((SECONDS - started))s"

log "building pulumi-language-python (tfbox's own host, see toolchain/language-python/main.go)"
pin_module "$work/language-python"
# its own tests first (config env, toolchain options, About): a host that fails them is not cached
(cd "$work/language-python" && go test ./... && go build -ldflags "$ldflags" -o "$bin/pulumi-language-python" .) >&2

# The scripts upstream ships next to its binaries: the exec shim our host runs programs with, the
# pulumi-python provider, and (in versions that have it) the standalone policy analyzer.
sdk_dir=$(cd "$work/language-python" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
[ -d "${sdk_dir:-/nonexistent}/python" ] || die "could not locate the sdk/v3 module's python/ directory"
for script in python/cmd/pulumi-language-python-exec python/dist/pulumi-resource-pulumi-python \
    python/dist/pulumi-analyzer-policy-python; do
    if [ -f "$sdk_dir/$script" ]; then
        install -m 0755 "$sdk_dir/$script" "$bin/$(basename "$script")"
    elif [ "$script" = python/cmd/pulumi-language-python-exec ]; then
        die "sdk/v3 v$pulumi_version has no $script"
    else
        log "note: sdk/v3 v$pulumi_version has no $script; skipping it"
    fi
done

if [ -f "$here/build-docker-provider.sh" ]; then
    log "building pulumi-resource-docker $docker_version (toolchain/build-docker-provider.sh)"
    step=$SECONDS
    bash "$here/build-docker-provider.sh" "$bin" >&2 || die "toolchain/build-docker-provider.sh failed"
    log "built pulumi-resource-docker in $((SECONDS - step))s"
    [ -x "$bin/pulumi-resource-docker" ] || die "build-docker-provider.sh did not produce pulumi-resource-docker"
else
    log "warning: toolchain/build-docker-provider.sh not found; no docker provider in $final/bin"
fi

"$bin/pulumi" version >/dev/null 2>&1 || die "the freshly built pulumi does not run"

if mv -T "$work/out" "$final" 2>/dev/null; then
    log "built $final/bin in $((SECONDS - started))s"
else
    # Someone else finished the same key first; theirs is equivalent, use it.
    [ -d "$final/bin" ] || die "could not move the build into $final"
    log "another build of $key finished first; using it"
fi
echo "$final/bin"
