"""The fleet command's pure parts (ops/fleet.py, ops/stacks.py): which machines, how a run is
classified, and the table a user reads at the end."""

from __future__ import annotations

from pathlib import Path

from ops.fleet import MachineResult, changes_text, classify_error, error_line, exit_status, real_changes, render_table
from ops.stacks import machine_stacks, select

ROOT = Path(__file__).resolve().parents[2]


def write(tmp: Path, name: str, text: str) -> None:
    (tmp / f"Pulumi.{name}.yaml").write_text(text)


def test_machines_are_every_stack_but_local_ones(tmp_path: Path) -> None:
    write(tmp_path, "dev", "config:\n  tfbox:stackKind: local\n")
    write(tmp_path, "b", "config:\n  docker:host: ssh://u@b\n  tfbox:gpus: '0,1'\n  tfbox:password:\n    secure: v1:x\n")
    write(tmp_path, "a", "config:\n  tfbox:stackKind: machine\n  docker:host: ssh://u@a\n")
    (tmp_path / "Pulumi.yaml").write_text("name: tfbox\n")
    machines = machine_stacks(tmp_path)
    assert [m.name for m in machines] == ["a", "b"]
    a, b = machines
    assert (a.docker_host, a.password_set, b.gpus, b.password_set) == ("ssh://u@a", False, "0,1", True)
    assert select(machines, None) == (machines, [])
    assert select(machines, ["b", "dev", "zz", "b"]) == ([b], ["dev", "zz"])


def test_the_committed_dev_stack_is_not_in_the_fleet() -> None:
    names = [m.name for m in machine_stacks(ROOT)]
    assert "dev" not in names and "gpu-box" in names


def test_changes_and_results() -> None:
    assert real_changes({"same": 4, "create": 2, "update": 0, "read": 1, "delete": 1}) == {"create": 2, "delete": 1}
    assert changes_text({"create": 2, "delete": 1}) == "+2 -1"
    assert changes_text({"replace": 1, "update": 3}) == "~3 +-1"
    assert changes_text({}) == "none"
    assert classify_error("error: Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?") == "unreachable"
    assert classify_error("ssh: connect to host gpu-box port 22: Connection timed out") == "unreachable"
    # tfbox's SSH preflight replaces the provider's words with one line (components/docker/ssh.py)
    assert classify_error("error: docker:host ssh://me@gpu-box: Docker is not running on the box. Start it there") == "unreachable"
    assert classify_error("error: docker:host ssh://me@gpu-box: the box is unreachable over SSH (no answer)") == "unreachable"
    assert classify_error("  - tfbox:password: is not set. Fix: run ...") == "no password"
    assert classify_error("error: no stack named 'x' found") == "no stack"
    assert classify_error("[mandatory]  public-notebook-requires-password") == "policy violation"
    assert classify_error("tfbox configuration has 2 problems:") == "invalid configuration"
    assert classify_error("boom") == "failed"
    assert error_line("+ pulumi:pulumi:Stack\n error: Cannot connect to the Docker daemon\nmore") == "error: Cannot connect to the Docker daemon"


def test_table_and_exit_status() -> None:
    rows = [
        MachineResult("box-1", "ssh://tfbox@box-1", gpus="all", notebook="http://box-1:8888/", changes={"create": 5}),
        MachineResult("box-2", "ssh://tfbox@box-2", result="unreachable", error="error: Cannot connect to the Docker daemon"),
    ]
    text = render_table(rows)
    lines = text.splitlines()
    assert lines[0].split() == ["machine", "host", "GPUs", "notebook", "result", "changes"]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split() == ["box-1", "ssh://tfbox@box-1", "all", "http://box-1:8888/", "ok", "+5"]
    assert lines[3].split() == ["box-2", "ssh://tfbox@box-2", "-", "-", "unreachable", "-"]
    assert lines[0].index("result") == lines[2].index("ok") == lines[3].index("unreachable")
    assert lines[-1] == "box-2: error: Cannot connect to the Docker daemon"
    assert exit_status(rows) == 1
    assert exit_status(rows[:1]) == 0
    assert exit_status([]) == 1


def test_a_seats_stack_has_its_password_when_every_seat_has_one(tmp_path: Path) -> None:
    seats = ("  tfbox:seats:\n    - {name: alice, gpus: 0, notebookPort: 8888, tensorboardPort: 6006}\n"
             "    - {name: bob, notebookPort: 8889, tensorboardPort: 6007}\n")
    write(tmp_path, "half", "config:\n" + seats + "  tfbox:passwords:\n    alice:\n      secure: v1:x\n")
    write(tmp_path, "full", "config:\n" + seats + "  tfbox:passwords:\n    alice:\n      secure: v1:x\n    bob:\n      secure: v1:y\n")
    full, half = machine_stacks(tmp_path)
    assert (full.password_set, half.password_set) == (True, False)
    assert full.gpus == "alice=0 bob=none"
