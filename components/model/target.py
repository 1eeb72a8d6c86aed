"""Where a stack's lab runs, as its backend describes it: neutral data the model checks against.

The model never reads a provider's own config (`docker:host`, `docker:sshOpts`, …): the backend
reads it (components.docker.target) and hands over this. A config with no target given is the
local one, so the pure checks and their tests need no backend.
"""

from __future__ import annotations

from dataclasses import dataclass

LOCAL_HOST = "unix:///var/run/docker.sock"  # the local target's canonical spelling, as the default backend writes it


@dataclass(frozen=True)
class Target:
    host: str = LOCAL_HOST  # canonical: two stacks' hosts compare equal when they are one machine
    problems: tuple[str, ...] = ()  # the backend's own config problems, each a whole line (key, problem, fix)
    # host paths that control the target (its API socket): neither they nor a directory holding them may be
    # bound into a notebook, which is root in /tf
    control_paths: tuple[str, ...] = ("/var/run/docker.sock",)
    identity: str = "local"  # what "the same machine" compares: two spellings of the local daemon are one

    @property
    def local(self) -> bool:
        return self.identity == "local"


LOCAL = Target()
