"""Where a user's browser finds a published service, from the stack's target host."""

from __future__ import annotations

from urllib.parse import urlsplit


def host_name(target_host: str) -> str:
    """`ssh://me@gpu-box:22` -> `gpu-box`; a local socket -> `localhost`."""
    parts = urlsplit(target_host)
    if parts.scheme in ("ssh", "tcp", "http", "https") and parts.hostname:
        return parts.hostname
    return "localhost"


def service_url(target_host: str, bind: str, port: int, scheme: str = "http") -> str:
    """A URL for the browser; a loopback bind on a remote host needs an SSH tunnel, said in docs/security.md."""
    if bind in ("0.0.0.0", "::"):
        host = host_name(target_host)
    elif bind in ("127.0.0.1", "localhost"):
        host = "127.0.0.1"
    else:
        host = bind
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}/"
