"""The NemoVideo reply envelopes: from an HTTP reply to its payload, or to an error. Pure.

Every reply goes through :func:`unwrap`, which accepts each envelope the docs show:

* ``{"code": 0, "message" | "msg": "...", "data": {...}}`` (non-zero ``code`` is a
  failure even under HTTP 200);
* ``{"success": true, "data": {...}}`` / ``{"success": false, "error": "..."}``;
* a flat object with no envelope at all.

It returns the payload or raises the :mod:`core.errors` class for the code (or,
failing that, the HTTP status). The records of :mod:`core.wire` then read the
payload.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from core.coerce import first_of, message_of, to_int, to_number, to_str
from core.errors import ApiError, error_for, redact

__all__ = ["parse_retry_after", "unwrap", "unwrap_render_status"]

DEFAULT_RETRY_AFTER = 30.0
UNKNOWN_CODE = -1  # ApiError.code when the reply gives none (or is unreadable)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float:
    """Seconds to wait from a ``Retry-After`` header (seconds or HTTP date); default 30."""
    if not value:
        return DEFAULT_RETRY_AFTER
    number = to_number(value)
    if number is not None:
        return max(0.0, number)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER
    reference = now if now is not None else datetime.now(when.tzinfo).timestamp()
    return max(0.0, when.timestamp() - reference)


def _code_of(value: Any) -> int | None:
    if isinstance(value, Mapping):
        return to_int(first_of(value, "code", "errorCode", "error_code"))
    return to_int(value)


def unwrap(
    status: int,
    body: bytes | str | Any,
    *,
    retry_after: str | None = None,
    secrets: tuple[str, ...] = (),
) -> Any:
    """The payload of a reply, or raise the mapped :class:`~core.errors.ApiError`.

    ``body`` may be raw bytes/text (parsed here) or already-parsed JSON.
    ``retry_after`` is the ``Retry-After`` header; ``secrets`` are strings (the
    token) that must not appear in an error message.
    """
    if isinstance(body, bytes | str):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        try:
            body = json.loads(text) if text.strip() else None
        except ValueError:
            if status >= 400:
                raise _error(status, text.strip()[:200], status, retry_after, secrets) from None
            raise ApiError(UNKNOWN_CODE, "unreadable reply from NemoVideo", status=status) from None

    if isinstance(body, Mapping):
        code = _code_of(body.get("code"))
        message = message_of(body)
        if code is not None and code != 0:
            raise _error(code, message, status, retry_after, secrets, body.get("data"))
        success = body.get("success")
        if success is False or (isinstance(success, str) and success.lower() == "false"):
            error_code = _code_of(body.get("error")) or (status if status >= 400 else None)
            raise _error(error_code or 0, message, status, retry_after, secrets)
        if status >= 400:
            raise _error(status, message, status, retry_after, secrets, body.get("data"))
        if code is not None or success is not None:
            # An envelope: the payload is "data" (flat success replies keep the rest).
            if "data" in body:
                return body["data"]
            return {k: v for k, v in body.items() if k not in ("code", "success", "message", "msg")}
        return body  # flat
    if status >= 400:
        raise _error(status, "", status, retry_after, secrets)
    return body


def unwrap_render_status(
    status: int,
    body: bytes | str | Any,
    *,
    retry_after: str | None = None,
    secrets: tuple[str, ...] = (),
) -> Any:
    """Like :func:`unwrap`, but a failed *render* is a status, not an error.

    A wrapped poll reply may say ``{"success": false, "error": "...", "data":
    {"status": "failed", ...}}``: the call worked, the render did not.
    """
    if isinstance(body, bytes | str):
        try:
            parsed = json.loads(body) if body.strip() else None
        except ValueError:
            parsed = None
        if parsed is not None:
            body = parsed
    if isinstance(body, Mapping) and status < 400 and body.get("success") is False:
        data = body.get("data")
        if isinstance(data, Mapping) and "status" in data:
            merged = dict(data)
            merged.setdefault("error", body.get("error"))
            return merged
    return unwrap(status, body, retry_after=retry_after, secrets=secrets)


def _error(
    code: int,
    message: str,
    status: int,
    retry_after: str | None,
    secrets: tuple[str, ...],
    data: Any = None,
) -> ApiError:
    if code == 0:
        code = status if status >= 400 else UNKNOWN_CODE
    if status == 429:
        code = 429  # the status is the stronger statement: "not processed, come back"
    user_id = to_str(data.get("user_id")) if isinstance(data, Mapping) else None
    return error_for(
        code,
        redact(message, secrets),
        status=status,
        retry_after=parse_retry_after(retry_after) if code == 429 else None,
        user_id=user_id,
    )
