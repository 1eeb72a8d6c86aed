#!/usr/bin/env python3
"""Benchmark: how `up`, a no-op `up` and `preview` grow with the seats on one box, and how
`make fleet` grows with the machines.

Seats: one stack with 1, 2, 4, 8 seats (no GPUs, each its own notebook and TensorBoard, every
password a secret under `tfbox:passwords`) on the private daemon: `pulumi up` from nothing (it
returns when every seat answers: components/docker/ready.py), a no-op `up --skip-preview` and a `preview`,
then `destroy`. Fleet: 1, 2, 4 SSH boxes (scripts/box.sh, as the e2e suite's; the image is pulled
on each box first, so no timed run includes a pull), one machine stack each, `make fleet ACTION=up`
from nothing and `make fleet ACTION=preview` (4 machines at a time, ops/fleet.py's default).

Prints each time and the time per seat / per machine: a per-unit time that grows with the size is
worse-than-linear growth. Writes bench/results/scaling.json.

    bench/scaling.py [-n RUNS] [--seats 1,2,4,8] [--machines 1,2,4] [--out DIR] [--docker-host …] [--image …]
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, Setup, arguments_with, log, machine, median, setup
from tests.e2e.harness import Project, Result, Stack, change_summary, free_port

STACK = "scale"


def timed(fn: Any) -> tuple[float, Result]:
    t0 = time.monotonic()
    res = fn()
    return time.monotonic() - t0, res


def seats_stack(project: Project, s: Setup, n: int) -> Stack:
    seats = [{"name": f"s{i}", "gpus": "none", "notebookPort": free_port(), "tensorboardPort": free_port()} for i in range(n)]
    stack = project.stack(f"{STACK}{n}", {
        "docker:host": s.docker.host, "tfbox:image": s.image, "tfbox:passwordSalt": secrets.token_hex(16), "tfbox:seats": seats,
    }, None)
    for seat in seats:
        project.pulumi("config", "set", "--secret", "--path", f"tfbox:passwords.{seat['name']}", "--stack", stack.name,
                       input="seat-" + secrets.token_urlsafe(12))
    return stack


def no_change(what: str, res: Result) -> None:
    if change_summary(res.output):
        raise SystemExit(f"{what} was not a no-op:\n{res.output[-3000:]}")


def clear(stack: Stack, s: Setup, docker: Any = None) -> None:
    stack.destroy()
    d = docker or s.docker
    vols = [v for v in d("volume", "ls", "-q").stdout.split() if v.startswith("tfbox-")]
    if vols:
        d("volume", "rm", *vols)


def bench_seats(s: Setup, sizes: list[int], runs: int) -> dict[str, Any]:
    project = s.project("seats")
    stacks = {n: seats_stack(project, s, n) for n in sizes}
    times: dict[int, dict[str, list[float]]] = {n: {"up": [], "no-op up": [], "preview": []} for n in sizes}
    try:
        for i in range(runs):
            for n in sizes if i % 2 == 0 else list(reversed(sizes)):
                st = stacks[n]
                t, _ = timed(st.up)
                times[n]["up"].append(t)
                t, res = timed(st.up)
                no_change(f"up of {n} seats", res)
                times[n]["no-op up"].append(t)
                t, res = timed(st.preview)
                no_change(f"preview of {n} seats", res)
                times[n]["preview"].append(t)
                log(f"seats {n}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times[n].items()))
                clear(st, s)
    finally:
        for st in stacks.values():
            st.destroy(check=False)
    return {str(n): {k: {"median": median(v), "min": min(v), "max": max(v), "runs": v} for k, v in t.items()} for n, t in times.items()}


def bench_fleet(s: Setup, sizes: list[int], runs: int) -> dict[str, Any]:
    from tests.e2e.boxes import start_boxes, stop_boxes
    names = [f"scale{os.getpid()}-{i}" for i in range(max(sizes))]  # two runs at once get boxes of their own
    log(f"starting {len(names)} SSH boxes (scripts/box.sh)")
    boxes, client = start_boxes(names, s.workdir / "ssh")
    times: dict[int, dict[str, list[float]]] = {n: {"fleet up": [], "fleet preview": []} for n in sizes}
    try:
        log(f"pulling the image on {len(boxes)} boxes (not timed)")
        with ThreadPoolExecutor(max_workers=len(boxes)) as pool:
            list(pool.map(lambda box: box.docker("pull", s.image, timeout=1800), boxes))
        for i in range(runs):
            for n in sizes if i % 2 == 0 else list(reversed(sizes)):
                project = s.project(f"fleet-{n}-{i}")
                for f in project.dir.glob("Pulumi.*.yaml"):
                    f.unlink()  # only this fleet's machine stacks, not the examples
                stacks = []
                for box in boxes[:n]:
                    stacks.append(project.stack(box.name, {
                        "tfbox:stackKind": "machine", "docker:host": box.ssh_host(), "docker:sshOpts": client.ssh_opts,
                        "tfbox:image": s.image, "tfbox:notebookPort": free_port(), "tfbox:tensorboardPort": free_port(),
                    }, "fleet-" + secrets.token_urlsafe(12)))
                machines = ",".join(b.name for b in boxes[:n])

                def fleet(action: str, project: Project = project, machines: str = machines) -> Result:
                    return project.run("make", "--no-print-directory", "fleet", f"ACTION={action}", f"MACHINES={machines}",
                                       timeout=1800)
                try:
                    t, _ = timed(lambda: fleet("up"))
                    times[n]["fleet up"].append(t)
                    t, _ = timed(lambda: fleet("preview"))
                    times[n]["fleet preview"].append(t)
                    log(f"fleet {n}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times[n].items()))
                finally:
                    for st, box in zip(stacks, boxes[:n], strict=False):
                        clear(st, s, box.docker)
    finally:
        stop_boxes(boxes)
    return {str(n): {k: {"median": median(v), "min": min(v), "max": max(v), "runs": v} for k, v in t.items()} for n, t in times.items()}


def print_table(title: str, unit: str, data: dict[str, Any]) -> None:
    print(f"\n{title}")
    kinds = list(next(iter(data.values())))
    print(f"  {unit:>8}" + "".join(f"{k + ' (s)':>18}{'per ' + unit:>12}" for k in kinds))
    for n, row in data.items():
        print(f"  {n:>8}" + "".join(f"{row[k]['median']:>18.2f}{row[k]['median'] / int(n):>12.2f}" for k in kinds))


def sizes_arg(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main() -> None:
    args = arguments_with(__doc__ or "", [
        ("--seats", str, "1,2,4,8", "seat counts on one box (empty: none)"),
        ("--machines", str, "1,2,4", "machine counts for `make fleet` (empty: none)"),
        ("--out", str, str(ROOT / "bench" / "results"), "where scaling.json goes"),
    ])
    seat_sizes, machine_sizes = sizes_arg(args.seats), sizes_arg(args.machines)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    result: dict[str, Any] = {}
    with setup(args) as s:
        if seat_sizes:
            result["seats"] = bench_seats(s, seat_sizes, args.runs)
        if machine_sizes:
            result["fleet"] = bench_fleet(s, machine_sizes, args.runs)
    print(f"\nscaling (median of {args.runs}; machine: {machine()}; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())})")
    if "seats" in result:
        print_table("seats on one box: up from nothing, no-op up --skip-preview, preview", "seat", result["seats"])
    if "fleet" in result:
        print_table("make fleet over SSH boxes: ACTION=up from nothing, ACTION=preview", "machine", result["fleet"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"started": started, "machine": machine(), "load_average": os.getloadavg(), "runs": args.runs}
    (out / "scaling.json").write_text(json.dumps({"meta": meta, **result}, indent=1) + "\n")
    print(f"\nwrote {out / 'scaling.json'}")


if __name__ == "__main__":
    main()
