"""In-process wake-ups by key, for tasks waiting on a lease."""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["Wakeups"]


class Wakeups:
    """Tasks wait on a key; :meth:`wake` wakes every task waiting on it."""

    def __init__(self) -> None:
        """No one waits yet."""
        self._waiting: dict[str, set[asyncio.Event]] = {}

    async def wait(self, key: str, seconds: float) -> bool:
        """Sleep until :meth:`wake` of ``key`` or ``seconds`` pass; True if woken."""
        event = asyncio.Event()
        self._waiting.setdefault(key, set()).add(event)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), seconds)
            return event.is_set()
        finally:
            events = self._waiting.get(key)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._waiting[key]

    def wake(self, key: str) -> None:
        """Wake every task waiting on ``key`` (none waiting: nothing happens)."""
        for event in self._waiting.get(key, ()):
            event.set()

    def wake_all(self) -> None:
        """Wake everyone (the notification channel was lost: all must look again)."""
        for events in self._waiting.values():
            for event in events:
                event.set()
