"""Nothing lost: durable renders across kill -9 and restarts, and stream faults.

* An export submitted before the bot process is killed with SIGKILL is delivered
  after the restart, exactly once, to the right chat: the terminal chat and the
  Telegram bot run as real ``nemo-bot`` processes and are really killed; Discord
  is restarted in-process (adapter and core closed, then opened on the same file).
* Two processes sharing one database never both deliver a render.
* A dropped SSE stream is reported, the session state is read, nothing is resent.
* Idempotent calls are retried with jittered backoff on 5xx and time-outs; calls
  that may have taken effect are not.
* A heartbeat-only stream ends with a time-out message (limit configurable).
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from core import nemo_http
from core.app import open_core
from core.client import NemoClient
from core.config import Settings
from core.errors import ServerError, StreamTimeoutError, TransportError
from core.polling import PollPolicy
from simulator.server import Simulator
from tests.conftest import fast_sim_config
from tests.fakes.collecting import CollectingAdapter, CollectingReplier
from tests.fakes.procs import BotProcess, bot_env, db_rows, integrity, wait_until
from tests.fakes.scripted_http import SILENCE, Reply, ScriptedServer
from tests.fakes.telegram_server import FakeTelegram

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

FAST_POLL = PollPolicy(min_interval=0.05, max_interval=0.2, first_delay=0.05)
TG_TOKEN = "5550001:AAH-reliability-test-token-xyz"
READY = "Your video is ready"


def _settings(sim: Simulator, db: Path, **extra: object) -> Settings:
    return Settings(_env_file=None, NEMO_API_BASE=sim.base_url, NEMO_BOT_DB=db, **extra)  # type: ignore[call-arg]


def _renders(db: Path) -> list[tuple[Any, ...]]:
    return db_rows(db, "SELECT render_id, chat_id, delivered_at FROM renders")


def _accepted(db: Path) -> list[tuple[Any, ...]]:
    """Render rows the backend has accepted. The row is written (``submitting``) before
    the export is sent, so its mere presence does not mean the backend has it yet."""
    return db_rows(db, "SELECT render_id FROM renders WHERE status != 'submitting'")


# ------------------------------------------------------------- kill -9: terminal chat


async def test_kill_9_during_an_export_then_the_next_run_delivers_it_once(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    async with Simulator(fast_sim_config(render_seconds=3.0)) as sim:
        env = bot_env(NEMO_API_BASE=sim.base_url, NEMO_BOT_DB=db)
        first = BotProcess(
            "chat", "-m", "make a video of a harbour at dawn", "-m", "export", env=env, cwd=tmp_path
        )
        async with first:
            await wait_until(lambda: _accepted(db), within=30, what="the accepted render")
            assert sim.stats["renders"] == 1
            first.signal(signal.SIGKILL)
            assert await first.wait() == -signal.SIGKILL
        assert READY not in first.stdout
        [(_, _, delivered)] = _renders(db)
        assert delivered is None
        assert integrity(db) == "ok"

        # The next run (any command) resumes the render and waits for it.
        second = BotProcess("chat", "-m", "credits", env=env, cwd=tmp_path)
        async with second:
            assert await second.wait(60) == 0, second.stderr
        assert second.stdout.count(READY) == 1, second.stdout
        assert f"{sim.base_url}/media/" in second.stdout
        [(_, _, delivered)] = _renders(db)
        assert delivered is not None

        third = BotProcess("chat", "-m", "credits", env=env, cwd=tmp_path)
        async with third:
            assert await third.wait(60) == 0, third.stderr
        assert READY not in third.stdout
        assert sim.stats["renders"] == 1  # never resubmitted
        assert "Traceback" not in first.stderr + second.stderr + third.stderr


# ------------------------------------------------------------------- kill -9: Telegram


def _tg_env(tg: FakeTelegram, sim: Simulator, db: Path, **extra: object) -> dict[str, str]:
    return bot_env(
        TELEGRAM_BOT_TOKEN=tg.token,
        TELEGRAM_API_BASE=tg.base_url,
        NEMO_API_BASE=sim.base_url,
        NEMO_BOT_DB=db,
        NEMO_LOG_LEVEL="DEBUG",
        **extra,
    )


async def start_telegram(tg: FakeTelegram, env: dict[str, str], cwd: Path) -> BotProcess:
    """``nemo-bot telegram`` as a process, returned once it polls the fake Bot API."""
    polls = len(tg.calls_of("getUpdates", ok_only=False))
    bot = await BotProcess("telegram", env=env, cwd=cwd).start()
    try:
        await wait_until(
            lambda: len(tg.calls_of("getUpdates", ok_only=False)) > polls,
            within=30,
            what="the bot's first getUpdates",
        )
    except AssertionError:
        bot.signal(signal.SIGKILL)
        await bot.wait()
        raise AssertionError(f"nemo-bot telegram did not start:\n{bot.stderr}") from None
    return bot


async def export_in_telegram(tg: FakeTelegram, db: Path, chat: int) -> dict[str, Any]:
    """Make a clip in a private chat, export it, return once the backend has the render."""
    tg.private_text(chat, "make a clip of waves on a beach")
    await tg.wait_for(lambda: any(m.result_markup for m in tg.sent_to(chat)), within=20)
    export = tg.private_text(chat, "/export")
    await wait_until(lambda: _accepted(db), within=20, what="the accepted render")
    return export


async def test_kill_9_telegram_bot_then_restart_delivers_the_video_once(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    async with (
        FakeTelegram(TG_TOKEN) as tg,
        Simulator(fast_sim_config(render_seconds=3.0)) as sim,
    ):
        env = _tg_env(tg, sim, db)
        bot = await start_telegram(tg, env, tmp_path)
        async with bot:
            tg.private_text(99, "hello, are you there?")  # a bystander chat
            export = await export_in_telegram(tg, db, chat=81)
            bot.signal(signal.SIGKILL)
            assert await bot.wait() == -signal.SIGKILL
        assert not tg.calls_of("sendVideo")

        restarted = await start_telegram(tg, env, tmp_path)
        async with restarted:
            await tg.wait_for(lambda: tg.calls_of("sendVideo"), within=30)
            await asyncio.sleep(1.5)  # time for a duplicate to show up, if there were one
            restarted.signal(signal.SIGTERM)
            assert await restarted.wait() == 0, restarted.stderr
    [video] = tg.calls_of("sendVideo")
    assert video.params["chat_id"] == 81
    assert export["chat"]["id"] == 81
    assert video.files["video"][4:8] == b"ftyp"
    assert sim.stats["renders"] == 1
    [(_, chat_id, delivered)] = _renders(db)
    assert chat_id == "81" and delivered is not None
    assert not [c for c in tg.calls if c.params.get("chat_id") == 99 and c.method == "sendVideo"]


# ------------------------------------------------------------ Discord: restart in-process


async def test_discord_restart_delivers_a_pending_render_once_to_its_channel(
    tmp_path: Path,
) -> None:
    from tests.fakes.discord_server import FakeDiscord
    from tests.test_discord import discord_settings, running_bot

    def deliveries(fake: FakeDiscord) -> list[Any]:
        return [
            r
            for r in fake.requests
            if r.method in ("POST", "PATCH")
            and (
                any(p.filename.endswith(".mp4") for p in r.files) or READY in json.dumps(r.payload)
            )
        ]

    async with (
        FakeDiscord() as fake,
        Simulator(fast_sim_config(render_seconds=2.5)) as sim,
    ):
        settings = discord_settings(fake, tmp_path, NEMO_API_BASE=sim.base_url)
        db = settings.nemo_bot_db
        async with (
            open_core(settings, poll_policy=FAST_POLL) as service,
            running_bot(fake, settings, service),
        ):
            await service.start()
            first = await fake.slash("video", {"prompt": "make a clip of a lighthouse"})
            await fake.wait_for(
                lambda r: first["token"] in r.path and "components" in json.dumps(r.json),
                within=20,
            )
            await fake.slash("export")
            await wait_until(lambda: _accepted(db), within=20, what="the accepted render")
        assert not deliveries(fake)

        async with (
            open_core(settings, poll_policy=FAST_POLL) as service,
            running_bot(fake, settings, service),
        ):
            assert await service.start() == 1
            await wait_until(lambda: deliveries(fake), within=20, what="the delivery")
            await asyncio.sleep(0.5)
        async with (
            open_core(settings, poll_policy=FAST_POLL) as service,
            running_bot(fake, settings, service),
        ):
            assert await service.start() == 0
    [delivery] = deliveries(fake)
    assert f"/channels/{fake.channel_id}/messages" in delivery.path
    assert READY in delivery.payload["content"]
    assert [p.data[4:8] for p in delivery.files] == [b"ftyp"]
    assert sim.stats["renders"] == 1


# ------------------------------------------------------- exactly once across processes


async def test_two_processes_sharing_the_database_deliver_once(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    async with Simulator(fast_sim_config(render_seconds=1.0)) as sim:
        async with open_core(_settings(sim, db), poll_policy=FAST_POLL) as service:
            service.register_adapter(CollectingAdapter())
            r = CollectingReplier()
            await service.handle(_msg("make a video of a red kite"), r)
            await service.handle(_msg("export"), r)
            await service.aclose()  # stop following: the render stays undelivered
        one, two = CollectingAdapter(), CollectingAdapter()
        async with (
            open_core(_settings(sim, db), poll_policy=FAST_POLL) as a,
            open_core(_settings(sim, db), poll_policy=FAST_POLL) as b,
        ):
            a.register_adapter(one)
            b.register_adapter(two)
            assert (await a.start(), await b.start()) == (1, 1)
            await asyncio.wait_for(asyncio.gather(a.wait_idle(), b.wait_idle()), 20)
        said = [s for ad in (one, two) for rep in ad.repliers.values() for s in rep.said]
        assert len([s for s in said if s.kind == "video"]) == 1
        [(_, _, delivered)] = _renders(db)
        assert delivered is not None


def _msg(text: str, user: str = "u1", chat: str = "c1") -> Any:
    from core.types import IncomingMessage

    return IncomingMessage(platform="test", user_id=user, chat_id=chat, text=text)


# ------------------------------------------------------------------------ stream faults


@pytest.fixture
async def core(sim: Simulator, tmp_path: Path) -> AsyncIterator[Any]:
    async with open_core(_settings(sim, tmp_path / "bot.db"), poll_policy=FAST_POLL) as service:
        service.register_adapter(CollectingAdapter())
        await service.start()
        yield service


async def test_dropped_stream_is_reported_state_checked_nothing_resent(
    sim: Simulator, core: Any
) -> None:
    r = CollectingReplier()
    await core.handle(_msg("make a video of a city at night"), r)
    chats, states = sim.stats["chat"], sim.stats["state"]
    sim.inject("drop_stream", count=1, endpoint="chat")
    r.clear()
    await core.handle(_msg("add jazz music"), r)
    texts = r.texts()
    assert any("connection to the video service dropped" in t for t in texts)
    assert sim.stats["stream_drops"] == 1
    assert sim.stats["chat"] == chats + 1  # never resent blindly
    assert sim.stats["state"] > states  # the state was read instead
    # the turn went on server-side: the user hears what changed, or that nothing did
    assert len(texts) >= 2
    assert sim.stats["concurrent_duplicates"] == 0


async def test_heartbeat_only_stream_ends_with_a_time_out_message(tmp_path: Path) -> None:
    assert Settings(_env_file=None).heartbeat_timeout_s == 600.0  # type: ignore[call-arg]
    async with Simulator(fast_sim_config(heartbeat_only_seconds=5.0)) as sim:
        settings = _settings(
            sim, tmp_path / "bot.db", NEMO_HEARTBEAT_NOTICE_S=0.25, NEMO_HEARTBEAT_TIMEOUT_S=0.7
        )
        async with open_core(settings, poll_policy=FAST_POLL) as service:
            r = CollectingReplier()
            sim.inject("heartbeat_only", count=1, endpoint="chat")
            loop = asyncio.get_running_loop()
            started = loop.time()
            await service.handle(_msg("make a video of mountains"), r)
            took = loop.time() - started
        texts = r.texts()
        assert any("Still working" in t for t in texts)
        assert "long time" in texts[-1]
        assert took < 4.0  # the limit, not the stream, ended it
        assert sim.stats["chat"] == 1


# --------------------------------------------------------- retries: what, when, how often


OK = Reply(json={"code": 0, "data": {"available": 7, "frozen": 0, "total": 7}})
# A JSON call's read time-out, shortened so a silent server times out quickly.
SHORT_JSON_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10.0, sock_read=1.0)


@pytest.fixture
def short_json_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nemo_http, "JSON_TIMEOUT", SHORT_JSON_TIMEOUT)


def _client(server: ScriptedServer, sleeps: list[float], **kwargs: Any) -> NemoClient:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return NemoClient(base_url=server.url, sleep=sleep, **kwargs)


def _attempts(server: ScriptedServer) -> int:
    return len(server.requests)


async def test_idempotent_calls_retry_5xx_and_time_outs_with_jittered_backoff(
    short_json_timeout: None,
) -> None:
    # A 5xx, then a time-out (the server reads the request and never answers), then OK.
    sleeps: list[float] = []
    async with ScriptedServer(503, SILENCE, default=OK) as server, _client(server, sleeps) as nemo:
        credits = await nemo.credits("tok")
    assert credits.available == 7
    assert _attempts(server) == 3
    first, second = sleeps
    assert 0.25 <= first <= 0.75 and 0.5 <= second <= 1.5  # doubled, ±50 %

    seen: list[tuple[float, float]] = [(first, second)]
    for _ in range(11):  # two 5xx replies: the same schedule, jittered
        sleeps = []
        async with ScriptedServer(503, 502, default=OK) as server, _client(server, sleeps) as nemo:
            assert (await nemo.credits("tok")).available == 7
        first, second = sleeps
        assert 0.25 <= first <= 0.75 and 0.5 <= second <= 1.5
        seen.append((first, second))
    assert len(set(seen)) > 1  # jittered, not a fixed schedule

    sleeps = []
    async with ScriptedServer(500, 502, 503, default=OK) as server, _client(server, sleeps) as nemo:
        with pytest.raises(ServerError):
            await nemo.state("tok", "1")
    assert _attempts(server) == 3  # bounded


async def test_calls_that_may_have_taken_effect_are_not_resent(short_json_timeout: None) -> None:
    sleeps: list[float] = []
    async with ScriptedServer(SILENCE, default=OK) as server, _client(server, sleeps) as nemo:
        with pytest.raises(TransportError) as info:
            await nemo.submit_render("tok", "1", {"t": [{"tt": 0, "sg": [{}]}]})
    assert info.value.maybe_sent is True and not isinstance(info.value, StreamTimeoutError)
    assert _attempts(server) == 1

    async with ScriptedServer(503, default=OK) as server, _client(server, sleeps) as nemo:
        with pytest.raises(ServerError):
            await nemo.create_session("tok")
    assert _attempts(server) == 1

    # a chat stream that never answers: a stream time-out (the limit bounds the wait)
    async with (
        ScriptedServer(SILENCE, default=OK) as server,
        _client(server, sleeps, heartbeat_timeout=1.0) as nemo,
    ):
        with pytest.raises(StreamTimeoutError):
            async for _ in nemo.chat("tok", "1", "hi"):
                pass
    assert _attempts(server) == 1
    assert sleeps == []

    # nothing left the machine: resending is safe even for a chat message
    server = ScriptedServer(default=OK)
    await server.start()
    await server.stop()  # the port refuses connections
    async with _client(server, sleeps) as nemo:
        with pytest.raises(TransportError) as info:
            async for _ in nemo.chat("tok", "1", "hi"):
                pass
    assert info.value.maybe_sent is False
    assert len(sleeps) == 2  # three attempts, two backoffs
