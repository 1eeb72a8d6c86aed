"""CUDA compatibility: does the host's NVIDIA driver run the CUDA the image was built for?

Why here and not at `docker run`: NVIDIA's hook refuses a container whose image needs a newer CUDA
than the driver supports ("unsatisfied condition: cuda>=12.8"), but only when the notebook starts,
after the old one is gone. The GPU check reads both sides first, and `up` stops with both versions
and the fix while the running notebook is untouched.

What the image needs is in its env: `NVIDIA_REQUIRE_CUDA`, NVIDIA's constraint language (space-
separated alternatives, each a comma-separated list of conditions that must all hold), e.g.
`cuda>=12.3 brand=tesla,driver>=470,driver<471`; an image with only `CUDA_VERSION=12.3.2` needs
`cuda>=12.3`, as NVIDIA's hook reads it. What the host supports is in the header of plain
`nvidia-smi`: `Driver Version: 580.159.04   CUDA Version: 13.0`.

The rule, NVIDIA's loosely: the image fits when one alternative holds. `cuda>=X.Y` holds when the
driver's CUDA version is at least X.Y (major.minor; a newer driver runs older CUDA). `driver>=…`
and the like compare the driver version. `brand=…` (forward compatibility: a datacenter GPU with
an old driver runs a newer CUDA through the image's cuda-compat libraries) and other conditions
cannot be seen in `nvidia-smi`'s header, so they count as met: tfbox never refuses what the hook
would allow; the hook still checks the brand when the notebook starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Version = tuple[int, ...]

_CONDITION_RE = re.compile(r"^([a-z_]+)(>=|<=|!=|==|=|>|<)(.+)$")
_HEADER_RE = re.compile(r"Driver Version:\s*([0-9][0-9.]*)\s+CUDA Version:\s*([0-9]+\.[0-9]+)")
_VERSION_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def parse_version(text: str) -> Version | None:
    """'12.3.2' -> (12, 3, 2); None for anything else."""
    text = text.strip()
    return tuple(int(p) for p in text.split(".")) if _VERSION_RE.match(text) else None


def _cuda(v: Version) -> Version:
    """CUDA versions compare by major.minor: a 12.3.2 image runs where the driver supports 12.3."""
    return (*v, 0, 0)[:2]


def show(v: Version) -> str:
    return ".".join(str(p) for p in v)


def _compare(a: Version, op: str, b: Version) -> bool:
    width = max(len(a), len(b))
    x, y = a + (0,) * (width - len(a)), b + (0,) * (width - len(b))
    return {">=": x >= y, "<=": x <= y, ">": x > y, "<": x < y, "=": x == y, "==": x == y, "!=": x != y}[op]


@dataclass(frozen=True)
class Condition:
    """One condition of NVIDIA_REQUIRE_CUDA, e.g. key 'cuda', op '>=', value '12.3'."""

    key: str
    op: str
    value: str

    def __str__(self) -> str:
        return f"{self.key}{self.op}{self.value}"


@dataclass(frozen=True)
class Requirement:
    """What an image needs: any one alternative, each a set of conditions that must all hold."""

    text: str  # as the image states it, for messages
    alternatives: tuple[tuple[Condition, ...], ...]

    @property
    def min_cuda(self) -> Version | None:
        """The lowest CUDA version any alternative asks for (`cuda>=` or `cuda>`), for messages."""
        found = [_cuda(v) for alt in self.alternatives for c in alt
                 if c.key == "cuda" and c.op in (">=", ">") and (v := parse_version(c.value)) is not None]
        return min(found) if found else None


def parse_requirement(require_cuda: str | None, cuda_version: str | None = None) -> Requirement | None:
    """The image's requirement from its `NVIDIA_REQUIRE_CUDA` or, without one, its `CUDA_VERSION`; None: it states none."""
    text = (require_cuda or "").strip()
    if not text:
        version = parse_version(cuda_version or "")
        if version is None:
            return None
        return Requirement(f"CUDA_VERSION={(cuda_version or '').strip()}", ((Condition("cuda", ">=", show(_cuda(version))),),))
    alternatives = []
    for alt in text.split():
        conditions = []
        for part in alt.split(","):
            m = _CONDITION_RE.match(part.strip().lower())
            if m:  # a condition NVIDIA's language has no word for is not one tfbox can judge: left out
                conditions.append(Condition(m.group(1), m.group(2), m.group(3)))
        if conditions:
            alternatives.append(tuple(conditions))
    return Requirement(f"NVIDIA_REQUIRE_CUDA={text}", tuple(alternatives)) if alternatives else None


@dataclass(frozen=True)
class HostDriver:
    """What the host's driver supports, from plain `nvidia-smi`'s header."""

    driver: str  # e.g. 580.159.04
    cuda: Version  # the newest CUDA it runs, e.g. (13, 0)


def parse_host_driver(nvidia_smi: str) -> HostDriver | None:
    """The header line of plain `nvidia-smi` (anywhere in `nvidia_smi`); None when it is not there."""
    m = _HEADER_RE.search(nvidia_smi)
    if not m:
        return None
    cuda = parse_version(m.group(2))
    return HostDriver(m.group(1), cuda) if cuda is not None else None


def _holds(c: Condition, host: HostDriver) -> bool:
    want = parse_version(c.value)
    if c.key == "cuda" and want is not None:
        return _compare(host.cuda, c.op, _cuda(want))
    have = parse_version(host.driver)
    if c.key == "driver" and want is not None and have is not None:
        return _compare(have, c.op, want)
    return True  # brand, arch, …: not in nvidia-smi's header, counted as met (see the module docstring)


def fits(req: Requirement | None, host: HostDriver | None) -> bool:
    """True unless both sides are known and no alternative of the requirement holds on this host."""
    if req is None or host is None:
        return True
    return any(all(_holds(c, host) for c in alt) for alt in req.alternatives)


def incompatibility(req: Requirement, host: HostDriver) -> str:
    """What the user reads when the image does not fit: both versions and the two fixes."""
    need = req.min_cuda
    needs = f"CUDA {show(need)} or newer" if need is not None else "a CUDA this driver does not meet"
    older = (f"an older image tag built for CUDA {show(host.cuda)} or earlier (TensorFlow's tested build configurations "
             "list each release's CUDA)")
    newer = (f"upgrade the host's NVIDIA driver to one whose `nvidia-smi` shows CUDA Version {show(need)} or later"
             if need is not None else "upgrade the host's NVIDIA driver")
    return (f"the image needs {needs} ({req.text}) but the host's NVIDIA driver {host.driver} supports "
            f"CUDA {show(host.cuda)} at most. Fix: use {older} in tfbox:image, or {newer}")
