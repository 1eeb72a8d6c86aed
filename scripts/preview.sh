#!/usr/bin/env bash
# `make preview STACK=<machine>`: the diff `pulumi up` would apply to that machine, with the tfbox
# policy pack, exactly as the pull-request workflow shows it.
#
#   scripts/preview.sh STACK [extra pulumi preview flags...]
#
# scripts/pr-preview.py (make pr-preview, the PR workflow) and scripts/drift.sh (the nightly drift
# check, and the e2e tests) run it, so all of them preview the same way.
#
# Environment: PULUMI_BACKEND_URL (default file://<project>/.state, as scripts/up.sh; a team's
# machine stacks live in the shared backend of docs/team-workflow.md, and a preview against any
# other backend diffs against empty state), PULUMI_CONFIG_PASSPHRASE or _FILE (default: the
# project's .state/passphrase when the backend is the project's .state), TFBOX_POLICY_PACK (default
# policy; the PR workflow points it at main's copy of the pack, so a branch cannot weaken its own check).
set -euo pipefail
cd "$(dirname "$0")/.."
stack=${1:-}
[[ -n $stack ]] || { echo "usage: make preview STACK=<machine>" >&2; exit 2; }
shift
[[ -f Pulumi.$stack.yaml ]] || { echo "preview: no Pulumi.$stack.yaml in $PWD" >&2; exit 2; }

bindir=$(toolchain/ensure.sh | tail -n 1)
PATH="$bindir:$PATH"
# the built docker provider from Pulumi's plugin cache, not $PATH (which warns on every command)
toolchain/register-provider.sh "$bindir" && export PULUMI_IGNORE_AMBIENT_PLUGINS=1
[[ -d .venv/bin ]] && PATH="$PWD/.venv/bin:$PATH"
export PATH PULUMI_SKIP_UPDATE_CHECK=1 PULUMI_DIY_BACKEND_NO_LEGACY_WARNING=1
export PULUMI_BACKEND_URL=${PULUMI_BACKEND_URL:-file://$PWD/.state}
if [[ -z ${PULUMI_CONFIG_PASSPHRASE:-} && -z ${PULUMI_CONFIG_PASSPHRASE_FILE:-} && -s .state/passphrase &&
  $PULUMI_BACKEND_URL == "file://$PWD/.state" ]]; then
  export PULUMI_CONFIG_PASSPHRASE_FILE=$PWD/.state/passphrase
fi

policy=${TFBOX_POLICY_PACK:-policy}
scripts/policy-venv.sh "$policy"

if ! pulumi stack select "$stack" >/dev/null 2>&1; then
  echo "preview: stack '$stack' is not in the backend $PULUMI_BACKEND_URL." >&2
  echo "         Set PULUMI_BACKEND_URL to the team's backend, or create it with: make machine (docs/team-workflow.md)" >&2
  exit 1
fi
exec pulumi preview --diff --stack "$stack" --policy-pack "$policy" "$@"
