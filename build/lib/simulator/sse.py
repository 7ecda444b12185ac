"""Server-sent event shapes of the NemoVideo chat endpoint.

Two dialects are produced:

* Google-ADK events (current): ``data: {json}`` + blank line, camelCase keys, text in
  ``content.parts[].text``; streamed text comes as ``partial: true`` chunks followed by
  ONE non-partial event holding the whole text.
* The older ``{"type": "text", "content": ...}`` / ``{"type": "heartbeat"}`` events, where
  text chunks are deltas and no aggregated event follows.

Heartbeats are comment lines (``: ping``) or empty ``data:`` lines. Streams have no end
marker: they end when the connection closes.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from typing import Any

AUTHOR = "nemo_agent"

#: Sentinels pushed through a turn's queue besides byte chunks.
END = b""  # close the stream normally
DROP = b"\x00drop"  # cut the connection abruptly


def encode(obj: Any) -> bytes:
    """One SSE event: a ``data:`` line with compact JSON, then a blank line."""
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def heartbeat(n: int, old_style: bool) -> bytes:
    """The ``n``-th heartbeat: alternately ``: ping`` and an empty ``data:`` line
    (old style: also ``{"type": "heartbeat"}`` events)."""
    if old_style and n % 2 == 1:
        return encode({"type": "heartbeat"})
    return b": ping\n\n" if n % 2 == 0 else b"data:\n\n"


class AdkEvents:
    """Builds the ADK events of one invocation (one chat turn)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self.invocation_id = f"e-{uuid.UUID(int=rng.getrandbits(128))}"

    def _event(self, parts: list[dict[str, Any]], role: str = "model", **extra: Any) -> bytes:
        event: dict[str, Any] = {
            "content": {"parts": parts, "role": role},
            "invocationId": self.invocation_id,
            "author": AUTHOR,
            "actions": {"stateDelta": {}, "artifactDelta": {}, "requestedAuthConfigs": {}},
            "id": f"{self._rng.getrandbits(32):08x}",
            "timestamp": round(time.time(), 6),
        }
        event.update({k: v for k, v in extra.items() if v is not None})
        return encode(event)

    def thought(self, text: str) -> bytes:
        """A reasoning part (``thought: true``) that clients must not show."""
        return self._event([{"text": text, "thought": True}])

    def text(self, text: str, *, partial: bool, turn_complete: bool = False) -> bytes:
        """A text event; ``partial`` chunks are followed by one non-partial aggregate."""
        return self._event(
            [{"text": text}],
            partial=True if partial else None,
            turnComplete=True if turn_complete else None,
        )

    def function_call(self, call_id: str, name: str, args: dict[str, Any]) -> bytes:
        """The agent calling one of its tools."""
        return self._event([{"functionCall": {"id": call_id, "name": name, "args": args}}])

    def function_response(
        self, call_id: str, name: str, response: dict[str, Any], state_delta: dict[str, Any]
    ) -> bytes:
        """The tool's result, with the state it changed in ``actions.stateDelta``."""
        part = {"functionResponse": {"id": call_id, "name": name, "response": response}}
        raw = self._event([part], role="user")
        event = json.loads(raw[6:])
        event["actions"]["stateDelta"] = state_delta
        return encode(event)

    def error(self, code: str, message: str) -> bytes:
        """An ADK-native error event (``errorCode``/``errorMessage``)."""
        event = {
            "invocationId": self.invocation_id,
            "author": AUTHOR,
            "errorCode": code,
            "errorMessage": message,
            "id": f"{self._rng.getrandbits(32):08x}",
            "timestamp": round(time.time(), 6),
        }
        return encode(event)


def old_text(chunk: str) -> bytes:
    """An older-dialect text delta."""
    return encode({"type": "text", "content": chunk})


def stream_error(variant: int) -> bytes:
    """An in-stream error under HTTP 200; variant 1 is deliberately not valid JSON."""
    if variant % 2 == 0:
        return encode({"error": "Agent execution failed: upstream model timeout"})
    return b'data: {"error": "Internal error: unexpected end of gener\n\n'


def split_chunks(text: str, rng: random.Random) -> list[str]:
    """Split ``text`` into 3-8 consecutive pieces (at spaces) whose concatenation is
    ``text``."""
    words = text.split(" ")
    n = max(1, min(len(words), rng.randint(3, 8)))
    size = -(-len(words) // n)
    pieces = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    return [p + (" " if i < len(pieces) - 1 else "") for i, p in enumerate(pieces)]
