"""`make doctor`, `make status` and `make repair` on a kubernetes stack, with the cluster's answer given as data.

KubernetesBackend.read_labs is replaced by a stand-in that records which cluster and namespace it was asked
for; everything else (the stack file, its plan, the reading, the report, the exit status) is the real code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from components.kubernetes.backend import KubernetesBackend
from ops import doctor as d
from ops import status as s
from tests.kubernetes.test_health import PENDING_AFFINITY, PENDING_GPU, bound, event, node, pod, service, statefulset, tb_pod, tensorboard

STACK = """config:
  tfbox:backend: kubernetes
  kubernetes:kubeconfig: /etc/lab/kubeconfig
  kubernetes:context: lab
  tfbox:gpuNodeSelector: {gpu: h100}
  tfbox:seats:
    - {name: ana, gpus: count=1, notebookPort: 8801, tensorboardPort: 6601}
    - {name: bo, gpus: count=2, notebookPort: 8802, tensorboardPort: 6602}
"""


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    (tmp_path / "Pulumi.yaml").write_text("name: tfbox\n")
    (tmp_path / "Pulumi.lab.yaml").write_text(STACK)
    return tmp_path


def answer(monkeypatch: pytest.MonkeyPatch, items: list[dict[str, Any]], error: str = "") -> list[tuple[str | None, str | None, str]]:
    asked: list[tuple[str | None, str | None, str]] = []

    def read_labs(self: KubernetesBackend, host: str, options: list[str]) -> tuple[list[dict[str, Any]], str]:
        asked.append((self.kubeconfig_path(), self.context, host))
        return ([] if error else items), error

    monkeypatch.setattr(KubernetesBackend, "read_labs", read_labs)
    return asked


HEALTHY = [node("gpu-1", 2), node("gpu-2", 2), pod("ana", "gpu-1", 1), pod("bo", "gpu-2", 2), service("ana"), service("bo"),
           statefulset("ana"), statefulset("bo"), *bound("ana", "bo"), *tensorboard("ana"), *tensorboard("bo", node_name="gpu-2")]
BO_TB = tb_pod("bo", None, phase="Pending", ready=False)  # waits for its notebook's node
PENDING = [node("gpu-1", 2), node("gpu-2", 2, allocatable=1), pod("ana", "gpu-1", 1),
           pod("bo", None, 2, phase="Pending", ready=False), event("Pod", "tfbox-lab-bo-notebook-0", PENDING_GPU),
           service("ana"), service("bo"), statefulset("ana"), statefulset("bo"), *bound("ana", "bo"), *tensorboard("ana"),
           *[x for x in tensorboard("bo") if x["kind"] != "Pod"], BO_TB, event("Pod", BO_TB["metadata"]["name"], PENDING_AFFINITY)]


def test_doctor_reads_the_stacks_own_cluster_and_namespace_and_says_healthy(root: Path, monkeypatch: pytest.MonkeyPatch,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    asked = answer(monkeypatch, HEALTHY)
    assert d.main(["--root", str(root), "--stack", "lab"]) == 0
    assert asked == [("/etc/lab/kubeconfig", "lab", "tfbox-lab")]
    out = capsys.readouterr().out
    assert re.search(r"\nlab +ana +tfbox-lab-ana-notebook-0 +Running, ready on gpu-1\n", out)
    assert re.search(r"\nlab +ana +tfbox-lab-ana-tensorboard-7c9f8-x2k4q +Running, ready on gpu-1\n", out)  # TensorBoard's own pod
    assert out.rstrip().endswith("all labs healthy")


def test_doctor_names_the_pending_seat_and_the_lost_gpu_and_exits_1(root: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    answer(monkeypatch, PENDING)
    assert d.main(["--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert re.search(r"\nlab +bo +tfbox-lab-bo-notebook-0 +Pending  <- PROBLEM\n", out)
    assert re.search(r"\nlab +bo +tfbox-lab-bo-tensorboard-7c9f8-x2k4q +Pending  <- PROBLEM\n", out)
    assert re.search(r"\nlab +- +gpu-2 +1/2 GPUs allocatable  <- PROBLEM\n", out)
    assert ("tfbox-lab-bo-tensorboard-7c9f8-x2k4q: Pending: it must run on its notebook pod's node (the logs claim is "
            "ReadWriteOnce)") in out
    assert ("tfbox-lab-bo-notebook-0: Pending: seat bo asks 2 nvidia.com/gpu; nodes matching gpu=h100 have 2 free, at most 1 "
            "on one node (a pod runs on one node); node gpu-2 lost 1 of its 2\n  fix: lower tfbox:seats[1].gpus") in out
    assert "gpu-2: node gpu-2 (a GPU node this stack's seats land on) offers 1 of its 2 nvidia.com/gpu: 1 lost or unhealthy" in out


def test_repair_on_a_cluster_stack_says_it_replaces_nothing(root: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    answer(monkeypatch, PENDING)
    assert d.main(["--root", str(root), "--repair"]) == 1
    out = capsys.readouterr().out
    assert "repair: stack lab runs on Kubernetes, where `make repair` replaces nothing" in out
    assert "`kubectl delete pod -n tfbox-lab POD`" in out
    assert "no container to replace" not in out  # no Docker stack here


def test_an_unreadable_cluster_is_an_error_naming_the_cluster_not_its_credentials(root: Path, monkeypatch: pytest.MonkeyPatch,
                                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    answer(monkeypatch, [], error="Unable to connect to the server: dial tcp 10.0.0.1:6443: connect: connection refused")
    assert d.main(["--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert ("doctor: stack lab: could not read the cluster (/etc/lab/kubeconfig, context lab, namespace tfbox-lab): Unable to "
            "connect to the server") in err
    assert s.main(["--root", str(root), "--json"]) == 1
    [machine] = json.loads(capsys.readouterr().out)["machines"]
    assert machine["backend"] == "kubernetes" and "connection refused" in machine["error"]


def test_an_encrypted_kubeconfig_is_not_guessed(root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (root / "Pulumi.lab.yaml").write_text(STACK.replace("/etc/lab/kubeconfig", "{secure: v1:abc}"))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    asked = answer(monkeypatch, HEALTHY)
    assert d.main(["--root", str(root)]) == 1
    assert asked == []
    assert "kubernetes:kubeconfig is a secret in Pulumi.lab.yaml, which is not decrypted here" in capsys.readouterr().err


def test_status_json_lists_the_seats_pods_nodes_and_gpus(root: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    answer(monkeypatch, PENDING)
    assert s.main(["--root", str(root), "--json"]) == 1
    board = json.loads(capsys.readouterr().out)
    [machine] = board["machines"]
    assert machine["backend"] == "kubernetes" and machine["host"] == "kubernetes: /etc/lab/kubeconfig, context lab, namespace tfbox-lab"
    seats = {x["seat"]: x for x in machine["seats"]}
    assert {k: seats["ana"][k] for k in ("phase", "ready", "node", "gpus_requested", "gpus_allocated", "ok", "containers")} == {
        "phase": "Running", "ready": True, "node": "gpu-1", "gpus_requested": "count=1", "gpus_allocated": 1, "ok": True,
        "containers": ["tfbox-lab-ana-notebook-0", "tfbox-lab-ana-tensorboard-7c9f8-x2k4q"]}
    assert (seats["bo"]["phase"], seats["bo"]["ready"], seats["bo"]["gpus_allocated"], seats["bo"]["ok"]) == ("Pending", False, 0, False)
    assert seats["bo"]["health"].startswith("tfbox-lab-bo-notebook-0: Pending: seat bo asks 2 nvidia.com/gpu;")
    assert "; tfbox-lab-bo-tensorboard-7c9f8-x2k4q: Pending: it must run on its notebook pod's node" in seats["bo"]["health"]
    assert seats["ana"]["urls"]["tensorboard"] == "http://tfbox-lab-ana-tensorboard.tfbox-lab.svc.cluster.local:6006/"
    assert seats["ana"]["urls"]["notebook"] == "http://tfbox-lab-ana-notebook.tfbox-lab.svc.cluster.local:8888/"
    assert machine["problems"] == ["node gpu-2 (a GPU node this stack's seats land on) offers 1 of its 2 nvidia.com/gpu: 1 lost or unhealthy"]
    assert board["exit_status"] == 1


def test_status_table_for_a_cluster_stack(root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    answer(monkeypatch, HEALTHY)
    assert s.main(["--root", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["stack", "seat", "health", "pod", "phase", "ready", "node", "GPUs", "asked/allocated", "URLs"]
    assert lines[2].split()[:9] == ["lab", "ana", "ok", "tfbox-lab-ana-notebook-0,", "tfbox-lab-ana-tensorboard-7c9f8-x2k4q",
                                    "Running", "yes", "gpu-1", "1/1"]
    assert lines[3].split()[:9] == ["lab", "bo", "ok", "tfbox-lab-bo-notebook-0,", "tfbox-lab-bo-tensorboard-7c9f8-x2k4q",
                                    "Running", "yes", "gpu-2", "2/2"]
    assert ("lab/ana: reach the notebook: `kubectl port-forward -n tfbox-lab svc/tfbox-lab-ana-notebook 8801:8888`, then "
            "http://127.0.0.1:8801/") in "\n".join(lines)  # the seat's notebookPort: two seats forward side by side


def test_a_stack_file_with_problems_is_read_by_the_seats_the_cluster_has(root: Path, monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    (root / "Pulumi.lab.yaml").write_text(STACK.replace("gpus: count=2", "gpus: '0,1'"))  # indices: refused on a cluster
    sts = {"kind": "StatefulSet", "metadata": {"name": "tfbox-lab-bo-notebook", "namespace": "tfbox-lab",
                                                "labels": {"tfbox.stack": "lab", "tfbox.seat": "bo"}},
           "spec": {"template": {"spec": {"nodeSelector": {"gpu": "h100"},
                                          "containers": [{"resources": {"limits": {"nvidia.com/gpu": "2"}}}]}}}}
    asked = answer(monkeypatch, [*[i for i in PENDING if i.get("kind") != "StatefulSet"], sts])
    assert d.main(["--root", str(root)]) == 1
    assert asked[0][2] == "tfbox-lab"
    out = capsys.readouterr().out
    assert "tfbox-lab-ana-notebook-0" not in out.split("\n\n")[0]  # only the seats the cluster has
    assert "Pending: seat bo asks 2 nvidia.com/gpu; nodes matching gpu=h100 have 2 free" in out
    # its TensorBoard, found by its Deployment's labels
    assert re.search(r"\nlab +bo +tfbox-lab-bo-tensorboard-7c9f8-x2k4q +Pending  <- PROBLEM\n", out)
