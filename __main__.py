"""tfbox: a TensorFlow notebook lab, one Pulumi stack per machine.

read the stack's config -> parse_config (components.model.parse) -> make_plan (components.model.plan)
-> the stack's backend (components.backends) checks the target and declares the plan -> the outputs.
"""

from __future__ import annotations

from pathlib import Path

import pulumi
from pulumi.runtime.config import get_config, get_config_env, is_config_secret

from components.backends import DEFAULT, NAMES, backend
from components.config import load_other_stacks
from components.model.backend import Backend, LabSecrets, PreflightError
from components.model.cross_stack import cross_stack_problems
from components.model.errors import ConfigError
from components.model.keys import KEYS, KEYS_BY_NAME, NAMESPACE, PasswordState
from components.model.lab_config import LabConfig
from components.model.parse import parse_config
from components.model.plan import make_plan
from components.model.seats import SeatPasswordState, parse_passwords
from components.model.stack_file import read_stack_file


def read_config() -> tuple[dict[str, object], PasswordState]:
    """Raw `tfbox:` values as the engine passes them (strings), and how the password was given."""
    raw: dict[str, object] = {}
    for key in KEYS:
        if key.secret:
            continue
        value = get_config(key.full)
        if value is not None:
            raw[key.name] = value
    # Unknown keys are typos worth reporting: find them in the stack's config.
    for full in {*pulumi.runtime.config.CONFIG.get(), *get_config_env()}:
        ns, _, name = full.partition(":")
        if ns == NAMESPACE and name not in raw and not (name in KEYS_BY_NAME and KEYS_BY_NAME[name].secret):
            raw[name] = get_config(full)
    return raw, secret_state("password")


def secret_state(name: str) -> PasswordState:
    """How a secret key was given: as a secret, in plaintext, or not at all."""
    full = f"{NAMESPACE}:{name}"
    if not get_config(full):
        return "missing"
    return "secret" if is_config_secret(full) else "plaintext"


def seat_passwords(stack: str, name: str = "passwords") -> tuple[dict[str, str] | None, dict[str, SeatPasswordState]]:
    """`tfbox:passwords` (seat -> password), or another per-seat secret map (`tfbox:tlsKeys`), and how each entry was given.

    The engine passes the map as JSON text with its secrets decrypted, and says only whether the key
    holds a secret at all; the stack file, where it is here, says it per entry (`secure:` or not).
    """
    full = f"{NAMESPACE}:{name}"
    values = parse_passwords(get_config(full))
    if not values:
        return values, {}
    state: SeatPasswordState = "secret" if is_config_secret(full) else "plaintext"
    states: dict[str, SeatPasswordState] = {seat: state for seat in values}
    stack_file = Path.cwd() / f"Pulumi.{stack}.yaml"
    if stack_file.is_file():
        sf = read_stack_file(stack_file)
        for seat, given in (sf.seat_tls_key_states if name == "tlsKeys" else sf.seat_password_states).items():
            if seat in states and given == "plaintext":
                states[seat] = "plaintext"
    return values, states


def read_lab_config(target_backend: Backend) -> LabConfig:
    """The stack's config, validated: every problem at once (ConfigError), before anything is declared."""
    raw, password_state = read_config()
    stack, project = pulumi.get_stack(), pulumi.get_project()
    passwords, password_states = seat_passwords(stack)
    tls_keys, tls_key_states = seat_passwords(stack, "tlsKeys")
    problems: list[str] = []
    if passwords is None:
        problems.append(f"{NAMESPACE}:passwords: is not a map of seat name to password. Fix: set each with "
                        f"`pulumi config set --secret --path '{NAMESPACE}:passwords.<seat>' --stack {stack}`.")
    if tls_keys is None:
        problems.append(f"{NAMESPACE}:tlsKeys: is not a map of seat name to PEM private key. Fix: "
                        f"`pulumi config rm {NAMESPACE}:tlsKeys --stack {stack}`, then `make tls STACK={stack}`.")
    if problems:
        raise ConfigError(problems)
    # the secrets' values are checked here (length, key matches certificate), never printed
    cfg = parse_config(raw, stack=stack, project=project, password_state=password_state,
                       target=target_backend.target(), password=get_config(f"{NAMESPACE}:password"),
                       tls_key_state=secret_state("tlsKey"), tls_key=get_config(f"{NAMESPACE}:tlsKey"),
                       seat_password_states=password_states, seat_passwords=passwords,
                       seat_tls_key_states=tls_key_states, seat_tls_keys=tls_keys)
    clashes = cross_stack_problems(cfg, load_other_stacks(Path.cwd(), project, stack))
    if clashes:
        raise ConfigError(clashes)
    return cfg


def secrets_for(cfg: LabConfig) -> LabSecrets:
    """The secrets the plan's seats use, as secret Outputs; only those the stack has (a seats stack has no tfbox:password)."""
    config = pulumi.Config(NAMESPACE)
    shared_key = cfg.tls and (not cfg.seats or any(s.tls and not s.tls_own for s in cfg.seats))
    return LabSecrets(
        password=None if cfg.seats else config.require_secret("password"),
        tls_key=config.require_secret("tlsKey") if shared_key else None,
        seat_passwords=config.require_secret_object("passwords") if cfg.seats else None,
        seat_tls_keys=config.require_secret_object("tlsKeys") if any(s.tls_own for s in cfg.seats) else None,
    )


def main() -> None:
    name = get_config(f"{NAMESPACE}:backend") or DEFAULT
    if name not in NAMES:
        raise pulumi.RunError(f"{NAMESPACE}:backend: unknown backend {name!r}. Fix: write {' or '.join(NAMES)}.")
    target = backend(name)
    try:
        cfg = read_lab_config(target)
    except ConfigError as e:
        # RunError prints the message alone, without a Python traceback, and declares nothing.
        raise pulumi.RunError(str(e)) from None
    for warning in cfg.warnings:
        pulumi.log.warn(warning)
    try:
        target.preflight(cfg, pulumi.log.warn)
    except PreflightError as e:
        raise pulumi.RunError(str(e)) from None
    secrets = secrets_for(cfg)
    for name, value in target.declare(make_plan(cfg), secrets).items():
        pulumi.export(name, value)
    if not cfg.seats:
        pulumi.export("password", secrets.password)


main()
