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

# What this script decides on, from the stack file as tfbox's model reads it (components/model/check.py): one
# Python start, no `pulumi` start, secrets as states only. Read on first use: `make password` needs none of it.
facts_read=false
read_facts() {
  $facts_read && return
  local facts
  facts=$(python -m components.model.check --stack "$stack" --shell) || exit 1
  # KEY=value lines, each value shell-quoted: seats, seats_without_password, password, password_salt,
  # tensorboard_proxy_in_file
  eval "$facts"
  facts_read=true
}

# TensorBoard behind the notebook's login is on for stacks made now (by whichever action: `make tls` often
# comes first); a stack that existed before keeps its notebook until its owner opts in (CHANGELOG), and a
# value already in the stack file is kept. The stack file itself is asked: Pulumi.yaml's default is false.
if $new_stack && read_facts && [[ $tensorboard_proxy_in_file == no ]]; then
  pulumi config set --plaintext tfbox:tensorboardProxy true --stack "$stack"
  echo "tfbox: TensorBoard is served behind the notebook's login at <notebook URL>/tensorboard/ (tfbox:tensorboardProxy)" >&2
fi
case $action in
  --password)
    if [[ -n $seat ]]; then
      pulumi config get --path "tfbox:passwords.$seat" --stack "$stack"
    elif ! pulumi config get tfbox:password --stack "$stack"; then
      read_facts
      names=${seats// /,}
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
read_facts
for s in $seats_without_password; do
  if [[ $stack != dev ]]; then
    echo "tfbox: seat $s of stack $stack has no password; run: pulumi config set --secret --path 'tfbox:passwords.$s' --stack $stack" >&2
    exit 1
  fi
  head -c 18 /dev/urandom | base64 | tr -d '/+=' | pulumi config set --secret --path "tfbox:passwords.$s" --stack "$stack"
  echo "tfbox: generated a password for seat $s; read it with: make password SEAT=$s" >&2
done
if [[ -z $seats && $password == missing ]]; then
  if [[ $stack != dev ]]; then
    echo "tfbox: stack $stack has no password; run: pulumi config set --secret tfbox:password --stack $stack" >&2
    exit 1
  fi
  # from stdin, so the password never shows in `ps`
  head -c 18 /dev/urandom | base64 | tr -d '/+=' | pulumi config set --secret tfbox:password --stack "$stack"
  echo "tfbox: generated a notebook password for the dev stack; read it with: make password" >&2
fi
if [[ $password_salt == missing ]]; then
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
