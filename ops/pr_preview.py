"""`make pr-preview BASE=<ref>`: what the preview workflow does for a pull request, run here.

    python scripts/pr-preview.py --base origin/main          # affected machine stacks of HEAD vs the merge base
    python scripts/pr-preview.py --stacks gpu-box            # one stack (what each CI matrix job runs)
    python scripts/pr-preview.py post --dir D --stacks '["gpu-box"]' --repo o/r --pr 7   # CI: post/edit the comments

For each affected machine stack (scripts/affected-stacks.py's rules; `local` stacks never) it runs
`scripts/preview.sh <stack> --refresh` (pulumi preview --diff with the policy pack, against what is
on the machine now), or, when the stack file
has no password secret yet, skips the preview; then writes the PR comment to `<out>/<stack>.md`
and the verdicts to `<out>/results.json`. Exit status 0 when every preview succeeded, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ops.github import GitHub, upsert_comment
from ops.preview_comment import Outcome, classify, missing_result, render

if TYPE_CHECKING:
    from ops.stacks import StackInfo

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path(".tfbox/pr-preview")


def changed_files(root: Path, base: str) -> list[str]:
    """Paths changed on this branch since it left `base` (the PR's diff), plus uncommitted edits."""
    def git(*args: str) -> list[str]:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"pr-preview: git {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout.splitlines()
    return sorted(set(git("diff", "--name-only", f"{base}...HEAD")) | set(git("diff", "--name-only", "HEAD")))


def run_preview(root: Path, stack: str, extra: list[str] | None = None) -> tuple[int, str]:
    """scripts/preview.sh for one stack, its lines streamed with a `[stack]` prefix; (exit code, output)."""
    proc = subprocess.Popen([str(root / "scripts" / "preview.sh"), stack, *(extra or [])], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        print(f"[{stack}] {line}", end="", flush=True)
    return proc.wait(), "".join(lines)


def preview_stack(root: Path, info: StackInfo) -> Outcome:
    if not info.password_set:
        print(f"[{info.name}] no tfbox:password secret in {info.path.name}: not previewed", flush=True)
        return classify(info.name, 1, "", password_set=False)
    # --refresh: diff against what is really on the machine (so drift shows, and an unreachable machine
    # fails instead of previewing from the last state alone, which needs no connection)
    code, output = run_preview(root, info.name, ["--refresh"])
    return classify(info.name, code, "".join(ln for ln in output.splitlines(keepends=True) if not ln.startswith("ensure.sh:")))


def write_results(out: Path, outcomes: list[Outcome], commit: str, run_url: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for o in outcomes:
        (out / f"{o.stack}.md").write_text(render(o, commit=commit, run_url=run_url))
        results[o.stack] = {"status": o.status, "reason": o.reason, "counts": o.counts}
    (out / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def summary(outcomes: list[Outcome]) -> str:
    width = max((len(o.stack) for o in outcomes), default=5)
    lines = []
    for o in outcomes:
        what = o.reason if o.status == "failed" else ", ".join(f"{n} to {op}" for op, n in o.counts.items()) or o.status
        lines.append(f"  {o.stack:<{width}}  {'ok  ' if o.ok else 'FAIL'}  {o.status}: {what}")
    return "\n".join(lines)


def head_commit(root: Path) -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else ""


def gate(affected: str, preview: str, comment: str, stacks: list[str]) -> str | None:
    """The fixed-name `previews` job's verdict from its needs' results: why it fails, or None.

    It always runs, so branch protection can require it whatever stacks a PR touches."""
    if affected != "success":
        return f"listing the affected stacks ended with '{affected}'"
    if not stacks:
        return None
    if preview != "success":
        return f"a preview of {', '.join(stacks)} did not succeed ('{preview}'): read the stacks' PR comments"
    if comment != "success":
        return f"posting the preview comments ended with '{comment}'"
    return None


def cmd_gate(args: argparse.Namespace) -> int:
    problem = gate(args.affected, args.preview, args.comment, json.loads(args.stacks or "[]"))
    if problem:
        print(f"::error title=previews::{problem}")
        return 1
    print("previews: every affected machine stack previewed cleanly" if json.loads(args.stacks or "[]")
          else "previews: no machine stack affected (or a forked PR), nothing to preview")
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from ops.stacks import affected, machine_stacks  # needs PyYAML; `post` and `gate` run without it

    root: Path = args.root
    machines = machine_stacks(root)
    if args.stacks is not None:
        wanted = [s for s in args.stacks.split(",") if s]
        by_name = {m.name: m for m in machines}
        unknown = [w for w in wanted if w not in by_name]
        if unknown:
            print(f"pr-preview: not machine stacks here: {', '.join(unknown)} (local stacks are never previewed)", file=sys.stderr)
            return 2
        chosen = [by_name[w] for w in wanted]
    else:
        names = affected(changed_files(root, args.base), [m.name for m in machines])
        chosen = [m for m in machines if m.name in names]
    out = args.out if args.out.is_absolute() else root / args.out
    if not chosen:
        print("pr-preview: this change affects no machine stack; nothing to preview")
        write_results(out, [], "", "")
        return 0
    print(f"pr-preview: previewing {', '.join(m.name for m in chosen)}", flush=True)
    outcomes = [preview_stack(root, m) for m in chosen]
    write_results(out, outcomes, args.commit or head_commit(root), args.run_url)
    print(f"\npr-preview: comments in {out}/<stack>.md\n{summary(outcomes)}")
    return 0 if all(o.ok for o in outcomes) else 1


def cmd_post(args: argparse.Namespace) -> int:
    """CI: post or edit one comment per stack; a stack whose job left no comment gets a failure comment."""
    token = os.environ.get("GITHUB_TOKEN", "")
    gh = GitHub(token, os.environ.get("GITHUB_API_URL", "https://api.github.com"))
    stacks = json.loads(args.stacks)
    for stack in stacks:
        path = args.dir / f"{stack}.md"
        body = path.read_text() if path.is_file() else render(missing_result(stack, args.run_url), run_url=args.run_url)
        action, cid = upsert_comment(gh, args.repo, args.pr, stack, body)
        print(f"pr-preview: {action} the comment for {stack} (#{cid})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command")
    post = sub.add_parser("post", help="post or edit the per-stack comments on a PR (CI)")
    post.add_argument("--dir", type=Path, required=True, help="where the <stack>.md comments are")
    post.add_argument("--stacks", required=True, help="JSON list of the stacks that were previewed")
    post.add_argument("--repo", required=True, help="owner/name")
    post.add_argument("--pr", type=int, required=True)
    post.add_argument("--run-url", default="")
    g = sub.add_parser("gate", help="the fixed-name job's verdict (CI)")
    g.add_argument("--affected", required=True)
    g.add_argument("--preview", required=True)
    g.add_argument("--comment", required=True)
    g.add_argument("--stacks", default="[]", help="JSON list of the affected stacks")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--base", help="git ref the branch is compared with (the PR's base)")
    which.add_argument("--stacks", help="comma-separated stacks to preview instead of the affected ones")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the comments go (default .tfbox/pr-preview)")
    parser.add_argument("--commit", default="", help="commit named in the comments (default HEAD)")
    parser.add_argument("--run-url", default="", help="workflow run linked from the comments")
    args = parser.parse_args(argv)
    if args.command == "post":
        return cmd_post(args)
    if args.command == "gate":
        return cmd_gate(args)
    if not args.base and args.stacks is None:
        parser.error("give --base REF (make pr-preview BASE=origin/main) or --stacks")
    return cmd_preview(args)
