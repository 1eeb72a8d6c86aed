"""The kubernetes backend under Pulumi's mocks: the real `__main__.py` with `tfbox:backend: kubernetes`, a cluster
read from a fake `kubectl get nodes,pods` (the real engine and cluster: tests/e2e/test_k8s_backend.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.kubernetes.backend import KubernetesBackend
from tests.docker.program import ROOT, TEST_SALT, is_secret_value, run_program

SEATS = [{"name": "ana", "gpus": "count=1", "notebookPort": 8801, "tensorboardPort": 6601},
         {"name": "bo", "gpus": "count=2", "notebookPort": 8802, "tensorboardPort": 6602}]
PASSWORDS = {"ana": "ana-password-long", "bo": "bo-password-longer"}


def node(name: str, gpus: int, **labels: str) -> dict[str, Any]:
    return {"kind": "Node", "metadata": {"name": name, "labels": labels},
            "status": {"capacity": {"nvidia.com/gpu": str(gpus)}, "allocatable": {"nvidia.com/gpu": str(gpus)}}, "spec": {}}


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    nodes = [node("gpu-1", 2, gpu="h100"), node("gpu-2", 2, gpu="h100"), node("cpu-1", 0)]
    monkeypatch.setattr(KubernetesBackend, "read_cluster", lambda self: (nodes, [], None))
    yield nodes


def config(**extra: Any) -> dict[str, Any]:
    return {"tfbox:backend": "kubernetes", "tfbox:passwordSalt": TEST_SALT, "tfbox:image": "tensorflow/tensorflow:2.16.1-gpu-jupyter",
            "tfbox:seats": json.dumps(SEATS), "tfbox:passwords": json.dumps(PASSWORDS),
            "tfbox:gpuNodeSelector": json.dumps({"gpu": "h100"}), **extra}


def run(cfg: dict[str, Any]) -> Any:
    return run_program(cfg, stack="lab", secret_keys=("tfbox:passwords",))


def test_a_seats_stack_declares_the_cluster_objects(cluster: list[dict[str, Any]]) -> None:
    rec, out = run(config())
    types = {r.type for r in rec.resources}
    assert {"tfbox:index:ClusterLab", "tfbox:index:ClusterSeat", "kubernetes:core/v1:Namespace",
            "kubernetes:core/v1:PersistentVolumeClaim", "kubernetes:core/v1:Secret", "kubernetes:core/v1:ConfigMap",
            "kubernetes:apps/v1:StatefulSet", "kubernetes:core/v1:Service", "kubernetes:networking.k8s.io/v1:NetworkPolicy"} <= types
    assert not any(t.startswith("docker:") for t in types)

    sts = rec.one("kubernetes:apps/v1:StatefulSet", "bo-notebook").inputs
    assert sts["metadata"]["namespace"] == "tfbox-lab" and sts["metadata"]["name"] == "tfbox-lab-bo-notebook"
    pod = sts["spec"]["template"]
    notebook = pod["spec"]["containers"][0]
    assert notebook["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert pod["spec"]["nodeSelector"] == {"gpu": "h100"}
    assert len(pod["metadata"]["annotations"]["tfbox.config-checksum"]) == 64

    secret = rec.one("kubernetes:core/v1:Secret", "ana-secret").inputs
    assert is_secret_value(secret["stringData"])
    files = rec.one("kubernetes:core/v1:ConfigMap", "ana-files").inputs["data"]
    assert "etc.jupyter.jupyter_server_config.py" in files and "root..ipython.profile_default.startup.00-tfbox-capture.py" in files
    assert not any("argon2:" in text or "hashed_password" in text or PASSWORDS["ana"] in text for text in files.values())

    for name in ("ana-notebooks", "ana-logs", "bo-notebooks", "bo-logs"):
        assert rec.opts("kubernetes:core/v1:PersistentVolumeClaim", name).retain_on_delete
    assert rec.opts("kubernetes:core/v1:Namespace", "namespace").retain_on_delete  # its delete would take the claims

    assert out["seats"]["bo"]["notebookUrl"] == "http://tfbox-lab-bo-notebook.tfbox-lab.svc.cluster.local:8888/"
    # the notebook's pod, and the Deployment whose pod is the seat's TensorBoard (tensorboardMode sidecar, the default)
    assert out["containerNames"] == ["tfbox-lab-ana-notebook-0", "tfbox-lab-ana-tensorboard",
                                     "tfbox-lab-bo-notebook-0", "tfbox-lab-bo-tensorboard"]
    assert out["seats"]["bo"]["containerNames"] == ["tfbox-lab-bo-notebook-0", "tfbox-lab-bo-tensorboard"]
    assert out["seats"]["bo"]["tensorboardUrl"] == "http://tfbox-lab-bo-tensorboard.tfbox-lab.svc.cluster.local:6006/"
    assert "password" not in out

    tb = rec.one("kubernetes:apps/v1:Deployment", "bo-tensorboard").inputs
    assert tb["metadata"]["name"] == "tfbox-lab-bo-tensorboard" and tb["metadata"]["namespace"] == "tfbox-lab"
    assert [c["name"] for c in tb["spec"]["template"]["spec"]["containers"]] == ["tensorboard"]
    assert [c["name"] for c in pod["spec"]["containers"]] == ["notebook"]
    assert rec.parents["kubernetes:apps/v1:Deployment::bo-tensorboard"] == "bo"  # a child of the seat's ClusterSeat
    tb_svc = rec.one("kubernetes:core/v1:Service", "bo-tensorboard-service").inputs
    assert tb_svc["spec"]["clusterIP"] == "None" and tb_svc["metadata"]["name"] == "tfbox-lab-bo-tensorboard"
    tb_pol = rec.one("kubernetes:networking.k8s.io/v1:NetworkPolicy", "bo-tensorboard-network-policy").inputs
    assert tb_pol["spec"]["podSelector"]["matchLabels"]["tfbox.role"] == "tensorboard"


def test_a_changed_password_changes_the_checksum(cluster: list[dict[str, Any]]) -> None:
    def checksum(passwords: dict[str, str]) -> str:
        rec, _ = run(config(**{"tfbox:passwords": json.dumps(passwords)}))
        return str(rec.one("kubernetes:apps/v1:StatefulSet", "ana-notebook").inputs["spec"]["template"]["metadata"]
                   ["annotations"]["tfbox.config-checksum"])

    assert checksum(PASSWORDS) != checksum({**PASSWORDS, "ana": "another-long-password"})


def test_an_over_ask_stops_the_program_naming_the_seat(cluster: list[dict[str, Any]]) -> None:
    seats = [{**SEATS[0], "gpus": "count=3"}, SEATS[1]]
    with pytest.raises(pulumi.RunError) as info:
        run(config(**{"tfbox:seats": json.dumps(seats)}))
    assert "tfbox:seats[0].gpus: seat ana asks 3 GPUs; nodes matching gpu=h100 have 4 free, at most 2 on one node" in str(info.value)


def test_an_unreadable_cluster_stops_a_machine_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(KubernetesBackend, "read_cluster", lambda self: ([], [], "connection refused"))
    with pytest.raises(pulumi.RunError) as info:
        run(config())
    assert "could not read the cluster (connection refused)" in str(info.value)
    rec, _ = run(config(**{"tfbox:stackKind": "local"}))  # a local stack goes on, with a warning
    assert rec.by_type("kubernetes:apps/v1:StatefulSet")


def test_a_single_seat_stack_exports_urls_and_the_password(cluster: list[dict[str, Any]]) -> None:
    cfg = {"tfbox:backend": "kubernetes", "tfbox:passwordSalt": TEST_SALT, "tfbox:password": "one-long-password",
           "tfbox:tensorboardProxy": "true"}
    rec, out = run_program(cfg, stack="solo")
    assert out["notebookUrl"] == "http://tfbox-solo-notebook.tfbox-solo.svc.cluster.local:8888/"
    assert out["tensorboardProxyUrl"] == out["notebookUrl"] + "tensorboard/"
    files = rec.one("kubernetes:core/v1:ConfigMap", "files").inputs["data"]
    # TensorBoard's own pod, by its headless Service's name (the pod's DNS search path completes it)
    assert "'http://tfbox-solo-tensorboard.tfbox-solo.svc:6006'" in files["etc.jupyter.jupyter_server_config.py"]
    assert rec.one("kubernetes:core/v1:PersistentVolumeClaim", "notebooks").inputs["metadata"]["name"] == "tfbox-solo-notebooks"


def test_the_backend_module_does_not_load_the_kubernetes_sdk() -> None:
    """A Docker stack's program imports components.backends only; the SDK loads in declare, on a cluster stack."""
    code = "import sys, components.backends, components.kubernetes.backend; print('pulumi_kubernetes' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_kubectl_reads_the_providers_kubeconfig_and_context(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                            request: pytest.FixtureRequest) -> None:
    """The preflight reads the cluster the provider deploys to: kubernetes:kubeconfig (a path, or the file's
    content, written to a private file) and kubernetes:context; never an ambient KUBECONFIG when one is set."""
    import os
    import stat

    from pulumi.runtime import config as runtime_config

    content = "apiVersion: v1\nkind: Config\nclusters: []\n"
    before = dict(runtime_config.CONFIG.get())
    request.addfinalizer(lambda: runtime_config.set_all_config(before, []))
    runtime_config.set_all_config({"kubernetes:kubeconfig": content, "kubernetes:context": "lab"}, [])
    monkeypatch.setenv("KUBECONFIG", "/elsewhere")
    seen: list[list[str]] = []
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/kubectl")

    def fake_run(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        seen.append(argv)
        return subprocess.CompletedProcess(argv, 0, '{"items": []}', "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    b = KubernetesBackend()
    assert b.read_cluster() == ([], [], None)
    argv = seen[0]
    path = argv[argv.index("--kubeconfig") + 1]
    assert Path(path).read_text() == content and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert argv[argv.index("--context") + 1] == "lab"
    runtime_config.set_all_config({"kubernetes:kubeconfig": str(tmp_path / "lab.yaml")}, [])
    assert KubernetesBackend().kubeconfig_path() == str(tmp_path / "lab.yaml")


def test_a_seats_stack_has_a_gpu_ledger_by_seat(cluster: list[dict[str, Any]]) -> None:
    seats = [*SEATS, {"name": "cy", "notebookPort": 8803, "tensorboardPort": 6603}]  # no GPUs: not in the ledger
    _, out = run(config(**{"tfbox:seats": json.dumps(seats), "tfbox:passwords": json.dumps({**PASSWORDS, "cy": "cy-password-long"})}))
    assert out["gpuLedger"] == {"ana": {"gpus": 1, "resource": "nvidia.com/gpu", "nodeSelector": {"gpu": "h100"}},
                                "bo": {"gpus": 2, "resource": "nvidia.com/gpu", "nodeSelector": {"gpu": "h100"}}}


def test_a_tensorboard_change_leaves_the_notebooks_objects_as_they_are(cluster: list[dict[str, Any]]) -> None:
    """Turning TensorBoard off (the proxy key still true) deletes its Deployment, Service and policy and changes
    nothing of the notebook's: its StatefulSet, Service, policy and files are the same inputs, so its pod stays."""
    def notebook_objects(mode: str) -> tuple[dict[Any, Any], list[str]]:
        rec, _ = run(config(**{"tfbox:tensorboardMode": mode, "tfbox:tensorboardProxy": "true"}))
        mine = {(r.type, r.name): r.inputs for r in rec.resources  # by name: the mocks see them in any order
                if r.type.startswith("kubernetes:") and "tensorboard" not in r.name}
        return mine, [r.name for r in rec.resources if "tensorboard" in r.name]

    sidecar, sidecar_tb = notebook_objects("sidecar")
    off, off_tb = notebook_objects("off")
    assert sidecar == off and len(sidecar) == 15  # the namespace, and per seat 2 claims, files, StatefulSet, Service, policy
    assert sorted(sidecar_tb) == sorted(f"{s}-tensorboard{x}" for s in ("ana", "bo") for x in ("", "-service", "-network-policy"))
    assert off_tb == []


def test_exec_mode_runs_tensorboard_in_the_notebook_pod(cluster: list[dict[str, Any]]) -> None:
    rec, out = run(config(**{"tfbox:tensorboardMode": "exec", "tfbox:tensorboardProxy": "true"}))
    assert not rec.by_type("kubernetes:apps/v1:Deployment")
    files = rec.one("kubernetes:core/v1:ConfigMap", "ana-files").inputs["data"]
    assert "'http://127.0.0.1:6006'" in files["etc.jupyter.jupyter_server_config.py"]
    assert out["seats"]["ana"]["tensorboardUrl"] == "http://tfbox-lab-ana-notebook.tfbox-lab.svc.cluster.local:6006/"
    ports = rec.one("kubernetes:core/v1:Service", "ana-service").inputs["spec"]["ports"]
    assert [p["port"] for p in ports] == [8888, 6006]


def test_up_waits_on_the_statefulset_not_on_the_service(cluster: list[dict[str, Any]]) -> None:
    # the provider's Service wait added about 10 s to every `up` that created one (bench/k8s_apply.py); the
    # StatefulSet's wait (its pod Ready) covers the Service's only endpoints
    rec, _ = run(config())
    for seat in ("ana", "bo"):
        assert rec.one("kubernetes:core/v1:Service", f"{seat}-service").inputs["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}
        sts = rec.one("kubernetes:apps/v1:StatefulSet", f"{seat}-notebook").inputs["metadata"]
        assert "pulumi.com/skipAwait" not in sts.get("annotations", {})
        # TensorBoard's headless Service neither: its Deployment is awaited (its pod Ready), so `up` waits for both pods
        assert rec.one("kubernetes:core/v1:Service", f"{seat}-tensorboard-service").inputs["metadata"]["annotations"] == {
            "pulumi.com/skipAwait": "true"}
        dep = rec.one("kubernetes:apps/v1:Deployment", f"{seat}-tensorboard").inputs["metadata"]
        assert "pulumi.com/skipAwait" not in dep.get("annotations", {})


def test_a_sharing_seat_is_placed_on_time_sliced_nodes_and_refused_where_there_are_none(cluster: list[dict[str, Any]]) -> None:
    seats = [{**SEATS[0], "shareGpus": True}, SEATS[1]]
    with pytest.raises(pulumi.RunError) as info:
        run(config(**{"tfbox:seats": json.dumps(seats)}))
    assert ("tfbox:seats[0].shareGpus: seat ana sets shareGpus, but no node matching gpu=h100 advertises GPU time-slicing "
            "(label nvidia.com/gpu.sharing-strategy=time-slicing") in str(info.value)

    cluster.append(node("gpu-sliced", 4, gpu="h100", **{"nvidia.com/gpu.sharing-strategy": "time-slicing"}))
    rec, out = run(config(**{"tfbox:seats": json.dumps(seats)}))
    sliced = {"gpu": "h100", "nvidia.com/gpu.sharing-strategy": "time-slicing"}
    assert rec.one("kubernetes:apps/v1:StatefulSet", "ana-notebook").inputs["spec"]["template"]["spec"]["nodeSelector"] == sliced
    assert rec.one("kubernetes:apps/v1:StatefulSet", "bo-notebook").inputs["spec"]["template"]["spec"]["nodeSelector"] == {"gpu": "h100"}
    assert out["gpuLedger"]["ana"]["nodeSelector"] == sliced and out["gpuLedger"]["bo"]["nodeSelector"] == {"gpu": "h100"}
    bo = rec.one("kubernetes:apps/v1:StatefulSet", "bo-notebook").inputs["spec"]["template"]["spec"]["affinity"]
    assert bo["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchExpressions"] == [
        {"key": "nvidia.com/gpu.sharing-strategy", "operator": "NotIn", "values": ["time-slicing", "mps"]}]


def test_a_seat_of_its_own_gpus_is_refused_where_every_matching_node_shares_them(cluster: list[dict[str, Any]]) -> None:
    cluster[:] = [n for n in cluster if n.get("kind") != "Node"]  # only time-sliced GPU nodes left
    cluster.append(node("gpu-sliced", 8, gpu="h100", **{"nvidia.com/gpu.sharing-strategy": "time-slicing"}))
    with pytest.raises(pulumi.RunError) as info:
        run(config())
    assert "tfbox:seats[0].gpus: seat ana asks GPUs of its own, but every node matching gpu=h100 shares its GPUs" in str(info.value)
    assert "Fix: set tfbox:seats[0].shareGpus: true if sharing is fine" in str(info.value)
