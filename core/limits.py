"""The operator's fair limits per chat user, for a bot that runs on one ``NEMO_TOKEN``.

* ``NEMO_LIMIT_REQUESTS_PER_HOUR``: chat messages, uploads, exports and new
  projects per UTC clock hour;
* ``NEMO_LIMIT_EXPORTS_PER_DAY``: exports per UTC day;
* ``NEMO_LIMIT_QUEUE``: requests one user may have waiting for their turn.

Unset means no limit. Status, credits, help and cancel are never limited. The
counts live in the store (:meth:`storage.base.Store.hit_counter`: fixed windows,
one atomic check-and-add), so they hold across restarts and, on PostgreSQL, across
replicas. With a session gate shared by replicas (``shared``), the queue limit is the
gate's (:class:`core.lease_gate.StoreSessionGate` ``queue_limit``): a request joins
the line in the store in one atomic step that counts the user's waiting requests on
every replica (:meth:`storage.base.Store.join_queue`), and :meth:`Limits.queue_full`
answers a request it turned away. A refused user is told which limit and when it
resets; a refused request is not counted.
"""

from __future__ import annotations

import logging
import time

from core.config import Settings
from core.gate import SessionKey
from core.logs import mask_id
from core.metrics import Metrics
from core.request import Request
from core.turns import Turns
from core.types import Intent
from storage.base import Store

__all__ = ["COUNTED", "DAY", "HOUR", "Limits"]

log = logging.getLogger("nemo.limits")

HOUR = 3600.0
DAY = 86400.0
#: What counts as a request (what costs the operator): everything that reaches the
#: backend's agent or renders. Status, credits, help, start and cancel never count.
COUNTED = frozenset({Intent.CHAT, Intent.UPLOAD, Intent.EXPORT, Intent.NEW})
_REQUESTS = "limit_requests"
_EXPORTS = "limit_exports"


def _clock_time(at: float) -> str:
    return time.strftime("%H:%M", time.gmtime(at))


class Limits:
    """Admits or refuses a request against the operator's limits."""

    def __init__(
        self, *, settings: Settings, store: Store, metrics: Metrics, shared: bool = False
    ) -> None:
        """``shared``: the session gate queues in the store (several replicas)."""
        self._shared = shared
        self._per_hour = settings.limit_requests_per_hour
        self._per_day = settings.limit_exports_per_day
        self._queue = settings.limit_queue
        self._store = store
        self._metrics = metrics

    async def admit(self, req: Request, intent: Intent) -> bool:
        """Count the request; False (the user told why and until when) when over a limit."""
        if intent not in COUNTED:
            return True
        who = f"{req.msg.platform}:{req.msg.user_id}"
        took_export = False
        if intent is Intent.EXPORT and self._per_day is not None:
            hit = await self._store.hit_counter(_EXPORTS, who, window=DAY, limit=self._per_day)
            if not hit.allowed:
                await self._refuse(req, "exports", self._per_day, hit.resets_at)
                return False
            took_export = True
        if self._per_hour is not None:
            hit = await self._store.hit_counter(_REQUESTS, who, window=HOUR, limit=self._per_hour)
            if not hit.allowed:
                if took_export:  # refused after all: give the export back
                    await self._store.hit_counter(_EXPORTS, who, window=DAY, amount=-1)
                await self._refuse(req, "requests", self._per_hour, hit.resets_at)
                return False
        return True

    async def may_wait(self, req: Request, turns: Turns, intent: Intent | None = None) -> bool:
        """Whether one more request of this user may wait for a busy session's turn.

        In one process the line is all here, and the answer comes without awaiting
        anything: the caller enters the turn right after, so two requests arriving
        together cannot both take the last place. A refusal gives back what
        :meth:`admit` counted for ``intent``. With replicas (``shared``) the store
        gate decides, atomically, when the request joins the line: True here.
        """
        msg = req.msg
        if self._queue is None or self._shared:
            return True
        key = SessionKey(msg.platform, msg.user_id, msg.chat_id)
        if not turns.busy(key) or turns.waiting_of(msg.platform, msg.user_id) < self._queue:
            return True
        await self.queue_full(req, intent)
        return False

    async def queue_full(self, req: Request, intent: Intent | None = None) -> None:
        """Tell the user the line is full; give back what :meth:`admit` counted for ``intent``."""
        msg = req.msg
        if intent is not None and intent in COUNTED:
            who = f"{msg.platform}:{msg.user_id}"
            if self._per_hour is not None:
                await self._store.hit_counter(_REQUESTS, who, window=HOUR, amount=-1)
            if intent is Intent.EXPORT and self._per_day is not None:
                await self._store.hit_counter(_EXPORTS, who, window=DAY, amount=-1)
        self._metrics.limited.labels(limit="queue").inc()
        log.info("limit: queue full for %s user %s", msg.platform, mask_id(msg.user_id))
        await req.say("limit_queue", private=True, limit=self._queue)

    async def _refuse(self, req: Request, which: str, limit: int, resets_at: float) -> None:
        self._metrics.limited.labels(limit=which).inc()
        log.info(
            "limit: %s per %s reached for %s user %s",
            which,
            "day" if which == "exports" else "hour",
            req.msg.platform,
            mask_id(req.msg.user_id),
        )
        await req.say(f"limit_{which}", private=True, limit=limit, resets=_clock_time(resets_at))
