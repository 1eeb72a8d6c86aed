"""Scenario 5: drift and faults. A container removed or stopped by hand is reported by
`pulumi refresh` and brought back by the next `up`; after a restart of the Docker daemon the
containers come back by their restart policy with nothing for Pulumi to do; an `up`
interrupted half-way (SIGINT to the CLI) is finished by the next `up` without state edits.

Everything runs on docker_b, so restarting its daemon disturbs no other test's stack."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from tests.e2e.harness import ROOT, Docker, Jupyter, Project, Result, Stack, change_summary, free_port, http_get, wait_http

NB, TB = "tfbox-drift-notebook", "tfbox-drift-tensorboard"
NOTEBOOK = "tfbox-e2e-drift.ipynb"
SOURCE = "print('survives drift')"


@pytest.fixture(scope="module")
def lab(project: Project, docker_b: Docker, cpu_image: str, password: str) -> Iterator[SimpleNamespace]:
    stack, nb, tb = project.lab("drift", docker_b.host, cpu_image, password)
    lab = SimpleNamespace(stack=stack, docker=docker_b, password=password, names=(NB, TB), nb=nb, tb=tb)
    session = Jupyter(lab.nb)
    assert session.login(password)
    session.save_notebook(NOTEBOOK, SOURCE)
    yield lab
    stack.destroy(check=False)
    for vol in ("tfbox-drift-notebooks", "tfbox-drift-logs"):
        docker_b("volume", "rm", vol, check=False)


def summary(result: Result) -> dict[str, int]:
    return change_summary(result.output)


def refresh_report(stack: Stack) -> dict[str, str]:
    """What `pulumi refresh` reports, by resource name: op for every step that is not 'same'."""
    digest = json.loads(stack.project.pulumi("refresh", "--preview-only", "--json", "--stack", stack.name).stdout)
    return {step["urn"].rsplit("::", 1)[1]: step["op"] for step in digest.get("steps", []) if step["op"] not in ("same", "refresh")}


def answers(url: str, timeout: float = 180) -> int:
    """Poll until `url` answers with a status below 500 (a restarting server resets or refuses first)."""
    deadline = time.monotonic() + timeout
    status, _ = wait_http(url, timeout=timeout)
    while status >= 500 and time.monotonic() < deadline:
        time.sleep(1)
        status, _ = wait_http(url, timeout=max(1.0, deadline - time.monotonic()))
    return status


def lab_answers(lab: SimpleNamespace, timeout: float = 180) -> None:
    """What a user checks: both containers run, the notebook logs in and shows the saved notebook, TensorBoard answers."""
    for name in lab.names:
        lab.docker.wait_running(name, timeout=timeout)
    assert answers(lab.nb + "/api", timeout) == 200
    session = Jupyter(lab.nb)
    assert session.login(lab.password)
    assert session.read_notebook_source(NOTEBOOK) == SOURCE, "the saved notebook is gone"
    assert answers(lab.tb + "/data/logdir", timeout) == 200


def test_1_container_removed_by_hand(lab: SimpleNamespace) -> None:
    lab.docker("rm", "-f", NB)
    drift = lab.stack.drift_check(check=False)  # the nightly drift job's command sees it
    assert drift.returncode != 0 and "no changes were expected" in drift.output.lower(), drift.output[-3000:]
    assert refresh_report(lab.stack) == {"notebook": "delete"}
    refreshed = lab.stack.refresh()
    assert summary(refreshed).get("deleted") == 1, refreshed.output[-3000:]
    assert lab.stack.preview("--expect-no-changes", check=False).returncode != 0, "up would not restore the notebook"
    restored = lab.stack.up()
    assert summary(restored).get("created") == 1, restored.output[-3000:]
    lab_answers(lab)
    lab.stack.preview("--expect-no-changes")


def test_2_container_stopped_by_hand(lab: SimpleNamespace) -> None:
    lab.docker("stop", NB)
    assert not lab.docker.inspect(NB)["State"]["Running"]
    # What the provider does (pulumi-docker 5.1.0): refresh reads a stopped must_run container as
    # mustRun=false and without its ports, an "update"; the next up then replaces the container
    # (ports force a new one). The notebooks are on the volume, so a user only sees it come back.
    report = refresh_report(lab.stack)
    assert list(report) == ["notebook"] and report["notebook"] in ("update", "delete"), report
    lab.stack.refresh()
    lab.stack.up()
    lab_answers(lab)
    assert lab.docker.inspect(NB)["State"]["Running"]
    lab.stack.preview("--expect-no-changes")


def dockerd(action: str, name: str) -> None:
    p = subprocess.run([str(ROOT / "scripts" / "dockerd.sh"), action, name], capture_output=True, text=True, timeout=300, check=False)
    assert p.returncode == 0, f"scripts/dockerd.sh {action} {name} failed: {p.stderr.strip()}"


def test_3_docker_daemon_restart(lab: SimpleNamespace) -> None:
    before = {name: lab.docker.inspect(name)["Id"] for name in (NB, TB)}
    dockerd("stop", "e2e-b")
    with pytest.raises(OSError):  # the host really lost its containers
        http_get(lab.nb + "/api", timeout=3)
    dockerd("start", "e2e-b")
    lab_answers(lab)
    after = {name: lab.docker.inspect(name) for name in (NB, TB)}
    assert {name: info["Id"] for name, info in after.items()} == before, "the containers came back as new ones"
    lab.stack.preview("--expect-no-changes")


def interrupt_when_created(project: Project, stack: Stack, docker: Docker, containers: tuple[str, ...],
                           timeout: float = 600) -> tuple[int, str, str]:
    """Start `pulumi up`, SIGINT the CLI the moment one of `containers` is created on the host, wait for
    the CLI to exit; its exit code, its output and the container that was there.

    One SIGINT is a user's Ctrl-C: Pulumi lets the operations in flight finish and starts no new
    ones. `--parallel 1` makes that leave work undone: the containers are created one after the other.
    The daemon's own create event is the trigger (not polling `docker inspect`): the next container's
    create starts about half a second later, less than two inspects take on a busy machine.
    """
    events = subprocess.Popen(
        ["docker", "-H", docker.host, "events", "--filter", "type=container", "--filter", "event=create",
         "--format", "{{.Actor.Attributes.name}}"],
        stdout=subprocess.PIPE, bufsize=0)
    cmd = ["pulumi", "--non-interactive", "up", "--yes", "--skip-preview", "--parallel", "1", "--stack", stack.name]
    try:
        time.sleep(0.5)  # the events stream is attached before anything is created
        proc = project.start(*cmd, new_session=True)
        deadline = time.monotonic() + timeout
        assert events.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(events.stdout, selectors.EVENT_READ)
        created, seen = "", b""
        while not created:
            assert proc.poll() is None, "up ended before a container was created"
            assert time.monotonic() < deadline, f"none of {containers} was created in {timeout}s"
            if selector.select(0.2):
                seen += os.read(events.stdout.fileno(), 4096)
                created = next((n for n in seen.decode().split() if n in containers), "")
        proc.send_signal(signal.SIGINT)  # a Ctrl-C, to the CLI: it is what handles it
    finally:
        events.kill()
        events.wait()
    out = project.finish(proc, f"{' '.join(cmd)}  # interrupted", timeout)
    return proc.returncode, out, created


def test_4_interrupted_up_is_finished_by_the_next_up(project: Project, docker_b: Docker, cpu_image: str, password: str) -> None:
    nb_port, tb_port = free_port(), free_port()
    stack = project.stack("halfway", {
        "docker:host": docker_b.host, "tfbox:image": cpu_image,
        "tfbox:notebookPort": nb_port, "tfbox:tensorboardPort": tb_port,
    }, password)
    lab = SimpleNamespace(stack=stack, docker=docker_b, password=password,
                          names=("tfbox-halfway-notebook", "tfbox-halfway-tensorboard"),
                          nb=f"http://127.0.0.1:{nb_port}", tb=f"http://127.0.0.1:{tb_port}")
    try:
        code, out, first = interrupt_when_created(project, stack, docker_b, lab.names)
        second = next(name for name in lab.names if name != first)
        assert code != 0, f"the interrupted up reported success:\n{out[-3000:]}"
        assert "^C received" in out, out[-3000:]
        # half-way: the container in flight was finished, the other one never started
        assert docker_b.inspect(first) is not None and docker_b.inspect(second) is None, out[-3000:]
        assert stack.preview("--expect-no-changes", check=False).returncode != 0, "the interrupted up had finished everything"
        stack.up()
        assert answers(lab.nb + "/api") == 200
        session = Jupyter(lab.nb)
        assert session.login(password)
        session.save_notebook(NOTEBOOK, SOURCE)
        lab_answers(lab)
        stack.preview("--expect-no-changes")
        state: dict[str, Any] = json.loads(stack.export())
        assert not state["deployment"].get("pending_operations"), "the next up left pending operations in the state"
    finally:
        stack.destroy(check=False)
        for vol in ("tfbox-halfway-notebooks", "tfbox-halfway-logs"):
            docker_b("volume", "rm", vol, check=False)
