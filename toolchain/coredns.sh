#!/usr/bin/env bash
# Find or build CoreDNS for the Kubernetes test kit and print (as the LAST line on stdout) its bin directory.
# Logs go to stderr.
#
# Why this exists: the kit's real node (scripts/k8s-node.sh) gives its pods cluster DNS, so a pod finds another
# through a headless Service's name (<svc>.<namespace>.svc), as tfbox's notebook finds its TensorBoard pod.
# Release downloads are unreachable here; the Go module proxy serves github.com/coredns/coredns, so this builds
# a small main module of its own: coremain plus only the plugins the kit's Corefile uses (upstream's
# core/plugin/zplugin.go imports all ~60, with their cloud SDKs). Plugins register themselves with caddy in
# their init(); dnsserver.Directives (upstream's zdirectives.go) orders them and is trimmed here to the ones
# built in, so a Corefile naming any other plugin fails at once with "unknown directive".
# It is its own script with its own cache key (not part of toolchain/k8s.sh): changing one does not rebuild
# the other. Binaries are stripped (-s -w), CGO off, -trimpath. Builds land in
# $TFBOX_CACHE/coredns/<version>-<source hash>/bin and are reused.
#
# Environment: TFBOX_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/tfbox).
# Usage: PATH="$(toolchain/coredns.sh | tail -n1):$PATH"
set -euo pipefail

COREDNS_VERSION=1.15.0
# the plugins built in, by their directive names (each is github.com/coredns/coredns/plugin/<name>)
PLUGINS=(bind ready errors log cache kubernetes forward)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { printf 'coredns.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if ! command -v go >/dev/null 2>&1; then
    [ -x /usr/local/go/bin/go ] || die "Go is needed to build CoreDNS and was not found"
    export PATH="/usr/local/go/bin:$PATH"
fi

cache_root=${TFBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tfbox}
mkdir -p "$cache_root/coredns"
find "$cache_root/coredns" -mindepth 1 -maxdepth 1 -name '.build.*' -mmin +1440 -exec rm -rf {} + 2>/dev/null || true

source_hash=$(
    { printf '%s\n' "$COREDNS_VERSION" "$(go env GOVERSION)"; sha256sum <"$here/coredns.sh"; } |
        sha256sum | cut -c1-16
)
key="coredns-${COREDNS_VERSION}_${source_hash}"
final="$cache_root/coredns/$key"
if [ -x "$final/bin/coredns" ]; then
    log "reusing $final/bin"
    echo "$final/bin"
    exit 0
fi

work=$(mktemp -d "$cache_root/coredns/.build.XXXXXX")
cleanup() { chmod -R u+w "$work" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/out/bin" "$work/src"

export CGO_ENABLED=0 GOFLAGS="-trimpath -mod=mod" GOTOOLCHAIN=local
started=$SECONDS

{
    cat <<'GO'
// CoreDNS with only the plugins tfbox's test kit uses (toolchain/coredns.sh writes this file).
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

GO
    for p in "${PLUGINS[@]}"; do printf '\t_ "github.com/coredns/coredns/plugin/%s"\n' "$p"; done
    printf ')\n\nvar builtIn = map[string]bool{\n'
    for p in "${PLUGINS[@]}"; do printf '\t"%s": true,\n' "$p"; done
    cat <<'GO'
}

// init keeps upstream's directive order (it is the plugin chain's order) for the plugins built in.
func init() {
	kept := dnsserver.Directives[:0:0]
	for _, d := range dnsserver.Directives {
		if builtIn[d] {
			kept = append(kept, d)
		}
	}
	dnsserver.Directives = kept
}

func main() { coremain.Run() }
GO
} >"$work/src/main.go"

# neither `go get` nor `go mod tidy`: they fetch every module any coredns package (all its plugins, their
# cloud SDKs) or test could import, 1.6 GB; `go build -mod=mod` fetches only what this build compiles
# (its "go: downloading" lines are shown only if it fails)
if ! (cd "$work/src" && go mod init tfbox.local/coredns &&
    go mod edit -require="github.com/coredns/coredns@v$COREDNS_VERSION" &&
    go build -ldflags "-s -w" -o "$work/out/bin/coredns" .) >"$work/build.log" 2>&1; then
    tail -n 40 "$work/build.log" >&2
    die "building CoreDNS $COREDNS_VERSION failed"
fi

"$work/out/bin/coredns" -version >/dev/null 2>&1 || die "the built coredns does not run"
missing=$(for p in "${PLUGINS[@]}"; do "$work/out/bin/coredns" -plugins | grep -qx "[[:space:]]*\(dns\.\)\{0,1\}$p" || echo "$p"; done)
[ -z "$missing" ] || die "the built coredns lacks the plugins: $missing"

if mv -T "$work/out" "$final" 2>/dev/null; then
    log "built CoreDNS $COREDNS_VERSION ($(du -h "$final/bin/coredns" | cut -f1)) in $((SECONDS - started))s: $final/bin"
else
    [ -x "$final/bin/coredns" ] || die "could not move the build into $final"
    log "another build of $key finished first; using it"
fi
echo "$final/bin"
