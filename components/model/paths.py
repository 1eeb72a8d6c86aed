"""Directories a stack names: `tfbox:notebooksHostPath` on the Docker host, `tfbox:logsDir` in the containers.

The notebook runs as root with the host directory bound read-write at `/tf`, so binding a
system directory hands every notebook user that directory (and a bound Docker socket hands
them the whole host). A list of what to refuse can never be complete (`/root/.ssh`,
`/home/<user>`, `/var/spool/cron/crontabs` all give the host away), so the host path must lie
strictly below one data root the machine's owner chose (`tfbox:hostPathRoot`, default
`/srv/tfbox`), and the old refusals stay as a second line. Pure path logic: the Docker host may
be remote, so symlinks there cannot be resolved here; these rules catch the spellings a stack
file can hold.
"""

from __future__ import annotations

import posixpath
import re

from components.model.commands import CAPTURE_STARTUP_PATH, JUPYTER_CONFIG_PATH, NOTEBOOK_DIR

# Refused together with everything below them: the OS, kernel interfaces, runtime state
# (the Docker socket lives in /run = /var/run), and container engines' data.
SYSTEM_TREES = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run", "/sbin",
    "/sys", "/usr", "/var/run", "/var/lock", "/var/lib/docker", "/var/lib/containerd",
    "/var/lib/kubelet", "/var/lib/dpkg", "/var/lib/apt", "/var/snap", "/snap", "/lost+found",
    "/var/spool", "/var/mail", "/var/cache",
)
# Refused as such (a subdirectory of them is fine): they hold far more than one lab's notebooks.
SYSTEM_DIRS = ("/", "/home", "/root", "/var", "/var/lib", "/var/log", "/tmp", "/var/tmp", "/mnt", "/media", "/opt", "/srv")
DEFAULT_SOCKET = "/var/run/docker.sock"
# Where bound notebook directories live unless `tfbox:hostPathRoot` says otherwise: /srv is the FHS's
# "data served by this system", and a tfbox directory of its own there holds nothing else.
DEFAULT_HOST_PATH_ROOT = "/srv/tfbox"
_SAFE_CHARS = re.compile(r"^[A-Za-z0-9._/+@-]+$")


def _within(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def notebooks_host_path_problems(path: str, control_paths: tuple[str, ...] = (DEFAULT_SOCKET,)) -> list[str]:
    """Why `path` must not be bound read-write at /tf of a root notebook (empty: fine).

    `control_paths` are the Unix sockets of the Docker host in use: neither they nor a directory
    holding them may be bound (a notebook with the socket is root on the host). A hidden directory
    (`.ssh`, `.config`, …) on the way is refused too: that is where logins and autostarts live.
    """
    problems = _plain_path_problems(path)
    if problems:
        return problems
    norm = _norm(path)
    for socket in control_paths:
        if _within(socket, norm) or _within(norm, socket):
            return [f"{path!r} holds the Docker socket {socket} (a notebook with it is root on the host)"]
    if norm in SYSTEM_DIRS:
        return [f"{path!r} is a system directory (a notebook is root in /tf: it could change everything in it)"]
    for tree in SYSTEM_TREES:
        if _within(norm, tree):
            return [f"{path!r} is inside the system directory {tree} (a notebook is root in /tf: it could change it)"]
    hidden = [p for p in norm.split("/") if p.startswith(".")]
    if hidden:
        return [f"{path!r} goes through the hidden directory {hidden[0]!r} (where logins, keys and autostarts live)"]
    return []


def host_path_root_problems(root: str, control_paths: tuple[str, ...] = (DEFAULT_SOCKET,)) -> list[str]:
    """Why `root` cannot be the data root below which notebooks directories are bound (empty: fine).

    The same rules as a notebooks directory: a root of `/home` or `/root` would let the allowlist
    admit `/home/<user>` or `/root/.ssh` again.
    """
    return notebooks_host_path_problems(root, control_paths)


def outside_root_problem(path: str, root: str) -> str | None:
    """Why `path` is not strictly below the data root `root` (None: it is). Both checked on their own first."""
    norm, top = _norm(path), _norm(root)
    if norm == top or not _within(norm, top):
        return f"{path!r} is not a directory below the data root {top!r} (tfbox:hostPathRoot)"
    return None


def _norm(path: str) -> str:
    norm = posixpath.normpath(path)
    return "/" if norm == "//" else norm  # POSIX keeps a leading '//'; the kernel treats it as '/'


def _plain_path_problems(path: str) -> list[str]:
    if not path.startswith("/"):
        return [f"{path!r} is not an absolute path"]
    parts = path.split("/")
    if ".." in parts or "." in parts:
        return [f"{path!r} contains '.' or '..'; write the plain absolute path"]
    if not _SAFE_CHARS.match(path):
        return [f"{path!r} has characters other than letters, digits and . _ / + @ -"]
    return []


def logs_dir_problems(logs_dir: str) -> list[str]:
    """Why `logs_dir` cannot be the logs mount in the containers (empty: fine).

    It must lie below the notebook directory (so notebooks see the logs in /tf) and never over
    the files tfbox uploads (the Jupyter config holding the password hash, the capture startup file).
    """
    if not logs_dir.startswith("/"):
        return [f"{logs_dir!r} is not an absolute path"]
    parts = logs_dir.split("/")
    if ".." in parts or "." in parts:
        return [f"{logs_dir!r} contains '.' or '..'"]
    if not _SAFE_CHARS.match(logs_dir):
        return [f"{logs_dir!r} has characters other than letters, digits and . _ / + @ -"]
    norm = posixpath.normpath(logs_dir)
    for protected in (JUPYTER_CONFIG_PATH, CAPTURE_STARTUP_PATH):
        if _within(protected, norm) or _within(norm, protected):
            return [f"{logs_dir!r} would cover {protected}, which tfbox uploads into the container"]
    if norm == NOTEBOOK_DIR or not _within(norm, NOTEBOOK_DIR):
        return [f"{logs_dir!r} is not a directory below the notebook directory {NOTEBOOK_DIR}"]
    return []
