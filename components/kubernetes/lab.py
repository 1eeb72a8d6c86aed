"""The lab on a cluster: one ClusterLab (the namespace) holding one ClusterSeat per seat of the plan.

A seat is the manifests of components.kubernetes.objects declared as pulumi-kubernetes typed resources:
its notebooks and logs claims, a Secret (the Jupyter JSON config with the password's argon2id hash, the
TLS key), a ConfigMap (capture(), the Python config with the login guard and the proxy loader, the proxy
module, the certificate), a one-replica StatefulSet, its Service and NetworkPolicy; in sidecar mode also
TensorBoard's Deployment, headless Service and NetworkPolicy (components.kubernetes.tensorboard), so a
TensorBoard-only change leaves the notebook's pod and kernels alone. The provider waits for the
StatefulSet's and the Deployment's pods to be ready (readiness probes on Jupyter's /api and TensorBoard's
/data/logdir), so `up` returns when the seat answers.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.kernel import jupyter
from components.kubernetes import objects, tensorboard
from components.kubernetes.ingress import SeatIngress, SeatIngressArgs
from components.model import commands
from components.model.cluster import ClusterSettings
from components.model.hardening import NotebookResources
from components.model.password import hash_password
from components.model.plan import LabPlan, SeatPlan

# a claim binds when its pod is scheduled (WaitForFirstConsumer); a Service's endpoints are its StatefulSet's pod
SKIP_AWAIT = {"pulumi.com/skipAwait": "true"}


def hashed_jupyter_config(password: pulumi.Input[str], salt: str, tls: bool, cull_idle: int,
                          remote_access: bool) -> pulumi.Output[str]:
    """The Jupyter JSON config, secret (it holds the hash); the hash runs in a worker thread, as on Docker."""
    def render(p: str) -> Awaitable[str]:
        return asyncio.get_running_loop().run_in_executor(
            None, lambda: jupyter.jupyter_config(hash_password(p, salt), tls=tls, cull_idle_seconds=cull_idle,
                                                 remote_access=remote_access))
    return pulumi.Output.secret(password).apply(render)


def service_host(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.svc.cluster.local"


def tensorboard_name(seat: SeatPlan) -> str:
    """<namePrefix>[-<seat>]-tensorboard: the sidecar's Deployment, Service and NetworkPolicy (the plan's name for
    its container), named also while tensorboardMode is off, where the notebook's proxy keeps pointing."""
    return seat.tensorboard.container_name if seat.tensorboard else seat.notebook.container_name.removesuffix("notebook") + "tensorboard"


def seat_urls(seat: SeatPlan, namespace: str, proxy: bool, node_port: bool = False) -> dict[str, Any]:
    """The seat's in-cluster addresses: its Services' DNS names (TensorBoard's own in sidecar mode, the notebook's
    in exec mode). With a NodePort also the port on every node (`notebookNodePort`; which node addresses users
    reach is the cluster's to say), and no TensorBoard URL (it is reached at `/tensorboard/`)."""
    host = service_host(seat.notebook.container_name, namespace)
    notebook = f"{'https' if seat.notebook.tls else 'http'}://{host}:{commands.JUPYTER_PORT}/"
    out: dict[str, Any] = {"notebookUrl": notebook}
    if node_port:
        out["notebookNodePort"] = notebook_port(seat)
    elif seat.notebook.tensorboard_inside:
        out["tensorboardUrl"] = f"http://{host}:{commands.TENSORBOARD_PORT}/"
    elif seat.tensorboard is not None:
        out["tensorboardUrl"] = f"http://{service_host(tensorboard_name(seat), namespace)}:{commands.TENSORBOARD_PORT}/"
    if proxy:
        out["tensorboardProxyUrl"] = notebook + "tensorboard/"
    return out


def notebook_port(seat: SeatPlan) -> int:
    """The seat's notebookPort: a NodePort Service publishes Jupyter there on every node."""
    return next(p.external for p in seat.notebook.ports if p.internal == commands.JUPYTER_PORT)


def plain_files(seat: SeatPlan, namespace: str, proxy_key: bool) -> dict[str, str]:
    """What the Docker notebook uploads in the clear, by path, built by the same functions. The proxy is on
    while tfbox:tensorboardProxy is (`proxy_key`), tensorboardMode off included: its upstream is TensorBoard's
    Service (127.0.0.1 in exec mode), so turning the sidecar off and on changes none of the notebook's files."""
    proxy = (None if not proxy_key else commands.tensorboard_proxy_target(None) if seat.notebook.tensorboard_inside
             else tensorboard.proxy_target(tensorboard_name(seat), namespace))
    files = {commands.CAPTURE_STARTUP_PATH: jupyter.CAPTURE_SOURCE,
             commands.JUPYTER_PY_CONFIG_PATH: jupyter.jupyter_py_config(proxy)}
    if proxy is not None:
        files[commands.TENSORBOARD_PROXY_MODULE_PATH] = jupyter.TENSORBOARD_PROXY_SOURCE
    if seat.notebook.tls:
        files[commands.TLS_CERT_PATH] = seat.notebook.tls_cert
    return files


def checksum(*texts: str) -> str:
    """A digest of the seat's files: the pod template carries it, so a changed password or config rolls the pod."""
    h = hashlib.sha256()
    for t in texts:
        h.update(hashlib.sha256(t.encode()).digest())
    return h.hexdigest()


def _d(value: object) -> dict[str, Any]:
    """A manifest's part, as the typed resources take it (objects.py builds plain dicts)."""
    assert isinstance(value, dict)
    return value


def _envs(seat: SeatPlan) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, _, v in (e.partition("=") for e in seat.notebook.envs))


def _resources(seat: SeatPlan) -> NotebookResources:
    h = seat.notebook.hardening
    return NotebookResources(shm_bytes=h.shm_bytes or NotebookResources().shm_bytes, memory_bytes=h.memory_bytes,
                             nano_cpus=h.nano_cpus, pids_limit=h.pids_limit)


@dataclass
class ClusterSeatArgs:
    plan: LabPlan
    seat: SeatPlan
    cluster: ClusterSettings
    namespace: pulumi.Input[str]
    image: str
    password: pulumi.Input[str]
    tls_key: pulumi.Input[str] | None = None


class ClusterSeat(pulumi.ComponentResource):
    """One seat on the cluster: its claims, files, StatefulSet, Service and NetworkPolicy."""

    def __init__(self, name: str, args: ClusterSeatArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("tfbox:index:ClusterSeat", name, None, opts)
        plan, seat, cluster = args.plan, args.seat, args.cluster
        ns_name = cluster.namespace
        child = pulumi.ResourceOptions(parent=self)
        p = seat.resource_prefix
        seat_labels = objects.labels(plan.project, plan.stack, seat.name or "default")
        keep = pulumi.ResourceOptions(parent=self, retain_on_delete=seat.storage.keep_volumes,
                                      protect=seat.storage.protect_volumes)

        def claim(resource: str, claim_name: str, size: int) -> k8s.core.v1.PersistentVolumeClaim:
            m = objects.make_pvc(claim_name, ns_name, size, cluster.storage_class or None, {**seat_labels, "tfbox.role": "storage"})
            return k8s.core.v1.PersistentVolumeClaim(
                resource, metadata={**_d(m["metadata"]), "namespace": args.namespace, "annotations": SKIP_AWAIT},
                spec=_d(m["spec"]), opts=keep)

        self.notebooks = claim(f"{p}notebooks", seat.storage.notebooks_volume, cluster.notebooks_bytes)
        self.logs = claim(f"{p}logs", seat.storage.logs_volume, cluster.logs_bytes)

        tls = seat.notebook.tls
        if tls and args.tls_key is None:
            raise ValueError("a TLS certificate needs its key")
        ingress_host = cluster.ingress.host(seat.name) if cluster.ingress else None
        # a NodePort's clients send a node's address as Host, an Ingress's its host: Jupyter's DNS-rebinding guard
        # would refuse them (both need TLS)
        json_config = hashed_jupyter_config(args.password, seat.notebook.password_salt, tls, seat.notebook.cull_idle,
                                            seat.notebook.remote_access or cluster.node_port or ingress_host is not None)
        secret_files: dict[str, Any] = {commands.JUPYTER_CONFIG_PATH: json_config}
        if tls:
            secret_files[commands.TLS_KEY_PATH] = pulumi.Output.secret(args.tls_key)
        files = plain_files(seat, ns_name, plan.tensorboard_proxy_key)
        base = seat.notebook.container_name  # <namePrefix>[-<seat>]-notebook: the StatefulSet, Service and policy
        secret_m = objects.make_secret(f"{base}-secret", ns_name, secret_files, seat_labels)
        self.secret = k8s.core.v1.Secret(
            f"{p}secret", metadata={**_d(secret_m["metadata"]), "namespace": args.namespace},
            type="Opaque", string_data=pulumi.Output.secret(_d(secret_m["stringData"])), opts=child)
        cm = objects.make_config_map(f"{base}-files", ns_name, files, seat_labels)
        self.config_map = k8s.core.v1.ConfigMap(
            f"{p}files", metadata={**_d(cm["metadata"]), "namespace": args.namespace}, data=_d(cm["data"]), opts=child)

        # the checksum of a digest of the hash is no secret: unsecret it, so the StatefulSet stays readable in state
        digest = pulumi.Output.unsecret(pulumi.Output.all(json_config, pulumi.Output.secret(args.tls_key or ""))
                                        .apply(lambda t: checksum(*t, *sorted(files.values()))))
        gpus = seat.notebook.gpus.count if seat.notebook.gpus.kind == "count" else 0
        pod = objects.SeatPod(
            project=plan.project, stack=plan.stack, seat=seat.name or "default", namespace=ns_name, image=args.image,
            notebooks_claim=seat.storage.notebooks_volume, logs_claim=seat.storage.logs_volume, logs_dir=seat.notebook.logs_dir,
            secret_name=f"{base}-secret", config_map_name=f"{base}-files", secret_files=tuple(secret_files),
            plain_files=tuple(files), tensorboard_mode=("exec" if seat.notebook.tensorboard_inside
                                                        else "sidecar" if seat.tensorboard else "off"),
            tls=tls, gpus=gpus, resources=_resources(seat), envs=_envs(seat),
            node_selector=objects.gpu_node_selector(cluster.gpu_node_selector, seat.share_gpus) if gpus else (),
            share_gpus=seat.share_gpus,
            tolerations=tuple(cluster.tolerations) if gpus else (), config_checksum="",
            gpu_check=seat.notebook.gated and gpus > 0)
        sts = objects.make_statefulset(base, pod)
        spec: dict[str, Any] = dict(_d(sts["spec"]))
        template = dict(spec["template"])
        template["metadata"] = {**_d(template["metadata"]), "annotations": {"tfbox.config-checksum": digest}}
        spec["template"] = template
        self.stateful_set = k8s.apps.v1.StatefulSet(
            f"{p}notebook", metadata={**_d(sts["metadata"]), "namespace": args.namespace},
            spec=spec, opts=pulumi.ResourceOptions(
                parent=self, depends_on=[self.notebooks, self.logs, self.secret, self.config_map],
                # a changed pod (password, image, setting) replaces the StatefulSet instead of rolling it: the
                # provider's await of a roll can return before the controller saw it (pulumi-kubernetes#3329, in
                # the pinned 4.25.0), a new StatefulSet is awaited until its pod is ready. One replica has the same
                # gap either way (a roll also deletes the pod first); the claims are objects of their own and stay.
                replace_on_changes=["spec.template"], delete_before_replace=True))
        node_ports = {"jupyter": notebook_port(seat)} if cluster.node_port else None
        svc = objects.make_service(base, pod, cluster.service_type, node_ports)
        # not awaited: the StatefulSet's wait already covers its pod, the Service's only endpoints, and the
        # provider's Service wait added about 10 s to every `up` that creates one (bench/k8s_apply.py)
        self.service = k8s.core.v1.Service(
            f"{p}service", metadata={**_d(svc["metadata"]), "namespace": args.namespace, "annotations": SKIP_AWAIT},
            spec=_d(svc["spec"]), opts=child)
        pol = objects.make_network_policy(base, pod, external_cidrs=cluster.node_port_sources)
        self.network_policy = k8s.networking.v1.NetworkPolicy(
            f"{p}network-policy", metadata={**_d(pol["metadata"]), "namespace": args.namespace}, spec=_d(pol["spec"]), opts=child)
        if cluster.ingress and ingress_host:  # components.kubernetes.ingress
            self.ingress = SeatIngress(f"{p}ingress", SeatIngressArgs(
                cluster.ingress, ingress_host, base, args.namespace, ns_name, seat_labels, seat.notebook.tls_cert,
                None if cluster.ingress.cert_manager else args.tls_key), pulumi.ResourceOptions(parent=self, depends_on=[self.service]))
        self.pod_name = f"{base}-0"  # a StatefulSet's one pod
        self.pod_names = [self.pod_name]
        if pod.tensorboard_mode == "sidecar":
            self._tensorboard(tensorboard_name(seat), pod, args, cluster)
        self.register_outputs({"podName": self.pod_name})

    def _tensorboard(self, name: str, pod: objects.SeatPod, args: ClusterSeatArgs, cluster: ClusterSettings) -> None:
        """The sidecar's Deployment, headless Service and NetworkPolicy: objects of their own, so turning
        TensorBoard off or on creates or deletes these and leaves the notebook's StatefulSet as it is."""
        p = args.seat.resource_prefix
        dep = tensorboard.make_tensorboard_deployment(name, pod)
        # awaited: `up` returns once its pod is ready (readiness probe on /data/logdir)
        self.tensorboard = k8s.apps.v1.Deployment(
            f"{p}tensorboard", metadata={**_d(dep["metadata"]), "namespace": args.namespace}, spec=_d(dep["spec"]),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.logs]))
        svc = tensorboard.make_tensorboard_service(name, pod)
        self.tensorboard_service = k8s.core.v1.Service(
            f"{p}tensorboard-service", metadata={**_d(svc["metadata"]), "namespace": args.namespace, "annotations": SKIP_AWAIT},
            spec=_d(svc["spec"]), opts=pulumi.ResourceOptions(parent=self))
        pol = tensorboard.make_tensorboard_network_policy(name, pod)
        self.tensorboard_policy = k8s.networking.v1.NetworkPolicy(
            f"{p}tensorboard-network-policy", metadata={**_d(pol["metadata"]), "namespace": args.namespace},
            spec=_d(pol["spec"]), opts=pulumi.ResourceOptions(parent=self))
        self.pod_names.append(name)  # the Deployment's pod is <name>-<hash>-<suffix>


def _entry(secret_map: Any, name: str) -> pulumi.Output[str]:
    """A seat's entry of a secret map (tfbox:passwords, tfbox:tlsKeys), still secret."""
    return pulumi.Output.secret(secret_map).apply(lambda m: str(m[name]))


@dataclass
class ClusterLabArgs:
    plan: LabPlan
    password: pulumi.Input[str] | None = None  # the default seat's
    tls_key: pulumi.Input[str] | None = None
    seat_passwords: pulumi.Input[Any] | None = None
    seat_tls_keys: pulumi.Input[Any] | None = None


class ClusterLab(pulumi.ComponentResource):
    """The stack's namespace and its seats. The namespace is kept on destroy with keepVolumes: deleting it
    would delete the kept claims with it."""

    def __init__(self, name: str, args: ClusterLabArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("tfbox:index:ClusterLab", name, None, opts)
        plan = args.plan
        cluster = plan.cluster
        if cluster is None:
            raise ValueError("a cluster lab needs the cluster settings")
        keep = any(s.storage.keep_volumes for s in plan.seats)
        ns = objects.make_namespace(cluster.namespace, plan.project, plan.stack)
        self.namespace = k8s.core.v1.Namespace(
            "namespace", metadata=_d(ns["metadata"]), opts=pulumi.ResourceOptions(parent=self, retain_on_delete=keep))
        images = {i.resource: i.reference for i in plan.images}
        self.seats: list[ClusterSeat] = []
        for seat in plan.seats:
            password: Any = args.password
            tls_key: Any = args.tls_key
            if seat.named:
                password = _entry(args.seat_passwords, seat.name)
                if seat.notebook.tls_own_key:
                    tls_key = _entry(args.seat_tls_keys, seat.name)
            self.seats.append(ClusterSeat(seat.name or "seat", ClusterSeatArgs(
                plan=plan, seat=seat, cluster=cluster, namespace=self.namespace.metadata["name"],
                image=images[seat.notebook.image], password=password, tls_key=tls_key if seat.notebook.tls else None,
            ), pulumi.ResourceOptions(parent=self)))
        self.namespace_name = cluster.namespace
        self.register_outputs({"namespace": self.namespace.metadata["name"]})

