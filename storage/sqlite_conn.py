"""One ``sqlite3`` connection run on the event loop's own thread; waits for locks asynchronously.

Why not a worker thread (aiosqlite, used until 2026-12-01): a statement on an indexed row
takes SQLite tens of microseconds, while handing it to a worker thread and back
costs the event loop two wake-ups and the worker two turns of the GIL. When the
loop is busy, each of those turns waits for CPython's switch interval (5 ms): with
1,000 people writing at once (``bench/crowd.py``) every store statement waited
200-600 ms in the worker's queue, the last backend stream opened ~0.3 s later and
finished replies reached Telegram ~0.8 s later (median) than with the same SQL run
inline. Run here, a statement costs the loop what SQLite itself costs.

What could block the loop is waiting for a lock another process holds (Discord shard
processes share the file, and so does a ``nemo-bot chat`` started next to the running
bot with the same ``NEMO_BOT_DB``): SQLite's own busy handler would sleep in the
calling thread. So the connection's busy time-out is 0 and
:meth:`LoopConnection._run` retries a refused statement after an ``asyncio`` sleep
(1 ms doubling to 50 ms) for up to ``busy_timeout`` seconds, as SQLite's busy handler
would, without stopping the loop. A statement refused with "database is
locked" did nothing, so running it again is safe; one that opened a transaction
(``BEGIN IMMEDIATE`` in a script) has it rolled back first.

The write-ahead log is checkpointed by SQLite itself every ~1,000 pages, in the
committing statement; with ``synchronous = NORMAL`` that is the only time SQLite
syncs the disk (a few milliseconds on the loop, every few thousand writes).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

__all__ = ["LoopConnection"]

T = TypeVar("T")
Params = Sequence[Any] | Mapping[str, Any]

_FIRST_PAUSE = 0.001
_LONGEST_PAUSE = 0.05


class LoopConnection:
    """An autocommit ``sqlite3`` connection with the coroutine API the stores use."""

    def __init__(self, conn: sqlite3.Connection, *, busy_timeout: float) -> None:
        self._conn = conn
        self._busy_timeout = busy_timeout
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 0")  # never sleep in the loop's thread

    @classmethod
    def connect(cls, target: str, *, busy_timeout: float) -> LoopConnection:
        """Open ``target`` (a file path or ``:memory:``) in autocommit mode."""
        return cls(sqlite3.connect(target, isolation_level=None), busy_timeout=busy_timeout)

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open on the connection."""
        return self._conn.in_transaction

    async def _run(self, call: Callable[[], T]) -> T:
        """``call()``, run again after a pause while another connection holds the lock."""
        deadline = time.monotonic() + self._busy_timeout
        pause = _FIRST_PAUSE
        was_in_transaction = self._conn.in_transaction
        while True:
            try:
                return call()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                    raise
                if self._conn.in_transaction and not was_in_transaction:
                    self._conn.rollback()  # a script's BEGIN went through, a later statement not
            await asyncio.sleep(pause)
            pause = min(pause * 2, _LONGEST_PAUSE)

    async def execute(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        """Run one statement; the cursor has its ``rowcount`` and any rows."""
        return await self._run(lambda: self._conn.execute(sql, params))

    async def execute_fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """Run one statement and return all its rows."""
        return await self._run(lambda: self._conn.execute(sql, params).fetchall())

    async def executemany(self, sql: str, rows: Iterable[Params]) -> sqlite3.Cursor:
        """Run one statement once per parameter set; use it inside a transaction.

        Outside one every row would commit on its own, and a retry after a refused
        row would run the earlier rows again.
        """
        rows = list(rows)
        return await self._run(lambda: self._conn.executemany(sql, rows))

    async def executescript(self, script: str) -> None:
        """Run several statements, given as one SQL text, without parameters."""
        await self._run(lambda: self._conn.executescript(script))

    async def rollback(self) -> None:
        """Roll back the open transaction, if any."""
        self._conn.rollback()

    async def close(self) -> None:
        """Close the connection (SQLite checkpoints the WAL of the last one)."""
        self._conn.close()
