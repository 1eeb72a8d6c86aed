"""`make status [STACK=…] [JSON=1]`: per machine and seat, URLs, health, GPUs, their memory and who holds it.

The host is reached as `make doctor` reaches it (ops.doctor.Host: the docker CLI with DOCKER_HOST here,
or on an `ssh://` box over the preflight's ssh), and only docker commands run there, never a host shell
command, so everything comes through the Docker API:

- containers and health: `docker ps`/`docker inspect` (ops.doctor.inspect_containers) and doctor's own
  reading of each container (ops.doctor.classify_container), so the two commands never disagree;
- GPUs: one one-shot container (`docker run --rm`) from the seat's own notebook image with every GPU
  (`--gpus all`, or `--runtime=nvidia` where the notebook runs so), no network, no capabilities, that runs
  `nvidia-smi --query-gpu=… --query-compute-apps=…`, as the GPU check (components.docker.gpu_check) does. Why a
  container and not `nvidia-smi` on the host: a box whose key is forced to `docker system dial-stdio` has no
  shell, and NVIDIA's container toolkit puts nvidia-smi into any GPU container, so the notebook image
  (already on the host, nothing to pull) always has one. It runs with `--pid=host`: NVML reports host
  pids, which a container in its own pid namespace cannot name (nvidia-smi there lists no processes);
- pid -> seat: `docker top <container> -eo pid,etimes` of each running lab container (the Docker API's
  container top: host pids, and how long each has run), joined by the container's labels
  (`tfbox.stack`, `tfbox.seat`).

A kubernetes stack is read from its cluster (ops.cluster_stack): per seat its pod's phase, readiness and node, the
GPUs asked and allocated, its Service's URLs and how to reach the notebook; no nvidia-smi there.

What `make fleet ACTION=status` says is the Pulumi side (last update, outputs); this is the host side now.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from components.model.labels import ROLE_LABEL, STACK_LABEL
from ops.doctor import ROOT, Host, Runner, inspect_containers, run_command, stack_refs
from ops.status_model import (
    APP_FIELDS,
    CSV_FORMAT,
    EXIT_USAGE,
    GPU_FIELDS,
    ComputeApp,
    GpuReading,
    IdleRule,
    MachineStatus,
    SeatStatus,
    exit_status,
    machine_status,
    parse_apps_query,
    parse_gpus_query,
    parse_top,
    render,
    to_json,
)

SEPARATOR = "--tfbox-status--"


def _labels(info: Mapping[str, Any]) -> Mapping[str, str]:
    return (info.get("Config") or {}).get("Labels") or {}


def _gpu_notebooks(infos: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    from components.docker.host_state import claim_from_inspect

    return [i for i in infos if (i.get("State") or {}).get("Running") and claim_from_inspect(i) is not None]


def nvidia_smi_argv(notebook: Mapping[str, Any]) -> list[str]:
    """The one-shot container that reads every GPU, modelled on the given GPU notebook (its image, its mode)."""
    image = str(notebook.get("Image") or (notebook.get("Config") or {}).get("Image"))
    gpus = ["--runtime=nvidia", "-e", "NVIDIA_VISIBLE_DEVICES=all"] if (notebook.get("HostConfig") or {}).get("Runtime") == "nvidia" \
        else ["--gpus", "all"]
    script = (f"nvidia-smi --query-gpu={','.join(GPU_FIELDS)} --format={CSV_FORMAT} && echo {SEPARATOR} && "
              f"nvidia-smi --query-compute-apps={','.join(APP_FIELDS)} --format={CSV_FORMAT}")
    return ["docker", "run", "--rm", "--pid=host", "--network=none", "--cap-drop=ALL", "--security-opt=no-new-privileges",
            f"--label={ROLE_LABEL}=status", "-e", "NVIDIA_DRIVER_CAPABILITIES=utility", "-e", "NVIDIA_DISABLE_REQUIRE=true",
            *gpus, "--entrypoint", "sh", image, "-c", script]


def read_gpus(host: Host, notebooks: Sequence[Mapping[str, Any]], run: Runner) -> tuple[list[GpuReading] | None, list[ComputeApp], str]:
    if not notebooks:
        return None, [], "no running GPU notebook on this host"
    argv, env = host.argv(nvidia_smi_argv(notebooks[0]))
    code, out, err = run(argv, env)
    if code != 0 or SEPARATOR not in out:
        said = " / ".join(ln.strip() for ln in (err + out).splitlines() if ln.strip())[:300]
        return None, [], f"nvidia-smi did not answer (exit {code}): {said or 'nothing said'}"
    gpus_text, _, apps_text = out.partition(SEPARATOR)
    return parse_gpus_query(gpus_text), parse_apps_query(apps_text), "ok"


def read_pids(host: Host, notebooks: Sequence[Mapping[str, Any]], run: Runner) -> dict[str, dict[int, int]]:
    pids = {}
    for info in notebooks:
        cid = str(info.get("Id", ""))
        argv, env = host.argv(["docker", "top", cid, "-eo", "pid,etimes"])
        code, out, _ = run(argv, env)
        if code == 0:
            pids[cid] = parse_top(out)
    return pids


def cluster_status(root: Path, stack: str) -> MachineStatus:
    """A kubernetes stack's board from its cluster (ops.cluster_stack): per seat its pod, phase, readiness, node,
    the GPUs asked and allocated, its Service's URLs and how to reach the notebook."""
    from ops.cluster_stack import cluster_stack, read

    cs = cluster_stack(root, stack)
    states, problems, error = read(cs)
    host = f"kubernetes: {cs.where}"
    if error:
        return MachineStatus(stack=stack, host=host, error=error, backend="kubernetes", nvidia_smi="not read on a cluster")
    seats = tuple(SeatStatus(
        stack=stack, seat=s.seat, host=host, urls=s.urls, ok=s.ok,
        health="; ".join(f"{p.what}: {p.cause}" for p in (s.problem, s.tensorboard_problem) if p is not None) or "ok",
        gpus_requested=f"count={s.gpus_asked}" if s.gpus_asked else "none",
        containers=(s.pod, *((s.tensorboard_pod,) if s.tensorboard_pod else ())), phase=s.phase,
        ready=s.ready, node=s.node, gpus_allocated=s.gpus_allocated, reach=s.reach) for s in states)
    return MachineStatus(stack=stack, host=host, seats=seats, backend="kubernetes", nvidia_smi="not read on a cluster",
                         problems=tuple(p.cause for p in problems))


def status(root: Path, only: str | None = None, rule: IdleRule | None = None, run: Runner = run_command) -> list[MachineStatus]:
    rule = rule or IdleRule()
    refs = stack_refs(root, only)
    by_host: dict[str, list[str]] = {}
    hosts: dict[str, Host] = {}
    clusters: list[MachineStatus] = [cluster_status(root, r.name) for r in refs if r.backend != "docker"]
    for r in refs:
        if r.backend != "docker":
            continue
        by_host.setdefault(r.host.docker_host, []).append(r.name)
        hosts[r.host.docker_host] = r.host
    machines: list[MachineStatus] = []
    for docker_host, stacks in by_host.items():
        host = hosts[docker_host]
        infos, error = inspect_containers(host, run)
        if error:
            machines += [MachineStatus(stack=s, host=docker_host, error=error) for s in stacks]
            continue
        labs = [i for i in infos if _labels(i).get(STACK_LABEL) in stacks]
        notebooks = _gpu_notebooks(labs)
        readings, apps, smi = read_gpus(host, notebooks, run)
        pids = read_pids(host, notebooks, run)
        machines += [machine_status(s, docker_host, labs, readings, apps, pids, rule, smi) for s in stacks]
    return machines + clusters


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", default=None, help="one stack (default: every stack file here)")
    parser.add_argument("--json", action="store_true", help="the same rows as JSON on stdout, for monitoring")
    parser.add_argument("--idle-minutes", type=float, default=IdleRule().min_age_s / 60,
                        help="point out a GPU at most --idle-util %% busy while a process that has run this long holds memory")
    parser.add_argument("--idle-util", type=int, default=IdleRule().max_utilization_pct)
    parser.add_argument("--idle-memory-mib", type=int, default=IdleRule().min_memory_mib)
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stack is not None and not (args.root / f"Pulumi.{args.stack}.yaml").is_file():
        print(f"status: no stack file Pulumi.{args.stack}.yaml here", file=sys.stderr)
        return EXIT_USAGE
    rule = IdleRule(max_utilization_pct=args.idle_util, min_memory_mib=args.idle_memory_mib, min_age_s=int(args.idle_minutes * 60))
    machines = status(args.root, args.stack, rule)
    print(to_json(machines, rule) if args.json else render(machines, rule))
    return exit_status(machines)
