"""Machines over SSH (issue 8 §1) and isolation between stacks (issue 7 §3), on real SSH boxes.

Two boxes (scripts/box.sh: own network namespace and address, a dockerd with iptables on, Debian's
sshd with key login only). What a user does: `make machine NAME=… HOST=ssh://tfbox@<box>:22`, point
`docker:sshOpts` at their ssh config (as ~/.ssh/config would), `pulumi up`. Both machines come up at
once without crosstalk, a second `up` changes nothing, a second stack on the same box cannot reach
the first one's notebook or TensorBoard from inside its own notebook, each failure a user meets is
one line with the fix before anything on the box changes, and `destroy` works."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from tests.e2e.boxes import NO_DOCKER_USER, Box, SshClient, keygen, restart_docker, stop_docker
from tests.e2e.harness import Docker, Jupyter, Project, Stack, change_summary, free_port, gpu_ulimits_here, http_get, wait_http

STACKS = ("ssh-a", "ssh-b")
OTHER = "ssh-a-other"  # a second stack on box a: the isolation test

# From inside a container: can it open a TCP connection to HOST:PORT? Prints open / refused / timeout.
PROBE = """
import socket, sys
s = socket.socket(); s.settimeout(3)
try:
    s.connect((sys.argv[1], int(sys.argv[2]))); print("open")
except ConnectionRefusedError:
    print("refused")
except OSError as e:
    print("timeout" if isinstance(e, TimeoutError) else "error " + type(e).__name__)
"""


@pytest.fixture(scope="module")
def machines(project: Project, ssh_boxes: tuple[list[Box], SshClient], gpu_image: str,
             password: str) -> Iterator[dict[str, SimpleNamespace]]:
    """`make machine` for each box, then the two edits a user makes to the stack file (the image here
    comes from the local registry; sshOpts stand for ~/.ssh/config)."""
    boxes, client = ssh_boxes
    out: dict[str, SimpleNamespace] = {}
    for name, box in zip(STACKS, boxes, strict=True):
        made = project.run("make", "machine", f"NAME={name}", f"HOST={box.ssh_host()}", env={"TFBOX_PASSWORD": password})
        path = project.dir / f"Pulumi.{name}.yaml"
        doc = yaml.safe_load(path.read_text())
        # ...and, where this machine's daemons cannot raise memlock, what docs/troubleshooting.md says
        doc["config"].update({"tfbox:image": gpu_image, "docker:sshOpts": client.ssh_opts, **gpu_ulimits_here()})
        path.write_text(yaml.safe_dump(doc))
        # `make machine` made the stack's self-signed certificate: the notebook on the LAN speaks HTTPS
        cert = doc["config"]["tfbox:tlsCert"]
        out[name] = SimpleNamespace(stack=Stack(project, name), box=box, made=made, nb=f"https://{box.ip}:8888", cert=cert)
    yield out
    for m in out.values():
        m.stack.destroy(check=False)


def container_networks(docker: Docker, name: str) -> dict[str, Any]:
    info = docker.inspect(name)
    assert info is not None, f"{name} does not exist"
    return dict(info["NetworkSettings"]["Networks"])


def probe(docker: Docker, container: str, host: str, port: int) -> str:
    return docker("exec", container, "python3", "-c", PROBE, host, str(port)).stdout.strip()


def tfbox_stacks_on(docker: Docker) -> set[str]:
    out = docker("ps", "-a", "--filter", "label=tfbox.project=tfbox", "--format", '{{.Label "tfbox.stack"}}').stdout
    return set(out.split())


def test_1_make_machine_then_two_ups_over_ssh_at_once(project: Project, machines: dict[str, SimpleNamespace],
                                                     password: str) -> None:
    for m in machines.values():
        assert f"docker:host {m.box.ssh_host()}" in m.made.stdout
    procs = {name: (project.start("pulumi", "--non-interactive", "up", "--yes", "--skip-preview", "--stack", name),
                    time.monotonic()) for name in machines}
    spans = {}
    for name, (proc, started) in procs.items():
        out = project.finish(proc, f"pulumi up --stack {name}  # in parallel")
        assert proc.returncode == 0, f"up of {name} over SSH failed:\n{out[-4000:]}"
        spans[name] = (started, time.monotonic())
    (sa, ea), (sb, eb) = spans.values()
    assert sb < ea and sa < eb, "the two ups did not overlap"

    for name, m in machines.items():
        other = next(n for n in machines if n != name)
        assert tfbox_stacks_on(m.box.docker) == {name}, f"{other}'s containers ended up on {name}'s box"
        outputs = m.stack.outputs()
        assert outputs["notebookUrl"] == m.nb + "/"
        assert "GPU 0: NVIDIA H200" in outputs["gpuCheck"]  # the box's NVIDIA stand-ins, reached over SSH
        assert http_get(m.nb + "/api", cert_pem=m.cert)[0] == 200
        assert Jupyter(m.nb, m.cert).login(password)
        # TensorBoard stays on the box's loopback (the template): reachable there, not from the LAN
        assert m.box.inside("curl", "-sf", "http://127.0.0.1:6006/data/logdir").returncode == 0
        with pytest.raises(OSError):
            http_get(f"http://{m.box.ip}:6006/", timeout=3)
        for role in ("notebook", "tensorboard"):
            nets = container_networks(m.box.docker, f"tfbox-{name}-{role}")
            assert set(nets) == {f"tfbox-{name}-net"}, f"{role} must be on its stack's network only, not the default bridge"


def test_2_second_up_changes_nothing(machines: dict[str, SimpleNamespace]) -> None:
    for m in machines.values():
        m.stack.preview("--expect-no-changes")
    a = machines["ssh-a"]
    before = a.box.docker.snapshot()
    again = a.stack.up()
    assert change_summary(again.output) == {}, again.output[-3000:]
    assert a.box.docker.snapshot() == before


def test_3_another_stack_on_the_same_box_cannot_reach_this_one(project: Project, machines: dict[str, SimpleNamespace],
                                                               ssh_boxes: tuple[list[Box], SshClient], gpu_image: str,
                                                               password: str) -> None:
    a = machines["ssh-a"]
    box, docker = a.box, a.box.docker
    _, client = ssh_boxes
    # B: just a notebook (the container an attacker would sit in), on the same box and daemon as A
    other = project.stack(OTHER, {
        "docker:host": box.ssh_host(), "docker:sshOpts": client.ssh_opts, "tfbox:image": gpu_image,
        "tfbox:notebookPort": free_port(), "tfbox:tensorboardMode": "off",
    }, password)
    other.up()
    a_net = container_networks(docker, "tfbox-ssh-a-notebook")["tfbox-ssh-a-net"]
    a_tb = container_networks(docker, "tfbox-ssh-a-tensorboard")["tfbox-ssh-a-net"]
    b_nb = f"tfbox-{OTHER}-notebook"
    b_net = container_networks(docker, b_nb)
    assert set(b_net) == {f"tfbox-{OTHER}-net"}
    # the probe can connect: B reaches its own Jupyter at its address
    assert probe(docker, b_nb, b_net[f"tfbox-{OTHER}-net"]["IPAddress"], 8888) == "open"
    # ...but not A's Jupyter nor A's TensorBoard, at their addresses on A's network
    assert probe(docker, b_nb, a_net["IPAddress"], 8888) != "open", "stack B's notebook reaches stack A's Jupyter"
    assert probe(docker, b_nb, a_tb["IPAddress"], 6006) != "open", "stack B's notebook reaches stack A's TensorBoard"
    # A's own parts still work: its notebook reaches its TensorBoard, users log in
    assert probe(docker, "tfbox-ssh-a-notebook", "tfbox-ssh-a-tensorboard", 6006) == "open"
    assert Jupyter(a.nb, a.cert).login(password)
    other.preview("--expect-no-changes")
    other.destroy()


def failing_preview(project: Project, box: Box, name: str, host: str, client: SshClient, password: str) -> str:
    """Preview a fresh stack that cannot work; the box must be left exactly as it was."""
    before = box.docker.snapshot()
    stack = project.stack(name, {"docker:host": host, "docker:sshOpts": client.ssh_opts, "tfbox:image": "unused:1",
                                 "tfbox:notebookPort": free_port(), "tfbox:tensorboardPort": free_port()}, password)
    res = stack.preview(check=False)
    assert res.returncode != 0, f"preview of {name} should have failed:\n{res.output[-3000:]}"
    assert "Traceback" not in res.output and "panic" not in res.output
    assert box.docker.snapshot() == before, f"{name}: the box changed although the preview failed"
    project.pulumi("stack", "rm", "--yes", "--force", name)  # also removes Pulumi.<name>.yaml
    return the_one_line(res.output, f"docker:host {host}: ")


def the_one_line(output: str, start: str) -> str:
    """The message starting with `start`: one line (the CLI may show it in progress and diagnostics)."""
    found = {line[line.index(start):].strip() for line in output.splitlines() if start in line}
    assert len(found) == 1, f"expected one message starting {start!r}, got {found}:\n{output[-3000:]}"
    return found.pop()


def test_4_each_ssh_failure_is_one_line_with_the_fix(project: Project, machines: dict[str, SimpleNamespace],
                                                     ssh_boxes: tuple[list[Box], SshClient], password: str,
                                                     tmp_path: Path) -> None:
    box = machines["ssh-a"].box
    _, client = ssh_boxes
    other_key = keygen(tmp_path / "other-host-key", "some-other-box")
    changed = client.variant("changed", known_hosts=box.known_hosts_line(" ".join(
        Path(f"{other_key}.pub").read_text().split()[:2])))
    cases = {
        "unknown-key": (box.ssh_host(), client.variant("unknown", known_hosts=""),
                        ["host key is not in known_hosts", "never accepts one", f"ssh-keyscan -p 22 {box.ip}"]),
        "changed-key": (box.ssh_host(), changed, ["host key has CHANGED", f"ssh-keygen -R {box.ip}"]),
        "wrong-key": (box.ssh_host(), client.variant("wrongkey", identity=keygen(tmp_path / "wrong", "wrong")),
                      ["login as 'tfbox' was refused", "authorized_keys"]),
        "no-docker-rights": (box.ssh_host(user=NO_DOCKER_USER), client,
                             [f"'{NO_DOCKER_USER}' may log in but not use Docker", f"usermod -aG docker {NO_DOCKER_USER}"]),
        "unreachable": (box.ssh_host(port=2200), client, ["unreachable over SSH", "Connection refused"]),
    }
    for name, (host, c, words) in cases.items():
        line = failing_preview(project, box, name, host, c, password)
        for w in words:
            assert w in line, f"{name}: {w!r} not in {line!r}"
    # nothing accepted the box's key on the user's behalf
    assert client.variant("check").known_hosts.read_text() == client.known_hosts.read_text()
    assert (client.dir / "unknown" / "known_hosts").read_text() == ""


def test_5_docker_not_running_on_the_box(project: Project, machines: dict[str, SimpleNamespace],
                                         ssh_boxes: tuple[list[Box], SshClient], password: str, tmp_path: Path) -> None:
    b = machines["ssh-b"]
    _, client = ssh_boxes
    stop_docker(b.box)
    try:
        res_stack = project.stack("docker-down", {
            "docker:host": b.box.ssh_host(), "docker:sshOpts": client.ssh_opts, "tfbox:image": "unused:1",
            "tfbox:notebookPort": free_port(), "tfbox:tensorboardPort": free_port()}, password)
        res = res_stack.preview(check=False)
        assert res.returncode != 0
        line = the_one_line(res.output, f"docker:host {b.box.ssh_host()}: ")
        assert "Docker is not running on the box" in line and "systemctl start docker" in line
        project.pulumi("stack", "rm", "--yes", "--force", "docker-down")
    finally:
        restart_docker(b.box)
    # the lab comes back with the daemon (restart policy always) and still converges
    wait_http(b.nb + "/api", timeout=180, cert_pem=b.cert)
    b.stack.preview("--expect-no-changes")


def test_6_destroy_over_ssh_leaves_the_other_box_alone(machines: dict[str, SimpleNamespace], password: str) -> None:
    a, b = machines["ssh-a"], machines["ssh-b"]
    b_before = b.box.docker.snapshot()
    a.stack.destroy()
    assert tfbox_stacks_on(a.box.docker) == set()
    assert {"tfbox-ssh-a-notebooks", "tfbox-ssh-a-logs"} <= set(a.box.docker.snapshot()["volumes"]), "notebooks are kept"
    assert "tfbox-ssh-a-net" not in a.box.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert b.box.docker.snapshot() == b_before
    assert Jupyter(b.nb, b.cert).login(password)
    b.stack.destroy()
    assert tfbox_stacks_on(b.box.docker) == set()
