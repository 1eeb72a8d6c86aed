"""Issue 8 §2-3: the fleet command and the PR preview script against real machine stacks.

Two machine stacks on the two SSH boxes (fixture `ssh_boxes`: `docker:host: ssh://tfbox@<box>:22`,
`docker:sshOpts` for the test's key and known_hosts). The notebooks stay on the boxes' loopback, so
their URL is `http://127.0.0.1:<port>/` through an `ssh -L` tunnel, as docs/security.md tells a user. In order:
1. `make fleet ACTION=up` from nothing brings both labs up at once; the table lists each with its URL;
2. `make fleet ACTION=preview` shows no changes, `status` reads the outputs;
3. `make pr-preview BASE=<ref>` with a changed stack, a box whose Docker is down and a stack
   without a password: one comment file per stack (diff, failure with the log tail naming the box,
   how to set the password);
4. `make fleet ACTION=up` with that machine down: the other machine is deployed, the table says which
   failed and why, and the exit status is non-zero.
The local `dev` stack is in the project copy all along and never previewed nor in the fleet."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from tests.e2e.boxes import DOCKER_USER, Box, SshClient, restart_docker, stop_docker
from tests.e2e.harness import Jupyter, Project, Result, free_port, http_get

MACHINES = ("box-1", "box-2")
NO_PASSWORD = "box-3"
GIT = ("git", "-c", "user.name=tfbox-e2e", "-c", "user.email=e2e@tfbox.invalid")


def tunnel(client: SshClient, box: Box, port: int) -> subprocess.Popen[bytes]:
    """`ssh -N -L port:127.0.0.1:port` to a box: how a user reaches a notebook bound to the box's loopback."""
    log = client.dir / f"tunnel-{box.name}.log"  # a file, not a pipe: nobody reads it while the tunnel runs
    with log.open("wb") as err:
        proc = subprocess.Popen(["ssh", *client.ssh_opts, "-N", "-o", "ExitOnForwardFailure=yes",
                                 "-L", f"127.0.0.1:{port}:127.0.0.1:{port}", f"{DOCKER_USER}@{box.ip}"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"ssh -L to {box.name} exited: {log.read_text()}"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"ssh -L to {box.name} did not listen on 127.0.0.1:{port} within 30s")


@pytest.fixture(scope="module")
def machines(project: Project, ssh_boxes: tuple[list[Box], SshClient], cpu_image: str,
             password: str) -> Iterator[dict[str, SimpleNamespace]]:
    """Two machine stacks on the SSH boxes (files and stacks, nothing deployed yet), each with a tunnel to its
    notebook; `down`/`up` stop and bring back a box's Docker (sshd stays up)."""
    boxes, client = ssh_boxes
    # the example gpu-box stack points at a host that does not exist here; the local dev stack stays in the copy
    (project.dir / "Pulumi.gpu-box.yaml").unlink()
    out: dict[str, SimpleNamespace] = {}
    tunnels = []
    try:
        for name, box in zip(MACHINES, boxes, strict=True):
            nb_port = free_port()  # free here (the tunnel's end) and on the fresh box
            stack = project.stack(name, {
                "tfbox:stackKind": "machine", "docker:host": box.ssh_host(), "docker:sshOpts": client.ssh_opts,
                "tfbox:image": cpu_image, "tfbox:notebookPort": nb_port, "tfbox:tensorboardPort": free_port(),
            }, password)
            tunnels.append(tunnel(client, box, nb_port))
            out[name] = SimpleNamespace(stack=stack, box=box, docker=box.docker, host=box.ssh_host(),
                                        nb=f"http://127.0.0.1:{nb_port}/",
                                        down=lambda b=box: stop_docker(b), up=lambda b=box: restart_docker(b))
        yield out
        for m in out.values():
            m.up()
            m.stack.destroy(check=False)
    finally:
        for t in tunnels:
            t.terminate()
            t.wait(timeout=10)


def make(project: Project, *args: str) -> Result:
    return project.run("make", "--no-print-directory", *args, check=False, timeout=1200)


def table(output: str) -> dict[str, dict[str, str]]:
    """The fleet's closing table, by machine: {'host':…, 'GPUs':…, 'notebook':…, 'result':…, 'changes':…}."""
    lines = output.splitlines()
    start = max(i for i, line in enumerate(lines) if line.split()[:2] == ["machine", "host"])
    header = lines[start].split()
    rows = {}
    for line in lines[start + 2:]:
        if not line.strip():
            break
        cells = re.split(r"\s{2,}", line.strip())
        assert len(cells) == len(header), f"not a table row: {line!r}"
        rows[cells[0]] = dict(zip(header[1:], cells[1:], strict=True))
    return rows


def test_1_fleet_up_from_nothing(project: Project, machines: dict[str, SimpleNamespace], password: str) -> None:
    run = make(project, "fleet", "ACTION=up")
    assert run.returncode == 0, run.output[-5000:]
    rows = table(run.stdout)
    assert set(rows) == set(MACHINES), rows  # dev is local: never part of the fleet
    for name, m in machines.items():
        row = rows[name]
        assert row["result"] == "ok" and row["host"] == m.host and row["notebook"] == m.nb, row
        assert row["changes"].startswith("+"), row  # created from nothing
        assert re.search(rf"^\[{name}\] .*created", run.stdout, re.MULTILINE), f"no streamed progress for {name}"
        assert http_get(m.nb + "api")[0] == 200
        assert Jupyter(m.nb).login(password)


def test_2_fleet_preview_shows_no_changes(project: Project, machines: dict[str, SimpleNamespace]) -> None:
    run = make(project, "fleet", "ACTION=preview")
    assert run.returncode == 0, run.output[-5000:]
    rows = table(run.stdout)
    assert {name: (r["result"], r["changes"]) for name, r in rows.items()} == {name: ("ok", "none") for name in MACHINES}
    status = make(project, "fleet", "ACTION=status", "MACHINES=box-2")
    assert status.returncode == 0, status.output[-5000:]
    assert list(table(status.stdout)) == ["box-2"] and table(status.stdout)["box-2"]["notebook"] == machines["box-2"].nb
    assert "last update: update succeeded" in status.stdout


def test_3_pr_preview_comments(project: Project, machines: dict[str, SimpleNamespace],
                               ssh_boxes: tuple[list[Box], SshClient], cpu_image: str) -> None:
    git = lambda *args: project.run(*GIT, *args)  # noqa: E731
    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-qm", "base")
    base = git("rev-parse", "HEAD").stdout.strip()
    git("switch", "-qc", "change")
    # a new machine whose owner has not set the password yet, a config change on box-1, a shared-code change
    project.stack(NO_PASSWORD, {"tfbox:stackKind": "machine", "docker:host": machines["box-1"].host,
                                "docker:sshOpts": ssh_boxes[1].ssh_opts, "tfbox:image": cpu_image,
                                "tfbox:notebookPort": free_port(), "tfbox:tensorboardPort": free_port()}, None)
    machines["box-1"].stack.set("tensorboardMode", "off")
    with (project.dir / "README.md").open("a") as f:
        f.write("\nA shared change: every machine stack is previewed.\n")
    git("add", "-A")
    git("commit", "-qm", "change")
    machines["box-2"].down()

    run = make(project, "pr-preview", f"BASE={base}")
    assert run.returncode != 0, run.output[-5000:]  # make says 2 when the script exits 1
    out = project.dir / ".tfbox" / "pr-preview"
    results = json.loads((out / "results.json").read_text())
    assert {s: r["status"] for s, r in results.items()} == {"box-1": "changes", "box-2": "failed", NO_PASSWORD: "missing-password"}
    # the TensorBoard component, its container and its pids limit go; the one-shot ready container no longer waits for it
    assert results["box-1"]["counts"] == {"delete": 3, "replace": 1}

    comments = {s: (out / f"{s}.md").read_text() for s in results}
    for stack, body in comments.items():
        assert body.splitlines()[0] == f"<!-- tfbox-preview:stack={stack} -->"
        assert "Traceback" not in body, body
    head = git("rev-parse", "HEAD").stdout.strip()
    assert f"commit `{head[:12]}`" in comments["box-1"]
    assert "`box-1`: 1 to replace, 3 to delete" in comments["box-1"], comments["box-1"][:2000]
    assert "tfbox:index:TensorBoard$docker:index/container:Container::tensorboard]" in comments["box-1"]
    assert "preview failed (unreachable machine)" in comments["box-2"], comments["box-2"][:3000]
    # `preview --refresh` refreshes before the program (and tfbox's SSH preflight) runs, so the log tail has the
    # provider's words: the box's ssh:// address and that its Docker does not answer
    tail = comments["box-2"]
    assert machines["box-2"].host in tail and "Is the docker daemon running?" in tail, tail[-3000:]
    assert f"pulumi config set --secret tfbox:password --stack {NO_PASSWORD}" in comments[NO_PASSWORD]
    assert "dev" not in results


def test_4_fleet_with_one_machine_down(project: Project, machines: dict[str, SimpleNamespace], password: str) -> None:
    run = make(project, "fleet", "ACTION=up")  # box-2's daemon is still down (test_3)
    assert run.returncode != 0, run.output[-5000:]
    rows = table(run.stdout)
    assert rows["box-1"]["result"] == "ok" and rows["box-1"]["changes"] == "+-1 -3", rows  # TensorBoard (and its pids limit) removed, ready replaced
    assert rows["box-2"]["result"] == "unreachable" and rows["box-2"]["host"] == machines["box-2"].host, rows
    assert rows[NO_PASSWORD]["result"] == "no password", rows
    assert re.search(r"^box-2: .+", run.stdout, re.MULTILINE), "no reason under the table for box-2"
    assert "Is the docker daemon running?" in run.output, run.output[-3000:]  # the refresh before `up` says why
    a = machines["box-1"]
    assert a.docker.inspect("tfbox-box-1-tensorboard") is None and http_get(a.nb + "api")[0] == 200
    assert Jupyter(a.nb).login(password)
    machines["box-2"].up()
