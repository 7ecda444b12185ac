"""The overall send budget of a Telegram bot: how many calls per second across all chats.

Telegram lets a bot send about 30 messages a second in all (``TELEGRAM_OVERALL_RATE``).
The outbound scheduler (:mod:`bots.telegram.scheduler`) asks an :class:`OverallBudget`
for one slot before each message-producing call and says when the call was
answered, so the budget is a small interface: today one process keeps it in memory
(:class:`WindowBudget`); a deployment with several replicas can share one budget by
implementing the same three methods on top of its database (reserve a slot with
one atomic update, note the answer and pause with others).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["NoBudget", "OverallBudget", "WindowBudget", "budget_for"]


@runtime_checkable
class OverallBudget(Protocol):
    """Slots for message-producing calls, shared by every chat (and maybe every replica)."""

    async def reserve(self) -> float:
        """Take the next free slot; return how many seconds from now it starts (0: now).

        The caller waits that long and then makes exactly one call. A slot is never
        handed out twice, so concurrent callers (or replicas) never overspend.
        """

    async def pause(self, seconds: float) -> None:
        """Hand out no slot for ``seconds`` (Telegram answered 429 for the overall limit)."""

    def taken(self) -> object:
        """What the last :meth:`reserve` took, to hand to :meth:`answered` (or None)."""

    def answered(self, ticket: object = None) -> None:
        """The call made in the oldest slot not yet answered has its answer (or failed).

        ``ticket`` is what :meth:`taken` gave for that call's slot (a shared budget
        stamps that very slot with the answer's time).
        """


class NoBudget:
    """No overall cap (``TELEGRAM_OVERALL_RATE=0``): every slot starts now."""

    async def reserve(self) -> float:
        """Always 0: go."""
        return 0.0

    async def pause(self, seconds: float) -> None:
        """Nothing to pause: per-chat 429s are handled by the scheduler itself."""

    def taken(self) -> object:
        """Nothing: no slots."""
        return None

    def answered(self, ticket: object = None) -> None:
        """Nothing to note."""


class WindowBudget:
    """At most ``rate`` calls reach Telegram in any ``window`` seconds.

    A token bucket refilled at ``rate``/s lets a full bucket and its refill through
    at once (PTB's ``AIORateLimiter`` let 31 calls through in a quarter second).
    Here slot *n* starts no earlier than one ``window`` after the call of slot
    *n - rate* was *answered*: that call reached Telegram before its answer came
    back, and slot *n*'s call reaches it after it starts, so however the network
    or a busy event loop delays calls on their way, no window of that length ever
    sees more than ``rate`` of them. ``margin`` widens the window a little more.
    """

    def __init__(
        self,
        rate: int,
        *,
        window: float = 1.0,
        margin: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
        answer_timeout: float = 10.0,
    ) -> None:
        if rate < 1:
            raise ValueError("rate must be at least 1 (use NoBudget for no cap)")
        self.rate = rate
        self.window = window + margin
        self.answer_timeout = answer_timeout
        self._clock = clock
        self._slots: collections.deque[_Slot] = collections.deque()
        self._unanswered: collections.deque[_Slot] = collections.deque()
        self._paused_until = 0.0
        self._last_start = -math.inf

    async def reserve(self) -> float:
        """The start of the next free slot, as seconds from now."""
        while len(self._slots) >= self.rate:
            oldest = self._slots[0]
            if oldest.end is None:
                # Still on its way: wait for its answer (a lost one counts after a while).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.answer_timeout):
                        await oldest.answered.wait()
                if oldest.end is None:
                    oldest.end = self._clock()
                continue
            break
        now = self._clock()
        start = max(now, self._paused_until, self._last_start)
        if len(self._slots) >= self.rate:
            oldest = self._slots.popleft()
            assert oldest.end is not None
            start = max(start, oldest.end + self.window)
        slot = _Slot(start)
        self._slots.append(slot)
        self._unanswered.append(slot)
        self._last_start = start
        return start - now

    async def pause(self, seconds: float) -> None:
        """No slot starts before ``seconds`` from now."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def taken(self) -> object:
        """Nothing to hand back: answers are matched oldest first."""
        return None

    def answered(self, ticket: object = None) -> None:
        """The oldest call still on its way has its answer now."""
        if self._unanswered:
            slot = self._unanswered.popleft()
            slot.end = self._clock()
            slot.answered.set()


class _Slot:
    __slots__ = ("answered", "end", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.end: float | None = None
        self.answered = asyncio.Event()


def budget_for(rate: int) -> OverallBudget:
    """The in-process budget for ``TELEGRAM_OVERALL_RATE``: 0 means no overall cap."""
    return NoBudget() if rate <= 0 else WindowBudget(rate)
