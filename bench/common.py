"""What both benchmarks share: a Docker daemon of their own with the TensorFlow notebook image,
the Pulumi toolchain, a project copy with its own state (tests/e2e/harness.py), timing and medians.

By default a benchmark starts a private daemon `bench` (scripts/dockerd.sh), the local registry
(scripts/registry.sh) and pushes the notebook image to it (scripts/tf-image.sh, cached after its
first build), and stops what it started at the end. `--docker-host` and `--image` use a daemon
and an image you already have instead. Needs root, like `make test`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.e2e.harness import Docker, Project, http_get  # noqa: E402

DAEMON = "bench"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def arguments(description: str) -> argparse.Namespace:
    return arguments_with(description, [])


def arguments_with(description: str, extra: list[tuple[str, type, object, str]]) -> argparse.Namespace:
    """The common options plus `extra` (flag, type, default, help) of one benchmark."""
    parser = argparse.ArgumentParser(description=description)
    for flag, kind, default, help_text in extra:
        parser.add_argument(flag, type=kind, default=default, help=help_text)
    parser.add_argument("-n", "--runs", type=int, default=int(os.environ.get("TFBOX_BENCH_RUNS", "3")),
                        help="timed runs per side (default 3, or TFBOX_BENCH_RUNS)")
    parser.add_argument("--docker-host", default="", help="use this daemon instead of starting scripts/dockerd.sh's `bench`")
    parser.add_argument("--image", default="", help="notebook image (default: the local registry's tensorflow/tensorflow:latest-jupyter)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def sh(*cmd: str, env: dict[str, str] | None = None, timeout: float = 1800) -> str:
    p = subprocess.run(list(cmd), cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout, check=False)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
    return p.stdout


def host_of(dockerd_output: str) -> str:
    return next(line.split("=", 1)[1] for line in dockerd_output.splitlines() if line.startswith("DOCKER_HOST="))


@dataclass
class Setup:
    docker: Docker
    image: str
    toolchain_bin: str
    workdir: Path

    def project(self, name: str) -> Project:
        work = self.workdir / name
        work.mkdir()
        return Project(work, self.toolchain_bin)


@contextlib.contextmanager
def setup(args: argparse.Namespace) -> Iterator[Setup]:
    """The daemon, image and toolchain; stops at the end only what it started."""
    started: list[Callable[[], object]] = []
    try:
        log("toolchain (toolchain/ensure.sh)")
        toolchain_bin = os.environ.get("TFBOX_TOOLCHAIN_BIN") or sh("toolchain/ensure.sh").strip().splitlines()[-1]
        if args.docker_host:
            docker = Docker(args.docker_host)
        else:
            log(f"private Docker daemon `{DAEMON}` (scripts/dockerd.sh)")
            docker = Docker(host_of(sh("scripts/dockerd.sh", "start", DAEMON)))
            started.append(lambda: sh("scripts/dockerd.sh", "purge", DAEMON))
        image = args.image
        if not image:
            registry = os.environ.get("TFBOX_E2E_REGISTRY", f"127.0.0.1:{os.environ.get('TFBOX_REGISTRY_PORT', '5000')}")
            if subprocess.run(["scripts/registry.sh", "status"], cwd=ROOT, capture_output=True, check=False).returncode != 0:
                log("local registry (scripts/registry.sh)")
                sh("scripts/registry.sh", "start")
                started.append(lambda: sh("scripts/registry.sh", "stop"))
            log("notebook image into the registry (scripts/tf-image.sh; cached after the first build)")
            sh("scripts/tf-image.sh", "--push", registry, env={"DOCKER_HOST": docker.host})
            image = f"{registry}/tensorflow/tensorflow:latest-jupyter"
        if not args.image or docker("image", "inspect", image, check=False).returncode != 0:
            log(f"pulling {image} once, so no timed run includes a pull")
            docker("pull", image, timeout=1800)
        with tempfile.TemporaryDirectory(prefix="tfbox-bench-") as tmp:
            yield Setup(docker, image, toolchain_bin, Path(tmp))
    finally:
        for stop in reversed(started):
            with contextlib.suppress(SystemExit):
                stop()


def wait_answering(url: str, timeout: float = 600) -> float:
    """Poll `url` until it answers 200 or 302; the monotonic time when it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if http_get(url, timeout=2)[0] in (200, 302):
                return time.monotonic()
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    mem_kb = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:")), 0)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "?")
    return f"{os.cpu_count()} cores ({cpu}), {mem_kb / 1024 / 1024:.0f} GB RAM, {platform.system()} {platform.release()}"


def report(title: str, rows: list[tuple[str, list[float]]], ratios: list[tuple[str, str, str]], runs: int) -> None:
    """Print one line per series (median and all runs) and the ratios of medians."""
    print(f"\n{title}  (median of {runs} runs; machine: {machine()})")
    medians = {}
    for name, values in rows:
        medians[name] = median(values)
        print(f"  {name:<44} median {medians[name]:7.2f} s   runs: {', '.join(f'{v:.2f}' for v in values)}")
    for label, num, den in ratios:
        print(f"  {label:<44} {medians[num] / medians[den]:7.2f}x")
