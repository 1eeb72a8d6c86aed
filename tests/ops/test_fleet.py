"""The fleet command's pure parts (ops/fleet.py, ops/stacks.py): which machines, how a run is
classified, and the table a user reads at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


CLUSTER_STACK = ("config:\n  tfbox:backend: kubernetes\n  kubernetes:kubeconfig:\n    secure: v1:abc\n"
                 "  tfbox:seats:\n    - {name: ana, gpus: count=1, notebookPort: 8801, tensorboardPort: 6601}\n"
                 "  tfbox:passwords:\n    ana:\n      secure: v1:def\n")


def test_a_cluster_stack_is_a_machine_stack_reached_by_its_kubeconfig_not_ssh(tmp_path: Path) -> None:
    from ops.access import needs, warnings
    from ops.stacks import affected

    write(tmp_path, "lab", CLUSTER_STACK)
    write(tmp_path, "box", "config:\n  docker:host: ssh://u@box\n")
    write(tmp_path, "ctx", "config:\n  tfbox:backend: kubernetes\n  kubernetes:context: gpu-cluster\n")
    write(tmp_path, "path", "config:\n  tfbox:backend: kubernetes\n  kubernetes:kubeconfig: /home/me/.kube/lab.yaml\n")
    machines = {m.name: m for m in machine_stacks(tmp_path)}
    assert set(machines) == {"box", "ctx", "lab", "path"}
    lab = machines["lab"]
    assert lab.on_cluster and lab.docker_host is None and lab.password_set and lab.gpus == "ana=count=1"
    assert lab.where == "kubernetes (kubeconfig in the stack's secrets)"  # the fleet table's host column, no secret text
    assert machines["ctx"].where == "kubernetes (context gpu-cluster)" and machines["box"].where == "ssh://u@box"
    assert affected(["components/kubernetes/lab.py"], machines) == ["box", "ctx", "lab", "path"]
    assert affected(["Pulumi.lab.yaml"], machines) == ["lab"]
    assert needs(lab) == {"backend": "kubernetes", "ssh": "false", "kubectl": "true"}
    assert needs(machines["box"]) == {"backend": "docker", "ssh": "true", "kubectl": "false"}
    assert warnings(lab) == [] and warnings(machines["box"]) == []
    (path,) = warnings(machines["path"])
    assert path == ("path: the cluster is reached through /home/me/.kube/lab.yaml, which a CI runner does not have: "
                    "`pulumi config set --secret kubernetes:kubeconfig --stack path < <kubeconfig file>`")
    assert "through context gpu-cluster" in warnings(machines["ctx"])[0]
    write(tmp_path, "plain", "config:\n  tfbox:backend: kubernetes\n  kubernetes:kubeconfig: |\n    apiVersion: v1\n    users: []\n")
    (plain,) = [m for m in machine_stacks(tmp_path) if m.name == "plain"]
    assert plain.where == "kubernetes (kubeconfig in the stack file)"  # never its text
    assert "in plaintext, credentials included" in warnings(plain)[0]


def test_the_fleet_row_of_a_cluster_stack_names_the_cluster(tmp_path: Path, monkeypatch: Any) -> None:
    from pulumi import automation as auto

    from ops.fleet import select_stack

    def missing(name: str, *args: Any) -> None:
        raise auto.errors.StackNotFoundError(auto.CommandResult("", f"no stack named '{name}' found", 255))

    monkeypatch.setattr(auto, "Stack", missing)
    write(tmp_path, "lab", CLUSTER_STACK)
    (info,) = machine_stacks(tmp_path)
    _, row = select_stack(None, info)
    assert row is not None and (row.host, row.result) == ("kubernetes (kubeconfig in the stack's secrets)", "no stack")


def test_an_unreachable_cluster_reads_as_unreachable() -> None:
    for text in ("error: configured Kubernetes cluster is unreachable: unable to load schema information from the API server",
                 "Unable to connect to the server: dial tcp 10.0.0.1:6443: i/o timeout",
                 "error: GPU scheduling: could not read the cluster (kubectl failed), and a machine stack does not go on"):
        assert classify_error(text) == "unreachable", text


def test_ops_access_prints_step_outputs(tmp_path: Path, capsys: object) -> None:
    import pytest

    from ops.access import main

    write(tmp_path, "lab", CLUSTER_STACK)
    write(tmp_path, "dev", "config:\n  tfbox:stackKind: local\n")
    assert main(["lab", "--root", str(tmp_path)]) == 0
    assert isinstance(capsys, pytest.CaptureFixture)
    assert capsys.readouterr().out == "backend=kubernetes\nssh=false\nkubectl=true\n"
    assert main(["dev", "--root", str(tmp_path)]) == 2
