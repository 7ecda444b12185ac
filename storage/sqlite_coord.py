"""The replica-coordination primitives of :class:`storage.sqlite.SQLiteStore`.

Leases, render claims, inbound updates and rate-limit counters (see
:class:`storage.base.Store` for their contract). Multi-statement steps run in one
``BEGIN IMMEDIATE`` transaction, which takes SQLite's single write lock up front, so
they are atomic across processes sharing the file as well as across tasks. SQLite
has no cross-process notifications: :meth:`wait_for_lease` is woken by releases in
this process only, and callers poll too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import fields
from typing import Any

from .base import CounterHit, InboundUpdate, Lease, RenderRecord, window_bounds
from .rows import queue_has_room
from .sqlite_conn import LoopConnection
from .wakeups import Wakeups

__all__ = ["SQLiteCoordination"]

_UPDATE_COLUMNS = tuple(f.name for f in fields(InboundUpdate))
_UPDATE_SELECT = f"SELECT {', '.join(_UPDATE_COLUMNS)} FROM inbound_updates"
#: Register a waiter for a session's lease, or refresh the one registered already.
_ADD_WAITER = (
    "INSERT INTO session_waiters (key, seq, owner, expires_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (key, seq, owner) DO UPDATE SET expires_at = excluded.expires_at"
)


def _update(row: Mapping[str, Any] | Any) -> InboundUpdate:
    return InboundUpdate(**{name: row[name] for name in _UPDATE_COLUMNS})


class SQLiteCoordination:
    """Mixin: the coordination half of the SQLite store."""

    _clock: Callable[[], float]
    _wakeups: Wakeups
    _render_columns: tuple[str, ...]
    _render_from_row: Callable[[Any], RenderRecord]

    # provided by SQLiteStore
    def _transaction(self) -> AbstractAsyncContextManager[LoopConnection]:
        raise NotImplementedError

    async def _write(self, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> int:
        raise NotImplementedError

    async def _fetchall(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[Any]:
        raise NotImplementedError

    async def _fetchone(self, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> Any:
        raise NotImplementedError

    # -- leases ----------------------------------------------------------------------

    async def try_acquire_lease(
        self, key: str, *, owner: str, seq: int, ttl: float
    ) -> Lease | None:
        """Queue (or keep the place) for ``key``; take the lease when free and first in line."""
        now = self._clock()
        async with self._transaction() as conn:
            await conn.execute(
                _ADD_WAITER,
                (key, seq, owner, now + ttl),
            )
            held = await conn.execute_fetchall(
                "SELECT 1 FROM session_leases WHERE key = ? AND owner IS NOT NULL "
                "AND expires_at > ?",
                (key, now),
            )
            if held:
                return None
            ahead = await conn.execute_fetchall(
                "SELECT 1 FROM session_waiters WHERE key = ? AND expires_at > ? "
                "AND (seq < ? OR (seq = ? AND owner < ?)) LIMIT 1",
                (key, now, seq, seq, owner),
            )
            if ahead:
                return None
            await conn.execute(
                "DELETE FROM session_waiters WHERE key = ? "
                "AND ((seq = ? AND owner = ?) OR expires_at <= ?)",
                (key, seq, owner, now),
            )
            rows = await conn.execute_fetchall(
                "INSERT INTO session_leases (key, owner, token, expires_at, acquired_at) "
                "VALUES (?, ?, 1, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                "owner = excluded.owner, token = session_leases.token + 1, "
                "expires_at = excluded.expires_at, acquired_at = excluded.acquired_at "
                "RETURNING token",
                (key, owner, now + ttl, now),
            )
            token = int(next(iter(rows))[0])
        return Lease(key=key, owner=owner, token=token, expires_at=now + ttl)

    async def renew_lease(self, lease: Lease, *, ttl: float) -> Lease | None:
        """Extend a still-held lease; None if it was lost."""
        now = self._clock()
        changed = await self._write(
            "UPDATE session_leases SET expires_at = ? "
            "WHERE key = ? AND owner = ? AND token = ? AND expires_at > ?",
            (now + ttl, lease.key, lease.owner, lease.token, now),
        )
        if changed != 1:
            return None
        return Lease(key=lease.key, owner=lease.owner, token=lease.token, expires_at=now + ttl)

    async def release_lease(self, lease: Lease) -> bool:
        """Free the lease (if still this holder's) and wake local waiters."""
        changed = await self._write(
            "UPDATE session_leases SET owner = NULL, expires_at = 0 "
            "WHERE key = ? AND owner = ? AND token = ?",
            (lease.key, lease.owner, lease.token),
        )
        self._wakeups.wake(lease.key)
        return changed == 1

    async def abandon_wait(self, key: str, *, owner: str, seq: int) -> None:
        """Leave the queue of ``key``."""
        await self._write(
            "DELETE FROM session_waiters WHERE key = ? AND seq = ? AND owner = ?",
            (key, seq, owner),
        )
        self._wakeups.wake(key)

    async def get_lease(self, key: str) -> Lease | None:
        """The holder of ``key`` (maybe expired), or None."""
        row = await self._fetchone(
            "SELECT key, owner, token, expires_at FROM session_leases "
            "WHERE key = ? AND owner IS NOT NULL",
            (key,),
        )
        if row is None:
            return None
        return Lease(key=row[0], owner=row[1], token=int(row[2]), expires_at=float(row[3]))

    async def first_waiter(self, key: str) -> int | None:
        """The lowest seq among the live waiters of ``key``, or None."""
        row = await self._fetchone(
            "SELECT min(seq) FROM session_waiters WHERE key = ? AND expires_at > ?",
            (key, self._clock()),
        )
        return None if row is None or row[0] is None else int(row[0])

    async def place_in_line(self, key: str, *, owner: str, seq: int) -> int:
        """The live lease holder plus the live waiters before (``seq``, ``owner``)."""
        now = self._clock()
        row = await self._fetchone(
            "SELECT (SELECT count(*) FROM session_waiters WHERE key = ? AND expires_at > ? "
            "AND (seq < ? OR (seq = ? AND owner < ?))) + (SELECT count(*) FROM session_leases "
            "WHERE key = ? AND owner IS NOT NULL AND expires_at > ?)",
            (key, now, seq, seq, owner, key, now),
        )
        return int(row[0])

    async def join_queue(
        self, key: str, *, owner: str, seq: int, ttl: float, prefix: str, limit: int
    ) -> bool:
        """Count and join in one ``BEGIN IMMEDIATE`` transaction (SQLite's write lock)."""
        now = self._clock()
        async with self._transaction() as conn:
            rows = await conn.execute_fetchall(
                "SELECT "
                "EXISTS (SELECT 1 FROM session_waiters WHERE key = :key AND seq = :seq "
                "AND owner = :owner), "
                "EXISTS (SELECT 1 FROM session_leases WHERE key = :key AND owner IS NOT NULL "
                "AND expires_at > :now), "
                "(SELECT count(*) FROM session_waiters WHERE key = :key AND expires_at > :now), "
                "(SELECT count(*) FROM session_waiters "
                "WHERE substr(key, 1, length(:prefix)) = :prefix AND expires_at > :now)",
                {"key": key, "seq": seq, "owner": owner, "now": now, "prefix": prefix},
            )
            joined, held, here, mine = next(iter(rows))
            if not joined and not queue_has_room(held=held, here=here, mine=mine, limit=limit):
                return False
            await conn.execute(
                _ADD_WAITER,
                (key, seq, owner, now + ttl),
            )
        return True

    async def wait_for_lease(self, key: str, seconds: float) -> bool:
        """Sleep until a release in this process, or ``seconds`` pass."""
        return await self._wakeups.wait(key, seconds)

    # -- renders -------------------------------------------------------------------------

    async def claim_renders(
        self, *, owner: str, lease: float, limit: int = 10
    ) -> list[RenderRecord]:
        """Claim up to ``limit`` free undelivered renders (one statement: atomic)."""
        now = self._clock()
        columns = ", ".join(self._render_columns)
        rows = await self._fetchall(
            f"UPDATE renders SET claimed_by = ?, claimed_at = ?, updated_at = ? "
            f"WHERE render_id IN (SELECT render_id FROM renders WHERE delivered_at IS NULL "
            f"AND (claimed_at IS NULL OR claimed_at <= ?) ORDER BY created_at, rowid LIMIT ?) "
            f"RETURNING {columns}",
            (owner, now, now, now - lease, limit),
        )
        claimed = [self._render_from_row(row) for row in rows]
        claimed.sort(key=lambda r: r.created_at)
        return claimed

    # -- inbound updates ---------------------------------------------------------------

    async def store_update(self, platform: str, update_id: int, payload: str) -> bool:
        """Store the update; False if it is a repeat."""
        changed = await self._write(
            "INSERT INTO inbound_updates (platform, update_id, payload, received_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (platform, update_id) DO NOTHING",
            (platform, update_id, payload, self._clock()),
        )
        return changed == 1

    async def get_update(self, platform: str, update_id: int) -> InboundUpdate | None:
        """The stored update, or None."""
        row = await self._fetchone(
            f"{_UPDATE_SELECT} WHERE platform = ? AND update_id = ?", (platform, update_id)
        )
        return None if row is None else _update(row)

    async def claim_update(
        self, platform: str, update_id: int, *, owner: str, lease: float
    ) -> InboundUpdate | None:
        """Claim (or renew) one update."""
        now = self._clock()
        row = await self._fetchone(
            "UPDATE inbound_updates SET "
            "attempts = attempts + CASE WHEN claimed_by IS ? THEN 0 ELSE 1 END, "
            "claimed_by = ?, claimed_at = ? "
            "WHERE platform = ? AND update_id = ? AND done_at IS NULL "
            "AND (claimed_by IS NULL OR claimed_by = ? OR claimed_at <= ?) "
            f"RETURNING {', '.join(_UPDATE_COLUMNS)}",
            (owner, owner, now, platform, update_id, owner, now - lease),
        )
        return None if row is None else _update(row)

    async def claim_updates(
        self, platform: str, *, owner: str, lease: float, limit: int = 10
    ) -> list[InboundUpdate]:
        """Claim up to ``limit`` free pending updates, lowest id first."""
        now = self._clock()
        rows = await self._fetchall(
            "UPDATE inbound_updates SET attempts = attempts + 1, claimed_by = ?, claimed_at = ? "
            "WHERE platform = ? AND update_id IN (SELECT update_id FROM inbound_updates "
            "WHERE platform = ? AND done_at IS NULL "
            "AND (claimed_by IS NULL OR claimed_at <= ?) ORDER BY update_id LIMIT ?) "
            f"RETURNING {', '.join(_UPDATE_COLUMNS)}",
            (owner, now, platform, platform, now - lease, limit),
        )
        return sorted((_update(r) for r in rows), key=lambda u: u.update_id)

    async def set_update_stage(
        self, platform: str, update_id: int, *, owner: str, stage: str
    ) -> bool:
        """Record the holder's progress."""
        changed = await self._write(
            "UPDATE inbound_updates SET stage = ? WHERE platform = ? AND update_id = ? "
            "AND claimed_by = ? AND done_at IS NULL",
            (stage, platform, update_id, owner),
        )
        return changed == 1

    async def mark_update_done(self, platform: str, update_id: int, *, owner: str) -> bool:
        """The holder finished the update."""
        changed = await self._write(
            "UPDATE inbound_updates SET done_at = ? WHERE platform = ? AND update_id = ? "
            "AND claimed_by = ? AND done_at IS NULL",
            (self._clock(), platform, update_id, owner),
        )
        return changed == 1

    async def release_update(self, platform: str, update_id: int, *, owner: str) -> bool:
        """The holder gives its claim back."""
        changed = await self._write(
            "UPDATE inbound_updates SET claimed_by = NULL, claimed_at = NULL "
            "WHERE platform = ? AND update_id = ? AND claimed_by = ? AND done_at IS NULL",
            (platform, update_id, owner),
        )
        return changed == 1

    async def prune_updates(self, *, older_than: float) -> int:
        """Delete updates done before now - ``older_than``."""
        return await self._write(
            "DELETE FROM inbound_updates WHERE done_at IS NOT NULL AND done_at < ?",
            (self._clock() - older_than,),
        )

    # -- counters --------------------------------------------------------------------------

    async def hit_counter(
        self, scope: str, key: str, *, window: float, limit: int | None = None, amount: int = 1
    ) -> CounterHit:
        """Count a hit in the current window unless it would go over ``limit``."""
        start, end = window_bounds(self._clock(), window)
        cap = -1 if limit is None else limit
        async with self._transaction() as conn:
            rows = await conn.execute_fetchall(
                "INSERT INTO counters (scope, key, window_start, window_end, count) "
                "SELECT ?, ?, ?, ?, ? WHERE ? < 0 OR ? <= ? "
                "ON CONFLICT (scope, key, window_start) DO UPDATE SET "
                "count = counters.count + excluded.count "
                "WHERE ? < 0 OR counters.count + excluded.count <= ? RETURNING count",
                (scope, key, start, end, amount, cap, amount, cap, cap, cap),
            )
            counted = list(rows)
            if counted:
                return CounterHit(True, int(counted[0][0]), start, end)
            current = await conn.execute_fetchall(
                "SELECT count FROM counters WHERE scope = ? AND key = ? AND window_start = ?",
                (scope, key, start),
            )
            count = int(next(iter(current))[0]) if current else 0
        return CounterHit(False, count, start, end)

    async def read_counter(self, scope: str, key: str, *, window: float) -> int:
        """The current window's count."""
        start, _ = window_bounds(self._clock(), window)
        row = await self._fetchone(
            "SELECT count FROM counters WHERE scope = ? AND key = ? AND window_start = ?",
            (scope, key, start),
        )
        return 0 if row is None else int(row[0])

    async def prune_counters(self) -> int:
        """Delete the counts of ended windows."""
        return await self._write("DELETE FROM counters WHERE window_end <= ?", (self._clock(),))

    async def claim_rate_slot(
        self, scope: str, *, limit: int, window: float, hold: float
    ) -> tuple[int, float] | float:
        """Take a slot at least ``window`` old, stamped ``hold`` ahead (one statement), or wait."""
        if limit <= 0 or window <= 0:
            raise ValueError("limit and window must be positive")
        now = self._clock()
        held_until = now + hold
        for _ in range(2):
            taken = await self._fetchall(
                "UPDATE rate_slots SET at = ? WHERE scope = ? AND slot = (SELECT slot "
                "FROM rate_slots WHERE scope = ? AND slot < ? AND at <= ? ORDER BY at LIMIT 1) "
                "RETURNING slot",
                (held_until, scope, scope, limit, now - window),
            )
            if taken:
                return int(taken[0][0]), held_until
            row = await self._fetchone(
                "SELECT count(*), min(at) FROM rate_slots WHERE scope = ? AND slot < ?",
                (scope, limit),
            )
            have, oldest = (int(row[0]), row[1]) if row is not None else (0, None)
            if have >= limit:
                return max(float(oldest or 0.0) + window - now, 0.001)
            async with self._transaction() as conn:  # first use, or a raised limit
                await conn.executemany(
                    "INSERT INTO rate_slots (scope, slot, at) VALUES (?, ?, 0) "
                    "ON CONFLICT (scope, slot) DO NOTHING",
                    [(scope, slot) for slot in range(limit)],
                )
        return window  # not reached: the second pass finds the new slots

    async def take_rate_slot(self, scope: str, *, limit: int, window: float) -> float:
        """Take a slot at least ``window`` old (one atomic statement), or say how long to wait."""
        claimed = await self.claim_rate_slot(scope, limit=limit, window=window, hold=0.0)
        return 0.0 if isinstance(claimed, tuple) else claimed

    async def stamp_rate_slot(self, scope: str, slot: int, *, held_until: float) -> None:
        """Stamp the held slot with now, unless it was taken again since."""
        await self._write(
            "UPDATE rate_slots SET at = ? WHERE scope = ? AND slot = ? AND at = ?",
            (self._clock(), scope, slot, held_until),
        )
