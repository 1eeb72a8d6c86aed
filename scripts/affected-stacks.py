#!/usr/bin/env python3
"""Which machine stacks a change affects, as a JSON list for a GitHub Actions matrix.

A change to one `Pulumi.<machine>.yaml` affects that stack only; any other change (the program,
components, `Pulumi.yaml`, requirements, the policy pack, ...) affects every stack, because every
stack runs the same code. Stacks are the `Pulumi.<machine>.yaml` files at the repository root;
a deleted stack file is not previewed (there is nothing left to preview it with), and a stack
marked `tfbox:stackKind: local` (the dev stack: one person's own Docker and file backend) never is.

    git diff --name-only BASE...HEAD | scripts/affected-stacks.py --changed-files -
    scripts/affected-stacks.py --all

Needs PyYAML (the workflows install the pin from requirements.txt).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ops.stacks import affected, machine_stacks  # noqa: E402


def stacks_on_disk(root: Path) -> list[str]:
    """Every machine stack with a committed `Pulumi.<stack>.yaml` at the root, sorted; local stacks left out."""
    return [s.name for s in machine_stacks(root)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--all", action="store_true", help="every machine stack (drift checks)")
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
