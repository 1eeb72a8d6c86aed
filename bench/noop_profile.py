#!/usr/bin/env python3
"""Where a no-op `pulumi up` of tfbox spends its time and CPU, against an empty program: the split
bench/noop_up.py's ratio cannot show.

Per run, for `up --skip-preview` and `preview` of the converged tfbox stack and of the empty program
(sides interleaved): the wall time; the CPU seconds of the CLI and everything it started (rusage of
waited-for children: the CLI, the language host, Python, the docker provider); and, from inside the
program (a `sitecustomize` on PYTHONPATH for these runs only, bench/noop_profile_site/), the program's
own CPU and wall time from its exec to its exit, and `-X importtime` of its top-level imports.
CPU seconds move far less with the machine's load than wall seconds do.

    bench/noop_profile.py [-n RUNS] [--docker-host unix://...] [--image REF]
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, arguments, log, machine, median, setup
from bench.noop_up import cpu_of_children, lab_and_floor
from tests.e2e.harness import Stack, change_summary

SITE = ROOT / "bench" / "noop_profile_site"
TOP = ("pulumi", "pulumi_docker", "components", "argon2", "yaml", "grpc")


def top_imports(path: Path) -> dict[str, float]:
    """Seconds of each top-level import (`-X importtime`'s cumulative column, at nesting depth 0)."""
    out: dict[str, float] = defaultdict(float)
    for line in path.read_text(errors="replace").splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| ( *)(\S+)", line)
        if m and not m.group(2):  # depth 0: imported by the program itself
            name = m.group(3).split(".")[0]
            out[name if name in TOP else "other"] += int(m.group(1)) / 1e6
    return out


def one(stack: Stack, command: tuple[str, ...], tmp: Path) -> dict[str, float]:
    prefix = tmp / f"{stack.name}-{secrets.token_hex(4)}"
    env = {"PYTHONPATH": str(SITE), "PYTHONPROFILEIMPORTTIME": "1", "TFBOX_PROFILE_OUT": str(prefix)}
    c0, t0 = cpu_of_children(), time.monotonic()
    res = stack.project.pulumi(*command, "--stack", stack.name, env=env)
    wall, cpu = time.monotonic() - t0, cpu_of_children() - c0
    if change_summary(res.output):
        raise SystemExit(f"not a no-op: {' '.join(command)} of {stack.name}:\n{res.output[-3000:]}")
    inside = json.loads(Path(f"{prefix}.json").read_text())
    row = {"wall": wall, "cpu (all processes)": cpu, "program cpu": inside["cpu"], "program wall": inside["wall_since_exec"]}
    row.update({f"import {k}": v for k, v in top_imports(Path(f"{prefix}.importtime")).items()})
    return row


def main() -> None:
    args = arguments(__doc__ or "")
    with setup(args) as s:
        lab, floor = lab_and_floor(s)
        tmp = s.workdir / "profile"
        tmp.mkdir()
        commands = {"up --skip-preview": ("up", "--yes", "--skip-preview"), "preview": ("preview",)}
        rows: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
        try:
            log("converging the tfbox stack and the empty program (not timed)")
            lab.up()
            floor.up()
            for i in range(args.runs):
                for what, command in commands.items():
                    for name, stack in (("tfbox", lab), ("empty", floor))[:: 1 if i % 2 == 0 else -1]:
                        rows[(name, what)].append(one(stack, command, tmp))
                log(f"run {i + 1}: " + ", ".join(f"{n} {w} {r[-1]['wall']:.2f} s" for (n, w), r in rows.items()))
        finally:
            lab.destroy(check=False)
            for vol in ("tfbox-bench-notebooks", "tfbox-bench-logs"):
                s.docker("volume", "rm", vol, check=False)
    print(f"\nno-op profile, median of {args.runs} (machine: {machine()}; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())})")
    for what in commands:
        keys = sorted({k for (_, w), rs in rows.items() if w == what for r in rs for k in r},
                      key=lambda k: (not k.startswith(("wall", "cpu", "program")), k))
        print(f"\n  {what:<28}{'tfbox':>10}{'empty':>10}{'tfbox - empty':>15}")
        for k in keys:
            t = median([r.get(k, 0.0) for r in rows[("tfbox", what)]])
            e = median([r.get(k, 0.0) for r in rows[("empty", what)]])
            print(f"  {k:<28}{t:>9.3f}s{e:>9.3f}s{t - e:>14.3f}s")


if __name__ == "__main__":
    main()
