"""A kubernetes stack (`tfbox:backend: kubernetes`) as `make doctor` and `make status` reach it (issue 18).

The cluster is the one the stack's provider uses: the stack file's `kubernetes:kubeconfig` (a path, or the
file's content) and `kubernetes:context`, else KUBECONFIG and the current context, read through
KubernetesBackend.read_labs (kubectl, as the preflight runs it). What the lab should have there (namespace,
seats, pod and claim names, GPU asks) is the stack's plan, made from the file as `up` makes it; what is
there and what is wrong is components.kubernetes.health's reading.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.kubernetes.health import ClusterRead, Problem, SeatExpect, SeatState, expects_of, stack_problems
from components.model.cluster import CLUSTER_BACKEND
from components.model.labels import ROLE_LABEL, SEAT_LABEL, STACK_LABEL
from components.model.stack_file import StackFile, read_stack_file


def backend_of(sf: StackFile, defaults: Mapping[str, Any]) -> str:
    """The stack's `tfbox:backend`: its file's, else the project's default, else docker."""
    return str(sf.raw.get("backend") or defaults.get("backend") or "docker")


def is_cluster(sf: StackFile, defaults: Mapping[str, Any]) -> bool:
    return backend_of(sf, defaults) == CLUSTER_BACKEND


@dataclass(frozen=True)
class ClusterStack:
    """What doctor and status need to read one kubernetes stack."""

    name: str
    where: str  # the cluster and namespace, in words: never the kubeconfig's content
    namespace: str
    expects: tuple[SeatExpect, ...]  # () when the stack file has problems: the seats are then read from the cluster
    provider_config: Mapping[str, Any] = field(default_factory=dict)
    problem: str = ""  # why the cluster is not read at all


def describe_cluster(provider_config: Mapping[str, Any]) -> str:
    """Which cluster, in words a log may hold: a context, a kubeconfig path, or a digest of an inline kubeconfig."""
    given = provider_config.get("kubernetes:kubeconfig")
    context = provider_config.get("kubernetes:context")
    if isinstance(given, str) and given:
        kubeconfig = (given if "\n" not in given and not given.lstrip().startswith("{")
                      else f"an inline kubeconfig ({hashlib.sha256(given.encode()).hexdigest()[:12]})")
    else:
        kubeconfig = os.environ.get("KUBECONFIG") or "~/.kube/config"
    return f"{kubeconfig}" + (f", context {context}" if context else "")


def cluster_stack(root: Path, stack: str) -> ClusterStack:
    """The stack's namespace and seats from its plan; when the file has problems (the lab may predate them, and
    the preview names them), the namespace as the file says it and the seats as the cluster has them."""
    from components.config import check_stack_file
    from components.model.check import project_of
    from components.model.errors import ConfigError
    from components.model.plan import make_plan

    path = root / f"Pulumi.{stack}.yaml"
    sf = read_stack_file(path)
    project, defaults = project_of(root)
    where = describe_cluster(sf.provider_config)
    problem = ""
    if isinstance(sf.provider_config.get("kubernetes:kubeconfig"), dict) and not os.environ.get("KUBECONFIG"):
        problem = (f"kubernetes:kubeconfig is a secret in {path.name}, which is not decrypted here. Fix: run with "
                   "KUBECONFIG=<a kubeconfig file for the same cluster> (and kubernetes:context as the stack has it)")
    try:
        cfg = check_stack_file(path, project, defaults, siblings=False)
    except ConfigError:
        raw = {**defaults, **sf.raw}
        namespace = str(raw.get("namespace") or f"tfbox-{stack.lower()}")
        return ClusterStack(stack, f"{where}, namespace {namespace}", namespace, (), sf.provider_config, problem)
    namespace, expects = expects_of(make_plan(cfg))
    return ClusterStack(stack, f"{where}, namespace {namespace}", namespace, tuple(expects), sf.provider_config, problem)


def expects_from_cluster(stack: str, read: ClusterRead) -> list[SeatExpect]:
    """The seats as the cluster has them (the stack's StatefulSets, and TensorBoard's Deployments by the seat's label),
    when the stack file cannot be planned."""
    boards = {((d.get("metadata") or {}).get("labels") or {}).get(SEAT_LABEL, "default"): str((d.get("metadata") or {}).get("name", ""))
              for d in read.deployments
              if ((d.get("metadata") or {}).get("labels") or {}).get(STACK_LABEL) == stack
              and ((d.get("metadata") or {}).get("labels") or {}).get(ROLE_LABEL) == "tensorboard"}
    out = []
    for sts in read.statefulsets:
        meta = sts.get("metadata") or {}
        labels = meta.get("labels") or {}
        if labels.get(STACK_LABEL) != stack:
            continue
        spec = ((sts.get("spec") or {}).get("template") or {}).get("spec") or {}
        gpus = sum(int(str(((c.get("resources") or {}).get("limits") or {}).get("nvidia.com/gpu", 0)) or 0)
                   for c in spec.get("containers") or [])
        seat = labels.get(SEAT_LABEL, "default")
        out.append(SeatExpect(seat=stack if seat == "default" else seat, statefulset=str(meta.get("name", "")), gpus=gpus,
                              node_selector=dict(spec.get("nodeSelector") or {}),
                              tolerations=tuple(spec.get("tolerations") or ()), tensorboard=boards.get(seat, "")))
    return out


def read(cs: ClusterStack) -> tuple[list[SeatState], list[Problem], str]:
    """Every seat's state and the problems beyond one pod, or why the cluster could not be read."""
    from components.kubernetes.backend import KubernetesBackend

    if cs.problem:
        return [], [], cs.problem
    items, error = KubernetesBackend(cs.provider_config).read_labs(cs.namespace, [])
    if error:
        return [], [], (f"could not read the cluster ({cs.where}): {error}. Fix: make kubectl reach it with the stack's "
                        "kubernetes:kubeconfig / kubernetes:context (else KUBECONFIG)")
    got = ClusterRead.of(items, cs.namespace)
    expects = list(cs.expects) or expects_from_cluster(cs.name, got)
    states, problems = stack_problems(expects, got, cs.namespace)
    return states, problems, ""
