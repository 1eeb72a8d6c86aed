#!/usr/bin/env bash
# Find or build the Kubernetes test kit's binaries and print (as the LAST line on stdout) their bin directory.
# Logs go to stderr.
#
# Why this exists: the test kit's cluster (scripts/k8s.sh) needs a real API server, scheduler and controller
# manager, etcd, kwok for fake GPU nodes, a kubelet, and the Pulumi Kubernetes provider at the version of
# the pulumi-kubernetes SDK. Release downloads are unreachable here; only the Go module proxy is, so each is
# built from its Go module (see /work/shared/notes/kubernetes-facts.md for why each wrapper is needed):
#   - etcd:            a tiny main module calling go.etcd.io/etcd/server/v3/etcdmain.Main
#   - kube-apiserver, kube-scheduler, kube-controller-manager, kubelet: a module that requires
#     k8s.io/kubernetes and `replace`s each of its ./staging modules with the published v0.X.Y (upstream's
#     own replaces point into ./staging, so `go install k8s.io/kubernetes/...@v` is refused)
#   - kwok:            sigs.k8s.io/kwok/cmd/kwok, plus its stage configs (share/kwok.yaml)
#   - pulumi-resource-kubernetes: the provider module's main.go, with the schema/mapping it //go:embeds
#     generated from the module's schema.json and terraform-mapping.json (they are not in the module zip)
# Binaries are stripped (-s -w). Builds land in $TFBOX_CACHE/k8s/<versions>-<source hash>/ and are reused.
#
# Versions: pulumi-kubernetes== in requirements-dev.txt (the provider), and the variables below.
# Environment: TFBOX_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/tfbox).
# Usage: PATH="$(toolchain/k8s.sh | tail -n1):$PATH"
set -euo pipefail

K8S_VERSION=1.34.4     # k8s.io/kubernetes; its staging modules are v0.${minor}.${patch}
ETCD_VERSION=3.6.16
KWOK_VERSION=0.8.0
# The proxy serves github.com/pulumi/pulumi-kubernetes/provider/v4 only as a pseudo-version (the repository
# tags v4.25.0, not provider/v4.25.0): this one is the v4.25.0 release commit. Bumping pulumi-kubernetes in
# requirements-dev.txt means finding the new release commit's pseudo-version (`go list -m -json MODULE@COMMIT`).
declare -A PK8S_MODULE_VERSIONS=([4.25.0]=v4.0.0-20260115033456-f47bc2d6f199)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(dirname "$here")

log() { printf 'k8s.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

pk8s_version=$(sed -n 's/^pulumi-kubernetes==\([^[:space:];#]*\).*/\1/p' "$repo_root/requirements-dev.txt" | head -n1)
[ -n "$pk8s_version" ] || die "no pulumi-kubernetes==<version> pin in requirements-dev.txt"
pk8s_module_version=${PK8S_MODULE_VERSIONS[$pk8s_version]:-}
[ -n "$pk8s_module_version" ] ||
    die "no provider module version known for pulumi-kubernetes $pk8s_version; add it to PK8S_MODULE_VERSIONS"

if ! command -v go >/dev/null 2>&1; then
    [ -x /usr/local/go/bin/go ] || die "Go is needed to build the Kubernetes test kit and was not found"
    export PATH="/usr/local/go/bin:$PATH"
fi

cache_root=${TFBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tfbox}
mkdir -p "$cache_root/k8s"
find "$cache_root/k8s" -mindepth 1 -maxdepth 1 -name '.build.*' -mmin +1440 -exec rm -rf {} + 2>/dev/null || true

source_hash=$(
    { printf '%s\n' "$K8S_VERSION" "$ETCD_VERSION" "$KWOK_VERSION" "$pk8s_version" "$(go env GOVERSION)"
      sha256sum <"$here/k8s.sh"; } | sha256sum | cut -c1-16
)
key="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_pk8s-${pk8s_version}_${source_hash}"
final="$cache_root/k8s/$key"
if [ -d "$final/bin" ]; then
    log "reusing $final/bin"
    echo "$final/bin"
    exit 0
fi

work=$(mktemp -d "$cache_root/k8s/.build.XXXXXX")
cleanup() { chmod -R u+w "$work" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
bin=$work/out/bin
share=$work/out/share
mkdir -p "$bin" "$share"

export CGO_ENABLED=0 GOFLAGS="-trimpath -mod=mod" GOTOOLCHAIN=local
started=$SECONDS

# moddir MODULE@VERSION: download a module and print its directory in the module cache
moddir() {
    (cd "$work" && go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
}

# --- etcd --------------------------------------------------------------------------------------------
step=$SECONDS
mkdir -p "$work/etcd"
cat >"$work/etcd/main.go" <<'GO'
// etcd, built from its server module (its main package lives in a module the proxy does not serve alone).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
(cd "$work/etcd" && go mod init tfbox.local/etcd >/dev/null 2>&1 &&
    go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >/dev/null 2>&1 &&
    go mod tidy >/dev/null 2>&1 &&
    go build -ldflags "-s -w" -o "$bin/etcd" .) >&2 || die "building etcd $ETCD_VERSION failed"
log "built etcd $ETCD_VERSION in $((SECONDS - step))s"

# --- kwok ----------------------------------------------------------------------------------------------
step=$SECONDS
kwok_dir=$(moddir "sigs.k8s.io/kwok@v$KWOK_VERSION")
[ -d "$kwok_dir" ] || die "could not download sigs.k8s.io/kwok@v$KWOK_VERSION"
(cd "$kwok_dir" && GOFLAGS="-trimpath -mod=mod -modcacherw" go build -ldflags "-s -w" -o "$bin/kwok" ./cmd/kwok) >&2 ||
    die "building kwok $KWOK_VERSION failed"
# kwok does nothing without stages: nodes go Ready (+ heartbeats), pods go Running
for s in node/fast node/heartbeat pod/fast; do
    for f in "$kwok_dir/kustomize/stage/$s"/*.yaml; do
        case $(basename "$f") in kustomization.yaml) continue ;; esac
        printf -- '---\n' >>"$share/kwok.yaml"
        cat "$f" >>"$share/kwok.yaml"
    done
done
log "built kwok $KWOK_VERSION in $((SECONDS - step))s"

# --- Kubernetes --------------------------------------------------------------------------------------
step=$SECONDS
kdir=$(moddir "k8s.io/kubernetes@v$K8S_VERSION")
[ -f "$kdir/go.mod" ] || die "could not download k8s.io/kubernetes@v$K8S_VERSION"
staging=v0.${K8S_VERSION#*.}
mkdir -p "$work/kube"
{
    echo "module tfbox.local/kube"
    echo
    echo "go $(awk '$1 == "go" { print $2; exit }' "$kdir/go.mod")"
    echo "godebug default=go1.24"
    echo
    echo "require k8s.io/kubernetes v$K8S_VERSION"
    echo
    # every `k8s.io/X => ./staging/src/k8s.io/X` upstream becomes `k8s.io/X => k8s.io/X v0.Y.Z`
    sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/src/.*#\1#p' "$kdir/go.mod" |
        grep -v -e '^k8s.io/sample-cli-plugin$' -e '^k8s.io/sample-controller$' |
        while read -r m; do echo "replace $m => $m $staging"; done
} >"$work/kube/go.mod"
cat >"$work/kube/tools.go" <<'GO'
//go:build tools

// Package tools pins the Kubernetes commands this module builds.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
(cd "$work/kube" && go mod tidy -e >/dev/null 2>&1 || true)
kflags="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=${K8S_VERSION%%.*} -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) -X k8s.io/component-base/version.gitTreeState=clean"
for cmd in kube-apiserver kube-scheduler kube-controller-manager kubelet; do
    s=$SECONDS
    (cd "$work/kube" && go build -ldflags "$kflags" -o "$bin/$cmd" "k8s.io/kubernetes/cmd/$cmd") >&2 ||
        die "building $cmd v$K8S_VERSION failed"
    log "built $cmd in $((SECONDS - s))s"
done
log "built Kubernetes v$K8S_VERSION in $((SECONDS - step))s"

# --- pulumi-resource-kubernetes ----------------------------------------------------------------------
step=$SECONDS
pmod=github.com/pulumi/pulumi-kubernetes/provider/v4
pdir=$(moddir "$pmod@$pk8s_module_version")
[ -f "$pdir/go.mod" ] || die "could not download $pmod@$pk8s_module_version"
mkdir -p "$work/pk8s"
cp "$pdir/cmd/pulumi-resource-kubernetes/"{main.go,generate.go,schema.json,terraform-mapping.json} "$work/pk8s/"
(cd "$work/pk8s" && {
    # the provider's own go.mod (its requirements and replaces: what it was released with), as a module
    # that requires the provider; replaces into its own repository (relative paths) cannot apply
    cp "$pdir/go.mod" "$pdir/go.sum" .
    chmod u+w go.mod go.sum
    go mod edit -module tfbox.local/pk8s -require="$pmod@$pk8s_module_version"
    sed -n 's/^replace \([^ ]*\)\( v[^ ]*\)\{0,1\} => \..*/\1/p; s/^[[:space:]]\{1,\}\([^ ]*\)\( v[^ ]*\)\{0,1\} => \..*/\1/p' go.mod |
        while read -r old; do go mod edit -dropreplace="$old"; done
    go mod tidy -e >/dev/null 2>&1 || true
    # upstream's `go generate`: schema-embed.json (stamped with the version) and terraform-mapping-embed.json
    VERSION=$pk8s_version go run generate.go
    rm generate.go
    go build -ldflags "-s -w -X $pmod/pkg/version.Version=$pk8s_version" -o "$bin/pulumi-resource-kubernetes" .
}) >&2 || die "building pulumi-resource-kubernetes $pk8s_version failed"
log "built pulumi-resource-kubernetes $pk8s_version in $((SECONDS - step))s"

for b in etcd kwok kube-apiserver kube-scheduler kube-controller-manager kubelet; do
    "$bin/$b" --version >/dev/null 2>&1 || "$bin/$b" version >/dev/null 2>&1 || die "the built $b does not run"
done

if mv -T "$work/out" "$final" 2>/dev/null; then
    log "built $final/bin in $((SECONDS - started))s"
else
    [ -d "$final/bin" ] || die "could not move the build into $final"
    log "another build of $key finished first; using it"
fi
echo "$final/bin"
