"""Command lines, health checks and the paths inside the containers (the files' texts: components.kernel.jupyter).

Plain functions: the resource wiring only passes their results on, and the tests read
them directly.
"""

from __future__ import annotations

import shlex

NOTEBOOK_DIR = "/tf"
JUPYTER_PORT = 8888
TENSORBOARD_PORT = 6006
JUPYTER_CONFIG_PATH = "/etc/jupyter/jupyter_server_config.json"
# Jupyter reads the .py config next to the .json one: components/kernel/login_guard.py, the login flood guard
CAPTURE_STARTUP_PATH = "/root/.ipython/profile_default/startup/00-tfbox-capture.py"
TENSORBOARD_LOG = "/tmp/tensorboard.log"
TLS_CERT_PATH = "/etc/jupyter/tfbox-notebook.crt"
TLS_KEY_PATH = "/etc/jupyter/tfbox-notebook.key"
# TensorBoard behind the notebook's login (components.kernel.tensorboard_proxy): the extension's module in a
# directory of its own, and the Python config file that puts it on sys.path, enables it and names its upstream.
TENSORBOARD_PROXY_DIR = "/etc/jupyter/tfbox"
TENSORBOARD_PROXY_MODULE_PATH = f"{TENSORBOARD_PROXY_DIR}/tfbox_tensorboard_proxy.py"
JUPYTER_PY_CONFIG_PATH = "/etc/jupyter/jupyter_server_config.py"


def tensorboard_proxy_target(tensorboard_host: str | None) -> str:
    """The one upstream of the proxy: the sidecar by its container name on the seat's network, else
    (exec mode) TensorBoard inside the notebook container."""
    return f"http://{tensorboard_host or '127.0.0.1'}:{TENSORBOARD_PORT}"


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


def bash_http_check(port: int, path: str, tls: bool = False, host: str = "127.0.0.1") -> str:
    """A bash snippet that succeeds when host:port answers GET path with 200, using only bash's /dev/tcp.

    Why bash: a health probe runs for as long as the lab runs, and one in bash costs a third of
    one in Python (bench/probe_cost.py: the image's Python starts for every probe). bash cannot
    speak TLS, so with `tls` the check is that the port accepts connections: Jupyter listens
    only once it can serve.
    """
    opened = f"exec 3<>/dev/tcp/{host}/{port}"
    if tls:
        return f"{opened} && exec 3>&-"
    request = f"GET {path} HTTP/1.0\\r\\nHost: {host}:{port}\\r\\n\\r\\n"
    return (f"{opened} && printf '{request}' >&3 && read -r -t 4 _ code _ <&3 && exec 3>&- && [ \"$code\" = 200 ]")


# Docker health check timing, as the provider reads durations back (Go's format: "120s" would diff as
# "2m0s" on every preview). Not what `up` waits on (components.docker.ready), so a probe every 30 s is enough.
HEALTHCHECK_INTERVAL = "30s"


def bash_probe(*checks: str) -> list[str]:
    return ["CMD", "bash", "-c", " && ".join(checks)]


# Health check timing of GPU notebooks: a container that lost its GPUs (nvidia-container-toolkit#48) turns
# unhealthy at most 30 s after (two failing probes 15 s apart): as fast as one probe every 30 s with no
# retry, yet one slow answer of Jupyter alone does not flip it. Others keep one probe every 30 s, 3 retries.
GPU_HEALTHCHECK_INTERVAL = "15s"
GPU_HEALTHCHECK_RETRIES = 2
HEALTHCHECK_RETRIES = 3
GPUS_LOST = "tfbox: GPUs lost:"  # how the probe's output (docker inspect's State.Health.Log) starts when they are


def bash_gpu_check(expected: int) -> str:
    """A bash snippet that succeeds when `nvidia-smi -L` works and lists `expected` GPUs (0: at least one).

    On failure it prints one line starting with GPUS_LOST and nvidia-smi's own words
    ("Failed to initialize NVML: Unknown Error"), which Docker keeps in the health log.
    """
    wanted = "$n -ge 1" if expected == 0 else f"$n -eq {expected}"
    of = "at least 1 expected" if expected == 0 else f"{expected} given"
    return ("{ out=$(nvidia-smi -L 2>&1); rc=$?; n=0; "
            "while IFS= read -r l; do case $l in 'GPU '*) n=$((n + 1)) ;; esac; done <<<\"$out\"; "
            f"if [ $rc -ne 0 ] || ! [ {wanted} ]; then "
            f"echo \"{GPUS_LOST} nvidia-smi -L exited $rc listing $n GPUs ({of}): $out\"; false; fi; }}")


def notebook_probe(tensorboard_inside: bool = False, tls: bool = False, gpus: int | None = None) -> list[str]:
    """/api answers without login, so the probe needs no secret; in exec mode TensorBoard counts too.
    With `gpus` (components.model.gpus.expected_gpus) the GPUs are checked first, so a notebook that lost them
    says so even when Jupyter does not answer either."""
    checks = [bash_http_check(JUPYTER_PORT, "/api", tls)]
    if gpus is not None:
        checks.insert(0, bash_gpu_check(gpus))
    if tensorboard_inside:
        checks.append(bash_http_check(TENSORBOARD_PORT, "/data/logdir"))
    return bash_probe(*checks)


def tensorboard_probe() -> list[str]:
    return bash_probe(bash_http_check(TENSORBOARD_PORT, "/data/logdir"))


def tensorboard_check(host: str = "127.0.0.1") -> str:
    return bash_http_check(TENSORBOARD_PORT, "/data/logdir", host=host)


def notebook_check(tls: bool = False) -> str:
    return bash_http_check(JUPYTER_PORT, "/api", tls)


READY_TIMEOUT = 300  # seconds `up` waits for the lab to answer (the old health-check wait_timeout)


def ready_command(checks: dict[str, str], timeout: int = READY_TIMEOUT, after: list[str] | None = None) -> list[str]:
    """The ready container's command: poll `checks` (what -> bash_http_check snippet) every 0.1 s
    until all pass, then run each of `after` once (a failure of one ends it with exit 1: it says why
    itself), then exit 0; exit 1 naming what did not answer after `timeout` seconds.

    Polling from inside a one-shot container costs nothing once the lab runs, and `up` learns
    the moment the lab answers (Docker reports the exit at once), where the provider's wait for
    a health check polls once a second and the check itself runs only every interval.
    """
    waits = []
    for what, check in checks.items():
        waits.append(
            f"until ( {check} ) 2>/dev/null; do "
            f"if [ $SECONDS -ge {timeout} ]; then echo {shlex.quote(f'{what} did not answer within {timeout} s')}; exit 1; fi; "
            "sleep 0.1; done"
        )
    once = [f"{{ {check}; }} || exit 1" for check in after or []]
    return ["bash", "-c", "; ".join([*waits, *once, "echo ready"])]


PROXY_CHECK = """\
import http.client, ssl, sys
tls, port = sys.argv[1] == "tls", int(sys.argv[2])
c = (http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ssl._create_unverified_context()) if tls
     else http.client.HTTPConnection("127.0.0.1", port, timeout=10))
c.request("GET", "/tensorboard/")
r = c.getresponse()
if r.status in (301, 302, 303, 307) and "/login" in (r.getheader("Location") or ""):
    sys.exit(0)
print(f"the notebook does not serve /tensorboard/ behind its login (HTTP {r.status} where the login page's redirect "
      "was expected): this image's Jupyter did not load tfbox's TensorBoard extension, which needs Jupyter Server 2 "
      "(Notebook 7 or JupyterLab 4, as in current tensorflow/tensorflow:*-jupyter images; `docker logs` of the notebook "
      "names tfbox_tensorboard_proxy). Fix: use such an image (tfbox:image), or set tfbox:tensorboardProxy to false "
      "and reach TensorBoard by its own port")
sys.exit(1)
"""


def tensorboard_proxy_check(tls: bool) -> str:
    """A one-time check, once the notebook answers, that it serves `/tensorboard/` behind its login:
    an anonymous GET is sent to the login page. A 404 means the image's Jupyter did not load the
    extension (no Jupyter Server 2), which `up` reports with the fix instead of a 404 in the browser.
    Python, once per ready check: bash cannot speak TLS, and every TensorFlow image has python3."""
    return shlex.join(["python3", "-c", PROXY_CHECK, "tls" if tls else "plain", str(JUPYTER_PORT)])


# The GPU check prints the image's CUDA env on lines starting with this (components.docker.gpu_check reads them).
IMAGE_ENV_PREFIX = "image "
IMAGE_CUDA_ENV = ("CUDA_VERSION", "NVIDIA_REQUIRE_CUDA")


def gpu_check_command() -> list[str]:
    """The GPU check: `nvidia-smi -L` (its exit status is the check's), the header line of plain
    `nvidia-smi` (driver and CUDA version) and the image's CUDA requirement, which the container
    inherits from the image's env. Plain `sh`, no grep: the check image may be a minimal one."""
    script = "; ".join([
        "nvidia-smi -L || exit $?",
        "nvidia-smi | while IFS= read -r line; do case $line in *'CUDA Version'*) echo \"$line\" ;; esac; done",
        *(f'echo "{IMAGE_ENV_PREFIX}{name}=${{{name}-}}"' for name in IMAGE_CUDA_ENV),
    ])
    return ["sh", "-c", script]
