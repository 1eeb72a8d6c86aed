#!/usr/bin/env python3
"""Benchmark: the CPU one Docker health probe costs on the host, per kind of probe.

A health check runs for as long as the lab runs, so its price is CPU per probe times probes
per second. Each probe is a `docker exec` done by the daemon (dockerd, containerd, the
container's shim and a `runc exec`) plus the probe's own process in the container. For each
probe kind a notebook container runs with that health check every second; the benchmark
sums the CPU time of the daemon's processes (dockerd, containerd, the shim and its reaped
children such as runc) and the container's cgroup over a window, subtracts the same sum for
the same container without a health check, and divides by the number of probes (the
daemon's exec events). CPU time, not wall time, so a busy machine changes it little.

    bench/probe_cost.py [-n RUNS] [--window SECONDS] [--docker-host unix://...] [--image REF]
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import arguments_with, log, median, setup
from components.model import commands
from tests.e2e.harness import Docker

NAME = "tfbox-bench-probe"
TICK = os.sysconf("SC_CLK_TCK")


def probes() -> dict[str, list[str] | None]:
    url_nb = f"http://127.0.0.1:{commands.JUPYTER_PORT}/api"
    return {
        "no health check": None,
        "python3 urllib (before)": commands.http_probe(url_nb),
        "bash /dev/tcp HTTP (now)": commands.notebook_probe(),
    }


def proc_cpu(pid: int, children: bool = False) -> float:
    """utime+stime (and the reaped children's, e.g. the runc processes a shim waited for) in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)
    return ticks / TICK


def pids_named(comm: str, needle: str) -> list[int]:
    """Processes called `comm` whose command line mentions `needle` (this daemon's, not others')."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if (p / "comm").read_text().strip() == comm and needle in (p / "cmdline").read_bytes().decode(errors="replace"):
                out.append(int(p.name))
        except OSError:
            continue
    return out


def cgroup_cpu(pid: int) -> float:
    """CPU seconds of the cgroup (v1 cpuacct or v2 cpu.stat) that `pid` is in: every process of the container."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if "cpuacct" in ctrls.split(","):
            return int(Path(f"/sys/fs/cgroup/cpuacct{path}/cpuacct.usage").read_text()) / 1e9
        if ctrls == "" and Path(f"/sys/fs/cgroup{path}/cpu.stat").exists():
            stat = dict(x.split() for x in Path(f"/sys/fs/cgroup{path}/cpu.stat").read_text().splitlines())
            return int(stat["usage_usec"]) / 1e6
    raise RuntimeError(f"no CPU accounting cgroup for pid {pid}")


def host_pids(docker: Docker, container_pid: int) -> dict[str, list[int]]:
    sock = docker.host.removeprefix("unix://")
    run_dir = str(Path(sock).parent)
    shim = int(Path(f"/proc/{container_pid}/stat").read_text().rsplit(")", 1)[1].split()[1])  # the init's parent
    return {"dockerd": pids_named("dockerd", sock), "containerd": pids_named("containerd", run_dir), "shim": [shim]}


def sample(pids: dict[str, list[int]], container_pid: int) -> dict[str, float]:
    """CPU seconds so far of the container's cgroup and of each of the daemon's processes."""
    out = {"container": cgroup_cpu(container_pid)}
    for kind, ps in pids.items():
        out[kind] = sum(proc_cpu(p, children=kind == "shim") for p in ps)
    return out


def api(docker: Docker, method: str, path: str, body: object = None) -> None:
    """One Docker Engine API call over the daemon's unix socket."""
    conn = http.client.HTTPConnection("docker")
    conn.sock = socket.socket(socket.AF_UNIX)
    conn.sock.connect(docker.host.removeprefix("unix://"))
    conn.request(method, path, json.dumps(body) if body is not None else None, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    text = resp.read().decode()
    if resp.status >= 300:
        raise SystemExit(f"{method} {path}: {resp.status} {text}")


def measure(docker: Docker, image: str, probe: list[str] | None, window: float) -> tuple[float, int]:
    """CPU seconds used over `window` by the daemon and the container, and the number of probes in it."""
    docker("rm", "-f", NAME, check=False)
    # through the API: `docker run --health-cmd` only takes a shell string, the program's probes are exec form
    spec: dict[str, object] = {"Image": image, "Cmd": commands.notebook_command("/tf/logs", False)}
    if probe is not None:
        spec["Healthcheck"] = {"Test": probe, "Interval": 10**9, "Timeout": 5 * 10**9, "Retries": 5}
    api(docker, "POST", f"/containers/create?name={NAME}", spec)
    api(docker, "POST", f"/containers/{NAME}/start")
    try:
        deadline = time.monotonic() + 120
        while True:  # steady state: the notebook answers (healthy), or 20 s for no health check
            info = docker.inspect(NAME) or {}
            health = info.get("State", {}).get("Health", {}).get("Status")
            if health == "healthy" or (probe is None and time.monotonic() > deadline - 100):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{NAME} not healthy: {json.dumps(info.get('State'), indent=1)[-2000:]}")
            time.sleep(0.5)
        time.sleep(3)
        cpid = int(info["State"]["Pid"])
        pids = host_pids(docker, cpid)
        since = str(int(time.time()))
        before = sample(pids, cpid)
        time.sleep(window)
        after = sample(pids, cpid)
        log("  " + ", ".join(f"{k} {after[k] - before[k]:.3f} s" for k in after))
        until = str(int(time.time()))
        events = docker("events", "--since", since, "--until", until, "--filter", f"container={NAME}",
                        "--filter", "event=exec_die", "--format", "{{.Action}}").stdout.split()
        return sum(after.values()) - sum(before.values()), len(events)
    finally:
        docker("rm", "-f", NAME, check=False)


def main() -> None:
    args = arguments_with(__doc__ or "", [("--window", float, 30.0, "seconds of steady state measured per run")])
    with setup(args) as s:
        results: dict[str, list[tuple[float, int]]] = {}
        for i in range(args.runs):
            for label, probe in probes().items():
                cpu, n = measure(s.docker, s.image, probe, args.window)
                results.setdefault(label, []).append((cpu, n))
                log(f"run {i + 1}: {label}: {cpu:.3f} s CPU in {args.window:.0f} s, {n} probes")
        base = median([cpu for cpu, _ in results.pop("no health check")]) / args.window
        print(f"\nCPU per health probe (median of {args.runs} runs of {args.window:.0f} s, probe every 1 s)")
        print(f"  no health check: {base * 100:.2f} % of one core (an idle notebook and its daemon)")
        for label, runs in results.items():
            per_probe = median([(cpu - base * args.window) / max(n, 1) for cpu, n in runs])
            rate = median([n / args.window for _, n in runs])
            print(f"  {label:<28} {per_probe * 1000:6.1f} ms CPU per probe, {rate:.2f} probes/s"
                  f" -> {per_probe * rate * 100:.2f} % of one core")


if __name__ == "__main__":
    main()
