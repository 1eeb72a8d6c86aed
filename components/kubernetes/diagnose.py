"""What `doctor` says about a stack's pods on a cluster: why one is not running, with the fix (issue 18).

A Pending pod explains itself only in its events and conditions; this reads them (the API's JSON, as
`kubectl get pods,events -o json` gives it) and names the cause a lab owner can act on: not enough
`nvidia.com/gpu` on matching nodes, an image that cannot be pulled, a claim that is not bound, a failed
gpu-check init container (tfbox:gpuCheck), a TensorBoard pod that cannot join its notebook's node (the logs
claim is ReadWriteOnce). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from components.kubernetes.gpu_check import failed_check
from components.model.labels import SEAT_LABEL


@dataclass(frozen=True)
class Finding:
    seat: str
    pod: str
    cause: str
    fix: str

    def __str__(self) -> str:
        return f"seat {self.seat} (pod {self.pod}): {self.cause}. Fix: {self.fix}"


def _events_for(pod: str, events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [e for e in events if (e.get("involvedObject") or {}).get("name") == pod]


def explain(pod: Mapping[str, Any], events: Iterable[Mapping[str, Any]]) -> Finding | None:
    """One pod's problem, or None when it runs and is ready."""
    meta, status = pod.get("metadata", {}), pod.get("status", {})
    name, seat = meta.get("name", ""), (meta.get("labels") or {}).get(SEAT_LABEL, "")
    texts = [str(c.get("message", "")) for c in status.get("conditions") or [] if c.get("status") == "False"]
    texts += [str(e.get("message", "")) for e in _events_for(name, events)]
    if (check := failed_check(pod)) is not None:
        return Finding(seat, name, *check)
    for c in status.get("containerStatuses") or []:
        waiting = (c.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName"):
            return Finding(seat, name, f"the image {c.get('image', '')} cannot be pulled ({waiting.get('reason')}: "
                                       f"{waiting.get('message', '').strip() or 'no message'})",
                           "check tfbox:image, that the nodes reach its registry, and an imagePullSecret for a private one")
        if waiting.get("reason") == "CrashLoopBackOff":
            return Finding(seat, name, f"container {c.get('name')} keeps exiting (CrashLoopBackOff)",
                           f"`kubectl logs -n {meta.get('namespace', '')} {name} -c {c.get('name')} --previous` says why")
    ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    if status.get("phase") == "Running":
        if ready and ready[0].get("status") != "True":
            return Finding(seat, name, "running but not ready (a readiness probe fails)",
                           f"`kubectl describe pod -n {meta.get('namespace', '')} {name}` shows which probe")
        return None  # scheduling events from before it was placed say nothing now
    joined = " ".join(texts)
    if "Multi-Attach error" in joined:  # a ReadWriteOnce claim held on another node (the kubelet's event, not the scheduler's)
        return Finding(seat, name, "its logs or notebooks claim is attached on another node (ReadWriteOnce: one node at a time)",
                       f"the seat's notebook and TensorBoard pods must share a node: `kubectl get pods -n {meta.get('namespace', '')} "
                       "-o wide` shows where each runs; delete the TensorBoard pod (its Deployment makes it again beside "
                       "the notebook)")
    if "didn't match pod affinity rules" in joined:
        return Finding(seat, name, "Pending: it must run on its notebook pod's node (the logs claim is ReadWriteOnce), "
                                   "and that pod is not placed, or its node cannot take this one",
                       "see the seat's notebook pod first; once it runs, this pod follows it (check that node's room and "
                       f"taints: `kubectl describe pod -n {meta.get('namespace', '')} {name}`)")
    if "Insufficient nvidia.com/gpu" in joined:
        return Finding(seat, name, "Pending: no matching node has the GPUs it asks for free (Insufficient nvidia.com/gpu)",
                       "free GPUs on the GPU nodes, ask for fewer, or check tfbox:gpuNodeSelector / tfbox:gpuTolerations; "
                       "`make doctor` lists nodes that lost GPUs")
    if "unbound" in joined and "PersistentVolumeClaim" in joined:
        return Finding(seat, name, "Pending: its notebooks or logs claim is not bound to a volume",
                       "set tfbox:storageClass to a class the cluster has (`kubectl get storageclass`), or give it a default one")
    if "didn't match Pod's node affinity/selector" in joined or "node(s) had untolerated taint" in joined:
        return Finding(seat, name, "Pending: no node matches its node selector and tolerations",
                       "check tfbox:gpuNodeSelector, tfbox:gpuTolerations and a seat's shareGpus (time-sliced nodes only) against "
                       "`kubectl get nodes --show-labels`")
    if status.get("phase") == "Pending":
        return Finding(seat, name, "Pending" + (f": {texts[-1]}" if texts else ""),
                       f"`kubectl describe pod -n {meta.get('namespace', '')} {name}` shows the scheduler's events")
    return None


def findings(pods: Iterable[Mapping[str, Any]], events: Iterable[Mapping[str, Any]]) -> list[Finding]:
    listed = list(events)
    return [f for f in (explain(p, listed) for p in pods) if f is not None]
