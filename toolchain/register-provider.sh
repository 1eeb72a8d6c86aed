#!/usr/bin/env bash
# Register the docker provider that toolchain/ensure.sh built as a Pulumi plugin in $PULUMI_HOME
# (default ~/.pulumi), so the engine takes it from its plugin cache instead of $PATH, where it prints
# "warning: using pulumi-resource-docker from $PATH ..." twice on every command.
# Callers then set PULUMI_IGNORE_AMBIENT_PLUGINS=1: the engine still finds the language host next to
# `pulumi` (a bundled plugin), and stops looking for providers on $PATH.
# (Not part of ensure.sh: editing that file changes the toolchain's cache key and rebuilds everything.)
#
# Usage: toolchain/register-provider.sh BINDIR   (BINDIR: the last line ensure.sh printed)
# Does nothing where BINDIR has no pulumi-resource-docker (Pulumi installed the usual way downloads it).
set -euo pipefail
bindir=${1:?usage: $0 BINDIR}
provider=$bindir/pulumi-resource-docker
[ -x "$provider" ] || exit 0
plugins=${PULUMI_HOME:-$HOME/.pulumi}/plugins
# Fast path (every `make up` runs this): the stamp names the build last registered, by path, size and
# mtime, and the plugin it became; starting the provider for its version and comparing 90 MB costs ~0.6 s.
stamp=$plugins/.tfbox-docker-provider
seen="$(cd "$(dirname "$provider")" && pwd)/pulumi-resource-docker $(stat -c '%s %Y' "$provider")"
if [ -f "$stamp" ]; then
    { read -r recorded; read -r registered; } <"$stamp" || true
    if [ "${recorded:-}" = "$seen" ] && [ -x "${registered:-}" ] && [ "$(stat -c %s "$registered")" = "$(stat -c %s "$provider")" ]; then
        exit 0
    fi
fi
version=$("$provider" -version 2>/dev/null | tr -d 'v[:space:]')
[ -n "$version" ] || { echo "register-provider.sh: $provider -version printed nothing" >&2; exit 1; }
installed=$plugins/resource-docker-v$version/pulumi-resource-docker
if ! { [ -x "$installed" ] && cmp -s "$provider" "$installed"; }; then
    # --reinstall: a stale build of the same version (e.g. a rebuilt toolchain) is replaced
    PULUMI_SKIP_UPDATE_CHECK=1 "$bindir/pulumi" plugin install resource docker "$version" --file "$provider" --reinstall >&2
fi
printf '%s\n%s\n' "$seen" "$installed" >"$stamp"
