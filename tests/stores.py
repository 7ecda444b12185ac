"""Fixtures shared by the store tests: each runs on SQLite and on a real PostgreSQL.

A test module imports the fixtures it uses by name; ``backend`` is parametrized,
so every test that uses ``store`` or ``target`` runs once per back-end.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from storage import PostgresStore, SQLiteStore, make_store
from tests.pgserver import PgServer

__all__ = ["FakeClock", "backend", "clock", "raw_rows", "server", "store", "target"]

BACKENDS = ("sqlite", "postgres")


class FakeClock:
    """A settable clock; every call returns the current time."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float = 1.0) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The back-end under test: ``sqlite`` or ``postgres``."""
    return str(request.param)


@pytest.fixture
def server(backend: str, request: pytest.FixtureRequest) -> PgServer | None:
    """The PostgreSQL server when the back-end needs one (started on first use)."""
    if backend == "sqlite":
        return None
    found: PgServer = request.getfixturevalue("pg_server")
    return found


@pytest.fixture
async def target(server: PgServer | None, tmp_path: Path) -> Path | str:
    """A fresh database for ``backend``: a SQLite file path, or a PostgreSQL URL."""
    if server is None:
        return tmp_path / "bot.db"
    return await server.create_database()


@pytest.fixture
async def store(target: Path | str, clock: FakeClock) -> AsyncIterator[SQLiteStore | PostgresStore]:
    """An open store on a fresh database, with the settable clock."""
    async with make_store(target, clock=clock) as s:
        yield s


async def raw_rows(target: Path | str, sql: str) -> list[tuple[object, ...]]:
    """Rows read straight from the database, bypassing the store."""
    if isinstance(target, Path):
        with sqlite3.connect(target) as lite:
            return [tuple(r) for r in lite.execute(sql).fetchall()]
    conn = await asyncpg.connect(target)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()
