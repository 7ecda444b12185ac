"""A :class:`~core.gate.SessionGate` shared by several replicas through the store.

Each request of a session queues in the store as a waiter (its order: the
platform's number for the message, such as Telegram's ``update_id``) and runs once
it holds the session's lease (:meth:`storage.base.Store.try_acquire_lease`). While
it runs, a background task renews the lease every third of its ``ttl``; when it
ends, the lease is released and the next waiter, on whichever replica, is woken
(LISTEN/NOTIFY on PostgreSQL; a short poll covers an expired lease and SQLite). A
replica that dies mid-request stops renewing: its lease expires after ``ttl``
seconds and the next waiter runs. No transaction stays open while a request runs.

``max_waiting`` bounds the requests of one session waiting *in this replica*, like
the in-process gate does; each replica counts its own. ``queue_limit``
(``NEMO_LIMIT_QUEUE``) bounds one user's waiting requests on every replica together:
a request joins the line only through :meth:`storage.base.Store.join_queue`, which
counts and joins in one atomic step (two replicas asked at the same instant cannot
both take the last place), and :class:`QueueFull` is raised when there is no room.
A waiting request's place (``on_place``: the holder plus the waiters before it, on
every replica) is read from the store each time the waiter looks again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from core.gate import OnPlace, OnWait, SessionBusy, SessionKey
from core.renewal import kept_alive
from storage.base import Lease, Store

__all__ = ["QueueFull", "StoreSessionGate", "default_replica_name"]

log = logging.getLogger(__name__)


def default_replica_name() -> str:
    """``host:pid``: unique per running process."""
    return f"{socket.gethostname()}:{os.getpid()}"


class QueueFull(SessionBusy):
    """The user already has ``NEMO_LIMIT_QUEUE`` requests waiting (on any replica)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} requests already wait")
        self.limit = limit


class StoreSessionGate:
    """One request per session at a time across every replica on one database."""

    def __init__(
        self,
        store: Store,
        *,
        replica: str | None = None,
        ttl: float = 30.0,
        poll: float = 1.0,
        max_waiting: int = 3,
        settle: float = 0.25,
        queue_limit: int | None = None,
    ) -> None:
        """``ttl``: how long a dead replica's lease blocks its session; ``poll``: the
        longest a waiter sleeps before looking again without a notification;
        ``settle``: how long a request numbered by its platform that found the session
        free waits for an earlier-numbered one that arrived at another replica at the
        same moment (the earlier one then goes first); ``queue_limit``: how many
        requests one user may have waiting on every replica (None: no limit)."""
        if ttl <= 0 or poll <= 0:
            raise ValueError("ttl and poll must be positive")
        self._store = store
        self._replica = replica or default_replica_name()
        self._ttl = ttl
        self._poll = min(poll, ttl / 3)  # a waiter refreshes its place well within ttl
        self._max_waiting = max_waiting
        self._settle = settle
        self._queue_limit = queue_limit
        self._members: dict[SessionKey, int] = {}

    @property
    def replica(self) -> str:
        """The name leases carry as their owner prefix."""
        return self._replica

    def hold(
        self,
        key: SessionKey,
        order: int | None = None,
        *,
        on_wait: OnWait | None = None,
        on_place: OnPlace | None = None,
    ) -> AbstractAsyncContextManager[None]:
        """See :meth:`core.gate.SessionGate.hold`; ``order`` orders the waiters."""
        return self._hold(key, order, on_wait, on_place)

    @asynccontextmanager
    async def _hold(
        self,
        key: SessionKey,
        order: int | None,
        on_wait: OnWait | None,
        on_place: OnPlace | None,
    ) -> AsyncIterator[None]:
        members = self._members.get(key, 0)
        if members > self._max_waiting:
            raise SessionBusy(str(key))
        self._members[key] = members + 1
        # Without a platform number, the arrival time orders the waiters (microseconds).
        seq = order if order is not None else time.time_ns() // 1000
        # The seq rides in the owner, so a waiter can tell a later message holding the
        # lease only while it settles (see _yield_to_earlier).
        owner = f"{self._replica}/{uuid.uuid4().hex[:12]}#{seq}"
        name = str(key)
        lease: Lease | None = None
        try:
            if self._queue_limit is not None and not await self._store.join_queue(
                name,
                owner=owner,
                seq=seq,
                ttl=self._ttl,
                prefix=f"{key.platform}:{key.user_id}:",
                limit=self._queue_limit,
            ):
                raise QueueFull(self._queue_limit)
            lease = await self._acquire(
                name, owner, seq, on_wait, on_place, numbered=order is not None
            )
            try:
                async with kept_alive(self._renewal(lease), self._ttl / 3):
                    yield
            finally:
                await self._store.release_lease(lease)
        finally:
            if lease is None:  # cancelled (or failed) while waiting: give the place up
                with contextlib.suppress(Exception):
                    await self._store.abandon_wait(name, owner=owner, seq=seq)
            left = self._members.get(key, 1) - 1
            if left:
                self._members[key] = left
            else:
                self._members.pop(key, None)

    async def _acquire(
        self,
        name: str,
        owner: str,
        seq: int,
        on_wait: OnWait | None,
        on_place: OnPlace | None = None,
        *,
        numbered: bool = False,
    ) -> Lease:
        told = False
        shown: int | None = None
        settled = not numbered or self._settle <= 0
        settled_peer = settled
        while True:
            lease = await self._store.try_acquire_lease(name, owner=owner, seq=seq, ttl=self._ttl)
            if lease is not None and not settled:
                settled = True
                lease = await self._yield_to_earlier(lease, seq)
            if lease is not None:
                return lease
            if not settled_peer:
                settled_peer = True
                if await self._later_holds(name, seq):
                    # A later message holds the lease only while it settles (see
                    # _yield_to_earlier): it hands over soon; no need to tell the user.
                    await self._store.wait_for_lease(name, self._settle * 2)
                    continue
            if on_place is not None:
                ahead = await self._store.place_in_line(name, owner=owner, seq=seq)
                if ahead != shown and ahead > 0:  # 0: our turn is due, look again
                    shown = ahead
                    await on_place(ahead)
            if not told:
                told = True
                if on_wait is not None:
                    await on_wait()  # may take a while: look again before sleeping
                    continue
            await self._store.wait_for_lease(name, self._poll)

    async def _later_holds(self, name: str, seq: int) -> bool:
        holder = await self._store.get_lease(name)
        if holder is None:
            return False
        _, _, held_seq = holder.owner.rpartition("#")
        return held_seq.isdigit() and int(held_seq) > seq

    async def _yield_to_earlier(self, lease: Lease, seq: int) -> Lease | None:
        """Hand the lease on if an earlier-numbered request queued meanwhile.

        Two messages of one chat can reach two replicas at once; the later one may
        register first and find the session free. Waiting ``settle`` s for the other
        to show up keeps the platform's order (the check runs once per request).
        """
        await asyncio.sleep(self._settle)
        first = await self._store.first_waiter(lease.key)
        if first is None or first > seq:
            return lease
        await self._store.release_lease(lease)  # wakes the earlier one; we queue again
        return None

    def _renewal(self, lease: Lease) -> Callable[[], Awaitable[bool]]:
        """One renewal of the lease at a time, while the request runs (:func:`kept_alive`)."""
        current = lease

        async def beat() -> bool:
            nonlocal current
            try:
                renewed = await self._store.renew_lease(current, ttl=self._ttl)
            except Exception:  # a blip: try again at the next beat, the lease is not yet lost
                log.warning("could not renew the lease of a session; retrying", exc_info=True)
                return True
            if renewed is None:
                log.warning("a session's lease was lost while its request ran (expired)")
                return False
            current = renewed
            return True

        return beat
