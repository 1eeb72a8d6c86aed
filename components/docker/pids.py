"""PidsLimit: `docker update --pids-limit` on a container the docker provider made.

Why a step of its own: a root notebook can fork until the host runs out of PIDs, which every other
seat, stack and the host itself share; Docker's answer is a pids limit per container. The docker
provider (kreuzwerker/terraform-provider-docker at this project's pin) has no input for
HostConfig.PidsLimit, so once the container exists tfbox sets it with the docker CLI, where the GPU
ledger reads the host (components.docker.host_state.docker_argv: here with DOCKER_HOST, or on the box over the
same strict ssh). Docker keeps the limit in the container's config: it survives restarts and daemon
restarts, and a replaced container (a new id, this component's input) gets it again. The provider's
state does not change, so a second `up` shows no diff. Skipped in previews; one docker call per
container and `up`, which changes nothing when the limit is already set.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import pulumi

from components.docker import host_state


@dataclass(frozen=True)
class HostAccess:
    """How to run the docker CLI against the stack's daemon (components.docker.host_state.docker_argv)."""

    docker_host: str
    ssh_opts: tuple[str, ...] = ()


class PidsLimitError(RuntimeError):
    pass


def pids_script(container_id: str, limit: int) -> str:
    """Set the limit unless the container already has it (a converged lab's `up` writes nothing)."""
    cid = shlex.quote(container_id)
    return (f"[ \"$(docker inspect -f '{{{{.HostConfig.PidsLimit}}}}' {cid})\" = {limit} ] || "
            f"docker update --pids-limit {limit} {cid} >/dev/null")


def apply_pids_limit(host: HostAccess, container_id: str, container_name: str, limit: int) -> str:
    """The limit, once the container has it; raises with the fix when Docker refuses. Nothing in previews."""
    if pulumi.runtime.is_dry_run() or not container_id:
        return str(limit)
    argv, env = host_state.docker_argv(host.docker_host, host.ssh_opts, pids_script(container_id, limit))
    code, _, err = host_state.run(argv, env)  # looked up at call time: the unit tests replace host_state.run
    if code != 0:
        said = (err.strip().splitlines() or [f"exit status {code}"])[-1]
        raise PidsLimitError(f"could not limit {container_name} to {limit} processes on {host.docker_host} ({said}). "
                             "Fix: a Docker of 19.03 or later with the pids cgroup controller; or `pulumi config set "
                             "tfbox:notebookPidsLimit 0` for no pids limits")
    return str(limit)


@dataclass
class PidsLimitArgs:
    host: HostAccess
    container_id: pulumi.Input[str]
    container_name: str
    limit: int


class PidsLimit(pulumi.ComponentResource):
    """The pids limit of one container; `applied` resolves once Docker has it."""

    applied: pulumi.Output[str]

    def __init__(self, name: str, args: PidsLimitArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("tfbox:index:PidsLimit", name, None, opts)
        host, cname, limit = args.host, args.container_name, args.limit
        self.applied = pulumi.Output.from_input(args.container_id).apply(lambda cid: apply_pids_limit(host, cid, cname, limit))
        self.register_outputs({"pidsLimit": self.applied})
