"""Graceful shutdown: SIGTERM stops updates, finishes or persists work, closes the database.

``nemo-bot telegram`` runs as a real process against the fake Bot API and the
simulator (both in this test's event loop). It gets SIGTERM while one user's chat
reply is streaming and another user's export is rendering: the reply is finished,
the export is kept in the database, the process exits 0 with the SQLite file
checkpointed and intact, and the next start delivers the video exactly once.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from simulator.server import Simulator
from tests.conftest import fast_sim_config
from tests.fakes.procs import bot_env, db_rows, integrity, wait_until
from tests.fakes.telegram_server import FakeTelegram
from tests.test_reliability import export_in_telegram, start_telegram

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

TOKEN = "5550002:AAH-shutdown-test-token-abc"


async def test_sigterm_finishes_the_reply_keeps_the_export_and_closes_the_db(
    tmp_path: Path,
) -> None:
    db = tmp_path / "bot.db"
    async with (
        FakeTelegram(TOKEN) as tg,
        Simulator(fast_sim_config(render_seconds=2.5, slow_step_seconds=0.6)) as sim,
    ):
        env = bot_env(
            TELEGRAM_BOT_TOKEN=tg.token,
            TELEGRAM_API_BASE=tg.base_url,
            NEMO_API_BASE=sim.base_url,
            NEMO_BOT_DB=db,
        )
        bot = await start_telegram(tg, env, tmp_path)
        async with bot:
            await export_in_telegram(tg, db, chat=601)
            tg.private_text(602, "make a clip of fireworks over a harbour")
            await wait_until(lambda: sim.stats["chat"] >= 2, what="the second chat turn")
            bot.signal(signal.SIGTERM)
            assert await bot.wait(20) == 0, bot.stderr[-3000:]
        assert "stopped cleanly" in bot.stderr
        assert "Traceback" not in bot.stderr
        # the streaming reply was finished, not cut off
        assert any(m.result_markup for m in tg.sent_to(602)), tg.texts(602)
        # the export is kept for the next start; the database was closed cleanly
        assert not tg.calls_of("sendVideo")
        [(delivered,)] = db_rows(db, "SELECT delivered_at FROM renders")
        assert delivered is None
        wal = db.with_name(db.name + "-wal")
        assert not wal.exists() or wal.stat().st_size == 0
        assert integrity(db) == "ok"

        restarted = await start_telegram(tg, env, tmp_path)
        async with restarted:
            await tg.wait_for(lambda: tg.calls_of("sendVideo"), within=30)
            await asyncio.sleep(0.5)
            restarted.signal(signal.SIGTERM)
            assert await restarted.wait(20) == 0
    [video] = tg.calls_of("sendVideo")
    assert video.params["chat_id"] == 601
    assert db_rows(db, "SELECT count(*) FROM renders WHERE delivered_at IS NOT NULL") == [(1,)]
    assert integrity(db) == "ok"
