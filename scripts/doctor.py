#!/usr/bin/env python3
"""`make doctor [STACK=…]` / `make repair [STACK=…]`: see ops/doctor.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ops.doctor import main

if __name__ == "__main__":
    sys.exit(main())
