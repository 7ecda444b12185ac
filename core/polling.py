"""How often a render is polled, and what its progress bar shows in between. Pure.

Polling: the backend's docs poll every 30 s, which delays delivery by ~15 s on
average. We poll adaptively instead: every ``min_interval`` s at first, then at
half the remaining time the backend's own progress suggests, clamped to
[``min_interval``, ``max_interval``] — the link lands within a couple of seconds
of completion while one render never costs more than one poll per
``min_interval`` seconds.

Between polls the progress bar keeps moving: the backend's last percent carried on
at the pace it has been rising (or, when the backend gives none, a slow curve from
the elapsed time), shown every ``progress_every`` s without asking the backend more
often. The estimate never passes ``ESTIMATE_CAP`` % and the bar never goes back.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = ["ESTIMATE_CAP", "PollPolicy", "ProgressEstimate"]


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """How often to ask the backend about one render."""

    min_interval: float = 1.0
    max_interval: float = 5.0
    first_delay: float = 1.0
    deadline: float = 20 * 60.0
    max_failures: int = 30
    #: Tries to send the file (with backoff) before the user is given the plain link.
    delivery_attempts: int = 3
    #: Seconds between progress updates estimated between polls (no extra polls).
    progress_every: float = 1.0
    #: How long a delivery claim holds: a process killed mid-send blocks its render
    #: for at most this long before another start delivers it.
    delivery_lease: float = 300.0
    #: Longest pause after a failed poll, ``Retry-After`` included (one slow answer
    #: must not hold a finished video back for minutes).
    max_backoff: float = 60.0

    def next_delay(self, elapsed: float, progress: int | None) -> float:
        """Seconds until the next poll, from the time so far and the reported progress."""
        if progress and 0 < progress < 100:
            remaining = elapsed * (100 - progress) / progress
            return min(self.max_interval, max(self.min_interval, remaining / 2))
        return min(self.max_interval, max(self.min_interval, 2.0))

    def delivery_pause(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failed delivery attempt."""
        pause = self.max_interval * 2.0 ** (failures - 1) * (0.75 + random.random() / 2)
        return min(pause, self.max_backoff)


#: Highest percent an estimate shows: the rest waits for the backend.
ESTIMATE_CAP = 95
#: With no percent from the backend, the estimate rises as 1 - e^(-elapsed/this) (seconds).
_BLIND_PACE = 45.0


class ProgressEstimate:
    """What the progress bar shows: the backend's percent, carried on between polls.

    ``observe`` takes each polled percent (``None`` when the backend gives none);
    ``value`` estimates the percent now. Shown values never go back.
    """

    def __init__(self, started: float) -> None:
        self.started = started
        self.shown = -1
        self._last: tuple[float, int] | None = None  # (when, percent) last reported
        self._rate: float | None = None  # percent per second, from the last rise

    def observe(self, now: float, percent: int | None) -> None:
        """Take a polled percent."""
        if percent is None:
            return
        if self._last is not None and percent > self._last[1] and now > self._last[0]:
            self._rate = (percent - self._last[1]) / (now - self._last[0])
        elif self._last is None and percent > 0 and now > self.started:
            # One reading so far: its pace since the export began (queueing included,
            # so it errs on the slow side).
            self._rate = percent / (now - self.started)
        if self._last is None or percent != self._last[1]:
            self._last = (now, percent)

    def value(self, now: float) -> int:
        """The estimated percent at ``now``."""
        if self._last is None:
            blind = ESTIMATE_CAP * (1 - math.exp(-(now - self.started) / _BLIND_PACE))
            return int(blind)
        when, percent = self._last
        if self._rate is None or percent >= ESTIMATE_CAP:
            return percent
        return int(min(ESTIMATE_CAP, percent + self._rate * (now - when)))

    def advance(self, now: float) -> int | None:
        """The percent to show now, or None when the bar would not move forward."""
        percent = max(0, min(99, self.value(now)))
        if percent <= self.shown:
            return None
        self.shown = percent
        return percent
