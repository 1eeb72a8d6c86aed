"""Culling idle kernels: a closed browser tab must not hold GPU memory for ever.

Jupyter Server shuts a kernel down once it has been idle (no message to or from it) for
`cull_idle_timeout` seconds, checking every `cull_interval`. tfbox keeps two of its defaults:
kernels that are busy (a long training run) are never culled, nor kernels with a browser tab
connected (`cull_connected` false): the person looking at the notebook keeps their variables, and
closing the tab (or a laptop dropping its connection) disconnects it, so it is culled after the
timeout. Pure: the tfbox:cullIdleKernels value in, Jupyter's settings out.
"""

from __future__ import annotations

import re

GPU_DEFAULT = 3600  # seconds: on by default where a kernel can hold GPU memory
MIN_TIMEOUT = 10  # below this a kernel could be culled between two cells of a slow connection
MAX_CULL_INTERVAL = 300  # Jupyter's default interval
_DURATION_RE = re.compile(r"^(\d+)\s*(s|m|h|d)?$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
OFF = ("0", "off", "none", "false", "no")


def parse_cull_idle(text: str, gpus: bool) -> int:
    """Seconds from `tfbox:cullIdleKernels` (`3600`, `90s`, `30m`, `1h`, `off`); empty is the default:
    an hour on GPU stacks, off otherwise. Raises ValueError saying what is wrong."""
    text = str(text).strip().lower()
    if not text:
        return GPU_DEFAULT if gpus else 0
    if text in OFF:
        return 0
    m = _DURATION_RE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration")
    seconds = int(m.group(1)) * _UNITS[m.group(2) or ""]
    if seconds < MIN_TIMEOUT:
        raise ValueError(f"{text!r} is shorter than {MIN_TIMEOUT} s, which could cull a kernel between two cells")
    return seconds


def cull_interval(timeout: int) -> int:
    """How often Jupyter looks for idle kernels: every 5 minutes (its default), more often for short
    timeouts, so a kernel goes at most half its timeout late."""
    return max(1, min(MAX_CULL_INTERVAL, timeout // 2))


def culling_settings(timeout: int) -> dict[str, dict[str, object]]:
    """Jupyter Server settings for culling after `timeout` seconds; {} when off (the config file stays as it was)."""
    if timeout <= 0:
        return {}
    return {"MappingKernelManager": {
        "cull_idle_timeout": timeout, "cull_interval": cull_interval(timeout),
        "cull_connected": False, "cull_busy": False,
    }}
