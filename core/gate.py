"""The per-session gate: one request per chat session runs at a time.

A request that arrives while its session is busy waits its turn (the caller is
told through ``on_wait`` so it can say so) rather than being refused, so a burst
of photos or a quick follow-up is not lost; past ``max_waiting`` waiters the gate
refuses with :class:`SessionBusy`. Different sessions never wait for each other.

The service only knows the :class:`SessionGate` protocol. :class:`LocalSessionGate`
serves one process; a deployment with several replicas plugs in a store-backed
gate (a lease per session key) with the same shape: it gets the key to lease and,
when the platform gives one, the message's ordering number (Telegram's
``update_id``) so requests can be served in the order the platform saw them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

__all__ = ["LocalSessionGate", "OnPlace", "OnWait", "SessionBusy", "SessionGate", "SessionKey"]

#: Called once when a request has to wait for its turn (to tell the user).
OnWait = Callable[[], Awaitable[None]]
#: Called by a gate that counts the line itself (the store-backed one) with how many
#: requests are ahead: before ``on_wait``, then each time the number changes.
OnPlace = Callable[[int], Awaitable[None]]


class SessionKey(NamedTuple):
    """Which session a request belongs to: one chat of one user on one platform."""

    platform: str
    user_id: str
    chat_id: str

    def __str__(self) -> str:
        return f"{self.platform}:{self.user_id}:{self.chat_id}"


class SessionBusy(Exception):
    """Too many requests already wait for this session; try again later."""


class SessionGate(Protocol):
    """Serialises the requests of one session."""

    def hold(
        self,
        key: SessionKey,
        order: int | None = None,
        *,
        on_wait: OnWait | None = None,
        on_place: OnPlace | None = None,
    ) -> AbstractAsyncContextManager[None]:
        """Wait for ``key``'s turn and hold it for the ``async with`` body.

        ``order`` is the platform's ordering number for the message, if any.
        ``on_wait`` is awaited (once, before waiting) when the session is busy.
        ``on_place``, if the gate counts places itself, gets the requests ahead.
        Raises :class:`SessionBusy` on entry when too many requests already wait.
        """
        ...


@dataclass(slots=True)
class _Turnstile:
    """One session's lock and how many requests hold or await it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    members: int = 0  # the request running plus those waiting


class LocalSessionGate:
    """The in-process gate: an :class:`asyncio.Lock` per busy session, FIFO.

    ``order`` is not needed here: asyncio locks wake waiters in arrival order,
    which in one process is the order the adapter dispatched the messages.
    """

    def __init__(self, *, max_waiting: int = 3) -> None:
        self._max_waiting = max_waiting
        self._turnstiles: dict[SessionKey, _Turnstile] = {}

    @property
    def active_sessions(self) -> int:
        """How many sessions have a request running or waiting (idle ones cost nothing)."""
        return len(self._turnstiles)

    def hold(
        self,
        key: SessionKey,
        order: int | None = None,
        *,
        on_wait: OnWait | None = None,
        on_place: OnPlace | None = None,
    ) -> AbstractAsyncContextManager[None]:
        """See :meth:`SessionGate.hold`; ``on_place`` is not called (the process sees
        its whole line, :class:`core.turns.Turns` counts it)."""
        return self._hold(key, on_wait)

    @asynccontextmanager
    async def _hold(self, key: SessionKey, on_wait: OnWait | None) -> AsyncIterator[None]:
        turnstile = self._turnstiles.setdefault(key, _Turnstile())
        busy = turnstile.lock.locked()
        if busy and turnstile.members > self._max_waiting:
            raise SessionBusy(str(key))
        # Counted before the first await, and uncounted in `finally` (a cancelled waiter
        # too): the turnstile is dropped only when nobody holds or awaits it.
        turnstile.members += 1
        try:
            if busy and on_wait is not None:
                await on_wait()
            async with turnstile.lock:
                yield
        finally:
            turnstile.members -= 1
            if turnstile.members == 0:
                self._turnstiles.pop(key, None)
