"""Scenario: the Docker daemon dies, and `make doctor` / `make repair` (issue 9 §3, §6).

On docker_b, the session's daemon for the tests that kill or restart it (test_drift.py is the other), one GPU stack with two seats on the NVIDIA stand-ins
(`SEATS`: seat a on GPU 0, seat b on GPU 1), each seat a lab of its own:

0. A lab from before (restart policy `unless-stopped`) is upgraded by an update in place: same containers.
1. dockerd (with the containerd it runs as its child) gets SIGKILL and is started again: both labs come
   back by themselves (restart policy `always`; `unless-stopped` left them exited), same containers,
   nothing for Pulumi to do, and doctor finds nothing wrong.
2. Seat a's notebook is killed: doctor names that container, its seat and the cause and exits 1; repair
   replaces exactly that container through Pulumi (the notebooks volume keeps its files); every other
   container, of both seats, is the same container as before.
2b. Seat b's notebook loses its GPUs (the stand-in nvidia-smi fails with NVML's "Unknown Error"): it turns
   unhealthy, doctor says GPUs lost with the host-side fixes, repair replaces it alone.
3. dockerd is killed while `up` starts a notebook (the stand-in runtime holds `create` while the port is
   already published): after the restart `up` fails with "port is already allocated"; doctor names the
   stale docker-proxy and the fix (one graceful restart of Docker), and after it `up` finishes the lab.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.e2e.harness import ROOT, Docker, Project, Result, Stack, change_summary, free_port, gpu_ulimits_here, http_get, wait_http

DAEMON = "e2e-b"  # docker_b's (tests/e2e/conftest.py): it gets SIGKILLed, so no other module's stack is on it
DAEMON_DIR = Path(os.environ.get("TFBOX_RUN", "/tmp/tfbox-run")) / DAEMON
STACK = "docs"
SEATS = (("a", "0"), ("b", "1"))  # (seat, GPUs)


def containers(seat: str) -> tuple[str, str]:
    return f"tfbox-{STACK}-{seat}-notebook", f"tfbox-{STACK}-{seat}-tensorboard"


@pytest.fixture(scope="module")
def host(docker_b: Docker) -> Iterator[Docker]:
    yield docker_b
    (DAEMON_DIR / "hold-create").unlink(missing_ok=True)
    dockerd("start")  # running for the next module, also where a test failed between a kill and its restart


@pytest.fixture(scope="module")
def labs(project: Project, host: Docker, gpu_image: str) -> Iterator[dict[str, SimpleNamespace]]:
    """The seats, each as a lab: the stack, its notebook URL, its notebook and TensorBoard containers."""
    ports = {seat: (free_port(), free_port()) for seat, _ in SEATS}
    stack = project.stack(STACK, {
        "docker:host": host.host, "tfbox:image": gpu_image, "tfbox:passwordSalt": secrets.token_hex(16),
        "tfbox:seats": [{"name": seat, "gpus": gpus, "notebookPort": ports[seat][0], "tensorboardPort": ports[seat][1]}
                        for seat, gpus in SEATS],
        **gpu_ulimits_here(),
    }, None)
    for seat, _ in SEATS:
        project.pulumi("config", "set", "--secret", "--path", f"tfbox:passwords.{seat}", "--stack", STACK,
                       input=f"seat-{seat}-" + secrets.token_urlsafe(12))
    stack.up()
    yield {seat: SimpleNamespace(stack=stack, nb=f"http://127.0.0.1:{ports[seat][0]}", names=containers(seat)) for seat, _ in SEATS}
    stack.destroy(check=False)
    for seat, _ in SEATS:
        for vol in ("notebooks", "logs"):
            host("volume", "rm", f"tfbox-{STACK}-{seat}-{vol}", check=False)


def ids(host: Docker, labs: dict[str, SimpleNamespace]) -> dict[str, str]:
    return {c: (host.inspect(c) or {}).get("Id", "") for lab in labs.values() for c in lab.names}


def addresses(host: Docker, labs: dict[str, SimpleNamespace]) -> dict[str, list[str]]:
    return {c: [n["IPAddress"] for n in ((host.inspect(c) or {}).get("NetworkSettings", {}).get("Networks") or {}).values()]
            for lab in labs.values() for c in lab.names}


def doctor(project: Project, stack: str, *extra: str) -> Result:
    return project.run(".venv/bin/python", "scripts/doctor.py", "--stack", stack, *extra, check=False, timeout=900)


def dockerd(action: str) -> None:
    p = subprocess.run([str(ROOT / "scripts" / "dockerd.sh"), action, DAEMON], capture_output=True, text=True, timeout=300, check=False)
    assert p.returncode == 0, f"scripts/dockerd.sh {action} {DAEMON} failed: {p.stderr.strip()}"


def kill_dockerd() -> None:
    """SIGKILL, as the OOM killer or a crash: the containerd it started as its child goes with it."""
    pid = int((DAEMON_DIR / "docker.pid").read_text())
    children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{p}").exists() for p in [pid, *children]) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [p for p in [pid, *children] if Path(f"/proc/{p}").exists()]
    assert not left, f"dockerd or its child containerd outlived SIGKILL: {left}"


def lab_answers(host: Docker, lab: SimpleNamespace, timeout: float = 180) -> None:
    for c in lab.names:
        host.wait_running(c, timeout=timeout)
    deadline = time.monotonic() + timeout
    status, _ = wait_http(lab.nb + "/api", timeout=timeout)
    while status >= 500 and time.monotonic() < deadline:
        time.sleep(1)
        status, _ = wait_http(lab.nb + "/api", timeout=timeout)
    assert status == 200


def test_0_upgrade_from_unless_stopped_is_an_update_in_place(project: Project, host: Docker, labs: dict[str, SimpleNamespace]) -> None:
    """A lab made before this change has `unless-stopped`: the next `up` updates the policy in place (no new container)."""
    nb, tb = labs["b"].names
    before = ids(host, labs)
    for c in (nb, tb):
        host("update", "--restart", "unless-stopped", c)
    up = labs["b"].stack.up("--refresh")
    assert change_summary(up.output) == {"updated": 2}, up.output[-3000:]
    assert ids(host, labs) == before, "the upgrade replaced a container"
    for c in (nb, tb):
        assert (host.inspect(c) or {})["HostConfig"]["RestartPolicy"]["Name"] == "always"
    labs["b"].stack.preview("--expect-no-changes")


def test_1_daemon_killed_labs_come_back_by_themselves(project: Project, host: Docker, labs: dict[str, SimpleNamespace]) -> None:
    before = ids(host, labs)
    addresses_before = addresses(host, labs)
    assert all(before.values())
    for c in before:
        assert (host.inspect(c) or {})["HostConfig"]["RestartPolicy"]["Name"] == "always"
    kill_dockerd()
    with pytest.raises(OSError):
        http_get(labs["a"].nb + "/api", timeout=3)
    dockerd("start")
    for lab in labs.values():
        lab_answers(host, lab)
    assert ids(host, labs) == before, "the containers came back as new ones"
    print("addresses before/after the crash:", addresses_before, addresses(host, labs))
    labs["a"].stack.preview("--expect-no-changes")
    report = doctor(project, STACK)
    assert report.returncode == 0 and "all labs healthy" in report.stdout, report.output[-3000:]
    # The restarted daemon may have handed out new addresses; an `up` that replaces a notebook without a refresh
    # still returns at once: the ready check finds TensorBoard by its name, not by the address in the state.
    state = json.loads(project.pulumi("stack", "export", "--stack", STACK).stdout)
    urn = next(r["urn"] for r in state["deployment"]["resources"]
               if r["type"] == "docker:index/container:Container" and r["urn"].endswith("::b-notebook"))
    labs["b"].stack.up("--replace", urn, timeout=240)
    lab_answers(host, labs["b"])


def test_2_doctor_names_the_broken_container_and_repair_replaces_only_it(
        project: Project, host: Docker, labs: dict[str, SimpleNamespace]) -> None:
    broken, _ = labs["a"].names
    host("exec", broken, "sh", "-c", "echo kept > /tf/doctor-kept.txt")
    before = ids(host, labs)
    host("kill", broken)  # a `docker kill` stays down, also with `always`
    time.sleep(2)
    assert not (host.inspect(broken) or {})["State"]["Running"]
    report = doctor(project, STACK)
    assert report.returncode == 1, report.output[-3000:]
    assert f"{broken}: not running: killed (exit 137" in report.stdout, report.stdout
    assert f"fix: `make repair STACK={STACK}`" in report.stdout
    rows = {line.split()[2]: line for line in report.stdout.splitlines() if line.startswith(STACK + " ")}
    assert rows[broken].split()[1] == "a" and "PROBLEM" in rows[broken]
    assert [c for c, line in rows.items() if "PROBLEM" in line] == [broken], "another container was reported broken"

    repaired = doctor(project, STACK, "--repair")
    assert repaired.returncode == 0, repaired.output[-4000:]
    replaced = repaired.stdout.split("replacing ", 1)[1].split("\n")[0]
    assert replaced == "a-notebook", replaced
    lab_answers(host, labs["a"])
    after = ids(host, labs)
    assert after[broken] != before[broken], "the broken notebook was not replaced"
    assert {c: i for c, i in after.items() if c != broken} == {c: i for c, i in before.items() if c != broken}, \
        "repair touched another container"
    assert host("exec", broken, "cat", "/tf/doctor-kept.txt").stdout.strip() == "kept", "the notebooks volume lost a file"
    labs["a"].stack.preview("--expect-no-changes")
    assert "all labs healthy" in repaired.stdout.split("after repair:", 1)[1]


def test_2b_lost_gpus_doctor_names_them_and_the_host_fix_repair_brings_them_back(
        project: Project, host: Docker, labs: dict[str, SimpleNamespace]) -> None:
    """The stand-in nvidia-smi fails as in nvidia-container-toolkit#48 once the marker is set in the container:
    the GPU probe turns seat b's notebook unhealthy (2 probes 15 s apart), doctor says GPUs lost with NVML's words."""
    lost, _ = labs["b"].names
    before = ids(host, labs)
    host("exec", lost, "touch", "/tmp/tfbox-nvidia-lost")
    deadline = time.monotonic() + 180
    while (host.inspect(lost) or {})["State"].get("Health", {}).get("Status") != "unhealthy":
        assert time.monotonic() < deadline, "the notebook did not turn unhealthy within 180 s of losing its GPUs"
        time.sleep(3)
    report = doctor(project, STACK)
    assert report.returncode == 1, report.output[-3000:]
    assert f"{lost}: GPUs lost" in report.stdout and "Failed to initialize NVML: Unknown Error" in report.stdout, report.stdout
    assert "nvidia-ctk system create-dev-char-symlinks --create-all" in report.stdout and "native.cgroupdriver=cgroupfs" in report.stdout
    rows = {line.split()[2]: line for line in report.stdout.splitlines() if line.startswith(STACK + " ")}
    assert [c for c, line in rows.items() if "PROBLEM" in line] == [lost], report.stdout
    repaired = doctor(project, STACK, "--repair")
    assert repaired.returncode == 0, repaired.output[-4000:]
    assert repaired.stdout.split("replacing ", 1)[1].split("\n")[0] == "b-notebook"
    lab_answers(host, labs["b"])
    after = ids(host, labs)
    assert after[lost] != before[lost]
    assert {c: i for c, i in after.items() if c != lost} == {c: i for c, i in before.items() if c != lost}, \
        "repair touched another container"
    labs["b"].stack.preview("--expect-no-changes")


def up_until_held(project: Project, stack: Stack, timeout: float = 600) -> subprocess.Popen[str]:
    """Start `up`, return once the stand-in runtime holds the notebook's `create` (its port is published by then)."""
    proc = project.start("pulumi", "--non-interactive", "up", "--yes", "--skip-preview", "--stack", stack.name)
    deadline = time.monotonic() + timeout
    while not (DAEMON_DIR / "held-create").exists():
        assert proc.poll() is None, "up ended before the notebook was started:\n" + (proc.stdout.read() if proc.stdout else "")
        assert time.monotonic() < deadline, "the notebook's create never reached the runtime"
        time.sleep(0.2)
    return proc


def test_3_daemon_killed_during_up_leaves_a_stale_port_doctor_names_it(
        project: Project, host: Docker, gpu_image: str, password: str, labs: dict[str, SimpleNamespace]) -> None:
    nb_port = free_port()
    stack = project.stack("docc", {
        # GPU 2: GPUs 0 and 1 are the seats' (the ledger refuses a taken one)
        "docker:host": host.host, "tfbox:image": gpu_image, "tfbox:gpus": "2", "tfbox:gpuMode": "nvidia-runtime",
        "tfbox:tensorboardMode": "off", "tfbox:notebookPort": nb_port, **gpu_ulimits_here(),
    }, password)
    try:
        (DAEMON_DIR / "held-create").unlink(missing_ok=True)
        (DAEMON_DIR / "hold-create").touch()
        proc = up_until_held(project, stack)
        kill_dockerd()
        (DAEMON_DIR / "hold-create").unlink()
        killed = project.finish(proc, "pulumi up  # dockerd killed")
        print("KILLED UP OUTPUT:\n" + killed[-3000:])
        assert proc.returncode != 0
        dockerd("start")
        again = stack.up(check=False)
        print("UP AFTER RESTART:\n" + again.output[-3000:])
        assert again.returncode != 0 and "port is already allocated" in again.output, again.output[-3000:]
        report = doctor(project, "docc")
        print("DOCTOR:\n" + report.output)
        assert report.returncode == 1
        assert f"127.0.0.1:{nb_port} stale" in report.stdout and "stale docker-proxy" in report.stdout
        assert "restart the Docker daemon once, gracefully" in report.stdout
        assert doctor(project, STACK).returncode == 0, "the seats' stack was blamed for the other stack's port"
        # the fix doctor names: one graceful restart; the other labs come back by themselves
        dockerd("stop")
        dockerd("start")
        for lab in labs.values():
            lab_answers(host, lab)
        final = stack.up(check=False)
        print("UP AFTER GRACEFUL RESTART:\n" + final.output[-3000:])
        assert final.returncode == 0, final.output[-3000:]
        status, _ = wait_http(f"http://127.0.0.1:{nb_port}/api")
        assert status == 200
        stack.preview("--expect-no-changes")
        assert doctor(project, "docc").returncode == 0
    finally:
        (DAEMON_DIR / "hold-create").unlink(missing_ok=True)
        stack.destroy(check=False)
        for vol in ("notebooks", "logs"):
            host("volume", "rm", f"tfbox-docc-{vol}", check=False)
