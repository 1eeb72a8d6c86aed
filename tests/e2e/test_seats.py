"""Issue 9 §1-2: two seats on one GPU box, each with its own password, GPU, volumes and containers;
the GPU ledger output; each seat's TensorBoard behind its own notebook's login, which does not open
another seat's (issue 19, in a real browser); changing or removing one seat leaves the other alone; two
seats asking for one GPU are refused before anything on the host changes.

One `up` for the module (on docker_a, with the NVIDIA stand-ins of scripts/nvidia/: 8 "H200"s whose
UUIDs end in 60 + the host index); the tests run in order on it."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from tests.e2e.harness import Docker, Jupyter, Project, change_summary, free_port, gpu_ulimits_here

STACK = "seats"
CELL = 'import subprocess; print(subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout, end="")'
LISTED = re.compile(r"^GPU (\d+): NVIDIA H200 \(UUID: (GPU-[0-9a-f-]+)\)$")


def name(seat: str, role: str) -> str:
    return f"tfbox-{STACK}-{seat}-{role}"


@pytest.fixture(scope="module")
def box(project: Project, docker_a: Docker, gpu_image: str) -> Iterator[SimpleNamespace]:
    """Seats a (GPU 0) and b (GPU 1), the GPU check on, each seat's password a secret under tfbox:passwords."""
    ports = {seat: (free_port(), free_port()) for seat in "ab"}
    seats = [{"name": seat, "gpus": str(i), "notebookPort": ports[seat][0], "tensorboardPort": ports[seat][1]}
             for i, seat in enumerate("ab")]
    stack = project.stack(STACK, {
        "docker:host": docker_a.host, "tfbox:image": gpu_image, "tfbox:gpuCheck": True,
        "tfbox:passwordSalt": secrets.token_hex(16), "tfbox:seats": seats, "tfbox:tensorboardProxy": True,
        **gpu_ulimits_here(),
    }, None)
    passwords = {seat: f"seat-{seat}-" + secrets.token_urlsafe(12) for seat in "ab"}
    for seat, pw in passwords.items():
        project.pulumi("config", "set", "--secret", "--path", f"tfbox:passwords.{seat}", "--stack", STACK, input=pw)
    first = stack.up()
    yield SimpleNamespace(stack=stack, project=project, docker=docker_a, passwords=passwords, first=first,
                          url={seat: f"http://127.0.0.1:{ports[seat][0]}" for seat in "ab"})
    stack.destroy(check=False)
    for seat in "ab":
        for vol in ("notebooks", "logs"):
            docker_a("volume", "rm", name(seat, vol), check=False)


def sees_gpus(session: Jupyter) -> list[tuple[int, str]]:
    cell = session.execute(CELL)
    assert not cell["error"], cell["error"]
    out = []
    for line in cell["stdout"].strip().splitlines():
        m = LISTED.match(line.strip())
        assert m, f"not an nvidia-smi -L line: {line!r}"
        out.append((int(m.group(1)), m.group(2)))
    return out


def test_1_each_seat_has_its_own_password_gpu_and_volumes(box: SimpleNamespace) -> None:
    uuids = {}
    for seat, other in (("a", "b"), ("b", "a")):
        assert not Jupyter(box.url[seat]).login(box.passwords[other]), f"seat {seat} let seat {other}'s password in"
        session = Jupyter(box.url[seat])
        assert session.login(box.passwords[seat])
        gpus = sees_gpus(session)
        assert len(gpus) == 1, gpus
        uuids[seat] = gpus[0][1]
        session.save_notebook(f"{seat}.ipynb", f"print('{seat}')")
        info = box.docker.inspect(name(seat, "notebook"))
        assert info is not None and info["State"]["Running"]
        labels = info["Config"]["Labels"]
        assert (labels["tfbox.seat"], labels["tfbox.stack"], labels["tfbox.role"]) == (seat, STACK, "notebook")
        assert {m["Destination"]: m["Name"] for m in info["Mounts"]} == {
            "/tf": name(seat, "notebooks"), "/tf/logs": name(seat, "logs")}
        assert [r["DeviceIDs"] for r in info["HostConfig"]["DeviceRequests"]] == [["0" if seat == "a" else "1"]]
        assert "TF_FORCE_GPU_ALLOW_GROWTH=true" not in info["Config"]["Env"], "a seat of its own GPU does not share"
        assert box.docker.inspect(name(seat, "tensorboard"))["Config"]["Labels"]["tfbox.seat"] == seat
    # host GPU 0 for a, 1 for b (the stand-in's UUIDs end in 60 + host index)
    assert (uuids["a"][-2:], uuids["b"][-2:]) == ("60", "61")
    # seat b's files are not in seat a's notebook
    a = Jupyter(box.url["a"])
    assert a.login(box.passwords["a"])
    assert a.read_notebook_source("b.ipynb") is None and a.read_notebook_source("a.ipynb") == "print('a')"

    outputs = box.stack.outputs()
    ledger = outputs["gpuLedger"]
    assert set(ledger) == {"0", "1"}
    assert ledger["0"] == {"index": 0, "uuid": uuids["a"], "model": "NVIDIA H200", "seats": ["a"]}
    assert ledger["1"] == {"index": 1, "uuid": uuids["b"], "model": "NVIDIA H200", "seats": ["b"]}
    assert outputs["seats"]["a"]["notebookUrl"] == box.url["a"] + "/"
    assert outputs["seats"]["b"]["containerNames"] == [name("b", "notebook"), name("b", "tensorboard"), name("b", "ready")]
    assert "password" not in outputs
    # the passwords are in plaintext nowhere: state, outputs, docker inspect, the CLI's output
    inspected = box.docker("inspect", name("a", "notebook"), name("b", "notebook")).stdout
    seen = box.stack.export() + json.dumps(box.stack.outputs(show_secrets=True)) + inspected + "\n".join(box.project.transcript)
    assert not any(pw in seen for pw in box.passwords.values())


def test_1b_one_seat_s_login_does_not_open_another_seat_s_tensorboard(box: SimpleNamespace) -> None:
    from tests.e2e.browser import chromium, log_in, on_login_page

    for seat in "ab":
        assert box.stack.outputs()["seats"][seat]["tensorboardProxyUrl"] == box.url[seat] + "/tensorboard/"
    with chromium() as driver:
        log_in(driver, box.url["a"], box.passwords["a"])
        driver.get(box.url["a"] + "/tensorboard/data/logdir")  # seat a's own TensorBoard answers a's session
        assert '"logdir": "/tf/logs"' in driver.page_source, driver.page_source[:500]
        # the same browser sends its seat-a cookie along (cookies do not depend on the port): seat b's server
        # knows neither the cookie's name nor its signature, so b's TensorBoard is b's login page
        for path in ("/tensorboard/", "/tensorboard/data/logdir"):
            driver.get(box.url["b"] + path)
            assert on_login_page(driver), (path, driver.current_url)
    a = Jupyter(box.url["a"])
    assert a.login(box.passwords["a"])
    a.base = box.url["b"]  # seat a's cookies, at seat b's address
    assert a.request("GET", "/tensorboard/data/logdir")[0] == 302, "seat a's session gets nothing from seat b's TensorBoard"


def test_2_second_up_changes_nothing(box: SimpleNamespace) -> None:
    assert change_summary(box.stack.up().output) == {}


def test_3_changing_seat_b_replaces_only_seat_b(box: SimpleNamespace) -> None:
    ids = {(seat, role): box.docker.inspect(name(seat, role))["Id"] for seat in "ab" for role in ("notebook", "tensorboard")}
    port = free_port()
    box.project.pulumi("config", "set", "--path", "tfbox:seats[1].notebookPort", str(port), "--stack", STACK)
    box.project.pulumi("config", "set", "--path", "tfbox:seats[1].memory", "1g", "--stack", STACK)
    box.stack.up()
    box.url["b"] = f"http://127.0.0.1:{port}"
    after = {key: box.docker.inspect(name(*key))["Id"] for key in ids}
    assert after[("a", "notebook")] == ids[("a", "notebook")] and after[("a", "tensorboard")] == ids[("a", "tensorboard")]
    assert after[("b", "notebook")] != ids[("b", "notebook")]
    assert box.docker.inspect(name("b", "notebook"))["HostConfig"]["Memory"] == 1024 ** 3
    b = Jupyter(box.url["b"])
    assert b.login(box.passwords["b"]) and b.read_notebook_source("b.ipynb") == "print('b')", "seat b's notebooks kept"


def test_4_removing_seat_b_keeps_its_volumes(box: SimpleNamespace) -> None:
    a_id = box.docker.inspect(name("a", "notebook"))["Id"]
    box.project.pulumi("config", "rm", "--path", "tfbox:seats[1]", "--stack", STACK)
    box.stack.up()
    assert box.docker.inspect(name("b", "notebook")) is None and box.docker.inspect(name("b", "tensorboard")) is None
    volumes = box.docker("volume", "ls", "--format", "{{.Name}}").stdout.split()
    assert name("b", "notebooks") in volumes and name("b", "logs") in volumes
    assert box.docker.inspect(name("a", "notebook"))["Id"] == a_id
    assert set(box.stack.outputs()["gpuLedger"]) == {"0"}


def test_5_two_seats_on_one_gpu_are_refused_before_anything_changes(box: SimpleNamespace) -> None:
    before = box.docker.snapshot()
    for key, value in (("name", "c"), ("gpus", "0"), ("notebookPort", str(free_port())), ("tensorboardPort", str(free_port()))):
        box.project.pulumi("config", "set", "--path", f"tfbox:seats[1].{key}", value, "--stack", STACK)
    box.project.pulumi("config", "set", "--secret", "--path", "tfbox:passwords.c", "--stack", STACK,
                       input="seat-c-" + secrets.token_urlsafe(12))
    result = box.stack.preview(check=False)
    assert result.returncode != 0
    assert "seat 'a' and seat 'c' both ask for GPU 0" in result.output, result.output[-3000:]
    assert "tfbox:seats[1].gpus" in result.output and "shareGpus: true" in result.output
    assert box.docker.snapshot() == before


def test_6_another_stack_on_the_same_host_cannot_take_a_seats_gpu(box: SimpleNamespace, gpu_image: str) -> None:
    """Two stacks may share a box: the second one's GPUs are checked against what the host runs now
    (components/host_state.py reads every tfbox notebook's GPUs), before anything changes."""
    before = box.docker.snapshot()
    other = box.project.stack("other-team", {
        "docker:host": box.docker.host, "tfbox:image": gpu_image, "tfbox:gpus": "2,0",
        "tfbox:notebookPort": free_port(), "tfbox:tensorboardPort": free_port(), **gpu_ulimits_here(),
    }, "other-team-" + secrets.token_urlsafe(12))
    for run in (other.preview, other.up):
        result = run(check=False)
        assert result.returncode != 0
        # GPU 0 with its UUID: the seats stack's machine-wide GPU check on the host told the ledger which it is
        assert re.search(r"tfbox:gpus: stack 'other-team' asks for GPU 0 \(GPU-[0-9a-f-]+60\), which stack 'seats' seat 'a' "
                         r"on the same Docker host already has\. Fix: pick other GPUs\n", result.output), result.output[-3000:]
        assert box.docker.snapshot() == before
    box.project.pulumi("config", "set", "tfbox:gpus", "2,3", "--stack", "other-team")
    assert other.preview(check=False).returncode == 0, "GPUs nobody has pass"
