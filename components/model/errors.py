"""The one error a bad configuration raises."""

from __future__ import annotations


class ConfigError(ValueError):
    """All problems of a stack's configuration; str() is what the user reads."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "tfbox configuration has {} problem{}:\n{}".format(
                len(problems), "" if len(problems) == 1 else "s", "\n".join(f"  - {p}" for p in problems)
            )
        )

