"""The history half of :class:`storage.postgres.PostgresStore`: a user's projects.

The PostgreSQL twin of :mod:`storage.sqlite_history`; contract in
:class:`storage.base.Store`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import ProjectRecord, RenderRecord
from .rows import PROJECT_SELECT, project_of

__all__ = ["PostgresHistory"]


class PostgresHistory:
    """Mixin: projects and their videos, on PostgreSQL."""

    _clock: Callable[[], float]
    _render_columns: tuple[str, ...]
    _render_from_row: Callable[[Any], RenderRecord]

    # provided by PostgresStore
    async def _execute(self, sql: str, *args: Any) -> int:
        raise NotImplementedError

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        raise NotImplementedError

    async def title_project(self, platform: str, user_id: str, session_id: str, title: str) -> bool:
        """Name the project unless it has a name; marks it used now. True if named."""
        now = self._clock()
        named = await self._execute(
            "UPDATE projects SET title = $1, updated_at = $2 "
            "WHERE platform = $3 AND user_id = $4 AND session_id = $5 AND title IS NULL",
            title,
            now,
            platform,
            user_id,
            session_id,
        )
        if not named:
            await self._execute(
                "UPDATE projects SET updated_at = $1 "
                "WHERE platform = $2 AND user_id = $3 AND session_id = $4",
                now,
                platform,
                user_id,
                session_id,
            )
        return bool(named)

    async def list_projects(
        self, platform: str, user_id: str, *, limit: int = 10
    ) -> list[ProjectRecord]:
        """The user's projects, most recently used first."""
        rows = await self._fetch(
            f"{PROJECT_SELECT} WHERE p.platform = $1 AND p.user_id = $2 "
            "ORDER BY p.updated_at DESC, p.created_at DESC, p.session_id DESC LIMIT $3",
            platform,
            user_id,
            limit,
        )
        return [project_of(r) for r in rows]

    async def get_project(
        self, platform: str, user_id: str, session_id: str
    ) -> ProjectRecord | None:
        """One of the user's projects, or None."""
        rows = await self._fetch(
            f"{PROJECT_SELECT} WHERE p.platform = $1 AND p.user_id = $2 AND p.session_id = $3",
            platform,
            user_id,
            session_id,
        )
        return project_of(rows[0]) if rows else None

    async def last_video(self, session_id: str) -> RenderRecord | None:
        """The newest render of the session that completed with a file, or None."""
        rows = await self._fetch(
            f"SELECT {', '.join(self._render_columns)} FROM renders "
            "WHERE session_id = $1 AND status = 'completed' AND output_url IS NOT NULL "
            "ORDER BY completed_at DESC NULLS LAST, created_at DESC LIMIT 1",
            session_id,
        )
        return self._render_from_row(rows[0]) if rows else None
