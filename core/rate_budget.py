"""A send budget shared by every replica through the store.

Telegram allows a bot about 30 messages a second in all (``TELEGRAM_OVERALL_RATE``);
N replicas each pacing themselves at that rate would send N times as much. A
:class:`StoreBudget` takes each slot from the database instead
(:meth:`storage.base.Store.take_rate_slot`, a sliding window): whichever replicas
take them, no window of ``window`` seconds holds more than ``rate`` slots. It has
the shape of the outbound scheduler's overall budget (``reserve``, ``taken``, ``pause``,
``answered``), so an adapter can use it wherever it would use an in-process one.

A slot counts from when its call is *answered*, not from when it was taken: the
platform receives a call somewhere between the two, and a busy replica's calls can
spend a while on their way, so slots counted at taking let delayed calls crowd one
second. The slot is held (stamped ``hold`` seconds ahead) while its call is on its
way and stamped with the answer's time when it comes back; the next taker of that
slot then goes at least ``window`` after the platform saw the call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from storage.base import Store

__all__ = ["LayeredBudget", "LocalBudget", "StoreBudget"]

log = logging.getLogger(__name__)


class StoreBudget:
    """At most ``rate`` slots per ``window`` seconds for ``scope``, across replicas.

    Each slot counts from its call's answer (see the module docstring). ``hold`` is
    how long a slot whose call has no answer yet stays held: a replica that dies
    mid-call frees its slots that long after (a call still on its way then is
    counted as having arrived). ``margin`` widens the window a little for the
    stamps' own trip to the database, which a busy replica also delays.
    """

    def __init__(
        self,
        store: Store,
        *,
        scope: str,
        rate: int,
        window: float = 1.0,
        margin: float = 0.05,
        hold: float = 30.0,
    ) -> None:
        if rate < 1:
            raise ValueError("rate must be at least 1")
        self._store = store
        self.scope = scope
        self.rate = rate
        self.window = window + margin
        self.hold = hold
        self._paused_until = 0.0
        self._last: tuple[int, float] | None = None
        self._stamps: set[asyncio.Task[None]] = set()

    async def reserve(self) -> float:
        """Wait for a slot and take it (held until answered); always 0.0 (go now)."""
        while True:
            pause = self._paused_until - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            claimed = await self._store.claim_rate_slot(
                self.scope, limit=self.rate, window=self.window, hold=self.hold
            )
            if isinstance(claimed, tuple):
                self._last = claimed
                return 0.0
            await asyncio.sleep(claimed)

    def taken(self) -> object:
        """The slot the last :meth:`reserve` took (hand it to :meth:`answered`)."""
        last, self._last = self._last, None
        return last

    async def pause(self, seconds: float) -> None:
        """Take no slot for ``seconds`` (the platform answered 429 for the overall limit)."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def answered(self, ticket: object = None) -> None:
        """Stamp the ticket's slot with now: the call it stood for has its answer."""
        if not isinstance(ticket, tuple):
            return
        slot, held_until = ticket
        task = asyncio.ensure_future(
            self._store.stamp_rate_slot(self.scope, slot, held_until=held_until)
        )
        self._stamps.add(task)
        task.add_done_callback(self._stamped)

    def _stamped(self, task: asyncio.Task[None]) -> None:
        self._stamps.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The slot stays held until ``hold`` runs out: slower, never over budget.
            log.warning("rate budget: could not stamp a slot (%s)", type(task.exception()).__name__)


class LocalBudget(Protocol):
    """An in-process budget (the Telegram scheduler's ``WindowBudget``, say)."""

    async def reserve(self) -> float:
        """Take the next slot; seconds from now until it starts."""

    async def pause(self, seconds: float) -> None:
        """Hand out no slot for ``seconds``."""

    def taken(self) -> object:
        """What the last reserve took (None: matched oldest first)."""

    def answered(self, ticket: object = None) -> None:
        """The oldest call not yet answered has its answer."""


class LayeredBudget:
    """This replica's own budget first, then the slot shared with the other replicas.

    Both count each call from its *answer* (so calls held up on their way by a busy
    event loop cannot crowd a second); the shared one keeps the replicas together
    under the same rate.
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

    def taken(self) -> object:
        """The shared slot the last reserve took."""
        return self.shared.taken()

    async def pause(self, seconds: float) -> None:
        """Pause both."""
        await self.local.pause(seconds)
        await self.shared.pause(seconds)

    def answered(self, ticket: object = None) -> None:
        """Note the answer in both (the shared one stamps the ticket's slot)."""
        self.local.answered()
        self.shared.answered(ticket)
