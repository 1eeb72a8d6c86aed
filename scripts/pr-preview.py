#!/usr/bin/env python3
"""`make pr-preview BASE=<ref>` and the preview workflow: see ops/pr_preview.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ops.pr_preview import main

if __name__ == "__main__":
    sys.exit(main())
