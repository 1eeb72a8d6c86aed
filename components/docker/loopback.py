"""Ports published on 127.0.0.1 that Docker before 28 still lets the LAN reach.

Why: for `-p 127.0.0.1:PORT:…` Docker < 28 writes a DNAT rule in the nat table's PREROUTING path
(`-d 127.0.0.1 … -j DNAT --to <container>`) that matches on every interface. A host on the same link
that sends a frame to the Docker host's MAC with destination 127.0.0.1:PORT (a crafted packet: no
normal stack sends one) is rewritten to the container's address before the kernel's martian check
would drop it, and gets the container's answer (moby/moby#45610, #41872). Docker 28.0 adds a raw-table
rule that drops such packets. TensorBoard has no login, so "bound to 127.0.0.1" did not keep it from
the LAN. tfbox reads the daemon's version before `up` and warns with the fix; tests/e2e/
test_loopback_publish.py sends the crafted SYN from another network namespace and gets the SYN-ACK.

Pure logic here; __main__ runs `docker version` through components.docker.host_state.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from components.model.binds import is_loopback
from components.model.keys import NAMESPACE
from components.model.lab_config import LabConfig, Published

FIXED_IN = (28, 0)
VERSION_SCRIPT = "docker version --format '{{.Server.Version}}'"


def parse_version(text: str) -> tuple[int, int] | None:
    """(major, minor) of a daemon version such as `20.10.24+dfsg1`, `26.1.5+dfsg1`, `28.0.1`; None if unreadable."""
    m = re.match(r"\s*v?(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def raw_table_rule(port: int) -> str:
    """The rule Docker 28 adds by itself: drop packets for 127.0.0.1:PORT that did not come in on `lo`."""
    return f"iptables -t raw -I PREROUTING -d 127.0.0.1 ! -i lo -p tcp --dport {port} -j DROP"


def exposed(published: Sequence[Published]) -> list[Published]:
    """Published ports without a login that are bound to IPv4 loopback (what the DNAT leak reaches)."""
    return [p for p in published if not p.login and is_loopback(p.bind) and not p.bind.startswith("[")]


def loopback_leak_warnings(cfg: LabConfig, server_version: str, host: str) -> list[str]:
    """One warning per unauthenticated loopback port when the daemon is older than Docker 28."""
    version = parse_version(server_version)
    if version is None or version >= FIXED_IN:
        return []
    out = []
    for p in exposed(cfg.published):
        out.append(
            f"{NAMESPACE}:{p.key}: {p.service} (no login) is published on {p.bind}:{p.port}, but Docker "
            f"{server_version.strip()} on {host} lets any host on the same network reach loopback-published ports with "
            f"crafted packets (moby/moby#45610, fixed in Docker 28). Fix: upgrade the Docker on {host} to Docker 28 or later; or "
            f"on that host add `{raw_table_rule(p.port)}` (and make it persistent, e.g. with iptables-persistent); "
            f"or set {NAMESPACE}:tensorboardMode to off. Then set `{NAMESPACE}:loopbackPublishFiltered true` to "
            "silence this warning")
    return out

