"""The GPU proof kit's pure parts (scripts/gpu-proof/): which of the host's Python distributions go into the
notebook image, and the summary's verdict. The kit itself runs in tests/e2e/test_gpu_proof.py."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"gpu_proof_{name}", ROOT / "scripts" / "gpu-proof" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


build_image = load("build_image")
proof = load("proof")

# Requires-Dist as a GPU host's torch/jax install has them (trimmed), and what else is installed there
HOST = {
    "torch": ["filelock", "typing-extensions>=4.10.0", "nvidia-cublas-cu12==12.8.4.1; platform_system == \"Linux\"",
              "triton==3.3.1; platform_system == \"Linux\" and platform_machine == \"x86_64\"",
              "opt-einsum>=3.3; extra == \"opt-einsum\"", "pywin32; sys_platform == \"win32\""],
    "jax": ["jaxlib<=0.6.2,>=0.6.2", "ml-dtypes>=0.5.0", "numpy>=1.26", "jax-cuda12-plugin[with-cuda]; extra == \"cuda12\""],
    "jaxlib": ["ml-dtypes>=0.5.0", "numpy>=1.26", "scipy>=1.12"],
    "jax-cuda12-plugin": ["jax-cuda12-pjrt==0.6.2", "nvidia-cudnn-cu12>=9.8; extra == \"with-cuda\""],
    "jax-cuda12-pjrt": [], "nvidia-cublas-cu12": [], "nvidia-cudnn-cu12": ["nvidia-cublas-cu12"], "triton": ["setuptools>=40.8.0"],
    "filelock": [], "typing-extensions": [], "ml-dtypes": ["numpy>=1.21"], "numpy": [], "scipy": ["numpy<2.6,>=1.25.2"],
    "setuptools": [], "tensorboard": ["absl-py>=0.4", "markdown>=2.6.8", "numpy>=1.12.0", "broken ^ requirement"],
    "absl-py": [], "markdown": [], "opt-einsum": [], "pywin32": [],
    "requests": ["urllib3"], "urllib3": [], "black": ["click"], "click": [],  # the host's, nothing needs them
}


@pytest.fixture(autouse=True)
def _pip_on_path() -> None:
    """build_image takes `packaging` from the carried pip wheel; here from the venv's pip."""
    pytest.importorskip("pip._vendor.packaging.requirements")


def test_torch_with_its_cuda_libraries_when_the_host_has_it() -> None:
    got = build_image.needed(HOST)
    assert {"torch", "numpy", "tensorboard", "triton", "setuptools", "filelock", "typing-extensions", "nvidia-cublas-cu12",
            "absl-py", "markdown"} <= set(got)
    # one GPU library is enough for the cell: jax and its GBs stay out; so do extras, other platforms, the unneeded
    assert not {"jax", "jaxlib", "jax-cuda12-plugin", "nvidia-cudnn-cu12", "opt-einsum", "pywin32", "requests", "black"} & set(got)


def test_jax_brings_its_cuda_plugins_and_nvidia_libraries_which_come_through_extras() -> None:
    for got in (build_image.needed(HOST, "jax"), build_image.needed({n: r for n, r in HOST.items() if n != "torch"})):
        assert {"jax", "jaxlib", "ml-dtypes", "scipy", "numpy", "tensorboard", "jax-cuda12-plugin", "jax-cuda12-pjrt",
                "nvidia-cublas-cu12", "nvidia-cudnn-cu12"} <= set(got)
        assert not {"torch", "triton", "filelock", "requests"} & set(got)
    assert {"torch", "jax", "jax-cuda12-plugin"} <= set(build_image.needed(HOST, "both"))


def test_without_torch_or_jax_no_cuda_libraries_are_taken() -> None:
    """The rehearsal's host: numpy and tensorboard only; an NVIDIA wheel lying around is not pulled in."""
    host = {n: HOST[n] for n in ("numpy", "tensorboard", "absl-py", "markdown", "nvidia-cublas-cu12", "requests", "urllib3")}
    assert build_image.needed(host) == ["absl-py", "markdown", "numpy", "tensorboard"]


def test_a_python_under_tmp_is_refused_since_tensorboards_tmpfs_would_hide_it() -> None:
    assert build_image.under_tmp(["/usr/bin", "/tmp/home/.cache/venv/bin"]) == "/tmp/home/.cache/venv/bin"
    assert build_image.under_tmp(["/usr/bin", "/root/.cache/tfbox/venv/bin", "/tmpfoo/bin"]) is None


def test_names_are_compared_normalised() -> None:
    assert build_image.needed({"tensorboard": ["Absl_Py>=1"], "absl-py": []}) == ["absl-py", "tensorboard"]


def write_checks(tmp_path: Path, *rows: str) -> Path:
    checks = tmp_path / "checks.tsv"
    checks.write_text("".join(r + "\n" for r in rows))
    (tmp_path / "host.json").write_text('{"host": "box", "gpu": "NVIDIA H200", "count": "1", "driver": "580.159.04", "cuda": "13.0"}')
    return checks


def test_summary_passes_only_when_every_check_did(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "proof.log"
    checks = write_checks(tmp_path, "bundle\tPASS\t1.0\t", "[device-requests] up\tPASS\t12.5\tnotebook with GPU 0")
    assert proof.main(["summary", "--checks", str(checks), "--log", str(log)]) == 0
    out = capsys.readouterr().out
    assert "tfbox GPU proof PASSED (2 of 2 checks)" in out
    assert "host box, GPU NVIDIA H200 x 1, driver 580.159.04, CUDA 13.0" in out
    assert "  PASS    12.5 s  [device-requests] up\n                  notebook with GPU 0" in out
    assert out.strip() in log.read_text()  # the summary is in the full log too

    checks = write_checks(tmp_path, "bundle\tPASS\t1.0\t", "[nvidia-runtime] TensorBoard\tFAIL\t90.0\tAssertionError: 0 of 5")
    assert proof.main(["summary", "--checks", str(checks), "--log", str(log)]) == 1
    out = capsys.readouterr().out
    assert "tfbox GPU proof FAILED (1 of 2 checks)" in out and "  FAIL    90.0 s  [nvidia-runtime] TensorBoard" in out


def test_summary_of_no_checks_is_a_failure(tmp_path: Path) -> None:
    checks = write_checks(tmp_path)
    assert proof.main(["summary", "--checks", str(checks), "--log", str(tmp_path / "log")]) == 1
