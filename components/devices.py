"""GpuSettings as pulumi-docker Container inputs (the one place that knows the SDK's arg class)."""

from __future__ import annotations

import pulumi_docker as docker

from components.gpus import GpuSettings


def device_requests(gpu: GpuSettings) -> list[docker.ContainerDeviceRequestArgs] | None:
    req = gpu.device_request
    if req is None:
        return None
    return [docker.ContainerDeviceRequestArgs(
        driver=req.driver, count=req.count, device_ids=list(req.device_ids) or None, capabilities=list(req.capabilities),
    )]
