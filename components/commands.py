"""Command lines, health checks and the Jupyter config file the containers get.

Plain functions: the resource wiring only passes their results on, and the tests read
them directly.
"""

from __future__ import annotations

import json
import shlex

NOTEBOOK_DIR = "/tf"
JUPYTER_PORT = 8888
TENSORBOARD_PORT = 6006
JUPYTER_CONFIG_PATH = "/etc/jupyter/jupyter_server_config.json"
CAPTURE_STARTUP_PATH = "/root/.ipython/profile_default/startup/00-tfbox-capture.py"
TENSORBOARD_LOG = "/tmp/tensorboard.log"
TLS_CERT_PATH = "/etc/jupyter/tfbox-notebook.crt"
TLS_KEY_PATH = "/etc/jupyter/tfbox-notebook.key"


def jupyter_config(hashed_password: str, tls: bool = False) -> str:
    """Jupyter Server 2 settings: password login only, no token; HTTPS with the uploaded pair if `tls`.

    Uploaded as a file rather than passed as flags or env so the hash shows up in neither
    `docker inspect` nor `ps`; TensorFlow's old PASSWORD env var is ignored by current images.
    """
    config: dict[str, dict[str, object]] = {
        "IdentityProvider": {"token": ""},
        "PasswordIdentityProvider": {
            "hashed_password": hashed_password,
            "password_required": True,
            "allow_password_change": False,
        },
        "ServerApp": {"allow_remote_access": True},
    }
    if tls:
        config["ServerApp"].update(certfile=TLS_CERT_PATH, keyfile=TLS_KEY_PATH)
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def jupyter_argv() -> list[str]:
    """The notebook server as TensorFlow's jupyter images start it."""
    return [
        "jupyter", "notebook",
        f"--notebook-dir={NOTEBOOK_DIR}", "--ip=0.0.0.0", f"--port={JUPYTER_PORT}",
        "--no-browser", "--allow-root",
    ]


def tensorboard_argv(logs_dir: str) -> list[str]:
    # --bind_all: inside a container TensorBoard otherwise listens on localhost only.
    return ["tensorboard", f"--logdir={logs_dir}", "--bind_all", f"--port={TENSORBOARD_PORT}"]


def notebook_command(logs_dir: str, tensorboard_inside: bool) -> list[str]:
    """The notebook container's command; in `exec` mode it also starts TensorBoard, as the recipe did by hand."""
    steps = ["source /etc/bash.bashrc", f"mkdir -p {shlex.quote(logs_dir)}"]
    if tensorboard_inside:
        steps.append(f"({shlex.join(tensorboard_argv(logs_dir))} >{TENSORBOARD_LOG} 2>&1 &)")
    steps.append("exec " + shlex.join(jupyter_argv()))
    return ["bash", "-c", " && ".join(steps)]


def tensorboard_command(logs_dir: str) -> list[str]:
    return tensorboard_argv(logs_dir)


def http_probe(*urls: str) -> list[str]:
    """A Docker health check that needs only the image's Python (no curl in every image).

    An https URL is fetched without certificate verification: the probe only asks whether the
    server in this same container answers, over loopback, and the certificate names the host.
    """
    tls = any(u.startswith("https:") for u in urls)
    code = ("import ssl, urllib.request\n" if tls else "import urllib.request\n") + "".join(
        f"urllib.request.urlopen({u!r}, timeout=4{', context=ssl._create_unverified_context()' if u.startswith('https:') else ''})\n"
        for u in urls)
    return ["CMD", "python3", "-c", code]


def notebook_probe(tensorboard_inside: bool = False, tls: bool = False) -> list[str]:
    # /api answers without login, so the probe needs no secret; in exec mode TensorBoard counts too.
    urls = [f"{'https' if tls else 'http'}://127.0.0.1:{JUPYTER_PORT}/api"]
    if tensorboard_inside:
        urls.append(f"http://127.0.0.1:{TENSORBOARD_PORT}/data/logdir")
    return http_probe(*urls)


def tensorboard_probe() -> list[str]:
    return http_probe(f"http://127.0.0.1:{TENSORBOARD_PORT}/data/logdir")


def gpu_check_command() -> list[str]:
    return ["nvidia-smi", "-L"]
