#!/usr/bin/env bash
# `make machine NAME=<machine> HOST=ssh://user@host`: add a machine as a stack.
#
#   scripts/new-machine.sh NAME HOST
#
# 1. writes Pulumi.NAME.yaml from templates/Pulumi.machine.yaml (GPU defaults, notebook on
#    0.0.0.0 behind the password and HTTPS, TensorBoard on loopback, a new random password salt),
#    picking host ports no other stack on the same Docker host uses (python -m ops.new_machine,
#    which asks tfbox's model about the other stacks); never overwrites a file;
# 2. if a pulumi CLI is at hand, creates the stack (`pulumi stack init NAME`) in the backend,
#    sets tfbox:password as a secret: from $TFBOX_PASSWORD (12+ characters), else asked without
#    echo, else generated; and makes the self-signed certificate (scripts/tls.sh, `make tls`);
# 3. validates the file with `python -m components.config --stack-file Pulumi.NAME.yaml`.
#
# Environment: PULUMI_BACKEND_URL and PULUMI_CONFIG_PASSPHRASE(_FILE) as for scripts/up.sh (default:
# the project's .state/ and its generated passphrase); TFBOX_PASSWORD; TFBOX_NO_PULUMI=1 to only
# write the file; TFBOX_ROOT (where the template is read and the stack file written, default the
# repository; the tests point it at a temporary copy); PYTHON (the interpreter for the validator).
set -euo pipefail

# Read the password once and drop it from the environment, so no child (pulumi, python) inherits it.
password=${TFBOX_PASSWORD:-}
unset TFBOX_PASSWORD

repo=$(cd "$(dirname "$0")/.." && pwd)
root=${TFBOX_ROOT:-$repo}
name=${1:-}
host=${2:-}

die() { echo "new-machine: $1" >&2; exit "${2:-1}"; }
usage() { die "usage: make machine NAME=<machine> HOST=ssh://user@host   ($1)" 2; }

[[ -n $name ]] || usage "NAME is missing"
[[ -n $host ]] || usage "HOST is missing"
# The name becomes the stack, the file name and the container/volume name prefix.
[[ $name =~ ^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$ ]] ||
  usage "NAME '$name' must be lowercase letters, digits and inner dashes, at most 40 characters"
# No quotes, spaces or YAML metacharacters: the host is written into YAML as is.
[[ $host =~ ^(ssh|tcp|unix)://[A-Za-z0-9._~@:/%+-]+$ ]] ||
  usage "HOST '$host' must look like ssh://user@host, tcp://host:2376 or unix:///var/run/docker.sock"

template=$root/templates/Pulumi.machine.yaml
out=$root/Pulumi.$name.yaml
[[ -f $template ]] || die "no template at $template"
[[ ! -e $out ]] || die "$out already exists; refusing to overwrite it (edit it, or pick another NAME)"

python=${PYTHON:-}
if [[ -z $python ]]; then
  if [[ -x $repo/.venv/bin/python ]]; then python=$repo/.venv/bin/python; else python=python3; fi
fi

# The file, from Python (ops/new_machine.py): host ports no other stack on this Docker host publishes (as
# tfbox's model reads those stacks), a new random salt, the template's comments kept; never over a file.
PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" "$python" -m ops.new_machine --root "$root" "$name" "$host" || exit 1

# --- the stack and its password, when a pulumi CLI is available -----------------------------
have_pulumi=""
if [[ -z ${TFBOX_NO_PULUMI:-} ]]; then
  if command -v pulumi >/dev/null 2>&1; then
    have_pulumi=1
  elif [[ -x $repo/toolchain/ensure.sh ]] && bindir=$("$repo/toolchain/ensure.sh" | tail -n 1) && [[ -x $bindir/pulumi ]]; then
    export PATH="$bindir:$PATH"
    "$repo/toolchain/register-provider.sh" "$bindir" && export PULUMI_IGNORE_AMBIENT_PLUGINS=1
    have_pulumi=1
  fi
fi

if [[ -n $have_pulumi ]]; then
  cd "$root"
  export PULUMI_SKIP_UPDATE_CHECK=1 PULUMI_DIY_BACKEND_NO_LEGACY_WARNING=1
  [[ -d .venv ]] && export PATH="$PWD/.venv/bin:$PATH"
  export PULUMI_BACKEND_URL=${PULUMI_BACKEND_URL:-file://$PWD/.state}
  # shellcheck source=scripts/passphrase.sh
  source "$repo/scripts/passphrase.sh"
  tfbox_passphrase "$PWD" new-machine || exit 1
  if ! pulumi whoami >/dev/null 2>&1; then
    have_pulumi=""
    echo "new-machine: the pulumi CLI cannot reach the backend ${PULUMI_BACKEND_URL}; not creating the stack" >&2
  elif pulumi stack select "$name" >/dev/null 2>&1; then
    echo "new-machine: stack $name already exists in ${PULUMI_BACKEND_URL}; using it"
  else
    pulumi stack init "$name" --secrets-provider "${TFBOX_SECRETS_PROVIDER:-passphrase}" >/dev/null
    echo "new-machine: created stack $name in ${PULUMI_BACKEND_URL}"
  fi
fi

if [[ -n $have_pulumi ]]; then
  if [[ -z $password && -t 0 ]]; then
    read -r -s -p "Notebook password for $name (empty: generate one): " password
    echo
  fi
  generated=""
  if [[ -n $password && ${#password} -lt 12 ]]; then
    unset password
    die "the notebook password must have at least 12 characters (leave it empty to generate one)"
  fi
  if [[ -z $password ]]; then
    password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    generated=1
  fi
  # from stdin, so the password never shows in `ps`
  printf '%s' "$password" | pulumi config set --secret tfbox:password --stack "$name"
  unset password
  if [[ -n $generated ]]; then
    echo "new-machine: generated the notebook password; read it with: pulumi config get tfbox:password --stack $name"
  else
    echo "new-machine: set the notebook password as a secret"
  fi
  # HTTPS before LAN: a self-signed certificate kept in the stack config (key as a secret)
  PYTHON=$python "$repo/scripts/tls.sh" "$name"
else
  echo "new-machine: no pulumi CLI and backend here (or TFBOX_NO_PULUMI); finish on a machine that has them:"
  echo "    pulumi stack init $name && pulumi config set --secret tfbox:password --stack $name && make tls STACK=$name"
fi

# --- validate -------------------------------------------------------------------------------
cd "$repo"
"$python" -m components.config --stack-file "$out"
echo "new-machine: next: review and commit Pulumi.$name.yaml, add a GitHub environment '$name' (docs/team-workflow.md),"
echo "             then preview it: make preview STACK=$name"
