"""Small helpers for answering users safely, shared by the service and the render tracker."""

from __future__ import annotations

import logging
from collections.abc import Awaitable

from core.errors import redact

__all__ = ["plain_reason", "quietly"]

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
