"""What a Docker host runs now, read with the docker CLI (here, or on an `ssh://` box over ssh).

Why: two stacks may share one GPU box, and neither stack's files know the other's GPUs (another
project, another repository, a stack whose file is not committed here). The GPU ledger's cross-stack
check (components.model.ledger) needs the truth, so it reads it from the host before anything is declared:
every tfbox notebook's GPUs (`docker inspect`: device requests or NVIDIA_VISIBLE_DEVICES) and, to
tell an index from the UUID of the same GPU, the listing of a GPU check that saw every GPU.
The same reading finds the volumes tfbox labelled on the host, so a stack cannot mount another stack's
notebooks by naming its volume (`tfbox:notebooksVolume: tfbox-gpu-box-notebooks`): Docker would hand
the existing volume to whoever asks for its name.
The parsing is pure (the ledger's claim_from_inspect, volume_owner_problems); this module only runs the commands.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from components.docker import ssh
from components.docker.host import TIMEOUT_S as TIMEOUT_S
from components.docker.host import Runner
from components.docker.host import docker_argv as docker_argv  # one runner (components.docker.host)
from components.docker.host import run as run  # looked up at call time here: the unit tests replace host_state.run
from components.model.gpus import NO_GPUS, GpuSpec, GpuSpecError, ListedGpu, parse_gpus, parse_nvidia_smi_list
from components.model.labels import PROJECT_LABEL, ROLE_LABEL, SEAT_LABEL, SHARE_LABEL, STACK_LABEL
from components.model.ledger import Claim

# every tfbox notebook and every GPU check, inspected in one round trip
_INSPECT = (f"ids=$(docker ps -aq --filter label={ROLE_LABEL}=notebook; docker ps -aq --filter label={ROLE_LABEL}=gpu-check); "
            "[ -z \"$ids\" ] && echo '[]' || docker inspect $ids")


@dataclass
class LiveLedger:
    """Other stacks' GPU claims on the host, and a full `nvidia-smi -L` listing when one is known."""

    claims: list[Claim] = field(default_factory=list)
    listing: list[ListedGpu] | None = None  # the machine's own `nvidia-smi -L`, else a whole-machine GPU check's
    problem: str | None = None  # why the host could not be read (the check is then skipped with a warning)


def read_live_ledger(docker_host: str, ssh_opts: Sequence[str], project: str, stack: str, runner: Runner | None = None) -> LiveLedger:
    """The GPU claims of every tfbox notebook on the host except this stack's own."""
    runner = runner or run  # looked up at call time: the unit tests' program runner replaces `run`
    argv, env = docker_argv(docker_host, ssh_opts, _INSPECT)
    code, out, err = runner(argv, env)
    if code != 0:
        return LiveLedger(problem=(err.strip().splitlines() or [f"exit status {code}"])[-1])
    try:
        infos: list[dict[str, Any]] = json.loads(out or "[]")
    except ValueError:
        return LiveLedger(problem="`docker inspect` printed something that is not JSON")
    claims = []
    checks = []
    for info in infos:
        labels = (info.get("Config") or {}).get("Labels") or {}
        if labels.get(PROJECT_LABEL) == project and labels.get(STACK_LABEL) == stack:
            continue  # this stack's own containers: its config, not the host, says what it takes
        if labels.get(ROLE_LABEL) == "gpu-check" and _saw_every_gpu(info):
            checks.append(str(info.get("Id", "")))
        claim = claim_from_inspect(info)
        if claim is not None:
            claims.append(claim)
    listing = read_host_gpus(docker_host, ssh_opts, runner)
    if listing is None and claims and checks:
        listing = _listing(docker_host, ssh_opts, checks, runner)
    return LiveLedger(claims=claims, listing=listing)


# the machine's GPUs as its driver lists them; exit 3 when it has no nvidia-smi (not a GPU host, or not on PATH)
HOST_GPUS = "command -v nvidia-smi >/dev/null 2>&1 || exit 3; nvidia-smi -L"


def read_host_gpus(docker_host: str, ssh_opts: Sequence[str], runner: Runner | None = None) -> list[ListedGpu] | None:
    """`nvidia-smi -L` on the machine the daemon runs on, or None where that cannot be asked or says nothing.

    Why: a GPU the machine does not have (`tfbox:gpus: 7`, a made-up UUID) must stop `up` at preview with
    tfbox's message (components.model.ledger.absent_gpu_problems); NVIDIA's runtime in CDI mode would refuse the GPU
    check's container with Docker's words only. The machine is this one for a unix socket and the box for
    `ssh://`; a `tcp://` daemon's machine cannot be asked (its GPU check still explains what its runtime lets run).
    """
    if not docker_host.startswith("unix://") and ssh.parse_ssh_host(docker_host) is None:
        return None
    runner = runner or run
    argv, env = docker_argv(docker_host, ssh_opts, HOST_GPUS)
    code, out, _ = runner(argv, env)
    return (parse_nvidia_smi_list(out) or None) if code == 0 else None


# every volume tfbox labelled, inspected in one round trip
_VOLUMES = ("ids=$(docker volume ls -q --filter label=tfbox.stack); "
            "[ -z \"$ids\" ] && echo '[]' || docker volume inspect $ids")


@dataclass
class HostVolumes:
    """The tfbox-labelled volumes on the host: name -> labels."""

    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    problem: str | None = None  # why the host could not be read


def read_volumes(docker_host: str, ssh_opts: Sequence[str], runner: Runner | None = None) -> HostVolumes:
    """Every volume on the host with a tfbox.stack label, and its labels."""
    runner = runner or run
    argv, env = docker_argv(docker_host, ssh_opts, _VOLUMES)
    code, out, err = runner(argv, env)
    if code != 0:
        return HostVolumes(problem=(err.strip().splitlines() or [f"exit status {code}"])[-1])
    try:
        infos: list[dict[str, Any]] = json.loads(out or "[]")
    except ValueError:
        return HostVolumes(problem="`docker volume inspect` printed something that is not JSON")
    return HostVolumes(labels={str(v.get("Name", "")): dict(v.get("Labels") or {}) for v in infos if isinstance(v, dict)})


def volume_owner_problems(wanted: Mapping[str, str], host_labels: Mapping[str, Mapping[str, str]], project: str,
                          stack: str, docker_host: str) -> list[str]:
    """A volume this stack would mount (name -> the config key that names it) that the host already has,
    labelled for another stack or project: Docker would hand that stack's notebooks to this one."""
    problems = []
    for name, key in wanted.items():
        labels = host_labels.get(name)
        if labels is None:
            continue
        owner_project, owner_stack = labels.get(PROJECT_LABEL, ""), labels.get(STACK_LABEL, "")
        if owner_stack == stack and owner_project == project:
            continue
        seat = f", seat '{labels[SEAT_LABEL]}'" if labels.get(SEAT_LABEL) else ""
        owner = f"stack '{owner_stack}'{seat}" + (f" of project '{owner_project}'" if owner_project != project else "")
        problems.append(f"{key}: the volume {name} on {docker_host} belongs to {owner} (its tfbox.stack label); mounting it "
                        "would give this stack that one's files. Fix: give this stack volumes of its own (another "
                        "tfbox:notebooksVolume / tfbox:logsVolume, empty for <namePrefix>-notebooks, or another tfbox:namePrefix); "
                        f"if that stack is gone and its data may go: `docker volume rm {name}`")
    return problems


def _saw_every_gpu(info: Mapping[str, Any]) -> bool:
    """A GPU check given every GPU lists them under their host indices (a subset is renumbered from 0)."""
    host = info.get("HostConfig") or {}
    if any((r.get("Count") or 0) < 0 for r in host.get("DeviceRequests") or []):
        return True
    env = dict(e.split("=", 1) for e in (info.get("Config") or {}).get("Env") or [] if "=" in e)
    return host.get("Runtime") == "nvidia" and env.get("NVIDIA_VISIBLE_DEVICES") == "all"


def _listing(docker_host: str, ssh_opts: Sequence[str], check_ids: list[str], runner: Runner) -> list[ListedGpu] | None:
    argv, env = docker_argv(docker_host, ssh_opts, f"docker logs {shlex.quote(check_ids[0])}")
    code, out, _ = runner(argv, env)
    return (parse_nvidia_smi_list(out) or None) if code == 0 else None


def read_server_version(docker_host: str, ssh_opts: Sequence[str], runner: Runner | None = None) -> str | None:
    """The daemon's version (`docker version`'s Server.Version), or None when the host cannot be read."""
    from components.docker.loopback import VERSION_SCRIPT

    runner = runner or run
    argv, env = docker_argv(docker_host, ssh_opts, VERSION_SCRIPT)
    code, out, _ = runner(argv, env)
    return out.strip() or None if code == 0 else None


def read_mount_options(docker_host: str, ssh_opts: Sequence[str], path: str, runner: Runner | None = None) -> str | None:
    """The mount options (`findmnt`'s OPTIONS) of `path` on the Docker host, or None when they cannot be read."""
    from components.docker.host_bind import mount_options_script

    runner = runner or run
    argv, env = docker_argv(docker_host, ssh_opts, mount_options_script(path))
    code, out, _ = runner(argv, env)
    return out.strip() or None if code == 0 else None


def claim_from_inspect(info: Mapping[str, Any]) -> Claim | None:
    """The claim a running tfbox notebook makes, from its `docker inspect` (for the live cross-stack check).

    GPUs come from HostConfig.DeviceRequests (`--gpus`), or from NVIDIA_VISIBLE_DEVICES under the
    `nvidia` runtime; the stack, seat and sharing from the labels. None for anything that is not a
    tfbox notebook with GPUs. Pure: the caller does the Docker call.
    """
    config = info.get("Config") or {}
    host = info.get("HostConfig") or {}
    labels = config.get("Labels") or {}
    if labels.get(ROLE_LABEL) != "notebook" or not labels.get(STACK_LABEL):
        return None
    spec = NO_GPUS
    for req in host.get("DeviceRequests") or []:
        if ["gpu"] not in (req.get("Capabilities") or []):
            continue
        ids = req.get("DeviceIDs") or []
        count = req.get("Count") or 0
        spec = parse_gpus(",".join(ids)) if ids else (GpuSpec("all") if count < 0 else parse_gpus(f"count={count}") if count else NO_GPUS)
    if not spec.requested and host.get("Runtime") == "nvidia":
        env = dict(e.split("=", 1) for e in config.get("Env") or [] if "=" in e)
        try:
            spec = parse_gpus(env.get("NVIDIA_VISIBLE_DEVICES", ""))
        except GpuSpecError:  # e.g. `void`: no GPUs
            spec = NO_GPUS
    if not spec.requested:
        return None
    return Claim(stack=labels[STACK_LABEL], seat=labels.get(SEAT_LABEL, ""), gpus=spec,
                 shared=labels.get(SHARE_LABEL) == "true")
