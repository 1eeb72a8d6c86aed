"""The test kit's Kubernetes (groundwork for issue 18): a real control plane with kwok GPU nodes, driven by the
Pulumi engine with the pulumi-kubernetes provider that toolchain/k8s.sh built.

What a user of a Kubernetes target would check: a Deployment asking for GPUs lands on a node that has them,
and one asking for more than any node has stays Pending with the scheduler's "Insufficient nvidia.com/gpu".
And what the kit promises: the cluster leaves no process behind when it stops.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import ROOT, reap_session
from tests.e2e.k8s import Cluster, processes_under, start_cluster, stop_cluster

PROGRAM = '''
import pulumi
import pulumi_kubernetes as k8s

ns = k8s.core.v1.Namespace("lab", metadata={"name": "tfbox-kit"})


def lab(name: str, gpus: int, wait: bool) -> k8s.apps.v1.Deployment:
    annotations = {} if wait else {"pulumi.com/skipAwait": "true"}  # a Pending pod never rolls out
    return k8s.apps.v1.Deployment(
        name,
        metadata={"name": name, "namespace": ns.metadata["name"], "annotations": annotations},
        spec={
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "notebook",
                    "image": "tfbox.local/not-pulled:1",  # kwok runs no containers
                    "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                }]},
            },
        },
    )


fits = lab("fits", 2, wait=True)
lab("too-big", 9, wait=False)
pulumi.export("fits", fits.metadata["name"])
'''


@pytest.fixture(scope="module")
def cluster(k8s_kit: Path) -> Iterator[Cluster]:
    c = start_cluster("kit")
    try:
        yield c
    finally:
        stop_cluster("kit")


def pulumi_project(tmp: Path, cluster: Cluster, k8s_bin: Path) -> tuple[Path, dict[str, str]]:
    """A tiny inline program with local state, and the built provider installed in its own PULUMI_HOME."""
    toolchain = os.environ.get("TFBOX_TOOLCHAIN_BIN", "")
    project = tmp / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text(
        "name: k8s-kit\nruntime:\n  name: python\n  options:\n    toolchain: pip\n"
        f"    virtualenv: {ROOT / '.venv'}\n")
    (project / "__main__.py").write_text(PROGRAM)
    (tmp / "state").mkdir()
    env = {
        **os.environ,
        "PATH": f"{toolchain}:{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
        "PULUMI_HOME": str(tmp / "home"),
        "PULUMI_BACKEND_URL": f"file://{tmp / 'state'}",
        "PULUMI_CONFIG_PASSPHRASE": "k8s-kit-test",  # nothing secret in this stack
        "PULUMI_SKIP_UPDATE_CHECK": "1",
        "PULUMI_IGNORE_AMBIENT_PLUGINS": "1",
        "PULUMI_DIY_BACKEND_NO_LEGACY_WARNING": "1",
        "KUBECONFIG": str(cluster.kubeconfig),
    }
    # the provider was built at the SDK's pin (toolchain/k8s.sh); it has no -version flag
    version = importlib.metadata.version("pulumi-kubernetes")
    pulumi(project, env, "plugin", "install", "resource", "kubernetes", version,
           "--file", str(k8s_bin / "pulumi-resource-kubernetes"))
    pulumi(project, env, "stack", "init", "kit", "--secrets-provider", "passphrase")
    return project, env


def pulumi(project: Path, env: dict[str, str], *args: str) -> str:
    with subprocess.Popen(["pulumi", "--non-interactive", *args], cwd=project, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, start_new_session=True) as p:
        try:
            out, _ = p.communicate(timeout=600)
        finally:
            reap_session(p)
    assert p.returncode == 0, f"pulumi {' '.join(args)} failed ({p.returncode}):\n{out[-6000:]}"
    return out


def pods(cluster: Cluster, app: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.get("pods", "-n", "tfbox-kit", "-l", f"app={app}")["items"]
    return items


def test_gpu_deployment_lands_on_the_gpu_node_and_an_over_ask_stays_pending(
        cluster: Cluster, k8s_kit: Path, tmp_path: Path) -> None:
    cluster.gpu_node("gpu-a", 8, **{"tfbox.dev/gpu": "a100"})
    cluster.gpu_node("cpu-a", 0)
    project, env = pulumi_project(tmp_path, cluster, k8s_kit)

    out = pulumi(project, env, "up", "--yes", "--stack", "kit", "--skip-preview")
    assert "4 created" in out, out[-3000:]

    (fits,) = pods(cluster, "fits")
    assert fits["spec"]["nodeName"] == "gpu-a"
    assert fits["status"]["phase"] == "Running"
    node = cluster.get("node", "gpu-a")
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "8"

    deadline = time.monotonic() + 60
    while True:
        (big,) = pods(cluster, "too-big")
        conditions = {c["type"]: c for c in big["status"].get("conditions", [])}
        unscheduled = conditions.get("PodScheduled", {})
        if unscheduled.get("reason") == "Unschedulable" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert big["status"]["phase"] == "Pending"
    assert "nodeName" not in big["spec"]
    assert "Insufficient nvidia.com/gpu" in unscheduled.get("message", ""), big["status"]

    pulumi(project, env, "destroy", "--yes", "--stack", "kit", "--skip-preview")
    gone = cluster.kubectl("get", "namespace", "tfbox-kit", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr, gone.stdout


def test_stopping_the_cluster_leaves_no_process(k8s_kit: Path) -> None:
    c = start_cluster("kit-stop")
    c.gpu_node("gpu-b", 4)
    assert len(processes_under(c.run_dir)) >= 5  # etcd, apiserver, controller manager, scheduler, kwok
    stop_cluster("kit-stop", purge=False)
    left = processes_under(c.run_dir)
    stop_cluster("kit-stop")
    assert not left, "still running after scripts/k8s.sh stop:\n" + "\n".join(left)
