#!/usr/bin/env bash
# The drift check: does the machine still match the committed stack? Refreshes the state from what
# is really on the machine, previews with the policy pack, and fails if `up` would change anything.
# The nightly job in .github/workflows/deploy.yml and the e2e tests (tests/e2e/test_gpus.py) run
# exactly this, so the check CI trusts is the one the tests prove.
#
#   scripts/drift.sh STACK     (environment as scripts/preview.sh)
set -euo pipefail
stack=${1:-}
[[ -n $stack ]] || { echo "usage: scripts/drift.sh STACK" >&2; exit 2; }
exec "$(dirname "$0")/preview.sh" "$stack" --refresh --expect-no-changes
