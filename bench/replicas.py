"""Telegram webhook replicas: K people through 1, 2 and 3 ``nemo-bot telegram`` processes.

Black box, production settings: N ``nemo-bot telegram --webhook-url ...`` processes on
one PostgreSQL database (a local server with its production defaults: fsync and
synchronous commits on), the fake Bot API of ``tests/fakes/telegram_server.py`` (in
this process) enforcing Telegram's flood limits (one call a second per chat, 30 a
second overall, 429 beyond them) and the NemoVideo simulator in a subprocess
answering at once. K = 300 private chats each post one prompt, round-robin over the
replicas' webhooks, all at once; each replica stores the update before answering.

Measured per N: full replies (the final message with its buttons), the lag from the
POST to the final reply (p50/p99), 429 answers (0 with the shared budget: the replicas
take every message's slot from the database), and the database's share of a request:
after the replicas stop, PostgreSQL's ``pg_stat_database`` gives the time its backends
spent executing statements (``active_time``) and the transactions they ran; a request's
database time is that time plus one measured round trip (``SELECT 1``, median) per
transaction, divided by K. The floor for K replies is K/30 s (the overall budget), so on
this 2-core machine more replicas cannot be faster; what the rows show is that they stay
correct and what the shared database costs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench.common import (
    ROOT,
    Result,
    fast_sim,
    median,
    percentile,
    raise_nofile,
    run_main,
    simulator_process,
)
from bench.crowd import TimingTelegram
from tests.pgserver import PgServer, start_server

NAME = "replicas"
TOKEN = "123:REPLICAS"
SECRET = "bench-replicas-secret"
K = int(os.environ.get("BENCH_REPLICAS_K", "300"))
REPLICAS = tuple(int(n) for n in os.environ.get("BENCH_REPLICAS_N", "1,2,3").split(","))
PROMPT = "make a 10-second clip of a lighthouse at dusk"
_uids = itertools.count(2_000_000)
_update_ids = itertools.count(1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def replicas(
    n: int, tg: TimingTelegram, nemo_api: str, db: str, workdir: Path
) -> AsyncIterator[list[str]]:
    """N webhook processes on ``db``; yields their webhook URLs once all listen."""
    procs: list[asyncio.subprocess.Process] = []
    urls: list[str] = []
    log = (workdir / f"replicas-{n}.log").open("ab")
    try:
        for i in range(n):
            port = _free_port()
            url = f"http://127.0.0.1:{port}/tg"
            environ = {
                k: v for k, v in os.environ.items() if not k.startswith(("NEMO_", "TELEGRAM_"))
            }
            environ.update(
                TELEGRAM_BOT_TOKEN=TOKEN,
                TELEGRAM_API_BASE=tg.base_url,
                TELEGRAM_WEBHOOK_SECRET=SECRET,
                NEMO_API_BASE=nemo_api,
                NEMO_BOT_DB=db,
                NEMO_REPLICA_NAME=f"r{i}",
                NEMO_LOG_LEVEL="WARNING",
                PYTHONPATH=str(ROOT),
            )
            args = ["-m", "bots.cli", "telegram", "--webhook-url", url]
            args += ["--webhook-port", str(port), "--webhook-listen", "127.0.0.1"]
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable, *args, cwd=workdir, env=environ, stdout=log, stderr=log
                )
            )
            urls.append(url)
        async with aiohttp.ClientSession() as http:
            for url in urls:
                await _listening(http, url)
        yield urls
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()


async def _listening(http: aiohttp.ClientSession, url: str) -> None:
    for _ in range(600):
        with contextlib.suppress(aiohttp.ClientError):
            async with http.post(url, json={"update_id": 0}) as resp:
                if resp.status == 403:  # no secret: refused, so it listens
                    return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"replica at {url} did not start")


async def _db_stats(url: str) -> tuple[float, int]:
    """(active_time ms, transactions) of the database, as PostgreSQL counted them."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SELECT pg_stat_force_next_flush()")
        row = await conn.fetchrow(
            "SELECT active_time, xact_commit + xact_rollback AS xacts "
            "FROM pg_stat_database WHERE datname = current_database()"
        )
        assert row is not None
        return float(row["active_time"] or 0.0), int(row["xacts"])
    finally:
        await conn.close()


async def _round_trip_ms(url: str, n: int = 300) -> float:
    conn = await asyncpg.connect(url)
    try:
        times = []
        for _ in range(n):
            start = time.perf_counter()
            await conn.fetchval("SELECT 1")
            times.append((time.perf_counter() - start) * 1000)
        return median(times)
    finally:
        await conn.close()


async def one_run(n: int, server: PgServer, nemo_api: str, workdir: Path) -> dict[str, Any]:
    """K chats through N replicas on a fresh database; the figures of one run."""
    db = await server.create_database("bench_replicas")
    tg = TimingTelegram(TOKEN, flood_limit=True, overall_rate=30)
    async with tg:
        async with replicas(n, tg, nemo_api, db, workdir) as urls:
            # Every replica has connected and migrated: count only what the requests cost.
            active_before, xacts_before = await _db_stats(db)
            users = [next(_uids) for _ in range(K)]
            tg.expected = K
            posted: dict[int, float] = {}
            statuses: list[int] = []
            connector = aiohttp.TCPConnector(limit=100)
            async with aiohttp.ClientSession(connector=connector) as http:

                async def post(i: int, uid: int) -> None:
                    msg = tg.message(chat=tg.private_chat(uid), user=tg.user(uid), text=PROMPT)
                    update = {"update_id": next(_update_ids), "message": msg}
                    posted[uid] = time.monotonic()
                    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
                    async with http.post(urls[i % n], json=update, headers=headers) as resp:
                        statuses.append(resp.status)

                started = time.monotonic()
                await asyncio.gather(*(post(i, uid) for i, uid in enumerate(users)))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(tg.all_final.wait(), 60 + 3 * K / 30)
                elapsed = time.monotonic() - started
        active_after, xacts_after = await _db_stats(db)  # replicas gone: their stats flushed
        rtt = await _round_trip_ms(db)
    lags = [tg.final[uid] - posted[uid] for uid in users if uid in tg.final]
    xacts = xacts_after - xacts_before
    db_ms = (active_after - active_before + xacts * rtt) / K
    return {
        "replicas": n,
        "k": K,
        "answered_200": sum(1 for s in statuses if s == 200),
        "full_replies": len(lags),
        "lag_p50": percentile(lags, 50),
        "lag_p99": percentile(lags, 99),
        "rejected_429": tg.flood_hits,
        "rejected_by_limit": dict(tg.hits),
        "rejected_calls": sorted({c.method for c in tg.calls if c.status == 429}),
        "rejected_at": sorted(c.at - started for c in tg.calls if c.status == 429),
        "seconds": elapsed,
        "db_active_ms_per_request": (active_after - active_before) / K,
        "db_transactions_per_request": xacts / K,
        "db_round_trip_ms": rtt,
        "db_ms_per_request": db_ms,
        "db_share_of_p50_lag": db_ms / 1000 / percentile(lags, 50) if lags else float("nan"),
    }


async def run() -> Result:
    """Every N in :data:`REPLICAS` against one simulator and one PostgreSQL server."""
    raise_nofile()
    result = Result(NAME)
    server = await asyncio.to_thread(start_server, durable=True)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
            async with simulator_process(**fast_sim()) as sim:
                runs = [await one_run(n, server, sim, Path(tmp)) for n in REPLICAS]
    finally:
        await asyncio.to_thread(server.stop)
    result.data["runs"] = runs
    floor = K / 30
    for r in runs:
        label = f"K={K}, {r['replicas']} replica{'s' if r['replicas'] > 1 else ''}"
        result.add(
            f"{label}: full replies",
            f"{r['full_replies']}/{K}",
            f"{K}/{K}",
            r["full_replies"] == K,
        )
        result.add(
            f"{label}: lag p50 / p99",
            f"{r['lag_p50']:.1f} s / {r['lag_p99']:.1f} s",
            f"p99 ≤ {2 * floor + 10:.0f} s (floor K/30 = {floor:.0f} s)",
            r["lag_p99"] <= 2 * floor + 10,
        )
        result.add(f"{label}: 429 answers", str(r["rejected_429"]), "0", r["rejected_429"] == 0)
        result.add(
            f"{label}: database per request",
            f"{r['db_ms_per_request']:.1f} ms ({r['db_transactions_per_request']:.1f} "
            f"transactions; {100 * r['db_share_of_p50_lag']:.1f}% of the p50 lag)",
            "≤ 10% of the p50 lag",
            r["db_share_of_p50_lag"] <= 0.10,
        )
    return result


def main() -> None:
    """Run and print the table."""
    run_main(NAME, run)


if __name__ == "__main__":
    main()
