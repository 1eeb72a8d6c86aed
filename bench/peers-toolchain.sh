#!/usr/bin/env bash
# Find or build the tools bench/peers.py compares tfbox with, and print (as the LAST line on stdout) the
# directory that holds them. Logs go to stderr. Benchmarks only: nothing here is a runtime requirement of tfbox.
#
# Like toolchain/ensure.sh, everything comes from package registries (release downloads are unreachable on
# our build machines), and is cached under $TFBOX_CACHE/peers/, one directory per tool and version (a cold
# build of OpenTofu takes minutes: a change to one tool must not rebuild the others); the directory printed
# last links them together:
#   bin/docker-compose   Docker Compose v2+ (the `docker compose` plugin), from the Go module
#                        github.com/docker/compose/v5, called standalone. Its go.mod has exclude directives,
#                        so `go install …/cmd@v` refuses it; we build a copy of the module as the main module.
#   bin/tofu             OpenTofu, from the Go module github.com/opentofu/opentofu. Its go.mod has a replace
#                        directive (hcl/v2 -> opentofu/hcl), so `go install …@v` refuses it; we build a copy
#                        of the module as the main module, where its replace applies.
#   tofu-mirror/         the kreuzwerker docker provider at the commit pulumi-docker bridges (the version in
#                        toolchain/docker-provider/go.mod), built from its Go module, laid out as an OpenTofu
#                        filesystem mirror; tofurc points OpenTofu at it, so `tofu init` asks no registry
#   ansible/             a virtualenv with ansible-core and the `ansible` package (which ships the
#                        community.docker collection), apart from the project's .venv
#   plot/                a virtualenv with matplotlib, for the figure bench/peers.py draws (bench/plot_peers.py)
#
# Environment: TFBOX_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/tfbox), TFBOX_PEERS_SKIP (space-separated
# subset of "compose tofu ansible plot" to leave out, e.g. for a quick smoke run).
#
# Usage: peers=$(bench/peers-toolchain.sh | tail -n1)
set -euo pipefail

compose_version=v5.6.0
tofu_version=v1.12.6
ansible_version=12.3.0  # the newest release for Python 3.11 (13+ need 3.12)
matplotlib_version=3.11.2  # for bench/peers.py's plot only

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(dirname "$here")
log() { printf 'peers-toolchain.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if ! command -v go >/dev/null 2>&1; then
    [ -x /usr/local/go/bin/go ] || die "Go is needed to build Docker Compose, OpenTofu and the provider"
    export PATH="/usr/local/go/bin:$PATH"
fi

# The Terraform docker provider at the commit the Pulumi provider bridges (toolchain/docker-provider/go.mod).
provider_module=github.com/kreuzwerker/terraform-provider-docker
provider_pseudo=$(awk '$1 == "github.com/terraform-providers/terraform-provider-docker" { print $2 }' \
    "$repo_root/toolchain/docker-provider/go.mod")
[ -n "$provider_pseudo" ] || die "no terraform-provider-docker version in toolchain/docker-provider/go.mod"

cache_root=${TFBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tfbox}
gover=$(go env GOVERSION)
peers=$cache_root/peers
final="$peers/current"
mkdir -p "$final/bin"
skip=" ${TFBOX_PEERS_SKIP:-} "

export CGO_ENABLED=0 GOFLAGS="-trimpath -mod=mod"
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null || true; rm -rf "$work"' EXIT

# module_dir MODULE@VERSION -> the directory of the module in Go's module cache (downloaded if needed)
module_dir() {
    (cd "$work" && go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
}

# module_copy MODULE@VERSION NAME -> a writable copy of the module at $work/NAME, to build as the main module
# (go install refuses modules with replace/exclude directives)
module_copy() {
    local src
    src=$(module_dir "$1")
    [ -n "$src" ] || die "could not download $1"
    cp -R "$src" "$work/$2"
    chmod -R u+w "$work/$2"
}

# --- Docker Compose ---------------------------------------------------------------------------------------
compose_bin=$peers/compose-$compose_version-$gover/docker-compose
if [[ $skip != *" compose "* ]] && [ ! -x "$compose_bin" ]; then
    log "building Docker Compose $compose_version (a copy of its module as the main module)"
    t=$SECONDS
    module_copy "github.com/docker/compose/v5@$compose_version" compose
    (cd "$work/compose" && go build \
        -ldflags "-s -w -X github.com/docker/compose/v5/internal.Version=$compose_version" \
        -o "$work/docker-compose" ./cmd) >&2
    mkdir -p "$(dirname "$compose_bin")"
    mv "$work/docker-compose" "$compose_bin"
    log "built docker-compose in $((SECONDS - t))s"
fi

# --- OpenTofu and the provider mirror ---------------------------------------------------------------------
# The provider's version for OpenTofu: the release its pseudo-version follows (CHANGELOG's first entry).
provider_dir=""
provider_version=""
if [[ $skip != *" tofu "* ]]; then
    provider_dir=$(module_dir "$provider_module@$provider_pseudo")
    [ -n "$provider_dir" ] || die "could not download $provider_module@$provider_pseudo"
    provider_version=$(sed -n 's/^## \[v\([0-9.]*\)\].*/\1/p' "$provider_dir/CHANGELOG.md" | head -n1)
    [ -n "$provider_version" ] || die "no release in $provider_dir/CHANGELOG.md"
fi
mirror="$peers/tofu-mirror-$provider_pseudo-$gover"
mirror_bin="$mirror/registry.opentofu.org/kreuzwerker/docker/$provider_version/linux_amd64"
tofu_bin=$peers/tofu-$tofu_version-$gover/tofu
if [[ $skip != *" tofu "* ]] && [ ! -x "$tofu_bin" ]; then
    log "building OpenTofu $tofu_version (a copy of its module as the main module, for its replace directive)"
    t=$SECONDS
    module_copy "github.com/opentofu/opentofu@$tofu_version" opentofu
    # dev=no: a release build (`tofu version` says v1.12.6, not v1.12.6-dev)
    (cd "$work/opentofu" && go build -ldflags "-s -w -X github.com/opentofu/opentofu/version.dev=no" \
        -o "$work/tofu" ./cmd/tofu) >&2
    mkdir -p "$(dirname "$tofu_bin")"
    mv "$work/tofu" "$tofu_bin"
    log "built tofu in $((SECONDS - t))s"
fi
if [[ $skip != *" tofu "* ]] && [ ! -x "$mirror_bin/terraform-provider-docker_v$provider_version" ]; then
    log "building terraform-provider-docker $provider_version ($provider_pseudo, the commit pulumi-docker bridges)"
    t=$SECONDS
    cp -R "$provider_dir" "$work/provider"
    chmod -R u+w "$work/provider"
    mkdir -p "$mirror_bin"
    (cd "$work/provider" && go build -ldflags "-s -w -X main.version=$provider_version" \
        -o "$work/terraform-provider-docker" .) >&2
    mv "$work/terraform-provider-docker" "$mirror_bin/terraform-provider-docker_v$provider_version"
    log "built the provider in $((SECONDS - t))s"
fi
if [[ $skip != *" tofu "* ]]; then
    cat >"$final/tofurc" <<EOF
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.opentofu.org/kreuzwerker/docker"]
  }
  direct {
    exclude = ["registry.opentofu.org/kreuzwerker/docker"]
  }
}
EOF
    echo "$provider_version" >"$final/provider-version"
fi

# --- Ansible ----------------------------------------------------------------------------------------------
ansible_venv=$peers/ansible-$ansible_version-$(python3 -c 'import sys; print("py%d.%d" % sys.version_info[:2])')
if [[ $skip != *" ansible "* ]] && [ ! -e "$ansible_venv/.complete" ]; then
    log "installing ansible $ansible_version (with community.docker) into $ansible_venv"
    t=$SECONDS
    rm -rf "$ansible_venv"
    python3 -m venv "$ansible_venv"
    "$ansible_venv/bin/pip" install -q --disable-pip-version-check "ansible==$ansible_version" requests >&2
    touch "$ansible_venv/.complete"
    log "installed ansible in $((SECONDS - t))s"
fi

# --- matplotlib, for the plot ----------------------------------------------------------------------------
plot_venv=$peers/matplotlib-$matplotlib_version-$(python3 -c 'import sys; print("py%d.%d" % sys.version_info[:2])')
if [[ $skip != *" plot "* ]] && [ ! -e "$plot_venv/.complete" ]; then
    log "installing matplotlib $matplotlib_version into $plot_venv"
    rm -rf "$plot_venv"
    python3 -m venv "$plot_venv"
    "$plot_venv/bin/pip" install -q --disable-pip-version-check "matplotlib==$matplotlib_version" >&2
    touch "$plot_venv/.complete"
fi

# link what is there into $final (the layout bench/peers.py reads)
[ -x "$compose_bin" ] && ln -sfn "$compose_bin" "$final/bin/docker-compose"
[ -x "$tofu_bin" ] && ln -sfn "$tofu_bin" "$final/bin/tofu"
[ -e "$ansible_venv/.complete" ] && ln -sfn "$ansible_venv" "$final/ansible"
[ -e "$plot_venv/.complete" ] && ln -sfn "$plot_venv" "$final/plot"
echo "$final"
