"""The Docker host a stack drives, read from the docker provider's config and handed to the model as a
neutral Target (components.model.target): the canonical host, its problems, the socket never to bind."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from components.docker.docker_host import LOCAL_DOCKER_HOST, docker_host_problems, normalise_docker_host
from components.docker.ssh import SSH_OPTS_FIX, ssh_opts_problems
from components.model.target import Target

DOCKER_TLS_KEYS = ("certPath", "certMaterial", "keyMaterial")  # docker: provider keys that make tcp:// use TLS
# the local socket and Docker Desktop's pipe are the same local daemon
_LOCAL = {LOCAL_DOCKER_HOST, normalise_docker_host("npipe:////./pipe/docker_engine")}


def docker_target(host: str | None = None, *, tls: bool = False, ssh_opts: object = None) -> Target:
    """`docker:host` (or DOCKER_HOST), whether client TLS material is set for it, and `docker:sshOpts`
    (never DOCKER_SSH_OPTS, the user's own: only safe options) as the model's Target."""
    text = host or LOCAL_DOCKER_HOST
    problems = [f"docker:host: {p}" for p in docker_host_problems(text, tls=tls)]
    problems += [f"docker:sshOpts: {p}. Fix: {SSH_OPTS_FIX}." for p in ssh_opts_problems(ssh_opts)]
    canonical = normalise_docker_host(text, tls=tls)
    sockets = (*((canonical[len("unix://"):],) if canonical.startswith("unix://") else ()), LOCAL_DOCKER_HOST[len("unix://"):])
    return Target(host=canonical, problems=tuple(problems), control_paths=sockets,
                  identity="local" if canonical in _LOCAL else canonical)


def stack_file_target(provider_config: Mapping[str, Any], *, ssh_opts: bool = True) -> Target:
    """A committed stack file's `docker:*` keys (components.model.stack_file.StackFile.provider_config) as a Target;
    `ssh_opts` False leaves `docker:sshOpts` unchecked (a sibling stack's options are its own business)."""
    host = provider_config.get("docker:host")
    tls = any(provider_config.get(f"docker:{k}") for k in DOCKER_TLS_KEYS)
    return docker_target(str(host) if host is not None else None, tls=tls, ssh_opts=provider_config.get("docker:sshOpts") if ssh_opts else None)


def ssh_opts_value(raw: str | None) -> object:
    """`docker:sshOpts` as the engine passes it (a list as JSON text); the text itself when it is not JSON."""
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw
