"""scripts/up.sh decides from the model's `--shell` facts (components.model.check): which passwords and
the salt to make, what to say. Runs the real script in a copy of the project with a stand-in `pulumi`
that records its calls, so no backend is touched; tests/e2e/test_make_up.py runs it for real."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SALT = "0123456789abcdef0123456789abcdef"
CIPHER = "v1:c2VjcmV0Y2lwaGVydGV4dA=="

FAKE_PULUMI = """#!/usr/bin/env bash
printf 'ARGS %s\\n' "$*" >>"${FAKE_PULUMI_LOG:?}"
case "$1 $2" in
  "version ") echo v0.0.0 ;;
  "stack select") exit 0 ;;
  "config get") [[ -z ${FAKE_GET_FAILS:-} ]] || exit 1; echo pw ;;
  "config set") [[ -t 0 ]] || { read -r value || true; [[ -z $value ]] || echo "STDIN given" >>"$FAKE_PULUMI_LOG"; } ;;
  "stack output") [[ $3 == notebookUrl ]] && echo http://127.0.0.1:8888/ || exit 1 ;;
esac
exit 0
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    for rel in ("scripts/up.sh", "scripts/passphrase.sh", "toolchain/ensure.sh", "requirements.txt", "Pulumi.yaml"):
        (proj / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, proj / rel)
    shutil.copytree(ROOT / "components", proj / "components", ignore=shutil.ignore_patterns("__pycache__"))
    (proj / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "pulumi").write_text(FAKE_PULUMI)
    (tmp_path / "bin" / "pulumi").chmod(0o755)
    return proj


def up(project: Path, config: dict[str, Any] | None, *args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], str]:
    stack = args[0] if args else "dev"
    if config is not None:
        (project / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}))
    log = project.parent / "pulumi.log"
    log.unlink(missing_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "TFBOX_", "MAKE"))}
    done = subprocess.run(["scripts/up.sh", *args], cwd=project, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                          env={**base, "PATH": f"{project.parent / 'bin'}{os.pathsep}{base['PATH']}", "FAKE_PULUMI_LOG": str(log), **env})
    return done, log.read_text() if log.exists() else ""


def test_a_dev_seats_stack_gets_the_missing_seat_password_and_the_salt(project: Path) -> None:
    done, log = up(project, {"tfbox:stackKind": "local", "tfbox:seats": [{"name": "alice"}, {"name": "bob"}],
                             "tfbox:passwords": {"alice": {"secure": CIPHER}}})
    assert done.returncode == 0, done.stderr
    assert "ARGS config set --secret --path tfbox:passwords.bob --stack dev\nSTDIN given\n" in log, "from stdin, never argv"
    assert "tfbox:passwords.alice" not in log, "alice's is in the file: neither asked nor made"
    assert "ARGS config set --plaintext tfbox:passwordSalt " in log and "ARGS up --yes --stack dev" in log
    assert "config --json" not in log, "the stack file is read through the model, not the CLI"
    assert "tfbox: generated a password for seat bob; read it with: make password SEAT=bob" in done.stderr
    assert "tfbox: made the password salt of stack dev (tfbox:passwordSalt, in Pulumi.dev.yaml)" in done.stderr
    assert "Notebooks: http://127.0.0.1:8888/   (passwords: make password STACK=dev SEAT=<seat>)" in done.stdout


def test_a_dev_stack_with_everything_set_goes_straight_to_up(project: Path) -> None:
    done, log = up(project, {"tfbox:password": {"secure": CIPHER}, "tfbox:passwordSalt": SALT})
    assert done.returncode == 0, done.stderr
    assert [line for line in log.splitlines() if line.startswith("ARGS config")] == []
    assert "Notebook: http://127.0.0.1:8888/   (password: make password STACK=dev)" in done.stdout


def test_a_machine_stack_without_a_password_stops_before_up(project: Path) -> None:
    done, log = up(project, {"tfbox:passwordSalt": SALT}, "box")
    assert done.returncode == 1
    assert "tfbox: stack box has no password; run: pulumi config set --secret tfbox:password --stack box" in done.stderr
    assert "ARGS up" not in log
    done, log = up(project, {"tfbox:seats": [{"name": "alice"}]}, "box")
    assert done.returncode == 1 and "tfbox: seat alice of stack box has no password" in done.stderr and "ARGS up" not in log


def test_make_password_on_a_seats_stack_names_the_seats(project: Path) -> None:
    done, _ = up(project, {"tfbox:seats": [{"name": "alice"}, {"name": "bob"}]}, "box", "--password", FAKE_GET_FAILS="1")
    assert done.returncode == 1 and done.stdout == ""
    assert "tfbox: stack box has seats (alice,bob): make password STACK=box SEAT=<seat>" in done.stderr
