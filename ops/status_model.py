"""The status board's pure part: nvidia-smi's CSV, GPUs joined to seats, the idle rule, the table and JSON.

Everything here is a function of texts and `docker inspect` JSON (tested as data with real H200 captures,
tests/ops/test_status.py); ops/status.py only runs the commands that produce them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from components.docker.host_state import claim_from_inspect
from components.model import commands
from components.model.gpus import GpuSpec
from components.model.labels import ROLE_LABEL, SEAT_LABEL, STACK_LABEL, TENSORBOARD_PROXY_LABEL
from components.model.urls import service_url
from ops.doctor import LONG_RUNNING, classify_container

GPU_FIELDS = ("index", "uuid", "name", "memory.used", "memory.total", "utilization.gpu")
APP_FIELDS = ("pid", "gpu_uuid", "used_memory")
CSV_FORMAT = "csv,noheader,nounits"
# the ports inside the containers (components/model/commands.py): what a published port is for
SERVICE_PORTS = {8888: "notebook", 6006: "tensorboard"}

# exit statuses of `make status` (docs/status.md)
EXIT_OK = 0
EXIT_PROBLEM = 1  # a lab container is not healthy, or a host could not be read
EXIT_USAGE = 2
EXIT_IDLE = 3  # nothing broken, but a GPU is idle while a kernel holds its memory


# --- nvidia-smi ------------------------------------------------------------------------------------


def _number(text: str) -> int | None:
    """`143771`, `143771 MiB`, `37 %` -> int; `[N/A]`, `[Not Supported]`, '' -> None."""
    word = text.strip().split(" ")[0] if text.strip() else ""
    try:
        return int(float(word))
    except ValueError:
        return None


def parse_csv(text: str, fields: Sequence[str]) -> list[dict[str, str]]:
    """`nvidia-smi --query-…=FIELDS --format=csv[,noheader][,nounits]` as one dict per line.

    A header line (its first cell names the first field, units in brackets or not) is skipped; so are
    lines with another number of cells (a warning nvidia-smi printed among them)."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(fields) or not line.strip():
            continue
        if cells[0].split(" [")[0] == fields[0]:
            continue
        rows.append(dict(zip(fields, cells, strict=True)))
    return rows


@dataclass(frozen=True)
class GpuReading:
    """One GPU as nvidia-smi reads it now (host index: the query runs with every GPU)."""

    index: int
    uuid: str
    name: str
    memory_used_mib: int | None = None
    memory_total_mib: int | None = None
    utilization_pct: int | None = None


def parse_gpus_query(text: str, fields: Sequence[str] = GPU_FIELDS) -> list[GpuReading]:
    readings = []
    for row in parse_csv(text, fields):
        index = _number(row.get("index", ""))
        if index is None:
            continue
        readings.append(GpuReading(index=index, uuid=row.get("uuid", ""), name=row.get("name", ""),
                                   memory_used_mib=_number(row.get("memory.used", "")),
                                   memory_total_mib=_number(row.get("memory.total", "")),
                                   utilization_pct=_number(row.get("utilization.gpu", ""))))
    return readings


@dataclass(frozen=True)
class ComputeApp:
    """One compute process on a GPU (`--query-compute-apps`); pid in the host's namespace."""

    pid: int
    gpu_uuid: str
    used_mib: int | None


def parse_apps_query(text: str, fields: Sequence[str] = APP_FIELDS) -> list[ComputeApp]:
    apps = []
    for row in parse_csv(text, fields):
        pid = _number(row.get("pid", ""))
        if pid is not None:
            apps.append(ComputeApp(pid=pid, gpu_uuid=row.get("gpu_uuid", ""), used_mib=_number(row.get("used_memory", ""))))
    return apps


def parse_top(text: str) -> dict[int, int]:
    """`docker top <c> -eo pid,etimes`: host pid -> seconds it has run (header and odd lines skipped)."""
    procs = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
            procs[int(parts[0])] = int(parts[1])
    return procs


# --- the idle rule ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IdleRule:
    """A GPU is pointed out when its utilisation is at most `max_utilization_pct` while a process that has
    run for at least `min_age_s` holds at least `min_memory_mib` of it. One reading of utilisation, not a
    history: nvidia-smi's is the last sample period's; the process's age stands for "for long"."""

    max_utilization_pct: int = 5
    min_memory_mib: int = 1024
    min_age_s: int = 30 * 60


@dataclass(frozen=True)
class Holder:
    """A process holding GPU memory, and whose it is."""

    pid: int
    used_mib: int | None
    stack: str = ""  # "" when the process is in no lab container (another user's, or the host's)
    seat: str = ""
    container: str = ""
    age_s: int | None = None


def idle_while_held(gpu: GpuReading, holders: Iterable[Holder], rule: IdleRule = IdleRule()) -> list[Holder]:
    """The holders that make `gpu` idle-while-held under `rule` ([] when it is not)."""
    if gpu.utilization_pct is None or gpu.utilization_pct > rule.max_utilization_pct:
        return []
    return [h for h in holders if (h.used_mib or 0) >= rule.min_memory_mib and h.age_s is not None and h.age_s >= rule.min_age_s]


# --- joining ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GpuStatus:
    index: int | None
    uuid: str
    name: str
    memory_used_mib: int | None = None
    memory_total_mib: int | None = None
    utilization_pct: int | None = None
    processes: tuple[Holder, ...] = ()
    idle_held: bool = False


@dataclass(frozen=True)
class SeatStatus:
    """One row group of the board: a seat (or a legacy single-seat lab, seat = stack name)."""

    stack: str
    seat: str
    host: str
    urls: dict[str, str]
    health: str  # "ok", or each unhealthy container's state and cause
    ok: bool
    gpus_requested: str
    gpus: tuple[GpuStatus, ...] = ()
    containers: tuple[str, ...] = ()
    # a kubernetes stack's seat (ops.cluster_stack): its pod's phase and readiness, its node, the GPUs the pod holds
    # there (the scheduler's count: no index), and how to reach the notebook from outside the cluster
    phase: str = ""
    ready: bool | None = None
    node: str = ""
    gpus_allocated: int | None = None
    reach: str = ""


@dataclass(frozen=True)
class MachineStatus:
    stack: str
    host: str
    seats: tuple[SeatStatus, ...] = ()
    gpus: tuple[GpuStatus, ...] = ()  # every GPU of the host nvidia-smi read (also those no seat asked for)
    nvidia_smi: str = "ok"  # or why there is no reading
    error: str = ""  # why the host could not be read at all
    backend: str = "docker"  # tfbox:backend
    problems: tuple[str, ...] = ()  # a cluster's problems beyond one seat (an unbound claim, a GPU node that lost GPUs)


def _labels(info: Mapping[str, Any]) -> Mapping[str, str]:
    return (info.get("Config") or {}).get("Labels") or {}


# What the health check of a notebook serving HTTPS runs for Jupyter's port: bash cannot speak TLS, so it only
# connects (components.model.commands.bash_http_check), where a plain-HTTP notebook's check asks GET /api.
_TLS_JUPYTER_CHECK = commands.bash_http_check(commands.JUPYTER_PORT, "/api", tls=True)


def serves_tls(info: Mapping[str, Any]) -> bool:
    """Whether a notebook container serves HTTPS, from what it runs: its health check is built from the same
    `tls` as its Jupyter config (components.docker.notebook), so it is what runs now, not what a stack file says
    next; probes from before the bash one (a Python probe) named their `https:` URL."""
    health = " ".join((info.get("Config") or {}).get("Healthcheck", {}).get("Test") or [])
    return _TLS_JUPYTER_CHECK in health or "https:" in health


def container_urls(info: Mapping[str, Any], docker_host: str) -> dict[str, str]:
    """What a container publishes, by service: the notebook (https when it serves TLS), TensorBoard."""
    scheme = "https" if serves_tls(info) else "http"
    urls = {}
    for port, bindings in sorted(((info.get("HostConfig") or {}).get("PortBindings") or {}).items()):
        service = SERVICE_PORTS.get(int(port.split("/")[0])) if port.split("/")[0].isdigit() else None
        for b in bindings or []:
            if service and str(b.get("HostPort", "")).isdigit():
                urls[service] = service_url(docker_host, b.get("HostIp") or "0.0.0.0", int(b["HostPort"]),
                                            scheme if service == "notebook" else "http")
    if _labels(info).get(TENSORBOARD_PROXY_LABEL) == "true" and "notebook" in urls:
        urls["tensorboard-proxy"] = urls["notebook"] + "tensorboard/"  # behind the notebook's login
    return urls


def seat_gpu_spec(infos: Iterable[Mapping[str, Any]]) -> GpuSpec | None:
    """What the seat's notebook asked for (ledger's reading of `docker inspect`); None without GPUs."""
    for info in infos:
        claim = claim_from_inspect(info)
        if claim is not None:
            return claim.gpus
    return None


def gpus_of(spec: GpuSpec | None, readings: Sequence[GpuReading], own_uuids: set[str]) -> list[GpuReading]:
    """The host GPUs a seat's spec names; for `count=N` (Docker picks) those its processes are on."""
    if spec is None:
        return []
    if spec.kind == "all":
        return list(readings)
    if spec.kind == "count":
        return [r for r in readings if r.uuid in own_uuids]
    picked = []
    for d in spec.devices:
        match = [r for r in readings if (d.isdigit() and r.index == int(d)) or r.uuid == d]
        picked += match if match else [GpuReading(index=int(d) if d.isdigit() else -1, uuid="" if d.isdigit() else d, name="")]
    return picked


def holders_of(apps: Iterable[ComputeApp], owners: Mapping[int, tuple[str, str, str]], ages: Mapping[int, int]) -> list[Holder]:
    """Each compute process with its seat: `owners` maps a host pid to (stack, seat, container)."""
    out = []
    for a in apps:
        stack, seat, container = owners.get(a.pid, ("", "", ""))
        out.append(Holder(pid=a.pid, used_mib=a.used_mib, stack=stack, seat=seat, container=container, age_s=ages.get(a.pid)))
    return out


def gpu_status(r: GpuReading, holders: Sequence[Holder], rule: IdleRule) -> GpuStatus:
    mine = tuple(sorted(holders, key=lambda h: h.pid))
    return GpuStatus(index=r.index if r.index >= 0 else None, uuid=r.uuid, name=r.name, memory_used_mib=r.memory_used_mib,
                     memory_total_mib=r.memory_total_mib, utilization_pct=r.utilization_pct, processes=mine,
                     idle_held=bool(idle_while_held(r, mine, rule)))


def machine_status(stack: str, docker_host: str, infos: Sequence[Mapping[str, Any]], readings: Sequence[GpuReading] | None,
                   apps: Sequence[ComputeApp], pids: Mapping[str, Mapping[int, int]], rule: IdleRule = IdleRule(),
                   nvidia_smi: str = "ok") -> MachineStatus:
    """One stack's board from the host's readings.

    `infos`: `docker inspect` of the stack's containers; `readings`/`apps`: nvidia-smi's (None when it did
    not answer); `pids`: container id -> {host pid: seconds running} from `docker top`."""
    mine = [i for i in infos if _labels(i).get(STACK_LABEL) == stack]
    by_id = {str(i.get("Id", "")): i for i in mine}
    owners: dict[int, tuple[str, str, str]] = {}
    ages: dict[int, int] = {}
    for cid, procs in pids.items():
        info = by_id.get(cid)
        if info is None:
            continue
        labels = _labels(info)
        for pid, age in procs.items():
            owners[pid] = (stack, labels.get(SEAT_LABEL) or stack, str(info.get("Name", "")).lstrip("/"))
            ages[pid] = age
    holders = holders_of(apps, owners, ages)
    by_uuid: dict[str, list[Holder]] = {}
    for a, h in zip(apps, holders, strict=True):
        by_uuid.setdefault(a.gpu_uuid, []).append(h)
    all_gpus = tuple(gpu_status(r, by_uuid.get(r.uuid, []), rule) for r in readings or [])
    seats: dict[str, list[Mapping[str, Any]]] = {}
    for i in mine:
        seats.setdefault(_labels(i).get(SEAT_LABEL) or stack, []).append(i)
    rows = []
    for seat, cinfos in sorted(seats.items()):
        lab = [i for i in cinfos if _labels(i).get(ROLE_LABEL) in LONG_RUNNING]
        findings = [classify_container(i) for i in cinfos]
        bad = [f for f in findings if not f.ok]
        urls: dict[str, str] = {}
        for i in lab:
            urls.update(container_urls(i, docker_host))
        spec = seat_gpu_spec(lab)
        own = {a.gpu_uuid for a, h in zip(apps, holders, strict=True) if h.seat == seat and h.stack == stack}
        status_by_uuid = {g.uuid: g for g in all_gpus}
        gpus = tuple(status_by_uuid.get(r.uuid) or gpu_status(r, [], rule) for r in gpus_of(spec, readings or [], own))
        if readings is None and spec is not None:  # no reading: what the seat asked for, as it asked
            gpus = tuple(GpuStatus(index=int(d) if d.isdigit() else None, uuid="" if d.isdigit() else d, name="")
                         for d in spec.devices)
        rows.append(SeatStatus(
            stack=stack, seat=seat, host=docker_host, urls=urls, ok=not bad,
            health="ok" if not bad else "; ".join(f"{f.container}: {f.state}: {f.cause}" for f in bad),
            gpus_requested=spec.describe() if spec is not None else "none", gpus=gpus,
            containers=tuple(sorted(str(i.get("Name", "")).lstrip("/") for i in lab))))
    return MachineStatus(stack=stack, host=docker_host, seats=tuple(rows), gpus=all_gpus, nvidia_smi=nvidia_smi)


# --- output -------------------------------------------------------------------------------------------


def exit_status(machines: Sequence[MachineStatus]) -> int:
    if any(m.error or m.problems for m in machines) or any(not s.ok for m in machines for s in m.seats):
        return EXIT_PROBLEM
    if any(g.idle_held for m in machines for g in m.gpus):
        return EXIT_IDLE
    return EXIT_OK


def to_json(machines: Sequence[MachineStatus], rule: IdleRule = IdleRule()) -> str:
    """The board for monitoring: the same rows as the table, plus the rule and the exit status."""
    return json.dumps({"machines": [asdict(m) for m in machines], "idle_rule": asdict(rule),
                       "exit_status": exit_status(machines)}, indent=2, sort_keys=True)


def _mib(n: int | None) -> str:
    return "?" if n is None else f"{n / 1024:.1f}G" if n >= 1024 else f"{n}M"


def _held_by(g: GpuStatus) -> str:
    if not g.processes:
        return "-"
    return ", ".join(f"{(h.seat if h.stack else 'not a lab')} (pid {h.pid}, {_mib(h.used_mib)})" for h in g.processes)


def _gpu_cells(g: GpuStatus | None) -> tuple[str, str, str, str, str]:
    if g is None:
        return "-", "", "", "", ""
    ident = f"{g.index if g.index is not None else '?'} {g.uuid}".strip()
    memory = f"{_mib(g.memory_used_mib)}/{_mib(g.memory_total_mib)}" if g.memory_total_mib is not None else "-"
    util = f"{g.utilization_pct}%" if g.utilization_pct is not None else "-"
    return ident, g.name or "-", memory, util, _held_by(g) + ("  <- IDLE, MEMORY HELD" if g.idle_held else "")


def render(machines: Sequence[MachineStatus], rule: IdleRule = IdleRule()) -> str:
    """The terminal table: one line per seat and GPU; problems and idle GPUs said under it. Kubernetes stacks get a
    table of their own (pods, nodes and GPU counts: the cluster has no per-GPU reading here)."""
    docker = [m for m in machines if m.backend == "docker"]
    cluster = [m for m in machines if m.backend != "docker"]
    parts = ([_render_docker(docker, rule)] if docker or not cluster else []) + ([render_cluster(cluster)] if cluster else [])
    return "\n\n".join(parts)


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def render_cluster(machines: Sequence[MachineStatus]) -> str:
    """Kubernetes stacks: one line per seat (pod, phase, readiness, node, GPUs asked/allocated, URLs); under it
    the problems and how to reach each notebook from outside the cluster."""
    header = ("stack", "seat", "health", "pod", "phase", "ready", "node", "GPUs asked/allocated", "URLs")
    rows: list[tuple[str, ...]] = []
    notes: list[str] = []
    for m in machines:
        if m.error:
            rows.append((m.stack, "-", "UNREADABLE", "-", "", "", "", "", m.host))
            notes.append(f"{m.stack}: {m.error}")
            continue
        if not m.seats:
            rows.append((m.stack, "-", "no pods", "-", "", "", "", "", m.host))
        for s in m.seats:
            urls = " ".join(f"{k}={v}" for k, v in sorted(s.urls.items())) or "-"
            asked = s.gpus_requested.removeprefix("count=") if s.gpus_requested != "none" else "0"
            rows.append((m.stack, s.seat, "ok" if s.ok else "PROBLEM", ", ".join(s.containers) or "-", s.phase or "-",
                         "yes" if s.ready else "no", s.node or "-", f"{asked}/{s.gpus_allocated or 0}", urls))
            if not s.ok:
                notes.append(f"{s.stack}/{s.seat}: {s.health} (`make doctor STACK={s.stack}` says the fix)")
        notes += [f"{m.stack}: {p} (`make doctor STACK={m.stack}` says the fix)" for p in m.problems]
        notes += [f"{m.stack}/{s.seat}: reach the notebook: {s.reach}" for s in m.seats if s.reach]
    return "\n".join(_table(header, rows) + (["", *notes] if notes else []))


def _render_docker(machines: Sequence[MachineStatus], rule: IdleRule) -> str:
    header = ("stack", "seat", "health", "GPU", "model", "memory", "util", "held by", "URLs")
    rows: list[tuple[str, ...]] = []
    notes: list[str] = []
    for m in machines:
        if m.error:
            rows.append((m.stack, "-", "UNREADABLE", "-", "", "", "", "", m.host))
            notes.append(f"{m.stack}: {m.error}")
            continue
        if not m.seats:
            rows.append((m.stack, "-", "no containers", "-", "", "", "", "", m.host))
        for s in m.seats:
            urls = " ".join(f"{k}={v}" for k, v in sorted(s.urls.items())) or "-"
            health = "ok" if s.ok else "PROBLEM"
            for n, g in enumerate(s.gpus or (None,)):
                first = n == 0
                rows.append((m.stack if first else "", s.seat if first else "", health if first else "", *_gpu_cells(g),
                             urls if first else ""))
            if not s.ok:
                notes.append(f"{s.stack}/{s.seat}: {s.health} (`make doctor STACK={s.stack}` says the fix)")
        if m.nvidia_smi != "ok":
            notes.append(f"{m.stack}: no GPU readings: {m.nvidia_smi}")
        for g in m.gpus:
            if g.idle_held:
                who = ", ".join(f"{h.seat or 'pid ' + str(h.pid)} ({_mib(h.used_mib)} for {(h.age_s or 0) // 60} min)"
                                for h in idle_while_held(GpuReading(g.index or 0, g.uuid, g.name, utilization_pct=g.utilization_pct),
                                                         g.processes, rule))
                notes.append(f"{m.stack}: GPU {g.index} ({g.uuid}) is idle ({g.utilization_pct}% ≤ {rule.max_utilization_pct}%) "
                             f"while {who} holds its memory: shut that kernel down (Kernel > Shut Down) if it is not needed")
            unowned = [h for h in g.processes if not h.stack]
            if unowned:
                notes.append(f"{m.stack}: GPU {g.index}: pid(s) {', '.join(str(h.pid) for h in unowned)} are in no lab container of this stack")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines + (["", *notes] if notes else []))
