"""`python -m components.tls selfsigned|fingerprint …`, the command `make tls` and the docs give: kept where they say; the code is components.model.tls."""

from __future__ import annotations

import sys

from components.model.tls import main

if __name__ == "__main__":
    sys.exit(main())
