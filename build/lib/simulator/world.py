"""The simulator's backend state: users, tokens, sessions, render jobs and faults."""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.config import FAULT_ENDPOINTS, SimConfig
from simulator.state import Draft, new_draft


@dataclass
class User:
    """A backend user; credits follow the user across tokens."""

    user_id: str
    client_id: str
    total: int
    frozen: int = 0

    @property
    def available(self) -> int:
        """Credits not frozen by a running generation."""
        return max(0, self.total - self.frozen)


@dataclass
class Token:
    """An anonymous token; ``revoked`` is set when a fault expires it."""

    token: str
    user_id: str
    client_id: str
    expires_at: float
    revoked: bool = False

    def valid(self, now: float) -> bool:
        """True while not revoked and not past ``expires_at``."""
        return not self.revoked and now < self.expires_at


@dataclass
class Session:
    """One agent session: its draft, uploads and the chats running on it."""

    session_id: str
    task_id: str
    user_id: str
    rng: random.Random
    language: str = "en"
    draft: Draft = field(default_factory=new_draft)
    draft_version: int = 0
    video_infos: list[dict[str, Any]] = field(default_factory=list)
    generated_media: list[dict[str, Any]] = field(default_factory=list)
    running: Counter[str] = field(default_factory=Counter)  # message text -> turns running

    def state(self) -> dict[str, Any]:
        """The ``state`` object of the state endpoint."""
        m = self.draft.get("m", {})
        return {
            "draft": self.draft,
            "video_infos": self.video_infos,
            "generated_media": self.generated_media,
            "canvas_config": {
                "width": m.get("width", 1920),
                "height": m.get("height", 1080),
                "fps": m.get("fps", 30),
                "background": "#000000",
            },
        }


@dataclass
class RenderJob:
    """An export job whose status is a function of time since submission."""

    render_id: str
    session_id: str
    created: float
    seconds: float
    wrapped: bool  # reply shape: {"success", "data"} vs flat
    title: str
    fail: bool = False
    cancelled_at: float | None = None
    output_name: str | None = None
    output_path: Path | None = None
    counted: bool = False

    def status(self, now: float) -> tuple[str, int]:
        """``(status, progress)`` at time ``now``."""
        elapsed = (self.cancelled_at or now) - self.created
        pending = min(0.5, self.seconds * 0.1)
        if self.cancelled_at is not None:
            return "cancelled", self._progress(elapsed, pending)
        if self.fail and elapsed >= self.seconds * 0.5:
            return "failed", self._progress(self.seconds * 0.5, pending)
        if elapsed < pending:
            return "pending", 0
        if elapsed < self.seconds or self.output_path is None:
            return "processing", self._progress(elapsed, pending)
        return "completed", 100

    def _progress(self, elapsed: float, pending: float) -> int:
        span = max(self.seconds - pending, 1e-6)
        return max(0, min(99, int(100 * (elapsed - pending) / span)))


@dataclass
class QueuedFault:
    """A fault waiting for its endpoint."""

    kind: str
    endpoint: str | None
    remaining: int


class Faults:
    """Faults queued by ``inject`` plus the random fault mode of ``SimConfig``."""

    def __init__(self, config: SimConfig) -> None:
        self._config = config
        self._queue: list[QueuedFault] = []
        self._rng = random.Random(f"{config.seed}:faults")

    def inject(self, kind: str, count: int = 1, endpoint: str | None = None) -> None:
        """Queue ``count`` faults of ``kind`` for ``endpoint`` (None: any that fits)."""
        if kind not in FAULT_ENDPOINTS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {sorted(FAULT_ENDPOINTS)}")
        if endpoint is not None and endpoint not in FAULT_ENDPOINTS[kind]:
            raise ValueError(
                f"fault {kind!r} cannot fire on {endpoint!r}; it fits {FAULT_ENDPOINTS[kind]}"
            )
        if count > 0:
            self._queue.append(QueuedFault(kind, endpoint, count))

    def clear(self) -> None:
        """Drop every queued fault."""
        self._queue.clear()

    @property
    def pending(self) -> list[dict[str, Any]]:
        """Queued faults, for the admin API."""
        return [vars(f).copy() for f in self._queue]

    def take(self, endpoint: str) -> str | None:
        """The fault to apply to this call of ``endpoint``, if any (consumes it)."""
        for fault in self._queue:
            if endpoint in FAULT_ENDPOINTS[fault.kind] and fault.endpoint in (None, endpoint):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._queue.remove(fault)
                return fault.kind
        if self._config.fault_rate > 0 and self._rng.random() < self._config.fault_rate:
            fitting = [k for k in self._config.fault_kinds if endpoint in FAULT_ENDPOINTS[k]]
            if fitting:
                return self._rng.choice(fitting)
        return None


def now() -> float:
    """Wall-clock time (one place, so tests could patch it)."""
    return time.time()
