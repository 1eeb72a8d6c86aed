"""ops/new_machine.py (`make machine`'s file writer): the ports it leaves to other stacks come from the model.

scripts/new-machine.sh end to end is tests/ops/test_new_machine.py; these check the port choice against
stack files the old line-by-line reading missed (a seats stack, another spelling of the same host, a
stack on the local daemon that names no host) and that the file is the template, filled.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import check_stack_file
from ops.new_machine import free_port, main, render, used_ports

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "templates" / "Pulumi.machine.yaml"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "templates").mkdir()
    shutil.copy(TEMPLATE, tmp_path / "templates")
    return tmp_path


def write(root: Path, stack: str, config: dict[str, Any]) -> None:
    (root / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}))


def test_a_seats_stack_on_the_same_host_keeps_its_seats_ports(root: Path) -> None:
    write(root, "shared", {"docker:host": "ssh://me@box:22", "tfbox:seats": [
        {"name": "a", "gpus": "0", "notebookPort": 8888, "tensorboardPort": 6006},
        {"name": "b", "gpus": "1", "notebookPort": 8889, "tensorboardPort": 6007}]})
    assert used_ports(root, "ssh://me@box") == {8888, 6006, 8889, 6007}
    assert used_ports(root, "ssh://me@other") == set()
    assert main(["--root", str(root), "new", "ssh://me@box"]) == 0
    config = yaml.safe_load((root / "Pulumi.new.yaml").read_text())["config"]
    assert (config["tfbox:notebookPort"], config["tfbox:tensorboardPort"]) == (8890, 6008)
    check_stack_file(root / "Pulumi.new.yaml")  # the validator `make machine` runs next finds no clash


def test_a_stack_naming_no_host_is_on_the_local_daemon(root: Path) -> None:
    write(root, "dev", {"tfbox:stackKind": "local", "tfbox:tensorboardMode": "off"})
    assert used_ports(root, "unix:///var/run/docker.sock") == {8888}, "TensorBoard off publishes no port"
    assert main(["--root", str(root), "local-box", "unix:///var/run/docker.sock"]) == 0
    config = yaml.safe_load((root / "Pulumi.local-box.yaml").read_text())["config"]
    assert (config["tfbox:notebookPort"], config["tfbox:tensorboardPort"]) == (8889, 6006)
    check_stack_file(root / "Pulumi.local-box.yaml")


def test_free_port_skips_the_taken_and_the_notebooks(root: Path) -> None:
    assert free_port(8888, {8888, 8890}) == 8889
    assert free_port(6006, {6006}, also=6007) == 6008


def test_the_file_is_the_template_filled_and_never_overwritten(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(root), "box", "ssh://me@box"]) == 0
    text = (root / "Pulumi.box.yaml").read_text()
    salt = yaml.safe_load(text)["config"]["tfbox:passwordSalt"]
    assert len(salt) == 32 and int(salt, 16) >= 0
    assert text == render(TEMPLATE.read_text(), "box", "ssh://me@box", salt, 8888, 6006)
    assert "@" + "MACHINE@" not in text and text.count("#") > 10
    assert capsys.readouterr().out == (f"new-machine: wrote {root}/Pulumi.box.yaml (docker:host ssh://me@box, notebook port 8888, "
                                       "TensorBoard port 6006)\n")
    (root / "Pulumi.box.yaml").write_text("# mine\n")
    assert main(["--root", str(root), "box", "ssh://me@box"]) == 1
    assert "appeared meanwhile; not overwritten" in capsys.readouterr().err
    assert (root / "Pulumi.box.yaml").read_text() == "# mine\n"
    assert sorted(p.name for p in root.iterdir()) == ["Pulumi.box.yaml", "templates"], "no temporary file left behind"


def test_render_sets_only_the_template_port_lines() -> None:
    text = render("  tfbox:notebookPort: 8888\n  #   tfbox:notebookPort: 8888\n  tfbox:tensorboardPort: 6006\n", "m", "h", "s", 8890, 6008)
    assert text == "  tfbox:notebookPort: 8890\n  #   tfbox:notebookPort: 8888\n  tfbox:tensorboardPort: 6008\n"
