"""The admin half of :class:`storage.sqlite.SQLiteStore`: activity, daily counts, broadcasts.

Contract in :class:`storage.base.Store`. Every write is one statement (an UPSERT
or an ``UPDATE``), atomic on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .base import BroadcastRecord
from .rows import BROADCAST_COLUMNS, BROADCAST_SELECT, broadcast_of, utc_day

__all__ = ["SQLiteAdmin"]


class SQLiteAdmin:
    """Mixin: what the admin commands read and write, on SQLite."""

    _clock: Callable[[], float]

    # provided by SQLiteStore
    async def _write(self, sql: str, params: Iterable[Any] | Mapping[str, Any]) -> int:
        raise NotImplementedError

    async def _fetchall(
        self, sql: str, params: Iterable[Any] | Mapping[str, Any] = ()
    ) -> list[Any]:
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
        self, platform: str, *, after: str | None, limit: int
    ) -> list[tuple[str, str]]:
        """Contacts of ``platform`` after ``after``, by user id."""
        rows = await self._fetchall(
            "SELECT user_id, COALESCE(dm_chat_id, user_id) FROM contacts "
            "WHERE platform = ? AND user_id > ? ORDER BY user_id LIMIT ?",
            (platform, after or "", limit),
        )
        return [(str(r[0]), str(r[1])) for r in rows]

    async def advance_broadcast(
        self, broadcast_id: int, *, cursor: str, sent: int, failed: int
    ) -> None:
        """Move the cursor and add to the counts."""
        await self._write(
            "UPDATE broadcasts SET cursor = ?, sent = sent + ?, failed = failed + ? "
            "WHERE broadcast_id = ?",
            (cursor, sent, failed, broadcast_id),
        )

    async def finish_broadcast(self, broadcast_id: int) -> BroadcastRecord | None:
        """Mark it done; the final record."""
        rows = await self._fetchall(
            "UPDATE broadcasts SET finished_at = COALESCE(finished_at, ?) "
            f"WHERE broadcast_id = ? RETURNING {', '.join(BROADCAST_COLUMNS)}",
            (self._clock(), broadcast_id),
        )
        return broadcast_of(rows[0]) if rows else None

    async def unfinished_broadcasts(self) -> list[BroadcastRecord]:
        """Broadcasts not finished, oldest first."""
        rows = await self._fetchall(
            f"{BROADCAST_SELECT} WHERE finished_at IS NULL ORDER BY broadcast_id"
        )
        return [broadcast_of(r) for r in rows]
