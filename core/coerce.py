"""Tolerant coercion of wire values: the backend's numbers may be ints, floats or strings."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["first_of", "message_of", "to_int", "to_number", "to_str"]


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


def to_int(value: Any) -> int | None:
    """An integer from any number-like value, or None."""
    number = to_number(value)
    return int(number) if number is not None else None


def to_str(value: Any) -> str | None:
    """A non-empty string (numeric ids become strings), or None."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # numeric ids (session ids are numeric strings, but not always)
    return None


def first_of(data: Mapping[str, Any], *keys: str) -> Any:
    """The value of the first of ``keys`` present and not None in ``data``."""
    for key in keys:
        if key in data and data[key] is not None:
            return data[key]
    return None


def message_of(body: Mapping[str, Any]) -> str:
    """The first human message in an error body (nested objects searched too); "" if none."""
    for key in ("message", "msg", "error", "detail", "errorMessage", "error_message"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, Mapping):
            inner = message_of(value)
            if inner:
                return inner
    return ""
