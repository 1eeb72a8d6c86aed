"""Issue 17: an existing lab upgrades with nothing replaced.

The release before the model/backend restructure (`BEFORE`, checked out from git into a temporary
directory) deploys a single-seat stack and a two-seat GPU stack on docker_a, and a notebook is saved in
each seat; then this version, on the same state, previews with `--expect-no-changes` and runs `up`: no
resource is created, replaced or deleted, every container keeps its id, and the saved notebooks are
still there. A resource whose type, name or parent moved without an alias would show here as a
create plus a delete, which is a new notebook container for a user.
"""

from __future__ import annotations

import copy
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.e2e.harness import ROOT, Docker, Jupyter, Project, Stack, change_summary, free_port, gpu_ulimits_here

# The last release before issue 17's restructure (stop 24 on main). Bump it when a later restructure
# needs the same proof against the release just before it.
BEFORE = "e6d7b93"
SINGLE, SEATS = "upgrade-one", "upgrade-seats"


def old_release(workdir: Path) -> Path:
    """The project at BEFORE, as a user's checkout of that release: its files, the dev venv beside it."""
    have = subprocess.run(["git", "cat-file", "-e", f"{BEFORE}^{{commit}}"], cwd=ROOT, capture_output=True, check=False)
    assert have.returncode == 0, (f"commit {BEFORE} (the release before the restructure) is not in this clone's history; "
                                  "the upgrade test needs a full clone (not `--depth`)")
    archive = subprocess.run(["git", "archive", "--format=tar", BEFORE], cwd=ROOT, capture_output=True, check=True).stdout
    target = workdir / "before"
    target.mkdir()
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    (target / ".venv").symlink_to(ROOT / ".venv")
    (target / "policy" / ".venv").symlink_to(ROOT / ".venv")
    return target


def container_ids(docker: Docker, stack: str) -> dict[str, str]:
    listing = docker("ps", "-a", "--filter", f"label=tfbox.stack={stack}", "--format", "{{.Names}} {{.ID}}").stdout
    return dict(line.split(" ", 1) for line in listing.splitlines())


@pytest.fixture(scope="module")
def upgraded(project: Project, docker_a: Docker, cpu_image: str, gpu_image: str, password: str,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    # `before` runs the old release's program on this module's state backend and PULUMI_HOME
    before = copy.copy(project)
    before.dir = old_release(tmp_path_factory.mktemp("upgrade"))
    single_port, single_tb = free_port(), free_port()
    single = before.stack(SINGLE, {
        "docker:host": docker_a.host, "tfbox:image": cpu_image, "tfbox:tensorboardProxy": True,
        "tfbox:notebookPort": single_port, "tfbox:tensorboardPort": single_tb,
    }, password)
    seat_ports = {seat: (free_port(), free_port()) for seat in "ab"}
    seats = before.stack(SEATS, {
        "docker:host": docker_a.host, "tfbox:image": gpu_image, "tfbox:gpuCheck": True, "tfbox:tensorboardProxy": True,
        "tfbox:passwordSalt": secrets.token_hex(16), **gpu_ulimits_here(),
        "tfbox:seats": [{"name": seat, "gpus": str(i), "notebookPort": seat_ports[seat][0],
                         "tensorboardPort": seat_ports[seat][1]} for i, seat in enumerate("ab")],
    }, None)
    passwords = {seat: f"seat-{seat}-" + secrets.token_urlsafe(12) for seat in "ab"}
    for seat, pw in passwords.items():
        before.pulumi("config", "set", "--secret", "--path", f"tfbox:passwords.{seat}", "--stack", SEATS, input=pw)
    procs = [before.start("pulumi", "--non-interactive", "up", "--yes", "--skip-preview", "--stack", old.name)
             for old in (single, seats)]
    for proc, old in zip(procs, (single, seats), strict=True):
        out = before.finish(proc, f"pulumi up --stack {old.name}  # release {BEFORE}")
        assert proc.returncode == 0, f"the old release's up of {old.name} failed:\n{out[-4000:]}"
    urls = {SINGLE: (f"http://127.0.0.1:{single_port}", password),
            **{f"{SEATS}/{seat}": (f"http://127.0.0.1:{seat_ports[seat][0]}", passwords[seat]) for seat in "ab"}}
    for where, (url, pw) in urls.items():
        session = Jupyter(url)
        assert session.login(pw), f"{where}: the old release's notebook did not log in"
        session.save_notebook("before-upgrade.ipynb", f"print('{where}')")
    ids = {st: container_ids(docker_a, st) for st in (SINGLE, SEATS)}
    # this version on the same state: the stack files (secrets included) as the user's checkout has them
    for st in (SINGLE, SEATS):
        (project.dir / f"Pulumi.{st}.yaml").write_text((before.dir / f"Pulumi.{st}.yaml").read_text())
    yield SimpleNamespace(stacks={SINGLE: Stack(project, SINGLE), SEATS: Stack(project, SEATS)}, docker=docker_a,
                          ids=ids, urls=urls)
    # both at once: a destroy mostly waits for containers to stop
    for proc in [project.start("pulumi", "--non-interactive", "destroy", "--yes", "--stack", st) for st in (SINGLE, SEATS)]:
        project.finish(proc, "pulumi destroy  # upgrade test teardown")
    for vol in docker_a("volume", "ls", "--format", "{{.Name}}").stdout.split():
        if vol.startswith((f"tfbox-{SINGLE}-", f"tfbox-{SEATS}-")):
            docker_a("volume", "rm", vol, check=False)


@pytest.mark.parametrize("stack", [SINGLE, SEATS])
def test_1_this_version_previews_no_change_on_the_old_releases_state(upgraded: SimpleNamespace, stack: str) -> None:
    preview = upgraded.stacks[stack].preview("--expect-no-changes", "--diff", check=False)
    assert preview.returncode == 0, f"{stack}: this version would change the old release's lab:\n{preview.output[-6000:]}"


@pytest.mark.parametrize("stack", [SINGLE, SEATS])
def test_2_up_replaces_nothing_and_the_containers_are_the_same(upgraded: SimpleNamespace, stack: str) -> None:
    run = upgraded.stacks[stack].up()
    assert change_summary(run.output) == {}, f"{stack}: up after the upgrade changed resources:\n{run.output[-4000:]}"
    assert container_ids(upgraded.docker, stack) == upgraded.ids[stack], f"{stack}: a container was replaced"
    outputs = upgraded.stacks[stack].outputs()
    assert outputs["notebookUrl"], outputs
    if stack == SEATS:
        assert set(outputs["seats"]) == {"a", "b"} and outputs["gpuLedger"], outputs


def test_3_the_notebooks_saved_before_the_upgrade_are_still_there(upgraded: SimpleNamespace) -> None:
    for where, (url, pw) in upgraded.urls.items():
        session = Jupyter(url)
        assert session.login(pw), f"{where}: the password no longer logs in after the upgrade"
        assert session.read_notebook_source("before-upgrade.ipynb") == f"print('{where}')", where
