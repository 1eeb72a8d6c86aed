#!/usr/bin/env python3
"""`make status [STACK=…] [JSON=1]`: see ops/status.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ops.status import main

if __name__ == "__main__":
    sys.exit(main())
