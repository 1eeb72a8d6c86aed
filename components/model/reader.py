"""Raw config values (strings from the engine, native types from YAML) read as their keys' types."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from components.model.keys import KEYS_BY_NAME, NAMESPACE

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")


class Reader:
    """Turns raw values (strings from Pulumi, native types from YAML) into typed ones, collecting problems."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw
        self.problems: list[str] = []

    def value(self, name: str) -> Any:
        key = KEYS_BY_NAME[name]
        v = self.raw.get(name)
        if v is None or (isinstance(v, str) and v == "" and key.type != "string"):
            return key.default
        if key.type == "boolean":
            if isinstance(v, bool):
                return v
            if str(v).strip().lower() in ("true", "false"):
                return str(v).strip().lower() == "true"
            self.problems.append(f"{key.full}: {v!r} is not a boolean. Fix: write true or false.")
            return key.default
        if key.type in ("array", "object"):
            return v  # JSON text from the engine or YAML from a stack file; components.model.seats reads it
        if key.type == "integer":
            try:
                if isinstance(v, bool):
                    raise ValueError
                return int(str(v).strip())
            except ValueError:
                self.problems.append(f"{key.full}: {v!r} is not a whole number. Fix: write a port such as {key.default}.")
                return key.default
        return str(v).strip() if not isinstance(v, (list, tuple)) else v

    def add(self, name: str, problem: str, fix: str) -> None:
        self.problems.append(f"{NAMESPACE}:{name}: {problem}. Fix: {fix}.")

