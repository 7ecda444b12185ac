"""The operator's fair limits and the backend refusing new tokens, end to end.

Limits are set in their documented form (a ``.env`` file, the environment) and
checked through the doors: the terminal as a process (twice, so the count must
survive the restart), Telegram against the fake Bot API, Discord against the fake
gateway; and two services sharing one real PostgreSQL database count together.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.i18n import t
from simulator.server import Simulator
from storage import make_store
from tests.conftest import fast_sim_config
from tests.fakes.collecting import CollectingReplier
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.simproc import ROOT, sim_process
from tests.fakes.telegram_server import FakeTelegram
from tests.test_cancel import until, with_text
from tests.test_discord import content_of, running_bot
from tests.test_discord import real_core as discord_core
from tests.test_service import core_for, msg
from tests.test_telegram import finished
from tests.test_telegram import real_core as telegram_core

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

PROMPT = "make a 4-second clip of a red balloon"


def chat(cwd: Path, *messages: str) -> subprocess.CompletedProcess[str]:
    """``nemo-bot chat -m ...`` in ``cwd`` (so it reads that folder's ``.env``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEMO_", "TELEGRAM_"))}
    args = [arg for text in messages for arg in ("-m", text)]
    return subprocess.run(
        [sys.executable, "-m", "bots.cli", "chat", "--save-dir", str(cwd / "videos"), *args],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_the_hourly_limit_holds_across_a_restart_and_never_blocks_status(tmp_path: Path) -> None:
    if time.gmtime().tm_min == 59:  # both runs must fall in one clock hour
        time.sleep(61 - time.gmtime().tm_sec)
    with sim_process() as sim_url:
        (tmp_path / ".env").write_text(
            f"NEMO_API_BASE={sim_url}\nNEMO_BOT_DB=./bot.db\nNEMO_LIMIT_REQUESTS_PER_HOUR=2\n"
        )
        first = chat(tmp_path, PROMPT, "add lo-fi background music")
        # A new process: the count comes from the database.
        second = chat(tmp_path, "status", "credits", "make it 8 seconds long", "help")
    assert first.returncode == 0, first.stderr
    assert "limit" not in first.stdout
    assert second.returncode == 6, second.stderr
    out = second.stdout
    resets = time.strftime("%H:00", time.gmtime(time.time() + 3600))
    told = t("limit_requests", "en", limit=2, resets=resets)
    assert told in out
    assert "Timeline (2 tracks)" in out and "💳 Credits:" in out  # status, credits: not limited
    assert out.index(told) < out.index(t("help", "en").strip().splitlines()[0])  # help still works
    assert "a limit of this bot" in second.stderr


async def test_telegram_exports_per_day_then_credits_still_answer(
    sim: Simulator, tg: FakeTelegram, tmp_path: Path
) -> None:
    user = 51
    async with telegram_core(sim, tg, tmp_path, NEMO_LIMIT_EXPORTS_PER_DAY=1) as (service, _):
        tg.private_text(user, PROMPT)
        await tg.wait_for(finished(tg, user), within=20)
        tg.private_text(user, "export")
        await tg.wait_for(lambda: any(m.video for m in tg.sent_to(user)), within=30)
        tg.private_text(user, "/export")
        [refused] = await tg.wait_for(lambda: with_text(tg, user, "exports a day"))
        tg.private_text(user, "/credits")
        await tg.wait_for(lambda: with_text(tg, user, "💳 Credits:"))
        limited = service.metrics.limited.labels(limit="exports")._value.get()
    assert refused.text == t("limit_exports", "en", limit=1, resets="00:00")
    assert sim.stats["renders"] == 1
    assert limited == 1


async def test_discord_queue_limit_refuses_a_third_request_until_one_is_cancelled(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    async with (
        Simulator(fast_sim_config(slow_step_seconds=60.0)) as sim,
        discord_core(sim, fake, tmp_path, NEMO_LIMIT_QUEUE=1) as (service, settings),
        running_bot(fake, settings, service),
    ):
        await fake.slash("video", {"prompt": PROMPT})
        await until(lambda: sim.stats["chat"] == 1)
        waiting = await fake.slash("video", {"prompt": "add lo-fi background music"})
        await fake.wait_for(
            lambda r: waiting["token"] in r.path and "1 request ahead" in content_of(r)
        )
        third = await fake.slash("video", {"prompt": "add a title"})
        [refused] = await fake.wait_for(
            lambda r: third["token"] in r.path and "Too many of your requests" in content_of(r)
        )
        stop = await fake.slash("cancel")
        [told] = await fake.wait_for(
            lambda r: stop["token"] in r.path and "Stopped your request" in content_of(r),
            within=15,
        )
    assert content_of(refused) == t("limit_queue", "en", limit=1)
    assert refused.json["flags"] == 64  # only the asker sees it
    assert "Dropped your waiting request." in content_of(told)
    assert sim.stats["chat"] == 1


async def test_a_refused_token_is_told_once_with_when_to_try_again(
    tg: FakeTelegram, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="nemo.accounts")
    async with (
        Simulator(fast_sim_config(mint_limit_per_hour=0)) as sim,
        telegram_core(sim, tg, tmp_path) as (service, _),
    ):
        tg.private_text(61, PROMPT)
        [first] = await tg.wait_for(lambda: with_text(tg, 61, "new accounts"), within=15)
        tg.private_text(62, PROMPT)
        [second] = await tg.wait_for(lambda: with_text(tg, 62, "new accounts"), within=15)
        refused = service.metrics.errors.labels(code="token_refused")._value.get()
    assert first.text == t("token_refused", "en", minutes=60)
    assert second.text == t("token_refused", "en", minutes=60)
    assert sim.stats["token"] == 1  # asked once; the second user waits out the Retry-After
    assert sim.stats["chat"] == 0
    assert refused == 2
    warnings = [r.getMessage() for r in caplog.records if "anonymous token" in r.getMessage()]
    assert len(warnings) == 1 and "not asking again for 3600 s" in warnings[0]


async def test_two_replicas_on_postgresql_share_the_limits(
    sim: Simulator, tmp_path: Path, pg_url: str
) -> None:
    """Two services on one real PostgreSQL database count one user's requests together."""
    limits = {"NEMO_BOT_DB": pg_url, "NEMO_LIMIT_REQUESTS_PER_HOUR": 2}
    if time.gmtime().tm_min == 59:  # every request must fall in one clock hour
        await asyncio.sleep(61 - time.gmtime().tm_sec)
    async with (
        core_for(sim, tmp_path, **limits) as (a, _),
        core_for(sim, tmp_path, **limits) as (b, _),
    ):
        first, second, third = CollectingReplier(), CollectingReplier(), CollectingReplier()
        await a.handle(msg(PROMPT), first)
        await b.handle(msg("add lo-fi background music"), second)
        await a.handle(msg('add a title "Balloon"', chat="c2"), third)  # another chat, same user
        other = CollectingReplier()
        await b.handle(msg(PROMPT, user="u2"), other)  # somebody else: their own count
    async with core_for(sim, tmp_path, **limits) as (restarted, _):
        fourth = CollectingReplier()
        await restarted.handle(msg("make it 8 seconds long"), fourth)
        status = CollectingReplier()
        await restarted.handle(msg("status"), status)
    resets = time.strftime("%H:00", time.gmtime(time.time() + 3600))
    refused = t("limit_requests", "en", limit=2, resets=resets)
    assert refused not in first.all_text() + second.all_text() + other.all_text()
    assert third.texts() == [refused]
    assert fourth.texts() == [refused]  # a restart does not reset the count
    assert "Timeline (2 tracks)" in status.all_text()
    assert sim.stats["chat"] == 3


async def test_two_replicas_on_postgresql_count_places_and_the_queue_together(
    tmp_path: Path, pg_url: str
) -> None:
    """One user's requests waiting on two replicas: places and the queue limit add up."""
    limits = {"NEMO_BOT_DB": pg_url, "NEMO_LIMIT_QUEUE": 2, "NEMO_LIMIT_REQUESTS_PER_HOUR": 10}
    async with (
        Simulator(fast_sim_config(slow_step_seconds=60.0)) as sim,
        core_for(sim, tmp_path, **limits) as (a, _),
        core_for(sim, tmp_path, **limits) as (b, _),
    ):
        first, second, third, fourth = (CollectingReplier() for _ in range(4))

        def notices(r: CollectingReplier) -> list[str]:
            return [s.text for s in r.said if s.kind == "notice"]

        running = asyncio.create_task(a.handle(msg(PROMPT), first))
        await until(lambda: sim.stats["chat"] == 1)
        waiting = asyncio.create_task(b.handle(msg("add lo-fi background music"), second))
        await until(lambda: bool(notices(second)))
        later = asyncio.create_task(a.handle(msg('add a title "Balloon"'), third))
        await until(lambda: bool(notices(third)))
        await b.handle(msg("make it 8 seconds long"), fourth)  # a third one waiting: no
        await b.handle(msg("cancel"), CollectingReplier())  # drops the waiting one on b
        await a.handle(msg("cancel"), CollectingReplier())  # stops the rest on a
        await asyncio.wait_for(asyncio.gather(running, waiting, later), 30)
    assert notices(second)[0] == t("queue_one", "en")
    assert notices(third)[0] == t("queue_many", "en", ahead=2)
    assert fourth.texts() == [t("limit_queue", "en", limit=2)]
    assert sim.stats["chat"] == 1
    async with make_store(pg_url) as store:  # the refused request is not counted
        assert await store.read_counter("limit_requests", "test:u1", window=3600) == 3


async def test_requests_arriving_together_in_one_process_fill_the_queue_exactly(
    tmp_path: Path,
) -> None:
    """With an hourly limit too (its count is a database write), the line still holds."""
    limits = {"NEMO_LIMIT_QUEUE": 1, "NEMO_LIMIT_REQUESTS_PER_HOUR": 50}
    async with (
        Simulator(fast_sim_config(slow_step_seconds=60.0)) as sim,
        core_for(sim, tmp_path, **limits) as (service, _),
    ):
        first = CollectingReplier()
        running = asyncio.create_task(service.handle(msg(PROMPT), first))
        await until(lambda: sim.stats["chat"] == 1)
        together = [CollectingReplier() for _ in range(4)]
        tasks = [
            asyncio.create_task(service.handle(msg(f"add a title number {n}"), r))
            for n, r in enumerate(together)
        ]
        refusal = t("limit_queue", "en", limit=1)
        await until(lambda: sum(refusal in r.texts() for r in together) >= 3)
        await service.handle(msg("cancel"), CollectingReplier())
        await asyncio.wait_for(asyncio.gather(running, *tasks), 30)
        async with make_store(tmp_path / "bot.db") as store:
            counted = await store.read_counter("limit_requests", "test:u1", window=3600)
    assert sorted(refusal in r.texts() for r in together) == [False, True, True, True]
    assert counted == 2  # the running one and the one that waited: refusals are not counted
