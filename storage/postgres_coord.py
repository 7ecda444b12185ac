"""The replica-coordination primitives of :class:`storage.postgres.PostgresStore`.

Leases, render claims, inbound updates and rate-limit counters (contract in
:class:`storage.base.Store`). A lease is taken in one short transaction that locks
the key's ``session_leases`` row (``SELECT ... FOR UPDATE``), so two replicas racing
for one session serialize on that row and nothing else. Releases and abandoned
waits ``NOTIFY`` the ``nemo_lease`` channel with the key; every replica's store
LISTENs on one dedicated connection and wakes its waiters for that key. Renders and
updates are claimed with ``FOR UPDATE SKIP LOCKED``, so concurrent claimers get
disjoint rows without waiting for each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

from .base import CounterHit, InboundUpdate, Lease, RenderRecord, window_bounds
from .rows import queue_has_room
from .wakeups import Wakeups

__all__ = ["CHANNEL", "PostgresCoordination"]

CHANNEL = "nemo_lease"
"""The NOTIFY channel; the payload is the lease key."""

_UPDATE_COLUMNS = tuple(f.name for f in fields(InboundUpdate))
_UPDATE_LIST = ", ".join(_UPDATE_COLUMNS)
#: Register a waiter for a session's lease, or refresh the one registered already.
_ADD_WAITER = (
    "INSERT INTO session_waiters (key, seq, owner, expires_at) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (key, seq, owner) DO UPDATE SET expires_at = EXCLUDED.expires_at"
)


def _update(row: Any) -> InboundUpdate:
    return InboundUpdate(**{name: row[name] for name in _UPDATE_COLUMNS})


class PostgresCoordination:
    """Mixin: the coordination half of the PostgreSQL store."""

    _clock: Callable[[], float]
    _wakeups: Wakeups
    _render_columns: tuple[str, ...]
    _render_from_row: Callable[[Any], RenderRecord]

    # provided by PostgresStore
    async def _execute(self, sql: str, *args: Any) -> int:
        raise NotImplementedError

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        raise NotImplementedError

    async def _fetchrow(self, sql: str, *args: Any) -> Any:
        raise NotImplementedError

    def _acquire(self) -> Any:
        raise NotImplementedError

    async def _notify(self, key: str) -> None:
        raise NotImplementedError

    async def _listen(self) -> None:
        raise NotImplementedError

    # -- leases ----------------------------------------------------------------------

    async def try_acquire_lease(
        self, key: str, *, owner: str, seq: int, ttl: float
    ) -> Lease | None:
        """Queue (or keep the place) for ``key``; take the lease when free and first in line."""
        now = self._clock()
        async with self._acquire() as conn:
            # committed on its own, so replicas racing for the lease see this waiter
            await conn.execute(_ADD_WAITER, key, seq, owner, now + ttl)
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO session_leases (key) VALUES ($1) ON CONFLICT DO NOTHING", key
                )
                row = await conn.fetchrow(
                    "SELECT owner, expires_at FROM session_leases WHERE key = $1 FOR UPDATE", key
                )
                if row["owner"] is not None and row["expires_at"] > now:
                    return None
                ahead = await conn.fetchval(
                    "SELECT 1 FROM session_waiters WHERE key = $1 AND expires_at > $2 "
                    'AND (seq < $3 OR (seq = $3 AND owner < $4 COLLATE "C")) LIMIT 1',
                    key,
                    now,
                    seq,
                    owner,
                )
                if ahead:
                    return None
                await conn.execute(
                    "DELETE FROM session_waiters WHERE key = $1 "
                    "AND ((seq = $2 AND owner = $3) OR expires_at <= $4)",
                    key,
                    seq,
                    owner,
                    now,
                )
                token = await conn.fetchval(
                    "UPDATE session_leases SET owner = $2, token = token + 1, expires_at = $3, "
                    "acquired_at = $4 WHERE key = $1 RETURNING token",
                    key,
                    owner,
                    now + ttl,
                    now,
                )
        return Lease(key=key, owner=owner, token=int(token), expires_at=now + ttl)

    async def renew_lease(self, lease: Lease, *, ttl: float) -> Lease | None:
        """Extend a still-held lease; None if it was lost."""
        now = self._clock()
        changed = await self._execute(
            "UPDATE session_leases SET expires_at = $1 "
            "WHERE key = $2 AND owner = $3 AND token = $4 AND expires_at > $5",
            now + ttl,
            lease.key,
            lease.owner,
            lease.token,
            now,
        )
        if changed != 1:
            return None
        return Lease(key=lease.key, owner=lease.owner, token=lease.token, expires_at=now + ttl)

    async def release_lease(self, lease: Lease) -> bool:
        """Free the lease (if still this holder's) and notify every replica."""
        changed = await self._execute(
            "UPDATE session_leases SET owner = NULL, expires_at = 0 "
            "WHERE key = $1 AND owner = $2 AND token = $3",
            lease.key,
            lease.owner,
            lease.token,
        )
        await self._notify(lease.key)
        return changed == 1

    async def abandon_wait(self, key: str, *, owner: str, seq: int) -> None:
        """Leave the queue of ``key`` and notify every replica."""
        await self._execute(
            "DELETE FROM session_waiters WHERE key = $1 AND seq = $2 AND owner = $3",
            key,
            seq,
            owner,
        )
        await self._notify(key)

    async def get_lease(self, key: str) -> Lease | None:
        """The holder of ``key`` (maybe expired), or None."""
        row = await self._fetchrow(
            "SELECT key, owner, token, expires_at FROM session_leases "
            "WHERE key = $1 AND owner IS NOT NULL",
            key,
        )
        if row is None:
            return None
        return Lease(
            key=row["key"],
            owner=row["owner"],
            token=int(row["token"]),
            expires_at=row["expires_at"],
        )

    async def first_waiter(self, key: str) -> int | None:
        """The lowest seq among the live waiters of ``key``, or None."""
        row = await self._fetchrow(
            "SELECT min(seq) AS seq FROM session_waiters WHERE key = $1 AND expires_at > $2",
            key,
            self._clock(),
        )
        return None if row is None or row["seq"] is None else int(row["seq"])

    async def place_in_line(self, key: str, *, owner: str, seq: int) -> int:
        """The live lease holder plus the live waiters before (``seq``, ``owner``)."""
        now = self._clock()
        row = await self._fetchrow(
            "SELECT (SELECT count(*) FROM session_waiters WHERE key = $1 AND expires_at > $2 "
            'AND (seq < $3 OR (seq = $3 AND owner < $4 COLLATE "C"))) + (SELECT count(*) '
            "FROM session_leases WHERE key = $1 AND owner IS NOT NULL AND expires_at > $2) "
            "AS ahead",
            key,
            now,
            seq,
            owner,
        )
        return int(row["ahead"])

    async def join_queue(
        self, key: str, *, owner: str, seq: int, ttl: float, prefix: str, limit: int
    ) -> bool:
        """Count and join in one transaction, under a transaction lock per user (``prefix``).

        Without the lock two replicas could each count ``limit - 1`` and both join.
        """
        now = self._clock()
        async with self._acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "nemo-queue:" + prefix
            )
            row = await conn.fetchrow(
                "SELECT "
                "EXISTS (SELECT 1 FROM session_waiters WHERE key = $1 AND seq = $2 "
                "AND owner = $3) AS joined, "
                "EXISTS (SELECT 1 FROM session_leases WHERE key = $1 AND owner IS NOT NULL "
                "AND expires_at > $4) AS held, "
                "(SELECT count(*) FROM session_waiters WHERE key = $1 AND expires_at > $4) "
                "AS here, "
                "(SELECT count(*) FROM session_waiters WHERE left(key, length($5)) = $5 "
                "AND expires_at > $4) AS mine",
                key,
                seq,
                owner,
                now,
                prefix,
            )
            if not row["joined"] and not queue_has_room(
                held=row["held"], here=row["here"], mine=row["mine"], limit=limit
            ):
                return False
            await conn.execute(_ADD_WAITER, key, seq, owner, now + ttl)
        return True

    async def wait_for_lease(self, key: str, seconds: float) -> bool:
        """Sleep until a release of ``key`` on any replica (NOTIFY), or ``seconds`` pass."""
        await self._listen()
        return await self._wakeups.wait(key, seconds)

    # -- renders -------------------------------------------------------------------------

    async def claim_renders(
        self, *, owner: str, lease: float, limit: int = 10
    ) -> list[RenderRecord]:
        """Claim up to ``limit`` free undelivered renders; concurrent claimers skip each other."""
        now = self._clock()
        rows = await self._fetch(
            "UPDATE renders SET claimed_by = $1, claimed_at = $2, updated_at = $2 "
            "WHERE render_id IN (SELECT render_id FROM renders WHERE delivered_at IS NULL "
            "AND (claimed_at IS NULL OR claimed_at <= $3) ORDER BY created_at, seq "
            f"LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING {', '.join(self._render_columns)}",
            owner,
            now,
            now - lease,
            limit,
        )
        claimed = [self._render_from_row(row) for row in rows]
        claimed.sort(key=lambda r: r.created_at)
        return claimed

    # -- inbound updates ---------------------------------------------------------------

    async def store_update(self, platform: str, update_id: int, payload: str) -> bool:
        """Store the update; False if it is a repeat."""
        changed = await self._execute(
            "INSERT INTO inbound_updates (platform, update_id, payload, received_at) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (platform, update_id) DO NOTHING",
            platform,
            update_id,
            payload,
            self._clock(),
        )
        return changed == 1

    async def get_update(self, platform: str, update_id: int) -> InboundUpdate | None:
        """The stored update, or None."""
        row = await self._fetchrow(
            f"SELECT {_UPDATE_LIST} FROM inbound_updates WHERE platform = $1 AND update_id = $2",
            platform,
            update_id,
        )
        return None if row is None else _update(row)

    async def claim_update(
        self, platform: str, update_id: int, *, owner: str, lease: float
    ) -> InboundUpdate | None:
        """Claim (or renew) one update."""
        now = self._clock()
        row = await self._fetchrow(
            "UPDATE inbound_updates SET "
            "attempts = attempts + CASE WHEN claimed_by IS NOT DISTINCT FROM $1 THEN 0 ELSE 1 END, "
            "claimed_by = $1, claimed_at = $2 "
            "WHERE platform = $3 AND update_id = $4 AND done_at IS NULL "
            "AND (claimed_by IS NULL OR claimed_by = $1 OR claimed_at <= $5) "
            f"RETURNING {_UPDATE_LIST}",
            owner,
            now,
            platform,
            update_id,
            now - lease,
        )
        return None if row is None else _update(row)

    async def claim_updates(
        self, platform: str, *, owner: str, lease: float, limit: int = 10
    ) -> list[InboundUpdate]:
        """Claim up to ``limit`` free pending updates, lowest id first."""
        now = self._clock()
        rows = await self._fetch(
            "UPDATE inbound_updates SET attempts = attempts + 1, claimed_by = $1, claimed_at = $2 "
            "WHERE (platform, update_id) IN (SELECT platform, update_id FROM inbound_updates "
            "WHERE platform = $3 AND done_at IS NULL AND (claimed_by IS NULL OR claimed_at <= $4) "
            f"ORDER BY update_id LIMIT $5 FOR UPDATE SKIP LOCKED) RETURNING {_UPDATE_LIST}",
            owner,
            now,
            platform,
            now - lease,
            limit,
        )
        return sorted((_update(r) for r in rows), key=lambda u: u.update_id)

    async def set_update_stage(
        self, platform: str, update_id: int, *, owner: str, stage: str
    ) -> bool:
        """Record the holder's progress."""
        changed = await self._execute(
            "UPDATE inbound_updates SET stage = $1 WHERE platform = $2 AND update_id = $3 "
            "AND claimed_by = $4 AND done_at IS NULL",
            stage,
            platform,
            update_id,
            owner,
        )
        return changed == 1

    async def mark_update_done(self, platform: str, update_id: int, *, owner: str) -> bool:
        """The holder finished the update."""
        changed = await self._execute(
            "UPDATE inbound_updates SET done_at = $1 WHERE platform = $2 AND update_id = $3 "
            "AND claimed_by = $4 AND done_at IS NULL",
            self._clock(),
            platform,
            update_id,
            owner,
        )
        return changed == 1

    async def release_update(self, platform: str, update_id: int, *, owner: str) -> bool:
        """The holder gives its claim back."""
        changed = await self._execute(
            "UPDATE inbound_updates SET claimed_by = NULL, claimed_at = NULL "
            "WHERE platform = $1 AND update_id = $2 AND claimed_by = $3 AND done_at IS NULL",
            platform,
            update_id,
            owner,
        )
        return changed == 1

    async def prune_updates(self, *, older_than: float) -> int:
        """Delete updates done before now - ``older_than``."""
        return await self._execute(
            "DELETE FROM inbound_updates WHERE done_at IS NOT NULL AND done_at < $1",
            self._clock() - older_than,
        )

    # -- counters --------------------------------------------------------------------------

    async def hit_counter(
        self, scope: str, key: str, *, window: float, limit: int | None = None, amount: int = 1
    ) -> CounterHit:
        """Count a hit in the current window unless it would go over ``limit`` (atomic)."""
        start, end = window_bounds(self._clock(), window)
        cap = -1 if limit is None else limit
        row = await self._fetchrow(
            "INSERT INTO counters (scope, key, window_start, window_end, count) "
            "SELECT $1::text, $2::text, $3::float8, $4::float8, $5::bigint "
            "WHERE $6::bigint < 0 OR $5::bigint <= $6::bigint "
            "ON CONFLICT (scope, key, window_start) DO UPDATE SET "
            "count = counters.count + EXCLUDED.count "
            "WHERE $6::bigint < 0 OR counters.count + EXCLUDED.count <= $6::bigint "
            "RETURNING count",
            scope,
            key,
            start,
            end,
            amount,
            cap,
        )
        if row is not None:
            return CounterHit(True, int(row[0]), start, end)
        current = await self._fetchrow(
            "SELECT count FROM counters WHERE scope = $1 AND key = $2 AND window_start = $3",
            scope,
            key,
            start,
        )
        return CounterHit(False, 0 if current is None else int(current[0]), start, end)

    async def read_counter(self, scope: str, key: str, *, window: float) -> int:
        """The current window's count."""
        start, _ = window_bounds(self._clock(), window)
        row = await self._fetchrow(
            "SELECT count FROM counters WHERE scope = $1 AND key = $2 AND window_start = $3",
            scope,
            key,
            start,
        )
        return 0 if row is None else int(row[0])

    async def prune_counters(self) -> int:
        """Delete the counts of ended windows."""
        return await self._execute("DELETE FROM counters WHERE window_end <= $1", self._clock())

    async def claim_rate_slot(
        self, scope: str, *, limit: int, window: float, hold: float
    ) -> tuple[int, float] | float:
        """Take a slot at least ``window`` old, stamped ``hold`` ahead (skipping locked ones)."""
        if limit <= 0 or window <= 0:
            raise ValueError("limit and window must be positive")
        now = self._clock()
        held_until = now + hold
        for _ in range(2):
            taken = await self._fetchrow(
                "UPDATE rate_slots SET at = $1 WHERE scope = $2 AND slot = (SELECT slot "
                "FROM rate_slots WHERE scope = $2 AND slot < $3 AND at <= $4 ORDER BY at "
                "LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING slot",
                held_until,
                scope,
                limit,
                now - window,
            )
            if taken is not None:
                return int(taken[0]), held_until
            row = await self._fetchrow(
                "SELECT count(*), min(at) FROM rate_slots WHERE scope = $1 AND slot < $2",
                scope,
                limit,
            )
            if int(row[0]) >= limit:
                return max(float(row[1]) + window - now, 0.001)
            await self._execute(  # first use, or a raised limit
                "INSERT INTO rate_slots (scope, slot, at) SELECT $1, g, 0 "
                "FROM generate_series(0, $2 - 1) AS g ON CONFLICT (scope, slot) DO NOTHING",
                scope,
                limit,
            )
        return window  # not reached: the second pass finds the new slots

    async def take_rate_slot(self, scope: str, *, limit: int, window: float) -> float:
        """Take a slot at least ``window`` old (skipping ones others are taking), or wait."""
        claimed = await self.claim_rate_slot(scope, limit=limit, window=window, hold=0.0)
        return 0.0 if isinstance(claimed, tuple) else claimed

    async def stamp_rate_slot(self, scope: str, slot: int, *, held_until: float) -> None:
        """Stamp the held slot with now, unless it was taken again since."""
        await self._execute(
            "UPDATE rate_slots SET at = $1 WHERE scope = $2 AND slot = $3 AND at = $4",
            self._clock(),
            scope,
            slot,
            held_until,
        )
