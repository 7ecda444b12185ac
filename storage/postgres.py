"""PostgreSQL implementation of :class:`storage.base.Store` on asyncpg.

Several bot replicas share one database through this store. Connections come from
an asyncpg pool; every operation is one statement or one short transaction (none
stays open across a backend stream). Conditional ``UPDATE``\\ s decide claims, and
``FOR UPDATE SKIP LOCKED`` hands disjoint sets of renders and updates to concurrent
claimers; leases wake waiting replicas with ``LISTEN``/``NOTIFY`` (see
:mod:`storage.postgres_coord`).

The schema is ``storage/migrations/postgres``: the same numbered steps as the SQLite
set (:mod:`storage.migrate`), applied in order, each in one transaction with the
``schema_version`` row that records it, under a transaction-scoped advisory lock so
replicas starting together migrate once.

Why asyncpg rather than psycopg 3: it is asyncio-native with its pool and
``LISTEN`` callbacks built in (one dependency), and it is the faster of the two on
the small statements a bot runs. Behind PgBouncer in transaction mode, LISTEN/NOTIFY
does not work and its statement cache must be off: connect straight to PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import fields
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit

import asyncpg

from . import migrate
from .base import IntegrityError, RenderRecord, SessionRecord, StoreError, UserRecord
from .migrate import Migration
from .postgres_admin import PostgresAdmin
from .postgres_coord import CHANNEL, PostgresCoordination
from .postgres_history import PostgresHistory
from .rows import USER_COLUMNS, user_values
from .secrets import PREFIX, TokenCipher, check_readable
from .wakeups import Wakeups

__all__ = ["PostgresStore", "is_postgres_url", "load_migrations", "safe_url"]

log = logging.getLogger(__name__)

TERMINAL_STATUSES = frozenset({"completed", "failed"})
"""Render statuses that set ``completed_at``."""

_MIGRATION_LOCK = 0x6E656D6F  # "nemo": the advisory lock replicas migrate under

_R = TypeVar("_R", UserRecord, SessionRecord, RenderRecord)


def is_postgres_url(value: str) -> bool:
    """Whether ``NEMO_BOT_DB`` names a PostgreSQL database rather than a SQLite file."""
    return value.startswith(("postgresql://", "postgres://"))


def safe_url(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # not a number: say nothing of it
        port = ""
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def load_migrations() -> list[Migration]:
    """The packaged PostgreSQL migrations, in order."""
    return migrate.load_migrations("postgres")


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Skip asyncpg's reset round trip when a connection goes back to the pool.

    Its default (``RESET ALL``, ``UNLISTEN *``, unlock advisory locks) undoes session
    state this store never creates: no ``SET``, LISTEN only on its own connection,
    advisory locks only transaction-scoped. It cost one round trip per statement,
    more than half of a lookup's time. An open transaction is still rolled back.
    """


def _columns(cls: type[Any]) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


_SESSION_COLUMNS = _columns(SessionRecord)
_RENDER_COLUMNS = _columns(RenderRecord)


def _from_row(cls: type[_R], row: Any) -> _R:
    return cls(**{name: row[name] for name in _columns(cls)})


def _select(table: str, columns: Sequence[str]) -> str:
    return f"SELECT {', '.join(columns)} FROM {table}"


def _placeholders(n: int, start: int = 1) -> str:
    return ", ".join(f"${i}" for i in range(start, start + n))


class PostgresStore(PostgresHistory, PostgresAdmin, PostgresCoordination):
    """A :class:`storage.base.Store` in a PostgreSQL database.

    ``url`` is ``postgresql://user:password@host:port/dbname`` (or ``postgres://``).
    Use ``async with PostgresStore(url) as store:``. ``clock`` returns Unix seconds
    (replicas compare leases by their own clocks: keep them in sync, e.g. NTP).
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        cipher: TokenCipher | None = None,
        min_size: int = 1,
        max_size: int = 10,
    ) -> None:
        """Remember where the database is; nothing connects until :meth:`open`."""
        if not is_postgres_url(url):
            raise ValueError("a PostgreSQL URL starts with postgresql:// or postgres://")
        self._url = url
        self._clock = clock
        self._cipher = cipher
        self._sizes = (min_size, max_size)
        self._pool: asyncpg.Pool | None = None
        self._wakeups = Wakeups()
        self._listener: asyncpg.Connection | None = None
        self._listen_lock = asyncio.Lock()
        self._render_columns = _RENDER_COLUMNS
        self._render_from_row = lambda row: _from_row(RenderRecord, row)

    def __repr__(self) -> str:
        state = "open" if self._pool is not None else "closed"
        return f"<PostgresStore {safe_url(self._url)} {state}>"

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Connect (a pool), migrate, check the stored tokens. Opening twice does nothing."""
        if self._pool is not None:
            return
        try:
            pool = await asyncpg.create_pool(
                self._url, min_size=self._sizes[0], max_size=self._sizes[1], reset=_keep_session
            )
        except (OSError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"cannot open {safe_url(self._url)}: {_one_line(exc)}") from None
        try:
            await self._migrate(pool)
            self._pool = pool
            await self._secure_tokens()
            await self._listen()  # from the start, so no release goes unheard
        except BaseException:
            self._pool = None
            listener, self._listener = self._listener, None
            if listener is not None:
                await listener.close()
            await pool.close()
            raise

    async def close(self) -> None:
        """Close the listener and the pool. Closing twice does nothing."""
        pool, self._pool = self._pool, None
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(Exception):
                await listener.close()
        self._wakeups.wake_all()
        if pool is not None:
            await pool.close()

    async def ping(self) -> None:
        """Ask the server through the pool; raises when it is unreachable or read-only.

        A standby left behind by a fail-over answers reads but refuses every write.
        """
        if await self._fetchval("SELECT pg_is_in_recovery()"):
            raise StoreError("the server is a read-only standby")

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _migrate(self, pool: asyncpg.Pool) -> None:
        migrations = load_migrations()
        latest = migrations[-1].version if migrations else 0
        async with pool.acquire() as conn:
            for migration in [None, *migrations]:
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
                    await conn.execute(
                        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
                        " name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
                    )
                    current = await conn.fetchval("SELECT max(version) FROM schema_version") or 0
                    if current > latest:
                        raise StoreError(
                            f"database schema version {current} is newer than this code "
                            f"knows ({latest})"
                        )
                    if migration is None or migration.version <= current:
                        continue
                    log.info("applying storage migration postgres/%s", migration.name)
                    try:
                        await conn.execute(migration.sql)
                    except asyncpg.PostgresError as exc:  # e.g. no right to create tables
                        raise StoreError(
                            f"storage migration postgres/{migration.name} failed: {_one_line(exc)}"
                        ) from exc
                    await conn.execute(
                        "INSERT INTO schema_version (version, name, applied_at) "
                        "VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        time.time(),
                    )

    async def _secure_tokens(self) -> None:
        """Refuse encrypted tokens without a key; with one, encrypt under the first key."""
        if self._cipher is None:
            count = await self._fetchval(
                "SELECT count(*) FROM users WHERE token LIKE $1", PREFIX + "%"
            )
            check_readable(None, int(count or 0))
            return
        rows = await self._fetch(
            "SELECT platform, user_id, token FROM users WHERE token IS NOT NULL"
        )
        for platform, user_id, stored in rows:
            fresh = self._cipher.refreshed(stored)
            if fresh is not None:
                await self._execute(
                    "UPDATE users SET token = $1 WHERE platform = $2 AND user_id = $3 "
                    "AND token = $4",
                    fresh,
                    platform,
                    user_id,
                    stored,
                )

    # -- helpers ---------------------------------------------------------------------

    def _require(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("PostgresStore is not open (call await store.open())")
        return self._pool

    async def _execute(self, sql: str, *args: Any) -> int:
        """Run one statement; the number of rows it changed."""
        try:
            status = await self._require().execute(sql, *args)
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise IntegrityError(str(exc)) from exc
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        try:
            return list(await self._require().fetch(sql, *args))
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise IntegrityError(str(exc)) from exc

    async def _fetchrow(self, sql: str, *args: Any) -> Any:
        try:
            return await self._require().fetchrow(sql, *args)
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise IntegrityError(str(exc)) from exc

    async def _fetchval(self, sql: str, *args: Any) -> Any:
        return await self._require().fetchval(sql, *args)

    def _acquire(self) -> Any:
        return self._require().acquire()

    async def _notify(self, key: str) -> None:
        await self._require().execute("SELECT pg_notify($1, $2)", CHANNEL, key)

    async def _listen(self) -> None:
        """Start the LISTEN connection if it is not running (a lost one is replaced)."""
        if self._listener is not None and not self._listener.is_closed():
            return
        async with self._listen_lock:  # many waiters may find it missing at once
            if self._listener is not None and not self._listener.is_closed():
                return
            self._listener = None
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._url)
                await conn.add_listener(CHANNEL, self._on_notify)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                log.warning("lease notifications unavailable; waiting requests poll")
                if conn is not None:
                    conn.terminate()
                return
            conn.add_termination_listener(lambda _conn: self._wakeups.wake_all())
            self._listener = conn

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        self._wakeups.wake(str(payload))

    # -- users -------------------------------------------------------------------------

    async def get_user(self, platform: str, user_id: str) -> UserRecord | None:
        """The user, or None."""
        row = await self._fetchrow(
            f"{_select('users', USER_COLUMNS)} WHERE platform = $1 AND user_id = $2",
            platform,
            user_id,
        )
        if row is None:
            return None
        found = _from_row(UserRecord, row)
        if found.token is not None and self._cipher is not None:
            found.token = self._cipher.decrypt(found.token)
        return found

    async def add_user(self, user: UserRecord) -> UserRecord:
        """Insert unless (platform, user_id) exists; the stored user either way."""
        values = self._user_values(user)
        inserted = await self._fetchval(
            f"INSERT INTO users ({', '.join(USER_COLUMNS)}) "
            f"VALUES ({_placeholders(len(USER_COLUMNS))}) "
            "ON CONFLICT (platform, user_id) DO NOTHING RETURNING created_at",
            *values.values(),
        )
        if inserted is not None:
            user.created_at = user.updated_at = values["created_at"]
            return user
        return await self.get_user(user.platform, user.user_id) or user

    def _user_values(self, user: UserRecord) -> dict[str, Any]:
        return user_values(user, self._cipher, self._clock())

    async def save_user(self, user: UserRecord) -> None:
        """Insert or update by (platform, user_id); ``created_at`` kept from the first save."""
        values = self._user_values(user)
        now = values["updated_at"]
        keys = ("platform", "user_id", "created_at")
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in USER_COLUMNS if c not in keys)
        created = await self._fetchval(
            f"INSERT INTO users ({', '.join(USER_COLUMNS)}) "
            f"VALUES ({_placeholders(len(USER_COLUMNS))}) "
            f"ON CONFLICT (platform, user_id) DO UPDATE SET {updates} RETURNING created_at",
            *values.values(),
        )
        user.created_at = float(created) if created is not None else now
        user.updated_at = now

    # -- sessions ----------------------------------------------------------------------

    async def get_session(self, platform: str, user_id: str, chat_id: str) -> SessionRecord | None:
        """The session of this user in this chat, or None."""
        row = await self._fetchrow(
            f"{_select('sessions', _SESSION_COLUMNS)} "
            "WHERE platform = $1 AND user_id = $2 AND chat_id = $3",
            platform,
            user_id,
            chat_id,
        )
        return None if row is None else _from_row(SessionRecord, row)

    async def save_session(self, session: SessionRecord) -> None:
        """Insert or replace by (platform, user_id, chat_id); the user must exist."""
        now = self._clock()
        values = {name: getattr(session, name) for name in _SESSION_COLUMNS}
        values["created_at"] = now
        values["updated_at"] = now
        sql = (
            f"INSERT INTO sessions ({', '.join(_SESSION_COLUMNS)}) "
            f"VALUES ({_placeholders(len(_SESSION_COLUMNS))}) "
            "ON CONFLICT (platform, user_id, chat_id) DO UPDATE SET "
            "session_id = EXCLUDED.session_id, task_id = EXCLUDED.task_id, "
            "draft_json = EXCLUDED.draft_json, updated_at = EXCLUDED.updated_at, "
            "created_at = CASE WHEN sessions.session_id = EXCLUDED.session_id "
            "THEN sessions.created_at ELSE EXCLUDED.created_at END "
            "RETURNING created_at"
        )
        try:
            # The project row is written by the schema's trigger inside this statement
            # (migration 0009).
            row = await self._require().fetchrow(sql, *values.values())
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise IntegrityError(str(exc)) from exc
        session.created_at = float(row[0]) if row is not None else now
        session.updated_at = now

    async def save_draft(self, platform: str, user_id: str, chat_id: str, draft_json: str) -> None:
        """Remember the last draft seen for this session; no-op if there is no session."""
        await self._execute(
            "UPDATE sessions SET draft_json = $1, updated_at = $2 "
            "WHERE platform = $3 AND user_id = $4 AND chat_id = $5",
            draft_json,
            self._clock(),
            platform,
            user_id,
            chat_id,
        )

    # -- renders -----------------------------------------------------------------------

    async def add_render(self, render: RenderRecord) -> None:
        """Persist a new render job; a duplicate id raises :class:`IntegrityError`."""
        now = self._clock()
        render.created_at = now
        render.updated_at = now
        await self._execute(
            f"INSERT INTO renders ({', '.join(_RENDER_COLUMNS)}) "
            f"VALUES ({_placeholders(len(_RENDER_COLUMNS))})",
            *(getattr(render, name) for name in _RENDER_COLUMNS),
        )

    async def delete_render(self, render_id: str) -> None:
        """Forget a render that never started."""
        await self._execute("DELETE FROM renders WHERE render_id = $1", render_id)

    async def get_render(self, render_id: str) -> RenderRecord | None:
        """The render, or None."""
        row = await self._fetchrow(
            f"{_select('renders', _RENDER_COLUMNS)} WHERE render_id = $1", render_id
        )
        return None if row is None else _from_row(RenderRecord, row)

    async def update_render(
        self,
        render_id: str,
        *,
        status: str | None = None,
        progress: int | None = None,
        output_url: str | None = None,
        error: str | None = None,
        attempts: int | None = None,
    ) -> None:
        """Update the given fields; a terminal status sets ``completed_at`` (see SQLite)."""
        given: dict[str, Any] = {
            "status": status,
            "progress": progress,
            "output_url": output_url,
            "error": error,
            "attempts": attempts,
        }
        args: list[Any] = [self._clock(), render_id]  # $1 now, $2 id
        sets = []
        for name, value in given.items():
            if value is not None:
                args.append(value)
                sets.append(f"{name} = ${len(args)}")
        if status is not None:
            if status in TERMINAL_STATUSES:
                args.append(status)
                sets.append(
                    f"completed_at = CASE WHEN status = ${len(args)} AND completed_at IS NOT NULL "
                    "THEN completed_at ELSE $1 END"
                )
            else:
                sets.append("completed_at = NULL")
        sets.append("updated_at = $1")
        await self._execute(f"UPDATE renders SET {', '.join(sets)} WHERE render_id = $2", *args)

    async def claim_delivery(self, render_id: str, *, owner: str, lease: float = 300.0) -> bool:
        """Claim (or, for its owner, renew) a delivery; True for one owner at a time."""
        now = self._clock()
        changed = await self._execute(
            "UPDATE renders SET claimed_at = $1, claimed_by = $2, updated_at = $1 "
            "WHERE render_id = $3 AND delivered_at IS NULL "
            "AND (claimed_at IS NULL OR claimed_at <= $4 OR claimed_by = $2)",
            now,
            owner,
            render_id,
            now - lease,
        )
        return changed == 1

    async def mark_delivered(self, render_id: str, *, owner: str) -> None:
        """Record that the owner's delivery reached its chat (never delivered again)."""
        await self._execute(
            "UPDATE renders SET delivered_at = $1, updated_at = $1 "
            "WHERE render_id = $2 AND delivered_at IS NULL AND claimed_by = $3",
            self._clock(),
            render_id,
            owner,
        )

    async def release_delivery(self, render_id: str, *, owner: str) -> None:
        """Give the owner's claim back, so a later attempt can deliver."""
        await self._execute(
            "UPDATE renders SET claimed_at = NULL, claimed_by = NULL, updated_at = $1 "
            "WHERE render_id = $2 AND delivered_at IS NULL AND claimed_by = $3",
            self._clock(),
            render_id,
            owner,
        )

    async def undelivered_renders(self) -> list[RenderRecord]:
        """Renders not yet delivered (any status), oldest first."""
        rows = await self._fetch(
            f"{_select('renders', _RENDER_COLUMNS)} "
            "WHERE delivered_at IS NULL ORDER BY created_at, seq"
        )
        return [_from_row(RenderRecord, row) for row in rows]
