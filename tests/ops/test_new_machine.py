"""`make machine` (scripts/new-machine.sh): the stack file it writes, and how it drives the CLI.

Run against a temporary copy of the template (TFBOX_ROOT) so the repository is never touched; the
real validator (`python -m components.config`) checks every file written. The CLI part runs with a
stand-in `pulumi` that records its calls, since no backend is needed to check the calls are right.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "new-machine.sh"
TEMPLATE = ROOT / "templates" / "Pulumi.machine.yaml"

FAKE_PULUMI = """#!/usr/bin/env bash
# records argv and stdin; `stack select` fails so the script creates the stack
log=${FAKE_PULUMI_LOG:?}
printf 'ARGS %s\\n' "$*" >>"$log"
case "$1 $2" in
  "stack select") exit 1 ;;
  "config set") printf 'STDIN %s\\n' "$(tr '\\n' '|')" >>"$log" ;;  # one line per value
esac
exit 0
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "templates").mkdir()
    shutil.copy(TEMPLATE, tmp_path / "templates" / TEMPLATE.name)
    return tmp_path


def run(root: Path, *args: str, pulumi_dir: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "TFBOX_"))}
    path = os.pathsep.join(p for p in base.get("PATH", "").split(os.pathsep) if not (Path(p) / "pulumi").exists())
    if pulumi_dir is not None:
        path = f"{pulumi_dir}{os.pathsep}{path}"
    else:
        base["TFBOX_NO_PULUMI"] = "1"
    full_env = {**base, "PATH": path, "TFBOX_ROOT": str(root), "PYTHON": sys.executable, **env}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=full_env, stdin=subprocess.DEVNULL)


def config_of(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict)
    config = doc["config"]
    assert isinstance(config, dict)
    return config


def test_writes_a_commented_stack_file_with_the_host_and_gpu_defaults(root: Path) -> None:
    done = run(root, "box-1", "ssh://me@box-1")
    assert done.returncode == 0, done.stderr
    out = root / "Pulumi.box-1.yaml"
    text = out.read_text()
    assert text.count("#") > 10, "the template's comments are kept"
    assert "@MACHINE@" not in text and "@DOCKER_HOST@" not in text
    config = config_of(out)
    assert config["docker:host"] == "ssh://me@box-1"
    assert config["tfbox:gpus"] == "all"
    assert config["tfbox:gpuCheck"] is True
    assert config["tfbox:notebookBind"] == "0.0.0.0"
    assert config["tfbox:notebookPort"] == 8888
    assert config["tfbox:tensorboardBind"] == "127.0.0.1"
    assert config["tfbox:tensorboardPort"] == 6006
    assert config["tfbox:keepVolumes"] is True
    assert "tfbox:password" not in config, "no CLI: the password is never written in clear"
    assert "ok (" in done.stdout, "the validator accepted it"
    assert "pulumi config set --secret tfbox:password --stack box-1" in done.stdout


def test_refuses_to_overwrite(root: Path) -> None:
    assert run(root, "box-1", "ssh://me@box-1").returncode == 0
    out = root / "Pulumi.box-1.yaml"
    out.write_text(out.read_text() + "# edited by hand\n")
    before = out.read_text()
    done = run(root, "box-1", "ssh://me@other")
    assert done.returncode != 0
    assert "refusing to overwrite" in done.stderr
    assert out.read_text() == before


@pytest.mark.parametrize(
    ("name", "host"),
    [
        ("", "ssh://me@h"),
        ("Box", "ssh://me@h"),
        ("box_1", "ssh://me@h"),
        ("-box", "ssh://me@h"),
        ("box", ""),
        ("box", "me@h"),
        ("box", "ssh://me@h; rm -rf /"),
        ("box", 'ssh://me@h"'),
    ],
)
def test_rejects_bad_names_and_hosts(root: Path, name: str, host: str) -> None:
    done = run(root, name, host)
    assert done.returncode == 2, done.stderr
    assert not list(root.glob("Pulumi.*.yaml"))


def test_second_machine_on_the_same_host_gets_free_ports(root: Path) -> None:
    assert run(root, "box-1", "ssh://me@shared").returncode == 0
    done = run(root, "box-2", "ssh://me@shared")
    assert done.returncode == 0, done.stderr  # the validator's cross-stack port check passes
    config = config_of(root / "Pulumi.box-2.yaml")
    assert (config["tfbox:notebookPort"], config["tfbox:tensorboardPort"]) == (8889, 6007)
    other_host = run(root, "box-3", "ssh://me@elsewhere")
    assert other_host.returncode == 0
    assert config_of(root / "Pulumi.box-3.yaml")["tfbox:notebookPort"] == 8888


@pytest.mark.parametrize("given", ["s3cret-passphrase", ""])
def test_with_a_cli_it_creates_the_stack_and_sets_the_password_from_stdin(root: Path, tmp_path: Path, given: str) -> None:
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    fake = bindir / "pulumi"
    fake.write_text(FAKE_PULUMI)
    fake.chmod(0o755)
    log = tmp_path / "pulumi.log"
    done = run(
        root,
        "box-1",
        "ssh://me@box-1",
        pulumi_dir=bindir,
        FAKE_PULUMI_LOG=str(log),
        TFBOX_PASSWORD=given,
        PULUMI_BACKEND_URL="file:///nowhere",
        **{"PULUMI_CONFIG_PASSPHRASE": secrets.token_hex(8)},  # the fake pulumi never uses it: generated, not a literal
    )
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert "ARGS stack init box-1 --secrets-provider passphrase" in calls
    assert "ARGS config set --secret tfbox:password --stack box-1" in calls
    assert all("s3cret" not in c for c in calls if c.startswith("ARGS")), "the password never goes on a command line"
    stdin, cert, key = [c for c in calls if c.startswith("STDIN ")]
    # then the self-signed certificate (scripts/tls.sh), the key as a secret, both from stdin
    assert calls[-4:-2] == ["ARGS config set --plaintext tfbox:tlsCert --stack box-1", cert]
    assert calls[-2:] == ["ARGS config set --secret tfbox:tlsKey --stack box-1", key]
    assert cert.startswith("STDIN -----BEGIN CERTIFICATE-----") and key.startswith("STDIN -----BEGIN PRIVATE KEY-----")
    assert "PRIVATE KEY" not in done.stdout + done.stderr
    if given:
        assert stdin == f"STDIN {given}"
        assert "set the notebook password" in done.stdout
    else:
        assert len(stdin) > len("STDIN ") + 16, "a generated password"
        assert "pulumi config get tfbox:password --stack box-1" in done.stdout
        assert stdin.removeprefix("STDIN ") not in done.stdout + done.stderr, "a generated password is not printed"


def test_each_machine_gets_its_own_random_salt(root: Path) -> None:
    assert run(root, "box-1", "ssh://me@box-1").returncode == 0
    assert run(root, "box-2", "ssh://me@box-2").returncode == 0
    salts = {config_of(root / f"Pulumi.box-{n}.yaml")["tfbox:passwordSalt"] for n in (1, 2)}
    assert len(salts) == 2 and all(len(s) == 32 and int(s, 16) >= 0 for s in salts)


def test_a_short_chosen_password_is_refused(root: Path, tmp_path: Path) -> None:
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    (bindir / "pulumi").write_text(FAKE_PULUMI)
    (bindir / "pulumi").chmod(0o755)
    log = tmp_path / "pulumi.log"
    done = run(root, "box-1", "ssh://me@box-1", pulumi_dir=bindir, FAKE_PULUMI_LOG=str(log), TFBOX_PASSWORD="short-pw",
               PULUMI_BACKEND_URL="file:///nowhere", **{"PULUMI_CONFIG_PASSPHRASE": secrets.token_hex(8)})
    assert done.returncode == 1 and "at least 12 characters" in done.stderr
    assert "short-pw" not in done.stdout + done.stderr + log.read_text()
