import json
import subprocess
import sys

from components import commands


def test_jupyter_config_sets_password_and_disables_token():
    config = json.loads(commands.jupyter_config("sha256:abcdefgh:00"))
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


def test_probes_are_valid_python_that_fail_when_nothing_listens():
    probe = commands.notebook_probe(tensorboard_inside=True)
    assert probe[:3] == ["CMD", "python3", "-c"]
    compile(probe[3], "<probe>", "exec")
    code = probe[3].replace("127.0.0.1:8888", "127.0.0.1:9")  # nothing listens on the discard port
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, check=False).returncode != 0
