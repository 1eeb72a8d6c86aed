"""Can the cluster place every seat's GPU ask? Read before anything is created (issue 18).

A pod that asks more `nvidia.com/gpu` than any matching node has free stays Pending with
"Insufficient nvidia.com/gpu", and `pulumi up` waits on it until it times out. The preflight reads
the nodes' allocatable GPUs and what the pods already placed there request, and refuses such an ask
at preview with the numbers ("seat ana asks 4 GPUs; nodes matching gpu=h100 have 2 free").

Pure functions over the API's JSON (`kubectl get nodes,pods -o json`), so the tests give them lists.
A seat's pod lands on one node: asks are placed first-fit, largest first, as a scheduler would at best.
A seat that sets shareGpus goes to time-sliced nodes only (objects.gpu_node_selector), so its ask counts only
their GPUs (the device plugin advertises each time-sliced GPU as several), and without such a node it is
refused naming the key rather than left Pending. A GPU seat that does not share keeps off those nodes
(objects.exclusive_gpu_affinity): its ask counts only nodes whose GPUs are not shared.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from components.kubernetes.objects import GPU_RESOURCE, SHARED_STRATEGIES, SHARING_LABEL, TIME_SLICING, gpu_node_selector
from components.model.plan import LabPlan

# a pod no longer holds its GPUs once it ended
DONE_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True)
class Node:
    name: str
    labels: Mapping[str, str]
    capacity: int  # nvidia.com/gpu the device plugin found
    allocatable: int  # what it offers now; less than capacity when a GPU was lost
    taints: tuple[Mapping[str, str], ...] = ()
    schedulable: bool = True


@dataclass(frozen=True)
class Ask:
    seat: str
    gpus: int
    node_selector: Mapping[str, str]
    tolerations: tuple[Mapping[str, str], ...] = ()
    key: str = "tfbox:gpus"  # the config key the ask comes from, for the message
    share_key: str = ""  # the seat's shareGpus key when it shares: its node_selector then names time-sliced nodes
    exclusive: bool = False  # GPUs of its own: not on a node whose GPUs are shared (time-slicing, MPS)


def _gpus(resources: Mapping[str, Any] | None) -> int:
    try:
        return int(str((resources or {}).get(GPU_RESOURCE, 0)))
    except ValueError:
        return 0


def nodes_from_api(items: Iterable[Mapping[str, Any]]) -> list[Node]:
    out = []
    for item in items:
        meta, status, spec = item.get("metadata", {}), item.get("status", {}), item.get("spec", {})
        out.append(Node(
            name=meta.get("name", ""), labels=dict(meta.get("labels") or {}),
            capacity=_gpus(status.get("capacity")), allocatable=_gpus(status.get("allocatable")),
            taints=tuple(dict(t) for t in spec.get("taints") or ()), schedulable=not spec.get("unschedulable", False),
        ))
    return out


def used_from_api(pods: Iterable[Mapping[str, Any]], exclude: Mapping[str, str] | None = None) -> dict[str, int]:
    """GPUs requested by the pods placed on each node, leaving out pods whose labels include `exclude`
    (this stack's own pods, which a change replaces)."""
    used: dict[str, int] = {}
    for pod in pods:
        node = pod.get("spec", {}).get("nodeName")
        if not node or pod.get("status", {}).get("phase") in DONE_PHASES:
            continue
        pod_labels = pod.get("metadata", {}).get("labels") or {}
        if exclude and all(pod_labels.get(k) == v for k, v in exclude.items()):
            continue
        for c in pod.get("spec", {}).get("containers", []):
            resources = c.get("resources", {})
            used[node] = used.get(node, 0) + max(_gpus(resources.get("limits")), _gpus(resources.get("requests")))
    return used


def _tolerated(taint: Mapping[str, str], tolerations: Sequence[Mapping[str, str]]) -> bool:
    if taint.get("effect") not in ("NoSchedule", "NoExecute"):
        return True
    for t in tolerations:
        if t.get("key") not in (None, "", taint.get("key")) or (t.get("effect") and t.get("effect") != taint.get("effect")):
            continue
        if t.get("operator") == "Exists" or t.get("value", "") == taint.get("value", ""):
            return True
    return False


def shares_gpus(node: Node) -> bool:
    return node.labels.get(SHARING_LABEL) in SHARED_STRATEGIES


def matches(node: Node, ask: Ask) -> bool:
    return (node.schedulable and all(node.labels.get(k) == v for k, v in ask.node_selector.items())
            and not (ask.exclusive and shares_gpus(node))
            and all(_tolerated(t, ask.tolerations) for t in node.taints))


def exclusive_problem(ask: Ask, nodes: Sequence[Node]) -> str | None:
    """Why a seat of its own GPUs has no node: nodes match it but share their GPUs (None when that is not why)."""
    if not ask.exclusive or not any(matches(n, replace(ask, exclusive=False)) for n in nodes):
        return None
    where = describe_selector(ask.node_selector).replace("nodes", "node", 1)
    share = ask.key.rsplit(".", 1)[0] + ".shareGpus" if ask.key.startswith("tfbox:seats[") else "a seat's shareGpus"
    return (f"{ask.key}: seat {ask.seat} asks GPUs of its own, but every {where} shares its "
            f"GPUs ({SHARING_LABEL}: time-slicing or mps), where other pods would use the same GPUs. Fix: set {share}: "
            f"true if sharing is fine, or add GPU nodes without sharing (or change tfbox:gpuNodeSelector).")


def describe_selector(selector: Mapping[str, str]) -> str:
    return "nodes matching " + ",".join(f"{k}={v}" for k, v in sorted(selector.items())) if selector else "nodes"


def sharing_problem(ask: Ask, nodes: Sequence[Node]) -> str | None:
    """Why a sharing seat has no node: nodes match it but for the time-slicing label (None when that is not why)."""
    base = {k: v for k, v in ask.node_selector.items() if k != SHARING_LABEL}
    if not ask.share_key or not any(matches(n, replace(ask, node_selector=base)) for n in nodes):
        return None
    where = "node matching " + ",".join(f"{k}={v}" for k, v in sorted(base.items())) if base else "node"
    return (f"{ask.share_key}: seat {ask.seat} sets shareGpus, but no {where} advertises GPU time-slicing (label "
            f"{SHARING_LABEL}={TIME_SLICING}, set by the NVIDIA device plugin's time-slicing config). Fix: remove "
            f"{ask.share_key}, or configure time-slicing on those nodes.")


def schedule_problems(asks: Sequence[Ask], nodes: Sequence[Node], used: Mapping[str, int]) -> list[str]:
    """Every seat whose GPUs no matching node can hold, with what those nodes have free; [] when all fit."""
    free = {n.name: max(n.allocatable - used.get(n.name, 0), 0) for n in nodes}
    problems: list[str] = []
    for ask in sorted((a for a in asks if a.gpus), key=lambda a: (-a.gpus, a.seat)):
        candidates = [n for n in nodes if matches(n, ask)]
        fits = [n for n in candidates if free[n.name] >= ask.gpus]
        if fits:
            best = min(fits, key=lambda n: (free[n.name], n.name))  # the tightest fit leaves big nodes for big asks
            free[best.name] -= ask.gpus
            continue
        where = describe_selector(ask.node_selector)
        asks_text = f"{ask.key}: seat {ask.seat} asks {ask.gpus} GPU{'s' if ask.gpus > 1 else ''}"
        fix = "Fix: ask for fewer, free GPUs on those nodes, or change tfbox:gpuNodeSelector / tfbox:gpuTolerations."
        if not candidates and (why := sharing_problem(ask, nodes) or exclusive_problem(ask, nodes)) is not None:
            problems.append(why)
            continue
        if not candidates:
            problems.append(f"{asks_text}; no schedulable node matches ({where}, taints and tolerations included). {fix}")
            continue
        most = max(free[n.name] for n in candidates)
        total = sum(free[n.name] for n in candidates)
        have = f"{where} have {total} free" + ("" if total == most else f", at most {most} on one node (a pod runs on one node)")
        problems.append(f"{asks_text}; {have}. {fix}")
    return problems


def lost_gpus(nodes: Sequence[Node]) -> list[str]:
    """Nodes offering fewer GPUs than they have: the device plugin marked some unhealthy (a lost GPU, an XID error)."""
    return [f"node {n.name}: {n.allocatable} of {n.capacity} GPUs allocatable ({n.capacity - n.allocatable} lost or unhealthy)"
            for n in nodes if n.allocatable < n.capacity]


def gpu_ledger(plan: LabPlan) -> dict[str, dict[str, object]]:
    """The `gpuLedger` output of a kubernetes stack with seats: seat -> how many GPUs it asks, of which resource, on
    which nodes. Which devices is the scheduler's and the device plugin's choice, made when the pod is placed
    (`make status` shows the node), so the ledger is by seat where a Docker stack's is by GPU index."""
    c = plan.cluster
    selector = c.gpu_node_selector if c is not None else ()
    return {s.name: {"gpus": s.notebook.gpus.count, "resource": GPU_RESOURCE,
                     "nodeSelector": dict(gpu_node_selector(selector, s.share_gpus))}
            for s in plan.seats if s.notebook.gpus.kind == "count" and s.notebook.gpus.count}
