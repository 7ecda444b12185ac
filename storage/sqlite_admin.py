"""The admin half of :class:`storage.sqlite.SQLiteStore`: activity, daily counts, broadcasts.

Contract in :class:`storage.base.Store`. Every write is one statement (an UPSERT
or an ``UPDATE``), atomic on its own, but for a broadcast's finish (one transaction).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from .base import BroadcastOutcome, BroadcastRecord
from .rows import ADD_OUTCOMES as _ADD_OUTCOMES
from .rows import BROADCAST_COLUMNS, BROADCAST_SELECT, broadcast_of, utc_day

__all__ = ["SQLiteAdmin"]


class SQLiteAdmin:
    """Mixin: what the admin commands read and write, on SQLite."""

    _clock: Callable[[], float]

    # provided by SQLiteStore
    async def _write(self, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> int:
        raise NotImplementedError

    async def _fetchall(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[Any]:
        raise NotImplementedError

    def _transaction(self) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError

    async def note_contact(self, platform: str, user_id: str, dm_chat_id: str | None) -> None:
        """Someone talked to the bot now."""
        now = self._clock()
        await self._write(
            "INSERT INTO contacts (platform, user_id, dm_chat_id, first_seen, last_seen) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (platform, user_id) DO UPDATE SET "
            "last_seen = excluded.last_seen, "
            "dm_chat_id = COALESCE(excluded.dm_chat_id, contacts.dm_chat_id)",
            (platform, user_id, dm_chat_id, now, now),
        )

    async def count_contacts(self, *, since: float) -> int:
        """How many people talked to the bot since ``since``."""
        rows = await self._fetchall("SELECT count(*) FROM contacts WHERE last_seen >= ?", (since,))
        return int(rows[0][0])

    async def add_daily(self, kind: str, key: str, amount: int = 1) -> None:
        """Add to today's count of (kind, key)."""
        await self._write(
            "INSERT INTO daily_stats (day, kind, key, count) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (day, kind, key) DO UPDATE SET count = daily_stats.count + excluded.count",
            (utc_day(self._clock()), kind, key, amount),
        )

    async def read_daily(self, kind: str, *, since_day: str) -> dict[str, int]:
        """Counts of ``kind`` by key since ``since_day``."""
        rows = await self._fetchall(
            "SELECT key, sum(count) FROM daily_stats WHERE kind = ? AND day >= ? GROUP BY key",
            (kind, since_day),
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def render_outcomes(self, *, since: float) -> dict[str, int]:
        """Renders created since ``since`` by status."""
        rows = await self._fetchall(
            "SELECT status, count(*) FROM renders WHERE created_at >= ? GROUP BY status",
            (since,),
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def delivery_delays(self, *, since: float, limit: int = 10_000) -> list[float]:
        """Completion-to-delivery seconds of videos delivered since ``since``."""
        rows = await self._fetchall(
            "SELECT delivered_at - completed_at FROM renders WHERE status = 'completed' "
            "AND delivered_at >= ? AND completed_at IS NOT NULL "
            "ORDER BY delivered_at DESC LIMIT ?",
            (since, limit),
        )
        return [max(0.0, float(r[0])) for r in rows]

    async def start_broadcast(
        self, platform: str, text: str, *, admin_chat: str, admin_user: str
    ) -> BroadcastRecord:
        """Record a new broadcast."""
        now = self._clock()
        rows = await self._fetchall(
            "INSERT INTO broadcasts (platform, text, admin_chat, admin_user, created_at) "
            "VALUES (?, ?, ?, ?, ?) RETURNING broadcast_id",
            (platform, text, admin_chat, admin_user, now),
        )
        return BroadcastRecord(
            broadcast_id=int(rows[0][0]),
            platform=platform,
            text=text,
            admin_chat=admin_chat,
            admin_user=admin_user,
            created_at=now,
        )

    async def broadcast_targets(
        self, platform: str, *, after: str | None, limit: int, unclaimed_in: int | None = None
    ) -> list[tuple[str, str]]:
        """Contacts of ``platform`` after ``after``, by user id (those not yet claimed)."""
        rows = await self._fetchall(
            "SELECT c.user_id, COALESCE(c.dm_chat_id, c.user_id) FROM contacts c "
            "WHERE c.platform = ? AND c.user_id > ? AND NOT EXISTS (SELECT 1 FROM "
            "broadcast_sends s WHERE s.broadcast_id = ? AND s.user_id = c.user_id) "
            "ORDER BY c.user_id LIMIT ?",
            (platform, after or "", -1 if unclaimed_in is None else unclaimed_in, limit),
        )
        return [(str(r[0]), str(r[1])) for r in rows]

    async def claim_broadcast_recipient(self, broadcast_id: int, user_id: str) -> bool:
        """Claim the send to ``user_id`` (one INSERT: atomic); False if claimed before or done."""
        changed = await self._write(
            "INSERT INTO broadcast_sends (broadcast_id, user_id, state, at) "
            "SELECT ?, ?, 'claimed', ? WHERE EXISTS (SELECT 1 FROM broadcasts "
            "WHERE broadcast_id = ? AND finished_at IS NULL) ON CONFLICT DO NOTHING",
            (broadcast_id, user_id, self._clock(), broadcast_id),
        )
        return changed == 1

    async def settle_broadcast_recipient(
        self, broadcast_id: int, user_id: str, outcome: BroadcastOutcome
    ) -> None:
        """Record the outcome of a claimed send."""
        await self._write(
            "UPDATE broadcast_sends SET state = ?, at = ? "
            "WHERE broadcast_id = ? AND user_id = ? AND state = 'claimed'",
            (outcome, self._clock(), broadcast_id, user_id),
        )

    async def advance_broadcast(self, broadcast_id: int, *, cursor: str) -> None:
        """Move the cursor."""
        await self._write(
            "UPDATE broadcasts SET cursor = ? WHERE broadcast_id = ?", (cursor, broadcast_id)
        )

    async def finish_broadcast(self, broadcast_id: int) -> BroadcastRecord | None:
        """Mark it done with its recipients' outcomes counted (one transaction)."""
        async with self._transaction() as conn:
            rows = await conn.execute_fetchall(
                f"UPDATE broadcasts SET finished_at = ?, {_ADD_OUTCOMES.format(p='?')} "
                f"WHERE broadcast_id = ? AND finished_at IS NULL "
                f"RETURNING {', '.join(BROADCAST_COLUMNS)}",
                (self._clock(), broadcast_id, broadcast_id, broadcast_id, broadcast_id),
            )
            await conn.execute(
                "DELETE FROM broadcast_sends WHERE broadcast_id = ?", (broadcast_id,)
            )
        found = list(rows)
        return broadcast_of(found[0]) if found else None

    async def unfinished_broadcasts(self) -> list[BroadcastRecord]:
        """Broadcasts not finished, oldest first."""
        rows = await self._fetchall(
            f"{BROADCAST_SELECT} WHERE finished_at IS NULL ORDER BY broadcast_id"
        )
        return [broadcast_of(r) for r in rows]
