"""Hardening intent (components.model.hardening) spelled as the docker provider's Container inputs."""

from __future__ import annotations

from typing import Any

import pulumi_docker as docker

from components.model.hardening import MIB, ContainerHardening, cpus_readback

LOG_DRIVER = "json-file"  # the rotated container log of ContainerHardening.log_opts


def provider_mib(n: int) -> int:
    """Sizes as the docker provider takes and reads them back (`shm_size`, `memory`: MiB)."""
    return n // MIB


def provider_cpus(nano: int) -> str:
    """`cpus` as the docker provider reads it back (components.model.hardening.cpus_readback)."""
    return cpus_readback(nano)


def hardening_args(h: ContainerHardening) -> dict[str, Any]:
    """The docker provider's Container inputs for a hardening, spelled as the provider reads them back
    (sizes in MiB, CPUs in its decimal form) so a second `up` sees no change; unset ones are left out."""
    args: dict[str, Any] = {"security_opts": list(h.security_opts)}
    if h.user is not None:
        args["user"] = h.user
    if h.read_only:
        args["read_only"] = True
    if h.tmpfs:
        args["tmpfs"] = dict(h.tmpfs)
    if h.cap_drop:
        args["capabilities"] = docker.ContainerCapabilitiesArgs(drops=list(h.cap_drop))
    if h.init is not None:
        args["init"] = h.init
    if h.log_opts:
        args["log_driver"] = LOG_DRIVER
        args["log_opts"] = dict(h.log_opts)
    if h.shm_bytes is not None:
        args["shm_size"] = provider_mib(h.shm_bytes)
    if h.memory_bytes is not None:
        args["memory"] = provider_mib(h.memory_bytes)
        # Docker would set swap to twice the memory, or -1 on hosts without swap accounting: either reads
        # back as a change on every `up`. -1 (swap not limited) is read back as -1 everywhere.
        args["memory_swap"] = -1
    if h.nano_cpus is not None:
        args["cpus"] = provider_cpus(h.nano_cpus)
    if h.ulimits:
        args["ulimits"] = [docker.ContainerUlimitArgs(name=u.name, soft=u.soft, hard=u.hard) for u in h.ulimits]
    return args
