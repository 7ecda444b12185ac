"""Storage: lookups/s and writes/s of the SQLite and PostgreSQL stores, side by side.

Subjects: :class:`storage.sqlite.SQLiteStore` on a file (WAL, ``synchronous=NORMAL``,
one ``sqlite3`` connection on the event loop, transactions behind an asyncio lock) and
:class:`storage.postgres.PostgresStore` (asyncpg pool of 10) on a throw-away local
PostgreSQL server with its production defaults (fsync and synchronous commits on),
both as the bot runs them, driven by one task and by 32 concurrent tasks. Baseline:
a plain synchronous ``sqlite3`` connection on the same file with the same pragmas
running the same SQL.
Lookups alternate ``get_user`` and ``get_session`` over 1,000 users; writes are
``save_draft`` of a ~2 KB draft (what the core writes after every turn); lease
cycles are ``try_acquire_lease`` + ``release_lease`` on 32 sessions at once (what
every request costs under the store-backed session gate). Rounds interleave the
subjects and the baseline; medians and per-round ratios are reported.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from bench.common import Result, median, ratios, run_main
from storage.base import SessionRecord, UserRecord
from storage.postgres import PostgresStore
from storage.sqlite import SQLiteStore
from tests.pgserver import start_server

AnyStore = SQLiteStore | PostgresStore

NAME = "storage"
USERS = 1000
LOOKUPS = 4000
WRITES = 1000
LEASE_CYCLES = 1000
ROUNDS = 5
TASKS = 32
DRAFT = json.dumps({"t": [{"id": f"seg{i}", "s": i * 1000, "d": 1000} for i in range(40)]})

_GET_USER = (
    "SELECT platform, user_id, client_id, token, backend_user_id, token_expires_at, language, "
    "token_minted_at, created_at, updated_at FROM users WHERE platform = ? AND user_id = ?"
)
_GET_SESSION = (
    "SELECT platform, user_id, chat_id, session_id, task_id, draft_json, created_at, updated_at "
    "FROM sessions WHERE platform = ? AND user_id = ? AND chat_id = ?"
)
_SAVE_DRAFT = (
    "UPDATE sessions SET draft_json = ?, updated_at = ? "
    "WHERE platform = ? AND user_id = ? AND chat_id = ?"
)


def _keys(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [str(rng.randrange(USERS)) for _ in range(n)]


async def _store_lookups(store: AnyStore, keys: list[str], tasks: int) -> float:
    async def worker(part: list[str]) -> None:
        for i, k in enumerate(part):
            if i % 2:
                assert await store.get_session("bench", k, k) is not None
            else:
                assert await store.get_user("bench", k) is not None

    started = time.perf_counter()
    await asyncio.gather(*(worker(keys[t::tasks]) for t in range(tasks)))
    return len(keys) / (time.perf_counter() - started)


async def _store_writes(store: AnyStore, keys: list[str], tasks: int) -> float:
    async def worker(part: list[str]) -> None:
        for k in part:
            await store.save_draft("bench", k, k, DRAFT)

    started = time.perf_counter()
    await asyncio.gather(*(worker(keys[t::tasks]) for t in range(tasks)))
    return len(keys) / (time.perf_counter() - started)


async def _lease_cycles(store: AnyStore, r: int) -> float:
    """Acquire and release leases on ``TASKS`` sessions at once; cycles/s."""
    per_task = LEASE_CYCLES // TASKS

    async def worker(t: int) -> None:
        for i in range(per_task):
            seq = r * LEASE_CYCLES + i
            lease = await store.try_acquire_lease(f"bench:{t}", owner=f"o{t}", seq=seq, ttl=30)
            assert lease is not None
            await store.release_lease(lease)

    started = time.perf_counter()
    await asyncio.gather(*(worker(t) for t in range(TASKS)))
    return per_task * TASKS / (time.perf_counter() - started)


def _bare_lookups(conn: sqlite3.Connection, keys: list[str]) -> float:
    started = time.perf_counter()
    for i, k in enumerate(keys):
        if i % 2:
            row = conn.execute(_GET_SESSION, ("bench", k, k)).fetchone()
            assert SessionRecord(**dict(row)) is not None
        else:
            row = conn.execute(_GET_USER, ("bench", k)).fetchone()
            assert UserRecord(**dict(row)) is not None
    return len(keys) / (time.perf_counter() - started)


def _bare_writes(conn: sqlite3.Connection, keys: list[str]) -> float:
    started = time.perf_counter()
    for k in keys:
        conn.execute(_SAVE_DRAFT, (DRAFT, time.time(), "bench", k, k))
    return len(keys) / (time.perf_counter() - started)


NAMES = (
    "store_lookups",
    "store_lookups_32",
    "pg_lookups",
    "pg_lookups_32",
    "bare_lookups",
    "store_writes",
    "store_writes_32",
    "pg_writes",
    "pg_writes_32",
    "bare_writes",
    "store_leases_32",
    "pg_leases_32",
)


async def _round(
    lite: SQLiteStore, pg: PostgresStore, conn: sqlite3.Connection, r: int
) -> list[tuple[str, float]]:
    """One round of every measurement; the order flips every round."""
    look, write = _keys(LOOKUPS, r), _keys(WRITES, 100 + r)
    out = []
    for name in NAMES if r % 2 else reversed(NAMES):
        store: AnyStore = pg if name.startswith("pg_") else lite
        tasks = TASKS if name.endswith("32") else 1
        if name == "bare_lookups":
            value = _bare_lookups(conn, look)
        elif name == "bare_writes":
            value = _bare_writes(conn, write)
        elif "leases" in name:
            value = await _lease_cycles(store, r)
        elif "lookups" in name:
            value = await _store_lookups(store, look, tasks)
        else:
            value = await _store_writes(store, write, tasks)
        out.append((name, value))
    return out


async def _fill(store: AnyStore) -> None:
    for u in range(USERS):
        uid = str(u)
        await store.save_user(UserRecord("bench", uid, f"client-{u}", token=f"tok{u}"))
        await store.save_session(SessionRecord("bench", uid, uid, f"s{u}", f"t{u}"))


async def run() -> Result:
    result = Result(NAME)
    series: dict[str, list[float]] = {k: [] for k in NAMES}
    server = start_server(durable=True)
    try:
        pg_url = await server.create_database("nemo_bench")
        with tempfile.TemporaryDirectory(prefix="nemo-bench-") as tmp:
            path = Path(tmp) / "bench.db"
            async with SQLiteStore(path) as lite, PostgresStore(pg_url) as pg:
                await _fill(lite)
                await _fill(pg)
                conn = sqlite3.connect(path, isolation_level=None)
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA busy_timeout = 5000")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                try:
                    for r in range(ROUNDS + 1):  # round 0 warms up and is not counted
                        for name, value in await _round(lite, pg, conn, r):
                            if r:
                                series[name].append(value)
                finally:
                    conn.close()
    finally:
        server.stop()
    med = {k: median(v) for k, v in series.items()}

    def ratio(a: str, b: str) -> float:
        return median(ratios(series[a], series[b]))

    lookup_ratio = ratio("store_lookups", "bare_lookups")
    write_ratio = ratio("store_writes", "bare_writes")
    pg_vs_lite = {
        "lookups": ratio("pg_lookups", "store_lookups"),
        "lookups_32": ratio("pg_lookups_32", "store_lookups_32"),
        "writes": ratio("pg_writes", "store_writes"),
        "writes_32": ratio("pg_writes_32", "store_writes_32"),
        "leases_32": ratio("pg_leases_32", "store_leases_32"),
    }
    result.data.update(
        users=USERS,
        rounds=ROUNDS,
        ops_per_round={"lookups": LOOKUPS, "writes": WRITES, "lease_cycles": LEASE_CYCLES},
        tasks=TASKS,
        postgres="local server, production defaults (fsync on, synchronous_commit on)",
        series=series,
        medians=med,
        lookup_ratio_median=lookup_ratio,
        write_ratio_median=write_ratio,
        postgres_over_sqlite_median=pg_vs_lite,
    )
    for label, key in (("lookups", "lookups"), ("writes", "writes")):
        result.add(
            f"SQLite store {label}/s (1 task; 32 tasks)",
            f"{med['store_' + key]:,.0f}; {med['store_' + key + '_32']:,.0f}",
        )
        result.add(
            f"PostgreSQL store {label}/s (1 task; 32 tasks)",
            f"{med['pg_' + key]:,.0f}; {med['pg_' + key + '_32']:,.0f}",
        )
    result.add(
        "lease acquire+release cycles/s, 32 sessions (SQLite; PostgreSQL)",
        f"{med['store_leases_32']:,.0f}; {med['pg_leases_32']:,.0f}",
    )
    result.add(
        "bare sqlite3 lookups/s; writes/s",
        f"{med['bare_lookups']:,.0f}; {med['bare_writes']:,.0f}",
    )
    result.add("SQLite store / bare (lookups; writes)", f"{lookup_ratio:.2f}x; {write_ratio:.2f}x")
    result.add(
        "PostgreSQL / SQLite store (lookups 1; 32 - writes 1; 32 - leases 32)",
        f"{pg_vs_lite['lookups']:.2f}x; {pg_vs_lite['lookups_32']:.2f}x - "
        f"{pg_vs_lite['writes']:.2f}x; {pg_vs_lite['writes_32']:.2f}x - "
        f"{pg_vs_lite['leases_32']:.2f}x",
    )
    return result


def main() -> None:
    run_main(NAME, run)


if __name__ == "__main__":
    main()
