"""bench/k8s_apply.py's kubectl side applies what the program declares: the manifests come from the real
`__main__.py` under Pulumi's mocks, secrets resolved, namespace first, the same for the same config (so a
second apply is a no-op), and are written where only their owner can read them. The e2e smoke run
(tests/e2e/test_bench_smoke.py) applies them to the test kit's cluster and compares the live objects."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from bench.k8s_apply import differences, manifests, settled, write_private

PASSWORDS = {"s0": "bench-password-zero-0123", "s1": "bench-password-one-45678"}


def config(**extra: Any) -> dict[str, Any]:
    return {"tfbox:backend": "kubernetes", "kubernetes:kubeconfig": "/nonexistent", "tfbox:image": "registry/tf:jupyter",
            "tfbox:passwordSalt": "0123456789abcdef0123456789abcdef", "tfbox:keepVolumes": False,
            "tfbox:seats": [{"name": s, "gpus": "none", "notebookPort": 8800 + i, "tensorboardPort": 6600 + i}
                            for i, s in enumerate(PASSWORDS)],
            "tfbox:passwords": PASSWORDS, **extra}


def by_kind(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d)
    return out


@pytest.fixture(scope="module")
def two_seats() -> list[dict[str, Any]]:
    return manifests(config(), "kb2")


def test_the_manifests_are_the_programs_objects_with_the_secrets_resolved(two_seats: list[dict[str, Any]]) -> None:
    docs = two_seats
    assert docs[0] == {"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": "tfbox-kb2", "labels": {"tfbox.project": "tfbox", "tfbox.stack": "kb2"}}}
    kinds = by_kind(docs)
    assert {k: len(v) for k, v in kinds.items()} == {"Namespace": 1, "PersistentVolumeClaim": 4, "Secret": 2, "ConfigMap": 2,
                                                      "StatefulSet": 2, "Deployment": 2, "Service": 4, "NetworkPolicy": 4}
    assert all(d["metadata"]["namespace"] == "tfbox-kb2" for d in docs[1:])
    for secret in kinds["Secret"]:
        hashed = json.loads(secret["stringData"]["etc.jupyter.jupyter_server_config.json"])["PasswordIdentityProvider"]["hashed_password"]
        assert hashed.startswith("argon2:$argon2id$")
    text = json.dumps(docs)
    assert not any(p in text for p in PASSWORDS.values())  # the hash, never the password
    sts = {s["metadata"]["name"]: s for s in kinds["StatefulSet"]}
    template = sts["tfbox-kb2-s1-notebook"]["spec"]["template"]
    assert len(template["metadata"]["annotations"]["tfbox.config-checksum"]) == 64
    assert [c["name"] for c in template["spec"]["containers"]] == ["notebook"]
    tb = {d["metadata"]["name"]: d for d in kinds["Deployment"]}["tfbox-kb2-s1-tensorboard"]
    assert [c["name"] for c in tb["spec"]["template"]["spec"]["containers"]] == ["tensorboard"]


def test_the_same_config_gives_the_same_manifests_and_the_proxy_names_the_namespace(two_seats: list[dict[str, Any]]) -> None:
    assert manifests(config(), "kb2") == two_seats  # the hash is salted by the stack's salt, not at random
    # the notebook's proxy names TensorBoard's Service in its namespace: the kubectl side's manifests are made for
    # the namespace each run uses, as tfbox's are
    moved = manifests(config(**{"tfbox:namespace": "kb2-kubectl-0", "tfbox:tensorboardProxy": True}), "kb2")
    files = next(d for d in moved if d["kind"] == "ConfigMap")["data"]["etc.jupyter.jupyter_server_config.py"]
    assert "tfbox-kb2-s0-tensorboard.kb2-kubectl-0.svc:6006" in files


def test_tensorboard_off_drops_the_tensorboard_objects_and_nothing_of_the_notebooks(two_seats: list[dict[str, Any]]) -> None:
    off = manifests(config(**{"tfbox:tensorboardMode": "off", "tfbox:tensorboardProxy": True}), "kb2")
    on = manifests(config(**{"tfbox:tensorboardProxy": True}), "kb2")
    assert off == [d for d in on if d["metadata"]["labels"].get("tfbox.role") != "tensorboard"]
    assert len(on) - len(off) == 6  # per seat a Deployment, a Service and a NetworkPolicy
    assert differences({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == ["c: only on the kubectl side", "b: differs"]


def test_settled_means_every_notebook_and_tensorboard_ready_or_tensorboard_gone() -> None:
    claims = {"a": "Bound", "b": "Bound"}
    both = {"u1": ("notebook", True), "u2": ("tensorboard", True)}
    assert settled(both, claims, 1, tensorboard=True) and not settled(both, claims, 1, tensorboard=False)
    assert not settled({**both, "u2": ("tensorboard", False)}, claims, 1, tensorboard=True)
    assert settled({"u1": ("notebook", True)}, claims, 1, tensorboard=False)
    assert not settled({"u1": ("notebook", True)}, {"a": "Bound", "b": "Pending"}, 1, tensorboard=False)


def test_the_manifest_file_is_private(tmp_path: Path) -> None:
    path = write_private(tmp_path, "m.yaml", [{"kind": "Secret", "stringData": {"k": "v"}}])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
