"""In CI nothing may be skipped: a skip there means a prerequisite is missing, so the run fails."""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI") == "true"
_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if IN_CI and _skipped:
        print(f"\nCI: {len(_skipped)} test(s) were skipped; in CI every test must run:", *_skipped, sep="\n  ")
        session.exitstatus = 1
