"""ops/github.py against a local fake of the GitHub REST API: comments found on any page by their
exact per-stack marker and edited in place, and the deploy environment check."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ops.github import GitHub, environment_problem, find_comment, upsert_comment
from ops.preview_comment import marker


class FakeGitHub:
    """Issue comments of PR 7 in o/r, paged like GitHub (per_page, Link rel=next), plus environments."""

    def __init__(self) -> None:
        self.comments: list[dict[str, Any]] = []
        self.environments: dict[str, dict[str, Any]] = {}
        self.branch_policies: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[tuple[str, str]] = []
        self.next_id = 1000

    def add(self, body: str) -> int:
        self.next_id += 1
        self.comments.append({"id": self.next_id, "body": body})
        return self.next_id


@pytest.fixture
def api() -> Iterator[tuple[FakeGitHub, GitHub]]:
    fake = FakeGitHub()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            raw = json.dumps(payload).encode()
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            url = urllib.parse.urlparse(self.path)
            fake.requests.append(("GET", self.path))
            assert self.headers["Authorization"] == "Bearer t0ken"
            if url.path == "/repos/o/r/issues/7/comments":
                q = urllib.parse.parse_qs(url.query)
                per, page = int(q.get("per_page", ["30"])[0]), int(q.get("page", ["1"])[0])
                items = fake.comments[(page - 1) * per : page * per]
                headers = {}
                if page * per < len(fake.comments):
                    base = f"http://127.0.0.1:{port}{url.path}"
                    headers["Link"] = f'<{base}?per_page={per}&page={page + 1}>; rel="next", <{base}?page=99>; rel="last"'
                self.send(200, items, headers)
            elif url.path.endswith("/deployment-branch-policies"):
                name = urllib.parse.unquote(url.path.split("/")[-2])
                rules = fake.branch_policies.get(name)
                self.send(200, {"total_count": len(rules), "branch_policies": rules}) if rules is not None else self.send(404, {})
            elif url.path.startswith("/repos/o/r/environments/"):
                name = urllib.parse.unquote(url.path.rsplit("/", 1)[1])
                env = fake.environments.get(name)
                self.send(200, env) if env is not None else self.send(404, {"message": "Not Found"})
            else:
                self.send(404, {"message": "Not Found"})

        def body(self) -> dict[str, Any]:
            return dict(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))

        def do_PATCH(self) -> None:
            fake.requests.append(("PATCH", self.path))
            cid = int(self.path.rsplit("/", 1)[1])
            comment = next(c for c in fake.comments if c["id"] == cid)
            comment["body"] = self.body()["body"]
            self.send(200, comment)

        def do_POST(self) -> None:
            fake.requests.append(("POST", self.path))
            assert self.path == "/repos/o/r/issues/7/comments"
            cid = fake.add(self.body()["body"])
            self.send(201, {"id": cid})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake, GitHub("t0ken", f"http://127.0.0.1:{port}")
    server.shutdown()


def comment(stack: str, text: str) -> str:
    return f"{marker(stack)}\n{text}"


def test_finds_the_stacks_comment_beyond_the_first_pages_and_edits_it(api: tuple[FakeGitHub, GitHub]) -> None:
    fake, gh = api
    for i in range(250):
        fake.add(f"chatter {i}")
    own = fake.add(comment("gpu-box", "old diff"))
    other = fake.add(comment("gpu-box-2", "gpu-box-2's diff"))
    action, cid = upsert_comment(gh, "o/r", 7, "gpu-box", comment("gpu-box", "new diff"))
    assert (action, cid) == ("updated", own)
    bodies = {c["id"]: c["body"] for c in fake.comments}
    assert bodies[own].endswith("new diff") and bodies[other].endswith("gpu-box-2's diff")
    assert len(fake.comments) == 252
    assert sum(1 for m, p in fake.requests if m == "GET") == 3  # 100 per page, followed to the third


def test_creates_a_comment_when_the_stack_has_none_yet_and_not_twice(api: tuple[FakeGitHub, GitHub]) -> None:
    fake, gh = api
    fake.add(comment("gpu-box-2", "x"))
    fake.add("a reviewer quoting <!-- tfbox-preview:stack=gpu-box --> mid-text")
    assert upsert_comment(gh, "o/r", 7, "gpu-box", comment("gpu-box", "first"))[0] == "created"
    assert upsert_comment(gh, "o/r", 7, "gpu-box", comment("gpu-box", "second"))[0] == "updated"
    assert [c["body"] for c in fake.comments if c["body"].startswith(marker("gpu-box"))] == [comment("gpu-box", "second")]


def test_a_comment_must_carry_its_marker(api: tuple[FakeGitHub, GitHub]) -> None:
    with pytest.raises(ValueError):
        upsert_comment(api[1], "o/r", 7, "gpu-box", comment("gpu-box-2", "wrong"))


def test_find_comment_matches_the_exact_marker_line() -> None:
    comments = [{"id": 1, "body": comment("gpu-box-2", "")}, {"id": 2, "body": comment("gpu-box", "")}]
    assert find_comment(comments, "gpu-box") == comments[1]
    assert find_comment(comments, "gpu") is None


REVIEWERS = {"type": "required_reviewers", "reviewers": [{"type": "User", "reviewer": {"login": "owner"}}]}


def test_environment_check(api: tuple[FakeGitHub, GitHub]) -> None:
    from ops.github import check_environment

    fake, gh = api
    fake.environments["gpu-box"] = {"name": "gpu-box", "protection_rules": [REVIEWERS, {"type": "branch_policy"}],
                                    "deployment_branch_policy": CUSTOM}
    fake.branch_policies["gpu-box"] = [{"id": 1, "name": "main", "type": "branch"}]
    fake.environments["open"] = {"name": "open", "protection_rules": []}
    fake.environments["timer"] = {"name": "timer", "protection_rules": [{"type": "wait_timer", "wait_timer": 5}]}
    assert check_environment(gh, "o/r", "gpu-box") is None
    assert "does not exist" in str(check_environment(gh, "o/r", "gpu-box-2"))
    assert "no required reviewers (protection rules: none)" in str(check_environment(gh, "o/r", "open"))
    assert "wait_timer" in str(check_environment(gh, "o/r", "timer"))


def test_environment_check_refuses_when_the_api_cannot_tell() -> None:
    assert "refusing" in str(environment_problem(403, {"message": "Resource not accessible"}, "gpu-box", "o/r"))


CUSTOM = {"protected_branches": False, "custom_branch_policies": True}


def test_environment_check_refuses_an_environment_other_branches_can_deploy_to(api: tuple[FakeGitHub, GitHub]) -> None:
    """Required reviewers alone let a pushed branch deploy its own code once someone clicks approve:
    the environment must admit main only (GitHub enforces it even for a workflow edited on the branch)."""
    from ops.github import check_environment

    fake, gh = api
    rules = [REVIEWERS, {"type": "branch_policy"}]
    fake.environments["all"] = {"name": "all", "protection_rules": [REVIEWERS], "deployment_branch_policy": None}
    fake.environments["protected"] = {"name": "protected", "protection_rules": rules,
                                      "deployment_branch_policy": {"protected_branches": True, "custom_branch_policies": False}}
    fake.environments["wild"] = {"name": "wild", "protection_rules": rules, "deployment_branch_policy": CUSTOM}
    fake.branch_policies["wild"] = [{"id": 1, "name": "main", "type": "branch"}, {"id": 2, "name": "*", "type": "branch"}]
    fake.environments["tag"] = {"name": "tag", "protection_rules": rules, "deployment_branch_policy": CUSTOM}
    fake.branch_policies["tag"] = [{"id": 3, "name": "main", "type": "tag"}]
    fake.environments["main-only"] = {"name": "main-only", "protection_rules": [{"type": "branch_policy"}],
                                      "deployment_branch_policy": CUSTOM}
    fake.branch_policies["main-only"] = [{"id": 4, "name": "main", "type": "branch"}]
    assert "lets every branch deploy" in str(check_environment(gh, "o/r", "all"))
    assert "any protected branch" in str(check_environment(gh, "o/r", "protected"))
    assert "rules: branch main, branch *" in str(check_environment(gh, "o/r", "wild"))
    assert "rules: tag main" in str(check_environment(gh, "o/r", "tag"))
    assert "Selected branches" in str(check_environment(gh, "o/r", "all"))
    # the environment of the deploy's preview and drift: no reviewers needed, main only
    assert "no required reviewers" in str(check_environment(gh, "o/r", "main-only"))
    assert check_environment(gh, "o/r", "main-only", reviewers=False) is None
    assert "does not exist" in str(check_environment(gh, "o/r", "nowhere", reviewers=False))
