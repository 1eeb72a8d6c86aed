"""Before a deploy job waits for approval: is this a machine stack, and will a person really approve it?

    python scripts/deploy-check.py --stack gpu-box --repo owner/name --ref "$GITHUB_REF"   (GITHUB_TOKEN set)

GitHub creates an environment that a job names but that does not exist yet, with no protection at
all, so `environment: <stack>` alone fails open. The deploy workflow runs this first (main's copy of
it, checked out apart from the commit being deployed) and stops when the ref is not main, the stack
is unknown or local, its environment is missing, has no required reviewers or lets a branch other
than main deploy, or the `main-only` environment (the credentials of the deploy's preview and the
drift check) lets another branch in.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from ops.github import GitHub, check_environment
from ops.stacks import read_stack

ROOT = Path(__file__).resolve().parent.parent
MAIN_REF = "refs/heads/main"
MAIN_ONLY = "main-only"  # the environment of the jobs that run main's code with the machines' credentials
NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")


def ref_problem(ref: str) -> str | None:
    """Deploys run main's reviewed code only: any other branch or tag is refused."""
    if ref != MAIN_REF:
        return (f"deploys run only from main, not {ref or 'an unknown ref'}: merge the change, then run the "
                f"deploy workflow with 'Use workflow from: main'")
    return None


def stack_problem(root: Path, stack: str) -> str | None:
    """Why `stack` is not a machine this repository can deploy, or None."""
    if not NAME.match(stack):
        return f"'{stack}' is not a stack name (lowercase letters, digits and inner dashes)"
    path = root / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        return f"there is no Pulumi.{stack}.yaml in this commit"
    info = read_stack(path)
    if not info.is_machine:
        return f"{path.name} is a local stack (tfbox:stackKind: {info.kind}); CI never deploys it"
    if not info.password_set:
        return f"{path.name} has no tfbox:password secret: pulumi config set --secret tfbox:password --stack {stack}, commit, then deploy"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", required=True)
    parser.add_argument("--repo", required=True, help="owner/name")
    parser.add_argument("--ref", required=True, help="the ref being deployed ($GITHUB_REF); only refs/heads/main")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    problem = ref_problem(args.ref) or stack_problem(args.root, args.stack)
    if problem is None:
        gh = GitHub(os.environ.get("GITHUB_TOKEN", ""), os.environ.get("GITHUB_API_URL", "https://api.github.com"))
        problem = check_environment(gh, args.repo, args.stack) or check_environment(gh, args.repo, MAIN_ONLY, reviewers=False)
    if problem:
        print(f"::error title=deploy {args.stack} refused::{problem}")
        return 1
    print(f"deploy-check: {args.stack} is a machine stack; its environment requires a reviewer's approval and admits only main")
    return 0
