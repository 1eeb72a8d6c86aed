"""The README's deploy command: `make up` runs scripts/up.sh, which deploys the dev stack with
its state in the project's own `.state/`, a generated secrets passphrase (mode 600) and a
generated notebook password that `make password` prints and that logs in; on a dev stack with a seat,
the seat's generated password, which `make password SEAT=…` prints."""

from __future__ import annotations

import stat
import subprocess
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import yaml

from tests.e2e.harness import Docker, Jupyter, Project, Result, change_summary, free_port, http_get

URL = "http://127.0.0.1:8888"  # the dev stack's default ports, reserved for this test
TB_URL = "http://127.0.0.1:6006"
NB, TB = "tfbox-dev-notebook", "tfbox-dev-tensorboard"


def up_sh(lab: SimpleNamespace, *args: str, check: bool = True) -> Result:
    """scripts/up.sh as a user runs it after `eval "$(scripts/local-docker.sh)"`: DOCKER_HOST and
    TFBOX_IMAGE set, no backend or passphrase of their own (set but empty, as in many shells)."""
    project: Project = lab.project
    return project.run("scripts/up.sh", *args, check=check, timeout=900, env={
        "DOCKER_HOST": lab.docker.host, "TFBOX_IMAGE": lab.image, "PULUMI_CONFIG_PASSPHRASE": "", "PULUMI_BACKEND_URL": "",
    })


def status_or_none(url: str) -> int | None:
    try:
        return http_get(url, timeout=3)[0]
    except OSError:
        return None


@pytest.fixture(scope="module")
def lab(project: Project, docker_a: Docker, cpu_image: str) -> Iterator[SimpleNamespace]:
    for url in (URL, TB_URL):  # something else on the dev ports would make this test lie
        assert status_or_none(url) is None, f"{url} is already taken"
    lab = SimpleNamespace(project=project, docker=docker_a, image=cpu_image, state=project.dir / ".state")
    lab.deployed = up_sh(lab)
    lab.password = up_sh(lab, "dev", "--password").stdout.strip()
    yield lab
    up_sh(lab, "dev", "--destroy", check=False)
    for vol in ("tfbox-dev-notebooks", "tfbox-dev-logs"):
        docker_a("volume", "rm", vol, check=False)


def test_1_deploys_the_dev_stack_and_prints_its_url(lab: SimpleNamespace) -> None:
    assert f"Notebook: {URL}/" in lab.deployed.stdout, lab.deployed.output[-3000:]
    for name in (NB, TB):
        info = lab.docker.inspect(name)
        assert info is not None and info["State"]["Running"], f"{name} is not running"
        assert info["State"]["Health"]["Status"] in ("starting", "healthy")  # a probe every 30 s; `up` waited for answers
        assert info["Config"]["Labels"]["tfbox.stack"] == "dev"
    assert http_get(URL + "/api")[0] == 200
    assert http_get(TB_URL + "/data/logdir")[0] == 200
    # a stack `make up` makes is a new one: TensorBoard behind the notebook's login is on (issue 19)
    assert yaml.safe_load((lab.project.dir / "Pulumi.dev.yaml").read_text())["config"]["tfbox:tensorboardProxy"] in (True, "true")
    assert f"TensorBoard: {URL}/tensorboard/   (behind the notebook's login)" in lab.deployed.stdout
    assert Jupyter(URL).request("GET", "/tensorboard/data/logdir")[0] == 302, "anonymous: to the login page"
    # the state is the project's own .state/, not the test harness's backend
    assert (lab.state / ".pulumi" / "stacks" / "tfbox" / "dev.json").is_file()
    assert not (lab.project.state / ".pulumi" / "stacks" / "tfbox" / "dev.json").exists()


def test_2_the_generated_password_logs_in(lab: SimpleNamespace) -> None:
    assert len(lab.password) >= 16, f"weak or missing password: {lab.password!r}"
    session = Jupyter(URL)
    assert session.login(lab.password)
    assert session.request("GET", "/tensorboard/data/logdir") == (200, {"logdir": "/tf/logs"})
    assert not Jupyter(URL).login(lab.password[:-1])
    assert lab.password not in lab.deployed.output, "make up printed the password"
    stack_file = (lab.project.dir / "Pulumi.dev.yaml").read_text()
    assert "secure:" in stack_file and lab.password not in stack_file


def test_3_the_passphrase_is_private_and_is_what_encrypts_the_secrets(lab: SimpleNamespace) -> None:
    passphrase = lab.state / "passphrase"
    assert stat.S_IMODE(passphrase.stat().st_mode) == 0o600
    assert len(passphrase.read_text().strip()) >= 32
    # plain `pulumi` as docs/troubleshooting.md says: only the file, no PULUMI_CONFIG_PASSPHRASE
    env = {k: v for k, v in lab.project.env.items() if k != "PULUMI_CONFIG_PASSPHRASE"}
    env.update(PULUMI_CONFIG_PASSPHRASE_FILE=str(passphrase), PULUMI_BACKEND_URL=f"file://{lab.state}")
    p = subprocess.run(["pulumi", "--non-interactive", "config", "get", "tfbox:password", "--stack", "dev"],
                       cwd=lab.project.dir, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 0 and p.stdout.strip() == lab.password, \
        f"the dev stack's secrets are not encrypted with .state/passphrase: {p.stderr.strip()}"


def test_4_a_second_make_up_changes_nothing(lab: SimpleNamespace) -> None:
    before = {n: lab.docker.inspect(n)["Id"] for n in (NB, TB)}
    again = up_sh(lab)
    assert not change_summary(again.output), again.output[-3000:]
    assert "unchanged" in again.output
    assert {n: lab.docker.inspect(n)["Id"] for n in (NB, TB)} == before


def test_5_destroy_removes_the_containers_and_keeps_the_notebooks(lab: SimpleNamespace) -> None:
    up_sh(lab, "dev", "--destroy")
    assert lab.docker.inspect(NB) is None and lab.docker.inspect(TB) is None
    volumes = lab.docker("volume", "ls", "--format", "{{.Name}}").stdout.split()
    assert {"tfbox-dev-notebooks", "tfbox-dev-logs"} <= set(volumes)
    assert status_or_none(URL + "/api") is None



def test_6_make_up_gives_a_dev_seat_its_password_and_make_password_prints_it(lab: SimpleNamespace) -> None:
    # the dev stack turned into a one-seat box, as a user edits Pulumi.dev.yaml (the lab is destroyed by test 5)
    nb_port, tb_port = free_port(), free_port()
    stack_file = lab.project.dir / "Pulumi.dev.yaml"
    config = yaml.safe_load(stack_file.read_text())
    config["config"].pop("tfbox:password")  # refused on a stack with seats: each seat has its own
    config["config"]["tfbox:seats"] = [{"name": "alice", "gpus": "none", "notebookPort": nb_port, "tensorboardPort": tb_port}]
    stack_file.write_text(yaml.safe_dump(config))
    try:
        deployed = up_sh(lab)
        assert "generated a password for seat alice" in deployed.stderr, deployed.output[-3000:]
        assert f"Notebooks: alice=http://127.0.0.1:{nb_port}/" in deployed.stdout, deployed.output[-3000:]
        seat_password = up_sh(lab, "dev", "--password", "alice").stdout.strip()
        assert len(seat_password) >= 16 and seat_password != lab.password
        assert seat_password not in deployed.output and seat_password not in stack_file.read_text()
        assert Jupyter(f"http://127.0.0.1:{nb_port}").login(seat_password)
        assert not Jupyter(f"http://127.0.0.1:{nb_port}").login(lab.password)
        # `make password` without SEAT on a seats stack says which seats there are
        bare = up_sh(lab, "dev", "--password", check=False)
        assert bare.returncode == 1 and "SEAT=<seat>" in bare.stderr and "alice" in bare.stderr, bare.output
        assert not change_summary(up_sh(lab).output)  # and the next `make up` keeps that password
        assert Jupyter(f"http://127.0.0.1:{nb_port}").login(seat_password)
    finally:
        up_sh(lab, "dev", "--destroy", check=False)
        for vol in ("tfbox-dev-alice-notebooks", "tfbox-dev-alice-logs"):
            lab.docker("volume", "rm", vol, check=False)
