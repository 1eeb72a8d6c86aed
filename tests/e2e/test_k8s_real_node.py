"""`tfbox:backend: kubernetes` with a notebook that really runs: tfbox's own `pulumi up` on the test kit's cluster
with a real node (containerd, runc and the built kubelet on this host: scripts/k8s.sh node), pulling the local
test notebook image from the local registry.

What a user would check: `up` returns with the notebook ready on the node; the seat's Service answers through
the real login (reached from the host with `kubectl port-forward`, as a user does from a laptop), refuses a
wrong password, and runs code in a kernel; TensorBoard's sidecar answers behind that login; a saved notebook
survives a pod replacement (a changed setting) and a `destroy` + `up` (the claims are kept); the password is
in no process's command line on the node. And the kit: stopping the cluster with a pod running leaves no
process, network namespace or bridge behind.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Jupyter, Project, Stack
from tests.e2e.k8s import Cluster, processes_under, provider_project, start_real_node_cluster, stop_cluster

NAME = "k8sreal"
NODE = "real-1"
NS = "tfbox-solo"
POD = "tfbox-solo-notebook-0"
SERVICE = "svc/tfbox-solo-notebook"


@pytest.fixture(scope="module")
def cluster(k8s_kit: Path, cpu_image: str) -> Iterator[Cluster]:
    # the image is pulled before the first `up`, so `up`'s timeout measures the notebook, not the pull
    c = start_real_node_cluster(NAME, NODE, image=cpu_image, volumes=2, volume_size="2Gi")
    try:
        yield c
    finally:
        stop_cluster(NAME)


@pytest.fixture(scope="module")
def project(cluster: Cluster, k8s_kit: Path, tmp_path_factory: pytest.TempPathFactory) -> Project:
    return provider_project(tmp_path_factory.mktemp("k8sreal"), k8s_kit)


def pod(cluster: Cluster) -> dict[str, Any]:
    found: dict[str, Any] = cluster.get("pod", "-n", NS, POD)
    return found


def assert_running_on_the_node(cluster: Cluster) -> str:
    """The notebook and TensorBoard containers run and are ready (their probes are Jupyter's and TensorBoard's
    own answers) on the real node; returns the pod's uid."""
    p = pod(cluster)
    assert p["spec"]["nodeName"] == NODE
    assert p["status"]["phase"] == "Running"
    states = {c["name"]: c for c in p["status"]["containerStatuses"]}
    assert set(states) == {"notebook", "tensorboard"}
    for name, state in states.items():
        assert state["ready"] and "running" in state["state"], (name, state)
    return str(p["metadata"]["uid"])


def pod_or_none(cluster: Cluster) -> dict[str, Any] | None:
    done = cluster.kubectl("get", "pod", "-n", NS, POD, "-o", "json", check=False)
    return json.loads(done.stdout) if done.returncode == 0 else None


def session(cluster: Cluster, password: str, port: int) -> Jupyter:
    jupyter = Jupyter(f"http://127.0.0.1:{port}/")
    deadline = time.monotonic() + 60  # the forward is up before its first connection reaches the pod
    while True:
        try:
            assert jupyter.login(password), "the right password was refused"
            return jupyter
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def processes_naming(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if text in cmd:
                found.append(proc.name)
    return found


def test_a_notebook_on_a_real_node_answers_through_its_login_and_keeps_its_notebooks(
        project: Project, cluster: Cluster, cpu_image: str, password: str) -> None:
    st: Stack = project.stack("solo", {
        "tfbox:backend": "kubernetes", "kubernetes:kubeconfig": str(cluster.kubeconfig), "tfbox:image": cpu_image,
        "tfbox:tensorboardProxy": True, "tfbox:notebooksSize": "1g", "tfbox:logsSize": "1g",
    }, password)
    st.up(timeout=600)
    first = assert_running_on_the_node(cluster)
    claims = {c["metadata"]["name"]: c["spec"]["volumeName"] for c in cluster.get("pvc", "-n", NS)["items"]}
    assert set(claims) == {"tfbox-solo-notebooks", "tfbox-solo-logs"}

    marker = f"print('kept {secrets.token_hex(4)}')"
    with cluster.port_forward(NS, SERVICE, 8888) as port:
        assert not Jupyter(f"http://127.0.0.1:{port}/").login(password + "x"), "a wrong password was accepted"
        jupyter = session(cluster, password, port)
        status, _ = jupyter.request("GET", "/api/contents/")
        assert status == 200
        jupyter.save_notebook("kept.ipynb", marker)
        ran = jupyter.execute("import os; print(os.environ['TF_CPP_MIN_LOG_LEVEL'], os.getcwd())", timeout=180)
        assert ran["stdout"].split() == ["2", "/tf"], ran
        # TensorBoard (the sidecar) behind the notebook's login
        with jupyter.opener.open(f"http://127.0.0.1:{port}/tensorboard/data/logdir", timeout=30) as r:
            assert r.status == 200 and b"logdir" in r.read()
    with cluster.port_forward(NS, SERVICE, 8888) as port:
        anonymous = Jupyter(f"http://127.0.0.1:{port}/")
        status, _ = anonymous.request("GET", "/tensorboard/data/logdir")
        assert status in (302, 403), status  # not without the login
    assert processes_naming(password) == []

    # a changed setting replaces the pod; the notebook stays
    st.set("tfLogLevel", "0")
    st.up(timeout=600)
    # up returned once the new pod was ready (the StatefulSet is replaced, not rolled: components/kubernetes/lab.py)
    p = pod_or_none(cluster)
    assert p is not None and p["metadata"]["uid"] != first, "up returned before the pod was replaced"
    assert_running_on_the_node(cluster)
    with cluster.port_forward(NS, SERVICE, 8888) as port:
        jupyter = session(cluster, password, port)
        assert jupyter.read_notebook_source("kept.ipynb") == marker
        ran = jupyter.execute("import os; print(os.environ['TF_CPP_MIN_LOG_LEVEL'])", timeout=180)
        assert ran["stdout"].strip() == "0", ran

    # destroy keeps the claims (keepVolumes); the next up mounts them again
    st.destroy()
    left = {c["metadata"]["name"]: c["spec"]["volumeName"] for c in cluster.get("pvc", "-n", NS)["items"]}
    assert left == claims
    assert cluster.get("pods", "-n", NS)["items"] == []
    st.up(timeout=600)
    assert_running_on_the_node(cluster)
    with cluster.port_forward(NS, SERVICE, 8888) as port:
        jupyter = session(cluster, password, port)
        assert jupyter.read_notebook_source("kept.ipynb") == marker

    # stopping the cluster with the pod still running leaves nothing of it on the host
    netns = pod_network_namespaces(cluster)
    assert netns, "the running pod has no network namespace"
    bridge = (cluster.run_dir / "bridge").read_text().strip()
    stop_cluster(NAME, purge=False)
    assert processes_under(cluster.run_dir) == []
    assert [n for n in netns if Path(n).exists()] == []
    assert subprocess.run(["ip", "link", "show", bridge], capture_output=True, check=False).returncode != 0


def pod_network_namespaces(cluster: Cluster) -> set[str]:
    """The CNI network namespaces (/var/run/netns/cni-*) of the node's running sandboxes, from containerd."""
    ctr = ["ctr", "--address", str(cluster.run_dir / "containerd" / "containerd.sock"), "-n", "k8s.io"]
    ids = subprocess.run([*ctr, "containers", "ls", "-q"], capture_output=True, text=True, check=True).stdout.split()
    found: set[str] = set()
    for cid in ids:
        info = subprocess.run([*ctr, "containers", "info", cid], capture_output=True, text=True, check=False).stdout
        found |= set(re.findall(r"/var/run/netns/cni-[0-9a-f-]+", info))
    return found
