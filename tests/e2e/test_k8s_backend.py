"""`tfbox:backend: kubernetes` (issue 18, a preview) with tfbox's own program and `pulumi up`, on the test kit's
cluster (a real control plane; kwok GPU nodes, which run no containers, so the pods are scheduled and reported
ready but no notebook process runs: docs/kubernetes.md).

What a user would check: each seat's pod lands on a node with the GPUs it asks for, the seat's claims, Secret,
Service and NetworkPolicy are there, a second preview changes nothing; an ask no node can hold and GPU indices
are refused at preview, before anything is created; no password or hash is readable outside the Secret; and
`destroy` keeps the notebooks.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Project, Stack
from tests.e2e.k8s import Cluster, provider_project, start_cluster, stop_cluster

NAME = "k8sbe"
IMAGE = "tensorflow/tensorflow:2.16.1-gpu-jupyter"  # kwok pulls nothing; a GPU image, as a GPU stack needs
SEATS = [{"name": "ana", "gpus": "count=1", "notebookPort": 8801, "tensorboardPort": 6601},
         {"name": "bo", "gpus": "count=2", "notebookPort": 8802, "tensorboardPort": 6602}]


@pytest.fixture(scope="module")
def cluster(k8s_kit: Path) -> Iterator[Cluster]:
    c = start_cluster(NAME)
    try:
        c.gpu_node("gpu-1", 2, gpu="h100")
        c.gpu_node("gpu-2", 2, gpu="h100")
        c.gpu_node("cpu-1", 0)
        # the kit has no volume provisioner: claims without a class bind to these (kwok mounts nothing)
        c.volumes(6, "1Gi")
        yield c
    finally:
        stop_cluster(NAME)


@pytest.fixture(scope="module")
def project(cluster: Cluster, k8s_kit: Path, tmp_path_factory: pytest.TempPathFactory) -> Project:
    return provider_project(tmp_path_factory.mktemp("k8s"), k8s_kit)


def k8s_stack(project: Project, cluster: Cluster, name: str, seats: list[dict[str, Any]],
              passwords: dict[str, str], **extra: Any) -> Stack:
    st = project.stack(name, {
        "tfbox:backend": "kubernetes", "kubernetes:kubeconfig": str(cluster.kubeconfig), "tfbox:image": IMAGE,
        "tfbox:passwordSalt": secrets.token_hex(16), "tfbox:seats": seats, "tfbox:gpuNodeSelector": {"gpu": "h100"},
        "tfbox:notebooksSize": "1g", "tfbox:logsSize": "1g", **extra,
    }, None)
    for seat, password in passwords.items():
        project.pulumi("config", "set", "--secret", "--path", f"tfbox:passwords.{seat}", "--stack", name, input=password)
    return st


def items(cluster: Cluster, kind: str, ns: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = cluster.get(kind, "-n", ns)["items"]
    return found


def test_a_two_seat_stack_lands_on_the_gpu_nodes_and_keeps_its_claims(project: Project, cluster: Cluster) -> None:
    passwords = {"ana": secrets.token_urlsafe(18), "bo": secrets.token_urlsafe(18)}
    st = k8s_stack(project, cluster, "lab", SEATS, passwords)
    st.up(timeout=600)
    ns = "tfbox-lab"

    all_pods = items(cluster, "pods", ns)
    pods = {p["metadata"]["name"]: p for p in all_pods if p["metadata"]["labels"]["tfbox.role"] == "notebook"}
    assert set(pods) == {"tfbox-lab-ana-notebook-0", "tfbox-lab-bo-notebook-0"}
    nodes = {}
    for seat, gpus in (("ana", "1"), ("bo", "2")):
        pod = pods[f"tfbox-lab-{seat}-notebook-0"]
        notebook = next(c for c in pod["spec"]["containers"] if c["name"] == "notebook")
        assert notebook["resources"]["limits"]["nvidia.com/gpu"] == gpus
        assert pod["spec"]["nodeSelector"] == {"gpu": "h100"}
        assert pod["status"]["phase"] == "Running"
        nodes[seat] = pod["spec"]["nodeName"]
    assert set(nodes.values()) == {"gpu-1", "gpu-2"}  # 1 + 2 GPUs do not fit one node of 2
    # each seat's TensorBoard: a pod of its own, with no GPU, on its notebook's node (the logs claim is ReadWriteOnce)
    boards = {p["metadata"]["labels"]["tfbox.seat"]: p for p in all_pods if p["metadata"]["labels"]["tfbox.role"] == "tensorboard"}
    assert set(boards) == {"ana", "bo"} and len(all_pods) == 4
    for seat, board in boards.items():
        assert board["metadata"]["name"].startswith(f"tfbox-lab-{seat}-tensorboard-")
        assert board["spec"]["nodeName"] == nodes[seat] and board["status"]["phase"] == "Running"
        assert not any("nvidia.com/gpu" in (c.get("resources") or {}).get("limits", {}) for c in board["spec"]["containers"])

    claims = {c["metadata"]["name"]: c["status"]["phase"] for c in items(cluster, "pvc", ns)}
    assert claims == {f"tfbox-lab-{s}-{k}": "Bound" for s in ("ana", "bo") for k in ("notebooks", "logs")}
    for kind in ("services", "networkpolicies", "secrets", "configmaps"):
        names = {i["metadata"]["name"] for i in items(cluster, kind, ns)}
        suffix = {"secrets": "-secret", "configmaps": "-files"}.get(kind, "")
        assert {f"tfbox-lab-ana-notebook{suffix}", f"tfbox-lab-bo-notebook{suffix}"} <= names, (kind, names)
        if kind in ("services", "networkpolicies"):
            assert {"tfbox-lab-ana-tensorboard", "tfbox-lab-bo-tensorboard"} <= names, (kind, names)

    out = st.outputs()
    assert out["seats"]["ana"]["notebookUrl"] == "http://tfbox-lab-ana-notebook.tfbox-lab.svc.cluster.local:8888/"
    assert out["containerNames"] == ["tfbox-lab-ana-notebook-0", "tfbox-lab-ana-tensorboard",
                                     "tfbox-lab-bo-notebook-0", "tfbox-lab-bo-tensorboard"]
    assert out["gpus"] == "ana=count=1 bo=count=2"

    st.preview("--expect-no-changes")

    # the password and its hash live in the Secret only
    secret = cluster.get("secret", "-n", ns, "tfbox-lab-ana-notebook-secret")
    config = base64.b64decode(secret["data"]["etc.jupyter.jupyter_server_config.json"]).decode()
    hashed = json.loads(config)["PasswordIdentityProvider"]["hashed_password"]
    assert hashed.startswith("argon2:")
    config_maps = cluster.kubectl("get", "configmaps", "-n", ns, "-o", "yaml").stdout
    exported = st.export()
    for text in (config_maps, exported, "\n".join(project.transcript)):
        for secret_text in (*passwords.values(), hashed):
            assert secret_text not in text

    st.destroy()
    left = {c["metadata"]["name"] for c in items(cluster, "pvc", ns)}
    assert left == {f"tfbox-lab-{s}-{k}" for s in ("ana", "bo") for k in ("notebooks", "logs")}  # keepVolumes
    assert items(cluster, "statefulsets", ns) == [] and items(cluster, "deployments", ns) == []


def test_an_over_ask_and_gpu_indices_are_refused_at_preview_and_nothing_is_created(project: Project, cluster: Cluster) -> None:
    seats = [{"name": "cy", "gpus": "count=3", "notebookPort": 8803, "tensorboardPort": 6603}]
    st = k8s_stack(project, cluster, "over", seats, {"cy": secrets.token_urlsafe(18)})
    res = st.preview(check=False)
    assert res.returncode != 0
    assert "tfbox:seats[0].gpus: seat cy asks 3 GPUs; nodes matching gpu=h100 have" in res.output, res.output[-3000:]
    assert "at most 2 on one node" in res.output
    res = st.up(check=False)
    assert res.returncode != 0
    gone = cluster.kubectl("get", "namespace", "tfbox-over", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr

    project.pulumi("config", "set", "--path", "tfbox:seats[0].gpus", "0,1", "--stack", "over")
    res = st.preview(check=False)
    assert res.returncode != 0
    assert "tfbox:seats[0].gpus: 0,1 picks GPUs by index, UUID or all" in res.output, res.output[-3000:]
    assert "write count=N" in res.output



def test_a_sharing_seat_is_refused_at_preview_until_a_node_advertises_time_slicing(project: Project, cluster: Cluster) -> None:
    """shareGpus asks for time-sliced nodes (the label NVIDIA's feature discovery sets): the real API's nodes are read
    for it at preview, and a seat without it is kept off them. Last in the module: the time-sliced node it adds stays."""
    names = ("di", "ed")
    seats: list[dict[str, Any]] = [{"name": s, "gpus": "count=1", "shareGpus": True, "notebookPort": 8800 + i,
                                    "tensorboardPort": 6600 + i} for i, s in enumerate(names)]
    st = k8s_stack(project, cluster, "share", seats, {s: secrets.token_urlsafe(18) for s in names})
    res = st.preview(check=False)
    assert res.returncode != 0
    for i, seat in enumerate(names):
        assert (f"tfbox:seats[{i}].shareGpus: seat {seat} sets shareGpus, but no node matching gpu=h100 advertises GPU "
                "time-slicing (label nvidia.com/gpu.sharing-strategy=time-slicing") in res.output, res.output[-3000:]
    cluster.gpu_node("gpu-sliced", 4, gpu="h100", pool="sliced", **{"nvidia.com/gpu.sharing-strategy": "time-slicing"})
    st.preview()
    gone = cluster.kubectl("get", "namespace", "tfbox-share", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    # a seat that does not share keeps off time-sliced nodes: where only such a node matches, the preview says so
    own = k8s_stack(project, cluster, "own", [{"name": "fy", "gpus": "count=1", "notebookPort": 8810, "tensorboardPort": 6610}],
                    {"fy": secrets.token_urlsafe(18)}, **{"tfbox:gpuNodeSelector": {"pool": "sliced"}})
    res = own.preview(check=False)
    assert res.returncode != 0
    assert ("tfbox:seats[0].gpus: seat fy asks GPUs of its own, but every node matching pool=sliced shares its GPUs"
            in res.output), res.output[-3000:]
