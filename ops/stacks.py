"""Which committed stacks are machines (previewed on PRs, drift-checked, in the fleet) and which are local.

A stack file says its kind with `tfbox:stackKind: machine|local` (default `machine`, so a forgotten
key means CI previews the stack and says loudly if it cannot, rather than silently skipping a machine).
A stack on a cluster (`tfbox:backend: kubernetes`) is a machine stack like any other: what it needs to be
reached is its kubeconfig (best a secret in its own config), not an SSH key or a Docker host.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.model.cluster import CLUSTER_BACKEND
from components.model.keys import KEYS_BY_NAME
from components.model.seats import raw_seats
from components.model.stack_file import read_stack_file

STACK_FILE = re.compile(r"^Pulumi\.(?P<stack>[^./][^/]*)\.yaml$")
DEFAULT_KIND = str(KEYS_BY_NAME["stackKind"].default)
DEFAULT_BACKEND = str(KEYS_BY_NAME["backend"].default)


@dataclass(frozen=True)
class StackInfo:
    """What the stack file says, without Pulumi: enough to pick machines and to explain a missing password."""

    name: str
    path: Path
    kind: str
    docker_host: str | None
    gpus: str
    password_set: bool
    backend: str = DEFAULT_BACKEND
    cluster: str | None = None  # a cluster stack's kubernetes:context, or how its kubeconfig is given

    @property
    def is_machine(self) -> bool:
        return self.kind != "local"

    @property
    def on_cluster(self) -> bool:
        return self.backend == CLUSTER_BACKEND

    @property
    def where(self) -> str:
        """What the fleet table shows as the host: the Docker host, or the cluster."""
        if self.on_cluster:
            return f"kubernetes ({self.cluster})" if self.cluster else "kubernetes (KUBECONFIG)"
        return self.docker_host or "(local default)"


def stack_of(path: str) -> str | None:
    """The stack a root-level `Pulumi.<stack>.yaml` path names, else None (`Pulumi.yaml` is shared code)."""
    match = STACK_FILE.match(path.strip().removeprefix("./"))
    return match.group("stack") if match else None


def read_stack(path: Path) -> StackInfo:
    sf = read_stack_file(path)
    kind = str(sf.raw.get("stackKind") or DEFAULT_KIND).strip()
    backend = str(sf.raw.get("backend") or DEFAULT_BACKEND).strip()
    cluster = _cluster(sf.provider_config) if backend == CLUSTER_BACKEND else None
    # a stack with seats has a password per seat (tfbox:passwords.<seat>), and GPUs per seat
    seats = [s for s in raw_seats(sf.raw.get("seats"))[0] if isinstance(s, dict)]
    if seats:
        names = [str(s.get("name") or "") for s in seats]
        gpus = " ".join(f"{s.get('name')}={s.get('gpus') if s.get('gpus') not in (None, '') else 'none'}" for s in seats)
        return StackInfo(name=sf.stack, path=path, kind=kind, docker_host=_host(sf.provider_config), gpus=gpus,
                         password_set=all(n in sf.seat_password_states for n in names), backend=backend,
                         cluster=cluster)
    return StackInfo(name=sf.stack, path=path, kind=kind, docker_host=_host(sf.provider_config),
                     gpus=str(sf.raw.get("gpus") or ""), password_set=sf.password_state != "missing", backend=backend,
                     cluster=cluster)


def all_stacks(root: Path) -> list[StackInfo]:
    """Every committed `Pulumi.<stack>.yaml` at the root, sorted by name."""
    return sorted((read_stack(p) for p in root.glob("Pulumi.*.yaml") if stack_of(p.name) is not None), key=lambda s: s.name)


def machine_stacks(root: Path) -> list[StackInfo]:
    """The stacks CI and the fleet command act on: every stack not marked `tfbox:stackKind: local`."""
    return [s for s in all_stacks(root) if s.is_machine]


def select(machines: list[StackInfo], wanted: list[str] | None) -> tuple[list[StackInfo], list[str]]:
    """The machines named in `wanted` (all when None/empty) and the names that are not machine stacks."""
    if not wanted:
        return machines, []
    by_name = {m.name: m for m in machines}
    unknown = [w for w in wanted if w not in by_name]
    return [by_name[w] for w in dict.fromkeys(wanted) if w in by_name], unknown


def affected(changed: Iterable[str], existing: Iterable[str]) -> list[str]:
    """The stacks to preview for `changed` paths, given the machine stacks that still exist.

    A change to one `Pulumi.<machine>.yaml` affects that stack only; any other path is shared code
    and affects every stack; a deleted stack file affects nothing (there is no stack left to preview).
    """
    existing_set = set(existing)
    chosen: set[str] = set()
    for raw in changed:
        path = raw.strip()
        if not path:
            continue
        stack = stack_of(path)
        if stack is None:
            return sorted(existing_set)
        chosen.add(stack)
    return sorted(chosen & existing_set)


def _host(provider_config: dict[str, Any]) -> str | None:
    """The stack file's `docker:host`, as written (None: the local default)."""
    given = provider_config.get("docker:host")
    return None if given is None else str(given)


def _cluster(provider_config: dict[str, Any]) -> str | None:
    """How a cluster stack names its cluster: the context, a kubeconfig path, or a secret kubeconfig (never its text)."""
    context = provider_config.get("kubernetes:context")
    if context and not isinstance(context, dict):
        return f"context {context}"
    kubeconfig = provider_config.get("kubernetes:kubeconfig")
    if isinstance(kubeconfig, dict) and "secure" in kubeconfig:
        return "kubeconfig in the stack's secrets"  # ops.access.SECRET_KUBECONFIG
    if isinstance(kubeconfig, str) and kubeconfig:
        return "kubeconfig in the stack file" if "\n" in kubeconfig or kubeconfig.lstrip().startswith("{") else kubeconfig
    return None
