"""Scenario 6: each class of invalid config fails at `preview` (and `up`) with the key named,
and the host is unchanged: containers, volumes and images compared before and after."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.e2e.harness import Docker, Project, free_port

CASES = [
    ("gpus", "0,,x", "tfbox:gpus"),
    ("notebookPort", "70000", "tfbox:notebookPort"),
    ("notebookPort", "eighty", "'notebookPort' must be of type 'integer'"),  # refused by Pulumi's typed config itself
    ("tensorboardPort", "SAME", "tfbox:tensorboardPort"),
    ("tensorboardMode", "sidecars", "tfbox:tensorboardMode"),
    ("gpuMode", "legacy", "tfbox:gpuMode"),
    ("image", "TensorFlow:Latest", "tfbox:image"),
    ("image", "CPU+GPUS", "tfbox:image"),
    ("tensorboardBind", "0.0.0.0", "tfbox:tensorboardBind"),
    ("gpu", "all", "tfbox:gpu"),
]


@pytest.fixture(scope="module")
def lab(project: Project, docker_a: Docker, cpu_image: str, password: str) -> Iterator[SimpleNamespace]:
    port = free_port()
    # `localhost` binds from the first up: Docker 20-28 would publish them on 0.0.0.0; tfbox hands it 127.0.0.1
    original = {"image": cpu_image, "notebookPort": str(port), "tensorboardPort": str(free_port()),
                "notebookBind": "localhost", "tensorboardBind": "localhost"}
    stack = project.stack("bad", {"docker:host": docker_a.host, **{f"tfbox:{k}": v for k, v in original.items()}}, password)
    stack.up()
    yield SimpleNamespace(stack=stack, docker=docker_a, port=port, image=cpu_image, original=original)
    stack.destroy(check=False)


@pytest.mark.parametrize(("key", "value", "named"), CASES, ids=[f"{c[0]}={c[1]}" for c in CASES])
def test_bad_value_is_refused_before_anything_changes(lab: SimpleNamespace, key: str, value: str, named: str) -> None:
    if value == "SAME":
        value = str(lab.port)
    if value == "CPU+GPUS":
        value = lab.image
        lab.stack.set("gpus", "all")
    before = lab.docker.snapshot()
    lab.stack.set(key, value)
    try:
        preview = lab.stack.preview(check=False)
        assert preview.returncode != 0
        assert named in preview.output, preview.output[-3000:]
        up = lab.stack.up(check=False)
        assert up.returncode != 0 and named in up.output
        assert lab.docker.snapshot() == before, "a refused config changed the host"
    finally:
        for k in {key, "gpus"}:
            if k in lab.original:
                lab.stack.set(k, lab.original[k])
            else:
                lab.stack.project.pulumi("config", "rm", f"tfbox:{k}", "--stack", lab.stack.name, check=False)
    lab.stack.preview("--expect-no-changes")


def test_missing_and_plaintext_password(project: Project, docker_a: Docker, cpu_image: str) -> None:
    before = docker_a.snapshot()
    stack = project.stack("nopass", {"docker:host": docker_a.host, "tfbox:image": cpu_image,
                                     "tfbox:notebookPort": free_port(), "tfbox:tensorboardPort": free_port()}, None)
    missing = stack.preview(check=False)
    assert missing.returncode != 0 and "tfbox:password" in missing.output and "--secret" in missing.output
    stack.project.pulumi("config", "set", "--plaintext", "tfbox:password", "plain-text-pw", "--stack", "nopass")
    plain = stack.preview(check=False)
    assert plain.returncode != 0 and "plaintext" in plain.output
    assert docker_a.snapshot() == before


# Every new refusal of issue 7 §5 in one config: one preview and one up report all of them at once.
ALL_AT_ONCE = {
    "tfbox:tensorboardBind": "gpu-box",  # Docker would publish a host name it cannot parse on 0.0.0.0
    "tfbox:image": "UPPER/case",
    "tfbox:notebooksHostPath": "/var/run",  # holds the Docker socket
    "tfbox:logsDir": "/etc/jupyter",  # over the uploaded Jupyter config
    "tfbox:tensorboardPort": "SAME",
    "docker:host": "tcp://127.0.0.1:2375",  # unauthenticated root API, config in cleartext
}
NAMED = ["tfbox:tensorboardBind", "tfbox:image", "tfbox:notebooksHostPath", "tfbox:logsDir", "tfbox:tensorboardPort",
         "tfbox:notebookPort", "docker:host", "6 problems"]


def test_every_unsafe_input_is_refused_at_once_before_anything_changes(lab: SimpleNamespace) -> None:
    before = lab.docker.snapshot()
    project, name = lab.stack.project, lab.stack.name
    for key, value in ALL_AT_ONCE.items():
        project.pulumi("config", "set", key, str(lab.port) if value == "SAME" else value, "--stack", name)
    try:
        for run in (lab.stack.preview, lab.stack.up):
            result = run(check=False)
            assert result.returncode != 0
            missing = [n for n in NAMED if n not in result.output]
            assert not missing, result.output[-4000:]
            assert "ssh://" in result.output and "docker:certPath" in result.output, "the tcp:// fix is spelled out"
        assert lab.docker.snapshot() == before, "a refused config changed the host"
    finally:
        lab.stack.set_docker_host(lab.docker.host)
        for key in ALL_AT_ONCE:
            short = key.removeprefix("tfbox:")
            if key.startswith("tfbox:") and short in lab.original:
                lab.stack.set(short, lab.original[short])
            elif key.startswith("tfbox:"):
                project.pulumi("config", "rm", key, "--stack", name, check=False)
    lab.stack.preview("--expect-no-changes")


def listening_addresses(port: int) -> set[str]:
    """Addresses the host listens on for TCP `port` (docker-proxy runs in the host's network namespace)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr_hex, port_hex = local.split(":")
            if state != "0A" or int(port_hex, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(addr_hex)
            # the kernel prints each 32-bit word in host (little-endian) order
            words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found.add(str(ipaddress.ip_address(words)))
    return found


def test_localhost_binds_listen_on_loopback_and_change_nothing(lab: SimpleNamespace) -> None:
    """The stack was brought up with `localhost` binds: both services listen on 127.0.0.1 only (not 0.0.0.0
    and [::] as Docker makes of `localhost`), and the next preview wants no change (no replacement)."""
    for role, port in (("notebook", lab.port), ("tensorboard", int(lab.original["tensorboardPort"]))):
        info = lab.docker.inspect(f"tfbox-bad-{role}")
        assert info is not None
        host_ips = {b["HostIp"] for bindings in info["NetworkSettings"]["Ports"].values() if bindings for b in bindings}
        assert host_ips == {"127.0.0.1"}, (role, info["NetworkSettings"]["Ports"])
        assert listening_addresses(port) == {"127.0.0.1"}, (role, port)
    lab.stack.preview("--expect-no-changes")
