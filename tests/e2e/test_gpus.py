"""Scenario 3: a gpu-box-like stack gets the GPUs it names, in both of Docker's ways
(`--gpus` device requests and the recipe's `--runtime=nvidia` + `NVIDIA_VISIBLE_DEVICES`),
its GPU check's `nvidia-smi -L` becomes the `gpuCheck` output, and a failing check stops
`up` before the notebook is created or touched.

The daemons have NVIDIA stand-ins (scripts/nvidia/): a host with 8 "H200"s whose nvidia-smi
lists what NVIDIA_VISIBLE_DEVICES selects. This proves the GPU wiring, not CUDA. The change of
the GPU list previewing as a replacement of the notebook alone is in test_nothing_lost.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

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


@pytest.fixture(scope="module")
def lab(project: Project, docker_a: Docker, gpu_image: str, password: str) -> Iterator[SimpleNamespace]:
    """Like Pulumi.gpu-box.yaml: GPUs 0 and 1 by device request, the GPU check on, TensorBoard beside."""
    nb_port = free_port()
    stack = project.stack("gpus", {
        "docker:host": docker_a.host, "tfbox:image": gpu_image,
        "tfbox:gpus": "0,1", "tfbox:gpuMode": "device-requests", "tfbox:gpuCheck": True,
        "tfbox:notebookPort": nb_port, "tfbox:tensorboardPort": free_port(), "tfbox:tensorboardMode": "sidecar",
        **gpu_ulimits_here(),
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
    assert info["State"]["Running"] and info["State"]["Health"]["Status"] == "healthy"
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


def gpu_check_ran(lab: SimpleNamespace, count: int) -> list[tuple[int, str]]:
    """The check container ran to completion and its `nvidia-smi -L` is the gpuCheck output."""
    check = lab.docker.inspect(CHECK)
    assert check is not None, "the GPU check container was not created"
    assert not check["State"]["Running"] and check["State"]["ExitCode"] == 0
    assert check["Config"]["Cmd"] == ["nvidia-smi", "-L"]
    outputs = lab.stack.outputs()
    gpus = listed_gpus(outputs["gpuCheck"])
    assert [i for i, _ in gpus] == list(range(count)), outputs["gpuCheck"]
    assert lab.docker("logs", CHECK).stdout.strip() == outputs["gpuCheck"]
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
    assert outputs["containerNames"] == [NB, TB, CHECK]
    assert lab.docker.inspect(TB)["State"]["Running"]


def test_2_all_gpus(lab: SimpleNamespace) -> None:
    lab.stack.set("gpus", "all")
    lab.stack.up()
    info = notebook_sees(lab, "all", 8)
    assert [r["Count"] for r in info["HostConfig"]["DeviceRequests"]] == [-1]
    gpu_check_ran(lab, 8)
    assert lab.stack.outputs()["gpus"] == "all"
    lab.stack.preview("--expect-no-changes")


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
