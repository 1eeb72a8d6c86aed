"""Scenario 4 (and the GPU-change preview of scenario 3): a saved notebook and the TensorBoard
logs survive a TensorBoard-only change (which must not even restart the notebook), a GPU change,
an image upgrade (a new digest pushed to the registry) and `destroy` followed by `up`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from tests.e2e.conftest import push_variant
from tests.e2e.harness import Docker, Jupyter, Project, free_port, gpu_ulimits_here, http_get

NOTEBOOK = "tfbox-e2e-keep.ipynb"
SOURCE = "print('my precious notebook')"
NB, TB = "tfbox-keep-notebook", "tfbox-keep-tensorboard"


@pytest.fixture(scope="module")
def lab(project: Project, docker_a: Docker, gpu_image: str, registry: str, password: str) -> Iterator[SimpleNamespace]:
    nb_port = free_port()
    stack = project.stack("keep", {
        "docker:host": docker_a.host,
        "docker:registryAuth": [{"address": f"http://{registry}", "authDisabled": True}],
        "tfbox:image": gpu_image, "tfbox:imageTrackRegistry": True,
        "tfbox:gpus": "0", "tfbox:notebookPort": nb_port, "tfbox:tensorboardPort": free_port(), **gpu_ulimits_here(),
    }, password)
    stack.up()
    session = Jupyter(f"http://127.0.0.1:{nb_port}")
    assert session.login(password)
    session.save_notebook(NOTEBOOK, SOURCE)
    result = session.execute("import os; os.makedirs('/tf/logs/keep', exist_ok=True); open('/tf/logs/keep/marker', 'w').write('42')")
    assert not result["error"], result["error"]
    yield SimpleNamespace(stack=stack, docker=docker_a, password=password, url=f"http://127.0.0.1:{nb_port}")
    stack.destroy(check=False)
    for vol in ("tfbox-keep-notebooks", "tfbox-keep-logs"):
        docker_a("volume", "rm", vol, check=False)


def user_data_is_there(lab: SimpleNamespace) -> None:
    session = Jupyter(lab.url)
    assert session.login(lab.password)
    assert session.read_notebook_source(NOTEBOOK) == SOURCE, "the saved notebook is gone"
    assert lab.docker("exec", TB, "cat", "/tf/logs/keep/marker").stdout == "42", "the logs are gone"


def started(lab: SimpleNamespace, name: str) -> tuple[str, str]:
    info = lab.docker.inspect(name)
    assert info is not None
    return info["Id"], info["State"]["StartedAt"]


def steps(preview: dict[str, Any]) -> dict[str, str]:
    """URN name -> op for every step of a `pulumi preview --json` that is not 'same'."""
    out = {}
    for step in preview.get("steps", []):
        if step["op"] != "same":
            out[step["urn"].rsplit("::", 1)[1] + "/" + step["urn"].split("::")[2].rsplit("$", 1)[-1]] = step["op"]
    return out


def test_1_tensorboard_only_change_does_not_touch_the_notebook(lab: SimpleNamespace) -> None:
    before = started(lab, NB)
    tb_before = started(lab, TB)
    new_port = free_port()
    lab.stack.set("tensorboardPort", str(new_port))
    lab.stack.up()
    assert started(lab, NB) == before, "the notebook container was replaced or restarted"
    assert started(lab, TB)[0] != tb_before[0]
    status, _ = http_get(f"http://127.0.0.1:{new_port}/data/logdir")
    assert status == 200
    user_data_is_there(lab)


def test_2_gpu_change_replaces_only_the_notebook_and_its_ready_check(lab: SimpleNamespace) -> None:
    before_nb, before_tb = started(lab, NB), started(lab, TB)
    lab.stack.set("gpus", "0,1")
    ops = steps(lab.stack.preview_json())
    # the notebook, and the one-shot ready check that waits for every new notebook (nothing of TensorBoard)
    assert ops == {"notebook/docker:index/container:Container": "replace",
                   "ready/docker:index/container:Container": "replace"}, ops
    lab.stack.up()
    assert started(lab, NB)[0] != before_nb[0]
    assert started(lab, TB) == before_tb
    assert lab.docker.main_process_env(NB)["NVIDIA_VISIBLE_DEVICES"] == "0,1"
    user_data_is_there(lab)


def test_3_image_upgrade_keeps_user_data(lab: SimpleNamespace) -> None:
    old_image = lab.docker.inspect(NB)["Image"]
    variant = int(time.time())  # a digest this registry has never served
    push_variant(variant)
    ops = steps(lab.stack.preview_json())
    assert ops.get("image/docker:index/remoteImage:RemoteImage") == "replace", ops
    lab.stack.up()
    new_image = lab.docker.inspect(NB)["Image"]
    assert new_image != old_image, "the notebook still runs the old image"
    assert lab.docker("exec", NB, "cat", "/etc/tfbox-variant").stdout.strip() == str(variant)
    assert lab.stack.outputs()["imageDigest"].split("@")[1] in " ".join(
        json.loads(lab.docker("image", "inspect", new_image).stdout)[0]["RepoDigests"])
    user_data_is_there(lab)


def test_4_destroy_then_up_brings_the_notebooks_back(lab: SimpleNamespace) -> None:
    lab.stack.destroy()
    assert lab.docker.inspect(NB) is None and lab.docker.inspect(TB) is None
    volumes = lab.docker("volume", "ls", "--format", "{{.Name}}").stdout.split()
    assert {"tfbox-keep-notebooks", "tfbox-keep-logs"} <= set(volumes), "destroy deleted the user's volumes"
    assert any("tensorflow" in line for line in lab.docker("images", "--format", "{{.Repository}}").stdout.split()), \
        "destroy deleted the multi-GB image despite keepImage"
    lab.stack.up()
    user_data_is_there(lab)
