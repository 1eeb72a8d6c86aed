"""GPUs on the test kit's real node through the stand-in NVIDIA device plugin, and tfbox:gpuCheck on Kubernetes.

The kubelet's own device manager is fed by the kit's stand-in plugin (toolchain/gpu-plugin, scripts/k8s.sh gpus),
as the Docker tests use the real dockerd with stand-in NVIDIA parts: no real GPU, driver, NVML or CUDA.
What a user would check: the node shows `nvidia.com/gpu: 2`; tfbox's own `pulumi up` of a seat with
`gpus: count=1` and `gpuCheck: true` comes up, its gpu-check init container passed, and `nvidia-smi -L` in the
notebook lists exactly its one GPU (the one the check saw); a GPU turning unhealthy drops the node's allocatable
and `make doctor` names the node's lost GPU and the seat on it; a node that hands out no nvidia-smi makes the
check fail, and doctor quotes the check's words with the fix. `stop` leaves no process of the kit (plugin included).
The notebook image is the cached CPU test image under its `-gpu-` tag (tfbox refuses a CPU-only tag with GPUs).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Project, Result
from tests.e2e.k8s import Cluster, processes_under, provider_project, start_real_node_cluster, stop_cluster

NAME = "k8sgpu"
NODE = "gpu-real"
NS = "tfbox-gpu"
POD = "tfbox-gpu-notebook-0"
UUID_RE = r"GPU-b780f725-fe96-b196-3303-e4a68e6a68[0-9a-f]{2}"


@pytest.fixture(scope="module")
def cluster(k8s_kit: Path, gpu_image: str) -> Iterator[Cluster]:
    started = time.monotonic()
    c = start_real_node_cluster(NAME, NODE, image=gpu_image, volumes=2, volume_size="2Gi")
    try:
        c.gpus(2)
        print(f"cluster, real node, image and 2 stand-in GPUs: {time.monotonic() - started:.1f} s")
        yield c
    finally:
        stop_cluster(NAME)


@pytest.fixture(scope="module")
def project(cluster: Cluster, k8s_kit: Path, tmp_path_factory: pytest.TempPathFactory) -> Project:
    return provider_project(tmp_path_factory.mktemp("k8sgpu"), k8s_kit)


def node_gpus(cluster: Cluster) -> tuple[str, str]:
    status = cluster.get("node", NODE)["status"]
    return status["capacity"].get("nvidia.com/gpu", ""), status["allocatable"].get("nvidia.com/gpu", "")


def pod(cluster: Cluster) -> dict[str, Any]:
    found: dict[str, Any] = cluster.get("pod", "-n", NS, POD)
    return found


def doctor(project: Project) -> Result:
    started = time.monotonic()
    res = project.run(".venv/bin/python", "scripts/doctor.py", "--stack", "gpu", check=False, timeout=120)
    print(f"doctor: {time.monotonic() - started:.1f} s, exit {res.returncode}\n{res.stdout}")
    return res


def test_a_gpu_seat_with_its_check_runs_on_the_real_node_and_doctor_names_lost_gpus_and_a_failed_check(
        project: Project, cluster: Cluster, gpu_image: str, password: str) -> None:
    # (a) the kubelet's device manager advertises what the plugin registered
    assert node_gpus(cluster) == ("2", "2")

    # (b) tfbox's own up: the check passes, the notebook holds exactly the GPU the check saw
    st = project.stack("gpu", {
        "tfbox:backend": "kubernetes", "kubernetes:kubeconfig": str(cluster.kubeconfig), "tfbox:image": gpu_image,
        "tfbox:gpus": "count=1", "tfbox:gpuCheck": True, "tfbox:notebooksSize": "1g", "tfbox:logsSize": "1g",
    }, password)
    started = time.monotonic()
    st.up(timeout=600)
    print(f"up with the GPU check: {time.monotonic() - started:.1f} s")
    p = pod(cluster)
    assert p["spec"]["nodeName"] == NODE and p["status"]["phase"] == "Running"
    [check] = p["status"]["initContainerStatuses"]
    done = check["state"]["terminated"]
    assert (check["name"], done["exitCode"]) == ("gpu-check", 0), check
    assert re.fullmatch(rf"tfbox gpu-check passed: GPU 0: NVIDIA H200 \(UUID: ({UUID_RE})\)\s*", done["message"]), done
    seen = re.findall(UUID_RE, done["message"])
    listed = cluster.kubectl("exec", "-n", NS, POD, "-c", "notebook", "--", "nvidia-smi", "-L").stdout
    assert listed.splitlines() == [f"GPU 0: NVIDIA H200 (UUID: {seen[0]})"], listed
    res = doctor(project)
    assert res.returncode == 0 and "all labs healthy" in res.stdout, res.output

    # (c) the notebook's GPU turns unhealthy: allocatable drops, doctor names the node and the seat on it
    cluster.gpus(2, unhealthy=(seen[0],))
    assert node_gpus(cluster) == ("2", "1")
    res = doctor(project)
    out = " ".join(res.stdout.split())
    assert res.returncode == 1, res.output
    assert f"node {NODE} (a GPU node this stack's seats land on) offers 1 of its 2 nvidia.com/gpu: 1 lost or unhealthy" in out, out
    assert f"kubectl drain {NODE}" in out

    # (d) a node whose toolkit hands out no nvidia-smi: the new pod's check fails and doctor quotes it
    cluster.gpus(2, no_smi=True)
    assert node_gpus(cluster) == ("2", "2")
    uid = p["metadata"]["uid"]
    cluster.kubectl("delete", "pod", "-n", NS, POD, "--wait=true")
    deadline = time.monotonic() + 90
    while True:
        now = cluster.kubectl("get", "pod", "-n", NS, POD, "-o", "json", check=False)
        statuses = pod(cluster)["status"].get("initContainerStatuses") or [] if now.returncode == 0 else []
        if any((s.get("state", {}).get("terminated") or s.get("lastState", {}).get("terminated") or {}).get("exitCode")
               for s in statuses) and pod(cluster)["metadata"]["uid"] != uid:
            break
        assert time.monotonic() < deadline, statuses
        time.sleep(1)
    res = doctor(project)
    out = " ".join(res.stdout.split())
    assert res.returncode == 1, res.output
    assert (f"the GPU check failed on node {NODE} (init container gpu-check" in out
            and "tfbox gpu-check failed: nvidia-smi -L exited 127 listing 0 GPUs (1 given)" in out), out
    assert "`nvidia-smi -L` must list the GPUs" in out
    assert re.search(r"Init:(Error|CrashLoopBackOff)", out), out

    # stopping the cluster stops the plugin too: nothing of the kit keeps running
    stop_cluster(NAME, purge=False)
    assert processes_under(cluster.run_dir) == []
