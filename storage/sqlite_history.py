"""The history half of :class:`storage.sqlite.SQLiteStore`: a user's projects.

``save_session`` records each session as a project (in the same transaction);
this module names, lists and finds them, and finds a project's last video.
Contract in :class:`storage.base.Store`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .base import ProjectRecord, RenderRecord
from .rows import PROJECT_SELECT, project_of

__all__ = ["SQLiteHistory"]


class SQLiteHistory:
    """Mixin: projects and their videos, on SQLite."""

    _clock: Callable[[], float]
    _render_columns: tuple[str, ...]
    _render_from_row: Callable[[Any], RenderRecord]

    # provided by SQLiteStore
    async def _write(self, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> int:
        raise NotImplementedError

    async def _fetchall(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[Any]:
        raise NotImplementedError

    async def title_project(self, platform: str, user_id: str, session_id: str, title: str) -> bool:
        """Name the project unless it has a name; marks it used now. True if named."""
        now = self._clock()
        named = await self._write(
            "UPDATE projects SET title = ?, updated_at = ? "
            "WHERE platform = ? AND user_id = ? AND session_id = ? AND title IS NULL",
            (title, now, platform, user_id, session_id),
        )
        if not named:
            await self._write(
                "UPDATE projects SET updated_at = ? "
                "WHERE platform = ? AND user_id = ? AND session_id = ?",
                (now, platform, user_id, session_id),
            )
        return bool(named)

    async def list_projects(
        self, platform: str, user_id: str, *, limit: int = 10
    ) -> list[ProjectRecord]:
        """The user's projects, most recently used first."""
        rows = await self._fetchall(
            f"{PROJECT_SELECT} WHERE p.platform = ? AND p.user_id = ? "
            "ORDER BY p.updated_at DESC, p.created_at DESC, p.rowid DESC LIMIT ?",
            (platform, user_id, limit),
        )
        return [project_of(r) for r in rows]

    async def get_project(
        self, platform: str, user_id: str, session_id: str
    ) -> ProjectRecord | None:
        """One of the user's projects, or None."""
        rows = await self._fetchall(
            f"{PROJECT_SELECT} WHERE p.platform = ? AND p.user_id = ? AND p.session_id = ?",
            (platform, user_id, session_id),
        )
        return project_of(rows[0]) if rows else None

    async def last_video(self, session_id: str) -> RenderRecord | None:
        """The newest render of the session that completed with a file, or None."""
        rows = await self._fetchall(
            f"SELECT {', '.join(self._render_columns)} FROM renders "
            "WHERE session_id = ? AND status = 'completed' AND output_url IS NOT NULL "
            "ORDER BY completed_at DESC, created_at DESC LIMIT 1",
            (session_id,),
        )
        return self._render_from_row(rows[0]) if rows else None
