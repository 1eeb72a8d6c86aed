"""CUDA compatibility (issue 9 §4): the image's requirement against the host driver's CUDA version,
on real `nvidia-smi` captures and on the stand-ins the real-engine tests use."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from components.docker.gpu_check import GpuCheckFailed, cuda_problem, image_env, verdict
from components.model import commands
from components.model.cuda import HostDriver, fits, incompatibility, parse_host_driver, parse_requirement
from components.model.gpus import parse_gpus, parse_nvidia_smi_list
from tests.shared_data import ROOT, shared_testdata

STANDINS = ROOT / "scripts" / "nvidia"
# tensorflow/tensorflow:2.16.1-gpu-jupyter's requirement (CUDA 12.3), as its image config states it
TF_REQUIRE = ("cuda>=12.3 brand=tesla,driver>=470,driver<471 brand=unknown,driver>=470,driver<471 "
              "brand=nvidia,driver>=470,driver<471 brand=nvidiartx,driver>=470,driver<471 "
              "brand=tesla,driver>=525,driver<526 brand=nvidia,driver>=525,driver<526")
H200 = HostDriver("580.159.04", (13, 0))


def real_table() -> str:
    return shared_testdata("nvidia-smi", "h200-table.txt").read_text()


def test_the_real_h200_header():
    assert parse_host_driver(real_table()) == H200


def test_the_stand_in_reports_the_captured_driver():
    out = subprocess.run([str(STANDINS / "nvidia-smi")], env={**os.environ, "NVIDIA_VISIBLE_DEVICES": "0"},
                         capture_output=True, text=True, check=True).stdout
    assert parse_host_driver(out) == parse_host_driver(real_table())


def test_no_header_no_driver():
    assert parse_host_driver(shared_testdata("nvidia-smi", "h200-list.txt").read_text()) is None
    assert parse_host_driver("CUDA Version: N/A") is None


def test_tensorflow_requirement_runs_on_newer_drivers():
    req = parse_requirement(TF_REQUIRE)
    assert req is not None and req.min_cuda == (12, 3)
    assert fits(req, H200)
    assert fits(req, HostDriver("545.23.06", (12, 3)))  # exactly the CUDA it needs
    assert not fits(req, HostDriver("535.183.01", (12, 2)))
    # forward compatibility: a datacenter GPU's old driver in the image's brand ranges; the brand is not in
    # nvidia-smi's header, so tfbox lets NVIDIA's hook decide rather than refuse what it would allow
    assert fits(req, HostDriver("470.256.02", (11, 4)))
    assert not fits(req, HostDriver("510.47.03", (11, 6)))


@pytest.mark.parametrize(
    ("require", "cuda_version", "text", "need"),
    [
        ("", "12.3.2", "CUDA_VERSION=12.3.2", (12, 3)),  # older images: CUDA_VERSION only, as NVIDIA's hook reads it
        ("cuda>=12.8", "12.8.1", "NVIDIA_REQUIRE_CUDA=cuda>=12.8", (12, 8)),  # the requirement wins
        ("  CUDA>=11.0  ", None, "NVIDIA_REQUIRE_CUDA=CUDA>=11.0", (11, 0)),
    ],
)
def test_what_the_image_needs(require, cuda_version, text, need):
    req = parse_requirement(require, cuda_version)
    assert req is not None and req.text == text and req.min_cuda == need


@pytest.mark.parametrize(("require", "cuda_version"), [("", ""), (None, None), ("", "not-a-version"), ("what?", "")])
def test_an_image_without_a_requirement_fits_anywhere(require, cuda_version):
    assert parse_requirement(require, cuda_version) is None
    assert fits(None, HostDriver("450.80.02", (11, 0)))


def test_patch_versions_do_not_count():
    # a 12.3.2 image runs where the driver supports 12.3 (NVIDIA compares major.minor)
    assert fits(parse_requirement("", "12.3.2"), HostDriver("545.23.06", (12, 3)))
    assert fits(parse_requirement("cuda>=13.0.1"), H200)


def test_driver_conditions_compare_the_driver_version():
    assert fits(parse_requirement("driver>=580.100"), H200)
    assert not fits(parse_requirement("driver>=580.160"), H200)
    assert not fits(parse_requirement("cuda>=12.0,driver<580"), H200)


def test_the_message_has_both_versions_and_both_fixes():
    req = parse_requirement("cuda>=13.1")
    assert req is not None
    text = incompatibility(req, H200)
    assert "needs CUDA 13.1 or newer (NVIDIA_REQUIRE_CUDA=cuda>=13.1)" in text
    assert "driver 580.159.04 supports CUDA 13.0 at most" in text
    assert "older image tag built for CUDA 13.0 or earlier" in text and "tfbox:image" in text
    assert "upgrade the host's NVIDIA driver to one whose `nvidia-smi` shows CUDA Version 13.1 or later" in text


# --- the GPU check: its command, what it prints, the verdict --------------------------------


def check_output_from_captures(**env: str) -> str:
    """What the GPU check prints on the real H200 host: `nvidia-smi -L`, the header line, the image's env."""
    header = next(line for line in real_table().splitlines() if "CUDA Version" in line)
    lines = [shared_testdata("nvidia-smi", "h200-list.txt").read_text().strip(), header]
    lines += [f"{commands.IMAGE_ENV_PREFIX}{name}={env.get(name, '')}" for name in commands.IMAGE_CUDA_ENV]
    return "\n".join(lines) + "\n"


def test_verdict_on_the_real_captures():
    assert verdict(parse_gpus("0"), "device-requests", 0, check_output_from_captures(NVIDIA_REQUIRE_CUDA=TF_REQUIRE)) == "passed"
    assert verdict(parse_gpus("all"), "device-requests", 0, check_output_from_captures()) == "passed"
    with pytest.raises(GpuCheckFailed) as info:
        verdict(parse_gpus("0"), "device-requests", 0, check_output_from_captures(NVIDIA_REQUIRE_CUDA="cuda>=13.1"))
    text = str(info.value)
    assert "GPU check for tfbox:gpus=0: CUDA does not fit" in text
    assert "580.159.04 supports CUDA 13.0" in text and "cuda>=13.1" in text
    assert "older image tag" in text and "upgrade the host's NVIDIA driver" in text
    assert "pulumi up --replace" in text


def test_another_check_image_does_not_judge_the_notebook_image():
    # with tfbox:gpuCheckImage the env printed is the check image's, not the notebook's
    out = check_output_from_captures(NVIDIA_REQUIRE_CUDA="cuda>=13.1")
    assert verdict(parse_gpus("0"), "device-requests", 0, out, check_cuda=False) == "passed"


def test_gpu_list_problems_come_before_cuda():
    with pytest.raises(GpuCheckFailed, match="sees 1"):
        verdict(parse_gpus("0,1"), "device-requests", 0, check_output_from_captures(NVIDIA_REQUIRE_CUDA="cuda>=13.1"))


def run_check_command(tmp_path: Path, image_env: dict[str, str], visible: str = "0,1") -> subprocess.CompletedProcess[str]:
    """commands.gpu_check_command run by `sh` with the stand-in nvidia-smi on PATH, as in a check container."""
    env = {"PATH": f"{STANDINS}:/usr/bin:/bin", "NVIDIA_VISIBLE_DEVICES": visible,
           "TFBOX_NVIDIA_LOST": str(tmp_path / "lost"), **image_env}
    return subprocess.run(commands.gpu_check_command(), env=env, capture_output=True, text=True, check=False, timeout=30)


def test_the_check_command_prints_gpus_header_and_image_env(tmp_path: Path):
    done = run_check_command(tmp_path, {"CUDA_VERSION": "12.8.1", "NVIDIA_REQUIRE_CUDA": "cuda>=12.8"})
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert [g.index for g in parse_nvidia_smi_list(out)] == [0, 1]  # the -L lines stay for whoever reads them
    assert parse_host_driver(out) == H200
    assert image_env(out) == {"CUDA_VERSION": "12.8.1", "NVIDIA_REQUIRE_CUDA": "cuda>=12.8"}
    assert cuda_problem(out) is None
    assert verdict(parse_gpus("0,1"), "device-requests", done.returncode, out) == "passed"


def test_the_check_command_on_an_image_needing_more(tmp_path: Path):
    done = run_check_command(tmp_path, {"NVIDIA_REQUIRE_CUDA": "cuda>=13.1"})
    assert done.returncode == 0
    with pytest.raises(GpuCheckFailed, match=r"needs CUDA 13\.1 or newer.*supports CUDA 13\.0 at most"):
        verdict(parse_gpus("0,1"), "device-requests", done.returncode, done.stdout)


def test_the_check_command_without_image_env(tmp_path: Path):
    done = run_check_command(tmp_path, {})
    assert image_env(done.stdout) == {"CUDA_VERSION": "", "NVIDIA_REQUIRE_CUDA": ""}
    assert verdict(parse_gpus("0,1"), "device-requests", done.returncode, done.stdout) == "passed"


def test_the_check_command_fails_with_nvidia_smi(tmp_path: Path):
    # nvidia-smi -L's exit status is the check's, and nothing else is printed after its words
    done = run_check_command(tmp_path, {}, visible="")
    assert done.returncode == 9
    assert "couldn't communicate with the NVIDIA driver" in done.stdout and "image " not in done.stdout


# --- the stand-in hook refuses what NVIDIA's hook refuses -------------------------------------


def run_hook(tmp_path: Path, env: list[str]) -> subprocess.CompletedProcess[str]:
    """The stand-in hook on a bundle whose config.json carries `env` (JSON-escaped as Docker writes it)."""
    hook = (STANDINS / "nvidia-container-runtime-hook").read_text()
    hook = hook.replace("@NVIDIA_LOG@", str(tmp_path / "nvidia.log")).replace("@NVIDIA_SMI@", str(STANDINS / "nvidia-smi"))
    (tmp_path / "hook").write_text(hook)
    (tmp_path / "hook").chmod(0o755)
    bundle = tmp_path / "bundle"
    (bundle / "rootfs" / "usr" / "bin").mkdir(parents=True, exist_ok=True)
    config = {"ociVersion": "1.0.2", "process": {"env": ["PATH=/usr/bin:/bin", "NVIDIA_VISIBLE_DEVICES=0", *env]},
              "root": {"path": "rootfs"}}
    (bundle / "config.json").write_text(json.dumps(config).replace(">", "\\u003e").replace("<", "\\u003c"))
    state = json.dumps({"id": "c1", "bundle": str(bundle)})
    return subprocess.run([str(tmp_path / "hook"), "prestart"], input=state, capture_output=True, text=True, check=False, timeout=30)


@pytest.mark.parametrize(
    ("env", "refused"),
    [
        (["NVIDIA_REQUIRE_CUDA=cuda>=12.8"], None),
        (["NVIDIA_REQUIRE_CUDA=cuda>=13.1"], "cuda>=13.1"),
        (["NVIDIA_REQUIRE_CUDA=cuda>=13.1 brand=nvidia,driver>=580,driver<581"], None),  # forward compatibility
        (["NVIDIA_REQUIRE_CUDA=cuda>=13.1 brand=tesla,driver>=580,driver<581"], "cuda>=13.1"),
        (["CUDA_VERSION=13.1.0"], "cuda>=13.1"),
        (["CUDA_VERSION=12.3.2"], None),
        (["NVIDIA_REQUIRE_CUDA=cuda>=13.1", "NVIDIA_DISABLE_REQUIRE=true"], None),  # what the GPU check sets
        ([], None),
    ],
)
def test_the_stand_in_hook_checks_the_requirement(tmp_path: Path, env: list[str], refused: str | None):
    done = run_hook(tmp_path, env)
    if refused is None:
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "bundle" / "rootfs" / "usr" / "bin" / "nvidia-smi").exists()
    else:
        assert done.returncode == 1
        assert f"requirement error: unsatisfied condition: {refused}, please update your driver" in done.stderr


@pytest.mark.parametrize("require", ["cuda>=12.8", "cuda>=13.0", "cuda>=13.1", "cuda>=14.0 cuda>=12.0", "cuda>=12.0,driver>=581"])
def test_the_stand_in_hook_and_tfbox_agree(tmp_path: Path, require: str):
    # without brand conditions (which tfbox counts as met and the stand-in judges for its `nvidia` GPUs)
    done = run_hook(tmp_path, [f"NVIDIA_REQUIRE_CUDA={require}"])
    assert (done.returncode == 0) == fits(parse_requirement(require), H200)


def test_the_injected_nvidia_smi_keeps_the_containers_devices(tmp_path: Path):
    # `docker exec` (a health probe) has no NVIDIA_VISIBLE_DEVICES in device-requests mode; a real nvidia-smi
    # still sees the container's devices, and so does the stand-in's copy in the container
    assert run_hook(tmp_path, []).returncode == 0
    injected = tmp_path / "bundle" / "rootfs" / "usr" / "bin" / "nvidia-smi"
    env = {"PATH": "/usr/bin:/bin", "TFBOX_NVIDIA_LOST": str(tmp_path / "lost")}
    done = subprocess.run([str(injected), "-L"], env=env, capture_output=True, text=True, check=False, timeout=30)
    assert done.returncode == 0 and [g.index for g in parse_nvidia_smi_list(done.stdout)] == [0]
