"""A GPU the machine does not have, under NVIDIA's real runtime in CDI mode (what a current GPU host runs).

That runtime refuses a container whose GPU it cannot resolve when it is created, with Docker's words only
(`unresolvable CDI devices nvidia.com/gpu=7`), so tfbox's GPU check container never gets to explain. tfbox
reads the machine's own `nvidia-smi -L` at preview (components.host_state.read_host_gpus) and stops with its
message: the key, the GPUs the machine has, the fix; nothing is created.

The daemon runs the NVIDIA Container Toolkit's nvidia-container-runtime (built from Go modules, cached
under ~/.cache/tfbox/nvidia-toolkit/, as scripts/gpu-proof/bundle.sh builds it) in CDI mode with a
hand-written CDI spec of one GPU (0, its UUID, all), as scripts/gpu-proof/fake-host.sh writes it. The
machine's nvidia-smi is the stand-in of scripts/nvidia/ with that one GPU, first on the PATH tfbox runs with.
The image is the few-MB tfbox-test/nvidia-smi (busybox and the stand-in): nothing here starts a notebook.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.e2e.conftest import start_daemon, stop_daemon
from tests.e2e.harness import ROOT, Project, free_port, gpu_ulimits_here

TOOLKIT_VERSION = "v1.20.2"  # scripts/gpu-proof/bundle.sh's
MADE_UP = "GPU-00000000-1111-2222-3333-444444444444"
STACK = "cdiabsent"


def toolkit_bin() -> Path:
    """The toolkit's binaries, built like bundle.sh builds them when no cached build is there."""
    cache = Path(os.environ.get("TFBOX_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tfbox")
    built = sorted((cache / "nvidia-toolkit").glob(f"{TOOLKIT_VERSION}-*/bin/nvidia-container-runtime"))
    if built:
        return built[-1].parent
    gover = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True, check=True).stdout.strip()
    out = cache / "nvidia-toolkit" / f"{TOOLKIT_VERSION}-{gover}"
    subprocess.run(["go", "install", "-ldflags", "-s -w",
                    *(f"github.com/NVIDIA/nvidia-container-toolkit/cmd/{c}@{TOOLKIT_VERSION}"
                      for c in ("nvidia-ctk", "nvidia-container-runtime", "nvidia-cdi-hook"))],
                   env={**os.environ, "GOBIN": str(out / "bin"), "CGO_ENABLED": "1", "GOFLAGS": "-trimpath"}, check=True, timeout=900)
    return out / "bin"


@pytest.fixture(scope="module")
def cdi_host(tmp_path_factory: pytest.TempPathFactory, project: Project, registry: str) -> Iterator[SimpleNamespace]:
    """A daemon whose `nvidia` runtime (the default, as `nvidia-ctk runtime configure --set-as-default` makes
    it) is NVIDIA's in CDI mode, a one-GPU spec, and that GPU's nvidia-smi on the machine."""
    d = tmp_path_factory.mktemp("cdi")
    smi = (ROOT / "scripts" / "nvidia" / "nvidia-smi").read_text()
    host_bin = d / "bin"
    host_bin.mkdir()
    lines = [("NGPU=1" if line.startswith("NGPU=") else "CONTAINER_DEVICES=all" if line.startswith("CONTAINER_DEVICES=") else line)
             for line in smi.splitlines()]
    (host_bin / "nvidia-smi").write_text("\n".join(lines) + "\n")
    (host_bin / "nvidia-smi").chmod(0o755)
    uuid = subprocess.run([str(host_bin / "nvidia-smi"), "--query-gpu=uuid", "--format=csv,noheader"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert uuid.startswith("GPU-"), uuid
    specs = d / "cdi"
    specs.mkdir()
    devices = "".join(f'- name: "{n}"\n  containerEdits:\n    env: ["TFBOX_CDI_DEVICE={n}"]\n' for n in ("0", uuid, "all"))
    (specs / "nvidia.yaml").write_text(f"cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n{devices}")
    docker = start_daemon("e2e-cdi", env={"TFBOX_DOCKERD_NVIDIA_CDI": f"{toolkit_bin()}:{specs}",
                                          "TFBOX_DOCKERD_DEFAULT_RUNTIME": "nvidia"})
    image = f"{registry}/tfbox-test/nvidia-smi:latest"
    docker("pull", image, timeout=600)
    path = project.env["PATH"]
    project.env["PATH"] = f"{host_bin}:{path}"  # the machine's nvidia-smi, as on a GPU host
    try:
        yield SimpleNamespace(docker=docker, image=image, uuid=uuid)
    finally:
        project.env["PATH"] = path
        stop_daemon("e2e-cdi")


def test_the_daemon_runs_nvidias_cdi_runtime_which_refuses_an_absent_gpu_with_dockers_words(cdi_host: SimpleNamespace) -> None:
    """What tfbox spares the user, and that this daemon is the real thing: GPU 0 and its UUID resolve, 7 does not."""
    d = cdi_host.docker
    for present in ("0", cdi_host.uuid):
        ran = d("run", "--rm", "--gpus", f"device={present}", cdi_host.image, "sh", "-c", "echo $TFBOX_CDI_DEVICE", check=False)
        assert ran.returncode == 0 and ran.stdout.strip() == present, (ran.stdout, ran.stderr)
    refused = d("run", "--rm", "--gpus", "device=7", cdi_host.image, "true", check=False)
    assert refused.returncode != 0 and "unresolvable CDI devices nvidia.com/gpu=7" in refused.stderr, refused.stderr


@pytest.mark.parametrize("gpus", ["7", MADE_UP])
def test_an_absent_gpu_stops_preview_and_up_with_tfboxs_message_and_nothing_is_created(
        cdi_host: SimpleNamespace, project: Project, password: str, gpus: str) -> None:
    stack = project.stack(f"{STACK}{len(gpus)}", {
        "docker:host": cdi_host.docker.host, "tfbox:image": cdi_host.image, "tfbox:gpus": gpus, "tfbox:gpuCheck": True,
        "tfbox:notebookPort": free_port(), "tfbox:tensorboardMode": "off", **gpu_ulimits_here(),
    }, password)
    named = f"GPU {gpus}" if gpus.isdigit() else gpus
    said = f"tfbox:gpus: stack '{stack.name}' asks for {named}, which this machine does not have: its nvidia-smi -L lists " \
           f"GPU 0 (NVIDIA H200, {cdi_host.uuid}). Fix: name GPUs it lists, by index or UUID, e.g. `pulumi config set tfbox:gpus 0`"
    try:
        for run in (stack.preview(check=False), stack.up(check=False)):
            out = " ".join(run.output.split())
            assert run.returncode != 0, out[-3000:]
            assert said in out, out[-3000:]
            assert "unresolvable CDI devices" not in out, "Docker's words reached the user"
        names = cdi_host.docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
        assert not [n for n in names if n.startswith(f"tfbox-{stack.name}-")], f"containers were created: {names}"
        # the GPU the machine has goes through the same preflight (and on to the GPU check at up)
        project.pulumi("config", "set", "tfbox:gpus", "0", "--stack", stack.name)
        ok = stack.preview(check=False)
        assert ok.returncode == 0, ok.output[-3000:]
    finally:
        stack.destroy(check=False)
