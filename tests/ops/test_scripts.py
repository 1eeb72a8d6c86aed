"""The scripts' care with secrets and arguments (issue 7 §6): the passphrase file, `make`'s quoting of
STACK, `make password`'s stdout, TFBOX_PASSWORD leaving the environment.

Each test runs the real script (or the real Makefile) in a temporary project directory with a stand-in
`pulumi` on PATH, so nothing touches this checkout's .state or a real backend.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FAKE_PULUMI = """#!/usr/bin/env bash
# records argv and the passphrase settings it was given; prints a known password for `config get`
printf 'ARGS %s\\n' "$*" >>"${FAKE_PULUMI_LOG:?}"
printf 'ENV PASSFILE=%s TFBOX_PASSWORD=%s\\n' "${PULUMI_CONFIG_PASSPHRASE_FILE-unset}" "${TFBOX_PASSWORD-unset}" >>"$FAKE_PULUMI_LOG"
case "$1 $2" in
  "version ") echo v0.0.0 ;;
  "stack select") exit 0 ;;
  "config get") echo "${FAKE_PASSWORD:?}" ;;
  "config set") cat >/dev/null ;;
esac
exit 0
"""


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "TFBOX_", "MAKE"))}
    return {**env, **extra}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of what `make password` needs, with a ready venv marker and a fake pulumi first on PATH."""
    proj = tmp_path / "proj"
    (proj / "scripts").mkdir(parents=True)
    (proj / "toolchain").mkdir()
    for rel in ("Makefile", "requirements.txt", "requirements-dev.txt", "scripts/up.sh", "scripts/passphrase.sh",
                "toolchain/ensure.sh"):
        shutil.copy2(ROOT / rel, proj / rel)
    (proj / ".venv" / "bin").mkdir(parents=True)
    (proj / ".venv" / ".runtime").touch()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "pulumi"
    fake.write_text(FAKE_PULUMI)
    fake.chmod(0o755)
    return proj


def fake_path(project: Path) -> str:
    return f"{project.parent / 'bin'}{os.pathsep}{os.environ['PATH']}"


def passphrase(project: Path, backend: str | None = None, **extra: str) -> subprocess.CompletedProcess[str]:
    """Source scripts/passphrase.sh and call it the way up.sh does; print the passphrase file it exported."""
    env = clean_env(**extra)
    env["PULUMI_BACKEND_URL"] = backend or f"file://{project}/.state"
    script = 'set -euo pipefail; source scripts/passphrase.sh; tfbox_passphrase "$PWD" t; echo "FILE=${PULUMI_CONFIG_PASSPHRASE_FILE-}"'
    return subprocess.run(["bash", "-c", script], cwd=project, env=env, capture_output=True, text=True, timeout=30)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_passphrase_is_created_mode_600_in_a_700_directory(project: Path) -> None:
    done = passphrase(project)
    assert done.returncode == 0, done.stderr
    file = project / ".state" / "passphrase"
    assert done.stdout.strip() == f"FILE={file}"
    assert mode(project / ".state") == 0o700 and mode(file) == 0o600
    assert len(file.read_text().strip()) >= 40
    assert not list((project / ".state").glob(".passphrase.*")), "no temporary file left behind"


def test_an_existing_passphrase_is_never_replaced(project: Path) -> None:
    (project / ".state").mkdir(mode=0o755)
    file = project / ".state" / "passphrase"
    kept = secrets.token_hex(16) + "\n"
    file.write_text(kept)
    file.chmod(0o644)
    done = passphrase(project)
    assert done.returncode == 0, done.stderr
    assert file.read_text() == kept
    assert mode(file) == 0o600 and mode(project / ".state") == 0o700, "permissions are tightened, content kept"
    assert "generated" not in done.stderr


@pytest.mark.parametrize("dangling", [True, False])
def test_a_symlinked_passphrase_is_refused_and_its_target_untouched(project: Path, tmp_path: Path, dangling: bool) -> None:
    (project / ".state").mkdir()
    target = tmp_path / "elsewhere"
    if not dangling:
        target.write_text("someone else's file\n")
    (project / ".state" / "passphrase").symlink_to(target)
    done = passphrase(project)
    assert done.returncode != 0
    assert "not a non-empty regular file" in done.stderr and "Fix:" in done.stderr
    assert (not target.exists()) if dangling else target.read_text() == "someone else's file\n"


def test_a_symlinked_state_directory_is_refused(project: Path, tmp_path: Path) -> None:
    real = tmp_path / "real-state"
    real.mkdir()
    (project / ".state").symlink_to(real)
    done = passphrase(project)
    assert done.returncode != 0 and "symlink" in done.stderr
    assert list(real.iterdir()) == []


def test_an_empty_passphrase_file_is_refused_not_overwritten(project: Path) -> None:
    (project / ".state").mkdir()
    (project / ".state" / "passphrase").touch()
    done = passphrase(project)
    assert done.returncode != 0 and "Fix:" in done.stderr
    assert (project / ".state" / "passphrase").read_text() == ""


def test_no_passphrase_for_another_backend(project: Path) -> None:
    done = passphrase(project, backend="s3://team-bucket/tfbox")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "FILE="
    assert not (project / ".state").exists()


def test_a_given_passphrase_file_wins(project: Path, tmp_path: Path) -> None:
    given = tmp_path / "team-passphrase"
    given.write_text("x\n")
    done = passphrase(project, PULUMI_CONFIG_PASSPHRASE_FILE=str(given))
    assert done.returncode == 0 and done.stdout.strip() == f"FILE={given}"
    assert not (project / ".state" / "passphrase").exists()


def test_parallel_first_runs_agree_on_one_passphrase(project: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        runs = list(pool.map(lambda _: passphrase(project), range(8)))
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    assert sum("generated" in r.stderr for r in runs) == 1, "exactly one run made it; the others used it"
    assert not list((project / ".state").glob(".passphrase.*"))


def run_make(project: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(PATH=fake_path(project), FAKE_PULUMI_LOG=str(project.parent / "pulumi.log"), **extra)
    return subprocess.run(["make", "--no-print-directory", *args], cwd=project, env=env, capture_output=True, text=True,
                          timeout=60)


def test_make_password_prints_only_the_password_on_stdout(project: Path) -> None:
    password = secrets.token_urlsafe(18)
    done = run_make(project, "password", FAKE_PASSWORD=password)
    assert done.returncode == 0, done.stderr
    assert done.stdout == password + "\n"
    assert "generated the secrets passphrase" in done.stderr, "the rest goes to stderr"
    log = (project.parent / "pulumi.log").read_text()
    assert "ARGS config get tfbox:password --stack dev" in log
    assert f"PASSFILE={project}/.state/passphrase" in log


def test_make_password_of_a_seat(project: Path) -> None:
    password = secrets.token_urlsafe(18)
    done = run_make(project, "password", "STACK=gpu-box", "SEAT=alice", FAKE_PASSWORD=password)
    assert done.returncode == 0, done.stderr
    assert done.stdout == password + "\n"
    assert "ARGS config get --path tfbox:passwords.alice --stack gpu-box\n" in (project.parent / "pulumi.log").read_text()


@pytest.mark.parametrize("seat", ["Alice", "a.b", "x'; touch PWNED; echo '", "-rf"])
def test_make_password_refuses_what_is_not_a_seat_name(project: Path, seat: str) -> None:
    done = run_make(project, "password", f"SEAT={seat}", FAKE_PASSWORD="pw")
    assert done.returncode != 0 and "is not a seat name" in done.stderr and done.stdout == ""
    assert not (project / "PWNED").exists()
    assert not (project.parent / "pulumi.log").exists(), "refused before pulumi runs"


@pytest.mark.parametrize("stack", ["a b", "x'; touch PWNED; echo '", 'q"$(touch PWNED)"', "s;touch PWNED", "$(shell touch PWNED)"])
def test_make_passes_stack_as_one_argument(project: Path, stack: str) -> None:
    done = run_make(project, "password", f"STACK={stack}", FAKE_PASSWORD="pw")
    assert done.returncode == 0, done.stderr
    assert not (project / "PWNED").exists(), "STACK was run as a command"
    assert f"ARGS config get tfbox:password --stack {stack}\n" in (project.parent / "pulumi.log").read_text()


def test_new_machine_drops_tfbox_password_from_the_environment(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "templates").mkdir(parents=True)
    shutil.copy(ROOT / "templates" / "Pulumi.machine.yaml", root / "templates")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "pulumi").write_text(FAKE_PULUMI.replace('"stack select") exit 0', '"stack select") exit 1'))
    (bindir / "pulumi").chmod(0o755)
    log = tmp_path / "pulumi.log"
    password = secrets.token_urlsafe(12)
    env = clean_env(PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}", TFBOX_ROOT=str(root), PYTHON=sys.executable,
                    FAKE_PULUMI_LOG=str(log), TFBOX_PASSWORD=password)
    done = subprocess.run(["bash", str(ROOT / "scripts" / "new-machine.sh"), "box-1", "ssh://me@box-1"], env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert done.returncode == 0, done.stderr
    calls = log.read_text()
    assert "ARGS config set --secret tfbox:password --stack box-1" in calls
    assert "TFBOX_PASSWORD=unset" in calls and password not in calls, "no child process inherits TFBOX_PASSWORD"
    assert mode(root / ".state") == 0o700 and mode(root / ".state" / "passphrase") == 0o600


# --- the run base of the test daemons (issue 22): ours, 0700, never a symlink or a shared directory ---------

RUN_BASE_SH = ROOT / "scripts" / "run-base.sh"


def run_base(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(RUN_BASE_SH), str(path), *args], capture_output=True, text=True, check=False, timeout=30)


def test_a_new_run_base_is_made_0700_and_ours(tmp_path: Path) -> None:
    base = tmp_path / "deep" / "run"
    assert run_base(base).returncode == 0
    st = base.stat()
    assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.geteuid()
    assert run_base(base).returncode == 0, "an existing base of ours is fine"
    box = tmp_path / "boxrun"
    assert run_base(box, "0711").returncode == 0 and stat.S_IMODE(box.stat().st_mode) == 0o711


def test_a_symlinked_run_base_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    (tmp_path / "run").symlink_to(target)
    done = run_base(tmp_path / "run")
    assert done.returncode != 0 and "is a symlink" in done.stderr and "Fix:" in done.stderr
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    done = run_base(dangling)
    assert done.returncode != 0 and "is a symlink" in done.stderr and not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o770, 0o722])
def test_a_group_or_world_writable_run_base_is_refused(tmp_path: Path, mode: int) -> None:
    base = tmp_path / "run"
    base.mkdir()
    base.chmod(mode)
    done = run_base(base)
    assert done.returncode != 0 and "writable" in done.stderr and "chmod go-w" in done.stderr


def test_someone_elses_run_base_is_refused(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        base = tmp_path / "run"
        base.mkdir(mode=0o755)
        os.chown(base, 65534, 65534)  # made first by nobody
    else:
        base = Path("/")  # root's, and not ours
    done = run_base(base)
    assert done.returncode != 0 and "not to us" in done.stderr, done.stderr


@pytest.mark.parametrize("script", [["dockerd.sh", "start", "x"], ["dockerd.sh", "purge", "x"], ["registry.sh", "purge", "5999"],
                                    ["box.sh", "purge", "x"]])
def test_the_scripts_refuse_a_planted_run_base_before_touching_it(tmp_path: Path, script: list[str]) -> None:
    """A base another user planted as a symlink to a directory of theirs: no script writes, starts or deletes there."""
    planted = tmp_path / "theirs"
    planted.mkdir(mode=0o700)
    (planted / "x").mkdir()
    (planted / "x" / "keep").write_text("not yours to delete")
    (tmp_path / "run").symlink_to(planted)
    env = clean_env(TFBOX_RUN=str(tmp_path / "run"))
    done = subprocess.run([str(ROOT / "scripts" / script[0]), *script[1:]], capture_output=True, text=True, check=False,
                          env=env, timeout=60)
    assert done.returncode != 0 and "is a symlink" in done.stderr and "refusing to use TFBOX_RUN" in done.stderr, done.stderr
    assert sorted(p.name for p in planted.rglob("*")) == ["keep", "x"]
