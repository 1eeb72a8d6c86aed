"""Where a single-seat lab keeps its files: the volumes' names, `tfbox:notebooksHostPath` below the data root
(`tfbox:hostPathRoot`), and `tfbox:logsDir` inside the containers; every refusal names its fix."""

from __future__ import annotations

from dataclasses import dataclass

from components.model.paths import (
    DEFAULT_HOST_PATH_ROOT,
    host_path_root_problems,
    logs_dir_problems,
    notebooks_host_path_problems,
    outside_root_problem,
)
from components.model.reader import NAME_RE, Reader
from components.model.target import Target


@dataclass(frozen=True)
class StorageSettings:
    volumes: dict[str, str]  # notebooksVolume, logsVolume
    host_path: str
    logs_dir: str


def read_storage(r: Reader, prefix: str, target: Target) -> StorageSettings:
    volumes: dict[str, str] = {}
    for name, suffix in (("notebooksVolume", "notebooks"), ("logsVolume", "logs")):
        vol = r.value(name) or f"{prefix}-{suffix}"
        if not NAME_RE.match(vol):
            r.add(name, f"{vol!r} is not a valid Docker volume name", "use letters, digits, '.', '_' or '-'")
        volumes[name] = vol
    if volumes["notebooksVolume"] == volumes["logsVolume"]:
        r.add("logsVolume", "is the same volume as notebooksVolume", "give the logs their own volume")
    host_path = r.value("notebooksHostPath")
    sockets = target.control_paths
    root = r.value("hostPathRoot") or DEFAULT_HOST_PATH_ROOT
    root_problems = host_path_root_problems(root, sockets)
    for problem in root_problems:
        r.add("hostPathRoot", problem, f"choose a directory that holds only notebooks directories, such as {DEFAULT_HOST_PATH_ROOT} "
              "or /data/tfbox, or `pulumi config rm tfbox:hostPathRoot` for the default")
    path_problems = notebooks_host_path_problems(host_path, sockets) if host_path else []
    for problem in path_problems:
        r.add("notebooksHostPath", problem, f"bind a directory of its own below the data root, such as {root.rstrip('/')}/notebooks, "
              "or leave it empty for a Docker volume")
    if host_path and not path_problems and not root_problems and (outside := outside_root_problem(host_path, root)):
        parent, below = _parent(host_path), f"{root.rstrip('/')}/notebooks"
        if host_path.rstrip("/") == root.rstrip("/"):
            fix = f"bind a directory below the root, such as {below}"
        elif not host_path_root_problems(parent, sockets):
            fix = (f"bind a directory below {root}; or, to keep {host_path} where it is, set the data root that holds it: "
                   f"`pulumi config set tfbox:hostPathRoot {parent}` (a directory only for notebooks)")
        else:
            fix = f"move the directory below a data root of its own (e.g. `mv {host_path} {below}`) and bind that"
        r.add("notebooksHostPath", outside, fix)
    logs_dir = r.value("logsDir")
    for problem in logs_dir_problems(logs_dir):
        r.add("logsDir", problem, "use a directory below /tf such as /tf/logs")
    logs_dir = logs_dir.rstrip("/")
    return StorageSettings(volumes, host_path, logs_dir)


def _parent(path: str) -> str:
    """The directory holding `path`: what a stack bound outside the data root sets as its root."""
    return path.rstrip("/").rsplit("/", 1)[0] or "/"
