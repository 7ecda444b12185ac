"""The NemoVideo wire format: envelopes and result records. Pure: no I/O.

Every reply goes through :func:`unwrap`, which accepts each envelope the docs show:

* ``{"code": 0, "message" | "msg": "...", "data": {...}}`` (non-zero ``code`` is a
  failure even under HTTP 200);
* ``{"success": true, "data": {...}}`` / ``{"success": false, "error": "..."}``;
* a flat object with no envelope at all.

It returns the payload or raises the :mod:`core.errors` class for the code (or,
failing that, the HTTP status). The ``*.from_data`` constructors then read the
payload tolerantly: missing or mistyped fields become ``None``/defaults.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

from core.coerce import to_number
from core.draft import Draft
from core.errors import ApiError, error_for, redact

__all__ = [
    "AnonToken",
    "Credits",
    "RenderState",
    "RenderStatus",
    "SessionInfo",
    "SessionState",
    "UploadResult",
    "UploadedFile",
    "parse_retry_after",
    "unwrap",
    "unwrap_render_status",
]

DEFAULT_RETRY_AFTER = 30.0
UNKNOWN_CODE = -1  # ApiError.code when the reply gives none (or is unreadable)


def _int(value: Any) -> int | None:
    number = to_number(value)
    return int(number) if number is not None else None


def _str(value: Any) -> str | None:
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # numeric ids (session ids are numeric strings, but not always)
    return None


def _get(data: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in data and data[key] is not None:
            return data[key]
    return None


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


def _message_of(body: Mapping[str, Any]) -> str:
    for key in ("message", "msg", "error", "detail", "errorMessage", "error_message"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, Mapping):
            inner = _message_of(value)
            if inner:
                return inner
    return ""


def _code_of(value: Any) -> int | None:
    if isinstance(value, Mapping):
        return _int(_get(value, "code", "errorCode", "error_code"))
    return _int(value)


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
        message = _message_of(body)
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
    user_id = _str(data.get("user_id")) if isinstance(data, Mapping) else None
    return error_for(
        code,
        redact(message, secrets),
        status=status,
        retry_after=parse_retry_after(retry_after) if code == 429 else None,
        user_id=user_id,
    )


def _timestamp(value: Any) -> float | None:
    """Unix seconds from an ISO string, seconds, or milliseconds."""
    number = to_number(value)
    if number is not None:
        return number / 1000 if number > 1e11 else number
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _mapping(data: Any) -> Mapping[str, Any]:
    return data if isinstance(data, Mapping) else {}


@dataclass(frozen=True, slots=True)
class AnonToken:
    """An anonymous token. ``repr`` never shows the token."""

    token: str = field(repr=False)
    user_id: str | None
    credits: int | None
    expires_at: float | None  # Unix seconds

    @classmethod
    def from_data(cls, data: Any) -> AnonToken:
        """Read the anonymous-token payload; raises ApiError if no token is present."""
        d = _mapping(data)
        token = _str(_get(d, "token", "access_token", "accessToken"))
        if not token:
            raise ApiError(UNKNOWN_CODE, "token reply without a token")
        expires = _timestamp(_get(d, "expires_at", "expiresAt", "expire_at", "expires"))
        return cls(
            token=token,
            user_id=_str(_get(d, "user_id", "userId")),
            credits=_int(_get(d, "credits", "credit")),
            expires_at=expires,
        )


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A new chat session (one project)."""

    session_id: str
    task_id: str | None = None

    @classmethod
    def from_data(cls, data: Any) -> SessionInfo:
        """Read the session payload; raises ApiError if no session id is present."""
        d = _mapping(data)
        session_id = _str(_get(d, "session_id", "sessionId", "id"))
        if not session_id:
            raise ApiError(UNKNOWN_CODE, "session reply without a session id")
        return cls(session_id=session_id, task_id=_str(_get(d, "task_id", "taskId")))


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """One file the backend accepted."""

    filename: str | None = None
    file_type: str | None = None
    cdn_url: str | None = None
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    hash: str | None = None

    @classmethod
    def from_data(cls, data: Any) -> UploadedFile:
        """Read one ``files[]`` item."""
        d = _mapping(data)
        return cls(
            filename=_str(_get(d, "filename", "file_name", "name")),
            file_type=_str(_get(d, "file_type", "fileType", "type")),
            cdn_url=_str(_get(d, "cdn_url", "cdnUrl", "url")),
            duration=to_number(d.get("duration")),
            width=_int(d.get("width")),
            height=_int(d.get("height")),
            fps=to_number(d.get("fps")),
            hash=_str(d.get("hash")),
        )


@dataclass(frozen=True, slots=True)
class UploadResult:
    """What an upload produced."""

    files: list[UploadedFile] = field(default_factory=list)
    session_state_applied: bool = False

    @classmethod
    def from_data(cls, data: Any) -> UploadResult:
        """Read the upload payload (a ``files`` list, or a single file object)."""
        d = _mapping(data)
        items = d.get("files")
        if not isinstance(items, list):
            items = [d] if _get(d, "cdn_url", "cdnUrl", "url", "filename") else []
        return cls(
            files=[UploadedFile.from_data(item) for item in items if isinstance(item, Mapping)],
            session_state_applied=bool(
                _get(d, "session_state_applied", "sessionStateApplied") or False
            ),
        )


@dataclass(frozen=True, slots=True)
class Credits:
    """The credit balance."""

    available: int | None
    frozen: int | None
    total: int | None

    @classmethod
    def from_data(cls, data: Any) -> Credits:
        """Read the balance payload."""
        d = _mapping(data)
        available = _int(_get(d, "available", "balance", "credits"))
        frozen = _int(d.get("frozen"))
        total = _int(d.get("total"))
        if total is None and available is not None:
            total = available + (frozen or 0)
        return cls(available=available, frozen=frozen, total=total)


@dataclass(frozen=True, slots=True)
class SessionState:
    """The latest session state: the parsed draft plus what came with it."""

    session_id: str | None
    task_id: str | None
    draft: Draft
    raw_draft: dict[str, Any] | None = field(default=None, repr=False)
    video_infos: list[Any] = field(default_factory=list, repr=False)
    generated_media: list[Any] = field(default_factory=list, repr=False)
    canvas_config: dict[str, Any] | None = field(default=None, repr=False)

    @classmethod
    def from_data(cls, data: Any) -> SessionState:
        """Read the state payload (``state`` nested or not; a draft given as JSON text too)."""
        d = _mapping(data)
        inner = _mapping(d.get("state")) or d
        raw = inner.get("draft")
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                raw = None
        raw_draft = dict(raw) if isinstance(raw, Mapping) else None
        canvas = inner.get("canvas_config", inner.get("canvasConfig"))
        return cls(
            session_id=_str(_get(d, "session_id", "sessionId")),
            task_id=_str(_get(d, "task_id", "taskId")),
            draft=Draft.from_json(raw_draft),
            raw_draft=raw_draft,
            video_infos=_list(_get(inner, "video_infos", "videoInfos")),
            generated_media=_list(_get(inner, "generated_media", "generatedMedia")),
            canvas_config=dict(canvas) if isinstance(canvas, Mapping) else None,
        )


def _list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, Mapping):
        return list(value.values())
    return []


RenderState = Literal["pending", "processing", "completed", "failed"]

_STATUS_WORDS: dict[str, RenderState] = {
    "pending": "pending",
    "queued": "pending",
    "submitted": "pending",
    "waiting": "pending",
    "created": "pending",
    "processing": "processing",
    "rendering": "processing",
    "running": "processing",
    "in_progress": "processing",
    "started": "processing",
    "completed": "completed",
    "complete": "completed",
    "done": "completed",
    "succeeded": "completed",
    "success": "completed",
    "finished": "completed",
    "failed": "failed",
    "failure": "failed",
    "error": "failed",
    "cancelled": "failed",
    "canceled": "failed",
    "timeout": "failed",
}


@dataclass(frozen=True, slots=True)
class RenderStatus:
    """One poll of a render. ``progress`` is 0-100 when known."""

    status: RenderState
    progress: int | None = None
    output_url: str | None = None
    error: str | None = None

    @property
    def done(self) -> bool:
        """True once the render completed or failed."""
        return self.status in ("completed", "failed")

    @classmethod
    def from_data(cls, data: Any) -> RenderStatus:
        """Read either shape: flat (``output.url``) or wrapped data (``outputUrl``)."""
        d = _mapping(data)
        word = _str(_get(d, "status", "state")) or ""
        output = d.get("output")
        url = _str(_get(d, "outputUrl", "output_url", "url", "videoUrl", "video_url"))
        if url is None and isinstance(output, Mapping):
            url = _str(_get(output, "url", "outputUrl", "cdn_url"))
        elif url is None and isinstance(output, str):
            url = output or None
        status = _STATUS_WORDS.get(word.strip().lower().replace(" ", "_").replace("-", "_"))
        if status is None:
            status = "completed" if url else "pending"
        progress_value = to_number(d.get("progress"))
        progress = None
        if progress_value is not None:
            if 0 < progress_value < 1 and isinstance(d.get("progress"), float):
                progress_value *= 100  # a fraction
            progress = max(0, min(100, round(progress_value)))
        if status == "completed":
            progress = 100
        error = _get(d, "error", "errorMessage", "error_message", "message")
        error_text = _message_of({"error": error}) if error is not None else None
        return cls(
            status=status,
            progress=progress,
            output_url=url,
            error=redact(error_text) if error_text and status == "failed" else None,
        )
