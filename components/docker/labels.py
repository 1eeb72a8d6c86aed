"""Docker labels as the provider wants them: a sorted list of {label, value} args."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")


def docker_labels(labels: Mapping[str, str], make: Callable[..., T]) -> list[T]:
    """Sorted so the same labels always give the same inputs (no diff between runs)."""
    return [make(label=k, value=v) for k, v in sorted(labels.items())]
