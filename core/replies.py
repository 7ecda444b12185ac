"""Small helpers for answering users safely, shared by the service and the render tracker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any

from core.errors import redact

__all__ = ["nudge", "plain_reason", "quietly"]

log = logging.getLogger("nemo.replies")


def plain_reason(error: object, fallback: str) -> str:
    """A short plain-text reason from a backend error: never raw JSON, never a token."""
    text = " ".join(str(error or "").split())
    if not text or text.startswith(("{", "[")):
        return fallback
    return redact(text)[:200]


async def quietly(awaitable: Awaitable[None]) -> None:
    """Await a nicety (chat action, progress, notice) whose failure must not stop the work."""
    try:
        await awaitable
    except Exception:
        log.debug("a best-effort reply failed", exc_info=True)


_nudges: set[asyncio.Task[None]] = set()


def nudge(nicety: Coroutine[Any, Any, None]) -> None:
    """Start a nicety (a chat action) without waiting for it: backend work never waits on
    a chat platform. Failures are swallowed as in :func:`quietly`."""
    task = asyncio.ensure_future(quietly(nicety))
    _nudges.add(task)  # a strong reference until it is done
    task.add_done_callback(_nudges.discard)
