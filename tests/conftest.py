"""In CI nothing may be skipped: a skip there means a prerequisite is missing, so the run fails.

How pytest-xdist (`-n N`, as scripts/test.sh runs the suite) shares the tests out: a test file is one unit
(its module fixtures are set up once, its tests run in their order), and the real-engine files that use a
session resource that a module stops, kills or resets for the next (SHARED) are one unit together, so that
only one worker starts that resource and its modules run one after the other, as without xdist.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

import pytest

IN_CI = os.environ.get("CI") == "true"
_skipped: list[str] = []

ROOT = Path(__file__).resolve().parents[1]
# tests/e2e/conftest.py's session fixtures that a module stops or restarts (docker_b) or resets (ssh_boxes);
# docker_a is one per worker instead, and every other daemon, box or directory is a single module's
SHARED = ("docker_b", "ssh_boxes")
# the longest units first (measured 2026-12-07), so that no worker starts a long one when the others are
# done; units not named here follow in file order, the unit tests last
SLOW_FIRST = ("docker_b", "ssh_boxes", "tests/e2e/test_bench_smoke.py", "tests/e2e/test_gpu_proof.py",
              "tests/e2e/test_bad_input.py", "tests/e2e/test_gpus.py", "tests/e2e/test_newer_docker.py",
              "tests/e2e/test_auth.py", "tests/e2e/test_attacker_gets.py", "tests/e2e/test_seats.py")


@functools.cache
def xdist_unit(test_file: str) -> str:
    """The unit a test file's tests run in: the first SHARED fixture its source names, else the file."""
    if test_file.startswith("tests/e2e/"):
        source = (ROOT / test_file).read_text(errors="replace")
        for fixture in SHARED:
            if re.search(rf"\b{fixture}\b", source):
                return fixture
    return test_file


def unit_order(test_file: str) -> tuple[int, int]:
    unit = xdist_unit(test_file)
    return (SLOW_FIRST.index(unit), 0) if unit in SLOW_FIRST else (len(SLOW_FIRST), not test_file.startswith("tests/e2e/"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """On an xdist worker: the order the scheduler hands the units out in (every worker collects the same).
    sorted() is stable, so a file's own order stays."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items[:] = sorted(items, key=lambda item: unit_order(item.nodeid.split("::", 1)[0]))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's LoadScopeScheduling with xdist_unit as the scope, in collection order. (xdist 3.8's own
    `--dist loadgroup` cannot be used: it renames node ids through an attribute pytest 9.2 no longer reads.)"""
    if config.getvalue("dist") == "each":
        return None  # every test on every worker: nothing to share out
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return xdist_unit(nodeid.split("::", 1)[0])

    config.option.loadscopereorder = False  # not by test count: SLOW_FIRST's order
    return UnitScheduling(config, log)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if IN_CI and _skipped:
        print(f"\nCI: {len(_skipped)} test(s) were skipped; in CI every test must run:", *_skipped, sep="\n  ")
        session.exitstatus = 1
