"""Storage: lookups/s and writes/s of the SQLite store, against bare ``sqlite3``.

Subject: :class:`storage.sqlite.SQLiteStore` on a file (WAL, ``synchronous=NORMAL``,
one aiosqlite connection behind an asyncio lock), as the bot runs it, driven by one
task and by 32 concurrent tasks. Baseline: a plain synchronous ``sqlite3`` connection
on the same file with the same pragmas running the same SQL. Lookups alternate
``get_user`` and ``get_session`` over 1,000 users; writes are ``save_draft`` of a
~2 KB draft (what the core writes after every turn). Rounds interleave subject and
baseline; medians and per-round ratios are reported.
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
from storage.sqlite import SQLiteStore

NAME = "storage"
USERS = 1000
LOOKUPS = 4000
WRITES = 1000
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


async def _store_lookups(store: SQLiteStore, keys: list[str], tasks: int) -> float:
    async def worker(part: list[str]) -> None:
        for i, k in enumerate(part):
            if i % 2:
                assert await store.get_session("bench", k, k) is not None
            else:
                assert await store.get_user("bench", k) is not None

    started = time.perf_counter()
    await asyncio.gather(*(worker(keys[t::tasks]) for t in range(tasks)))
    return len(keys) / (time.perf_counter() - started)


async def _store_writes(store: SQLiteStore, keys: list[str], tasks: int) -> float:
    async def worker(part: list[str]) -> None:
        for k in part:
            await store.save_draft("bench", k, k, DRAFT)

    started = time.perf_counter()
    await asyncio.gather(*(worker(keys[t::tasks]) for t in range(tasks)))
    return len(keys) / (time.perf_counter() - started)


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


async def _round(store: SQLiteStore, conn: sqlite3.Connection, r: int) -> list[tuple[str, float]]:
    """One round of every measurement; the order flips every round."""
    look, write = _keys(LOOKUPS, r), _keys(WRITES, 100 + r)
    names = [
        "store_lookups",
        "store_lookups_32",
        "bare_lookups",
        "store_writes",
        "store_writes_32",
        "bare_writes",
    ]
    out = []
    for name in names if r % 2 else reversed(names):
        if name == "bare_lookups":
            value = _bare_lookups(conn, look)
        elif name == "bare_writes":
            value = _bare_writes(conn, write)
        elif name.startswith("store_lookups"):
            value = await _store_lookups(store, look, TASKS if name.endswith("32") else 1)
        else:
            value = await _store_writes(store, write, TASKS if name.endswith("32") else 1)
        out.append((name, value))
    return out


async def run() -> Result:
    result = Result(NAME)
    series: dict[str, list[float]] = {
        k: []
        for k in (
            "store_lookups",
            "store_lookups_32",
            "bare_lookups",
            "store_writes",
            "store_writes_32",
            "bare_writes",
        )
    }
    with tempfile.TemporaryDirectory(prefix="nemo-bench-") as tmp:
        path = Path(tmp) / "bench.db"
        async with SQLiteStore(path) as store:
            for u in range(USERS):
                uid = str(u)
                await store.save_user(UserRecord("bench", uid, f"client-{u}", token=f"tok{u}"))
                await store.save_session(SessionRecord("bench", uid, uid, f"s{u}", f"t{u}"))
            conn = sqlite3.connect(path, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            try:
                for r in range(ROUNDS + 1):  # round 0 warms up and is not counted
                    for name, value in await _round(store, conn, r):
                        if r:
                            series[name].append(value)
            finally:
                conn.close()
    med = {k: median(v) for k, v in series.items()}
    lookup_ratio = median(ratios(series["store_lookups"], series["bare_lookups"]))
    write_ratio = median(ratios(series["store_writes"], series["bare_writes"]))
    result.data.update(
        users=USERS,
        rounds=ROUNDS,
        ops_per_round={"lookups": LOOKUPS, "writes": WRITES},
        tasks=TASKS,
        series=series,
        medians=med,
        lookup_ratio_median=lookup_ratio,
        write_ratio_median=write_ratio,
    )
    result.add(
        "store lookups/s (1 task; 32 tasks)",
        f"{med['store_lookups']:,.0f}; {med['store_lookups_32']:,.0f}",
    )
    result.add(
        "store writes/s (1 task; 32 tasks)",
        f"{med['store_writes']:,.0f}; {med['store_writes_32']:,.0f}",
    )
    result.add(
        "bare sqlite3 lookups/s; writes/s",
        f"{med['bare_lookups']:,.0f}; {med['bare_writes']:,.0f}",
    )
    result.add("store / bare (lookups; writes)", f"{lookup_ratio:.2f}x; {write_ratio:.2f}x")
    return result


def main() -> None:
    run_main(NAME, run)


if __name__ == "__main__":
    main()
