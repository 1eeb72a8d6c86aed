"""Setuid programs through the notebook's host bind (`tfbox:notebooksHostPath`).

Why: the notebook runs as root in its container, and the bind is the host's own directory, so a
notebook user can write a root-owned file there and `chmod 4755` it. No capability drop stops that
(root owns what it creates: chmod needs no CAP_FOWNER or CAP_FSETID), and no Docker bind option sets
nosuid on the host's side. What does stop it is the host directory's own mount: on a `nosuid` mount
the kernel ignores the setuid bit, so a host user who runs the file stays who they are. tfbox reads
the mount options of that directory on the Docker host before `up` and warns when `nosuid` is
missing (tests/e2e/test_host_bind_suid.py shows both outcomes with a real daemon).

Pure logic here; __main__ runs the script through components.docker.host_state.
"""

from __future__ import annotations

import shlex

from components.model.keys import NAMESPACE


def mount_options_script(path: str) -> str:
    """A shell line printing the mount options of `path` (or of its nearest existing parent: Docker may create it)."""
    return (f"p={shlex.quote(path)}; while [ ! -e \"$p\" ] && [ \"$p\" != / ]; do p=$(dirname \"$p\"); done; "
            "findmnt -n -o OPTIONS --target \"$p\"")


def readable_host(docker_host: str) -> bool:
    """Hosts whose filesystem tfbox reaches: this machine's socket, or an ssh:// box (a tcp:// daemon's is out of reach)."""
    return docker_host.startswith(("unix://", "ssh://"))


def nosuid(options: str) -> bool:
    return "nosuid" in options.strip().split(",")


def setuid_warning(path: str, options: str, docker_host: str) -> str | None:
    """The warning for a bind on a mount that honours setuid bits, or None (nosuid, or unknown options)."""
    if not options.strip() or nosuid(options):
        return None
    return (f"{NAMESPACE}:notebooksHostPath: {path} on {docker_host} is on a mount without nosuid, so a notebook (root in "
            "its container) can put a setuid-root program there that any user of that host runs as root. Fix: mount "
            f"it nosuid (e.g. a filesystem of its own with `nosuid,nodev` in /etc/fstab, or `mount --bind {path} {path} && "
            f"mount -o remount,bind,nosuid,nodev {path}`), or leave {NAMESPACE}:notebooksHostPath empty for a Docker volume")
