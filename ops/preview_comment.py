"""The PR comment for one stack's preview: what changed, why it could not run, or what failed.

Pure functions of the preview's exit code and output, so what CI posts is what the unit tests read.
Every comment starts with a hidden marker naming its stack exactly (`<!-- tfbox-preview:stack=gpu-box -->`),
which is how the next run finds and edits it: a marker is never a prefix of another stack's marker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MARKER = "<!-- tfbox-preview:stack={stack} -->"
MAX_BODY = 60_000  # GitHub refuses comments over 65536 characters
TAIL_LINES = 60
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
COUNTS = re.compile(r"^\s*[-+~]*\s*(\d+) to (create|update|replace|delete)\s*$", re.MULTILINE)
OPS = ("create", "update", "replace", "delete")

# What a user can do about each kind of failure, recognised from the CLI's own words.
FAILURES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("policy violation", re.compile(r"mandatory policy violation|\[mandatory\]", re.IGNORECASE),
     "a mandatory policy of the tfbox policy pack (`policy/`) refused the change: the violations are in the log below"),
    ("unreachable machine", re.compile(
        r"Cannot connect to the Docker daemon|error during connect|failed to connect to (the )?docker|"
        r"ssh: connect to host|ssh: Could not resolve|Host key verification failed|connection refused|"
        r"no such host|i/o timeout|dial unix|"
        # tfbox's own one-line SSH preflight messages (components/docker/ssh.py classify) for ssh:// machines
        r"Docker is not running on the box|unreachable over SSH|host key is not in known_hosts|host key has CHANGED|"
        r"SSH login as '[^']*' was refused|may log in but not use Docker|"
        # a cluster stack: the provider's and kubectl's words, and tfbox's preflight (components/kubernetes/backend.py)
        r"Kubernetes cluster is unreachable|Unable to connect to the server|could not read the cluster", re.IGNORECASE),
     "the machine's Docker daemon (or a cluster stack's API server) did not answer: check that it runs, that `docker:host` "
     "(`kubernetes:kubeconfig` / `kubernetes:context`) is right and that the runner reaches it"),
    ("invalid configuration", re.compile(r"tfbox configuration has \d+ problem"),
     "the stack's configuration is invalid: each problem below names the key and the fix"),
    ("drift", re.compile(r"no changes were expected( for \w+)? but changes were proposed", re.IGNORECASE),
     "the machine differs from the committed configuration (someone changed it by hand, or a deploy is missing)"),
    ("secrets passphrase", re.compile(r"passphrase must be set|incorrect passphrase", re.IGNORECASE),
     "the stack's secrets could not be decrypted: set PULUMI_CONFIG_PASSPHRASE (the repository secret) to the team's passphrase"),
    ("unknown stack", re.compile(r"no stack named|is not in the backend", re.IGNORECASE),
     "the stack does not exist in the team's backend: create it with `make machine` (docs/team-workflow.md)"),
)


@dataclass(frozen=True)
class Outcome:
    """One stack's preview, classified: `changes`, `no-changes`, `missing-password` or `failed`."""

    stack: str
    status: str
    counts: dict[str, int] = field(default_factory=dict)
    reason: str = ""
    detail: str = ""
    output: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("changes", "no-changes")


def marker(stack: str) -> str:
    return MARKER.format(stack=stack)


def clean(text: str) -> str:
    """The CLI's output without colour codes and carriage-return progress lines."""
    text = ANSI.sub("", text)
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.splitlines())


def change_counts(output: str) -> dict[str, int]:
    """The 'Resources:' counts of a preview: {'create': 2, ...}; {} when nothing would change."""
    return {m.group(2): int(m.group(1)) for m in COUNTS.finditer(output)}


def password_missing(output: str) -> bool:
    return "tfbox:password: is not set" in output


def classify(stack: str, returncode: int, output: str, *, password_set: bool = True) -> Outcome:
    """What a `scripts/preview.sh` run means for the PR; `password_set` comes from the stack file."""
    text = clean(output)
    if not password_set or (returncode != 0 and password_missing(text)):
        return Outcome(stack, "missing-password", output=text)
    if returncode == 0:
        counts = change_counts(text)
        return Outcome(stack, "changes" if counts else "no-changes", counts=counts, output=text)
    for reason, pattern, detail in FAILURES:
        if pattern.search(text):
            return Outcome(stack, "failed", reason=reason, detail=detail, output=text)
    return Outcome(stack, "failed", reason=f"pulumi preview exited with {returncode}",
                   detail="the log tail below says what went wrong", output=text)


def _fence(text: str, lang: str = "") -> str:
    """A code block that the text itself cannot close."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}"


def tail(text: str, lines: int = TAIL_LINES) -> str:
    kept = text.rstrip().splitlines()[-lines:]
    return "\n".join(kept)


def summary_line(counts: dict[str, int]) -> str:
    parts = [f"{counts[op]} to {op}" for op in OPS if counts.get(op)]
    return ", ".join(parts) if parts else "no changes"


def _diff_section(output: str) -> str:
    """The preview's diff, trimmed to what fits in a comment."""
    body = output.strip()
    if len(body) > MAX_BODY - 4000:
        body = body[: MAX_BODY - 4000] + "\n… (trimmed: the full diff is in the workflow log)"
    return f"<details><summary>pulumi preview --diff</summary>\n\n{_fence(body, 'diff')}\n\n</details>"


def render(outcome: Outcome, *, commit: str = "", run_url: str = "") -> str:
    """The whole comment body for one stack, marker first."""
    stack = outcome.stack
    where = []
    if commit:
        where.append(f"commit `{commit[:12]}`")
    if run_url:
        where.append(f"[workflow run]({run_url})")
    footer = f"\n\n<sub>tfbox preview of `{stack}`" + (f" at {', '.join(where)}" if where else "") + "</sub>"
    head = marker(stack) + "\n"
    if outcome.status in ("changes", "no-changes"):
        icon = "✅" if outcome.status == "no-changes" else "📝"
        body = f"### {icon} `{stack}`: {summary_line(outcome.counts)}\n\n"
        if outcome.counts.get("replace"):
            body += ("A replaced notebook container restarts its running kernels; the notebooks volume is never "
                     "replaced (the policy pack checks it is kept).\n\n")
        body += _diff_section(outcome.output)
    elif outcome.status == "missing-password":
        body = (
            f"### 🔑 `{stack}`: the notebook password is not set yet\n\n"
            f"The stack has no `tfbox:password` secret, so it cannot be previewed or deployed. A machine owner sets it "
            f"once, with the team's backend and passphrase exported (docs/team-workflow.md):\n\n"
            f"{_fence(f'pulumi config set --secret tfbox:password --stack {stack}', 'sh')}\n\n"
            f"It lands encrypted in `Pulumi.{stack}.yaml`: commit that file to this branch and the next push previews it."
        )
    else:
        body = (
            f"### ❌ `{stack}`: preview failed ({outcome.reason})\n\n"
            f"{outcome.detail}. The diff shown before on this PR, if any, is no longer valid.\n\n"
            f"<details open><summary>last {TAIL_LINES} lines of the log</summary>\n\n{_fence(tail(outcome.output))}\n\n</details>"
        )
    text = head + body + footer
    if len(text) > MAX_BODY:
        text = text[: MAX_BODY - 200] + "\n\n… (trimmed)" + footer
    return text


def missing_result(stack: str, run_url: str = "") -> Outcome:
    """A stack whose preview job ended before it wrote a result (setup failed, cancelled)."""
    where = f" ({run_url})" if run_url else ""
    return Outcome(stack, "failed", reason="no result",
                   detail=f"the preview job for this stack ended before the preview ran: see its log in the workflow run{where}")
