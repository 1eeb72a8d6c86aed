"""What the program asks of the target a lab runs on, whatever it is (components.backends picks one).

Kept small on purpose: a second backend (Kubernetes, issue 18) implements these five and nothing in
the model or the program's top level changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from components.model.gpus import ListedGpu
from components.model.keys import NAMESPACE
from components.model.lab_config import LabConfig
from components.model.ledger import Claim
from components.model.plan import LabPlan
from components.model.target import Target


class PreflightError(RuntimeError):
    """A reason to stop before anything is declared; str() is the whole message the user reads."""


def unreadable_target(stack_kind: str, what: str, where: str, problem: str, why: str, fix: str,
                      warn: Callable[[str], None], unless: str = "") -> None:
    """A target tfbox cannot read, whatever the backend: a machine stack stops (a check that is skipped protects
    nobody, `why` says what could happen); a local stack (`tfbox:stackKind: local`) goes on with a warning."""
    if stack_kind == "local":
        warn(f"{what}: could not read {where} ({problem}); the check was skipped (a local stack). To run it: {fix}")
        return
    raise PreflightError(f"{what}: could not read {where} ({problem}), and a machine stack does not go on without it "
                         f"({why}). Fix: {fix}; or{unless} `pulumi config set {NAMESPACE}:stackKind local`")


@dataclass(frozen=True)
class LiveClaims:
    """Other stacks' GPU claims on the target, read from the target itself."""

    claims: tuple[Claim, ...] = ()
    listing: tuple[ListedGpu, ...] | None = None  # the machine's own GPU list, when known
    problem: str | None = None  # why the target could not be read


@dataclass(frozen=True)
class LabSecrets:
    """The secrets beside the plan, as the engine hands them over (opaque to the model)."""

    password: Any = None  # tfbox:password: the default seat's
    tls_key: Any = None  # tfbox:tlsKey: the stack's shared key, when a seat serves with the shared certificate
    seat_passwords: Any = None  # tfbox:passwords: seat -> password
    seat_tls_keys: Any = None  # tfbox:tlsKeys: seat -> its own key


class Backend(Protocol):
    def target(self) -> Target:
        """Where the stack's lab runs, read from the backend's own config (neutral data for parse_config)."""
        ...

    def live_claims(self, cfg: LabConfig) -> LiveClaims:
        """The GPUs other stacks' labs on the same target hold right now."""
        ...

    def preflight(self, cfg: LabConfig, warn: Callable[[str], None]) -> None:
        """Everything checked on the target before anything is declared (reachability, the live ledger, volume
        owners, host warnings); raises PreflightError to stop, calls `warn` for what only needs saying."""
        ...

    def declare(self, plan: LabPlan, secrets: LabSecrets) -> dict[str, Any]:
        """The plan's resources; returns the stack outputs they give, by output name."""
        ...

    def read_labs(self, host: str, options: list[str]) -> tuple[list[dict[str, Any]], str]:
        """What `make doctor` and `make status` read: every container's description on a host, or why not."""
        ...
