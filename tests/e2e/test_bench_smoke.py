"""Smoke runs of the benchmarks (issue 21): one repetition at the smallest size, so they cannot rot.

Not timed tests: the figures are only checked to be sane (positive, finite, ordered as they must be:
"ready" never before the command returned), and the tables and JSON to be there. The benchmarks
themselves are run by hand (bench/README.md).

1. bench/peers.py -n 1 --plot 0: the recipe and tfbox (and, with TFBOX_BENCH_SMOKE_SIDES, Compose,
   OpenTofu, Ansible) from nothing, no-op and TensorBoard change on the session's daemon; peers.py itself
   checks that each no-op kept both containers and each TensorBoard change replaced TensorBoard alone.
2. bench/scaling.py -n 1 --seats 1 --machines 1: one seat, and `make fleet` over one SSH box.
3. bench/k8s_apply.py -n 1 --seats 1 --change 0 --wait-teardown 0: tfbox's Kubernetes `up` and `kubectl apply` + `kubectl wait` of
   the same manifests on the test kit's cluster (a kwok node: readiness simulated), from nothing and no-op;
   k8s_apply.py itself compares the two sides' live objects and checks that each no-op kept every pod.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.e2e.harness import ROOT, Docker

# The peers' tools cost a cold CI run about 17 minutes to build (OpenTofu alone 12.5, Compose 2.5, the
# provider 1, Ansible 1, on the 2-core CI machine under load: bench/README.md), more than a smoke run may
# add, so CI runs the two sides that need none; their definitions are checked without tools in
# tests/unit/test_bench_peers.py. TFBOX_BENCH_SMOKE_SIDES=recipe,tfbox,compose-wait,compose,tofu,ansible
# runs them all (bench/peers-toolchain.sh builds the tools once, then they are cached).
SIDES = os.environ.get("TFBOX_BENCH_SMOKE_SIDES", "recipe,tfbox")
SCENARIOS = ("from nothing", "no-op", "TensorBoard change")


def bench(script: str, *args: str, out: Path) -> str:
    env = {**os.environ, "TFBOX_BENCH_RUNS": "1"}
    p = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args, "--out", str(out)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=2400, check=False)
    assert p.returncode == 0, f"bench/{script} failed ({p.returncode}):\n{p.stdout[-4000:]}\n{p.stderr[-6000:]}"
    return p.stdout


def sane(seconds: Any, at_most: float = 900) -> bool:
    return isinstance(seconds, float | int) and math.isfinite(seconds) and 0 < seconds < at_most


def test_1_peers(docker_a: Docker, cpu_image: str, tmp_path: Path) -> None:
    out = bench("peers.py", "-n", "1", "--plot", "0", "--only", SIDES, "--docker-host", docker_a.host, "--image", cpu_image, out=tmp_path)
    sides = SIDES.split(",")
    # the table: one row per side and scenario, with the ratio columns
    assert "ready median" in out and "/recipe" in out and "/tfbox" in out, out
    for side in sides:
        for scenario in SCENARIOS:
            assert any(line.split()[:1] == [side] and scenario in line for line in out.splitlines()), (side, scenario, out)
    data = json.loads((tmp_path / "peers.json").read_text())
    assert data["meta"]["runs"] == 1 and data["meta"]["image"] == cpu_image
    assert set(data["results"]) == set(sides)
    for side, per in data["results"].items():
        for scenario in SCENARIOS:
            row = per[scenario]
            ready, returned = row["ready"]["median"], row["returned"]["median"]
            assert sane(ready) and sane(returned) and ready >= returned, (side, scenario, row)
            if "recipe" in sides:
                # a ratio, not a bound: the recipe's no-op (`docker inspect`) can take 0.02 s, so tfbox's no-op is
                # hundreds of times it; what must hold is that the ratio is this side's time over the recipe's
                recipe_ready = data["results"]["recipe"][scenario]["ready"]["median"]
                assert math.isclose(row["ratio_to_recipe"], ready / recipe_ready, rel_tol=0.01), (side, scenario, row)
        # from nothing, something is started and waited for; a no-op starts nothing
        assert per["from nothing"]["ready"]["median"] > 1.0, (side, per)
    if "tfbox" in sides:
        assert data["results"]["tfbox"]["no-op"]["ratio_to_tfbox"] == 1.0
    if "compose-wait" in sides:
        # --wait waits for the health checks, whose first probe runs an interval (30 s) after the start
        assert data["results"]["compose-wait"]["from nothing"]["returned"]["median"] > 25, data["results"]["compose-wait"]


def test_2_scaling(docker_a: Docker, cpu_image: str, tmp_path: Path) -> None:
    out = bench("scaling.py", "-n", "1", "--seats", "1", "--machines", "1", "--docker-host", docker_a.host,
                "--image", cpu_image, out=tmp_path)
    assert "per seat" in out and "per machine" in out, out
    data = json.loads((tmp_path / "scaling.json").read_text())
    seats, fleet = data["seats"]["1"], data["fleet"]["1"]
    assert set(seats) == {"up", "no-op up", "preview"} and set(fleet) == {"fleet up", "fleet preview"}
    for row in (*seats.values(), *fleet.values()):
        assert sane(row["median"]) and row["runs"] == [row["median"]], row
    # from nothing waits for Jupyter and TensorBoard; a no-op does not
    assert seats["up"]["median"] > seats["no-op up"]["median"], seats
    assert fleet["fleet up"]["median"] > fleet["fleet preview"]["median"], fleet


def test_3_k8s_apply(k8s_kit: Path, tmp_path: Path) -> None:
    # one seat, no TensorBoard change: about 80 s on the 2-core CI machine, most of it the cluster's start
    out = bench("k8s_apply.py", "-n", "1", "--seats", "1", "--change", "0", "--wait-teardown", "0", "--cluster", "bench-smoke",
                out=tmp_path)
    assert "readiness is SIMULATED" in out and "tfbox/kubectl" in out, out  # kwok's caveat is in the table
    for scenario in ("from nothing", "no-op"):
        assert any(line.split()[:1] == ["1"] and scenario in line for line in out.splitlines()), (scenario, out)
    data = json.loads((tmp_path / "k8s_apply.json").read_text())
    meta, per = data["meta"], data["results"]["1"]
    assert meta["runs"] == 1 and meta["node"] == "kwok" and meta["simulated_readiness"] is True
    assert meta["same_objects_checked"] == {"1": True}  # the kubectl side made tfbox's objects, compared live
    assert set(per) == {"tfbox", "kubectl"}
    for side, scenarios in per.items():
        assert set(scenarios) == {"from nothing", "no-op"}, (side, scenarios)
        for scenario, row in scenarios.items():
            ready, returned = row["ready"]["median"], row["returned"]["median"]
            assert sane(ready) and sane(returned) and ready >= returned and row["ready"]["runs"] == [ready], (side, scenario, row)
    for scenario, row in per["tfbox"].items():
        kubectl_ready = per["kubectl"][scenario]["ready"]["median"]
        assert math.isclose(row["ratio_to_kubectl"], row["ready"]["median"] / kubectl_ready, rel_tol=0.01), (scenario, row)
