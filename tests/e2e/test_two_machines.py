"""Scenario 8: one project, two machines. A second dockerd stands for the second machine; two
stacks, each with its own `docker:host`, are brought up at the same time (two `pulumi up`
processes in parallel). Each host ends up with its own stack's containers and volumes only,
and destroying one stack leaves the other host untouched."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from tests.e2e.harness import Docker, Jupyter, Project, Stack, free_port, http_get

STACKS = ("machine-a", "machine-b")


@pytest.fixture(scope="module")
def machines(project: Project, docker_a: Docker, docker_b: Docker, cpu_image: str, password: str) -> Iterator[dict[str, SimpleNamespace]]:
    out: dict[str, SimpleNamespace] = {}
    for name, docker in zip(STACKS, (docker_a, docker_b), strict=True):
        nb_port, tb_port = free_port(), free_port()
        stack = project.stack(name, {
            "docker:host": docker.host, "tfbox:image": cpu_image,
            "tfbox:notebookPort": nb_port, "tfbox:tensorboardPort": tb_port,
        }, password)
        out[name] = SimpleNamespace(stack=stack, docker=docker, nb=f"http://127.0.0.1:{nb_port}", tb=f"http://127.0.0.1:{tb_port}")
    yield out
    for m in out.values():
        m.stack.destroy(check=False)
        for vol in (f"tfbox-{m.stack.name}-notebooks", f"tfbox-{m.stack.name}-logs"):
            m.docker("volume", "rm", vol, check=False)


def up_in_parallel(project: Project, stacks: list[Stack], timeout: float = 900) -> dict[str, tuple[int, str, float, float]]:
    """Start `pulumi up` for every stack at once; per stack: exit code, output, start and end time."""
    procs = {}
    for st in stacks:
        procs[st.name] = (project.start("pulumi", "--non-interactive", "up", "--yes", "--skip-preview", "--stack", st.name),
                          time.monotonic())
    results = {}
    for name, (proc, started) in procs.items():
        out = project.finish(proc, f"pulumi up --stack {name}  # in parallel", timeout)
        results[name] = (proc.returncode or 0, out, started, time.monotonic())
    return results


def tfbox_objects(docker: Docker) -> dict[str, set[tuple[str, str]]]:
    """tfbox containers and volumes on a host as (name, tfbox.stack label)."""
    listings = {
        "containers": docker("ps", "-a", "--filter", "label=tfbox.project=tfbox", "--format", '{{.Names}} {{.Label "tfbox.stack"}}'),
        "volumes": docker("volume", "ls", "--filter", "label=tfbox.project=tfbox", "--format", '{{.Name}} {{.Label "tfbox.stack"}}'),
    }
    out: dict[str, set[tuple[str, str]]] = {}
    for kind, listing in listings.items():
        out[kind] = set()
        for line in listing.stdout.splitlines():
            name, _, stack = line.partition(" ")
            out[kind].add((name, stack))
    return out


def host_state(docker: Docker) -> dict[str, list[str]]:
    """Every container (id, start time, state), volume and image on a host."""
    ids = docker("ps", "-aq", "--no-trunc").stdout.split()
    containers = [json.dumps([c["Name"], c["Id"], c["State"]["StartedAt"], c["State"]["Status"]])
                  for c in json.loads(docker("inspect", *ids).stdout)] if ids else []
    snap = docker.snapshot()
    return {"containers": sorted(containers), "volumes": snap["volumes"], "images": snap["images"]}


def only_its_own(m: SimpleNamespace, other: str) -> None:
    name = m.stack.name
    objs = tfbox_objects(m.docker)
    assert {(f"tfbox-{name}-notebook", name), (f"tfbox-{name}-tensorboard", name)} <= objs["containers"]
    assert {(f"tfbox-{name}-notebooks", name), (f"tfbox-{name}-logs", name)} <= objs["volumes"]
    for kind, items in objs.items():
        strays = {item for item in items if item[1] == other or other in item[0]}
        assert not strays, f"{other}'s {kind} are on {name}'s host: {strays}"


def test_1_two_stacks_up_at_once_each_on_its_own_host(project: Project, machines: dict[str, SimpleNamespace], password: str) -> None:
    results = up_in_parallel(project, [m.stack for m in machines.values()])
    for name, (code, out, _, _) in results.items():
        assert code == 0, f"up of {name} failed:\n{out[-4000:]}"
    (_, _, start_a, end_a), (_, _, start_b, end_b) = results["machine-a"], results["machine-b"]
    assert start_b < end_a and start_a < end_b, "the two ups did not overlap"
    a, b = machines["machine-a"], machines["machine-b"]
    only_its_own(a, "machine-b")
    only_its_own(b, "machine-a")
    for m in (a, b):
        outputs = m.stack.outputs()
        assert outputs["notebookUrl"] == m.nb + "/"
        assert http_get(m.nb + "/api")[0] == 200 and http_get(m.tb + "/data/logdir")[0] == 200
        assert Jupyter(m.nb).login(password)
        m.stack.preview("--expect-no-changes")


def test_2_destroying_one_leaves_the_other_host_untouched(machines: dict[str, SimpleNamespace], password: str) -> None:
    a, b = machines["machine-a"], machines["machine-b"]
    b_before = host_state(b.docker)
    a.stack.destroy()
    assert a.docker.inspect("tfbox-machine-a-notebook") is None and a.docker.inspect("tfbox-machine-a-tensorboard") is None
    assert host_state(b.docker) == b_before, "destroying machine-a changed machine-b's host"
    session = Jupyter(b.nb)
    assert session.login(password)
    assert session.request("GET", "/api/contents")[0] == 200
    b.stack.preview("--expect-no-changes")
