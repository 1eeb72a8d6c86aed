"""Scenario 3: a gpu-box-like stack gets the GPUs it names, in both of Docker's ways
(`--gpus` device requests and the recipe's `--runtime=nvidia` + `NVIDIA_VISIBLE_DEVICES`),
its GPU check's `nvidia-smi -L` becomes the `gpuCheck` output, and a failing check stops
`up` before the notebook is created or touched. Issue 9: the check also compares the image's CUDA
requirement with the driver's CUDA version (a second daemon with an older stand-in driver), the
notebook's health check notices lost GPUs, and idle kernels are culled.

The daemons have NVIDIA stand-ins (scripts/nvidia/): a host with 8 "H200"s whose nvidia-smi
lists what NVIDIA_VISIBLE_DEVICES selects. This proves the GPU wiring, not CUDA. The change of
the GPU list previewing as a replacement of the notebook alone is in test_nothing_lost.py."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from tests.e2e.conftest import start_daemon, stop_daemon
from tests.e2e.harness import Docker, Jupyter, Project, Result, free_port, gpu_ulimits_here, http_get

NB, TB, CHECK = "tfbox-gpus-notebook", "tfbox-gpus-tensorboard", "tfbox-gpus-gpu-check"
# what the stand-in nvidia-smi (like a real one) cannot know: a GPU that is not on the host
ABSENT_GPU = "GPU-00000000-0000-0000-0000-000000000000"
CELL = """
import os, subprocess
print("NVIDIA_VISIBLE_DEVICES=" + os.environ.get("NVIDIA_VISIBLE_DEVICES", "(unset)"))
print(subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout, end="")
"""  # `!nvidia-smi -L` in a notebook cell, spelled out
LISTED = re.compile(r"^GPU (\d+): NVIDIA H200 \(UUID: (GPU-[0-9a-f-]+)\)$")
LOST_MARKER = "/tmp/tfbox-nvidia-lost"  # makes the stand-in nvidia-smi fail like a container that lost its GPUs
CULL_AFTER = 10  # seconds: tfbox:cullIdleKernels of this lab (GPU stacks default to an hour)
REQUIRE = "cuda>=12.8"  # what an image built for CUDA 12.8 states; the default stand-in driver runs CUDA 13.0


@pytest.fixture(scope="module")
def lab(project: Project, docker_a: Docker, gpu_image: str, password: str) -> Iterator[SimpleNamespace]:
    """Like Pulumi.gpu-box.yaml: GPUs 0 and 1 by device request, the GPU check on, TensorBoard beside."""
    nb_port = free_port()
    stack = project.stack("gpus", {
        "docker:host": docker_a.host, "tfbox:image": gpu_image,
        "tfbox:gpus": "0,1", "tfbox:gpuMode": "device-requests", "tfbox:gpuCheck": True,
        "tfbox:notebookPort": nb_port, "tfbox:tensorboardPort": free_port(), "tfbox:tensorboardMode": "sidecar",
        "tfbox:cullIdleKernels": f"{CULL_AFTER}s", **gpu_ulimits_here(),
    }, password)
    first = stack.up()
    yield SimpleNamespace(stack=stack, first=first, docker=docker_a, password=password, nb=f"http://127.0.0.1:{nb_port}")
    stack.destroy(check=False)
    for vol in ("tfbox-gpus-notebooks", "tfbox-gpus-logs"):
        docker_a("volume", "rm", vol, check=False)


def listed_gpus(output: str) -> list[tuple[int, str]]:
    """`nvidia-smi -L` lines as (index, uuid); fails on any other line."""
    gpus = []
    for line in output.strip().splitlines():
        m = LISTED.match(line.strip())
        assert m, f"not an nvidia-smi -L line: {line!r} in {output!r}"
        gpus.append((int(m.group(1)), m.group(2)))
    return gpus


def notebook_sees(lab: SimpleNamespace, visible: str, count: int) -> dict[str, Any]:
    """What a user checks: the notebook runs healthy, answers, and a notebook cell sees the GPUs."""
    info: dict[str, Any] | None = lab.docker.inspect(NB)
    assert info is not None, "no notebook container"
    # `up` returned once it answered (components/ready.py); the 30 s health check may not have run yet
    assert info["State"]["Running"] and info["State"]["Health"]["Status"] in ("starting", "healthy")
    assert lab.docker.main_process_env(NB)["NVIDIA_VISIBLE_DEVICES"] == visible
    session = Jupyter(lab.nb)
    assert session.login(lab.password)
    cell = session.execute(CELL)
    assert not cell["error"], cell["error"]
    env_line, _, smi = cell["stdout"].partition("\n")
    assert env_line == f"NVIDIA_VISIBLE_DEVICES={visible}"
    gpus = listed_gpus(smi)
    assert [i for i, _ in gpus] == list(range(count)), gpus
    status, _ = http_get(lab.nb + "/api")
    assert status == 200
    labels = info["Config"]["Labels"]
    assert labels["tfbox.gpu-check"] == "passed" and labels["tfbox.stack"] == "gpus"
    return info


def gpu_check_ran(lab: SimpleNamespace, count: int, require: str = "") -> list[tuple[int, str]]:
    """The check container ran to completion; the gpuCheck output is its `nvidia-smi -L`, the driver's
    header line and the image's CUDA requirement."""
    check = lab.docker.inspect(CHECK)
    assert check is not None, "the GPU check container was not created"
    assert not check["State"]["Running"] and check["State"]["ExitCode"] == 0
    assert check["Config"]["Cmd"][:2] == ["sh", "-c"] and check["Config"]["Cmd"][2].startswith("nvidia-smi -L")
    assert "NVIDIA_DISABLE_REQUIRE=true" in check["Config"]["Env"]  # tfbox judges the CUDA requirement, not the hook
    outputs = lab.stack.outputs()
    out = outputs["gpuCheck"]
    gpus = listed_gpus("\n".join(line for line in out.splitlines() if line.startswith("GPU ")))
    assert [i for i, _ in gpus] == list(range(count)), out
    assert re.search(r"Driver Version: 580\.159\.04 +CUDA Version: 13\.0", out), out
    assert f"image NVIDIA_REQUIRE_CUDA={require}\n" in out + "\n", out
    assert lab.docker("logs", CHECK).stdout.strip() == out
    return gpus


def test_1_gpus_0_1_by_device_request(lab: SimpleNamespace) -> None:
    info = notebook_sees(lab, "0,1", 2)
    requests = info["HostConfig"]["DeviceRequests"]
    assert [r["DeviceIDs"] for r in requests] == [["0", "1"]]
    assert requests[0]["Capabilities"] == [["gpu"]]
    assert not info["HostConfig"]["Runtime"] or info["HostConfig"]["Runtime"] == "runc"
    # NVIDIA's recommended ulimits on GPU stacks (memlock as far as this host's daemon may raise it)
    limits = {u["Name"]: (u["Soft"], u["Hard"]) for u in info["HostConfig"]["Ulimits"]}
    assert limits["stack"] == (67108864, 67108864) and "memlock" in limits
    assert lab.docker.inspect(CHECK)["HostConfig"]["SecurityOpt"] == ["no-new-privileges"]
    gpus = gpu_check_ran(lab, 2)
    # host GPUs 0 and 1 (the stand-in's UUIDs end in 60 + host index)
    assert [uuid[-2:] for _, uuid in gpus] == ["60", "61"]
    outputs = lab.stack.outputs()
    assert outputs["gpus"] == "0,1"
    assert outputs["containerNames"] == [NB, TB, CHECK, "tfbox-gpus-ready"]
    assert lab.docker.inspect(TB)["State"]["Running"]


def wait_health(docker: Docker, name: str, status: str, timeout: float) -> tuple[dict[str, Any], float]:
    """The container's inspect once its health is `status`, and how long that took."""
    start = time.monotonic()
    while True:
        info = docker.inspect(name)
        assert info is not None, f"{name} is gone"
        if info["State"]["Health"]["Status"] == status:
            return info, time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{name} not {status} after {timeout} s: {info['State']['Health']}")
        time.sleep(0.5)


def test_1b_lost_gpus_turn_the_notebook_unhealthy(lab: SimpleNamespace) -> None:
    """nvidia-container-toolkit#48: after a `systemctl daemon-reload` a running container's nvidia-smi says
    "Failed to initialize NVML: Unknown Error". The health check notices within 30 s and says why."""
    info, _ = wait_health(lab.docker, NB, "healthy", timeout=60)  # the first probe runs 15 s after the start
    hc = info["Config"]["Healthcheck"]
    assert (hc["Interval"], hc["Retries"]) == (15 * 10**9, 2)
    lab.docker("exec", NB, "touch", LOST_MARKER)
    try:
        info, took = wait_health(lab.docker, NB, "unhealthy", timeout=60)
        # two failing probes 15 s apart, each up to its 5 s timeout late on a busy machine
        assert took <= 40, f"unhealthy only after {took:.0f} s"
        last = info["State"]["Health"]["Log"][-1]
        assert last["ExitCode"] != 0
        assert last["Output"].startswith("tfbox: GPUs lost: nvidia-smi -L exited 255 listing 0 GPUs (2 given)"), last
        assert "Failed to initialize NVML: Unknown Error" in last["Output"]
        assert http_get(lab.nb + "/api")[0] == 200, "Jupyter itself still answers: only the GPUs are gone"
    finally:
        lab.docker("exec", NB, "rm", "-f", LOST_MARKER)
    wait_health(lab.docker, NB, "healthy", timeout=40)  # GPUs back, healthy again at the next probe


def test_1c_idle_kernels_are_culled(lab: SimpleNamespace) -> None:
    """A kernel nobody is connected to (a closed tab) goes after tfbox:cullIdleKernels; one in use stays."""
    session = Jupyter(lab.nb)
    assert session.login(lab.password)
    status, kernel = session.request("POST", "/api/kernels", {"name": "python3"})
    assert status == 201, kernel
    started = time.monotonic()

    def running() -> set[str]:
        status, kernels = session.request("GET", "/api/kernels")
        assert status == 200, kernels
        return {k["id"] for k in kernels}

    assert kernel["id"] in running()
    while kernel["id"] in running():
        assert time.monotonic() - started < 60, "the idle kernel was not culled within 60 s"
        time.sleep(1)
    took = time.monotonic() - started
    # idle for the timeout, found at the next look (every half timeout): gone after 10 to about 15 s
    assert CULL_AFTER - 2 <= took <= 3 * CULL_AFTER, f"culled after {took:.0f} s"
    # the notebook's own kernels keep working: a cell runs (its kernel is connected while it runs)
    assert not session.execute("print(1)")["error"]


def test_2_all_gpus(lab: SimpleNamespace) -> None:
    lab.stack.set("gpus", "all")
    lab.stack.up()
    info = notebook_sees(lab, "all", 8)
    assert [r["Count"] for r in info["HostConfig"]["DeviceRequests"]] == [-1]
    gpu_check_ran(lab, 8)
    assert lab.stack.outputs()["gpus"] == "all"
    # the nightly drift job's command, on a stack with the GPU check: a lab just deployed has not drifted
    lab.stack.drift_check()


def test_3_recipe_mode_nvidia_runtime(lab: SimpleNamespace) -> None:
    lab.stack.set("gpus", "0,1")
    lab.stack.set("gpuMode", "nvidia-runtime")
    lab.stack.up()
    info = notebook_sees(lab, "0,1", 2)
    assert info["HostConfig"]["Runtime"] == "nvidia"
    assert not info["HostConfig"]["DeviceRequests"]
    gpu_check_ran(lab, 2)
    assert lab.docker.inspect(CHECK)["HostConfig"]["Runtime"] == "nvidia"
    lab.stack.preview("--expect-no-changes")


def failed_for_absent_gpu(up: Result) -> None:
    """`up` failed with gpu_check.py's message: what was asked, what nvidia-smi said, what to do."""
    assert up.returncode != 0
    out = up.output
    assert f"GPU check for tfbox:gpus={ABSENT_GPU} failed" in out, out[-4000:]
    assert "nvidia-smi exited with 1" in out
    assert "nvidia-smi listed no GPU" in out
    assert "unknown device" in out  # nvidia-smi's own words are passed on
    assert "NVIDIA Container Toolkit" in out and "pulumi up --replace" in out


def test_4_failing_check_leaves_the_running_notebook_alone(lab: SimpleNamespace) -> None:
    lab.stack.set("gpuMode", "device-requests")
    lab.stack.up()
    before = lab.docker.inspect(NB)
    lab.stack.set("gpus", ABSENT_GPU)
    failed_for_absent_gpu(lab.stack.up(check=False))
    after = lab.docker.inspect(NB)
    assert after is not None, "a failed GPU check removed the notebook"
    assert (after["Id"], after["State"]["StartedAt"]) == (before["Id"], before["State"]["StartedAt"])
    assert lab.docker.main_process_env(NB)["NVIDIA_VISIBLE_DEVICES"] == "0,1"
    assert http_get(lab.nb + "/api")[0] == 200
    assert lab.docker.inspect(CHECK)["State"]["ExitCode"] == 1


def test_5_failing_check_on_a_new_machine_creates_no_notebook(project: Project, docker_a: Docker, gpu_image: str, password: str) -> None:
    stack = project.stack("gpufail", {
        "docker:host": docker_a.host, "tfbox:image": gpu_image, "tfbox:gpus": ABSENT_GPU, "tfbox:gpuCheck": True,
        "tfbox:notebookPort": free_port(), "tfbox:tensorboardPort": free_port(),
    }, password)
    try:
        failed_for_absent_gpu(stack.up(check=False))
        assert docker_a.inspect("tfbox-gpufail-notebook") is None, "the notebook was created despite the failed GPU check"
        assert "tfbox-gpufail-notebook" not in docker_a("ps", "-a", "--format", "{{.Names}}").stdout
        assert "docker:index/container:Container::notebook" not in stack.export(), "the notebook is in the stack's state"
        check = docker_a.inspect("tfbox-gpufail-gpu-check")
        assert check is not None and check["State"]["ExitCode"] == 1
    finally:
        stack.destroy(check=False)
        for vol in ("tfbox-gpufail-notebooks", "tfbox-gpufail-logs"):
            docker_a("volume", "rm", vol, check=False)


def state_cuda_12_8(docker: Docker, source: str, ref: str) -> str:
    """`source` as a CUDA 12.8 build states it (ENV NVIDIA_REQUIRE_CUDA=cuda>=12.8, CUDA_VERSION=12.8.1),
    pushed to the local registry (no Docker Hub here) as `ref` and removed from `docker` again."""
    docker("pull", source)
    cid = docker("create", source).stdout.strip()
    try:
        docker("commit", "--change", f"ENV NVIDIA_REQUIRE_CUDA={REQUIRE}", "--change", "ENV CUDA_VERSION=12.8.1", cid, ref)
    finally:
        docker("rm", cid)
    docker("push", ref)
    docker("rmi", ref)  # a deployment pulls it like any other image
    return ref


@pytest.fixture(scope="module")
def cuda_image(lab: SimpleNamespace, gpu_image: str, registry: str) -> str:
    """The GPU image as a CUDA 12.8 build states it, under a tag of its own."""
    return state_cuda_12_8(lab.docker, gpu_image, f"{registry}/tensorflow/tensorflow:cuda12.8-gpu-jupyter")


@pytest.fixture(scope="module")
def small_cuda_image(docker_a: Docker, registry: str) -> str:
    """A few-MB image (busybox and the nvidia-smi stand-in, scripts/tf-image.sh) stating the same CUDA 12.8
    requirement: what test_6 checks ends before any notebook starts, so it needs the image's env, not
    TensorFlow, and the fresh older-driver daemon pulls a few MB instead of the 2 GB notebook image.
    The same check with the notebook image itself, on a driver that fits, is test_7."""
    return state_cuda_12_8(docker_a, f"{registry}/tfbox-test/nvidia-smi:latest", f"{registry}/tfbox-test/nvidia-smi:cuda12.8")


def test_6_older_driver_stops_up_before_the_notebook(project: Project, small_cuda_image: str, password: str) -> None:
    """A host whose driver runs CUDA 12.2: the image needs 12.8. `up` stops with both versions and the fix."""
    docker = start_daemon("e2e-cuda122", env={"TFBOX_NVIDIA_CUDA": "12.2", "TFBOX_NVIDIA_DRIVER": "535.183.01"})
    stack = None
    try:
        # what tfbox spares the user: NVIDIA's hook (the stand-in, like the real one) refuses the container at start
        refused = docker("run", "--rm", "--gpus", "all", small_cuda_image, "true", check=False, timeout=600)
        assert refused.returncode != 0 and f"unsatisfied condition: {REQUIRE}" in refused.stderr, refused.stderr
        stack = project.stack("cudaold", {
            "docker:host": docker.host, "tfbox:image": small_cuda_image, "tfbox:gpus": "0", "tfbox:gpuCheck": True,
            # no TensorBoard: the small image has none, and the sidecar is not what the check gates
            "tfbox:notebookPort": free_port(), "tfbox:tensorboardMode": "off", **gpu_ulimits_here(),
        }, password)
        up = stack.up(check=False)
        out = up.output
        assert up.returncode != 0
        assert "GPU check for tfbox:gpus=0: CUDA does not fit" in out, out[-4000:]
        assert f"the image needs CUDA 12.8 or newer (NVIDIA_REQUIRE_CUDA={REQUIRE})" in out
        assert "the host's NVIDIA driver 535.183.01 supports CUDA 12.2 at most" in out
        assert "older image tag built for CUDA 12.2 or earlier" in out
        assert "upgrade the host's NVIDIA driver to one whose `nvidia-smi` shows CUDA Version 12.8 or later" in out
        assert "unsatisfied condition" not in out, "the hook's words, not tfbox's"
        assert docker.inspect("tfbox-cudaold-notebook") is None, "the notebook was created despite the CUDA mismatch"
        check = docker.inspect("tfbox-cudaold-gpu-check")
        assert check is not None and check["State"]["ExitCode"] == 0
    finally:
        if stack is not None:
            stack.destroy(check=False)
        stop_daemon("e2e-cuda122")


def test_7_new_enough_driver_runs_the_same_image(lab: SimpleNamespace, cuda_image: str) -> None:
    """The same image on the default stand-in driver (CUDA 13.0): the check passes and the notebook starts
    (NVIDIA's hook, which still checks the notebook, accepts it)."""
    lab.stack.set("gpus", "0,1")
    lab.stack.set("image", cuda_image)
    lab.stack.up()
    info = notebook_sees(lab, "0,1", 2)
    assert f"NVIDIA_REQUIRE_CUDA={REQUIRE}" in info["Config"]["Env"]
    assert not any(e.startswith("NVIDIA_DISABLE_REQUIRE") for e in info["Config"]["Env"]), "the notebook keeps the hook's check"
    gpu_check_ran(lab, 2, require=REQUIRE)
