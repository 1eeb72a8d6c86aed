"""A GPU selection spelled for Docker: `--gpus` device requests (the NVIDIA Container Toolkit path) or
the recipe's `--runtime=nvidia` with NVIDIA_VISIBLE_DEVICES (hosts set up with nvidia-docker2), and as
pulumi-docker Container inputs (the one place that knows the SDK's arg class)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi_docker as docker

from components.model.gpus import GpuSpec


def device_requests(gpu: GpuSettings) -> list[docker.ContainerDeviceRequestArgs] | None:
    req = gpu.device_request
    if req is None:
        return None
    return [docker.ContainerDeviceRequestArgs(
        driver=req.driver, count=req.count, device_ids=list(req.device_ids) or None, capabilities=list(req.capabilities),
    )]


def docker_gpus_flag(spec: GpuSpec) -> str | None:
    """The equivalent `docker run --gpus` value, for the GPU check's "try it by hand" hint.

    Docker parses the flag as CSV, so a device list carries its own double quotes,
    exactly as on the command line: `--gpus '"device=0,1"'`.
    """
    if spec.kind == "none":
        return None
    if spec.kind == "all":
        return "all"
    if spec.kind == "count":
        return f"count={spec.count}"
    return '"device=' + ",".join(spec.devices) + '"'


def visible_devices(spec: GpuSpec) -> str | None:
    """NVIDIA_VISIBLE_DEVICES for the legacy `--runtime=nvidia` mode."""
    if spec.kind == "none":
        return None
    if spec.kind == "all":
        return "all"
    if spec.kind == "count":
        return ",".join(str(i) for i in range(spec.count))
    return ",".join(spec.devices)


@dataclass(frozen=True)
class DeviceRequest:
    """Docker's structured GPU request (what `--gpus` turns into), for the Container's `device_requests`.

    Not the `gpus` string: Docker parses that as CSV, and the provider strips the quotes a
    device list needs ('"device=0,1"'), which leaves Docker with device 0 plus a count of 1
    and the error "cannot set both Count and DeviceIDs". The structured form has no quoting.
    """

    count: int = 0  # -1 means all
    device_ids: tuple[str, ...] = ()
    driver: str = "nvidia"  # explicit: the provider's default driver is "cdi"
    capabilities: tuple[str, ...] = ("gpu",)


def device_request(spec: GpuSpec) -> DeviceRequest | None:
    if spec.kind == "none":
        return None
    if spec.kind == "all":
        return DeviceRequest(count=-1)
    if spec.kind == "count":
        return DeviceRequest(count=spec.count)
    return DeviceRequest(device_ids=spec.devices)


@dataclass(frozen=True)
class GpuSettings:
    """The Container inputs that carry a GPU selection in one mode."""

    device_request: DeviceRequest | None = None
    runtime: str | None = None
    envs: tuple[str, ...] = ()


# A container without GPUs says so: a daemon whose default runtime is `nvidia` (a common GPU-host setup)
# would otherwise read the NVIDIA_VISIBLE_DEVICES=all that NVIDIA's CUDA images (TensorFlow's GPU images
# among them) set in their ENV, and hand the container every GPU. `void` makes NVIDIA's runtime behave
# like runc: no devices, no driver libraries. Harmless where the runtime is runc.
NO_GPUS_ENV = "NVIDIA_VISIBLE_DEVICES=void"


def container_gpu_settings(spec: GpuSpec, mode: str) -> GpuSettings:
    if not spec.requested:
        return GpuSettings(envs=(NO_GPUS_ENV,))
    if mode == "nvidia-runtime":
        return GpuSettings(
            runtime="nvidia",
            envs=(f"NVIDIA_VISIBLE_DEVICES={visible_devices(spec)}", "NVIDIA_DRIVER_CAPABILITIES=compute,utility"),
        )
    return GpuSettings(device_request=device_request(spec))


def expected_gpus(settings: GpuSettings) -> int | None:
    """How many GPUs a container with these settings must see: None without GPUs, 0 for "all" (any, at least one).

    Read from the settings rather than the container's env: in device-requests mode Docker sets
    NVIDIA_VISIBLE_DEVICES in the main process only, where a `docker exec` health probe misses it.
    """
    req = settings.device_request
    if req is not None:
        if req.device_ids:
            return len(req.device_ids)
        return 0 if req.count < 0 else req.count
    for env in settings.envs:
        name, _, value = env.partition("=")
        if name == "NVIDIA_VISIBLE_DEVICES":
            if value in ("", "void", "none"):
                return None
            return 0 if value == "all" else len([v for v in value.split(",") if v])
    return None
