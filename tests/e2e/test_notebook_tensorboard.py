"""Scenario 2: code run in a notebook kernel trains a Keras model with the TensorBoard
callback into the shared logs; TensorBoard's API then lists the run and its scalars; the
`capture` helper brings TensorFlow's C++ output into the cell. All of it with the containers
hardened (and the notebook given memory, CPU and ulimit settings): each setting is checked on
the daemon, and a refreshed preview shows no change."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from tests.e2e.harness import Docker, Jupyter, Project, http_get

NB, TB = "tfbox-train-notebook", "tfbox-train-tensorboard"
LIMITS = {"tfbox:notebookMemory": "4g", "tfbox:notebookCpus": "2", "tfbox:notebookUlimits": "stack=67108864"}
CAP_NET_RAW = 1 << 13

# root in the kernel installs a package into the system site-packages, as `!pip install` does
PIP_INSTALL = """
import os, pathlib, subprocess, sys
src = pathlib.Path("/tmp/tfboxprobe"); (src / "tfboxprobe").mkdir(parents=True, exist_ok=True)
(src / "tfboxprobe" / "__init__.py").write_text("")
(src / "pyproject.toml").write_text('[project]\\nname = "tfboxprobe"\\nversion = "1"\\n'
    '[build-system]\\nrequires = ["setuptools"]\\nbuild-backend = "setuptools.build_meta"\\n')
subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-build-isolation",
                "--root-user-action=ignore", str(src)], check=True)
out = subprocess.run([sys.executable, "-c", "import tfboxprobe; print(tfboxprobe.__file__)"], cwd="/",
                     capture_output=True, text=True, check=True).stdout
print("installed-ok", out.strip())
"""

TRAIN = """
import numpy as np, tensorflow as tf
x = np.random.rand(64, 4).astype("float32"); y = x.sum(axis=1, keepdims=True)
model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse")
cb = tf.keras.callbacks.TensorBoard(log_dir="/tf/logs/e2e-run")
model.fit(x, y, epochs=3, verbose=0, callbacks=[cb])
print("fit-done", tf.__version__)
"""

CAPTURE = """
import tensorflow as tf
with capture():
    # TensorFlow's C++ PrintV2 kernel opens and writes the file itself: fd 2, never sys.stderr
    tf.print("tfbox-cpp-marker", output_stream="file:///proc/self/fd/2")
    import os; os.write(1, b"raw-fd-1-marker\\n")
"""

# A fresh kernel imports TensorFlow; a child Python with TF_CPP_MIN_LOG_LEVEL=0 is the control that shows
# this image does print C++ log lines at import when not quieted.
TF_IMPORT = """
import os, subprocess, sys
print("level", os.environ.get("TF_CPP_MIN_LOG_LEVEL"))
loud = subprocess.run([sys.executable, "-c", "import tensorflow"], capture_output=True, text=True,
                      env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"})
print("LOUD<<" + loud.stderr + ">>LOUD")
import tensorflow
"""
# TensorFlow's C++ log prefix: `2025-01-02 03:04:05.678901: I tensorflow/...` or absl's `I0000 00:00:...`
CPP_LOG_LINE = re.compile(r"(^|\n)(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] |[IWE]\d{4} \d\d:\d\d:\d\d)")


@pytest.fixture(scope="module")
def lab(project: Project, docker_a: Docker, cpu_image: str, password: str) -> Iterator[SimpleNamespace]:
    stack, nb, tb = project.lab("train", docker_a.host, cpu_image, password, **LIMITS)
    session = Jupyter(nb)
    assert session.login(password)
    yield SimpleNamespace(stack=stack, session=session, tb=tb, docker=docker_a)
    stack.destroy(check=False)


def test_training_logs_show_up_in_tensorboard(lab: SimpleNamespace) -> None:
    result = lab.session.execute(TRAIN)
    assert not result["error"], result["error"]
    assert "fit-done" in result["stdout"]
    deadline = time.monotonic() + 120
    tags: dict[str, dict[str, object]] = {}
    points: list[list[float]] = []
    while time.monotonic() < deadline:  # TensorBoard reloads its logdir every few seconds
        status, body = http_get(lab.tb + "/data/plugin/scalars/tags")
        tags = json.loads(body) if status == 200 else {}
        if "epoch_loss" in tags.get("e2e-run/train", {}):
            status, body = http_get(lab.tb + "/data/plugin/scalars/scalars?run=e2e-run%2Ftrain&tag=epoch_loss")
            points = json.loads(body) if status == 200 else []
            if len(points) == 3:
                break
        time.sleep(3)
    assert "e2e-run/train" in tags, f"TensorBoard lists {sorted(tags)}"
    assert "epoch_loss" in tags["e2e-run/train"]
    assert [step for _, step, _ in points] == [0, 1, 2], "one loss point per epoch"


def test_capture_brings_cpp_output_into_the_cell(lab: SimpleNamespace) -> None:
    result = lab.session.execute(CAPTURE)
    assert not result["error"], result["error"]
    assert "tfbox-cpp-marker" in result["stderr"]
    assert "raw-fd-1-marker" in result["stdout"]


def test_tensorflow_import_prints_no_cpp_log_block_by_default(lab: SimpleNamespace) -> None:
    result = lab.session.execute(TF_IMPORT)
    assert not result["error"], result["error"]
    assert "level 2" in result["stdout"], "tfbox:tfLogLevel's default reaches the kernel"
    loud = result["stdout"].split("LOUD<<", 1)[1].split(">>LOUD", 1)[0]
    assert CPP_LOG_LINE.search(loud), f"control: at level 0 this image logs at import, got {loud!r}"
    assert not CPP_LOG_LINE.search(result["stderr"]), result["stderr"]


def proc_status(docker: Docker, name: str, field: str) -> str:
    line = next(x for x in docker("exec", name, "cat", "/proc/1/status").stdout.splitlines() if x.startswith(field + ":"))
    return line.split(":", 1)[1].strip()


def test_notebook_is_hardened_on_the_daemon(lab: SimpleNamespace) -> None:
    host = lab.docker.inspect(NB)["HostConfig"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Init"] is True
    assert sorted(host["CapDrop"]) == ["CAP_AUDIT_WRITE", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETFCAP", "CAP_SYS_CHROOT"]
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "3", "max-size": "10m"}}
    assert host["ShmSize"] == 1 << 30
    assert host["Ulimits"] == [{"Name": "stack", "Soft": 67108864, "Hard": 67108864}]
    assert (host["Memory"], host["MemorySwap"], host["NanoCpus"]) == (4 << 30, -1, 2_000_000_000)
    # what the processes get: docker-init as PID 1, no privilege gain, no raw sockets, a 1 GiB /dev/shm
    assert lab.docker("exec", NB, "cat", "/proc/1/comm").stdout.strip() == "docker-init"
    assert proc_status(lab.docker, NB, "NoNewPrivs") == "1"
    assert not int(proc_status(lab.docker, NB, "CapEff"), 16) & CAP_NET_RAW
    assert lab.docker("exec", NB, "df", "-k", "--output=size", "/dev/shm").stdout.split()[-1] == str(1 << 20)
    # root in the kernel can still install packages (pip into the system site-packages)
    cell = lab.session.execute(PIP_INSTALL)
    assert not cell["error"], cell["error"]
    assert "installed-ok /usr/local/lib/" in cell["stdout"], cell



def test_tensorboard_is_unprivileged_and_read_only(lab: SimpleNamespace) -> None:
    info = lab.docker.inspect(TB)
    host = info["HostConfig"]
    assert info["Config"]["User"] == "65534:65534"
    assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"]
    assert host["Tmpfs"] == {"/tmp": "rw,noexec,nosuid,nodev,size=64m"}
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert lab.docker("exec", TB, "id", "-u").stdout.strip() == "65534"
    assert int(proc_status(lab.docker, TB, "CapEff"), 16) == 0
    assert proc_status(lab.docker, TB, "NoNewPrivs") == "1"
    denied = lab.docker("exec", TB, "touch", "/usr/local/probe", check=False)
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    # it still serves (the training test above reads the scalars of logs the notebook wrote as root)
    assert http_get(lab.tb + "/data/logdir")[0] == 200


def test_hardened_lab_converges(lab: SimpleNamespace) -> None:
    """The provider reads some settings back in other units (MiB, "2.0" CPUs): no diff after a refresh."""
    lab.stack.refresh()
    lab.stack.preview("--expect-no-changes")
