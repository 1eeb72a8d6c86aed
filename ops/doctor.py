"""`make doctor [STACK=…]` and `make repair [STACK=…]`: what is wrong with each lab's containers, in words.

For every stack (or one) doctor asks the stack's Docker host (`docker:host`: the local daemon, or an
`ssh://` box where the commands run over the same kind of ssh as components.docker.ssh's preflight) for the
lab's containers (label `tfbox.stack`; seats by `tfbox.seat`, legacy single-seat labs by the stack name)
and for the host's process list, then says for each container: running and healthy, or not running
(exit code, OOM kill, exited when the Docker daemon restarted after a crash), unhealthy with the health
check's last words, GPUs lost (NVML's "Unknown Error", nvidia-container-toolkit#48) with the host-side
fixes; and per host, a stale docker-proxy: a published port held by the daemon with no container behind
it, which makes every `up` fail with "port is already allocated" until Docker is restarted once, gracefully.

A kubernetes stack (`tfbox:backend: kubernetes`) is read from its cluster instead (ops.cluster_stack,
components.kubernetes.health): each seat's pod, a Pending pod's cause from its events, unbound claims, GPU nodes
that lost GPUs; `repair` replaces nothing there and says what to do.

`repair` replaces exactly the broken notebook/TensorBoard containers through Pulumi
(`pulumi up --refresh --replace <urn>` for those only), so the stack's state stays true; notebooks and logs are
volumes and are kept; other containers and stacks are not touched.

Everything that decides (classification, parsing `ps` and `docker inspect` output, the report) is a
plain function of texts and JSON, tested without Docker or Pulumi; the thin part runs the commands.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from components.docker.docker_host import LOCAL_DOCKER_HOST, normalise_docker_host
from components.docker.host import Host as Host
from components.docker.host import Runner as Runner
from components.docker.host import inspect_containers as inspect_containers
from components.docker.host import run_command as run_command
from components.docker.ssh import SSH_OPTS_FIX, ssh_opts_from, ssh_opts_problems
from components.model.check import lab_shape
from components.model.labels import ROLE_LABEL, SEAT_LABEL, STACK_LABEL
from components.model.stack_file import read_stack_file, stack_files

ROOT = Path(__file__).resolve().parent.parent
LONG_RUNNING = ("notebook", "tensorboard")  # the roles that must run; the others are one-shots
ONE_SHOTS_OK = 0
# a container that stopped this close after the daemon (re)started was ended by that restart
RESTART_WINDOW = timedelta(seconds=60)

# What a GPU container that lost its GPUs says (nvidia-container-toolkit#48), and tfbox's own probe line.
NVML_LOST = "failed to initialize nvml: unknown error"
TFBOX_GPUS_LOST = "tfbox: GPUs lost:"
GPU_FIXES = (
    "on the host, make the NVIDIA device nodes survive `systemctl daemon-reload`: "
    "`sudo nvidia-ctk system create-dev-char-symlinks --create-all` as a udev rule (NVIDIA's container toolkit "
    "docs, 'Troubleshooting'), or run Docker with `\"exec-opts\": [\"native.cgroupdriver=cgroupfs\"]` in "
    "/etc/docker/daemon.json (nvidia-container-toolkit#48); then `make repair`"
)
STALE_PORT_FIX = (
    "restart the Docker daemon once, gracefully (`sudo systemctl restart docker`; the labs come back by their "
    "`always` restart policy), then `make up`"
)


# --- pure parts ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    """One line of `ps -ww -eo pid=,ppid=,etimes=,args=`."""

    pid: int
    ppid: int
    elapsed_s: int
    args: list[str]


def parse_ps(text: str) -> list[Proc]:
    procs = []
    for line in text.splitlines():
        parts = line.split(None, 3)
        if len(parts) < 4 or not (parts[0].isdigit() and parts[1].isdigit() and parts[2].isdigit()):
            continue
        try:
            args = shlex.split(parts[3])
        except ValueError:
            args = parts[3].split()
        procs.append(Proc(int(parts[0]), int(parts[1]), int(parts[2]), args))
    return procs


def _flag(args: Sequence[str], *names: str) -> list[str]:
    """Every value of `--name value` / `--name=value` / `-H value` in a command line."""
    found = []
    for i, a in enumerate(args):
        for n in names:
            if a == n and i + 1 < len(args):
                found.append(args[i + 1])
            elif a.startswith(n + "="):
                found.append(a[len(n) + 1:])
    return found


def find_dockerd(procs: Iterable[Proc], socket_path: str) -> Proc | None:
    """The dockerd serving `socket_path`: the one listening there by `--host/-H`, else (for the default
    socket) the one with no unix `--host` of its own."""
    daemons = [p for p in procs if p.args and Path(p.args[0]).name == "dockerd"]
    for p in daemons:
        if any(h.removeprefix("unix://") == socket_path for h in _flag(p.args, "--host", "-H")):
            return p
    if socket_path in ("/var/run/docker.sock", "/run/docker.sock"):
        plain = [p for p in daemons if not any(h.startswith(("unix://", "/")) for h in _flag(p.args, "--host", "-H"))]
        if len(plain) == 1:
            return plain[0]
    return None


@dataclass(frozen=True)
class Proxy:
    pid: int
    host_ip: str
    host_port: int
    container_ip: str
    container_port: int


def proxies_of(procs: Iterable[Proc], dockerd_pid: int) -> list[Proxy]:
    """The docker-proxy processes of one daemon (its children): one per published port."""
    found = []
    for p in procs:
        if p.ppid != dockerd_pid or not p.args or Path(p.args[0]).name != "docker-proxy":
            continue
        try:
            found.append(Proxy(p.pid, (_flag(p.args, "-host-ip") or ["0.0.0.0"])[0], int(_flag(p.args, "-host-port")[0]),
                               (_flag(p.args, "-container-ip") or [""])[0], int((_flag(p.args, "-container-port") or ["0"])[0])))
        except (IndexError, ValueError):
            continue
    return found


def published_ports(running: Iterable[Mapping[str, Any]]) -> set[tuple[str, int]]:
    """(host ip, host port) of every port the running containers publish (`docker inspect`)."""
    ports = set()
    for info in running:
        if not info.get("State", {}).get("Running"):
            continue
        for bindings in (info.get("NetworkSettings", {}).get("Ports") or {}).values():
            for b in bindings or []:
                if str(b.get("HostPort", "")).isdigit():
                    ports.add((b.get("HostIp") or "0.0.0.0", int(b["HostPort"])))
    return ports


def stale_proxies(proxies: Iterable[Proxy], published: set[tuple[str, int]]) -> list[Proxy]:
    """Proxies holding a port that no running container publishes: left from a daemon killed while it
    started a container. The daemon still counts the port as allocated, so nothing can publish it."""
    return [p for p in proxies if (p.host_ip, p.host_port) not in published]


def parse_time(text: str) -> datetime | None:
    """Docker's RFC 3339 times with nanoseconds; None for the zero time."""
    if not text or text.startswith("0001-"):
        return None
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text)
    if not m:
        return None
    frac = (m.group(2) or ".0")[:7]
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.fromisoformat(m.group(1) + frac + tz)


def gpus_lost(text: str) -> bool:
    return NVML_LOST in text.lower() or any(line.strip().startswith(TFBOX_GPUS_LOST) for line in text.splitlines())


@dataclass
class Finding:
    """One container's verdict (or one host problem, with container "")."""

    stack: str
    seat: str
    container: str
    role: str
    state: str  # what `docker ps` would say, short
    ok: bool
    cause: str = ""
    fix: str = ""
    repairable: bool = False  # `make repair` replaces it


def _seat(labels: Mapping[str, str], stack: str) -> str:
    return labels.get(SEAT_LABEL) or stack


def classify_container(info: Mapping[str, Any], daemon_started: datetime | None = None) -> Finding:
    """What is wrong with one lab container, from its `docker inspect` JSON, in words."""
    labels = info.get("Config", {}).get("Labels") or {}
    stack = labels.get(STACK_LABEL, "?")
    name = str(info.get("Name", "")).lstrip("/")
    role = labels.get(ROLE_LABEL, "?")
    st = info.get("State", {})
    status = st.get("Status", "?")
    f = Finding(stack=stack, seat=_seat(labels, stack), container=name, role=role, state=status, ok=True)
    repair = f"`make repair STACK={stack}` replaces it (notebooks and logs are on volumes)"
    if role not in LONG_RUNNING:
        code = st.get("ExitCode", 0)
        if st.get("Running") or code == ONE_SHOTS_OK:
            f.state = "running" if st.get("Running") else "done"
            return f
        f.ok, f.state = False, f"exited ({code})"
        logs = "`docker logs " + name + "`"
        f.cause = f"the one-shot {role} container failed (exit {code})"
        f.fix = f"see {logs}; the next `make up STACK={stack}` runs it again"
        return f
    if st.get("Running"):
        health = (st.get("Health") or {})
        hs = health.get("Status", "")
        if hs == "unhealthy":
            log = health.get("Log") or []
            last = (log[-1].get("Output", "") if log else "").strip()
            f.ok, f.state, f.repairable = False, "unhealthy", True
            if gpus_lost(last):
                f.cause = "GPUs lost: the container can no longer use its GPUs (" + _one_line(last) + ")"
                f.fix = f"{GPU_FIXES} (replaces it, notebooks kept)"
            else:
                f.cause = "unhealthy: the health check failed " + str(health.get("FailingStreak", "")) + " times in a row" + (
                    f"; its last output: {_one_line(last)}" if last else " (no output)")
                f.fix = repair
            return f
        f.state = f"running ({hs})" if hs else "running"
        if st.get("Restarting"):
            f.ok, f.state, f.repairable = False, "restarting", True
            f.cause = f"keeps restarting (exit {st.get('ExitCode')}, {info.get('RestartCount', 0)} restarts)"
            f.fix = f"`docker logs {name}` says why; {repair}"
        return f
    f.ok, f.repairable = False, True
    code = st.get("ExitCode", 0)
    f.state = f"{status} ({code})"
    finished = parse_time(str(st.get("FinishedAt", "")))
    policy = (info.get("HostConfig", {}).get("RestartPolicy") or {}).get("Name", "")
    if status == "created":
        f.cause = "created but never started (the Docker daemon went away while `up` was starting it?)"
        f.fix = f"fix a stale port named here first; then `make up STACK={stack}` (or `make repair STACK={stack}`)"
        return f
    elif st.get("OOMKilled"):
        f.cause = f"not running: killed for running out of memory (OOM, exit {code})"
        f.fix = f"raise `tfbox:notebookMemory` or use less memory; {repair}"
        return f
    elif (policy != "always" and daemon_started is not None and finished is not None
          and timedelta(seconds=-5) <= finished - daemon_started <= RESTART_WINDOW):
        # the restarted daemon records a crashed daemon's containers as exited while it starts; `always` ones it
        # starts again, so an exited `always` container was stopped later, by someone
        f.cause = (f"not running: exited (exit {code}) when the Docker daemon restarted at {_hm(daemon_started)}; the daemon "
                   f"had died (killed or crashed) and its restart policy `{policy or 'no'}` does not start it again")
        f.fix = f"{repair}; upgrading tfbox gives the lab restart policy `always`, which comes back by itself"
        return f
    elif code == 137:
        f.cause = "not running: killed (exit 137: SIGKILL, `docker kill`/`docker stop`, or the OOM killer of the host)"
    elif code == 0:
        f.cause = "not running: stopped (exit 0), e.g. `docker stop`"
    else:
        f.cause = f"not running: exited with {code}" + (f" ({st.get('Error')})" if st.get("Error") else "")
    f.fix = repair
    return f


def _one_line(text: str, limit: int = 200) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    joined = " / ".join(lines)
    return joined if len(joined) <= limit else joined[: limit - 1] + "…"


def _hm(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def missing_findings(stack: str, expected_roles: Iterable[str], found: Iterable[Finding]) -> list[Finding]:
    """A legacy lab's role with no container at all: removed by hand, or never created."""
    have = {f.role for f in found if f.stack == stack}
    return [Finding(stack=stack, seat=stack, container="", role=role, state="missing", ok=False,
                    cause=f"no {role} container on the host (removed, or `up` never finished)",
                    fix=f"`make up STACK={stack}` creates it again (notebooks and logs are on volumes)")
            for role in expected_roles if role not in have]


def stale_port_findings(stale: Iterable[Proxy], stacks_by_port: Mapping[int, str], host: str) -> list[Finding]:
    out = []
    for p in stale:
        owner = stacks_by_port.get(p.host_port, "")
        out.append(Finding(
            stack=owner or "-", seat=owner or "-", container="", role="port", state=f"{p.host_ip}:{p.host_port} stale", ok=False,
            cause=(f"a stale docker-proxy (pid {p.pid}) of the Docker daemon on {host} holds {p.host_ip}:{p.host_port} with no "
                   "container behind it (the daemon was killed while starting a container): every `up` that publishes it "
                   "fails with 'port is already allocated'"),
            fix=STALE_PORT_FIX))
    return out


def daemon_restart_finding(daemon_started: datetime | None, findings: Iterable[Finding], host: str) -> Finding | None:
    """One line when containers exited at the daemon's last start: it died (killed, crashed) before."""
    hit = [f for f in findings if "when the Docker daemon restarted" in f.cause]
    if not hit or daemon_started is None:
        return None
    return Finding(stack="-", seat="-", container="", role="daemon", state="restarted", ok=False,
                   cause=f"the Docker daemon on {host} started at {_hm(daemon_started)} after it had died; "
                         f"{len(hit)} lab container(s) stayed exited", fix="`make repair` (per stack: `make repair STACK=…`)")


# How a `pulumi up` reads when the Docker daemon died under it (the texts the docker provider passes on,
# captured from real runs: tests/ops/test_doctor.py) and what to do then.
UP_ERRORS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"port is already allocated"),
     "a port of the lab is held by a stale docker-proxy (the daemon was killed while starting a container): "
     f"`make doctor` names it; {STALE_PORT_FIX}"),
    (re.compile(r"error during connect|unexpected EOF|: EOF\b|connection reset by peer|broken pipe", re.I),
     "the Docker daemon went away during `up` (killed or crashed): once it runs again, `make doctor`, then `make up` "
     "finishes the lab"),
    (re.compile(r"Cannot connect to the Docker daemon|Is the docker daemon running|connect: no such file or directory|"
                r"connect: connection refused", re.I),
     "the Docker daemon is not running: start it (`sudo systemctl start docker`), then `make up`"),
    (re.compile(r"is already in use by container"),
     "a container of the lab was created but not recorded (an interrupted `up`): see docs/troubleshooting.md"),
]


def explain_up_error(text: str) -> str | None:
    """What a failed `up`'s output means when the Docker daemon died or came back half-way; None otherwise."""
    for pattern, meaning in UP_ERRORS:
        if pattern.search(text):
            return meaning
    return None


def render(findings: Sequence[Finding]) -> str:
    """The report: one table (stack, seat, container, state) and the cause and fix under each problem."""
    rows = [("stack", "seat", "container", "state")] + [
        (f.stack, f.seat, f.container or f"({f.role})", f.state if f.ok else f"{f.state}  <- PROBLEM") for f in findings]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3] for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  -----")
    problems = [f for f in findings if not f.ok]
    if problems:
        lines.append("")
        for f in problems:
            what = f.container or f"{f.role} on stack {f.stack}"
            lines.append(f"{what}: {f.cause}")
            if f.fix:
                lines.append(f"  fix: {f.fix}")
    else:
        lines.append("\nall labs healthy")
    return "\n".join(lines)


# --- reaching a Docker host ----------------------------------------------------------------


@dataclass
class StackRef:
    name: str
    host: Host
    expected_roles: tuple[str, ...]
    ports: tuple[int, ...]
    refused: str = ""  # why the stack file's docker:sshOpts are not run here (components.docker.ssh.ssh_opts_problems)
    backend: str = "docker"  # tfbox:backend: a kubernetes stack is read from its cluster (ops.cluster_stack)


def stack_refs(root: Path, only: str | None = None) -> list[StackRef]:
    """The stacks to look at, from their files as the model reads them (components.model.check): Docker host,
    ssh options, the roles and ports each lab has."""
    from components.model.check import project_of
    from ops.cluster_stack import backend_of

    defaults = project_of(root)[1]
    refs = []
    for path in stack_files(root):
        sf = read_stack_file(path)
        if only is not None and sf.stack != only:
            continue
        if backend_of(sf, defaults) != "docker":
            refs.append(StackRef(sf.stack, Host(_default_host()), (), (), backend=backend_of(sf, defaults)))
            continue
        given = sf.provider_config.get("docker:host")
        host = normalise_docker_host(str(given)) if given else _default_host()
        roles, ports = lab_shape(root, sf.stack)
        ssh_opts = sf.provider_config.get("docker:sshOpts")
        unsafe = ssh_opts_problems(ssh_opts)
        refused = f"stack {sf.stack}: docker:sshOpts: {'; '.join(unsafe)}; not examined. Fix: {SSH_OPTS_FIX}" if unsafe else ""
        refs.append(StackRef(sf.stack, Host(host, ssh_opts_from(ssh_opts)), roles, ports, refused))
    return refs


def _default_host() -> str:
    import os

    return normalise_docker_host(os.environ.get("DOCKER_HOST") or LOCAL_DOCKER_HOST)


@dataclass
class HostReport:
    findings: list[Finding]
    error: str = ""


def examine_host(host: Host, stacks: Sequence[StackRef], run: Runner = run_command, every_port: bool = True) -> HostReport:
    """Ask one Docker host about the given stacks' containers and its stale ports (all of them, or with
    `every_port` False only those on the stacks' own ports: `make doctor STACK=…` is about that lab)."""
    infos, error = inspect_containers(host, run)
    if error:
        return HostReport([], error)
    daemon_started: datetime | None = None
    stale: list[Proxy] = []
    sock = host.socket_path()
    if sock is not None:
        # -ww: whole command lines; `ps` cuts them at $COLUMNS when that is set (an exported COLUMNS, pytest-xdist's
        # workers), and a cut dockerd or docker-proxy line loses the flags that identify it
        argv, env = host.argv(["ps", "-ww", "-eo", "pid=,ppid=,etimes=,args="])
        code, out, _ = run(argv, env)
        if code == 0:
            procs = parse_ps(out)
            dockerd = find_dockerd(procs, sock)
            if dockerd is not None:
                daemon_started = datetime.now(UTC) - timedelta(seconds=dockerd.elapsed_s)
                stale = stale_proxies(proxies_of(procs, dockerd.pid), published_ports(infos))
    names = {s.name for s in stacks}
    findings: list[Finding] = []
    for s in stacks:
        mine = [classify_container(i, daemon_started) for i in infos
                if (i.get("Config", {}).get("Labels") or {}).get(STACK_LABEL) == s.name]
        mine.sort(key=lambda f: (f.seat, f.role, f.container))
        findings += mine
        if not any((i.get("Config", {}).get("Labels") or {}).get(SEAT_LABEL) for i in infos
                   if (i.get("Config", {}).get("Labels") or {}).get(STACK_LABEL) == s.name):
            findings += missing_findings(s.name, s.expected_roles, mine)
    by_port = {p: s.name for s in stacks for p in s.ports if s.name in names}
    if not every_port:
        stale = [p for p in stale if p.host_port in by_port]
    findings += stale_port_findings(stale, by_port, host.docker_host)
    restart = daemon_restart_finding(daemon_started, findings, host.docker_host)
    if restart is not None:
        findings.append(restart)
    return HostReport(findings)


CLUSTER_REPAIR = (
    "repair: stack {stack} runs on Kubernetes, where `make repair` replaces nothing: a Pending pod starts by itself "
    "once the fix named above is made (the GPUs it asks for are free, its claim is bound, its image can be pulled); "
    "a pod that keeps failing is made again by its StatefulSet (a TensorBoard pod: its Deployment) when deleted (`kubectl delete pod -n {namespace} POD`; "
    "notebooks and logs are on claims and kept); a lost GPU is the node's to fix"
)


def cluster_findings(root: Path, stack: str) -> tuple[list[Finding], list[str]]:
    """A kubernetes stack's seats, claims and GPU nodes in doctor's rows (components.kubernetes.health)."""
    from ops.cluster_stack import cluster_stack, read

    cs = cluster_stack(root, stack)
    states, problems, error = read(cs)
    if error:
        return [], [f"stack {stack}: {error}"]
    found = []
    for s in states:
        found.append(Finding(stack=stack, seat=s.seat, container=s.pod, role="pod", state=s.problem.state if s.problem else s.state,
                             ok=s.problem is None, cause=s.problem.cause if s.problem else "", fix=s.problem.fix if s.problem else ""))
        if s.tensorboard_pod:  # sidecar mode: TensorBoard's own pod, on the notebook's node
            tb = s.tensorboard_problem
            found.append(Finding(stack=stack, seat=s.seat, container=s.tensorboard_pod, role="tensorboard",
                                 state=tb.state if tb else s.tensorboard_state, ok=tb is None, cause=tb.cause if tb else "",
                                 fix=tb.fix if tb else ""))
    if not states:
        found.append(Finding(stack=stack, seat=stack, container="", role="pod", state="missing", ok=False,
                             cause=f"no seat of this stack in namespace {cs.namespace} ({cs.where})",
                             fix=f"`make up STACK={stack}` creates the lab"))
    found += [Finding(stack=stack, seat=p.seat, container=p.what, role=p.role, state=p.state, ok=False, cause=p.cause, fix=p.fix)
              for p in problems]
    return found, []


def doctor(root: Path, only: str | None = None, run: Runner = run_command) -> tuple[list[Finding], list[str]]:
    refs = stack_refs(root, only)
    errors: list[str] = [r.refused for r in refs if r.refused]  # a committed file's ssh options never run here
    findings: list[Finding] = []
    for r in refs:
        if r.backend != "docker":
            more, problems = cluster_findings(root, r.name)
            findings += more
            errors += problems
    by_host: dict[str, list[StackRef]] = {}
    for r in refs:
        if not r.refused and r.backend == "docker":
            by_host.setdefault(r.host.docker_host, []).append(r)
    for stacks in by_host.values():
        rep = examine_host(stacks[0].host, stacks, run, every_port=only is None)
        findings += rep.findings
        if rep.error:
            errors.append(rep.error)
    return findings, errors


# --- repair ----------------------------------------------------------------------------------


def container_urns(state: Mapping[str, Any]) -> dict[str, str]:
    """Container name -> URN, from `pulumi stack export`."""
    urns = {}
    for res in (state.get("deployment") or {}).get("resources") or []:
        if res.get("type") == "docker:index/container:Container":
            name = (res.get("outputs") or {}).get("name") or (res.get("inputs") or {}).get("name")
            if name:
                urns[str(name)] = str(res["urn"])
    return urns


def repair_plan(findings: Iterable[Finding], urns_by_stack: Mapping[str, Mapping[str, str]]) -> dict[str, list[str]]:
    """Per stack, the URNs `pulumi up --replace` gets: exactly the broken notebook/TensorBoard containers."""
    plan: dict[str, list[str]] = {}
    for f in findings:
        if f.ok or not f.repairable or not f.container:
            continue
        urn = (urns_by_stack.get(f.stack) or {}).get(f.container)
        if urn:
            plan.setdefault(f.stack, []).append(urn)
    return plan


def repair(root: Path, findings: Sequence[Finding]) -> int:
    from ops.fleet import pulumi_on_path

    env = pulumi_on_path(root)
    stacks = sorted({f.stack for f in findings if not f.ok and f.repairable and f.container})
    urns: dict[str, dict[str, str]] = {}
    for s in stacks:
        p = subprocess.run(["pulumi", "--non-interactive", "stack", "export", "--stack", s], cwd=root, env=env,
                           capture_output=True, text=True, check=False)
        if p.returncode != 0:
            print(f"repair: cannot read stack {s}'s state: {_one_line(p.stderr)}", file=sys.stderr)
            continue
        urns[s] = container_urns(json.loads(p.stdout))
    plan = repair_plan(findings, urns)
    status = 0
    for s, targets in plan.items():
        print(f"repair: stack {s}: replacing {', '.join(u.rsplit('::', 1)[1] for u in targets)}", flush=True)
        # --refresh: the state must see the host as it is now. After a daemon restart the running containers
        # have new addresses (the ready check would poll TensorBoard's old one), and a stopped one must not
        # be taken for running.
        cmd = ["pulumi", "--non-interactive", "up", "--yes", "--skip-preview", "--refresh", "--stack", s]
        for u in targets:
            cmd += ["--replace", u]
        p = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=False)
        print(p.stdout[-4000:], end="")
        if p.returncode != 0:
            status = 1
            meaning = explain_up_error(p.stdout + p.stderr)
            print(p.stderr[-4000:], end="", file=sys.stderr)
            print(f"repair: `pulumi up` of stack {s} failed", file=sys.stderr)
            if meaning:
                print(f"repair: {meaning}", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", default=None, help="one stack (default: every stack file here)")
    parser.add_argument("--repair", action="store_true", help="replace the broken containers through `pulumi up --replace`")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stack is not None and not (args.root / f"Pulumi.{args.stack}.yaml").is_file():
        print(f"doctor: no stack file Pulumi.{args.stack}.yaml here", file=sys.stderr)
        return 2
    findings, errors = doctor(args.root, args.stack)
    print(render(findings))
    for e in errors:
        print(f"doctor: {e}", file=sys.stderr)
    broken = [f for f in findings if not f.ok]
    if args.repair:
        clusters = {r.name for r in stack_refs(args.root, args.stack) if r.backend != "docker"}
        for stack in sorted({f.stack for f in broken} & clusters):
            from ops.cluster_stack import cluster_stack

            print(CLUSTER_REPAIR.format(stack=stack, namespace=cluster_stack(args.root, stack).namespace))
        broken_docker = [f for f in broken if f.stack not in clusters]
        if not any(f.repairable for f in broken_docker):
            if broken_docker or not clusters:
                print("repair: no container to replace" + ("; the problems above need the fix named under each" if broken else ""))
            return 1 if broken or errors else 0
        status = repair(args.root, broken_docker)
        after, errors = doctor(args.root, args.stack)
        print("\nafter repair:\n" + render(after))
        return status or (1 if any(not f.ok for f in after) or errors else 0)
    return 1 if broken or errors else 0
