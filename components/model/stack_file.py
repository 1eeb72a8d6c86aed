"""`Pulumi.<stack>.yaml` read the way Pulumi reads it, for the checks that run without the engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.model.keys import NAMESPACE, PasswordState
from components.model.seats import SeatPasswordState, raw_seats, stack_file_password_states


@dataclass(frozen=True)
class StackFile:
    stack: str
    path: Path
    raw: dict[str, Any]
    password_state: PasswordState
    tls_key_state: PasswordState = "missing"
    seat_password_states: dict[str, SeatPasswordState] = field(default_factory=dict)
    seat_tls_key_states: dict[str, SeatPasswordState] = field(default_factory=dict)
    # every other namespace's keys as the file has them (`docker:host`, …): the backend reads its own (components.model.target)
    provider_config: dict[str, Any] = field(default_factory=dict)


# libyaml's loader where PyYAML has it: every `up` reads the sibling stack files, ten times faster in C
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_stack_file(path: Path) -> StackFile:
    """Read `Pulumi.<stack>.yaml` the way Pulumi does: `config:` with namespaced keys."""
    doc = yaml.load(path.read_text(), Loader=_YAML_LOADER) or {}
    config = doc.get("config") or {}
    raw: dict[str, Any] = {}
    state: PasswordState = "missing"
    tls_key_state: PasswordState = "missing"
    seat_states: dict[str, SeatPasswordState] = {}
    provider: dict[str, Any] = {}
    seat_tls_states: dict[str, SeatPasswordState] = {}
    for full, value in config.items():
        ns, _, name = str(full).partition(":")
        if ns != NAMESPACE:
            provider[str(full)] = value
            continue
        if name == "passwords":
            seat_states = stack_file_password_states(value)
            continue
        if name == "tlsKeys":
            seat_tls_states = stack_file_password_states(value)
            continue
        if name in ("password", "tlsKey"):
            given: PasswordState = "secret" if isinstance(value, dict) and "secure" in value else "plaintext"
            if name == "password":
                state = given
            else:
                tls_key_state = given
            continue
        raw[name] = value
    stack = path.name[len("Pulumi."):-len(".yaml")]
    return StackFile(stack, path, raw, state, tls_key_state, seat_states, seat_tls_states, provider)


def stack_files(project_dir: Path) -> list[Path]:
    return sorted(p for p in project_dir.glob("Pulumi.*.yaml") if p.name != "Pulumi.yaml")



def unset_password(sf: StackFile) -> PasswordState:
    """A committed file's password as the checker takes it: one left unset is set per machine (`make up`),
    except on a stack with seats, which has none (its seats' passwords are tfbox:passwords)."""
    if sf.password_state != "missing" or raw_seats(sf.raw.get("seats"))[0]:
        return sf.password_state
    return "secret"
