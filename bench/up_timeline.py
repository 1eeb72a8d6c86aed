#!/usr/bin/env python3
"""Where `pulumi up` from nothing, and then `up --replace` of the notebook, spend their time: every engine
event of one `up --json`, stamped as it arrives, folded into phases (CLI start until the program's first
resource, each resource step (create, or a replacement's delete and create), the tail after the last
one) and printed per run with the median of each phase.

    bench/up_timeline.py [-n RUNS] [--docker-host unix://...] [--image REF]

Not a test and not a ratio: it says which part of tfbox's side of `up_vs_recipe.py` to work on.
"""

from __future__ import annotations

import json
import secrets
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import arguments, log, machine, setup
from tests.e2e.harness import free_port

STACK = "timeline"


def timeline(project_dir: Path, env: dict[str, str], *extra: str) -> tuple[float, list[tuple[float, str, str]]]:
    """Total seconds and (seconds since start, event kind, "<op> <type> <name>") for one `up`."""
    cmd = ["pulumi", "--non-interactive", "up", "--yes", "--skip-preview", "--json", "--stack", STACK, *extra]
    events: list[tuple[float, str, str]] = []
    t0 = time.monotonic()
    with subprocess.Popen(cmd, cwd=project_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        tail: list[str] = []
        for line in proc.stdout:
            now = time.monotonic() - t0
            tail = [*tail[-40:], line]
            try:
                event = json.loads(line)
            except ValueError:
                continue
            kind = next((k for k in event if k.endswith("Event")), "")
            meta = event.get(kind, {}).get("metadata", {}) if isinstance(event.get(kind), dict) else {}
            urn = meta.get("urn", "")
            if kind in ("preludeEvent", "summaryEvent") or (urn and kind in ("resourcePreEvent", "resOutputsEvent")):
                name = f"{meta.get('op', '')} {urn.rsplit('::', 2)[-2].split('$')[-1]} {urn.rsplit('::', 1)[-1]}" if urn else ""
                events.append((now, kind, name))
    if proc.returncode != 0:
        raise SystemExit("pulumi up failed:\n" + "".join(tail))
    return time.monotonic() - t0, events


def phases(total: float, events: list[tuple[float, str, str]]) -> dict[str, float]:
    """Seconds per phase: start -> first resource, each docker resource's create, last resource -> exit."""
    out: dict[str, float] = {}
    started: dict[str, float] = {}
    firsts = [t for t, kind, _ in events if kind == "resourcePreEvent"]
    lasts = [t for t, kind, _ in events if kind == "resOutputsEvent"]
    out["CLI + program start, until the first resource"] = firsts[0] if firsts else total
    for t, kind, name in events:
        op, _, resource = name.partition(" ")
        if op in ("same", "replace") or not resource.startswith("docker:"):  # `replace` only marks the pair
            continue
        if kind == "resourcePreEvent":
            started[name] = t
        elif kind == "resOutputsEvent" and name in started:
            out[name] = t - started[name]
    out["after the last resource, until the CLI exits"] = total - (lasts[-1] if lasts else total)
    out["total"] = total
    return out


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    with setup(args) as s:
        project = s.project("timeline")
        stack = project.stack(STACK, {"docker:host": s.docker.host, "tfbox:image": s.image,
                                      "tfbox:notebookPort": free_port(), "tfbox:tensorboardPort": free_port()},
                              secrets.token_urlsafe(18))
        runs: dict[str, list[float]] = defaultdict(list)
        replaces: dict[str, list[float]] = defaultdict(list)
        for n in range(1, args.runs + 1):
            total, events = timeline(project.dir, project.env)
            for name, seconds in phases(total, events).items():
                runs[name].append(seconds)
            resources = json.loads(stack.export())["deployment"]["resources"]
            urn = next(r["urn"] for r in resources if r["urn"].endswith("docker:index/container:Container::notebook"))
            replaced, events = timeline(project.dir, project.env, "--replace", urn)
            for name, seconds in phases(replaced, events).items():
                replaces[name].append(seconds)
            log(f"run {n}: up returned after {total:.2f} s, up --replace notebook after {replaced:.2f} s")
            stack.destroy()
            for volume in (f"tfbox-{STACK}-notebooks", f"tfbox-{STACK}-logs"):
                s.docker("volume", "rm", volume, check=False)
    for title, table in (("pulumi up from nothing", runs), ("pulumi up --replace of the notebook", replaces)):
        print(f"\n{title}, by phase (median of {args.runs} runs; machine: {machine()})")
        for name, values in table.items():
            print(f"  {name:<64} median {statistics.median(values):6.2f} s   runs: {', '.join(f'{v:.2f}' for v in values)}")


if __name__ == "__main__":
    main()
