"""A target tfbox cannot read: a machine stack stops with the fix, a local stack goes on with a warning."""

from __future__ import annotations

import pytest

from components.model.backend import PreflightError, unreadable_target


def test_a_machine_stack_stops_naming_the_target_the_risk_and_both_fixes() -> None:
    with pytest.raises(PreflightError) as e:
        unreadable_target("machine", "GPU ledger", "ssh://me@box", "timed out", "another stack's GPUs could be handed to this one",
                          "run `docker ps` on the box", print, unless=", if this is your own Docker,")
    assert str(e.value) == ("GPU ledger: could not read ssh://me@box (timed out), and a machine stack does not go on without it "
                            "(another stack's GPUs could be handed to this one). Fix: run `docker ps` on the box; or, if this is "
                            "your own Docker, `pulumi config set tfbox:stackKind local`")


def test_a_local_stack_is_warned_and_goes_on() -> None:
    said: list[str] = []
    unreadable_target("local", "GPU scheduling", "the cluster", "refused", "a seat would wait Pending", "make kubectl reach it", said.append)
    assert said == ["GPU scheduling: could not read the cluster (refused); the check was skipped (a local stack). "
                    "To run it: make kubectl reach it"]
