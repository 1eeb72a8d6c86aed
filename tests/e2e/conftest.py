"""Fixtures for the real-engine tests: Docker daemons, the local registry's image, a project copy.

scripts/test.sh prepares the toolchain, the registry and the image, then sets TFBOX_E2E=1.
Without that these tests are skipped with the reason in pytest's summary; in CI (CI=true)
they fail instead, and tests/conftest.py turns any skipped test in CI into a red run.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.boxes import Box, SshClient, reset_box, start_boxes, stop_boxes
from tests.e2e.harness import ROOT, Docker, Project

READY = os.environ.get("TFBOX_E2E") == "1"
IN_CI = os.environ.get("CI") == "true"
NOT_READY = "real-engine prerequisites not prepared: run `make test` as root (scripts/test.sh prepares them)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)
            if not READY and not IN_CI:
                item.add_marker(pytest.mark.skip(reason=NOT_READY))


PLUGIN_PROCESSES = ("pulumi-language-python", "pulumi-resource-docker")


def pulumi_plugins_under(base: Path) -> list[str]:
    """Language hosts and docker providers still running for a CLI of this session: their PULUMI_HOME
    (inherited from the CLI) is under pytest's base temp dir, so other sessions' runs do not count."""
    left = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            if not any(Path(arg.decode(errors="replace")).name in PLUGIN_PROCESSES for arg in cmdline[:1]):
                continue
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        home = next((e.split(b"=", 1)[1].decode(errors="replace") for e in env if e.startswith(b"PULUMI_HOME=")), "")
        if home.startswith(str(base)):
            ppid = (proc / "stat").read_text().rsplit(")", 1)[1].split()[1]
            left.append(f"pid {proc.name} (parent {ppid}): {b' '.join(cmdline).decode(errors='replace')[:200]}")
    return left


@pytest.fixture(scope="session", autouse=True)
def _no_plugin_left_running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the session, no language host or provider of ours may still run (orphans pile up on a CI box)."""
    yield
    if not READY:
        return
    base = tmp_path_factory.getbasetemp()
    deadline = time.monotonic() + 10  # a CLI that just exited may still be reaping its plugins
    while (left := pulumi_plugins_under(base)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, "Pulumi plugin processes outlived their CLI:\n" + "\n".join(left)


@pytest.fixture(autouse=True)
def _require_prepared() -> None:
    if not READY:
        pytest.fail(f"CI: {NOT_READY}")


def start_daemon(name: str, env: dict[str, str] | None = None) -> Docker:
    """A daemon with nothing on it: whatever an interrupted earlier run left is purged first.
    `env` reaches scripts/dockerd.sh (e.g. TFBOX_NVIDIA_CUDA for an older stand-in driver)."""
    stop_daemon(name)
    done = subprocess.run([str(ROOT / "scripts" / "dockerd.sh"), "start", name], capture_output=True, text=True, check=False,
                          env={**os.environ, **(env or {})})
    if done.returncode != 0:  # say why: the daemon's log tail is on stderr
        raise RuntimeError(f"scripts/dockerd.sh start {name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    out = done.stdout
    host = next(line.split("=", 1)[1] for line in out.splitlines() if line.startswith("DOCKER_HOST="))
    return Docker(host)


def stop_daemon(name: str, purge: bool = True) -> None:
    subprocess.run([str(ROOT / "scripts" / "dockerd.sh"), "purge" if purge else "stop", name], capture_output=True, check=False)


@pytest.fixture(scope="session")
def docker_a() -> Iterator[Docker]:
    """The main test machine: a private dockerd with the NVIDIA stand-ins."""
    docker = start_daemon("e2e-a")
    yield docker
    stop_daemon("e2e-a")


@pytest.fixture(scope="session")
def docker_b() -> Iterator[Docker]:
    """A second machine for the two-machine and daemon-restart tests."""
    docker = start_daemon("e2e-b")
    yield docker
    stop_daemon("e2e-b")


@pytest.fixture(scope="session")
def _ssh_box_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[Box], SshClient]]:
    """The two SSH boxes of the session: a box's start, its first pull of the 2 GB notebook image and its
    purge (a minute or more each) are paid once, not by every module that uses the boxes."""
    boxes, client = start_boxes(["ssh-a", "ssh-b"], tmp_path_factory.mktemp("ssh"))
    yield boxes, client
    stop_boxes(boxes)


@pytest.fixture(scope="module")
def ssh_boxes(_ssh_box_pair: tuple[list[Box], SshClient]) -> tuple[list[Box], SshClient]:
    """Two SSH boxes (scripts/box.sh: own address, dockerd with iptables, sshd on :22) and one client
    (key, known_hosts, ssh_config) for both; stacks use `box.ssh_host()` and `client.ssh_opts` as
    `docker:host` and `docker:sshOpts`. Shared by the session's modules, each of which gets them as
    fresh boxes but for the images already pulled (`reset_box`: Docker running, no containers, networks
    or volumes of another module), whatever order the modules run in. tests/e2e/boxes.py has the API."""
    boxes, client = _ssh_box_pair
    for box in boxes:
        reset_box(box)
    return boxes, client


@pytest.fixture(scope="session")
def registry() -> str:
    return os.environ.get("TFBOX_E2E_REGISTRY", "127.0.0.1:5000")


@pytest.fixture(scope="session")
def cpu_image(registry: str) -> str:
    return f"{registry}/tensorflow/tensorflow:latest-jupyter"


@pytest.fixture(scope="session")
def gpu_image(registry: str) -> str:
    return f"{registry}/tensorflow/tensorflow:latest-gpu-jupyter"


@pytest.fixture(scope="session")
def password() -> str:
    # generated per run; the secrets test searches every output for it
    return "tfbox-" + secrets.token_urlsafe(12)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return Project(tmp_path_factory.mktemp("e2e"), os.environ.get("TFBOX_TOOLCHAIN_BIN", ""))


def push_variant(n: int) -> str:
    """Push a new digest of the notebook image under the same tags (the 'image upgrade')."""
    env = {**os.environ, "DOCKER_HOST": os.environ["TFBOX_E2E_BUILD_HOST"]}
    out = subprocess.run([str(ROOT / "scripts" / "tf-image.sh"), "--push", os.environ["TFBOX_E2E_REGISTRY"], "--variant", str(n)],
                         env=env, capture_output=True, text=True, check=True).stdout
    return out


@pytest.fixture(scope="session")
def k8s_kit() -> Path:
    """The Kubernetes test kit's binaries (toolchain/k8s.sh; scripts/test.sh exports TFBOX_K8S_BIN)."""
    from tests.e2e.k8s import NOT_BUILT, k8s_bin
    found = k8s_bin()
    if found is None:
        if IN_CI:
            pytest.fail(f"CI: {NOT_BUILT}")
        pytest.skip(NOT_BUILT)
    return found


__all__ = ["Path", "push_variant", "start_daemon", "stop_daemon"]
