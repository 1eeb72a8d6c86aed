"""Issue 10: a lab on a current Docker, not only on the suite's Debian 12 Docker 20.10 (API 1.41).

Users' hosts mostly run Docker 25 or later (API 1.44+), whose API fills in fields the older one leaves
empty, and the docker provider negotiates the newer API with it. Here Debian 13's dockerd 26
(scripts/docker-next.sh, run by scripts/dockerd.sh with the host's containerd and runc) serves a lab:
`up` returns when both services answer, the password is the only way in, a second `up` and a
refreshed preview change nothing, and `destroy` keeps the notebooks volume.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from tests.e2e.conftest import start_daemon, stop_daemon
from tests.e2e.harness import ROOT, Docker, Jupyter, Project, http_get

DAEMON = "e2e-next"


@pytest.fixture(scope="module")
def newer() -> Iterator[Docker]:
    fetched = subprocess.run([str(ROOT / "scripts" / "docker-next.sh")], capture_output=True, text=True, check=False, timeout=600)
    if fetched.returncode != 0:
        raise RuntimeError(f"scripts/docker-next.sh failed ({fetched.returncode}):\n{fetched.stderr[-3000:]}")
    docker = start_daemon(DAEMON, {"TFBOX_DOCKERD_BIN": fetched.stdout.strip().splitlines()[-1]})
    yield docker
    stop_daemon(DAEMON)


@pytest.fixture(scope="module")
def lab(project: Project, newer: Docker, cpu_image: str, password: str) -> Iterator[SimpleNamespace]:
    stack, nb, tb = project.lab("next", newer.host, cpu_image, password)
    answered = {"notebook": http_get(nb + "/api", timeout=5)[0], "tensorboard": http_get(tb + "/data/logdir", timeout=5)[0]}
    yield SimpleNamespace(stack=stack, docker=newer, nb=nb, tb=tb, answered=answered)
    stack.destroy(check=False)


def test_the_daemon_speaks_api_1_44_or_later(newer: Docker) -> None:
    api = newer("version", "--format", "{{.Server.APIVersion}}").stdout.strip()
    assert tuple(int(part) for part in api.split(".")) >= (1, 44), f"Docker API {api}: not a current Docker"


def test_up_returns_when_the_lab_answers_and_only_the_password_lets_in(lab: SimpleNamespace, password: str) -> None:
    assert lab.answered == {"notebook": 200, "tensorboard": 200}, "pulumi up returned before the lab answered"
    assert http_get(lab.nb + "/api/contents")[0] == 403
    assert not Jupyter(lab.nb).login("not-the-password")
    session = Jupyter(lab.nb)
    assert session.login(password)
    assert session.request("PUT", "/api/contents/kept.ipynb", {"type": "notebook", "content": {
        "cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}})[0] in (200, 201)


def test_a_second_up_and_a_refreshed_preview_change_nothing(lab: SimpleNamespace) -> None:
    names = ("tfbox-next-notebook", "tfbox-next-tensorboard", "tfbox-next-ready")
    before = {n: lab.docker.inspect(n)["Id"] for n in names}
    lab.stack.up("--expect-no-changes")
    # what the newer API reports back must match what was declared, or every refresh would show drift
    lab.stack.preview("--refresh", "--expect-no-changes")
    assert {n: lab.docker.inspect(n)["Id"] for n in names} == before


def test_destroy_keeps_the_notebooks(lab: SimpleNamespace, cpu_image: str) -> None:
    lab.stack.destroy()
    assert lab.docker.inspect("tfbox-next-notebook") is None
    volumes = lab.docker("volume", "ls", "--format", "{{.Name}}").stdout.split()
    assert "tfbox-next-notebooks" in volumes, volumes
    listed = lab.docker("run", "--rm", "-v", "tfbox-next-notebooks:/tf", "--entrypoint", "ls",
                        cpu_image, "/tf", check=False)
    assert "kept.ipynb" in listed.stdout, listed.stdout + listed.stderr
