"""`tfbox:backend: kubernetes` with a notebook that really runs: tfbox's own `pulumi up` on the test kit's cluster
with a real node (containerd, runc and the built kubelet on this host: scripts/k8s.sh node), pulling the local
test notebook image from the local registry.

What a user would check: `up` returns with the notebook's pod and TensorBoard's own pod ready on the node; the
seat's Service answers through the real login (reached from the host with `kubectl port-forward`, as a user
does from a laptop), refuses a wrong password, and runs code in a kernel; TensorBoard answers behind that login
at `/tensorboard/` (the notebook's proxy reaches TensorBoard's pod by its headless Service's DNS name, through
the kit's cluster DNS); turning TensorBoard off and on (`tfbox:tensorboardMode`) removes and recreates its pod
while the notebook's pod keeps its uid and restarts and a running kernel keeps its variables; a second `up`
changes nothing; a saved notebook survives a pod replacement (a changed setting) and a `destroy` + `up` (the
claims are kept); the password is in no process's command line on the node. And the kit: stopping the cluster
with a pod running leaves no process, network namespace or bridge behind.
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

from tests.e2e.harness import Jupyter, Project, Stack, change_summary
from tests.e2e.k8s import Cluster, processes_under, provider_project, start_real_node_cluster, stop_cluster

NAME = "k8sreal"
NODE = "real-1"
NS = "tfbox-solo"
POD = "tfbox-solo-notebook-0"
SERVICE = "svc/tfbox-solo-notebook"
TENSORBOARD = "tfbox-solo-tensorboard"  # its Deployment and headless Service


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


def assert_ready_on_the_node(p: dict[str, Any], container: str) -> None:
    assert p["spec"]["nodeName"] == NODE
    assert p["status"]["phase"] == "Running" and p["metadata"].get("deletionTimestamp") is None
    (state,) = p["status"]["containerStatuses"]
    assert state["name"] == container and state["ready"] and "running" in state["state"], state


def tensorboard_pods(cluster: Cluster) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = cluster.get("pods", "-n", NS, "-l", "tfbox.role=tensorboard")["items"]
    return found


def assert_running_on_the_node(cluster: Cluster, tensorboard: bool = True) -> str:
    """The notebook's pod and TensorBoard's own pod run and are ready (their probes are Jupyter's and
    TensorBoard's own answers) on the real node; returns the notebook pod's uid."""
    p = pod(cluster)
    assert_ready_on_the_node(p, "notebook")
    boards = tensorboard_pods(cluster)
    if tensorboard:
        (tb,) = boards
        assert tb["metadata"]["name"].startswith(TENSORBOARD + "-")
        assert_ready_on_the_node(tb, "tensorboard")
    else:
        assert boards == []
    return str(p["metadata"]["uid"])


def notebook_marks(cluster: Cluster) -> tuple[str, int]:
    """What a TensorBoard change must keep: the notebook pod's uid and its container's restarts."""
    p = pod(cluster)
    return str(p["metadata"]["uid"]), sum(c["restartCount"] for c in p["status"]["containerStatuses"])


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
        # TensorBoard's own pod behind the notebook's login: the proxy in the notebook's pod reaches it pod to pod
        # by its headless Service's DNS name (http://tfbox-solo-tensorboard.tfbox-solo.svc:6006)
        assert_tensorboard_answers(jupyter, port)
    with cluster.port_forward(NS, SERVICE, 8888) as port:
        anonymous = Jupyter(f"http://127.0.0.1:{port}/")
        status, _ = anonymous.request("GET", "/tensorboard/data/logdir")
        assert status in (302, 403), status  # not without the login
    assert processes_naming(password) == []

    # a TensorBoard-only change: its pod goes and comes back; the notebook's pod, and a running kernel, stay
    kept = notebook_marks(cluster)
    value = secrets.token_hex(8)
    with cluster.port_forward(NS, SERVICE, 8888) as port:
        jupyter = session(cluster, password, port)
        kernel = jupyter.execute(f"x = '{value}'; print(x)", timeout=180, keep=True)
        assert kernel["stdout"].strip() == value, kernel
    for mode, present in (("off", False), ("sidecar", True)):
        st.set("tensorboardMode", mode)
        t0 = time.monotonic()
        res = st.up(timeout=600)
        print(f"MEASURED: up with tfbox:tensorboardMode {mode}: {time.monotonic() - t0:.1f} s")
        changed = change_summary(res.output)
        assert changed == ({"deleted": 3} if not present else {"created": 3}), res.output[-3000:]  # Deployment, Service, policy
        assert assert_running_on_the_node(cluster, tensorboard=present) == kept[0]  # ready when up returned
        assert notebook_marks(cluster) == kept, "the notebook's pod was replaced or restarted"
        assert (cluster.kubectl("get", "deployment", "-n", NS, TENSORBOARD, check=False).returncode == 0) is present
        with cluster.port_forward(NS, SERVICE, 8888) as port:
            jupyter = session(cluster, password, port)
            status, running = jupyter.request("GET", "/api/kernels")
            assert status == 200 and kernel["kernel"] in [k["id"] for k in running], running
            again = jupyter.execute("print(x)", timeout=180, kernel_id=kernel["kernel"])
            assert again["stdout"].strip() == value and not again["error"], again
            if present:
                assert_tensorboard_answers(jupyter, port)
            else:  # the route stays (the notebook's config is unchanged); with no TensorBoard behind it: 502
                with pytest.raises(urllib.error.HTTPError) as info:
                    jupyter.opener.open(f"http://127.0.0.1:{port}/tensorboard/data/logdir", timeout=30)
                assert info.value.code == 502
    # a second up changes nothing
    res = st.up(timeout=600)
    assert change_summary(res.output) == {}, res.output[-3000:]
    assert notebook_marks(cluster) == kept
    st.preview("--expect-no-changes")

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


def assert_tensorboard_answers(jupyter: Jupyter, port: int) -> None:
    """TensorBoard's own answer, through the notebook's `/tensorboard/` (retried briefly: its pod is ready when `up`
    returns; its name resolves once the DNS server has read the Service's endpoints, and a "no such name" it
    answered while TensorBoard was off may be cached for a few seconds)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with jupyter.opener.open(f"http://127.0.0.1:{port}/tensorboard/data/logdir", timeout=30) as r:
                assert r.status == 200 and b"logdir" in r.read()
                return
        except urllib.error.HTTPError as e:
            if e.code != 502 or time.monotonic() > deadline:
                raise
            time.sleep(1)


def pod_network_namespaces(cluster: Cluster) -> set[str]:
    """The CNI network namespaces (/var/run/netns/cni-*) of the node's running sandboxes, from containerd."""
    ctr = ["ctr", "--address", str(cluster.run_dir / "containerd" / "containerd.sock"), "-n", "k8s.io"]
    ids = subprocess.run([*ctr, "containers", "ls", "-q"], capture_output=True, text=True, check=True).stdout.split()
    found: set[str] = set()
    for cid in ids:
        info = subprocess.run([*ctr, "containers", "info", cid], capture_output=True, text=True, check=False).stdout
        found |= set(re.findall(r"/var/run/netns/cni-[0-9a-f-]+", info))
    return found
