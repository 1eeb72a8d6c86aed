#!/usr/bin/env bash
# `make tls STACK=<stack>`: a self-signed certificate for the stack's notebook, made once and kept in
# the stack config: tfbox:tlsCert (public, in Pulumi.<stack>.yaml) and tfbox:tlsKey (a secret).
# Its names come from docker:host and tfbox:notebookBind. Never replaces an existing key (users pin
# the fingerprint); to renew, `pulumi config rm tfbox:tlsKey` and `tfbox:tlsCert` first.
#
#   scripts/tls.sh STACK      (called by scripts/up.sh --tls and scripts/new-machine.sh)
#
# Expects the pulumi CLI on PATH with its backend and passphrase set up, and PYTHON (default: python3).
set -euo pipefail
stack=${1:?usage: scripts/tls.sh STACK}
python=${PYTHON:-python3}
repo=$(cd "$(dirname "$0")/.." && pwd)
# no cd: pulumi finds the project (and writes Pulumi.<stack>.yaml) in the caller's directory

if [[ -n $(pulumi config get tfbox:tlsKey --stack "$stack" 2>/dev/null) ]]; then
  echo "tls: stack $stack already has tfbox:tlsKey; kept (to renew: pulumi config rm tfbox:tlsKey --stack $stack &&" \
       "pulumi config rm tfbox:tlsCert --stack $stack, then run this again; pinned fingerprints change)" >&2
  exit 0
fi
docker_host=$(pulumi config get docker:host --stack "$stack" 2>/dev/null || true)
bind=$(pulumi config get tfbox:notebookBind --stack "$stack" 2>/dev/null || true)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" "$python" -m components.tls selfsigned --docker-host "${docker_host:-unix:///var/run/docker.sock}" \
  --bind "${bind:-127.0.0.1}" --cert "$dir/cert.pem" --key "$dir/key.pem" | sed 's/^/tls: /'
# from stdin: the key never shows in `ps`; the certificate is public
pulumi config set --plaintext tfbox:tlsCert --stack "$stack" <"$dir/cert.pem"
pulumi config set --secret tfbox:tlsKey --stack "$stack" <"$dir/key.pem"
echo "tls: stack $stack serves HTTPS with it from the next up; pin the fingerprint: pulumi stack output notebookCertSha256 --stack $stack"
