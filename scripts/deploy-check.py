#!/usr/bin/env python3
"""The deploy workflow's guard: see ops/deploy_check.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ops.deploy_check import main

if __name__ == "__main__":
    sys.exit(main())
