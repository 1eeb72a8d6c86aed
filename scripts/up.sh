#!/usr/bin/env bash
# `make up`: deploy a stack with a state backend inside the project (.state/), so the
# first run needs no Pulumi Cloud account and no manual config. On the dev stack it
# generates the notebook password as a Pulumi secret if none is set.
#
#   scripts/up.sh [STACK] [--password [SEAT]|--outputs|--destroy|--tls]
#
# Every stack gets its password salt (tfbox:passwordSalt, random, public) on its first `up`.
# --tls makes the stack's self-signed certificate once (scripts/tls.sh; `make tls`).
# On a stack with seats (tfbox:seats) each seat has its password in tfbox:passwords.<seat>:
# `--password SEAT` prints it (`make password STACK=… SEAT=…`), and on the dev stack `up` generates missing ones.
#
# Environment: PULUMI_BACKEND_URL (default file://<project>/.state), PULUMI_CONFIG_PASSPHRASE
# or _FILE (default for the .state backend only: a generated .state/passphrase, mode 600), TFBOX_IMAGE (sets
# tfbox:image on the stack first, e.g. an image from your own registry), DOCKER_HOST
# (the docker provider's default host).
set -euo pipefail
cd "$(dirname "$0")/.."
stack=${1:-dev}
action=${2:-}
seat=${3:-}
if [[ -n $seat && ! $seat =~ ^[a-z0-9]([a-z0-9-]*[a-z0-9])?$ ]]; then
  echo "tfbox: SEAT '$seat' is not a seat name (lower-case letters, digits and inner dashes)" >&2
  exit 2
fi

bindir=$(toolchain/ensure.sh | tail -n 1)
export PATH="$bindir:$PWD/.venv/bin:$PATH"
# the built docker provider from Pulumi's plugin cache, not $PATH (which warns on every command)
toolchain/register-provider.sh "$bindir" && export PULUMI_IGNORE_AMBIENT_PLUGINS=1
export PULUMI_SKIP_UPDATE_CHECK=1 PULUMI_DIY_BACKEND_NO_LEGACY_WARNING=1
export PULUMI_BACKEND_URL=${PULUMI_BACKEND_URL:-file://$PWD/.state}
# pulumi uses a PULUMI_CONFIG_PASSPHRASE that is set but empty (over _FILE): treat empty as unset.
[[ -n ${PULUMI_CONFIG_PASSPHRASE:-} ]] || unset PULUMI_CONFIG_PASSPHRASE
[[ -n ${PULUMI_CONFIG_PASSPHRASE_FILE:-} ]] || unset PULUMI_CONFIG_PASSPHRASE_FILE
# shellcheck source=scripts/passphrase.sh
source scripts/passphrase.sh
tfbox_passphrase "$PWD" tfbox

new_stack=false
if ! pulumi stack select "$stack" >/dev/null 2>&1; then
  pulumi stack init "$stack" --secrets-provider passphrase >/dev/null
  new_stack=true
fi

# The stack's config in one CLI call (secrets show as present, never their values): each `pulumi` start
# costs a few tenths of a second, and `make up` used to ask three times before its `up`.
config_json=$(pulumi config --json --stack "$stack" 2>/dev/null || echo '{}')
# config_value KEY: its value (nothing for a secret); exit 1 when the key is not set
config_value() {
  python -c 'import json, sys
entry = json.loads(sys.stdin.read() or "{}").get(sys.argv[1])
if entry is None:
    sys.exit(1)
print("" if entry.get("secret") else entry.get("value", ""))' "$1" <<<"$config_json"
}

# The seats' names, one per line (none on a single-seat stack).
seat_names() {
  { config_value tfbox:seats || true; } |
    python -c 'import json, sys
try:
    seats = json.load(sys.stdin)
except ValueError:
    seats = []
for s in seats if isinstance(seats, list) else []:
    if isinstance(s, dict) and s.get("name"):
        print(s["name"])'
}

# TensorBoard behind the notebook's login is on for stacks made now (by whichever action: `make tls` often
# comes first); a stack that existed before keeps its notebook until its owner opts in (CHANGELOG), and a
# value already in the stack file is kept. The stack file itself is asked: `pulumi config` also lists
# Pulumi.yaml's defaults (false here).
in_stack_file() {
  python -c 'import sys, yaml
try:
    config = (yaml.safe_load(open(sys.argv[1])) or {}).get("config") or {}
except OSError:
    config = {}
sys.exit(0 if sys.argv[2] in config else 1)' "Pulumi.$stack.yaml" "$1"
}
if $new_stack && ! in_stack_file tfbox:tensorboardProxy; then
  pulumi config set --plaintext tfbox:tensorboardProxy true --stack "$stack"
  echo "tfbox: TensorBoard is served behind the notebook's login at <notebook URL>/tensorboard/ (tfbox:tensorboardProxy)" >&2
fi
case $action in
  --password)
    if [[ -n $seat ]]; then
      pulumi config get --path "tfbox:passwords.$seat" --stack "$stack"
    elif ! pulumi config get tfbox:password --stack "$stack"; then
      names=$(seat_names | paste -sd, -)
      [[ -z $names ]] || echo "tfbox: stack $stack has seats ($names): make password STACK=$stack SEAT=<seat>" >&2
      exit 1
    fi
    exit ;;
  --outputs) pulumi stack output --stack "$stack"; exit ;;
  --destroy) pulumi destroy --yes --stack "$stack"; exit ;;
  --tls) PYTHON=python scripts/tls.sh "$stack"; exit ;;
  "") ;;
  *) echo "usage: $0 [STACK] [--password [SEAT]|--outputs|--destroy|--tls]" >&2; exit 2 ;;
esac

if [[ -n ${TFBOX_IMAGE:-} ]]; then
  pulumi config set --plaintext tfbox:image "$TFBOX_IMAGE" --stack "$stack"
fi
seats=$(seat_names)
for s in $seats; do
  if ! pulumi config get --path "tfbox:passwords.$s" --stack "$stack" >/dev/null 2>&1; then
    if [[ $stack != dev ]]; then
      echo "tfbox: seat $s of stack $stack has no password; run: pulumi config set --secret --path 'tfbox:passwords.$s' --stack $stack" >&2
      exit 1
    fi
    head -c 18 /dev/urandom | base64 | tr -d '/+=' | pulumi config set --secret --path "tfbox:passwords.$s" --stack "$stack"
    echo "tfbox: generated a password for seat $s; read it with: make password SEAT=$s" >&2
  fi
done
if [[ -z $seats ]] && ! config_value tfbox:password >/dev/null; then
  if [[ $stack != dev ]]; then
    echo "tfbox: stack $stack has no password; run: pulumi config set --secret tfbox:password --stack $stack" >&2
    exit 1
  fi
  # from stdin, so the password never shows in `ps`
  head -c 18 /dev/urandom | base64 | tr -d '/+=' | pulumi config set --secret tfbox:password --stack "$stack"
  echo "tfbox: generated a notebook password for the dev stack; read it with: make password" >&2
fi
if [[ -z $(config_value tfbox:passwordSalt) ]]; then
  pulumi config set --plaintext tfbox:passwordSalt "$(python -m components.password salt)" --stack "$stack"
  echo "tfbox: made the password salt of stack $stack (tfbox:passwordSalt, in Pulumi.$stack.yaml)" >&2
fi
pulumi up --yes --stack "$stack"
echo
if [[ -n $seats ]]; then
  echo "Notebooks: $(pulumi stack output notebookUrl --stack "$stack")   (passwords: make password STACK=$stack SEAT=<seat>)"
else
  echo "Notebook: $(pulumi stack output notebookUrl --stack "$stack")   (password: make password STACK=$stack)"
fi
if proxied=$(pulumi stack output tensorboardProxyUrl --stack "$stack" 2>/dev/null) && [[ -n $proxied ]]; then
  echo "TensorBoard: $proxied   (behind the notebook's login)"
fi
