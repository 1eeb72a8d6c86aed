#!/usr/bin/env bash
# The policy pack runs in its own virtualenv (policy/PulumiPolicy.yaml: virtualenv .venv). Build it
# unless it already has every pin of policy/requirements.txt. Run by scripts/preview.sh and `make fleet`.
#   scripts/policy-venv.sh [PACK_DIR]   (default policy; the PR workflow passes main's copy, guard/policy)
set -euo pipefail
cd "$(dirname "$0")/.."
pack=${1:-policy}
if ! "$pack/.venv/bin/python" - "$pack/requirements.txt" >/dev/null 2>&1 <<'PY'
import importlib.metadata as md, re, sys
for line in open(sys.argv[1]):
    m = re.match(r"\s*([A-Za-z0-9_.-]+)==([^\s;#]+)", line)
    if m and md.version(m.group(1)) != m.group(2):
        sys.exit(1)
PY
then
  echo "policy-venv: installing the policy pack's dependencies into $pack/.venv" >&2
  python3 -m venv "$pack/.venv"
  "$pack/.venv/bin/pip" install -q --disable-pip-version-check -r "$pack/requirements.txt"
fi
