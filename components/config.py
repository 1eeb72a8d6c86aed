"""The stack-file checker: `python -m components.config --stack-file Pulumi.<machine>.yaml`.

A committed stack file checked without Pulumi or a host, with the same rules as the program
(components.model.parse): every problem at once, each naming its key and the fix, including
clashes with the sibling stack files. Each file's target (its `docker:host`, …) is read by its
backend (components.backends).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from components.backends import stack_file_target
from components.model.cross_stack import cross_stack_problems
from components.model.errors import ConfigError
from components.model.keys import PasswordState
from components.model.lab_config import LabConfig
from components.model.parse import parse_config
from components.model.stack_file import read_stack_file, stack_files, unset_password


def load_other_stacks(project_dir: Path, project: str, exclude: str) -> list[LabConfig]:
    """The other committed stacks that parse; their own problems are theirs to report."""
    out: list[LabConfig] = []
    for path in stack_files(project_dir):
        sf = read_stack_file(path)
        if sf.stack == exclude:
            continue
        try:
            out.append(parse_config(sf.raw, stack=sf.stack, project=project, password_state=unset_password(sf),
                                    target=stack_file_target(sf.provider_config, ssh_opts=False), require_salt=False,
                                    require_seat_passwords=False))
        except ConfigError:
            continue
    return out


def check_stack_file(path: Path, project: str = "tfbox", defaults: Mapping[str, Any] | None = None,
                     siblings: bool = True) -> LabConfig:
    """Validate one committed stack file, including clashes with its siblings.

    A committed file may leave the password, its salt and the TLS key unset: they are made per
    stack (`make up`, `make machine`, `make tls`), and the program refuses to run without them.
    `defaults` are the project's own (Pulumi.yaml `config:`), which Pulumi applies under the file's;
    `siblings` False leaves out the clashes with the other stack files (a tool looking at one lab).
    """
    sf = read_stack_file(path)
    if defaults:
        sf = replace(sf, raw={**defaults, **sf.raw})
    state: PasswordState = unset_password(sf)
    tls_state = None if sf.tls_key_state == "missing" else sf.tls_key_state
    cfg = parse_config(sf.raw, stack=sf.stack, project=project, password_state=state,
                       target=stack_file_target(sf.provider_config), tls_key_state=tls_state, require_salt=False,
                       seat_password_states=sf.seat_password_states, require_seat_passwords=False,
                       seat_tls_key_states=sf.seat_tls_key_states)
    problems = cross_stack_problems(cfg, load_other_stacks(path.parent, project, sf.stack)) if siblings else []
    if problems:
        raise ConfigError(problems)
    return cfg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check tfbox stack files without Pulumi or Docker.")
    parser.add_argument("--stack-file", type=Path, action="append", required=True)
    args = parser.parse_args(argv)
    status = 0
    for path in args.stack_file:
        try:
            cfg = check_stack_file(path)
        except ConfigError as e:
            print(f"{path}: {e}", file=sys.stderr)
            status = 1
            continue
        except (OSError, yaml.YAMLError) as e:
            print(f"{path}: cannot read: {e}", file=sys.stderr)
            status = 1
            continue
        for w in cfg.warnings:
            print(f"{path}: warning: {w}", file=sys.stderr)
        gpus = (", ".join(f"seat {s.name}: {s.gpus.describe()}" for s in cfg.seats) if cfg.seats
                else f"{cfg.gpus.describe()} GPUs")
        print(f"{path}: ok ({gpus}, image {cfg.image}, TensorBoard {cfg.tensorboard_mode})")
    return status


if __name__ == "__main__":
    sys.exit(main())
