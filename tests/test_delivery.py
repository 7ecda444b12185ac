"""Following an export to the chat: the progress bar between polls, and a delivery the
platform keeps refusing (the link in a plain message, and nothing set aside).

The core runs against the simulator over HTTP; the Telegram cases run the real adapter
(python-telegram-bot) against the fake Bot API.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest

from bots.telegram_bot import TelegramBot
from core.app import open_core
from core.config import Settings
from core.polling import PollPolicy, ProgressEstimate
from core.service import ConversationService
from core.types import IncomingMessage
from simulator.server import Simulator
from tests.conftest import fast_sim_config
from tests.fakes.collecting import CollectingReplier
from tests.fakes.telegram_server import FakeTelegram

TOKEN = "123:ABC"
FAST_POLL = PollPolicy(min_interval=0.05, max_interval=0.2, first_delay=0.05)
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


def _settings(tmp_path: Path, name: str, **values: object) -> Settings:
    return Settings(_env_file=None, NEMO_BOT_DB=tmp_path / f"{name}.db", **values)  # type: ignore[call-arg]


def _msg(text: str, user: str) -> IncomingMessage:
    return IncomingMessage(platform="test", user_id=user, chat_id=user, text=text)


def _percents(replier: CollectingReplier) -> list[int]:
    return [s.percent for s in replier.said if s.kind == "progress" and s.percent is not None]


def _polls(sim: Simulator) -> int:
    return sum(1 for r in sim.requests if r.endpoint == "render_status")


async def _export(service: ConversationService, user: str) -> CollectingReplier:
    replier = CollectingReplier()
    await service.handle(_msg("make a video of a harbour at dawn", user), replier)
    await service.handle(_msg("export", user), replier)
    await asyncio.wait_for(replier.videos.get(), 40)
    return replier


# -- the progress bar -------------------------------------------------------------------


async def test_the_progress_bar_moves_between_polls_without_more_polls(tmp_path: Path) -> None:
    """Side by side, one render each, production polling: with estimates between polls
    the bar shows several steps per poll; without them (an update every 1000 s) only
    what each poll said. Both ask the backend equally often."""
    policies = {"estimated": PollPolicy(), "polled only": PollPolicy(progress_every=1000.0)}

    async def run(label: str) -> tuple[list[int], int]:
        async with Simulator(fast_sim_config(render_seconds=6.0)) as sim:
            settings = _settings(tmp_path, label.split()[0], NEMO_API_BASE=sim.base_url)
            async with open_core(settings, poll_policy=policies[label]) as service:
                percents = _percents(await _export(service, "u"))
            return percents, _polls(sim)

    results = dict(zip(policies, await asyncio.gather(*map(run, policies)), strict=True))
    shown = {label: percents for label, (percents, _) in results.items()}
    counts = {label: polls for label, (_, polls) in results.items()}
    for percents in shown.values():
        assert percents == sorted(percents), f"the bar never goes back: {percents}"
        assert percents[0] == 0 and percents[-1] == 100
    moving = {label: len({p for p in percents if 0 < p < 100}) for label, percents in shown.items()}
    print("render_status polls:", counts, "bar steps:", moving, shown)
    assert abs(counts["estimated"] - counts["polled only"]) <= 1, "no extra polls"
    assert moving["estimated"] >= moving["polled only"] + 3
    assert moving["estimated"] > counts["estimated"], "more steps than polls"


async def test_the_bar_moves_when_the_backend_gives_no_percent(tmp_path: Path) -> None:
    async with Simulator(fast_sim_config(render_seconds=5.0, render_progress=False)) as sim:
        settings = _settings(tmp_path, "blind", NEMO_API_BASE=sim.base_url)
        async with open_core(settings, poll_policy=PollPolicy(progress_every=0.5)) as service:
            percents = _percents(await _export(service, "blind"))
    assert percents == sorted(percents) and percents[-1] == 100
    assert len({p for p in percents if 0 < p < 100}) >= 3, percents


def test_an_estimate_follows_the_backends_pace_and_stops_short() -> None:
    est = ProgressEstimate(started=0.0)
    est.observe(2.0, 20)  # 10 %/s so far
    assert est.advance(3.0) == 30
    est.observe(4.0, 25)  # behind the estimate: the bar holds until the pace passes it
    assert est.advance(4.5) is None
    assert est.advance(6.0) is None  # 2.5 %/s from the last two readings: 30
    assert est.advance(8.0) == 35
    assert est.advance(60.0) == 95, "an estimate never claims the end"


# -- deliveries the platform refuses ----------------------------------------------------------


@asynccontextmanager
async def _telegram_core(
    sim: Simulator, tg: FakeTelegram, tmp_path: Path
) -> AsyncIterator[ConversationService]:
    """The real core on the simulator and the real Telegram adapter on the fake Bot API."""
    settings = _settings(
        tmp_path,
        "tg",
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE=tg.base_url,
        NEMO_API_BASE=sim.base_url,
    )
    async with AsyncExitStack() as stack:
        service = await stack.enter_async_context(open_core(settings, poll_policy=FAST_POLL))
        bot = TelegramBot(settings, service, edit_interval=0.05, poll_timeout=1, shutdown_grace=2)
        await bot.start()
        stack.push_async_callback(bot.stop)
        await service.start()
        yield service


def _ready(tg: FakeTelegram, chat_id: int) -> bool:
    """The chat's reply to the prompt is complete (it carries the buttons)."""
    return any(m.result_markup for m in tg.sent_to(chat_id))


def _rendering(tg: FakeTelegram, chat_id: int) -> bool:
    return any("%" in (m.text or "") for m in tg.sent_to(chat_id))


async def test_a_video_the_platform_keeps_refusing_is_given_as_a_link(
    sim: Simulator, tmp_path: Path
) -> None:
    """Telegram refuses the upload and the link message three times over: the user then
    gets the link in a plain message saying the file could not be sent, once."""
    async with FakeTelegram(TOKEN) as tg, _telegram_core(sim, tg, tmp_path) as service:
        tg.private_text(7, "make a clip of a lighthouse")
        await tg.wait_for(lambda: _ready(tg, 7), within=20)
        tg.private_text(7, "/export")
        await tg.wait_for(lambda: _rendering(tg, 7), within=20)
        tg.fail("sendVideo", 3, error=(500, "Internal Server Error"))
        tg.fail("sendMessage", 3, error=(500, "Internal Server Error"))
        await tg.wait_for(lambda: any("couldn't send" in t for t in tg.texts(7)), within=30)
        await asyncio.sleep(0.5)  # nothing else follows
        assert await service._store.undelivered_renders() == [], "the link counts as delivered"
    refused = [c for c in tg.calls if c.method in ("sendVideo", "sendMessage") and c.status != 200]
    assert len(refused) == 6
    [link] = [t for t in tg.texts(7) if "render" in t and ".mp4" in t]
    assert link.startswith("⚠️ I couldn't send the video file itself")
    assert not [c for c in tg.calls_of("sendVideo")], "no file went through"


async def test_a_delivery_failing_until_a_stop_is_finished_by_the_next_start_once(
    sim: Simulator, tmp_path: Path
) -> None:
    """Telegram is down when the video is ready: the bot keeps trying (the file, then the
    link) without giving up, until it is stopped; the next start delivers it, once."""
    async with FakeTelegram(TOKEN) as tg:
        async with _telegram_core(sim, tg, tmp_path):
            tg.private_text(8, "make a clip of a red fox")
            await tg.wait_for(lambda: _ready(tg, 8), within=20)
            tg.private_text(8, "/export")
            await tg.wait_for(lambda: _rendering(tg, 8), within=20)
            tg.fail("sendVideo", 1000, error=(502, "Bad Gateway"))
            tg.fail("sendMessage", 1000, error=(502, "Bad Gateway"))

            def link_tried_twice() -> bool:
                tries = [c for c in tg.calls if c.method == "sendMessage" and c.status == 502]
                return sum("video file itself" in str(c.params.get("text")) for c in tries) >= 2

            await tg.wait_for(link_tried_twice, within=30)
        assert not [c for c in tg.calls if c.status == 200 and c.method == "sendVideo"]
        tg.clear_failures()
        async with _telegram_core(sim, tg, tmp_path) as service:
            await tg.wait_for(lambda: tg.calls_of("sendVideo"), within=30)
            await asyncio.sleep(1.0)  # a second delivery would show up by now
            assert await service._store.undelivered_renders() == []
    [video] = tg.calls_of("sendVideo")
    assert video.params["chat_id"] == 8 and video.files["video"][4:8] == b"ftyp"
    assert not [t for t in tg.texts(8) if "couldn't send" in t], "no link as well"
