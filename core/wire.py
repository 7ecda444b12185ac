"""The NemoVideo result records, read tolerantly from a reply's payload. Pure: no I/O.

:func:`core.envelope.unwrap` turns a reply into its payload (or an error); the
``*.from_data`` constructors here then read the payload: missing or mistyped
fields become ``None``/defaults.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.coerce import first_of, message_of, to_int, to_number, to_str
from core.draft import Draft
from core.envelope import UNKNOWN_CODE
from core.errors import ApiError, redact

__all__ = [
    "AnonToken",
    "Credits",
    "RenderState",
    "RenderStatus",
    "SessionInfo",
    "SessionState",
    "UploadResult",
    "UploadedFile",
]


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
        token = to_str(first_of(d, "token", "access_token", "accessToken"))
        if not token:
            raise ApiError(UNKNOWN_CODE, "token reply without a token")
        expires = _timestamp(first_of(d, "expires_at", "expiresAt", "expire_at", "expires"))
        return cls(
            token=token,
            user_id=to_str(first_of(d, "user_id", "userId")),
            credits=to_int(first_of(d, "credits", "credit")),
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
        session_id = to_str(first_of(d, "session_id", "sessionId", "id"))
        if not session_id:
            raise ApiError(UNKNOWN_CODE, "session reply without a session id")
        return cls(session_id=session_id, task_id=to_str(first_of(d, "task_id", "taskId")))


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
            filename=to_str(first_of(d, "filename", "file_name", "name")),
            file_type=to_str(first_of(d, "file_type", "fileType", "type")),
            cdn_url=to_str(first_of(d, "cdn_url", "cdnUrl", "url")),
            duration=to_number(d.get("duration")),
            width=to_int(d.get("width")),
            height=to_int(d.get("height")),
            fps=to_number(d.get("fps")),
            hash=to_str(d.get("hash")),
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
            items = [d] if first_of(d, "cdn_url", "cdnUrl", "url", "filename") else []
        return cls(
            files=[UploadedFile.from_data(item) for item in items if isinstance(item, Mapping)],
            session_state_applied=bool(
                first_of(d, "session_state_applied", "sessionStateApplied") or False
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
        available = to_int(first_of(d, "available", "balance", "credits"))
        frozen = to_int(d.get("frozen"))
        total = to_int(d.get("total"))
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
            session_id=to_str(first_of(d, "session_id", "sessionId")),
            task_id=to_str(first_of(d, "task_id", "taskId")),
            draft=Draft.from_json(raw_draft),
            raw_draft=raw_draft,
            video_infos=_list(first_of(inner, "video_infos", "videoInfos")),
            generated_media=_list(first_of(inner, "generated_media", "generatedMedia")),
            canvas_config=dict(canvas) if isinstance(canvas, Mapping) else None,
        )


def _list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, Mapping):
        return list(value.values())
    return []


class RenderState(enum.StrEnum):
    """Where a render stands: the backend's words, folded into ours (a ``str``, as stored)."""

    #: Recorded by us, not yet accepted by the backend.
    SUBMITTING = "submitting"
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def done(self) -> bool:
        """True once the render completed or failed."""
        return self in (RenderState.COMPLETED, RenderState.FAILED)


_P, _R, _C, _F = (
    RenderState.PENDING,
    RenderState.PROCESSING,
    RenderState.COMPLETED,
    RenderState.FAILED,
)
_STATUS_WORDS: dict[str, RenderState] = {
    **dict.fromkeys(("pending", "queued", "submitted", "waiting", "created"), _P),
    **dict.fromkeys(("processing", "rendering", "running", "in_progress", "started"), _R),
    **dict.fromkeys(("completed", "complete", "done", "succeeded", "success", "finished"), _C),
    **dict.fromkeys(("failed", "failure", "error", "cancelled", "canceled", "timeout"), _F),
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
        return self.status.done

    @classmethod
    def from_data(cls, data: Any) -> RenderStatus:
        """Read either shape: flat (``output.url``) or wrapped data (``outputUrl``)."""
        d = _mapping(data)
        word = to_str(first_of(d, "status", "state")) or ""
        output = d.get("output")
        url = to_str(first_of(d, "outputUrl", "output_url", "url", "videoUrl", "video_url"))
        if url is None and isinstance(output, Mapping):
            url = to_str(first_of(output, "url", "outputUrl", "cdn_url"))
        elif url is None and isinstance(output, str):
            url = output or None
        status = _STATUS_WORDS.get(word.strip().lower().replace(" ", "_").replace("-", "_"))
        if status is None:
            status = RenderState.COMPLETED if url else RenderState.PENDING
        progress_value = to_number(d.get("progress"))
        progress = None
        if progress_value is not None:
            if 0 < progress_value < 1 and isinstance(d.get("progress"), float):
                progress_value *= 100  # a fraction
            progress = max(0, min(100, round(progress_value)))
        if status is RenderState.COMPLETED:
            progress = 100
        error = first_of(d, "error", "errorMessage", "error_message", "message")
        error_text = message_of({"error": error}) if error is not None else None
        return cls(
            status=status,
            progress=progress,
            output_url=url,
            error=redact(error_text) if error_text and status is RenderState.FAILED else None,
        )
