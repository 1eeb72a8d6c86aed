"""The GPU proof kit, rehearsed (issue 20, docs/gpu-proof.md): `make gpu-proof-bundle`, then the bundle's own
run.sh against a fake GPU host made here (scripts/gpu-proof/fake-host.sh: the stand-in nvidia-smi answering
like the real H200 capture, this machine's Python with numpy and tensorboard).

What is real here: the bundle (built, split, verified and joined), the Debian Docker daemon it carries started
from the unpacked bundle, the notebook image built from the host's Python without a registry, the project's
.venv from the carried wheels, tfbox's own `scripts/up.sh` in both GPU modes and every check of proof.py. What
the rehearsal swaps (TFBOX_GPU_PROOF_REHEARSAL): the NVIDIA Container Toolkit's CDI runtime and hook, for the
stand-ins of scripts/nvidia/. A real GPU host runs the same bundle without that swap.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.harness import ROOT
from tests.shared_data import shared_testdata

MIB = 1024 * 1024
CHECKS = [  # every check proof.py must have passed, in both modes
    *(f"[{mode}] {what}" for mode in ("device-requests", "nvidia-runtime") for what in (
        "absent GPU 7: up stops before the notebook, tfbox's message",
        "absent GPU GPU-00000000-1111-2222-3333-444444444444: up stops before the notebook, tfbox's message",
        "tfbox's up (scripts/up.sh) with tfbox:gpuCheck",
        "GPU check: the real nvidia-smi -L is the gpuCheck output",
        "CUDA check reads the real driver",
        "notebook answers through the real login",
        "a kernel cell sees the GPU; capture() brings the libraries' output in",
        "TensorBoard shows the run's scalars",
        "doctor reports the GPU lab healthy",
        "a second up changes nothing (pulumi preview --expect-no-changes)",
    )),
    "bundle: parts verified, joined, unpacked",
    "Docker daemon with the NVIDIA runtime (stand-ins)",
    "notebook image from the host's Python",
    "project .venv from the bundle's wheels",
    "host: nvidia-smi answers",
    "destroy keeps the notebooks",
]


@dataclass
class Rehearsal:
    bundle: Path
    env: dict[str, str]
    work: str


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> Rehearsal:
    """The fake GPU host (its environment for run.sh) and the bundle `make gpu-proof-bundle` made for its Python."""
    tmp = tmp_path_factory.mktemp("gpu-proof")
    fake = tmp / "host"
    made = subprocess.run([str(ROOT / "scripts/gpu-proof/fake-host.sh"), str(fake)], capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr[-3000:]
    env = dict(os.environ)
    for line in made.stdout.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value.replace("$PATH", os.environ["PATH"])
    # the fake host's nvidia-smi is the real capture's, line for line
    listed = subprocess.run(["nvidia-smi", "-L"], env=env, capture_output=True, text=True, check=True).stdout
    assert listed == shared_testdata("nvidia-smi", "h200-list.txt").read_text()
    version = subprocess.run([env["TFBOX_GPU_PROOF_PYTHON"], "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    out = tmp / "bundle"
    t0 = time.monotonic()
    bundled = subprocess.run(["make", "gpu-proof-bundle", f"OUT={out}", f"PYTHON_VERSION={version}"], cwd=ROOT,
                             capture_output=True, text=True, check=False, timeout=1800)
    assert bundled.returncode == 0, bundled.stderr[-3000:]
    sizes = {p.name: p.stat().st_size for p in sorted(out.glob("*.part*"))}
    print(f"bundle in {time.monotonic() - t0:.0f} s: " + ", ".join(f"{n} {s / MIB:.1f} MiB" for n, s in sizes.items()),
          file=sys.stderr)
    return Rehearsal(out, env, f"{os.environ.get('TFBOX_RUN', '/tmp/tfbox-run')}/gpu-proof")


def test_1_bundle_parts(rehearsal: Rehearsal) -> None:
    """What a lent machine takes one call at a time: parts of at most 60 MiB, each in the manifest, and run.sh."""
    sizes = {p.name: p.stat().st_size for p in rehearsal.bundle.glob("*.part*")}
    assert any(n.startswith("base.tar.xz.part") for n in sizes) and any(n.startswith("project.tar.xz.part") for n in sizes)
    assert all(0 < s <= 60 * MIB for s in sizes.values()), sizes
    manifest = (rehearsal.bundle / "MANIFEST.sha256").read_text()
    assert all(f"  {n}\n" in manifest for n in sizes), manifest
    assert "  base.tar.xz\n" in manifest and "  project.tar.xz\n" in manifest
    assert os.access(rehearsal.bundle / "run.sh", os.X_OK)


def test_2_a_damaged_part_stops_the_proof_before_anything_runs(rehearsal: Rehearsal, tmp_path: Path) -> None:
    """A part that changed on its way to the GPU host: run.sh says so and stops, nothing unpacked or started."""
    damaged = tmp_path / "bundle"
    shutil.copytree(rehearsal.bundle, damaged)
    part = damaged / "base.tar.xz.part01"
    with part.open("r+b") as f:
        f.seek(12345)
        byte = f.read(1)
        f.seek(12345)
        f.write(bytes([byte[0] ^ 0xFF]))
    done = subprocess.run([str(damaged / "run.sh"), str(damaged)], capture_output=True, text=True, check=False, timeout=300, env={
        **rehearsal.env, "TFBOX_GPU_PROOF_WORK": rehearsal.work, "TFBOX_GPU_PROOF_LOG": str(tmp_path / "proof.log")})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "GPU proof: FAILED before the checks could run" in done.stdout, done.stdout
    assert re.search(r"FAIL +[0-9.]+ s  bundle: parts verified, joined, unpacked", done.stdout), done.stdout
    assert "base.tar.xz.part01: FAILED" in done.stdout + done.stderr + (tmp_path / "proof.log").read_text()
    assert "Docker daemon" not in done.stdout, "a step after the failed verification ran"
    assert not Path(rehearsal.work).exists()


def test_3_rehearsal_passes_every_check(rehearsal: Rehearsal, tmp_path: Path) -> None:
    log = tmp_path / "proof.log"
    t0 = time.monotonic()
    proof = subprocess.run([str(rehearsal.bundle / "run.sh"), str(rehearsal.bundle)], capture_output=True, text=True, check=False,
                           timeout=2400, env={**rehearsal.env, "TFBOX_GPU_PROOF_WORK": rehearsal.work, "TFBOX_GPU_PROOF_LOG": str(log)})
    print(f"run.sh in {time.monotonic() - t0:.0f} s:\n{proof.stdout}", file=sys.stderr)
    text = proof.stdout
    assert proof.returncode == 0, text[-4000:] + proof.stderr[-2000:] + "\n--- log tail:\n" + log.read_text()[-6000:]
    assert "tfbox GPU proof PASSED" in text
    rows = re.findall(r"^  (PASS|FAIL) +[0-9.]+ s  (.+)$", text, re.M)
    assert rows and all(v == "PASS" for v, _ in rows), rows
    # TFBOX_GPU_PROOF_CDI=1: NVIDIA's real runtime in CDI mode with the fake host's spec instead of the stand-ins
    cdi = os.environ.get("TFBOX_GPU_PROOF_CDI") == "1"
    expected = [c.replace("(stand-ins)", "(CDI, the fake host's spec)") if cdi else c for c in CHECKS]
    assert sorted(name for _, name in rows) == sorted(expected)
    # the summary names the capture's GPU, driver and CUDA (shared testdata: h200-table.txt)
    table = shared_testdata("nvidia-smi", "h200-table.txt").read_text()
    assert "Driver Version: 580.159.04     CUDA Version: 13.0" in table
    assert "GPU NVIDIA H200 x 1, driver 580.159.04, CUDA 13.0" in text
    assert "GPU 0: NVIDIA H200 (UUID: GPU-b780f725-fe96-b196-3303-e4a68e6a6860)" in text
    assert "numpy" in text and "rehearsal" in text  # the cell's matrix product: numpy, said so
    # the whole log is there; the host is left as found: no daemon, no work directory
    assert "==== notebook image from the host's Python" in log.read_text()
    assert not Path(rehearsal.work).exists()
    assert subprocess.run(["pgrep", "-f", f"{rehearsal.work}/"], capture_output=True, check=False).returncode == 1
