"""The test kit's Kubernetes: a private control plane per name (scripts/k8s.sh), for the real-engine tests.

scripts/test.sh builds or finds the binaries (toolchain/k8s.sh) and exports TFBOX_K8S_BIN. Without it the
Kubernetes tests are skipped on a developer's machine and fail in CI (CI=true), like every e2e prerequisite.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from tests.e2e.harness import ROOT, Project

SCRIPT = ROOT / "scripts" / "k8s.sh"
NOT_BUILT = "the Kubernetes test kit is not built: run toolchain/k8s.sh and export TFBOX_K8S_BIN=<the dir it prints>"


def k8s_bin() -> Path | None:
    """The directory toolchain/k8s.sh printed, if the environment names one that holds the binaries."""
    value = os.environ.get("TFBOX_K8S_BIN", "")
    path = Path(value)
    return path if value and (path / "kube-apiserver").exists() else None


def kubectl_path() -> str:
    venv = ROOT / ".venv" / "bin" / "kubectl"
    return os.environ.get("TFBOX_KUBECTL") or (str(venv) if venv.exists() else "kubectl")


def _script(*args: str, timeout: float = 300) -> str:
    done = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, "TFBOX_KUBECTL": kubectl_path()})
    if done.returncode != 0:
        raise RuntimeError(f"scripts/k8s.sh {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout


@dataclass(frozen=True)
class Cluster:
    """A running test kit cluster: its name (scripts/k8s.sh NAME), kubeconfig and run directory."""

    name: str
    kubeconfig: Path

    @property
    def run_dir(self) -> Path:
        return self.kubeconfig.parent

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60,
                input: str | None = None) -> subprocess.CompletedProcess[str]:
        """kubectl on this cluster; `input` is its stdin (e.g. manifests for `apply -f -`)."""
        done = subprocess.run([kubectl_path(), "--kubeconfig", str(self.kubeconfig), *args], capture_output=True,
                              text=True, timeout=timeout, check=False, input=input)
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return done

    def get(self, *args: str) -> Any:
        """`kubectl get ... -o json`, parsed."""
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def gpu_node(self, node: str, gpus: int, **labels: str) -> None:
        """A kwok node with `gpus` nvidia.com/gpu and these labels, Ready when this returns."""
        _script("gpu-node", self.name, node, str(gpus), *(f"{k}={v}" for k, v in labels.items()))

    def real_node(self, node: str) -> None:
        """A real node (containerd + kubelet + the cluster's CoreDNS), Ready when this returns. Without
        TFBOX_COREDNS_BIN (scripts/test.sh exports it) scripts/k8s.sh builds CoreDNS first: minutes, once."""
        _script("node", self.name, node, timeout=900)

    def volumes(self, count: int, size: str = "10Gi") -> None:
        """`count` static hostPath PersistentVolumes (Retain) that claims without a storage class bind to."""
        _script("volumes", self.name, str(count), size)

    def image(self, ref: str) -> None:
        """Pull `ref` (a local registry's, plain HTTP) or import a `docker save` tarball into the real node."""
        _script("image", self.name, ref, timeout=900)

    @contextlib.contextmanager
    def port_forward(self, namespace: str, target: str, port: int, timeout: float = 60) -> Iterator[int]:
        """`kubectl port-forward` to `target` (e.g. svc/NAME) on a free local port of 127.0.0.1; yields that port.

        Through the API server and the kubelet to the pod the Service selects: how a user reaches a
        ClusterIP Service from a laptop (the kit runs no kube-proxy, so a ClusterIP answers nowhere)."""
        proc = subprocess.Popen([kubectl_path(), "--kubeconfig", str(self.kubeconfig), "-n", namespace,
                                 "port-forward", "--address", "127.0.0.1", target, f":{port}"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            assert proc.stdout is not None
            deadline = time.monotonic() + timeout
            seen = []
            while time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    break
                seen.append(line)
                found = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) ->", line)
                if found:
                    # its "Handling connection" lines must not fill the pipe and stall it
                    threading.Thread(target=proc.stdout.read, daemon=True).start()
                    yield int(found.group(1))
                    return
            raise AssertionError(f"kubectl port-forward {target} did not start:\n{''.join(seen)[-2000:]}")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def start_cluster(name: str) -> Cluster:
    """A fresh cluster: whatever an interrupted earlier run left under this name is purged first."""
    stop_cluster(name)
    out = _script("start", name)
    kubeconfig = next(line.split("=", 1)[1] for line in out.splitlines() if line.startswith("KUBECONFIG="))
    return Cluster(name, Path(kubeconfig))


def start_real_node_cluster(name: str, node: str = "", image: str = "", volumes: int = 0,
                            volume_size: str = "10Gi") -> Cluster:
    """A fresh cluster with one real node (containerd + kubelet: pods really run) named `node` (default
    NAME-node), `volumes` static PersistentVolumes, and `image` (a local registry's reference or a
    `docker save` tarball) already in the node's containerd, so a first pod does not wait for the pull.
    For tests and benchmarks that need notebooks that answer; stop it with stop_cluster(name)."""
    cluster = start_cluster(name)
    try:
        cluster.real_node(node or f"{name}-node")
        if volumes:
            cluster.volumes(volumes, volume_size)
        if image:
            cluster.image(image)
    except BaseException:
        stop_cluster(name)
        raise
    return cluster


def stop_cluster(name: str, purge: bool = True) -> None:
    _script("purge" if purge else "stop", name)


def processes_under(directory: Path) -> list[str]:
    """Processes whose command line names `directory` (every process of a cluster does: its flags do)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(directory) + "/" in cmd:
            found.append(f"{proc.name}: {cmd[:200]}")
    return found


def provider_project(directory: Path, k8s_kit: Path) -> Project:
    """A copy of the project with the kit's kubernetes provider installed at the pinned SDK's version. Its
    KUBECONFIG points nowhere: only a stack's own `kubernetes:kubeconfig` may reach a cluster."""
    p = Project(directory, os.environ.get("TFBOX_TOOLCHAIN_BIN", ""), extra_env={"KUBECONFIG": "/nonexistent"})
    p.pulumi("plugin", "install", "resource", "kubernetes", version("pulumi_kubernetes"),
             "--file", str(k8s_kit / "pulumi-resource-kubernetes"))
    return p
