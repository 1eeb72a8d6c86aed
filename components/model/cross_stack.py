"""Clashes between stacks of one project on one target: ports, names, volumes, host directories."""

from __future__ import annotations

from collections.abc import Iterable

from components.model.binds import binds_overlap
from components.model.keys import NAMESPACE
from components.model.lab_config import LabConfig


def cross_stack_problems(this: LabConfig, others: Iterable[LabConfig]) -> list[str]:
    """Clashes with other stacks of this project that drive the same host (the same target, components.model.target).

    Only the committed stack files are known, so this catches the common mistake (a
    second stack copied from the first onto the same machine), not every clash.
    """
    problems: list[str] = []
    for other in others:
        if other.stack == this.stack or this.target_identity != other.target_identity:
            continue
        for mine in this.published:
            for theirs in other.published:
                if mine.port == theirs.port and binds_overlap(mine.bind, theirs.bind):
                    problems.append(
                        f"{NAMESPACE}:{mine.key}: host port {mine.port} on {this.target_host} is also used by "
                        f"stack '{other.stack}' ({theirs.service}). Fix: pick another port for one of them."
                    )
        if this.name_prefix == other.name_prefix:
            problems.append(f"{NAMESPACE}:namePrefix: '{this.name_prefix}' is also used by stack '{other.stack}' on the "
                            "same host. Fix: give each stack its own prefix.")
            continue  # every volume clashes too: the prefix is the fix
        their_volumes = other.volumes()
        for name, key in this.volumes().items():
            if name in their_volumes:
                problems.append(f"{key}: the volume {name} on {this.target_host} is stack '{other.stack}''s ({their_volumes[name]}); "
                                "mounting it would give this stack that one's files. Fix: give this stack a volume of its own "
                                "(leave tfbox:notebooksVolume and tfbox:logsVolume empty for <namePrefix>-notebooks and -logs).")
        my_path, their_path = this.notebooks_host_path.rstrip("/"), other.notebooks_host_path.rstrip("/")
        if my_path and their_path and (my_path == their_path or my_path.startswith(their_path + "/")
                                       or their_path.startswith(my_path + "/")):
            problems.append(f"{NAMESPACE}:notebooksHostPath: {this.notebooks_host_path} on {this.target_host} overlaps stack "
                            f"'{other.stack}''s {other.notebooks_host_path}; each would read and write the other's notebooks. "
                            "Fix: give each stack a directory of its own, side by side below the data root.")
    return problems

