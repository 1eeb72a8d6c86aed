"""The few GitHub REST calls the workflows make: per-stack PR comments and the deploy environment check.

Plain urllib with the job's GITHUB_TOKEN, so the unit tests drive the same code against a local
fake API. Listing comments follows the `Link: rel="next"` pages (100 per page), so a PR with
hundreds of comments still finds its stack's comment.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ops.preview_comment import marker

NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


class GitHubError(RuntimeError):
    pass


@dataclass
class GitHub:
    token: str
    api_url: str = "https://api.github.com"

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any, dict[str, str]]:
        """One call; a path is relative to the API, a full URL (a next page) is used as is."""
        url = path if path.startswith(("http://", "https://")) else self.api_url.rstrip("/") + path
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/vnd.github+json")
        req.add_header("X-GitHub-Api-Version", "2022-11-28")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None, dict(r.headers.items())
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                payload = json.loads(raw) if raw else None
            except ValueError:
                payload = raw.decode(errors="replace")
            return e.code, payload, dict(e.headers.items())

    def paginate(self, path: str) -> Iterator[Any]:
        """Every item of a list endpoint, page after page."""
        sep = "&" if "?" in path else "?"
        url: str | None = f"{path}{sep}per_page=100"
        while url:
            status, payload, headers = self.request("GET", url)
            if status != 200 or not isinstance(payload, list):
                raise GitHubError(f"GET {url}: {status} {payload}")
            yield from payload
            link = next((v for k, v in headers.items() if k.lower() == "link"), "")
            m = NEXT.search(link)
            url = m.group(1) if m else None


def find_comment(comments: list[dict[str, Any]] | Iterator[dict[str, Any]], stack: str) -> dict[str, Any] | None:
    """The comment whose first line is exactly this stack's marker (so gpu-box never takes gpu-box-2's)."""
    mark = marker(stack)
    for c in comments:
        body = str(c.get("body") or "")
        if body.split("\n", 1)[0].strip() == mark:
            return c
    return None


def upsert_comment(gh: GitHub, repo: str, pr: int, stack: str, body: str) -> tuple[str, int]:
    """Edit this stack's comment on the PR in place, or create it; ('updated'|'created', comment id)."""
    if not body.startswith(marker(stack)):
        raise ValueError(f"the comment for {stack} must start with its marker")
    existing = find_comment(gh.paginate(f"/repos/{repo}/issues/{pr}/comments"), stack)
    if existing is not None:
        status, payload, _ = gh.request("PATCH", f"/repos/{repo}/issues/comments/{existing['id']}", {"body": body})
        if status != 200:
            raise GitHubError(f"editing comment {existing['id']}: {status} {payload}")
        return "updated", int(existing["id"])
    status, payload, _ = gh.request("POST", f"/repos/{repo}/issues/{pr}/comments", {"body": body})
    if status != 201:
        raise GitHubError(f"creating the comment for {stack}: {status} {payload}")
    return "created", int(payload["id"])


def environment_problem(status: int, payload: Any, name: str, repo: str) -> str | None:
    """Why a deploy to environment `name` must not start, or None when a reviewer must approve it.

    GitHub creates an environment that a job names but that does not exist, without any protection,
    so a deploy to a machine nobody set up would run unapproved: refuse instead.
    """
    settings = f"https://github.com/{repo}/settings/environments"
    if status == 404:
        return (f"the GitHub environment '{name}' does not exist, so nobody would approve this deploy. "
                f"Create it with required reviewers (the machine's owners) at {settings} (docs/team-workflow.md)")
    if status != 200 or not isinstance(payload, dict):
        return f"could not read the GitHub environment '{name}' ({status}: {payload}); refusing to deploy unchecked"
    rules = payload.get("protection_rules") or []
    reviewers = [r for r in rules if r.get("type") == "required_reviewers" and r.get("reviewers")]
    if not reviewers:
        kinds = ", ".join(sorted({str(r.get("type")) for r in rules})) or "none"
        return (f"the GitHub environment '{name}' has no required reviewers (protection rules: {kinds}), so this deploy "
                f"would run unapproved. Add the machine's owners as required reviewers at {settings}")
    return None


DEPLOY_BRANCH = "main"


def branch_policy_problem(gh: GitHub, repo: str, name: str, payload: dict[str, Any]) -> str | None:
    """Why environment `name` would hand its secrets to a branch other than main, or None.

    The environment's deployment-branch policy is what GitHub itself enforces: a workflow edited on a
    branch can drop any `if:` and still name the environment, but GitHub refuses the job (and keeps the
    environment's secrets from it) unless the ref matches the policy. So it must be "selected branches"
    with exactly one rule, the branch `main`; no policy (all branches) and "protected branches" (any
    branch someone protects, e.g. a release branch) are refused.
    """
    settings = f"https://github.com/{repo}/settings/environments"
    fix = (f"set its deployment branches to 'Selected branches and tags' with the one rule `{DEPLOY_BRANCH}` "
           f"at {settings} (docs/team-workflow.md)")
    policy = payload.get("deployment_branch_policy")
    if not isinstance(policy, dict):
        return f"the GitHub environment '{name}' lets every branch deploy (no deployment branch policy): {fix}"
    if policy.get("protected_branches") or not policy.get("custom_branch_policies"):
        return f"the GitHub environment '{name}' lets any protected branch deploy, not only {DEPLOY_BRANCH}: {fix}"
    path = f"/repos/{repo}/environments/{urllib.parse.quote(name, safe='')}/deployment-branch-policies?per_page=100"
    status, listing, _ = gh.request("GET", path)
    if status != 200 or not isinstance(listing, dict):
        return f"could not read the deployment branch policies of '{name}' ({status}: {listing}); refusing to deploy unchecked"
    rules = [(str(r.get("name")), str(r.get("type", "branch"))) for r in listing.get("branch_policies") or []]
    if rules != [(DEPLOY_BRANCH, "branch")]:
        shown = ", ".join(f"{t} {n}" for n, t in rules) or "none"
        return f"the GitHub environment '{name}' lets other refs deploy (rules: {shown}): {fix}"
    return None


def check_environment(gh: GitHub, repo: str, name: str, *, reviewers: bool = True) -> str | None:
    """Why a job in environment `name` must not start: missing, without required reviewers (when
    `reviewers`), or reachable from a branch other than main; None when it is safe."""
    status, payload, _ = gh.request("GET", f"/repos/{repo}/environments/{urllib.parse.quote(name, safe='')}")
    if reviewers:
        problem = environment_problem(status, payload, name, repo)
        if problem:
            return problem
    elif status != 200 or not isinstance(payload, dict):
        return environment_problem(status, payload, name, repo)
    return branch_policy_problem(gh, repo, name, payload)
