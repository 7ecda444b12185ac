"""SQLite implementation of :class:`storage.base.Store`.

One ``sqlite3`` connection in autocommit mode, run on the event loop's thread
(:mod:`storage.sqlite_conn` says why, and how lock waits stay off the loop), with an
:class:`asyncio.Lock` so that a multi-statement transaction never interleaves with
another task's statements. Every mutating operation is a single
statement (UPSERT, ``UPDATE ... WHERE``), so each is atomic on its own;
:meth:`SQLiteStore.claim_delivery` is a conditional ``UPDATE`` whose row count
decides the winner, which makes it exactly-once even across processes sharing
the file.

The schema lives in numbered plain-SQL files in ``storage/migrations/sqlite``
(``0001_init.sql``, ``0002_....sql``, ...; see :mod:`storage.migrate`). They are
applied in order, each in its own transaction together with the ``PRAGMA
user_version`` bump that records it. The replica-coordination primitives (leases,
render claims, inbound updates, counters) live in :mod:`storage.sqlite_coord`.

The ``users.token`` column holds secrets: with a :class:`storage.secrets.TokenCipher`
they are encrypted at rest; nothing here logs statements or row contents.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import fields
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from . import migrate
from .base import IntegrityError, RenderRecord, SessionRecord, UserRecord
from .migrate import Migration
from .rows import USER_COLUMNS, user_values
from .secrets import PREFIX, TokenCipher, check_readable
from .sqlite_admin import SQLiteAdmin
from .sqlite_conn import LoopConnection
from .sqlite_coord import SQLiteCoordination
from .sqlite_history import SQLiteHistory
from .wakeups import Wakeups

__all__ = ["MEMORY", "Migration", "SQLiteStore", "load_migrations"]

log = logging.getLogger(__name__)

MEMORY = ":memory:"
"""The path that gives a private in-memory database (for tests)."""

BUSY_TIMEOUT_MS = 5000
"""How long a statement waits on a lock held by another connection before failing."""

TERMINAL_STATUSES = frozenset({"completed", "failed"})
"""Render statuses that set ``completed_at``."""

_R = TypeVar("_R", UserRecord, SessionRecord, RenderRecord)


def load_migrations() -> list[Migration]:
    """The packaged SQLite migrations, in order (see :func:`storage.migrate.load_migrations`)."""
    return migrate.load_migrations("sqlite")


def _columns(cls: type[Any]) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


_SESSION_COLUMNS = _columns(SessionRecord)
_RENDER_COLUMNS = _columns(RenderRecord)


def _from_row(cls: type[_R], row: Mapping[str, Any] | sqlite3.Row) -> _R:
    """Build a record dataclass from a row selected with ``_columns(cls)``."""
    return cls(**{name: row[name] for name in _columns(cls)})


def _select(table: str, columns: Iterable[str]) -> str:
    return f"SELECT {', '.join(columns)} FROM {table}"


def _prepare_file(path: Path) -> None:
    """Create the parent directory and an empty 0600 database file if missing."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


async def _user_version(conn: LoopConnection) -> int:
    row = (await conn.execute("PRAGMA user_version")).fetchone()
    return int(row[0]) if row is not None else 0


class SQLiteStore(SQLiteHistory, SQLiteAdmin, SQLiteCoordination):
    """A :class:`storage.base.Store` kept in one SQLite file (or ``":memory:"``).

    Use ``await store.open()`` / ``await store.close()``, or
    ``async with SQLiteStore(path) as store:``. Safe for many concurrent tasks
    on one event loop. ``clock`` returns Unix seconds; tests can inject one.
    With ``cipher``, backend tokens are encrypted at rest.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        clock: Callable[[], float] = time.time,
        cipher: TokenCipher | None = None,
    ) -> None:
        """Remember where the database lives; nothing is touched until :meth:`open`."""
        self._path: Path | None = None if str(path) == MEMORY else Path(path).expanduser()
        self._clock = clock
        self._cipher = cipher
        self._conn: LoopConnection | None = None
        self._lock = asyncio.Lock()
        self._wakeups = Wakeups()
        self._render_columns = _RENDER_COLUMNS
        self._render_from_row = functools.partial(_from_row, RenderRecord)

    def __repr__(self) -> str:
        where = MEMORY if self._path is None else str(self._path)
        state = "open" if self._conn is not None else "closed"
        return f"<SQLiteStore {where} {state}>"

    @property
    def path(self) -> Path | None:
        """The database file, or None for an in-memory database."""
        return self._path

    # -- lifecycle ---------------------------------------------------------------

    async def open(self) -> None:
        """Create the file (0600) if needed, connect, set pragmas and migrate.

        Opening an already open store does nothing.
        """
        if self._conn is not None:
            return
        if self._path is not None:
            await asyncio.to_thread(_prepare_file, self._path)
        target = MEMORY if self._path is None else str(self._path)
        conn = LoopConnection.connect(target, busy_timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            await conn.execute("PRAGMA foreign_keys = ON")
            if self._path is not None:
                # Switching a new file to WAL needs its exclusive lock: processes opening
                # the same new file together (shards starting at once) are refused with
                # "database is locked", which the connection retries like any lock wait.
                row = (await conn.execute("PRAGMA journal_mode = WAL")).fetchone()
                if row is None or str(row[0]).lower() != "wal":
                    log.warning("could not enable WAL journal mode for %s", self._path)
                await conn.execute("PRAGMA synchronous = NORMAL")
            await self._migrate(conn)
            self._conn = conn
            await self._secure_tokens()
        except BaseException:
            self._conn = None
            await conn.close()
            raise

    async def close(self) -> None:
        """Close the connection (checkpointing the WAL). Closing twice does nothing."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        async with self._lock:
            await conn.close()

    async def ping(self) -> None:
        """Take the write lock and let it go at once, writing nothing.

        A read alone would not do: in WAL mode reads go on while another process
        holds the write lock, and then every request of this bot would still wait.
        """
        conn = self._require()
        async with self._lock:
            # One script: a caller giving up while the lock is awaited cannot leave a
            # transaction open on the shared connection.
            await conn.executescript("BEGIN IMMEDIATE; ROLLBACK;")

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

    async def _migrate(self, conn: LoopConnection) -> None:
        migrations = load_migrations()
        latest = migrations[-1].version if migrations else 0
        current = await _user_version(conn)
        if current > latest:
            raise RuntimeError(
                f"database schema version {current} is newer than this code knows ({latest})"
            )
        for migration in migrations:
            if migration.version <= current:
                continue
            log.info("applying storage migration %s", migration.name)
            script = (
                "BEGIN IMMEDIATE;\n"
                f"{migration.sql}\n;\n"
                f"PRAGMA user_version = {migration.version:d};\n"
                "COMMIT;\n"
            )
            try:
                await conn.executescript(script)
            except sqlite3.Error:
                if conn.in_transaction:
                    await conn.rollback()
                # Processes opening one new file together (shard processes on one host)
                # read the old version, then queue for the write lock: a later one finds
                # the migration done by an earlier one. Anything else is a real failure.
                current = await _user_version(conn)
                if migration.version > current:
                    raise
                log.info("storage migration %s was applied by another process", migration.name)
            except BaseException:
                if conn.in_transaction:
                    await conn.rollback()
                raise

    async def _secure_tokens(self) -> None:
        """Refuse encrypted tokens without a key; with one, encrypt under the first key.

        Tokens stored in the clear (before a key was set) and tokens under an older
        key are rewritten, each with a compare-and-set so a concurrent save wins.
        """
        if self._cipher is None:
            row = await self._fetchone(
                "SELECT count(*) FROM users WHERE token LIKE ?", (PREFIX + "%",)
            )
            check_readable(None, int(row[0]) if row is not None else 0)
            return
        rows = await self._fetchall(
            "SELECT platform, user_id, token FROM users WHERE token IS NOT NULL"
        )
        for platform, user_id, stored in rows:
            fresh = self._cipher.refreshed(stored)
            if fresh is not None:
                await self._write(
                    "UPDATE users SET token = ? WHERE platform = ? AND user_id = ? AND token = ?",
                    (fresh, platform, user_id, stored),
                )

    # -- helpers -----------------------------------------------------------------

    def _require(self) -> LoopConnection:
        if self._conn is None:
            raise RuntimeError("SQLiteStore is not open (call await store.open())")
        return self._conn

    async def _write(self, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> int:
        """Run one statement after any transaction in progress (:meth:`_turn`); rows changed."""
        conn = self._require()
        try:
            async with self._turn():
                return (await conn.execute(sql, params)).rowcount
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """Wait for a transaction in progress to end; a single statement needs no more.

        A single statement runs whole before any other task does, so it needs no
        lock of its own. Only a transaction (:meth:`_transaction`) holds the lock, so
        that no other task's statement lands between its BEGIN and COMMIT while the
        transaction waits (for SQLite's write lock, say).
        """
        if self._lock.locked():
            async with self._lock:
                yield
        else:
            yield

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[LoopConnection]:
        """One ``BEGIN IMMEDIATE`` transaction under the lock (SQLite's write lock up front)."""
        conn = self._require()
        async with self._lock:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                await conn.rollback()
                raise
            await conn.execute("COMMIT")

    async def _fetchone(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any]
    ) -> sqlite3.Row | None:
        rows = await self._fetchall(sql, params)
        return rows[0] if rows else None

    async def _fetchall(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[sqlite3.Row]:
        conn = self._require()
        try:
            async with self._turn():
                return await conn.execute_fetchall(sql, params)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc

    # -- users -------------------------------------------------------------------

    async def get_user(self, platform: str, user_id: str) -> UserRecord | None:
        """The user, or None."""
        row = await self._fetchone(
            f"{_select('users', USER_COLUMNS)} WHERE platform = ? AND user_id = ?",
            (platform, user_id),
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
        inserted = await self._fetchone(
            f"INSERT INTO users ({', '.join(USER_COLUMNS)}) "
            f"VALUES ({', '.join(':' + c for c in USER_COLUMNS)}) "
            "ON CONFLICT (platform, user_id) DO NOTHING RETURNING created_at",
            values,
        )
        if inserted is not None:
            user.created_at = user.updated_at = values["created_at"]
            return user
        return await self.get_user(user.platform, user.user_id) or user

    def _user_values(self, user: UserRecord) -> dict[str, Any]:
        return user_values(user, self._cipher, self._clock())

    async def save_user(self, user: UserRecord) -> None:
        """Insert or update by (platform, user_id).

        ``created_at`` is kept from the first save; ``updated_at`` is now. Both
        are written back onto ``user``.
        """
        values = self._user_values(user)
        now = values["updated_at"]
        keys = ("platform", "user_id", "created_at")
        updates = ", ".join(f"{c} = excluded.{c}" for c in USER_COLUMNS if c not in keys)
        sql = (
            f"INSERT INTO users ({', '.join(USER_COLUMNS)}) "
            f"VALUES ({', '.join(':' + c for c in USER_COLUMNS)}) "
            f"ON CONFLICT (platform, user_id) DO UPDATE SET {updates} "
            "RETURNING created_at"
        )
        row = await self._fetchone(sql, values)
        user.created_at = float(row[0]) if row is not None else now
        user.updated_at = now

    # -- sessions ----------------------------------------------------------------

    async def get_session(self, platform: str, user_id: str, chat_id: str) -> SessionRecord | None:
        """The session of this user in this chat, or None."""
        row = await self._fetchone(
            f"{_select('sessions', _SESSION_COLUMNS)} "
            "WHERE platform = ? AND user_id = ? AND chat_id = ?",
            (platform, user_id, chat_id),
        )
        return None if row is None else _from_row(SessionRecord, row)

    async def save_session(self, session: SessionRecord) -> None:
        """Insert or replace by (platform, user_id, chat_id).

        Every field is overwritten. ``created_at`` is kept while the backend
        ``session_id`` stays the same and restarts when it changes; ``updated_at``
        is now. Both are written back onto ``session``. The user must have been
        saved first (foreign key), else :class:`storage.base.IntegrityError`.
        """
        now = self._clock()
        values = {name: getattr(session, name) for name in _SESSION_COLUMNS}
        values["created_at"] = now
        values["updated_at"] = now
        sql = (
            f"INSERT INTO sessions ({', '.join(_SESSION_COLUMNS)}) "
            f"VALUES ({', '.join(':' + c for c in _SESSION_COLUMNS)}) "
            "ON CONFLICT (platform, user_id, chat_id) DO UPDATE SET "
            "session_id = excluded.session_id, task_id = excluded.task_id, "
            "draft_json = excluded.draft_json, updated_at = excluded.updated_at, "
            "created_at = CASE WHEN sessions.session_id = excluded.session_id "
            "THEN sessions.created_at ELSE excluded.created_at END "
            "RETURNING created_at"
        )
        # One statement, one trip to the database thread: the project row is written by
        # the schema's trigger inside it (migration 0009).
        row = await self._fetchone(sql, values)
        session.created_at = float(row[0]) if row is not None else now
        session.updated_at = now

    async def save_draft(self, platform: str, user_id: str, chat_id: str, draft_json: str) -> None:
        """Remember the last draft seen for this session; no-op if there is no session."""
        changed = await self._write(
            "UPDATE sessions SET draft_json = ?, updated_at = ? "
            "WHERE platform = ? AND user_id = ? AND chat_id = ?",
            (draft_json, self._clock(), platform, user_id, chat_id),
        )
        if not changed:
            log.debug("save_draft: no session for %s/%s in chat %s", platform, user_id, chat_id)

    # -- renders -----------------------------------------------------------------

    async def add_render(self, render: RenderRecord) -> None:
        """Persist a new render job; ``created_at``/``updated_at`` become now.

        A duplicate ``render_id`` raises :class:`storage.base.IntegrityError`.
        """
        now = self._clock()
        render.created_at = now
        render.updated_at = now
        values = {name: getattr(render, name) for name in _RENDER_COLUMNS}
        await self._write(
            f"INSERT INTO renders ({', '.join(_RENDER_COLUMNS)}) "
            f"VALUES ({', '.join(':' + c for c in _RENDER_COLUMNS)})",
            values,
        )

    async def delete_render(self, render_id: str) -> None:
        """Forget a render that never started (its submission failed)."""
        await self._write("DELETE FROM renders WHERE render_id = ?", (render_id,))

    async def get_render(self, render_id: str) -> RenderRecord | None:
        """The render, or None."""
        row = await self._fetchone(
            f"{_select('renders', _RENDER_COLUMNS)} WHERE render_id = ?", (render_id,)
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
        """Update the given fields (None leaves a field as it is).

        When ``status`` is given: becoming ``completed`` or ``failed`` sets
        ``completed_at`` to now (kept if it already had that status); any other
        status clears it (the job is running again). An unknown id does nothing.
        """
        now = self._clock()
        given: dict[str, Any] = {
            "status": status,
            "progress": progress,
            "output_url": output_url,
            "error": error,
            "attempts": attempts,
        }
        params: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        sets = [f"{k} = :{k}" for k in params]
        if status is not None:
            if status in TERMINAL_STATUSES:
                sets.append(
                    "completed_at = CASE WHEN status = :status AND completed_at IS NOT NULL "
                    "THEN completed_at ELSE :now END"
                )
            else:
                sets.append("completed_at = NULL")
        sets.append("updated_at = :now")
        params["now"] = now
        params["render_id"] = render_id
        changed = await self._write(
            f"UPDATE renders SET {', '.join(sets)} WHERE render_id = :render_id", params
        )
        if not changed:
            log.debug("update_render: no render %s", render_id)

    async def claim_delivery(self, render_id: str, *, owner: str, lease: float = 300.0) -> bool:
        """Claim (or, for its owner, renew) a delivery; True for one owner at a time."""
        now = self._clock()
        changed = await self._write(
            "UPDATE renders SET claimed_at = ?, claimed_by = ?, updated_at = ? "
            "WHERE render_id = ? AND delivered_at IS NULL "
            "AND (claimed_at IS NULL OR claimed_at <= ? OR claimed_by = ?)",
            (now, owner, now, render_id, now - lease, owner),
        )
        return changed == 1

    async def mark_delivered(self, render_id: str, *, owner: str) -> None:
        """Record that the owner's delivery reached its chat (never delivered again)."""
        now = self._clock()
        await self._write(
            "UPDATE renders SET delivered_at = ?, updated_at = ? "
            "WHERE render_id = ? AND delivered_at IS NULL AND claimed_by = ?",
            (now, now, render_id, owner),
        )

    async def release_delivery(self, render_id: str, *, owner: str) -> None:
        """Give the owner's claim back, so a later attempt can deliver."""
        await self._write(
            "UPDATE renders SET claimed_at = NULL, claimed_by = NULL, updated_at = ? "
            "WHERE render_id = ? AND delivered_at IS NULL AND claimed_by = ?",
            (self._clock(), render_id, owner),
        )

    async def undelivered_renders(self) -> list[RenderRecord]:
        """Renders not yet delivered (any status), oldest first."""
        rows = await self._fetchall(
            f"{_select('renders', _RENDER_COLUMNS)} "
            "WHERE delivered_at IS NULL ORDER BY created_at, rowid"
        )
        return [_from_row(RenderRecord, row) for row in rows]
