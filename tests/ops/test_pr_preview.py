"""The PR preview comments and verdicts (ops/preview_comment.py, ops/pr_preview.py, ops/deploy_check.py).

The CLI outputs below are the shapes pulumi 3.260.0 prints (Resources: counts, policy violations,
the docker provider's connection error, the program's config error for a missing password)."""

from __future__ import annotations

import json
from pathlib import Path

from ops.deploy_check import ref_problem, stack_problem
from ops.pr_preview import gate, summary, write_results
from ops.preview_comment import MAX_BODY, Outcome, change_counts, classify, marker, missing_result, render

DIFF = """Previewing update (gpu-box):
  pulumi:pulumi:Stack: (same)
    [urn=urn:pulumi:gpu-box::tfbox::pulumi:pulumi:Stack::tfbox-gpu-box]
    - docker:index/container:Container: (delete)
        [urn=urn:pulumi:gpu-box::tfbox::tfbox:index:Lab$docker:index/container:Container::tensorboard]
        name      : "tfbox-gpu-box-tensorboard"
    +-docker:index/container:Container: (replace)
        [urn=urn:pulumi:gpu-box::tfbox::tfbox:index:Lab$docker:index/container:Container::notebook]
Resources:
    +-1 to replace
    - 1 to delete
    2 to create
    5 unchanged
"""
UNREACHABLE = """Previewing update (box-2):
 pulumi:pulumi:Stack tfbox-box-2  error: Cannot connect to the Docker daemon at unix:///tmp/r/e2e-b/docker.sock. Is the docker daemon running?
error: preview failed
"""
POLICY = """Policies:
    ❌ tfbox@v0.0.1
        - [mandatory]  public-notebook-requires-password  (docker:index/container:Container: notebook)
          a notebook published beyond loopback needs the password
error: preview failed
"""
NO_PASSWORD = """ error: tfbox configuration has 1 problem:
      - tfbox:password: is not set. Fix: run `pulumi config set --secret tfbox:password` (or `make up` on the dev stack).
"""


def test_counts_and_success_comment() -> None:
    assert change_counts(DIFF) == {"replace": 1, "delete": 1, "create": 2}
    outcome = classify("gpu-box", 0, "\x1b[32m" + DIFF + "\x1b[0m")
    assert outcome.ok and outcome.status == "changes"
    body = render(outcome, commit="0123456789abcdef0123", run_url="https://github.com/o/r/actions/runs/1")
    assert body.splitlines()[0] == "<!-- tfbox-preview:stack=gpu-box -->"
    assert "`gpu-box`: 2 to create, 1 to replace, 1 to delete" in body
    assert "```diff" in body and "tfbox-gpu-box-tensorboard" in body and "\x1b" not in body
    assert "commit `0123456789ab`" in body and "(https://github.com/o/r/actions/runs/1)" in body


def test_no_changes_comment() -> None:
    outcome = classify("gpu-box", 0, "Resources:\n    7 unchanged\n")
    assert outcome.status == "no-changes"
    assert "`gpu-box`: no changes" in render(outcome)


def test_missing_password_comment_says_how_to_set_it_without_a_trace() -> None:
    for outcome in (classify("box-3", 1, NO_PASSWORD), classify("box-3", 1, "", password_set=False)):
        assert outcome.status == "missing-password" and not outcome.ok
        body = render(outcome)
        assert body.startswith(marker("box-3"))
        assert "pulumi config set --secret tfbox:password --stack box-3" in body
        assert "Pulumi.box-3.yaml" in body and "Traceback" not in body and "error:" not in body


def test_failure_comments_name_what_failed_with_the_log_tail() -> None:
    down = classify("box-2", 255, UNREACHABLE)
    assert (down.status, down.reason) == ("failed", "unreachable machine")
    body = render(down)
    assert "preview failed (unreachable machine)" in body and "unix:///tmp/r/e2e-b/docker.sock" in body
    assert "no longer valid" in body  # the earlier diff on the PR must not be trusted
    ssh_down = classify("box-2", 255, "error: docker:host ssh://tfbox@10.215.2.2:22: Docker is not running on the box. "
                                      "Start it there: `sudo systemctl start docker`\n")
    assert ssh_down.reason == "unreachable machine" and "Docker is not running on the box" in render(ssh_down)
    policy = classify("gpu-box", 255, POLICY)
    assert policy.reason == "policy violation" and "public-notebook-requires-password" in render(policy)
    drift = classify("gpu-box", 255, "error: no changes were expected for preview but changes were proposed\n")
    assert drift.reason == "drift"
    other = classify("gpu-box", 3, "something else\n")
    assert other.reason == "pulumi preview exited with 3"


def test_log_tail_is_the_end_of_a_long_log_and_fences_hold() -> None:
    log = "\n".join(f"line {i}" for i in range(500)) + "\n```\nerror: Cannot connect to the Docker daemon\n"
    body = render(classify("s", 1, log))
    assert "line 499" in body and "line 100\n" not in body
    assert "````\n" in body  # a longer fence than the ``` inside the log


def test_huge_diffs_are_trimmed_below_githubs_limit() -> None:
    huge = "Resources:\n    + 1 to create\n" + "x" * 200_000
    body = render(classify("s", 0, huge))
    assert len(body) <= MAX_BODY and body.startswith(marker("s")) and "trimmed" in body


def test_markers_are_never_prefixes_of_each_other() -> None:
    assert not marker("gpu-box-2").startswith(marker("gpu-box"))
    assert not marker("gpu-box").startswith(marker("gpu-box-2"))


def test_missing_result_is_a_failure_comment() -> None:
    outcome = missing_result("gpu-box", "https://run")
    assert not outcome.ok and "ended before the preview ran" in render(outcome)


def test_results_files(tmp_path: Path) -> None:
    outcomes = [classify("a", 0, DIFF), classify("b", 1, UNREACHABLE), Outcome("c", "missing-password")]
    write_results(tmp_path, outcomes, "abc", "")
    results = json.loads((tmp_path / "results.json").read_text())
    assert {k: v["status"] for k, v in results.items()} == {"a": "changes", "b": "failed", "c": "missing-password"}
    assert sorted(p.name for p in tmp_path.glob("*.md")) == ["a.md", "b.md", "c.md"]
    text = summary(outcomes)
    assert "a" in text and "FAIL" in text and "unreachable machine" in text


def test_gate_fails_on_any_failed_preview_and_passes_when_nothing_was_affected() -> None:
    assert gate("success", "skipped", "skipped", []) is None  # no machine stack affected, or a fork
    assert gate("success", "success", "success", ["a", "b"]) is None
    assert "did not succeed" in str(gate("success", "failure", "success", ["a", "b"]))
    assert "did not succeed" in str(gate("success", "cancelled", "success", ["a"]))
    assert gate("failure", "skipped", "skipped", []) is not None
    assert "comments" in str(gate("success", "success", "failure", ["a"]))


def test_deploy_refuses_what_is_not_a_machine_stack(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  tfbox:stackKind: local\n")
    (tmp_path / "Pulumi.new.yaml").write_text("config:\n  docker:host: ssh://u@h\n")
    (tmp_path / "Pulumi.box.yaml").write_text("config:\n  docker:host: ssh://u@h\n  tfbox:password:\n    secure: v1:abc\n")
    assert "local stack" in str(stack_problem(tmp_path, "dev"))
    assert "pulumi config set --secret tfbox:password --stack new" in str(stack_problem(tmp_path, "new"))
    assert "no Pulumi.gone.yaml" in str(stack_problem(tmp_path, "gone"))
    assert "not a stack name" in str(stack_problem(tmp_path, "../etc"))
    assert stack_problem(tmp_path, "box") is None


def test_deploy_check_refuses_every_ref_but_main() -> None:
    assert ref_problem("refs/heads/main") is None
    for ref in ("refs/heads/attacker", "refs/tags/v1", "refs/pull/7/merge", "refs/heads/main-2", ""):
        problem = str(ref_problem(ref))
        assert "only from main" in problem and "Use workflow from: main" in problem, ref
