"""Typed chat events decoded from the NemoVideo ``/run_sse`` stream. Pure: no I/O.

The backend is a Google ADK agent server. Each SSE ``data:`` payload is one ADK
event (camelCase JSON): ``content.parts[]`` with ``text`` / ``thought`` /
``functionCall`` / ``functionResponse``, plus ``partial``, ``turnComplete``,
``errorCode``/``errorMessage``. An older doc shows ``{"type": "text", "content": ...}``
and ``{"type": "heartbeat"}`` instead; both shapes are accepted.

Two decoders live here:

* :class:`EventDecoder` turns one ``data:`` payload into :class:`ChatEvent` values.
  It is stateful because streamed text arrives as ``partial`` chunks *followed by*
  one non-partial event repeating the whole text: every :class:`TextEvent` is a
  delta to append, and the final event only contributes what the chunks missed.
* :class:`SSEChatDecoder` splits raw SSE text into lines and fields itself, so
  comment lines (``: ping``) surface as :class:`HeartbeatEvent` (httpx-sse's
  ``aiter_sse`` drops comments, as the SSE spec allows, which would hide the
  backend's only sign of life during a long generation).

Neither decoder ever raises on garbage: unreadable payloads become
:class:`StreamErrorEvent`.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ChatEvent",
    "EventDecoder",
    "HeartbeatEvent",
    "SSEChatDecoder",
    "StreamErrorEvent",
    "TextEvent",
    "ToolCallEvent",
    "ToolResultEvent",
    "TurnCompleteEvent",
]

log = logging.getLogger("nemo.client")

_MAX_ERROR_CHARS = 300
_NEWLINE = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class TextEvent:
    """Model text: a delta to append to what was shown so far."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallEvent:
    """The agent called a tool (``functionCall``)."""

    id: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolResultEvent:
    """A tool answered (``functionResponse``)."""

    id: str
    name: str
    response: Any = None


@dataclass(frozen=True, slots=True)
class HeartbeatEvent:
    """The backend is still working (comment line, empty ``data:``, or ``type: heartbeat``)."""


@dataclass(frozen=True, slots=True)
class StreamErrorEvent:
    """An error reported inside a started stream (``{"error": ...}`` or unreadable data)."""

    message: str


@dataclass(frozen=True, slots=True)
class TurnCompleteEvent:
    """The agent finished its turn (``turnComplete: true``)."""


ChatEvent = (
    TextEvent
    | ToolCallEvent
    | ToolResultEvent
    | HeartbeatEvent
    | StreamErrorEvent
    | TurnCompleteEvent
)


def _short(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 1] + "…"


def _error_text(value: Any) -> str:
    """A readable message out of whatever an ``error`` field holds."""
    if isinstance(value, str):
        return _short(value) or "unknown error"
    if isinstance(value, dict):
        for key in ("message", "msg", "error", "detail", "errorMessage"):
            inner = value.get(key)
            if isinstance(inner, str) and inner:
                return _short(inner)
        if "code" in value:
            return f"error {value['code']}"
    if value is None or value is True:
        return "unknown error"
    return _short(json.dumps(value, default=str))


class EventDecoder:
    """Stateful decoder of ADK event payloads (one per chat stream).

    ``feed`` takes one SSE ``data`` payload and returns zero or more events.
    """

    def __init__(self) -> None:
        # Text already emitted from partial chunks of the current model response.
        self._streamed = ""

    def feed(self, data: str) -> list[ChatEvent]:
        """Decode one ``data:`` payload. Empty data is a heartbeat; garbage is an error event."""
        if not data.strip():
            return [HeartbeatEvent()]
        stripped = data.strip()
        if stripped == "[DONE]":
            return []
        try:
            obj = json.loads(stripped)
        except ValueError:
            return [StreamErrorEvent(_short(stripped) or "unreadable stream data")]
        return self.feed_obj(obj)

    def feed_obj(self, obj: Any) -> list[ChatEvent]:
        """Decode one already-parsed event (or a list of them)."""
        if isinstance(obj, list):
            out: list[ChatEvent] = []
            for item in obj:
                out.extend(self.feed_obj(item))
            return out
        if not isinstance(obj, dict):
            if obj is None:
                return [HeartbeatEvent()]
            return [StreamErrorEvent(_short(f"unexpected stream data: {obj!r}"))]
        try:
            return self._decode(obj)
        except Exception as exc:  # defensive: never let a weird shape kill the stream
            log.debug("undecodable chat event (%s)", type(exc).__name__)
            return [StreamErrorEvent("undecodable event")]

    # -- internals --------------------------------------------------------------

    def _decode(self, obj: dict[str, Any]) -> list[ChatEvent]:
        if "error" in obj and obj["error"] not in (None, "", False):
            return [StreamErrorEvent(_error_text(obj["error"]))]
        kind = obj.get("type")
        if isinstance(kind, str) and not isinstance(obj.get("content"), dict):
            old = self._decode_old_style(obj)
            if old is not None:
                return old

        events: list[ChatEvent] = []
        if obj.get("errorCode") or obj.get("errorMessage"):
            message = obj.get("errorMessage") or f"error {obj.get('errorCode')}"
            events.append(StreamErrorEvent(_error_text(message)))

        partial = obj.get("partial") is True
        content = obj.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        texts: list[str] = []
        for part in parts if isinstance(parts, list) else []:
            if not isinstance(part, dict):
                continue
            if part.get("thought"):
                continue  # the model's private reasoning: never shown
            text = part.get("text")
            if isinstance(text, str) and text:
                texts.append(text)
            call = part.get("functionCall") or part.get("function_call")
            if isinstance(call, dict):
                args = call.get("args")
                events.append(
                    ToolCallEvent(
                        id=str(call.get("id") or ""),
                        name=str(call.get("name") or ""),
                        args=args if isinstance(args, dict) else {},
                    )
                )
            result = part.get("functionResponse") or part.get("function_response")
            if isinstance(result, dict):
                events.append(
                    ToolResultEvent(
                        id=str(result.get("id") or ""),
                        name=str(result.get("name") or ""),
                        response=result.get("response"),
                    )
                )
        if texts:
            delta = self._text_delta("".join(texts), partial=partial)
            if delta:
                # Text first: in one ADK event the model's words precede its tool calls.
                events.insert(0, TextEvent(delta))
        if obj.get("turnComplete") is True or obj.get("turn_complete") is True:
            self._streamed = ""
            events.append(TurnCompleteEvent())
        return events

    def _text_delta(self, text: str, *, partial: bool) -> str:
        """What to append for this text, given the partial chunks already emitted."""
        if partial:
            self._streamed += text
            return text
        streamed, self._streamed = self._streamed, ""
        if not streamed:
            return text
        if text.startswith(streamed):
            return text[len(streamed) :]
        # The final text differs from the chunks (rewritten, re-spaced). The chunks are
        # already on screen and a delta cannot retract them, so only genuinely new
        # trailing text is worth adding; otherwise the chunks stand as the answer.
        if " ".join(text.split()) == " ".join(streamed.split()):
            return ""
        log.debug("final text differs from streamed chunks; keeping the chunks")
        return ""

    def _decode_old_style(self, obj: dict[str, Any]) -> list[ChatEvent] | None:
        kind = str(obj.get("type", "")).lower()
        if kind in ("heartbeat", "ping", "keepalive", "keep-alive"):
            return [HeartbeatEvent()]
        if kind in ("text", "message", "delta", "content"):
            value = obj.get("content", obj.get("text", obj.get("delta", "")))
            return [TextEvent(value)] if isinstance(value, str) and value else []
        if kind == "error":
            return [StreamErrorEvent(_error_text(obj.get("message") or obj.get("content")))]
        if kind in ("done", "end", "complete", "turn_complete"):
            self._streamed = ""
            return [TurnCompleteEvent()]
        if kind in ("tool_call", "function_call"):
            args = obj.get("args")
            return [
                ToolCallEvent(
                    str(obj.get("id") or ""),
                    str(obj.get("name") or ""),
                    args if isinstance(args, dict) else {},
                )
            ]
        if kind in ("tool_result", "function_response"):
            return [
                ToolResultEvent(
                    str(obj.get("id") or ""), str(obj.get("name") or ""), obj.get("response")
                )
            ]
        return None  # unknown "type": fall through to the ADK reading


class SSEChatDecoder:
    """Incremental SSE parser feeding an :class:`EventDecoder`, keeping comments.

    Lines split on ``\\r\\n``, ``\\r`` or ``\\n`` only (the SSE rule; Python's
    ``splitlines`` would also split on U+2028 inside JSON strings). Multiple
    ``data:`` lines of one event are joined with ``\\n``; a blank line dispatches.
    """

    def __init__(self, decoder: EventDecoder | None = None) -> None:
        self.decoder = decoder or EventDecoder()
        self._buffer = ""
        self._data: list[str] = []
        self._has_data = False

    def feed(self, text: str) -> list[ChatEvent]:
        """Decode a chunk of stream text (any split); returns the completed events."""
        self._buffer += text
        events: list[ChatEvent] = []
        start = 0
        while match := _NEWLINE.search(self._buffer, start):
            if match.group() == "\r" and match.end() == len(self._buffer):
                break  # a trailing \r may be the first half of \r\n: wait for more
            events.extend(self._line(self._buffer[start : match.start()]))
            start = match.end()
        self._buffer = self._buffer[start:]
        return events

    def close(self) -> list[ChatEvent]:
        """The connection ended: dispatch whatever is pending (tolerant of a missing blank line)."""
        events: list[ChatEvent] = []
        if self._buffer:
            line, self._buffer = self._buffer.rstrip("\r"), ""
            events.extend(self._line(line))
        if self._has_data and any(self._data):
            events.extend(self._dispatch())
        self._data, self._has_data = [], False
        return events

    def _line(self, line: str) -> list[ChatEvent]:
        if not line:
            return self._dispatch() if self._has_data else []
        if line.startswith(":"):
            return [HeartbeatEvent()]
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._has_data = True
        # event/id/retry and unknown fields carry nothing for us (ADK sends none).
        return []

    def _dispatch(self) -> list[ChatEvent]:
        data, self._data, self._has_data = "\n".join(self._data), [], False
        return self.decoder.feed(data)
