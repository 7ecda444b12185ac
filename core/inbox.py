"""Stored inbound updates: nothing a platform handed over is lost or handled twice.

A webhook replica stores each update (unique by platform and update id, so a
re-delivery is a no-op) *before* it answers the platform, claims it for a lease,
and hands it to the adapter. The claim is renewed while the work the update
started runs; when that work ends the update is marked done. A replica that dies
stops renewing: after ``lease`` seconds any live replica's sweep
(:meth:`Inbox.run`) claims the update and handles it again.

Handling again must not repeat what reached the backend. Just before a request
sends something the backend would do twice, it records that on the stored update
(:meth:`Ticket.mark_sent`, with what it sends):

* the chat relay, before it opens the backend's stream (stage ``sent``): a replica
  taking such an update over sees ``resumed`` on its :class:`Ticket` and only reads
  the session's state and tells the user what was done, as after a dropped stream;
* an upload, before each file goes out (stage ``upload:…``, the files' hashes): the
  replica taking over looks for them in the session's state instead of sending
  them again (:mod:`core.uploads`);
* an export, before its render is recorded and submitted (stage ``export:<id>``):
  the replica taking over follows that render instead of submitting another
  (:mod:`core.exports`).

:meth:`Ticket.earlier` reads what a handler that died had recorded.

The ticket of the update being handled travels in a context variable
(:func:`current`): the adapter's handler tasks inherit it, so the core can ask
it without knowing about platforms or updates, and the adapter's request
tracker registers the tasks it starts (:func:`track`) so the update counts as
handled only once they are over.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from core.draining import drain
from core.renewal import kept_alive
from storage.base import InboundUpdate, Store

__all__ = ["EXPORT", "SENT", "UPLOAD", "Inbox", "Ticket", "current", "track"]

log = logging.getLogger("nemo.inbox")

#: The stage of an update whose chat prompt reached the backend.
SENT = "sent"
#: The stage kind of an update whose file(s) may have reached the backend.
UPLOAD = "upload"
#: The stage kind of an update whose export may have reached the backend.
EXPORT = "export"

_current: contextvars.ContextVar[Ticket | None] = contextvars.ContextVar(
    "nemo_inbox_ticket", default=None
)


def current() -> Ticket | None:
    """The ticket of the stored update this task is handling, if any."""
    return _current.get()


def track(task: asyncio.Future[Any]) -> None:
    """Count ``task`` as part of the current update's work (no-op outside an update)."""
    ticket = _current.get()
    if ticket is not None:
        ticket.tasks.add(task)


class Ticket:
    """One claimed update being handled by this replica."""

    def __init__(self, inbox: Inbox, update: InboundUpdate) -> None:
        self._inbox = inbox
        self.update = update
        self.tasks: set[asyncio.Future[Any]] = set()

    @property
    def update_id(self) -> int:
        """The platform's number for the update (orders a chat's requests)."""
        return self.update.update_id

    @property
    def resumed(self) -> bool:
        """An earlier handler had sent this request's prompt to the backend and then died."""
        return self.earlier(SENT) is not None

    def earlier(self, kind: str) -> str | None:
        """What an earlier handler of this update recorded for ``kind`` before it died.

        ``None`` when this is the first attempt or the stage is of another kind;
        otherwise the detail given to :meth:`mark_sent` (``""`` if none).
        """
        stage = self.update.stage
        if self.update.attempts <= 1 or stage is None:
            return None
        name, _, detail = stage.partition(":")
        return detail if name == kind else None

    async def mark_sent(self, kind: str = SENT, detail: str = "") -> None:
        """``kind`` (:data:`SENT`, :data:`UPLOAD`, :data:`EXPORT`) is about to reach the
        backend, as ``detail`` says: a replica taking over must not send it blindly again."""
        await self._inbox.set_stage(self.update, f"{kind}:{detail}" if detail else kind)

    async def settled(self) -> None:
        """Wait until every task registered for this update has ended."""
        while pending := [t for t in self.tasks if not t.done()]:
            await asyncio.gather(*pending, return_exceptions=True)


Handler = Callable[[InboundUpdate], Awaitable[None]]


class Inbox:
    """Stores, claims and hands out one platform's updates for one replica."""

    def __init__(
        self,
        store: Store,
        *,
        platform: str,
        owner: str,
        handler: Handler,
        lease: float = 30.0,
        sweep_every: float = 2.0,
        batch: int = 20,
        keep_done: float = 86_400.0,
        prune_every: float = 600.0,
    ) -> None:
        """``handler`` runs one update (the adapter feeds it to its application);
        ``lease``: how long a dead replica's claim blocks its updates; ``keep_done``:
        how long handled updates are kept to recognise re-deliveries."""
        if lease <= 0 or sweep_every <= 0:
            raise ValueError("lease and sweep_every must be positive")
        self._store = store
        self.platform = platform
        self.owner = owner
        self._handler = handler
        self.lease = lease
        self._sweep_every = sweep_every
        self._batch = batch
        self._keep_done = keep_done
        self._prune_every = prune_every
        self._running: dict[int, asyncio.Task[None]] = {}
        self._closing = False

    @property
    def in_flight(self) -> int:
        """How many updates this replica is handling."""
        return len(self._running)

    async def accept(self, update_id: int, payload: str) -> bool:
        """Store an arriving update and start handling it; False for a re-delivery.

        Returns once the update is stored (answer the platform then): from that
        moment some replica handles it, this one unless it dies first.
        """
        if not await self._store.store_update(self.platform, update_id, payload):
            log.info("update %d was delivered again; ignored", update_id)
            return False
        claimed = await self._store.claim_update(
            self.platform, update_id, owner=self.owner, lease=self.lease
        )
        if claimed is not None:  # else another replica's sweep took it meanwhile
            self._start(claimed)
        return True

    async def set_stage(self, update: InboundUpdate, stage: str) -> None:
        """Record ``stage`` for an update this replica holds."""
        if not await self._store.set_update_stage(
            self.platform, update.update_id, owner=self.owner, stage=stage
        ):
            log.warning("update %d: its claim was lost before stage %s", update.update_id, stage)

    async def sweep(self) -> int:
        """Claim the updates nobody handles (stored by a replica that died); how many."""
        if self._closing:
            return 0
        claimed = await self._store.claim_updates(
            self.platform, owner=self.owner, lease=self.lease, limit=self._batch
        )
        for update in claimed:
            if update.update_id not in self._running:
                log.info(
                    "update %d taken over (attempt %d, stage %s)",
                    update.update_id,
                    update.attempts,
                    update.stage or "-",
                )
            self._start(update)
        return len(claimed)

    async def run(self) -> None:
        """Sweep for orphaned updates and prune old ones until cancelled."""
        since_prune = self._prune_every  # prune once at start-up
        while True:
            try:
                await self.sweep()
                if since_prune >= self._prune_every:
                    since_prune = 0.0
                    await self.prune()
            except Exception:  # the database blinked: the next sweep tries again
                log.warning("inbox sweep failed; retrying", exc_info=True)
            await asyncio.sleep(self._sweep_every)
            since_prune += self._sweep_every

    async def prune(self) -> None:
        """Forget updates handled long ago and rate counters of ended windows."""
        updates = await self._store.prune_updates(older_than=self._keep_done)
        counters = await self._store.prune_counters()
        if updates or counters:
            log.info("pruned %d handled update(s), %d counter(s)", updates, counters)

    async def aclose(self, grace: float = 10.0) -> None:
        """Stop taking updates over; give running ones ``grace`` s, then hand them back."""
        self._closing = True
        await drain(list(self._running.values()), grace)

    def _start(self, update: InboundUpdate) -> None:
        if update.update_id in self._running or self._closing:
            return
        ticket = Ticket(self, update)
        context = contextvars.copy_context()
        context.run(_current.set, ticket)
        task = asyncio.create_task(self._handle(ticket), context=context)
        self._running[update.update_id] = task
        task.add_done_callback(lambda _t: self._running.pop(update.update_id, None))

    async def _handle(self, ticket: Ticket) -> None:
        update_id = ticket.update_id
        finished = False
        try:
            # Keep the claim while the update's work runs (a stream can last minutes).
            async with kept_alive(functools.partial(self._renew, update_id), self.lease / 3):
                await self._handler(ticket.update)
                await ticket.settled()
            finished = True
        except asyncio.CancelledError:
            raise
        except Exception:
            # The adapter logs and answers its own errors; this is a bug, not a retry.
            log.exception("update %d: unexpected error while handling it", update_id)
            finished = True
        finally:
            await self._settle_claim(update_id, done=finished)

    async def _settle_claim(self, update_id: int, *, done: bool) -> None:
        try:
            if done:
                await self._store.mark_update_done(self.platform, update_id, owner=self.owner)
            else:  # stopped mid-way: another replica (or the next start) goes on with it
                await self._store.release_update(self.platform, update_id, owner=self.owner)
        except Exception:
            log.warning("update %d: could not record its outcome", update_id, exc_info=True)

    async def _renew(self, update_id: int) -> bool:
        """Renew the update's claim once; False once it is lost (:func:`kept_alive`)."""
        try:
            held = await self._store.claim_update(
                self.platform, update_id, owner=self.owner, lease=self.lease
            )
        except Exception:
            log.warning("update %d: could not renew its claim; retrying", update_id)
            return True
        if held is None:
            log.warning("update %d: its claim was lost while it ran", update_id)
            return False
        return True
