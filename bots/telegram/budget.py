"""The overall send budget of a Telegram bot: how many calls per second across all chats.

Telegram lets a bot send about 30 messages a second in all (``TELEGRAM_OVERALL_RATE``).
The outbound scheduler (:mod:`bots.telegram.scheduler`) asks an :class:`OverallBudget`
for one slot before each message-producing call, so the budget is a small interface:
today one process keeps it in memory (:class:`WindowBudget`); a deployment with
several replicas can share one budget by implementing the same two methods on top
of its database (reserve a slot with one atomic update, pause with another).
"""

from __future__ import annotations

import collections
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


class NoBudget:
    """No overall cap (``TELEGRAM_OVERALL_RATE=0``): every slot starts now."""

    async def reserve(self) -> float:
        """Always 0: go."""
        return 0.0

    async def pause(self, seconds: float) -> None:
        """Nothing to pause: per-chat 429s are handled by the scheduler itself."""


class WindowBudget:
    """At most ``rate`` slots in any ``window`` seconds (a sliding window, not a bucket).

    A token bucket refilled at ``rate``/s lets a full bucket and its refill through
    at once (PTB's ``AIORateLimiter`` let 31 calls through in a quarter second); here
    slot *n* starts no earlier than one ``window`` after slot *n - rate*, so no
    window of that length ever holds more than ``rate`` calls. ``margin`` widens the
    window a little, because calls reach Telegram with network jitter.
    """

    def __init__(
        self,
        rate: int,
        *,
        window: float = 1.0,
        margin: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate < 1:
            raise ValueError("rate must be at least 1 (use NoBudget for no cap)")
        self.rate = rate
        self.window = window + margin
        self._clock = clock
        self._granted: collections.deque[float] = collections.deque(maxlen=rate)
        self._paused_until = 0.0

    async def reserve(self) -> float:
        """The start of the next free slot, as seconds from now."""
        now = self._clock()
        start = max(now, self._paused_until)
        if len(self._granted) == self.rate:
            start = max(start, self._granted[0] + self.window)
        if self._granted:
            start = max(start, self._granted[-1])  # slots are handed out in time order
        self._granted.append(start)
        return start - now

    async def pause(self, seconds: float) -> None:
        """No slot starts before ``seconds`` from now."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)


def budget_for(rate: int) -> OverallBudget:
    """The in-process budget for ``TELEGRAM_OVERALL_RATE``: 0 means no overall cap."""
    return NoBudget() if rate <= 0 else WindowBudget(rate)
