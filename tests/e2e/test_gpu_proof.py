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
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.harness import ROOT
from tests.unit.shared_data import shared_testdata

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


def test_gpu_proof_rehearsal(tmp_path: Path) -> None:
    run_base = os.environ.get("TFBOX_RUN", "/tmp/tfbox-run")
    fake = tmp_path / "host"
    made = subprocess.run([str(ROOT / "scripts/gpu-proof/fake-host.sh"), str(fake)], capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr[-3000:]
    env = dict(os.environ)
    for line in made.stdout.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value.replace("$PATH", os.environ["PATH"])
    # the fake host's nvidia-smi is the real capture's, line for line
    listed = subprocess.run(["nvidia-smi", "-L"], env=env, capture_output=True, text=True, check=True).stdout
    assert listed == shared_testdata("nvidia-smi", "h200-list.txt").read_text()
    host_py = env["TFBOX_GPU_PROOF_PYTHON"]
    version = subprocess.run([host_py, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()

    out = tmp_path / "bundle"
    t0 = time.monotonic()
    bundled = subprocess.run(["make", "gpu-proof-bundle", f"OUT={out}", f"PYTHON_VERSION={version}"], cwd=ROOT,
                             capture_output=True, text=True, check=False, timeout=1800)
    bundle_s = time.monotonic() - t0
    assert bundled.returncode == 0, bundled.stderr[-3000:]
    parts = sorted(out.glob("*.part*"))
    sizes = {p.name: p.stat().st_size for p in parts}
    print(f"bundle in {bundle_s:.0f} s: " + ", ".join(f"{n} {s / MIB:.1f} MiB" for n, s in sizes.items()), file=sys.stderr)
    assert any(n.startswith("base.tar.xz.part") for n in sizes) and any(n.startswith("project.tar.xz.part") for n in sizes)
    assert all(0 < s <= 60 * MIB for s in sizes.values()), sizes
    manifest = (out / "MANIFEST.sha256").read_text()
    assert all(f"  {n}\n" in manifest for n in sizes), manifest
    assert os.access(out / "run.sh", os.X_OK)

    log = tmp_path / "proof.log"
    t0 = time.monotonic()
    proof = subprocess.run([str(out / "run.sh"), str(out)], capture_output=True, text=True, check=False, timeout=2400, env={
        **env, "TFBOX_GPU_PROOF_WORK": f"{run_base}/gpu-proof", "TFBOX_GPU_PROOF_LOG": str(log)})
    proof_s = time.monotonic() - t0
    print(f"run.sh in {proof_s:.0f} s:\n{proof.stdout}", file=sys.stderr)
    text = proof.stdout
    assert proof.returncode == 0, text[-4000:] + proof.stderr[-2000:] + "\n--- log tail:\n" + log.read_text()[-6000:]
    assert "tfbox GPU proof PASSED" in text
    rows = re.findall(r"^  (PASS|FAIL) +[0-9.]+ s  (.+)$", text, re.M)
    assert rows and all(v == "PASS" for v, _ in rows), rows
    assert sorted(name for _, name in rows) == sorted(CHECKS)
    # the summary names the capture's GPU, driver and CUDA (shared testdata: h200-table.txt)
    table = shared_testdata("nvidia-smi", "h200-table.txt").read_text()
    assert "Driver Version: 580.159.04     CUDA Version: 13.0" in table
    assert "GPU NVIDIA H200 x 1, driver 580.159.04, CUDA 13.0" in text
    assert "GPU 0: NVIDIA H200 (UUID: GPU-b780f725-fe96-b196-3303-e4a68e6a6860)" in text
    assert "numpy" in text and "rehearsal" in text  # the cell's matrix product: numpy, said so
    # the whole log is there; the host is left as found: no daemon, no work directory
    assert "==== notebook image from the host's Python" in log.read_text()
    assert not Path(f"{run_base}/gpu-proof").exists()
    assert subprocess.run(["pgrep", "-f", f"{run_base}/gpu-proof/"], capture_output=True, check=False).returncode == 1
