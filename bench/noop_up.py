#!/usr/bin/env python3
"""Benchmark: a no-op `pulumi up` of a converged tfbox stack against a no-op `up` of an empty
Pulumi Python program (the engine's own floor: CLI start, language host, Python, state I/O),
both on a file backend with the passphrase secrets provider, as a ratio of medians.

Timed twice: `pulumi up --yes --skip-preview` (what the tests run) and `pulumi up --yes` (with the
preview, what `make up` runs). Every timed run is checked to have changed nothing.

`--parts 1` adds two programs: one that imports what tfbox imports (pulumi_docker, tfbox's components) and
declares nothing (the share of the difference that is module loading), and one that declares a single
Docker network with pulumi-docker and nothing else (the floor of any program that declares its lab with
the docker provider: the provider's start and one Check + Diff).

    bench/noop_up.py [-n RUNS] [--parts 1] [--docker-host unix://...] [--image REF]
"""

from __future__ import annotations

import resource
import secrets
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, Setup, arguments_with, log, report, setup
from tests.e2e.harness import Project, Result, Stack, change_summary, free_port

MODES = {"--skip-preview": ("--skip-preview",), "with preview": ()}


# What tfbox's __main__.py imports, without running it: the "imports only" program's body.
IMPORTS_ONLY = (
    '"""tfbox\'s imports and no resource: the share of a no-op that is module loading."""\n'
    "import pulumi_docker  # noqa: F401\n"
    "import components.config, components.docker.host_state, components.docker.lab, components.model.seats, components.docker.ssh  # noqa: F401,E401\n"
)


# The smallest program that uses the docker provider: one network, no tfbox code.
ONE_RESOURCE = (
    '"""One Docker network and nothing else: the floor of the docker provider for a no-op."""\n'
    "import pulumi_docker as docker\n"
    "docker.Network('floor', name='tfbox-bench-floor')\n"
)


def empty_program(project: Project, body: str = '"""An empty Pulumi program: no resources."""\n', name: str = "empty") -> None:
    """Turn a project copy into an empty Pulumi Python program using the same virtualenv."""
    (project.dir / "Pulumi.yaml").write_text(
        f"name: {name}\nruntime:\n  name: python\n  options:\n    toolchain: pip\n"
        f"    virtualenv: {ROOT / '.venv'}\n")
    (project.dir / "__main__.py").write_text(body)
    for stale in project.dir.glob("Pulumi.*.yaml"):
        stale.unlink()


def lab_and_floor(s: Setup) -> tuple[Stack, Stack]:
    """The converged-to-be tfbox stack and the empty program's stack the no-op benchmarks compare."""
    lab = s.project("tfbox").stack("bench", {
        "docker:host": s.docker.host, "tfbox:image": s.image,
        "tfbox:notebookPort": free_port(), "tfbox:tensorboardPort": free_port(),
    }, "bench-" + secrets.token_urlsafe(12))
    empty = s.project("empty")
    empty_program(empty)
    return lab, empty.stack("floor", {}, None)


def cpu_of_children() -> float:
    """User + system CPU seconds of every waited-for descendant so far (the CLI, its plugins, Python)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def timed_noop(stack: Stack, extra: tuple[str, ...]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (of the CLI and everything it started) of one no-op `up`."""
    c0, t0 = cpu_of_children(), time.monotonic()
    res: Result = stack.project.pulumi("up", "--yes", *extra, "--stack", stack.name)
    took, cpu = time.monotonic() - t0, cpu_of_children() - c0
    if change_summary(res.output):
        raise SystemExit(f"not a no-op up of {stack.name}:\n{res.output[-3000:]}")
    return took, cpu


def main() -> None:
    args = arguments_with(__doc__ or "", [("--parts", int, 0, "1: also time a program that only imports what tfbox imports")])
    with setup(args) as s:
        lab, floor = lab_and_floor(s)
        sides = [("tfbox", lab), ("empty", floor)]
        if args.parts:
            imports = s.project("imports")
            empty_program(imports, IMPORTS_ONLY, "imports")
            sides.append(("imports only", imports.stack("imports", {}, None)))
            one = s.project("one-resource")
            empty_program(one, ONE_RESOURCE, "oneresource")
            sides.append(("one docker resource", one.stack("one", {"docker:host": s.docker.host}, None)))
        try:
            log("converging the tfbox stack and the empty program (not timed)")
            lab.up()
            for _, stack in sides[1:]:
                stack.up()
            times: dict[str, list[float]] = {}
            cpu: dict[str, list[float]] = {}
            for i in range(args.runs):
                for mode, extra in MODES.items():
                    for name, stack in (sides if i % 2 == 0 else list(reversed(sides))):
                        took, used = timed_noop(stack, extra)
                        times.setdefault(f"{name} no-op up ({mode})", []).append(took)
                        cpu.setdefault(f"{name} no-op up ({mode}) CPU", []).append(used)
                log(f"run {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
        finally:
            lab.destroy(check=False)
            for _, stack in sides[2:]:
                stack.destroy(check=False)
            for vol in ("tfbox-bench-notebooks", "tfbox-bench-logs"):
                s.docker("volume", "rm", vol, check=False)
        report("no-op pulumi up: converged tfbox stack vs an empty Python program (wall, then CPU seconds of the "
               "CLI and all it started: less sensitive to the machine's load)", sorted(times.items()) + sorted(cpu.items()), [
            (f"ratio ({mode}): tfbox / empty", f"tfbox no-op up ({mode})", f"empty no-op up ({mode})") for mode in MODES
        ] + [
            (f"CPU ratio ({mode}): tfbox / empty", f"tfbox no-op up ({mode}) CPU", f"empty no-op up ({mode}) CPU") for mode in MODES
        ] + [
            (f"{kind} ratio ({mode}): {part} / empty", f"{part} no-op up ({mode}){suffix}", f"empty no-op up ({mode}){suffix}")
            for mode in MODES if args.parts for kind, suffix in (("wall", ""), ("CPU", " CPU"))
            for part in ("imports only", "one docker resource")
        ], args.runs)


if __name__ == "__main__":
    main()
