"""`make fleet ACTION=preview|up|refresh|status [MACHINES=a,b]`: one action on every machine at once.

Pulumi's Automation API (`pulumi.automation`) drives the engine on each machine stack of this
project, at most `--parallel` (4) at a time. Each machine's output is streamed with a `[machine]`
prefix; one machine failing or unreachable does not stop the others. At the end one table:
machine, host, GPUs, notebook URL, result, changes; the exit status is 0 only when every machine
succeeded. `local` stacks (the dev stack) are never part of the fleet.

The pure parts (selection, classification, the table) are plain functions tested without Pulumi.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ops.preview_comment import FAILURES, clean, password_missing
from ops.stacks import StackInfo, machine_stacks, select

ROOT = Path(__file__).resolve().parent.parent
ACTIONS = ("preview", "up", "refresh", "status")
PARALLEL = 4
SHOWN_OPS = ("create", "update", "replace", "delete")
SYMBOLS = {"create": "+", "update": "~", "replace": "+-", "delete": "-"}


@dataclass
class MachineResult:
    """One row of the fleet table."""

    machine: str
    host: str
    gpus: str = ""
    notebook: str = ""
    result: str = "ok"
    changes: dict[str, int] = field(default_factory=dict)
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.result == "ok"


def changes_text(changes: Mapping[str, int]) -> str:
    """`+2 ~1` for 2 creates and 1 update; `none` for a run that changed (or would change) nothing."""
    parts = [f"{SYMBOLS[op]}{changes[op]}" for op in SHOWN_OPS if changes.get(op)]
    return " ".join(parts) if parts else "none"


def real_changes(op_map: Mapping[str, int] | None) -> dict[str, int]:
    """The engine's change summary without the steps that change nothing (same, read, refresh)."""
    return {op: int(n) for op, n in (op_map or {}).items() if op in SHOWN_OPS and n}


def classify_error(text: str) -> str:
    """A short result for a failed run, from the CLI's own words (see ops.preview_comment.FAILURES)."""
    cleaned = clean(text)
    if password_missing(cleaned):
        return "no password"
    if "no stack named" in cleaned.lower() or "stack not found" in cleaned.lower():
        return "no stack"
    for reason, pattern, _ in FAILURES:
        if pattern.search(cleaned):
            return {"unreachable machine": "unreachable"}.get(reason, reason)
    return "failed"


def error_line(text: str) -> str:
    """The most telling line of an error, for under the table."""
    lines = [ln.strip() for ln in clean(text).splitlines() if ln.strip()]
    for ln in lines:
        low = ln.lower()
        if ln.startswith(("error:", "Error:")) or "cannot connect" in low or "is not set" in low or "violation" in low:
            return ln[:300]
    return lines[-1][:300] if lines else ""


def render_table(rows: list[MachineResult]) -> str:
    """The fleet table: one line per machine, columns aligned."""
    header = ("machine", "host", "GPUs", "notebook", "result", "changes")
    body = [(r.machine, r.host, r.gpus or "-", r.notebook or "-", r.result, changes_text(r.changes) if r.ok else "-")
            for r in rows]
    widths = [max(len(str(row[i])) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    failures = [f"{r.machine}: {r.error}" for r in rows if not r.ok and r.error]
    return "\n".join(lines + (["", *failures] if failures else []))


def exit_status(rows: list[MachineResult]) -> int:
    return 0 if rows and all(r.ok for r in rows) else 1


# --- the engine, through the Automation API --------------------------------------------------------


class Printer:
    """Whole lines from many threads, each with its machine's prefix."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __call__(self, machine: str) -> Callable[[str], None]:
        def emit(text: str) -> None:
            with self.lock:
                for line in clean(text).splitlines():
                    print(f"[{machine}] {line}", flush=True)
        return emit


def output_values(stack: Any) -> dict[str, Any]:
    """The stack's outputs as plain values; secrets stay out (the password is never shown)."""
    return {k: v.value for k, v in stack.outputs().items() if not v.secret}


def run_action(stack: Any, action: str, emit: Callable[[str], None]) -> dict[str, int]:
    """Run one action on one stack; its resource changes. `preview` and `up` refresh first: they act
    on what is on the machine now (a preview from the last state alone never contacts the machine)."""
    if action == "up":
        res = stack.up(on_output=emit, color="never", policy_packs=["policy"], refresh=True)
        return real_changes(res.summary.resource_changes)
    if action == "preview":
        res = stack.preview(on_output=emit, color="never", policy_packs=["policy"], diff=True, refresh=True)
        return real_changes(res.change_summary)
    if action == "refresh":
        res = stack.refresh(on_output=emit, color="never")
        return real_changes(res.summary.resource_changes)
    info = stack.info(show_secrets=False)
    emit(f"last update: {info.kind} {info.result} at {info.end_time or info.start_time}" if info else "never deployed")
    return {}


def select_stack(ws: Any, info: StackInfo) -> tuple[Any, MachineResult | None]:
    """The Automation API stack, or the table row that says why there is none. Runs `pulumi stack
    select`, which writes the workspace file: called one machine after the other, never in parallel."""
    from pulumi import automation as auto
    from pulumi.automation._stack import StackInitMode

    try:
        return auto.Stack(info.name, ws, StackInitMode.SELECT), None
    except auto.errors.CommandError as e:
        result = "no stack" if isinstance(e, auto.errors.StackNotFoundError) else classify_error(str(e))
        return None, MachineResult(info.name, info.where, gpus=info.gpus, result=result,
                                   error=f"stack {info.name} is not in the backend: create it with `make machine NAME={info.name} HOST=...`"
                                   if result == "no stack" else error_line(str(e)))


def one_machine(stack: Any, info: StackInfo, action: str, printer: Printer) -> MachineResult:
    from pulumi import automation as auto

    row = MachineResult(info.name, info.where, gpus=info.gpus)
    emit = printer(info.name)
    if not info.password_set and action in ("preview", "up"):
        row.result, row.error = "no password", f"run: pulumi config set --secret tfbox:password --stack {info.name}"
        return row
    try:
        row.changes = run_action(stack, action, emit)
    except auto.errors.CommandError as e:
        text = str(e)
        row.result, row.error = classify_error(text), error_line(text)
        emit(f"{action} failed: {row.error}")
    try:
        outputs = output_values(stack)
    except auto.errors.CommandError:
        outputs = {}
    row.notebook = str(outputs.get("notebookUrl") or "")
    row.gpus = str(outputs.get("gpus") or info.gpus or "")
    return row


def pulumi_on_path(root: Path) -> dict[str, str]:
    """The environment scripts/preview.sh sets up: the CLI (toolchain/ensure.sh), the project's backend
    and passphrase defaults."""
    env = dict(os.environ)
    if shutil.which("pulumi") is None:
        bindir = subprocess.run([str(root / "toolchain" / "ensure.sh")], capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        env["PATH"] = f"{bindir}:{env['PATH']}"
        os.environ["PATH"] = env["PATH"]
    env.setdefault("PULUMI_SKIP_UPDATE_CHECK", "1")
    env.setdefault("PULUMI_DIY_BACKEND_NO_LEGACY_WARNING", "1")
    local_state = f"file://{root}/.state"
    env.setdefault("PULUMI_BACKEND_URL", local_state)
    passphrase_file = root / ".state" / "passphrase"
    if (not env.get("PULUMI_CONFIG_PASSPHRASE") and not env.get("PULUMI_CONFIG_PASSPHRASE_FILE")
            and env["PULUMI_BACKEND_URL"] == local_state and passphrase_file.is_file()):
        env["PULUMI_CONFIG_PASSPHRASE_FILE"] = str(passphrase_file)
    return env


def run_fleet(root: Path, machines: list[StackInfo], action: str, parallel: int = PARALLEL) -> list[MachineResult]:
    from pulumi import automation as auto

    env = pulumi_on_path(root)
    if action in ("preview", "up"):
        subprocess.run([str(root / "scripts" / "policy-venv.sh")], cwd=root, check=True)
    ws = auto.LocalWorkspace(work_dir=str(root), env_vars=env)
    printer = Printer()
    selected = [select_stack(ws, m) for m in machines]
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = [pool.submit(one_machine, stack, m, action, printer) if stack is not None else None
                   for m, (stack, _) in zip(machines, selected, strict=True)]
        rows: list[MachineResult] = []
        for future, (_, row) in zip(futures, selected, strict=True):
            if future is not None:
                rows.append(future.result())
            elif row is not None:
                rows.append(row)
        return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--action", choices=ACTIONS, required=True)
    parser.add_argument("--machines", default="", help="comma-separated machine stacks (default: every machine stack)")
    parser.add_argument("--parallel", type=int, default=PARALLEL, help=f"machines at a time (default {PARALLEL})")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    machines, unknown = select(machine_stacks(args.root), [m for m in args.machines.split(",") if m.strip()])
    if unknown:
        print(f"fleet: not machine stacks here: {', '.join(unknown)} (local stacks are not part of the fleet)", file=sys.stderr)
        return 2
    if not machines:
        print("fleet: no machine stacks (Pulumi.<machine>.yaml with tfbox:stackKind: machine)", file=sys.stderr)
        return 2
    print(f"fleet: {args.action} on {', '.join(m.name for m in machines)} ({min(args.parallel, len(machines))} at a time)", flush=True)
    rows = run_fleet(args.root, machines, args.action, args.parallel)
    print()
    print(render_table(rows))
    return exit_status(rows)
