"""Scenario 1 and 7: `up` from nothing converges, the notebook is password-only, a second
`up` changes nothing, and the password is in plaintext nowhere."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from tests.e2e.harness import Docker, Jupyter, Project, change_summary, http_get


@pytest.fixture(scope="module")
def lab(project: Project, docker_a: Docker, cpu_image: str, password: str) -> Iterator[SimpleNamespace]:
    stack, nb, tb = project.lab("converge", docker_a.host, cpu_image, password)
    # the moment `up` returned: both must answer already, not a poll later
    answered = {"notebook": http_get(nb + "/api", timeout=5)[0], "tensorboard": http_get(tb + "/data/logdir", timeout=5)[0]}
    yield SimpleNamespace(stack=stack, docker=docker_a, nb=nb, tb=tb, answered=answered, up_output=project.transcript[-1])
    stack.destroy(check=False)


def test_up_returns_when_the_lab_answers(lab: SimpleNamespace) -> None:
    assert lab.answered == {"notebook": 200, "tensorboard": 200}, "pulumi up returned before the lab answered"
    ready = lab.docker.inspect("tfbox-converge-ready")
    assert ready is not None and ready["State"]["ExitCode"] == 0 and not ready["State"]["Running"]
    assert lab.docker("logs", "tfbox-converge-ready").stdout.strip() == "ready"


def test_cli_prints_no_provider_warning(lab: SimpleNamespace) -> None:
    # the built provider is taken from the plugin cache (toolchain/register-provider.sh), not from $PATH
    assert "Resources:" in lab.up_output
    assert "from $PATH" not in lab.up_output and "pulumi-resource-docker" not in lab.up_output, lab.up_output[-2000:]


def test_up_from_nothing_creates_a_healthy_lab(lab: SimpleNamespace, cpu_image: str) -> None:
    outputs = lab.stack.outputs()
    assert outputs["notebookUrl"] == lab.nb + "/"
    assert outputs["tensorboardUrl"] == lab.tb + "/"
    assert outputs["containerNames"] == ["tfbox-converge-notebook", "tfbox-converge-tensorboard", "tfbox-converge-ready"]
    for name in outputs["containerNames"][:2]:
        info = lab.docker.inspect(name)
        assert info is not None and info["State"]["Running"]
        assert info["HostConfig"]["RestartPolicy"]["Name"] == "always"
        # the health check is there for `docker ps`; a probe every 30 s, in bash (bench/probe_cost.py)
        assert info["Config"]["Healthcheck"]["Interval"] == 30 * 10**9
        assert info["Config"]["Healthcheck"]["Test"][:2] == ["CMD", "bash"]
    # the image really came from the registry: its repo digest is the registry's
    assert outputs["imageDigest"].startswith(cpu_image.rsplit(":", 1)[0] + "@sha256:")
    image = json.loads(lab.docker("image", "inspect", cpu_image).stdout)[0]
    assert outputs["imageDigest"] in image["RepoDigests"]
    assert lab.docker.inspect("tfbox-converge-notebook")["Image"] == image["Id"]


def test_notebook_refuses_anyone_without_the_password(lab: SimpleNamespace, password: str) -> None:
    status, _ = http_get(lab.nb + "/api/contents")
    assert status == 403, "unauthenticated API call must be refused"
    status, _ = http_get(lab.nb + "/api/kernels")
    assert status == 403
    status, _ = http_get(lab.nb + "/?token=")
    assert status in (302, 403) or b"password" in _.lower()
    assert not Jupyter(lab.nb).login("not-the-password")
    assert not Jupyter(lab.nb).login("")


def test_notebook_accepts_the_configured_password(lab: SimpleNamespace, password: str) -> None:
    session = Jupyter(lab.nb)
    assert session.login(password)
    status, body = session.request("GET", "/api/contents")
    assert status == 200 and body["type"] == "directory"
    status, body = session.request("GET", "/api/status")
    assert status == 200


def test_tensorboard_answers_on_its_port(lab: SimpleNamespace) -> None:
    status, body = http_get(lab.tb + "/data/logdir")
    assert status == 200
    assert json.loads(body)["logdir"] == "/tf/logs"


def test_second_up_changes_nothing(lab: SimpleNamespace) -> None:
    names = ("tfbox-converge-notebook", "tfbox-converge-tensorboard", "tfbox-converge-ready")
    before = {n: lab.docker.inspect(n)["Id"] for n in names}
    for run in (lab.stack.preview("--expect-no-changes"), lab.stack.up("--expect-no-changes")):
        assert "from $PATH" not in run.output, run.output[-2000:]
    after = {n: lab.docker.inspect(n)["Id"] for n in before}
    assert after == before


def test_a_tensorboard_replacement_is_waited_for(lab: SimpleNamespace) -> None:
    # a TensorBoard-only change replaces TensorBoard and the ready check, and `up` returns once it answers again
    nb_before = lab.docker.inspect("tfbox-converge-notebook")["Id"]
    resources = json.loads(lab.stack.export())["deployment"]["resources"]
    urn = next(r["urn"] for r in resources if r["type"] == "docker:index/container:Container" and r["urn"].endswith("::tensorboard"))
    replaced = lab.stack.up("--replace", urn)
    assert change_summary(replaced.output) == {"replaced": 2}, replaced.output[-3000:]  # TensorBoard and the ready check
    assert http_get(lab.tb + "/data/logdir", timeout=5)[0] == 200, "up returned before the new TensorBoard answered"
    assert lab.docker.inspect("tfbox-converge-notebook")["Id"] == nb_before, "the notebook was touched"
    lab.stack.preview("--expect-no-changes")


def test_password_is_in_plaintext_nowhere(lab: SimpleNamespace, project: Project, password: str) -> None:
    assert password not in lab.stack.export(), "pulumi stack export shows the password"
    for line in lab.docker("ps", "-a", "--format", "{{.Names}}").stdout.split():
        inspected = lab.docker("inspect", line).stdout
        assert password not in inspected, f"docker inspect {line} shows the password"
        assert "hashed_password" not in inspected
        assert "PASSWORD=" not in inspected
    assert password not in "\n".join(project.transcript), "the CLI printed the password"
    # only an explicit request shows it
    assert lab.stack.outputs(show_secrets=True)["password"] == password
    assert lab.stack.outputs()["password"] == "[secret]"
