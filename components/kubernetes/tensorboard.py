"""A seat's TensorBoard on a cluster, in a pod of its own (sidecar mode): manifests as plain dicts (issue 18).

TensorBoard used to be a second container of the notebook's pod, and a pod's containers cannot change in
place: turning it off or on replaced the notebook's pod and killed its kernels. Now it is a one-replica
Deployment (strategy Recreate) with a headless Service and a NetworkPolicy of its own, so a TensorBoard-only
change creates or deletes these and nothing of the notebook's; on Docker only its container is replaced.

The logs claim is ReadWriteOnce: the TensorBoard pod mounts it read-only and must run on the notebook's node
(a required pod affinity, `kubernetes.io/hostname`); the notebook pod prefers the node of its TensorBoard pod,
so a replaced notebook pod comes back where the claim is attached. The trade-off: a TensorBoard pod waits
Pending until its notebook's pod is placed, and a notebook pod that cannot return to that node (the node is
full or gone) may land elsewhere, where the claim cannot attach while TensorBoard holds it (delete the
TensorBoard pod; its Deployment makes it again beside the notebook).

The notebook's `/tensorboard/` proxy reaches it by the Service's name, `http://<svc>.<namespace>.svc:6006`:
the pod's DNS search path completes it (no `cluster.local` assumed). Pure functions, read as data by the tests.
"""

from __future__ import annotations

from collections.abc import Sequence

from components.kubernetes.objects import (
    NOBODY,
    NOTEBOOK,
    TENSORBOARD,
    SeatPod,
    hostname_affinity,
    labels,
    object_meta,
    other_stacks,
    readiness_probe,
    selector,
)
from components.model import commands
from components.model.hardening import TENSORBOARD_TMPFS


def proxy_target(service: str, namespace: str) -> str:
    """The notebook's `/tensorboard/` upstream: the TensorBoard Service's DNS name, the same text whether or
    not TensorBoard runs now, so a TensorBoard change never changes the notebook's files (and pod)."""
    return commands.tensorboard_proxy_target(f"{service}.{namespace}.svc")


def tensorboard_container(pod: SeatPod) -> dict[str, object]:
    """Unprivileged, read-only root, every capability dropped, the logs read-only: it serves files and has no login."""
    tmp = TENSORBOARD_TMPFS[0][0]
    return {
        "name": TENSORBOARD,
        "image": pod.image,
        "command": commands.tensorboard_command(pod.logs_dir),
        "ports": [{"name": "tensorboard", "containerPort": commands.TENSORBOARD_PORT}],
        "securityContext": {"runAsUser": NOBODY, "runAsGroup": NOBODY, "runAsNonRoot": True,
                            "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
        "readinessProbe": readiness_probe("/data/logdir", commands.TENSORBOARD_PORT),
        "volumeMounts": [{"name": "logs", "mountPath": pod.logs_dir, "readOnly": True},
                         {"name": "tensorboard-tmp", "mountPath": tmp}],
    }


def make_tensorboard_pod_spec(pod: SeatPod) -> dict[str, object]:
    """On the notebook pod's node (required: the logs claim is ReadWriteOnce); no GPU asked, but the GPU nodes'
    taints tolerated, since that node is a GPU node for a GPU seat."""
    spec: dict[str, object] = {
        "containers": [tensorboard_container(pod)],
        "volumes": [
            {"name": "logs", "persistentVolumeClaim": {"claimName": pod.logs_claim, "readOnly": True}},
            {"name": "tensorboard-tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        ],
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            hostname_affinity(selector(pod.project, pod.stack, pod.seat, NOTEBOOK))]}},
    }
    if pod.tolerations:
        spec["tolerations"] = [dict(t) for t in pod.tolerations]
    return spec


def make_tensorboard_deployment(name: str, pod: SeatPod) -> dict[str, object]:
    """One replica, Recreate: the old pod lets go of the logs claim before the new one mounts it."""
    pod_labels = labels(pod.project, pod.stack, pod.seat, TENSORBOARD)
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": object_meta(name, pod.namespace, pod_labels),
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector(pod.project, pod.stack, pod.seat, TENSORBOARD)},
            "template": {"metadata": {"labels": pod_labels}, "spec": make_tensorboard_pod_spec(pod)},
        },
    }


def make_tensorboard_service(name: str, pod: SeatPod) -> dict[str, object]:
    """Headless (`clusterIP: None`): its DNS name answers with the TensorBoard pod's address, so the notebook's
    proxy reaches it pod to pod without a kube-proxy; in the cluster only, never a NodePort (no login)."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": object_meta(name, pod.namespace, labels(pod.project, pod.stack, pod.seat, TENSORBOARD)),
            "spec": {"type": "ClusterIP", "clusterIP": "None", "selector": selector(pod.project, pod.stack, pod.seat, TENSORBOARD),
                     "ports": [{"name": "tensorboard", "port": commands.TENSORBOARD_PORT,
                                "targetPort": commands.TENSORBOARD_PORT}]}}


def make_tensorboard_network_policy(name: str, pod: SeatPod, tensorboard_open: bool = False,
                                    external_cidrs: Sequence[str] = ()) -> dict[str, object]:
    """TensorBoard's port (no login) from the seat's own notebook pod only (its `/tensorboard/` proxy); with
    `tensorboard_open` also from any pod but the stack's other seats', as the notebook's Jupyter."""
    peers: list[dict[str, object]] = [{"podSelector": {"matchLabels": selector(pod.project, pod.stack, pod.seat, NOTEBOOK)}}]
    if tensorboard_open:
        peers.append(other_stacks(pod.stack))
        peers += [{"ipBlock": {"cidr": cidr}} for cidr in external_cidrs]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": object_meta(name, pod.namespace, labels(pod.project, pod.stack, pod.seat, TENSORBOARD)),
            "spec": {"podSelector": {"matchLabels": selector(pod.project, pod.stack, pod.seat, TENSORBOARD)},
                     "policyTypes": ["Ingress"],
                     "ingress": [{"ports": [{"port": commands.TENSORBOARD_PORT, "protocol": "TCP"}], "from": peers}]}}
