import http.server
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.kernel import jupyter
from components.model import commands


def test_jupyter_config_sets_password_and_disables_token():
    config = json.loads(jupyter.jupyter_config("sha256:abcdefgh:00"))
    assert config["PasswordIdentityProvider"]["hashed_password"] == "sha256:abcdefgh:00"
    assert config["PasswordIdentityProvider"]["password_required"] is True
    assert config["IdentityProvider"]["token"] == ""


def test_notebook_command_runs_jupyter_like_the_tensorflow_image():
    cmd = commands.notebook_command("/tf/logs", tensorboard_inside=False)
    assert cmd[:2] == ["bash", "-c"]
    assert "exec jupyter notebook --notebook-dir=/tf --ip=0.0.0.0 --port=8888 --no-browser --allow-root" in cmd[2]
    assert "tensorboard" not in cmd[2]
    assert "PASSWORD" not in cmd[2]


def test_exec_mode_starts_tensorboard_bound_to_all_interfaces():
    script = commands.notebook_command("/tf/my logs", tensorboard_inside=True)[2]
    assert "tensorboard '--logdir=/tf/my logs' --bind_all --port=6006" in script
    assert script.index("tensorboard") < script.index("exec jupyter")
    # the shell must accept what we generate
    assert subprocess.run(["bash", "-n", "-c", script], check=False).returncode == 0


def test_tensorboard_sidecar_binds_all():
    assert commands.tensorboard_command("/tf/logs") == ["tensorboard", "--logdir=/tf/logs", "--bind_all", "--port=6006"]


class _Answers(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path in ("/api", "/data/logdir") else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    """A local HTTP server answering 200 on the notebook's and TensorBoard's probe paths, 404 elsewhere."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)


def test_probes_run_in_bash_not_python():
    # a probe runs every interval for as long as the lab runs: bash costs a third of Python (bench/probe_cost.py)
    for probe in (commands.notebook_probe(tensorboard_inside=True), commands.tensorboard_probe()):
        assert probe[:3] == ["CMD", "bash", "-c"]
        assert run(["bash", "-n", "-c", probe[3]]).returncode == 0


def test_http_check_passes_only_on_200(server: int):
    assert run(["bash", "-c", commands.bash_http_check(server, "/api")]).returncode == 0
    assert run(["bash", "-c", commands.bash_http_check(server, "/nothing-here")]).returncode != 0  # 404
    assert run(["bash", "-c", commands.bash_http_check(9, "/api")]).returncode != 0  # nothing listens on discard
    # TLS: bash cannot speak it, so the check is that the port accepts connections
    assert run(["bash", "-c", commands.bash_http_check(server, "/", tls=True)]).returncode == 0
    assert run(["bash", "-c", commands.bash_http_check(9, "/", tls=True)]).returncode != 0


def test_notebook_probe_checks_tensorboard_too_in_exec_mode():
    assert "/dev/tcp/127.0.0.1/6006" in commands.notebook_probe(tensorboard_inside=True)[3]
    assert "6006" not in commands.notebook_probe(tensorboard_inside=False)[3]


def test_ready_command_exits_once_everything_answers(server: int):
    checks = {"the notebook": commands.bash_http_check(server, "/api"), "TensorBoard": commands.bash_http_check(server, "/data/logdir")}
    done = run(commands.ready_command(checks, timeout=20))
    assert done.returncode == 0 and done.stdout.strip() == "ready"


def test_ready_command_names_what_did_not_answer(server: int):
    checks = {"the notebook": commands.bash_http_check(server, "/api"), "TensorBoard": commands.bash_http_check(9, "/data/logdir")}
    started = time.monotonic()
    done = run(commands.ready_command(checks, timeout=2))
    assert done.returncode == 1
    assert done.stdout.strip() == "TensorBoard did not answer within 2 s"
    assert 0.5 < time.monotonic() - started < 15  # bash counts whole seconds: 2 s is 1 to 2 s


# --- GPU health (issue 9 §3) ---------------------------------------------------------------

STAND_IN_SMI = str(Path(commands.__file__).parents[2]) + "/scripts/nvidia"


def gpu_check(expected: int, visible: str, lost: str) -> subprocess.CompletedProcess[str]:
    """commands.bash_gpu_check against the stand-in nvidia-smi, as the health probe runs it in the notebook."""
    env = {"PATH": f"{STAND_IN_SMI}:/usr/bin:/bin", "NVIDIA_VISIBLE_DEVICES": visible, "TFBOX_NVIDIA_LOST": lost}
    return subprocess.run(["bash", "-c", commands.bash_gpu_check(expected)], env=env, capture_output=True, text=True,
                          timeout=30, check=False)


@pytest.mark.parametrize(("expected", "visible"), [(2, "0,1"), (1, "3"), (0, "all"), (8, "all")])
def test_gpu_check_passes_while_the_gpus_are_there(tmp_path, expected, visible):
    done = gpu_check(expected, visible, str(tmp_path / "lost"))
    assert done.returncode == 0 and done.stdout == ""


def test_lost_gpus_fail_the_check_and_say_why(tmp_path):
    (tmp_path / "lost").touch()  # the stand-in now answers like a container after `systemctl daemon-reload`
    for expected in (2, 0):
        done = gpu_check(expected, "0,1", str(tmp_path / "lost"))
        assert done.returncode != 0
        assert done.stdout.startswith(commands.GPUS_LOST)
        assert "nvidia-smi -L exited 255 listing 0 GPUs" in done.stdout
        assert "Failed to initialize NVML: Unknown Error" in done.stdout


def test_fewer_gpus_than_given_fail_the_check(tmp_path):
    done = gpu_check(2, "0", str(tmp_path / "lost"))
    assert done.returncode != 0 and "listing 1 GPUs (2 given)" in done.stdout


def test_no_nvidia_smi_fails_the_check(tmp_path):
    env = {"PATH": "/nonexistent", "TFBOX_NVIDIA_LOST": str(tmp_path / "lost")}
    done = subprocess.run(["/bin/bash", "-c", commands.bash_gpu_check(0)], env=env, capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "exited 127" in done.stdout


def test_gpu_probe_checks_gpus_first_then_jupyter():
    probe = commands.notebook_probe(gpus=2)
    assert probe[:3] == ["CMD", "bash", "-c"]
    assert run(["bash", "-n", "-c", probe[3]]).returncode == 0
    assert probe[3].index("nvidia-smi -L") < probe[3].index("/dev/tcp/127.0.0.1/8888")


def test_cpu_probe_and_config_are_unchanged():
    # existing CPU labs must not be replaced by the GPU health check or culling: same probe, same config file
    # the probe as released before GPU health (a different one would replace every existing CPU notebook)
    assert commands.notebook_probe() == ["CMD", "bash", "-c", (
        "exec 3<>/dev/tcp/127.0.0.1/8888 && printf 'GET /api HTTP/1.0\\r\\nHost: 127.0.0.1:8888\\r\\n\\r\\n' >&3 && "
        "read -r -t 4 _ code _ <&3 && exec 3>&- && [ \"$code\" = 200 ]")]
    assert set(json.loads(jupyter.jupyter_config("h"))) == {"IdentityProvider", "PasswordIdentityProvider", "ServerApp"}
    assert jupyter.jupyter_config("h") == jupyter.jupyter_config("h", cull_idle_seconds=0)


def test_culling_in_the_jupyter_config():
    config = json.loads(jupyter.jupyter_config("h", cull_idle_seconds=3600))
    assert config["MappingKernelManager"] == {
        "cull_idle_timeout": 3600, "cull_interval": 300, "cull_connected": False, "cull_busy": False}
    assert config["PasswordIdentityProvider"]["hashed_password"] == "h"
