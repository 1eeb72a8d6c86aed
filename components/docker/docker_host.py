"""The Docker host a stack drives (`docker:host`): its canonical spelling and the hosts tfbox refuses.

Two stacks on one daemon must not share ports or names, so hosts are compared in one
canonical form (scheme and host name case, default ports, trailing slashes, the two paths
of the local socket). A `tcp://` daemon without TLS is refused: its API is unauthenticated
root for anyone who reaches the port, and tfbox uploads the Jupyter config (the password
hash) over it in cleartext. Pure functions: no Docker, no Pulumi.
"""

from __future__ import annotations

import ipaddress
import posixpath
from urllib.parse import urlsplit

LOCAL_DOCKER_HOST = "unix:///var/run/docker.sock"
SCHEMES = ("unix", "tcp", "ssh", "npipe")
# /var/run is a symlink to /run on every current distribution: one socket, two spellings.
_SOCKET_ALIASES = {"/run/docker.sock": "/var/run/docker.sock"}
_DEFAULT_PORTS = {"ssh": 22}
TLS_FIX = (
    "use ssh://user@host (the daemon's socket over SSH), or TLS: a daemon started with --tlsverify on "
    "tcp://host:2376 and the client certificate in docker:certPath (a directory with ca.pem, cert.pem, "
    "key.pem; or DOCKER_CERT_PATH) or docker:caMaterial, docker:certMaterial and docker:keyMaterial "
    "(set with `pulumi config set --secret`)"
)


def _scheme_and_rest(text: str) -> tuple[str, str]:
    s = text.strip()
    if "://" not in s:
        # Docker reads a bare host:port as tcp; `user@host` is what people mean by ssh.
        return ("ssh" if "@" in s else "tcp"), s
    scheme, _, rest = s.partition("://")
    return scheme.lower(), rest


def _host_port(netloc: str) -> tuple[str, str, int | None]:
    """(user@ or '', host, port) of a URL's netloc; the host lower case, IPs canonical."""
    parts = urlsplit("//" + netloc)
    user = f"{parts.username}@" if parts.username else ""
    host = (parts.hostname or "").rstrip(".")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{netloc!r} has a port that is not a number from 0 to 65535") from None
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
        host = f"[{ip}]" if ip.version == 6 else str(ip)
    except ValueError:
        pass
    return user, host, port


def _normalise(text: str, tls: bool) -> str:
    if not text.strip():
        return LOCAL_DOCKER_HOST
    scheme, rest = _scheme_and_rest(text)
    if scheme not in SCHEMES:
        raise ValueError(f"{text!r} has the scheme {scheme!r}; Docker takes {', '.join(s + '://' for s in SCHEMES)}")
    if scheme == "unix":
        if not rest.startswith("/"):
            raise ValueError(f"{text!r} is not unix:// and an absolute socket path")
        path = posixpath.normpath(rest)
        path = "/" + path.lstrip("/")
        return "unix://" + _SOCKET_ALIASES.get(path, path)
    if scheme == "npipe":
        return "npipe://" + rest.rstrip("/").replace("\\", "/").lower()
    netloc, _, path = rest.partition("/")
    if path.strip("/"):
        raise ValueError(f"{text!r} has a path after the host; write {scheme}://host[:port]")
    user, host, port = _host_port(netloc)
    if not host:
        raise ValueError(f"{text!r} names no host")
    if scheme == "ssh":  # ssh://user@host, the port only when it is not 22
        return f"ssh://{user}{host}" + ("" if port in (None, _DEFAULT_PORTS["ssh"]) else f":{port}")
    return f"tcp://{user}{host}:{port or (2376 if tls else 2375)}"


def normalise_docker_host(text: str, *, tls: bool = False) -> str:
    """The canonical spelling of a Docker host, for comparing two stacks' hosts.

    `SSH://Me@Box:22/` -> `ssh://Me@box`, `tcp://box` -> `tcp://box:2375` (2376 with TLS),
    `unix:///run/docker.sock` -> `unix:///var/run/docker.sock`, empty -> the local socket.
    A host that cannot be parsed comes back stripped, so it still compares equal to itself.
    """
    try:
        return _normalise(text, tls)
    except ValueError:
        return text.strip()


def docker_host_problems(text: str, *, tls: bool = False) -> list[str]:
    """Why tfbox refuses to deploy to `text` (empty: fine); `tls` says client TLS material is configured."""
    try:
        canonical = _normalise(text, tls)
    except ValueError as e:
        return [f"{e}. Fix: write ssh://user@host, unix:///var/run/docker.sock, or tcp://host:2376 with TLS"]
    if canonical.startswith("tcp://") and not tls:
        return [
            f"{text.strip()!r} is a Docker API over TCP without TLS: anyone who reaches the port is root on that "
            "machine, and tfbox's uploads (the Jupyter config with the password hash) cross the network in "
            f"cleartext. Fix: {TLS_FIX}"
        ]
    return []
