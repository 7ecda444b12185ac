"""A send budget shared by every replica through the store.

Telegram allows a bot about 30 messages a second in all (``TELEGRAM_OVERALL_RATE``);
N replicas each pacing themselves at that rate would send N times as much. A
:class:`StoreBudget` takes each slot from the database instead
(:meth:`storage.base.Store.take_rate_slot`, a sliding window): whichever replicas
take them, no window of ``window`` seconds holds more than ``rate`` slots. It has
the shape of the outbound scheduler's overall budget (``reserve``, ``pause``,
``answered``), so an adapter can use it wherever it would use an in-process one.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from storage.base import Store

__all__ = ["LayeredBudget", "LocalBudget", "StoreBudget"]


class StoreBudget:
    """At most ``rate`` slots per ``window`` seconds for ``scope``, across replicas.

    ``margin`` widens the window: a slot is counted when it is taken, and the call it
    stands for reaches the platform a moment later, later still from a busy replica;
    calls held up longer than ``margin`` on their way can still crowd one second
    (``bench/replicas.py``, two or three replicas saturating two cores: 2-3 of ~900
    calls drew a 429 and were sent again). Within one replica :class:`LayeredBudget`
    closes that gap by counting from the answers.
    """

    def __init__(
        self,
        store: Store,
        *,
        scope: str,
        rate: int,
        window: float = 1.0,
        margin: float = 0.15,
    ) -> None:
        if rate < 1:
            raise ValueError("rate must be at least 1")
        self._store = store
        self.scope = scope
        self.rate = rate
        self.window = window + margin
        self._paused_until = 0.0

    async def reserve(self) -> float:
        """Wait for a slot and take it; always returns 0.0 (go now)."""
        while True:
            pause = self._paused_until - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            wait = await self._store.take_rate_slot(self.scope, limit=self.rate, window=self.window)
            if wait <= 0:
                return 0.0
            await asyncio.sleep(wait)

    async def pause(self, seconds: float) -> None:
        """Take no slot for ``seconds`` (the platform answered 429 for the overall limit)."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def answered(self) -> None:
        """Nothing to note: the slot was counted when it was taken."""


class LocalBudget(Protocol):
    """An in-process budget (the Telegram scheduler's ``WindowBudget``, say)."""

    async def reserve(self) -> float:
        """Take the next slot; seconds from now until it starts."""

    async def pause(self, seconds: float) -> None:
        """Hand out no slot for ``seconds``."""

    def answered(self) -> None:
        """The oldest call not yet answered has its answer."""


class LayeredBudget:
    """This replica's own budget first, then the slot shared with the other replicas.

    The local budget counts each call from its *answer* (so calls held up on their
    way by a busy event loop cannot crowd a second of this replica's traffic); the
    shared one keeps the replicas together under the same rate.
    """

    def __init__(self, local: LocalBudget, shared: StoreBudget) -> None:
        self.local = local
        self.shared = shared

    async def reserve(self) -> float:
        """Wait for a local slot, then take a shared one; 0.0 (go now)."""
        delay = await self.local.reserve()
        if delay > 0:
            await asyncio.sleep(delay)
        return await self.shared.reserve()

    async def pause(self, seconds: float) -> None:
        """Pause both."""
        await self.local.pause(seconds)
        await self.shared.pause(seconds)

    def answered(self) -> None:
        """Note the answer in the local budget (the shared one counts at taking)."""
        self.local.answered()
