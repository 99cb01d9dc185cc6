"""Checks of configuration fields shared by the frozen config dataclasses (`ModelConfig`, `SceneConfig`,
`TrainConfig`): each raises ValueError naming `<prefix><field>`, what it must be, and the value given."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def _value(config: Any, name: str) -> Any:
    return getattr(config, name)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def require_ints(config: Any, names: Iterable[str], minimum: int, prefix: str = "") -> None:
    """Every field of `names` an integer (not a bool) of at least `minimum`."""
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    if minimum == 0:
        what = "a non-negative integer"
    for name in names:
        value = _value(config, name)
        if not _is_int(value) or value < minimum:
            raise ValueError(f"{prefix}{name} must be {what}, got {value!r}")


def require_positive(config: Any, names: Iterable[str], prefix: str = "") -> None:
    """Every field of `names` a finite number > 0."""
    for name in names:
        value = _value(config, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and value > 0):
            raise ValueError(f"{prefix}{name} must be a finite number > 0, got {value!r}")


def require_non_negative(config: Any, names: Iterable[str], prefix: str = "") -> None:
    """Every field of `names` a finite number >= 0."""
    for name in names:
        value = _value(config, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{prefix}{name} must be a finite number >= 0, got {value!r}")


def require_fractions(config: Any, names: Iterable[str], prefix: str = "") -> None:
    """Every field of `names` a number in [0, 1] (NaN refused)."""
    for name in names:
        value = _value(config, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
            raise ValueError(f"{prefix}{name} must lie in [0, 1], got {value!r}")


def require_bools(config: Any, names: Iterable[str], prefix: str = "") -> None:
    """Every field of `names` true or false."""
    for name in names:
        value = _value(config, name)
        if not isinstance(value, bool):
            raise ValueError(f"{prefix}{name} must be true or false, got {value!r}")


def require_choice(config: Any, name: str, choices: Iterable[str], prefix: str = "") -> None:
    """The field `name` one of `choices`."""
    choices = tuple(choices)
    value = _value(config, name)
    if value not in choices:
        raise ValueError(f"{prefix}{name} must be one of {', '.join(choices)}, got {value!r}")
