"""Kubernetes objects for one lab, as plain manifests (dicts): what the Kubernetes backend declares.

Pure functions in the manner of KubeSpawner's `objects.py` (`make_pod`, `make_pvc`): no Pulumi, no
cluster, so the tests read them as data and `kubectl apply --dry-run=server` can check them against a
real API server. The Kubernetes backend passes them to pulumi-kubernetes; the benchmark applies the
same manifests with `kubectl` (issue 18).

One seat's notebook is one pod of a one-replica StatefulSet; in sidecar mode TensorBoard is a pod of its
own (components.kubernetes.tensorboard), so a TensorBoard-only change never touches the notebook's pod and
its kernels. Pods carry a role label (`tfbox.role`: notebook, tensorboard) and every selector but the
StatefulSet's (immutable: see make_statefulset) names it, so the notebook's Service and NetworkPolicy never
pick TensorBoard's pod. Secrets (the Jupyter config with the
password's argon2id hash, the TLS key) come from a Secret mounted read-only, file by file, never from env.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from components.kubernetes.gpu_check import make_gpu_check_container
from components.model import commands
from components.model.hardening import NOTEBOOK_CAP_DROP, UNPRIVILEGED_USER, NotebookResources
from components.model.labels import PROJECT_LABEL, ROLE_LABEL, SEAT_LABEL, STACK_LABEL

GPU_RESOURCE = "nvidia.com/gpu"
# the node label NVIDIA's GPU feature discovery sets where the device plugin's sharing config time-slices the GPUs
SHARING_LABEL = "nvidia.com/gpu.sharing-strategy"
TIME_SLICING = "time-slicing"
# the strategies under which the device plugin hands one GPU to several pods (GPU feature discovery's values)
SHARED_STRATEGIES = (TIME_SLICING, "mps")
NOTEBOOK, TENSORBOARD = "notebook", "tensorboard"
NOBODY = int(UNPRIVILEGED_USER.split(":")[0])  # TensorBoard's numeric user and group, as on Docker
SECRET_DIR = "/etc/tfbox-secret"  # where the seat's Secret is mounted; each file is bound to where Jupyter reads it
FILES_DIR = "/etc/tfbox-files"  # the same for the plain files (a ConfigMap)


def _key(path: str) -> str:
    """A Secret's or ConfigMap's key for a file path (keys allow only [-._a-zA-Z0-9])."""
    return path.strip("/").replace("/", ".")


def labels(project: str, stack: str, seat: str, role: str | None = None) -> dict[str, str]:
    """The same label keys as on Docker; `kubectl get -l tfbox.seat=ana` finds a seat's objects."""
    out = {PROJECT_LABEL: project, STACK_LABEL: stack, SEAT_LABEL: seat}
    if role:
        out[ROLE_LABEL] = role
    return out


def selector(project: str, stack: str, seat: str, role: str = NOTEBOOK) -> dict[str, str]:
    """What picks one of a seat's pods (its notebook's, or TensorBoard's): Services, NetworkPolicies, the
    Deployment and the pods' affinities select by it, role included."""
    return labels(project, stack, seat, role)


def hostname_affinity(match: Mapping[str, str]) -> dict[str, object]:
    """A pod affinity term: on the node of a pod with these labels (the seat's logs claim is ReadWriteOnce)."""
    return {"labelSelector": {"matchLabels": dict(match)}, "topologyKey": "kubernetes.io/hostname"}


def object_meta(name: str, namespace: str | None, object_labels: Mapping[str, str]) -> dict[str, object]:
    meta: dict[str, object] = {"name": name, "labels": dict(object_labels)}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def make_namespace(name: str, project: str, stack: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": object_meta(name, None, {PROJECT_LABEL: project, STACK_LABEL: stack})}


def make_pvc(name: str, namespace: str, size_bytes: int, storage_class: str | None,
             object_labels: Mapping[str, str]) -> dict[str, object]:
    """A seat's notebooks or logs claim. Kept on `destroy` by the backend (retain on delete), as Docker volumes are."""
    spec: dict[str, object] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": quantity(size_bytes)}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": object_meta(name, namespace, object_labels), "spec": spec}


def make_secret(name: str, namespace: str, files: Mapping[str, str], object_labels: Mapping[str, str]) -> dict[str, object]:
    """The seat's secret files by path (the Jupyter JSON config with the hash; the TLS key). Values are the
    backend's secret Outputs; a Secret, never a ConfigMap, so RBAC and encryption at rest apply."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": object_meta(name, namespace, object_labels),
            "stringData": {_key(path): text for path, text in files.items()}}


def make_config_map(name: str, namespace: str, files: Mapping[str, str], object_labels: Mapping[str, str]) -> dict[str, object]:
    """The seat's plain files by path (capture(), the login guard and proxy config, the TLS certificate)."""
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": object_meta(name, namespace, object_labels),
            "data": {_key(path): text for path, text in files.items()}}


def quantity(n: int) -> str:
    """Bytes as a Kubernetes quantity, exact (Gi or Mi where whole, else bytes)."""
    for unit, size in (("Gi", 1 << 30), ("Mi", 1 << 20)):
        if n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def cpu_quantity(nano_cpus: int) -> str:
    """Nano-CPUs as a Kubernetes CPU quantity (millicores, the finest it keeps)."""
    return f"{nano_cpus // 1_000_000}m"


def gpu_node_selector(selector: Sequence[tuple[str, str]] | Mapping[str, str], share_gpus: bool) -> tuple[tuple[str, str], ...]:
    """A GPU seat's nodeSelector: tfbox:gpuNodeSelector, and for a seat that sets shareGpus only nodes whose GPUs are
    time-sliced. The device plugin hands a time-sliced GPU to several pods; elsewhere a GPU is one pod's, so a
    sharing seat on such a node would share nothing and take a whole GPU (two seats share only when both say so)."""
    out = dict(selector.items() if isinstance(selector, Mapping) else selector)
    if share_gpus:
        out[SHARING_LABEL] = TIME_SLICING
    return tuple(sorted(out.items()))


def exclusive_gpu_affinity() -> dict[str, object]:
    """A node affinity term for a GPU seat that does not set shareGpus: only nodes whose GPUs are not shared. On a
    time-sliced or MPS node the device plugin would hand its `nvidia.com/gpu` out as a slice of a GPU that other pods
    use too, while the seat asked for GPUs of its own. `NotIn` also matches nodes without the label."""
    return {"matchExpressions": [{"key": SHARING_LABEL, "operator": "NotIn", "values": list(SHARED_STRATEGIES)}]}


@dataclass(frozen=True)
class SeatPod:
    """What one seat's pod needs, named in the model's terms; the backend fills it from the lab's plan."""

    project: str
    stack: str
    seat: str
    namespace: str
    image: str
    notebooks_claim: str
    logs_claim: str
    logs_dir: str
    secret_name: str
    config_map_name: str
    secret_files: tuple[str, ...]  # paths inside the notebook container
    plain_files: tuple[str, ...]
    tensorboard_mode: str = "sidecar"  # sidecar, exec or off
    tls: bool = False
    gpus: int = 0
    share_gpus: bool = False  # the seat sets shareGpus: its GPUs may be slices on a time-sliced node
    resources: NotebookResources = field(default_factory=NotebookResources)
    envs: tuple[tuple[str, str], ...] = ()
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[Mapping[str, str], ...] = ()
    config_checksum: str = ""  # of the files' content: a changed password or config rolls the pod
    gpu_check: bool = False  # tfbox:gpuCheck: the gpu-check init container (components.kubernetes.gpu_check)


def readiness_probe(path: str, port: int, https: bool = False, host: str = "") -> dict[str, object]:
    get: dict[str, object] = {"path": path, "port": port, "scheme": "HTTPS" if https else "HTTP"}
    if host:
        get["httpHeaders"] = [{"name": "Host", "value": host}]
    return {"httpGet": get, "periodSeconds": 5, "timeoutSeconds": 4, "failureThreshold": 3}


def _file_mounts(volume: str, paths: Sequence[str]) -> list[dict[str, object]]:
    return [{"name": volume, "mountPath": path, "subPath": _key(path), "readOnly": True} for path in paths]


def notebook_container(pod: SeatPod) -> dict[str, object]:
    res = pod.resources
    limits: dict[str, str] = {}
    if pod.gpus:
        limits[GPU_RESOURCE] = str(pod.gpus)
    if res.memory_bytes is not None:
        limits["memory"] = quantity(res.memory_bytes)
    if res.nano_cpus is not None:
        limits["cpu"] = cpu_quantity(res.nano_cpus)
    ports = [{"name": "jupyter", "containerPort": commands.JUPYTER_PORT}]
    if pod.tensorboard_mode == "exec":
        ports.append({"name": "tensorboard", "containerPort": commands.TENSORBOARD_PORT})
    return {
        "name": NOTEBOOK,
        "image": pod.image,
        "command": commands.notebook_command(pod.logs_dir, pod.tensorboard_mode == "exec"),
        "env": [{"name": k, "value": v} for k, v in pod.envs],
        "ports": ports,
        "resources": {"limits": limits, "requests": dict(limits)} if limits else {},
        # a root shell by design (docs/security.md), as on Docker: the capabilities nothing in a notebook needs dropped
        "securityContext": {"allowPrivilegeEscalation": False,
                            "capabilities": {"drop": [c.removeprefix("CAP_") for c in NOTEBOOK_CAP_DROP]}},
        # the kubelet asks for the pod's address; unless the seat is published beyond loopback, Jupyter's
        # DNS-rebinding guard answers any Host but a loopback one with 403, so the probe names localhost
        "readinessProbe": readiness_probe("/api", commands.JUPYTER_PORT, https=pod.tls, host="localhost"),
        "volumeMounts": [
            {"name": "notebooks", "mountPath": commands.NOTEBOOK_DIR},
            {"name": "logs", "mountPath": pod.logs_dir},
            {"name": "shm", "mountPath": "/dev/shm"},
            *_file_mounts("secret-files", pod.secret_files),
            *_file_mounts("plain-files", pod.plain_files),
        ],
    }


def make_pod_spec(pod: SeatPod) -> dict[str, object]:
    volumes: list[dict[str, object]] = [
        {"name": "notebooks", "persistentVolumeClaim": {"claimName": pod.notebooks_claim}},
        {"name": "logs", "persistentVolumeClaim": {"claimName": pod.logs_claim}},
        # /dev/shm sized by tfbox:shmSize, as Docker's --shm-size (it counts against the pod's memory)
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": quantity(pod.resources.shm_bytes)}},
        {"name": "secret-files", "secret": {"secretName": pod.secret_name, "defaultMode": 0o400}},
        {"name": "plain-files", "configMap": {"name": pod.config_map_name, "defaultMode": 0o444}},
    ]
    spec: dict[str, object] = {
        "containers": [notebook_container(pod)],
        "volumes": volumes,
        # the notebook is a root shell: no API token for it, and no other Service's address in its env
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "terminationGracePeriodSeconds": 30,  # kernels flush before the pod goes, as Docker's destroy grace
        # a replaced notebook pod comes back to the node where its TensorBoard pod has the logs claim attached
        # (ReadWriteOnce); in every mode, so turning TensorBoard off or on never changes this template
        "affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": hostname_affinity(selector(pod.project, pod.stack, pod.seat, TENSORBOARD))}]}},
    }
    if pod.gpu_check and pod.gpus:
        spec["initContainers"] = [make_gpu_check_container(pod.image, pod.gpus, GPU_RESOURCE, NOBODY)]
    if pod.node_selector:
        spec["nodeSelector"] = dict(pod.node_selector)
    if pod.gpus and not pod.share_gpus:
        affinity = spec["affinity"]
        assert isinstance(affinity, dict)
        affinity["nodeAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [exclusive_gpu_affinity()]}}
    if pod.tolerations:
        spec["tolerations"] = [dict(t) for t in pod.tolerations]
    return spec


def make_statefulset(name: str, pod: SeatPod) -> dict[str, object]:
    """One replica; `OrderedReady` replacement, so a changed seat's old pod is gone before the new one mounts its claims."""
    pod_labels = labels(pod.project, pod.stack, pod.seat, NOTEBOOK)
    template_meta: dict[str, object] = {"labels": pod_labels}
    if pod.config_checksum:
        template_meta["annotations"] = {"tfbox.config-checksum": pod.config_checksum}
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": object_meta(name, pod.namespace, pod_labels),
        "spec": {
            "replicas": 1,
            "serviceName": name,
            # without the role, as before it existed: a StatefulSet's selector is immutable, and the pinned provider's
            # preview of a changed one fails (its server-side dry run is an update), so a lab made before keeps it.
            # It also matches the seat's TensorBoard pod, which it never adopts (that pod's controller is its
            # ReplicaSet); the Service and NetworkPolicy, which route traffic, select by role.
            "selector": {"matchLabels": labels(pod.project, pod.stack, pod.seat)},
            "template": {"metadata": template_meta, "spec": make_pod_spec(pod)},
        },
    }


def make_service(name: str, pod: SeatPod, service_type: str = "ClusterIP",
                 node_ports: Mapping[str, int] | None = None) -> dict[str, object]:
    """The notebook's address in the cluster: Jupyter, and TensorBoard's own port in exec mode (where it runs in
    the notebook's container; a sidecar has a Service of its own). A NodePort Service carries Jupyter only: every
    port of it is on every node's address, and TensorBoard has no login (the seat reaches it behind the
    notebook's, at `/tensorboard/`)."""
    ports: list[dict[str, object]] = [{"name": "jupyter", "port": commands.JUPYTER_PORT, "targetPort": commands.JUPYTER_PORT}]
    if pod.tensorboard_mode == "exec" and service_type == "ClusterIP":
        ports.append({"name": "tensorboard", "port": commands.TENSORBOARD_PORT, "targetPort": commands.TENSORBOARD_PORT})
    for port in ports:
        if node_ports and port["name"] in node_ports:
            port["nodePort"] = node_ports[str(port["name"])]
    return {"apiVersion": "v1", "kind": "Service", "metadata": object_meta(name, pod.namespace, labels(pod.project, pod.stack, pod.seat)),
            "spec": {"type": service_type, "selector": selector(pod.project, pod.stack, pod.seat, NOTEBOOK), "ports": ports}}


def other_stacks(stack: str) -> dict[str, object]:
    """A NetworkPolicy peer: any pod of any namespace but this stack's (its other seats')."""
    return {"namespaceSelector": {}, "podSelector": {"matchExpressions": [
        {"key": STACK_LABEL, "operator": "NotIn", "values": [stack]}]}}


def make_network_policy(name: str, pod: SeatPod, tensorboard_open: bool = False,
                        external_cidrs: Sequence[str] = ()) -> dict[str, object]:
    """Who may open the seat's notebook pod: Jupyter (behind its login) from any pod but the stack's other seats';
    in exec mode TensorBoard's own port (no login) from none unless `tensorboard_open` (the seat reaches it
    through its notebook's `/tensorboard/`, inside the pod, where no policy applies). A sidecar's pod has a
    policy of its own (components.kubernetes.tensorboard).

    Peers are named by label: a `NotIn` selector also matches pods without the label (an ingress controller,
    other namespaces' pods). Addresses outside the cluster (a NodePort's clients) only by `external_cidrs`:
    some network plugins match pod addresses against an ipBlock too, so a catch-all block would let the
    other seats back in.
    """
    peers: list[dict[str, object]] = [other_stacks(pod.stack)]
    peers += [{"ipBlock": {"cidr": cidr}} for cidr in external_cidrs]
    rules: list[dict[str, object]] = [{"ports": [{"port": commands.JUPYTER_PORT, "protocol": "TCP"}], "from": peers}]
    if tensorboard_open and pod.tensorboard_mode == "exec":
        rules.append({"ports": [{"port": commands.TENSORBOARD_PORT, "protocol": "TCP"}], "from": peers})
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": object_meta(name, pod.namespace, labels(pod.project, pod.stack, pod.seat)),
            "spec": {"podSelector": {"matchLabels": selector(pod.project, pod.stack, pod.seat, NOTEBOOK)},
                     "policyTypes": ["Ingress"], "ingress": rules}}
