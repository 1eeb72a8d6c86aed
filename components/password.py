"""`python -m components.password salt`, the command the docs and error messages give: kept where they say; the code is components.model.password."""

from __future__ import annotations

import sys

from components.model.password import main

if __name__ == "__main__":
    sys.exit(main())
