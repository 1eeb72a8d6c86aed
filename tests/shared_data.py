"""Where the shared test data (real captures, `../shared/testdata` beside the repo) is."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def shared_testdata(*parts: str) -> Path:
    """A path below `../shared/testdata` (CI checks the clone out with `shared` beside it), or below
    $TFBOX_SHARED_TESTDATA. Missing: the test fails in CI (CI=true) and is skipped, with the reason, elsewhere
    (a clone in /tmp has no `../shared`)."""
    base = Path(os.environ.get("TFBOX_SHARED_TESTDATA") or ROOT.parent / "shared" / "testdata")
    path = base.joinpath(*parts)
    if not path.exists():
        why = f"shared test data {path} is missing: put `shared` beside the clone or set TFBOX_SHARED_TESTDATA"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    return path
