"""The backends a stack can be deployed with, by name: the one place that picks one.

`tfbox:backend` names one: `docker` (components.docker, the default) or `kubernetes` (components.kubernetes,
a preview). The model and the program's top level ask here, so neither names a backend. Imports are lazy: reading a stack file's
target needs no Pulumi SDK.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from components.model.backend import Backend
    from components.model.target import Target

DEFAULT = "docker"
NAMES = ("docker", "kubernetes")


def stack_file_target(provider_config: Mapping[str, Any], *, ssh_opts: bool = True) -> Target:
    """A committed stack file's target, as its backend reads the file's provider keys."""
    from components.docker.target import stack_file_target as read

    return read(provider_config, ssh_opts=ssh_opts)


def backend(name: str = DEFAULT) -> Backend:
    """The backend that deploys a stack, inside the Pulumi program (it reads its own provider config)."""
    if name == "kubernetes":
        from components.kubernetes.backend import KubernetesBackend

        return KubernetesBackend()
    if name != DEFAULT:
        raise ValueError(f"unknown backend {name!r}")
    from components.docker.backend import DockerBackend

    return DockerBackend()
