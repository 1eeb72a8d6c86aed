#!/usr/bin/env python3
"""`make fleet ACTION=preview|up|refresh|status [MACHINES=a,b]`: see ops/fleet.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ops.fleet import main

if __name__ == "__main__":
    sys.exit(main())
