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
version=$("$provider" -version 2>/dev/null | tr -d 'v[:space:]')
[ -n "$version" ] || { echo "register-provider.sh: $provider -version printed nothing" >&2; exit 1; }
installed=${PULUMI_HOME:-$HOME/.pulumi}/plugins/resource-docker-v$version/pulumi-resource-docker
if [ -x "$installed" ] && cmp -s "$provider" "$installed"; then
    exit 0
fi
# --reinstall: a stale build of the same version (e.g. a rebuilt toolchain) is replaced
PULUMI_SKIP_UPDATE_CHECK=1 "$bindir/pulumi" plugin install resource docker "$version" --file "$provider" --reinstall >&2
