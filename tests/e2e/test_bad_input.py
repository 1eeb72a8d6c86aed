"""Scenario 6: each class of invalid config fails at `preview` (and `up`) with the key named,
and the host is unchanged: containers, volumes and images compared before and after."""

from __future__ import annotations

from collections.abc import Iterator
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
    original = {"image": cpu_image, "notebookPort": str(port), "tensorboardPort": str(free_port())}
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
