"""How long the program takes to evaluate under Pulumi's mocks, against a flat program.

The flat program declares the same Docker resources with the same inputs straight from
pulumi_docker, with no config parsing, validation or components: the ratio is what
tfbox's structure costs at `pulumi preview` time, engine and provider aside.

    .venv/bin/python bench/mock_eval.py [-n RUNS]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pulumi  # noqa: E402
import pulumi_docker as docker  # noqa: E402

from tests.docker.program import Recorder, run_program, stack_config  # noqa: E402

PASSWORD = "benchmark-password"


def tfbox(stack: str) -> Callable[[], int]:
    config = {**stack_config(stack), "tfbox:password": PASSWORD}

    def run() -> int:
        recorder, _ = run_program(config, stack=stack)
        return len(recorder.resources)

    return run


def flat(stack: str) -> Callable[[], int]:
    """The same resources, written out by hand from what tfbox declared for this stack."""
    reference, _ = run_program({**stack_config(stack), "tfbox:password": PASSWORD}, stack=stack)
    custom = [r for r in reference.resources if r.type.startswith("docker:")]
    kinds: dict[str, Any] = {
        "docker:index/volume:Volume": docker.Volume,
        "docker:index/remoteImage:RemoteImage": docker.RemoteImage,
        "docker:index/container:Container": docker.Container,
    }

    def run() -> int:
        recorder = Recorder()
        pulumi.runtime.set_mocks(recorder, project="tfbox", stack=stack, preview=False)

        @pulumi.runtime.test  # type: ignore[untyped-decorator]
        def program() -> None:
            for r in custom:
                inputs = {_snake(k): _unsecret(v) for k, v in r.inputs.items()}
                kinds[r.type](r.name, **inputs)

        program()
        return len(recorder.resources)

    return run


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _unsecret(value: Any) -> Any:
    if isinstance(value, dict) and "value" in value and len(value) == 2:
        return pulumi.Output.secret(value["value"])
    return value


def median_seconds(fn: Callable[[], int], runs: int) -> tuple[float, int]:
    times, count = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        count = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--runs", type=int, default=20)
    args = parser.parse_args()
    print(f"median of {args.runs} runs under Pulumi mocks")
    for stack in ("dev", "gpu-box"):
        ours, n_ours = median_seconds(tfbox(stack), args.runs)
        base, n_base = median_seconds(flat(stack), args.runs)
        print(f"{stack:8s} tfbox {ours * 1000:7.1f} ms ({n_ours} resources)   "
              f"flat {base * 1000:7.1f} ms ({n_base} resources)   ratio {ours / base:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
