"""Host addresses a port is published on (`tfbox:notebookBind`, `tfbox:tensorboardBind`).

Docker 20-28 turns a host IP it cannot parse (`localhost`, a host name) into 0.0.0.0: the
port is then published on every interface while the config reads "loopback". So a bind is
an IP literal; `localhost` is accepted as a spelling of 127.0.0.1 and normalised to it
before it reaches Docker, the policy pack and the cross-stack clash check.
"""

from __future__ import annotations

import ipaddress

WILDCARDS = ("0.0.0.0", "::")
_LOCALHOST = ("localhost", "localhost.")


def normalise_bind(text: str) -> str:
    """The address Docker should get: `localhost` -> 127.0.0.1, an IP in its canonical form.

    Raises ValueError for anything that is not an IP address (a host name, a scoped IPv6).
    """
    addr = text.strip()
    if addr.lower() in _LOCALHOST:
        return "127.0.0.1"
    if addr.startswith("[") and addr.endswith("]"):
        addr = addr[1:-1]
    if "%" in addr:  # fe80::1%eth0: Docker cannot publish on a scoped address
        raise ValueError(f"{text!r} is a scoped IPv6 address")
    try:
        return str(ipaddress.ip_address(addr))
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address") from None


def bind_problem(text: str) -> str | None:
    """Why `text` cannot be a bind address (Docker would publish on 0.0.0.0), or None."""
    try:
        normalise_bind(text)
    except ValueError as e:
        return f"{e}; Docker publishes a port whose host IP it cannot parse on every interface (0.0.0.0)"
    return None


def is_loopback(addr: str) -> bool:
    """True for a normalised loopback address (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


def binds_overlap(a: str, b: str) -> bool:
    """Two normalised binds can clash on one port: same address, or either is a wildcard."""
    return a == b or a in WILDCARDS or b in WILDCARDS
