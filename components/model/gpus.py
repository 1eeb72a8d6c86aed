"""GPU selection: parse the stack's `tfbox:gpus` value, and read `nvidia-smi -L` listings.

Kept free of Pulumi and of any backend so the same rules serve the program, the stack-file
validator and the tests; how a container is given the GPUs is the backend's
(components.docker.devices renders it for Docker).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

GpuKind = Literal["none", "all", "count", "devices"]
GPU_MODES = ("device-requests", "nvidia-runtime")

_UUID_RE = re.compile(r"^(GPU|MIG)-[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")
_INDEX_RE = re.compile(r"^(0|[1-9][0-9]{0,2})$")
_COUNT_RE = re.compile(r"^count=([0-9]+)$")
_LIST_LINE_RE = re.compile(r"^GPU (\d+): (.+?) \(UUID: (GPU-[0-9a-fA-F-]+)\)\s*$")


class GpuSpecError(ValueError):
    """A `tfbox:gpus` value that Docker would not understand."""


@dataclass(frozen=True)
class GpuSpec:
    """Which GPUs a container gets; `devices` holds indices or UUIDs as given."""

    kind: GpuKind
    count: int = 0
    devices: tuple[str, ...] = ()

    @property
    def requested(self) -> bool:
        return self.kind != "none"

    def describe(self) -> str:
        """The selection as a user would write it in config (used in outputs and messages)."""
        if self.kind == "none":
            return "none"
        if self.kind == "all":
            return "all"
        if self.kind == "count":
            return f"count={self.count}"
        return ",".join(self.devices)


NO_GPUS = GpuSpec("none")


def parse_gpus(value: object) -> GpuSpec:
    """Accept '', 'none', 'all', 'count=N', a bare N, '0,1', 'GPU-<uuid>,...' or a YAML list."""
    if value is None or value is False:
        return NO_GPUS
    if isinstance(value, bool):
        raise GpuSpecError("true is not a GPU selection; write all, count=N or a list such as 0,1")
    if isinstance(value, int):
        return _count(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        items = [str(v).strip() for v in value]
        return _devices(items) if items else NO_GPUS
    text = str(value).strip()
    if text.startswith("[") and text.endswith("]"):  # a JSON list as Pulumi passes arrays
        inner = text[1:-1].replace('"', "").replace("'", "")
        items = [p.strip() for p in inner.split(",") if p.strip()]
        return _devices(items) if items else NO_GPUS
    if text.lower() in ("", "none", "no", "off", "0 gpus"):
        return NO_GPUS
    if text.lower() == "all":
        return GpuSpec("all")
    m = _COUNT_RE.match(text)
    if m:
        return _count(int(m.group(1)))
    text = text.strip('"')
    if text.startswith("device="):  # the CLI's own spelling, pasted from a docker run line
        text = text[len("device="):]
    return _devices([p.strip() for p in text.split(",")])


def _count(n: int) -> GpuSpec:
    if n < 1:
        raise GpuSpecError(f"a GPU count must be at least 1, got {n}; leave tfbox:gpus empty for none")
    if n > 64:
        raise GpuSpecError(f"a GPU count of {n} is more than any host has; use all")
    return GpuSpec("count", count=n)


def _devices(items: list[str]) -> GpuSpec:
    problems: list[str] = []
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        if not item:
            problems.append("an empty entry (a stray comma?)")
            continue
        if not (_INDEX_RE.match(item) or _UUID_RE.match(item)):
            problems.append(f"{item!r} is neither a GPU index (0, 1, …) nor a UUID (GPU-xxxxxxxx-…)")
            continue
        key = item.lower()
        if key in seen:
            problems.append(f"{item!r} is listed twice")
            continue
        seen.add(key)
        out.append(item)
    if problems:
        raise GpuSpecError("; ".join(problems))
    return GpuSpec("devices", devices=tuple(out))


@dataclass(frozen=True)
class ListedGpu:
    """One line of `nvidia-smi -L`."""

    index: int
    name: str
    uuid: str


def parse_nvidia_smi_list(output: str) -> list[ListedGpu]:
    """Parse `nvidia-smi -L`; MIG sub-lines and blank lines are skipped."""
    gpus: list[ListedGpu] = []
    for line in output.splitlines():
        m = _LIST_LINE_RE.match(line.strip())
        if m:
            gpus.append(ListedGpu(int(m.group(1)), m.group(2), m.group(3)))
    return gpus


def check_listed_gpus(spec: GpuSpec, listed: list[ListedGpu]) -> list[str]:
    """Problems with what a container saw against what the stack asked for ([] when fine).

    Inside a container only the selected GPUs are visible, renumbered from 0, so indices
    are checked by count and UUIDs by presence.
    """
    if not spec.requested:
        return []
    if not listed:
        return ["nvidia-smi listed no GPU"]
    problems: list[str] = []
    if spec.kind == "count" and len(listed) < spec.count:
        problems.append(f"asked for {spec.count} GPUs, the container sees {len(listed)}")
    if spec.kind == "devices":
        if len(listed) != len(spec.devices):
            problems.append(f"asked for GPUs {spec.describe()}, the container sees {len(listed)}")
        uuids = {g.uuid.lower() for g in listed}
        for dev in spec.devices:
            if dev.upper().startswith("GPU-") and dev.lower() not in uuids:
                problems.append(f"GPU {dev} is not on this machine")
    return problems
