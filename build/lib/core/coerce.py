"""Tolerant coercion of wire values: the backend's numbers may be ints, floats or strings."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["to_number"]


def to_number(value: Any) -> float | None:
    """A finite number, or None (bools and non-numeric strings are not numbers)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None
