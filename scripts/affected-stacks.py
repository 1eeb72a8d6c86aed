#!/usr/bin/env python3
"""Which machine stacks a change affects, as a JSON list for a GitHub Actions matrix.

A change to one `Pulumi.<machine>.yaml` affects that stack only; any other change (the program,
components, `Pulumi.yaml`, requirements, the policy pack, ...) affects every stack, because every
stack runs the same code. Stacks are the `Pulumi.<machine>.yaml` files at the repository root;
a deleted stack file is not previewed (there is nothing left to preview it with).

    git diff --name-only BASE...HEAD | scripts/affected-stacks.py --changed-files -
    scripts/affected-stacks.py --all
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path

STACK_FILE = re.compile(r"^Pulumi\.(?P<stack>[^./][^/]*)\.yaml$")


def stack_of(path: str) -> str | None:
    """The stack a root-level `Pulumi.<stack>.yaml` path names, else None (`Pulumi.yaml` is shared code)."""
    match = STACK_FILE.match(path.strip().removeprefix("./"))
    return match.group("stack") if match else None


def stacks_on_disk(root: Path) -> list[str]:
    """Every stack with a committed `Pulumi.<stack>.yaml` at the root, sorted."""
    return sorted(s for p in root.glob("Pulumi.*.yaml") if (s := stack_of(p.name)) is not None)


def affected(changed: Iterable[str], existing: Iterable[str]) -> list[str]:
    """The stacks to preview for `changed` paths, given the stacks that still exist."""
    existing_set = set(existing)
    chosen: set[str] = set()
    for raw in changed:
        path = raw.strip()
        if not path:
            continue
        stack = stack_of(path)
        if stack is None:
            return sorted(existing_set)  # shared code: every stack
        chosen.add(stack)
    return sorted(chosen & existing_set)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent, help="repository root")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--all", action="store_true", help="every stack (drift checks)")
    group.add_argument("--changed-files", metavar="FILE", help="file with one changed path per line, - for stdin")
    args = parser.parse_args(argv)

    existing = stacks_on_disk(args.root)
    if args.all:
        stacks = existing
    else:
        text = sys.stdin.read() if args.changed_files == "-" else Path(args.changed_files).read_text()
        stacks = affected(text.splitlines(), existing)
    print(json.dumps(stacks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
