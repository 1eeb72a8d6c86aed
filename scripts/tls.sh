#!/usr/bin/env bash
# `make tls STACK=<stack>`: a self-signed certificate for the stack's notebook, made once and kept in
# the stack config: tfbox:tlsCert (public, in Pulumi.<stack>.yaml) and tfbox:tlsKey (a secret).
# A stack with tfbox:seats gets one pair per seat instead, tfbox:tlsCerts.<seat> and the secret
# tfbox:tlsKeys.<seat> (a shared key would let one seat impersonate another); seats that already
# have one keep it. Names come from docker:host and tfbox:notebookBind (the seat's, on a seats
# stack), and a cluster stack's Ingress host (tfbox:ingressHost: docs/kubernetes.md). Never replaces
# an existing key (users pin the fingerprint); to renew, `pulumi config rm` the key and certificate
# first (`--path 'tfbox:tlsKeys.<seat>'` and `'tfbox:tlsCerts.<seat>'` for a seat).
#
#   scripts/tls.sh STACK      (called by scripts/up.sh --tls and scripts/new-machine.sh)
#
# Expects the pulumi CLI on PATH with its backend and passphrase set up, and PYTHON (default: python3).
set -euo pipefail
stack=${1:?usage: scripts/tls.sh STACK}
python=${PYTHON:-python3}
repo=$(cd "$(dirname "$0")/.." && pwd)
# no cd: pulumi finds the project (and writes Pulumi.<stack>.yaml) in the caller's directory

tls_py() { PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" "$python" -m components.tls "$@"; }
docker_host=$(pulumi config get docker:host --stack "$stack" 2>/dev/null || true)
bind=$(pulumi config get tfbox:notebookBind --stack "$stack" 2>/dev/null || true)
# a cluster stack's Ingress host (tfbox:ingressHost; a seat's is <seat>.<it> or its own ingressHost): certified too
ingress=$(pulumi config get tfbox:ingressHost --stack "$stack" 2>/dev/null || true)
# `name bind host` per seat (host `-` without an Ingress); none without seats (the engine's default for tfbox:seats is `[]`)
seats=$(pulumi config get tfbox:seats --stack "$stack" 2>/dev/null |
  tls_py seats --bind "${bind:-127.0.0.1}" --ingress-host "$ingress" || true)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

if [[ -n $seats ]]; then
  made=0
  while read -r seat seat_bind seat_host; do
    if [[ -n $(pulumi config get --path "tfbox:tlsKeys.$seat" --stack "$stack" 2>/dev/null </dev/null) ]]; then
      echo "tls: seat $seat already has tfbox:tlsKeys.$seat; kept" >&2
      continue
    fi
    rm -f "$dir/cert.pem" "$dir/key.pem"
    tls_py selfsigned --docker-host "${docker_host:-unix:///var/run/docker.sock}" --bind "$seat_bind" --name "$seat_host" \
      --cert "$dir/cert.pem" --key "$dir/key.pem" </dev/null | sed "s/^/tls: seat $seat: /"
    # from stdin: the key never shows in `ps`; the certificate is public
    pulumi config set --plaintext --path "tfbox:tlsCerts.$seat" --stack "$stack" <"$dir/cert.pem"
    pulumi config set --secret --path "tfbox:tlsKeys.$seat" --stack "$stack" <"$dir/key.pem"
    made=$((made + 1))
  done <<<"$seats"
  if [[ -n $(pulumi config get tfbox:tlsKey --stack "$stack" 2>/dev/null) ]]; then
    echo "tls: the seats no longer use the stack's shared tfbox:tlsKey: pulumi config rm tfbox:tlsKey --stack $stack &&" \
         "pulumi config rm tfbox:tlsCert --stack $stack" >&2
  fi
  echo "tls: $made seat(s) got a certificate of their own; each seat serves HTTPS with it from the next up (its notebook is" \
       "replaced); pin each seat's fingerprint: pulumi stack output seats --stack $stack (seats.<seat>.notebookCertSha256)"
  exit 0
fi

if [[ -n $(pulumi config get tfbox:tlsKey --stack "$stack" 2>/dev/null) ]]; then
  echo "tls: stack $stack already has tfbox:tlsKey; kept (to renew: pulumi config rm tfbox:tlsKey --stack $stack &&" \
       "pulumi config rm tfbox:tlsCert --stack $stack, then run this again; pinned fingerprints change)" >&2
  exit 0
fi
tls_py selfsigned --docker-host "${docker_host:-unix:///var/run/docker.sock}" --name "${ingress:--}" \
  --bind "${bind:-127.0.0.1}" --cert "$dir/cert.pem" --key "$dir/key.pem" | sed 's/^/tls: /'
# from stdin: the key never shows in `ps`; the certificate is public
pulumi config set --plaintext tfbox:tlsCert --stack "$stack" <"$dir/cert.pem"
pulumi config set --secret tfbox:tlsKey --stack "$stack" <"$dir/key.pem"
echo "tls: stack $stack serves HTTPS with it from the next up; pin the fingerprint: pulumi stack output notebookCertSha256 --stack $stack"
