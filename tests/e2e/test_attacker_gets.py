"""Issue 22, part A, on a real daemon: what a notebook user or a second stack no longer gets.

One daemon whose default runtime is the stand-in `nvidia` (scripts/dockerd.sh with
TFBOX_DOCKERD_DEFAULT_RUNTIME=nvidia, as `nvidia-ctk runtime configure --set-as-default` leaves a GPU
host) and the notebook image as NVIDIA's CUDA images state it (ENV NVIDIA_VISIBLE_DEVICES=all). There:
1. a plain `docker run` of that image gets every GPU (the stand-in hook puts `nvidia-smi` in and lists
   them): what a GPU-less lab got before; tfbox's GPU-less lab gets none, in the notebook and in
   TensorBoard (`NVIDIA_VISIBLE_DEVICES=void`, the hook's log says so), and a second `up` changes nothing;
2. the same lab: password login through the published 127.0.0.1 port (docker-proxy: Jupyter sees the bridge
   gateway, but checks the Host header), while a DNS-rebinding request (Host: another name) gets 403
   (`allow_remote_access` is off on loopback); the notebook's and TensorBoard's pids limits in
   `docker inspect` and the notebook's cgroup;
3. a stack of another project that names the lab's notebooks volume stops before anything changes on
   the host, naming the volume's stack (its tfbox.stack label); a stack file in the same project that
   names it stops at preview (the cross-stack check).
"""

from __future__ import annotations

import http.client
import os
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.e2e.conftest import start_daemon, stop_daemon
from tests.e2e.harness import Docker, Jupyter, Project, free_port, wait_http

DAEMON = "e2e-nvdefault"
RUN = Path(os.environ.get("TFBOX_RUN", "/tmp/tfbox-run"))


@pytest.fixture(scope="module")
def docker_nv() -> Iterator[Docker]:
    docker = start_daemon(DAEMON, env={"TFBOX_DOCKERD_DEFAULT_RUNTIME": "nvidia"})
    yield docker
    stop_daemon(DAEMON)


@pytest.fixture(scope="module")
def cuda_style_image(docker_nv: Docker, gpu_image: str, registry: str) -> str:
    """The notebook image as NVIDIA's CUDA images (and so TensorFlow's GPU images) state their GPUs, pushed to
    the local registry under a tag of its own and removed from the daemon again, so the stack pulls it."""
    ref = f"{registry}/tensorflow/tensorflow:cudaenv-gpu-jupyter"
    docker_nv("pull", gpu_image, timeout=900)
    cid = docker_nv("create", "--runtime", "runc", gpu_image).stdout.strip()
    try:
        docker_nv("commit", "--change", "ENV NVIDIA_VISIBLE_DEVICES=all", "--change",
                  "ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility", cid, ref)
    finally:
        docker_nv("rm", cid)
    docker_nv("push", ref, timeout=900)
    docker_nv("rmi", ref)
    return ref


@pytest.fixture(scope="module")
def lab(project: Project, docker_nv: Docker, cuda_style_image: str, password: str) -> Iterator[SimpleNamespace]:
    nb_port, tb_port = free_port(), free_port()
    stack = project.stack("nvdefault", {
        "docker:host": docker_nv.host, "tfbox:image": cuda_style_image,
        "tfbox:notebookPort": nb_port, "tfbox:tensorboardPort": tb_port,
    }, password)
    try:
        stack.up()
        yield SimpleNamespace(stack=stack, docker=docker_nv, nb_port=nb_port, url=f"http://127.0.0.1:{nb_port}",
                              tb=f"http://127.0.0.1:{tb_port}")
    finally:
        stack.destroy(check=False)
        for vol in ("tfbox-nvdefault-notebooks", "tfbox-nvdefault-logs"):
            docker_nv("volume", "rm", vol, check=False)


def hook_line(container_id: str) -> str:
    """What the stand-in NVIDIA hook logged when it prepared this container."""
    log = (RUN / DAEMON / "nvidia.log").read_text()
    lines = [line for line in log.splitlines() if " hook " in line and f"id={container_id}" in line]
    assert lines, f"the stand-in hook never saw {container_id} (is the default runtime nvidia?)"
    return lines[-1]


def test_1_a_gpu_less_lab_gets_no_gpu_under_a_default_nvidia_runtime(lab: SimpleNamespace, cuda_style_image: str) -> None:
    # what a container of that image gets on this daemon unless it says otherwise: every GPU
    plain = lab.docker("run", "--rm", cuda_style_image, "nvidia-smi", "-L", check=False, timeout=300)
    assert plain.returncode == 0 and "GPU 0:" in plain.stdout, (plain.stdout, plain.stderr)
    for role in ("notebook", "tensorboard"):
        name = f"tfbox-nvdefault-{role}"
        info = lab.docker.inspect(name)
        assert info is not None and info["HostConfig"]["Runtime"] == "nvidia", "the daemon's default runtime ran it"
        assert "NVIDIA_VISIBLE_DEVICES=void" in info["Config"]["Env"], role
        line = hook_line(info["Id"])
        assert "NVIDIA_VISIBLE_DEVICES=void" in line and "nvidia-smi=no" in line, line
        smi = lab.docker("exec", name, "nvidia-smi", "-L", check=False)
        assert smi.returncode != 0 and "GPU" not in smi.stdout, (role, smi.stdout)
    lab.stack.preview("--expect-no-changes")


def test_2_loopback_login_works_and_a_rebinding_host_header_is_refused(lab: SimpleNamespace, password: str) -> None:
    jupyter = Jupyter(lab.url)
    assert jupyter.login(password), "password login through the published 127.0.0.1 port"
    assert jupyter.request("GET", "/api/contents")[0] == 200
    for host, expected in ((f"127.0.0.1:{lab.nb_port}", 200), (f"localhost:{lab.nb_port}", 200),
                           (f"attacker.example:{lab.nb_port}", 403), (f"10.0.0.5:{lab.nb_port}", 403)):
        conn = http.client.HTTPConnection("127.0.0.1", lab.nb_port, timeout=10)
        conn.request("GET", "/login", headers={"Host": host})
        status = conn.getresponse().status
        conn.close()
        assert status == expected, (host, status)
    # the pids limits, as Docker and the notebook's cgroup have them
    assert lab.docker.inspect("tfbox-nvdefault-notebook")["HostConfig"]["PidsLimit"] == 4096
    assert lab.docker.inspect("tfbox-nvdefault-tensorboard")["HostConfig"]["PidsLimit"] == 1024
    cgroup = lab.docker("exec", "tfbox-nvdefault-notebook", "sh", "-c",
                        "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max").stdout.strip()
    assert cgroup == "4096"
    wait_http(lab.tb)


def test_3_another_stacks_volume_is_refused(lab: SimpleNamespace, project: Project, tmp_path_factory: pytest.TempPathFactory,
                                            password: str) -> None:
    jupyter = Jupyter(lab.url)
    assert jupyter.login(password)
    jupyter.save_notebook("secret.ipynb", "print('the lab owner wrote this')")
    before = lab.docker.snapshot()
    # another project (its stack file knows nothing of this one): only the host's labels tell
    other = Project(tmp_path_factory.mktemp("other-project"), os.environ.get("TFBOX_TOOLCHAIN_BIN", ""))
    thief = other.stack("thief", {
        "docker:host": lab.docker.host, "tfbox:image": "unused:1", "tfbox:stackKind": "local",
        "tfbox:notebooksVolume": "tfbox-nvdefault-notebooks",
        "tfbox:notebookPort": free_port(), "tfbox:tensorboardPort": free_port(),
    }, password)
    up = thief.up(check=False)
    assert up.returncode != 0
    assert re.search(r"tfbox:notebooksVolume: the volume tfbox-nvdefault-notebooks on \S+ belongs to stack 'nvdefault' "
                     r"\(its tfbox.stack label\).*Fix:", up.output), up.output[-3000:]
    assert lab.docker.snapshot() == before, "nothing changed on the host"
    assert lab.docker.inspect("tfbox-thief-notebook") is None
    # the same stack file beside the lab's, in its project: refused at preview by the cross-stack check
    neighbour = project.stack("neighbour", {
        "docker:host": lab.docker.host, "tfbox:image": "unused:1",
        "tfbox:notebooksVolume": "tfbox-nvdefault-notebooks",
        "tfbox:notebookPort": free_port(), "tfbox:tensorboardPort": free_port(),
    }, password)
    preview = neighbour.preview(check=False)
    assert preview.returncode != 0
    assert "tfbox:notebooksVolume: the volume tfbox-nvdefault-notebooks on" in preview.output
    assert "is stack 'nvdefault''s (tfbox:notebooksVolume)" in preview.output, preview.output[-3000:]
    assert lab.docker.snapshot() == before
    assert jupyter.read_notebook_source("secret.ipynb") == "print('the lab owner wrote this')"
    (project.dir / "Pulumi.neighbour.yaml").unlink()  # the lab's own previews must not see it
