"""Issue 19: `make status` on a two-seat stack with the GPU stand-ins (docker_a: 8 stand-in H200s).

Seat a gets GPU 0, seat b GPU 1. A process in seat a's notebook holds 20 GiB of GPU 0 (the stand-in
nvidia-smi lists it from RUN/e2e-a/nvidia-apps by its host pid): the JSON names each seat's GPU with its
UUID and model, the process under GPU 0 with seat a's container, nothing under seat b's GPU; the table says
the same; with the idle threshold at 0 minutes the idle GPU is pointed out and the exit status is 3.
TensorBoard runs inside the notebooks here (`exec`): seat a's is served behind seat a's login too
(issue 19's `tensorboardProxy`), and the board lists that URL.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.e2e.conftest import DOCKER_A
from tests.e2e.harness import Docker, Jupyter, Project, free_port, gpu_ulimits_here

STACK = "board"
APPS = Path(os.environ.get("TFBOX_RUN", "/tmp/tfbox-run")) / DOCKER_A / "nvidia-apps"
UUID = "GPU-b780f725-fe96-b196-3303-e4a68e6a68{:02x}"


@pytest.fixture(scope="module")
def lab(project: Project, docker_a: Docker, gpu_image: str) -> Iterator[SimpleNamespace]:
    ports = {seat: (free_port(), free_port()) for seat in "ab"}
    stack = project.stack(STACK, {
        "docker:host": docker_a.host, "tfbox:image": gpu_image, "tfbox:passwordSalt": secrets.token_hex(16),
        "tfbox:tensorboardMode": "exec", "tfbox:tensorboardProxy": True,
        "tfbox:seats": [{"name": seat, "gpus": str(i), "notebookPort": ports[seat][0], "tensorboardPort": ports[seat][1]}
                        for i, seat in enumerate("ab")],
        **gpu_ulimits_here(),
    }, None)
    passwords = {seat: f"seat-{seat}-" + secrets.token_urlsafe(12) for seat in "ab"}
    for seat in "ab":
        project.pulumi("config", "set", "--secret", "--path", f"tfbox:passwords.{seat}", "--stack", STACK,
                       input=passwords[seat])
    stack.up()
    nb = f"tfbox-{STACK}-a-notebook"
    docker_a("exec", "-d", nb, "sleep", "900")  # the "kernel" that holds GPU memory
    top = docker_a("top", nb, "-eo", "pid,args").stdout
    pid = next(int(line.split()[0]) for line in top.splitlines()[1:] if line.split()[1:] == ["sleep", "900"])
    APPS.write_text(f"{pid} 0 20480 0\n")
    yield SimpleNamespace(project=project, pid=pid, ports=ports, passwords=passwords)
    APPS.unlink(missing_ok=True)
    stack.destroy(check=False)
    for seat in "ab":
        for vol in ("notebooks", "logs"):
            docker_a("volume", "rm", f"tfbox-{STACK}-{seat}-{vol}", check=False)


def board(lab: SimpleNamespace, *extra: str) -> tuple[int, str]:
    r = lab.project.run(".venv/bin/python", "scripts/status.py", "--stack", STACK, *extra, check=False, timeout=300)
    return r.returncode, r.stdout


def test_1_json_maps_the_process_to_its_seat(lab: SimpleNamespace) -> None:
    code, out = board(lab, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["exit_status"] == 0, out
    [machine] = doc["machines"]
    assert machine["nvidia_smi"] == "ok" and len(machine["gpus"]) == 8
    seats = {s["seat"]: s for s in machine["seats"]}
    assert sorted(seats) == ["a", "b"]
    for i, seat in enumerate("ab"):
        s = seats[seat]
        assert s["ok"] and s["health"] == "ok" and s["gpus_requested"] == str(i)
        assert [(g["index"], g["uuid"], g["name"]) for g in s["gpus"]] == [(i, UUID.format(0x60 + i), "NVIDIA H200")]
        assert s["urls"]["notebook"].endswith(f":{lab.ports[seat][0]}/")
        assert s["urls"]["tensorboard-proxy"] == s["urls"]["notebook"] + "tensorboard/"
    [held] = seats["a"]["gpus"][0]["processes"]
    assert (held["pid"], held["seat"], held["container"], held["used_mib"]) == (lab.pid, "a", f"tfbox-{STACK}-a-notebook", 20480)
    assert seats["a"]["gpus"][0]["memory_used_mib"] == 20480 and seats["a"]["gpus"][0]["idle_held"] is False
    assert seats["b"]["gpus"][0]["processes"] == [] and seats["b"]["gpus"][0]["memory_used_mib"] == 0


def test_2_table_and_idle_gpu(lab: SimpleNamespace) -> None:
    code, table = board(lab)
    print(table)
    assert code == 0
    row_a = next(line for line in table.splitlines() if f"pid {lab.pid}" in line)
    assert row_a.split()[:3] == [STACK, "a", "ok"] and "20.0G/140.4G" in row_a and UUID.format(0x60) in row_a
    code, table = board(lab, "--idle-minutes", "0")
    print(table)
    assert code == 3 and "IDLE, MEMORY HELD" in table and "is idle (0% ≤ 5%) while a (20.0G" in table


def test_3_exec_mode_tensorboard_behind_the_seat_s_login(lab: SimpleNamespace) -> None:
    """The proxy reaches TensorBoard inside the notebook container (the scalars themselves are test_auth's)."""
    url = f"http://127.0.0.1:{lab.ports['a'][0]}"
    assert Jupyter(url).request("GET", "/tensorboard/data/logdir")[0] == 302, "anonymous: to the login page"
    session = Jupyter(url)
    assert session.login(lab.passwords["a"])
    assert session.request("GET", "/tensorboard/data/logdir") == (200, {"logdir": "/tf/logs"})
    with session.opener.open(url + "/tensorboard/", timeout=30) as page:  # the page itself, HTML
        assert page.status == 200 and b"<title>TensorBoard</title>" in page.read()
