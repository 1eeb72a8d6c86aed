"""`make doctor`, `make status` and `make repair` on a kubernetes stack (issue 18), on the test kit's cluster.

What a user would check: with the lab up, status lists each seat's pod, phase, readiness, node and GPUs
asked/allocated, and doctor says all is healthy; when a GPU node loses a GPU (its allocatable
`nvidia.com/gpu` drops below capacity, as the device plugin reports an unhealthy GPU) and a seat's pod must be
placed again, doctor names the Pending seat with the free GPU numbers and the fix, and the node with the lost
GPU; status says the seat is Pending with nothing allocated; repair says what it does on a cluster (nothing)
instead of pretending. The project's KUBECONFIG points nowhere: only the stack's `kubernetes:kubeconfig` reaches
the cluster, as for the provider.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Project, Result
from tests.e2e.k8s import Cluster, provider_project, start_cluster, stop_cluster
from tests.e2e.test_k8s_backend import k8s_stack

NAME = "k8sdoc"
SEATS = [{"name": "ana", "gpus": "count=1", "notebookPort": 8811, "tensorboardPort": 6611},
         {"name": "bo", "gpus": "count=2", "notebookPort": 8812, "tensorboardPort": 6612}]


@pytest.fixture(scope="module")
def cluster(k8s_kit: Path) -> Iterator[Cluster]:
    c = start_cluster(NAME)
    try:
        c.gpu_node("gpu-1", 2, gpu="h100")
        c.gpu_node("gpu-2", 2, gpu="h100")
        c.volumes(4, "1Gi")  # the kit has no provisioner: static volumes the claims bind to
        yield c
    finally:
        stop_cluster(NAME)


@pytest.fixture(scope="module")
def project(cluster: Cluster, k8s_kit: Path, tmp_path_factory: pytest.TempPathFactory) -> Project:
    return provider_project(tmp_path_factory.mktemp("k8sdoc"), k8s_kit)


def doctor(project: Project, *extra: str) -> Result:
    started = time.monotonic()
    res = project.run(".venv/bin/python", "scripts/doctor.py", "--stack", "doc", *extra, check=False, timeout=120)
    print(f"doctor {' '.join(extra)}: {time.monotonic() - started:.1f} s, exit {res.returncode}\n{res.stdout}")
    return res


def status_json(project: Project) -> tuple[int, dict[str, Any]]:
    started = time.monotonic()
    res = project.run(".venv/bin/python", "scripts/status.py", "--stack", "doc", "--json", check=False, timeout=120)
    print(f"status --json: {time.monotonic() - started:.1f} s, exit {res.returncode}")
    return res.returncode, json.loads(res.stdout)


def seats_of(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    [machine] = board["machines"]
    return {s["seat"]: s for s in machine["seats"]}


def test_doctor_and_status_read_the_seats_and_name_a_pod_pending_on_a_lost_gpu(project: Project, cluster: Cluster) -> None:
    st = k8s_stack(project, cluster, "doc", SEATS, {"ana": secrets.token_urlsafe(18), "bo": secrets.token_urlsafe(18)})
    st.up(timeout=600)
    ns = "tfbox-doc"
    assert st.outputs()["gpuLedger"] == {"ana": {"gpus": 1, "resource": "nvidia.com/gpu", "nodeSelector": {"gpu": "h100"}},
                                         "bo": {"gpus": 2, "resource": "nvidia.com/gpu", "nodeSelector": {"gpu": "h100"}}}

    code, board = status_json(project)
    assert code == 0 and board["exit_status"] == 0, board
    seats = seats_of(board)
    assert set(seats) == {"ana", "bo"}
    nodes = {}
    for seat, gpus in (("ana", 1), ("bo", 2)):
        s = seats[seat]
        assert (s["phase"], s["ready"], s["ok"], s["gpus_allocated"], s["gpus_requested"]) == ("Running", True, True, gpus, f"count={gpus}")
        # the notebook's pod, then TensorBoard's own (its Deployment's: <name>-<hash>-<suffix>)
        assert s["containers"][0] == f"tfbox-doc-{seat}-notebook-0" and len(s["containers"]) == 2
        assert s["containers"][1].startswith(f"tfbox-doc-{seat}-tensorboard-")
        assert s["urls"]["notebook"] == f"http://tfbox-doc-{seat}-notebook.{ns}.svc.cluster.local:8888/"
        assert s["urls"]["tensorboard"] == f"http://tfbox-doc-{seat}-tensorboard.{ns}.svc.cluster.local:6006/"
        port = 8811 if seat == "ana" else 8812
        assert f"kubectl port-forward -n {ns} svc/tfbox-doc-{seat}-notebook {port}:8888" in s["reach"]
        nodes[seat] = s["node"]
    assert set(nodes.values()) == {"gpu-1", "gpu-2"}
    res = doctor(project)
    assert res.returncode == 0, res.output
    assert "all labs healthy" in res.stdout
    assert "tfbox-doc-bo-tensorboard-" in res.stdout  # a row for each seat's TensorBoard pod

    # bo's node loses a GPU (what the device plugin reports for an unhealthy one), and bo's pod must be placed again
    lost = nodes["bo"]
    cluster.kubectl("patch", "node", lost, "--subresource=status", "--type=merge",
                    "-p", '{"status": {"allocatable": {"nvidia.com/gpu": "1"}}}')
    cluster.kubectl("delete", "pod", "-n", ns, "tfbox-doc-bo-notebook-0", "--wait=true")
    deadline = time.monotonic() + 60
    while True:
        events = cluster.get("events", "-n", ns, "--field-selector", "involvedObject.name=tfbox-doc-bo-notebook-0")["items"]
        if any("Insufficient nvidia.com/gpu" in e.get("message", "") for e in events):
            break
        assert time.monotonic() < deadline, events
        time.sleep(1)

    res = doctor(project)
    assert res.returncode == 1, res.output
    out = " ".join(res.stdout.split())
    assert ("tfbox-doc-bo-notebook-0: Pending: seat bo asks 2 nvidia.com/gpu; nodes matching gpu=h100 have 2 free, "
            f"at most 1 on one node (a pod runs on one node); node {lost} lost 1 of its 2") in out, res.stdout
    assert "fix: lower tfbox:seats[1].gpus" in out
    assert f"{lost}: node {lost} (a GPU node this stack's seats land on) offers 1 of its 2 nvidia.com/gpu: 1 lost" in out
    assert f"kubectl drain {lost} --ignore-daemonsets" in out
    assert "tfbox-doc-ana-notebook-0" in out and "Running, ready on" in out  # the other seat is fine and says so

    code, board = status_json(project)
    assert code == 1 and board["exit_status"] == 1
    seats = seats_of(board)
    assert (seats["bo"]["phase"], seats["bo"]["ready"], seats["bo"]["ok"], seats["bo"]["gpus_allocated"]) == ("Pending", False, False, 0)
    assert seats["ana"]["ok"] and seats["ana"]["phase"] == "Running"
    assert any(f"node {lost}" in p for p in board["machines"][0]["problems"])

    res = doctor(project, "--repair")
    assert res.returncode == 1
    assert "repair: stack doc runs on Kubernetes, where `make repair` replaces nothing" in res.stdout
    assert cluster.get("pod", "-n", ns, "tfbox-doc-ana-notebook-0")["status"]["phase"] == "Running"  # nothing touched
