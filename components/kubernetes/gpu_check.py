"""The GPU check on Kubernetes: an init container `gpu-check` in a GPU seat's pod (tfbox:gpuCheck).

Why an init container: on Docker the check is a one-shot container that runs before the notebook is made; on a
cluster the notebook's GPUs are whatever the device plugin hands the pod, known only once it is scheduled. An
init container with the same `nvidia.com/gpu` limit gets those devices (the kubelet hands an init container's
devices on to the app containers), runs `nvidia-smi -L` on them, and the notebook starts only when it passed.
It checks what Docker's does (components.model.commands.bash_gpu_check, components.model.cuda): nvidia-smi
works and lists exactly the GPUs asked for, and the image's CUDA requirement fits the node's driver. It runs in
the notebook's own image, so the CUDA compared is the notebook's; NVIDIA's hook is told not to refuse it for its
CUDA (NVIDIA_DISABLE_REQUIRE, as on Docker), so the check says why in its own words: its verdict is its
termination message (`kubectl get pod -o yaml`, `make doctor`), the pod stays in `Init:Error` /
`Init:CrashLoopBackOff` and the kubelet retries it (a node whose GPU comes back recovers by itself).
"""

from __future__ import annotations

import ast
import inspect
import shlex
from collections.abc import Mapping
from typing import Any

from components.model import cuda

CONTAINER = "gpu-check"
VERDICT_PREFIX = "tfbox gpu-check"  # how its termination message starts (components.kubernetes.health reads it)
FAILED = f"{VERDICT_PREFIX} failed:"
TERMINATION_LOG = "/dev/termination-log"

# The CUDA half, in Python (every notebook image has python3; the check skips it, saying so, where there is
# none): the model's own rules (components/model/cuda.py, pure stdlib) with a main that reads the image's env
# and plain nvidia-smi's header line (argv[1]); exit 1 printing the incompatibility when the image does not fit.
_CUDA_MAIN = """
import os, sys
_req = parse_requirement(os.environ.get("NVIDIA_REQUIRE_CUDA"), os.environ.get("CUDA_VERSION"))
_host = parse_host_driver(sys.argv[1])
if _req is not None and _host is not None and not fits(_req, _host):
    print(incompatibility(_req, _host))
    sys.exit(1)
"""


def cuda_script() -> str:
    """components/model/cuda.py without its docstrings and comments (the pod spec carries it), plus the main."""
    tree = ast.parse(inspect.getsource(cuda))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
    return ast.unparse(tree) + "\n" + _CUDA_MAIN


def gpu_check_script(gpus: int, check_cuda: bool = True) -> str:
    """The init container's sh script: exit 0 when `nvidia-smi -L` lists exactly `gpus` GPUs (and the image's
    CUDA fits); its one-line verdict goes to the termination message and stdout either way."""
    lines = [
        "say() { echo \"$1\" >" + TERMINATION_LOG + " 2>/dev/null; echo \"$1\"; }",
        "out=$(nvidia-smi -L 2>&1); rc=$?",
        "n=0; while IFS= read -r l; do case $l in 'GPU '*) n=$((n + 1)) ;; esac; done <<EOF\n$out\nEOF",
        f"if [ $rc -ne 0 ] || [ $n -ne {gpus} ]; then "
        f"say \"{FAILED} nvidia-smi -L exited $rc listing $n GPUs ({gpus} given): $out\"; exit 1; fi",
    ]
    if check_cuda:
        lines += [
            "head=$(nvidia-smi 2>&1 | while IFS= read -r l; do case $l in *'CUDA Version'*) echo \"$l\" ;; esac; done)",
            "if command -v python3 >/dev/null 2>&1; then "
            f"why=$(python3 -c {shlex.quote(cuda_script())} \"$head\" 2>&1) || "
            f"{{ say \"{FAILED} CUDA does not fit: $why\"; exit 1; }}; "
            "else out=\"$out (no python3 in the image: its CUDA was not compared with the driver)\"; fi",
        ]
    lines.append(f"say \"{VERDICT_PREFIX} passed: $out\"")
    return "\n".join(lines)


def make_gpu_check_container(image: str, gpus: int, resource: str = "nvidia.com/gpu",
                             user: int = 65534) -> dict[str, object]:
    """The `gpu-check` init container: the notebook's image, the same GPU limit, hardened as TensorBoard is
    (unprivileged, read-only root, every capability dropped: nvidia-smi only opens the device nodes it is given)."""
    return {
        "name": CONTAINER,
        "image": image,
        "command": ["sh", "-c", gpu_check_script(gpus)],
        # NVIDIA's hook would refuse to start a container whose image needs a newer CUDA, in words doctor cannot
        # quote; the check compares itself and says what to do (the notebook keeps the hook's check)
        "env": [{"name": "NVIDIA_DISABLE_REQUIRE", "value": "true"}],
        "resources": {"limits": {resource: str(gpus)}, "requests": {resource: str(gpus)}},
        "securityContext": {"runAsUser": user, "runAsGroup": user, "runAsNonRoot": True,
                            "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def failed_check(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """(cause, fix) when the pod's gpu-check init container failed (now or its last try: `Init:Error`,
    `Init:CrashLoopBackOff`), quoting its verdict; None when it passed, runs, or the pod has none. Pure (the
    pod as the API's JSON), for doctor (components.kubernetes.diagnose)."""
    status = pod.get("status") or {}
    for c in status.get("initContainerStatuses") or []:
        if c.get("name") != CONTAINER:
            continue
        state, last = c.get("state") or {}, c.get("lastState") or {}
        ended = state.get("terminated") or last.get("terminated") or {}
        waiting = state.get("waiting") or {}
        if "running" in state or (state.get("terminated") or {}).get("exitCode") == 0:
            return None
        if waiting.get("reason") in ("CreateContainerError", "RunContainerError", "CreateContainerConfigError"):
            message = f"{waiting.get('reason')}: {str(waiting.get('message', '')).strip()}"
        elif ended and ended.get("exitCode") != 0:
            message = str(ended.get("message") or "").strip() or f"exit code {ended.get('exitCode')}, no message"
        else:
            return None
        node = (pod.get("spec") or {}).get("nodeName", "")
        where = f"node {node}" if node else "its node"
        restarts = c.get("restartCount", 0)
        cause = (f"the GPU check failed on {where} (init container {CONTAINER}"
                 + (f", {restarts} restarts" if restarts else "") + f"): {message}")
        if "CUDA does not fit" in message:
            fix = "as the check says: an image built for the node's CUDA, or a newer NVIDIA driver on the node"
        else:
            fix = (f"on {where}, `nvidia-smi -L` must list the GPUs: check its NVIDIA driver, the NVIDIA container "
                   "toolkit and the device plugin's logs (a lost GPU: see the node in `make doctor`); the kubelet "
                   "retries the check and the notebook starts once it passes; or set tfbox:gpuCheck to false")
        return cause, fix
    return None


def check_state(pod: Mapping[str, Any]) -> str:
    """`Init:CrashLoopBackOff` or `Init:Error`, as `kubectl get pods` shows a pod whose check failed."""
    for c in (pod.get("status") or {}).get("initContainerStatuses") or []:
        if c.get("name") == CONTAINER:
            reason = ((c.get("state") or {}).get("waiting") or {}).get("reason")
            return f"Init:{reason}" if reason else "Init:Error"
    return "Init:Error"
