"""GpuCheck: the recipe's `docker run --runtime=nvidia --rm nvidia/cuda nvidia-smi`, declared.

A one-shot container with the notebook's GPU selection runs `nvidia-smi -L` before the
notebook is created, and prints the driver's CUDA version and the image's CUDA requirement
(components.model.cuda). Its output becomes a stack output; if it fails, sees other GPUs than the
stack asked for, or the image needs a newer CUDA than the driver runs, `pulumi up` stops with
what to do, and the notebook (whose labels carry the verdict) is not created or touched.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.docker.devices import GpuSettings, device_requests, docker_gpus_flag, visible_devices
from components.docker.hardening import hardening_args
from components.docker.labels import docker_labels
from components.model import commands
from components.model.cuda import fits, incompatibility, parse_host_driver, parse_requirement
from components.model.gpus import GpuSpec, check_listed_gpus, parse_nvidia_smi_list
from components.model.hardening import gpu_check_hardening

INSTALL_HINT = {
    "device-requests": (
        "install the NVIDIA driver and the NVIDIA Container Toolkit on the Docker host, then restart Docker "
        "(`sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker`)"
    ),
    "nvidia-runtime": (
        "install the NVIDIA driver and nvidia-container-runtime on the Docker host and register the `nvidia` "
        "runtime in /etc/docker/daemon.json, then restart Docker"
    ),
}


class GpuCheckFailed(RuntimeError):
    pass


def image_env(output: str) -> dict[str, str]:
    """The image's CUDA env as the check printed it (commands.gpu_check_command)."""
    env: dict[str, str] = {}
    for line in output.splitlines():
        if line.startswith(commands.IMAGE_ENV_PREFIX):
            name, _, value = line[len(commands.IMAGE_ENV_PREFIX):].partition("=")
            env[name] = value.strip()
    return env


def cuda_problem(output: str) -> str | None:
    """Why the image's CUDA does not run on this driver, or None when it fits or either side is unknown."""
    env = image_env(output)
    req = parse_requirement(env.get("NVIDIA_REQUIRE_CUDA"), env.get("CUDA_VERSION"))
    host = parse_host_driver(output)
    if req is None or host is None or fits(req, host):
        return None
    return incompatibility(req, host)


def verdict(spec: GpuSpec, mode: str, exit_code: int | None, logs: str | None, check_cuda: bool = True) -> str:
    """'passed', or raise with what the user has to do; pure, so the tests read it directly.

    The label value stays 'passed' whatever was checked: it is on the notebook, and another
    value would replace every existing GPU notebook.
    """
    output = (logs or "").strip()
    problems: list[str] = []
    if exit_code not in (0, None):
        problems.append(f"nvidia-smi exited with {exit_code}")
    problems += check_listed_gpus(spec, parse_nvidia_smi_list(output))
    if problems:
        raise GpuCheckFailed(
            f"GPU check for tfbox:gpus={spec.describe()} failed: {'; '.join(problems)}.\n"
            f"nvidia-smi said: {output or '(nothing)'}\n"
            f"Try it by hand on the host: {manual_check(spec, mode)}\n"
            f"Fix: {INSTALL_HINT.get(mode, INSTALL_HINT['device-requests'])}; or change tfbox:gpus. "
            "Then run `pulumi up --replace <the gpu-check container URN>` to check again."
        )
    if check_cuda and (why := cuda_problem(output)):
        raise GpuCheckFailed(
            f"GPU check for tfbox:gpus={spec.describe()}: CUDA does not fit: {why}.\n"
            f"The check saw: {output}\n"
            "The notebook was not created or touched. After a driver upgrade run "
            "`pulumi up --replace <the gpu-check container URN>` to check again."
        )
    return "passed"


def manual_check(spec: GpuSpec, mode: str) -> str:
    """The recipe's own command with the same GPU selection, for the user to reproduce the failure."""
    if mode == "nvidia-runtime":
        return f"docker run --rm --runtime=nvidia -e NVIDIA_VISIBLE_DEVICES={visible_devices(spec)} <image> nvidia-smi -L"
    return f"docker run --rm --gpus '{docker_gpus_flag(spec)}' <image> nvidia-smi -L"


@dataclass
class GpuCheckArgs:
    container_name: str
    image_id: pulumi.Input[str]
    spec: GpuSpec
    mode: str
    gpu: GpuSettings
    labels: dict[str, str]
    check_cuda: bool = True  # False when the check runs another image than the notebook's (tfbox:gpuCheckImage)


class GpuCheck(pulumi.ComponentResource):
    output: pulumi.Output[str]
    verdict: pulumi.Output[str]

    def __init__(self, name: str, args: GpuCheckArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("tfbox:index:GpuCheck", name, None, opts)
        container = docker.Container(
            name,
            name=args.container_name,
            image=args.image_id,
            command=commands.gpu_check_command(),
            # the image's own CUDA requirement would make NVIDIA's hook refuse to start the check with its
            # own words; the check compares it itself and says what to do (the notebook keeps the hook's check)
            envs=[*args.gpu.envs, "NVIDIA_DISABLE_REQUIRE=true"],
            device_requests=device_requests(args.gpu),
            runtime=args.gpu.runtime,
            network_mode="none",  # nvidia-smi needs no network, and nothing else may reach this container
            must_run=False,  # it exits by design; refresh must not delete it for that
            attach=True,
            logs=True,
            restart="no",
            labels=docker_labels(args.labels, docker.ContainerLabelArgs),
            **hardening_args(gpu_check_hardening()),
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        spec, mode, check_cuda = args.spec, args.mode, args.check_cuda
        self.output = container.container_logs.apply(lambda s: (s or "").strip())
        self.verdict = pulumi.Output.all(container.exit_code, container.container_logs).apply(
            lambda v: verdict(spec, mode, v[0], v[1], check_cuda)
        )
        self.register_outputs({"output": self.output, "verdict": self.verdict})
