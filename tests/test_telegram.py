"""The Telegram adapter, for real: a PTB Application over HTTP against a fake Bot API.

Two kinds of test: a scripted service (to pin down exactly what the adapter does
with each Replier call) and the real core + NemoVideo simulator end to end.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import imageio_ffmpeg
import pytest

from bots.telegram import audio
from bots.telegram.bot import webhook_secret
from bots.telegram.format import split_text, utf16_len
from bots.telegram_bot import TelegramBot, TokenRedactor, telegram_limits
from core.app import open_core
from core.config import Settings
from core.polling import PollPolicy
from core.service import ConversationService
from core.types import DEFAULT_ACTIONS, IncomingMessage, Intent, Replier, Video
from simulator.server import Simulator
from tests.conftest import fast_sim_config
from tests.fakes.telegram_server import FakeTelegram

TOKEN = "123:ABC"
# PTB 22 warns about its own RetryAfter.retry_after type change when a 429 is parsed.
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
FAST_POLL = PollPolicy(min_interval=0.05, max_interval=0.2, first_delay=0.05)
Script = Callable[[IncomingMessage, Replier], Awaitable[None]]


# -- helpers -------------------------------------------------------------------------------


def tg_settings(tg: FakeTelegram, tmp_path: Path, **extra: Any) -> Settings:
    """Settings pointing the bot at the fake Bot API (and, if given, the simulator)."""
    values: dict[str, Any] = {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE": tg.base_url,
        "NEMO_BOT_DB": tmp_path / "db.sqlite",
    }
    values.update(extra)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class ScriptedService:
    """Stands in for ConversationService: records messages, answers with a script."""

    def __init__(self, script: Script | None = None) -> None:
        self.received: list[IncomingMessage] = []
        self.adapters: dict[str, Any] = {}
        self.script = script or stream_words

    def register_adapter(self, adapter: Any) -> None:
        self.adapters[adapter.platform] = adapter

    async def handle(self, msg: IncomingMessage, replier: Replier) -> None:
        self.received.append(msg)
        await self.script(msg, replier)


async def stream_words(msg: IncomingMessage, replier: Replier) -> None:
    """Echo the request, then stream twenty words with buttons at the end."""
    stream = replier.stream()
    await stream.append(f"[{msg.user_id}] {msg.text}: ")
    for i in range(20):
        await stream.append(f"word{i} ")
        await asyncio.sleep(0.01)
    await stream.finish(DEFAULT_ACTIONS)


@asynccontextmanager
async def running(settings: Settings, service: Any, **options: Any) -> AsyncIterator[TelegramBot]:
    """A started TelegramBot with test-sized throttles."""
    options = {
        "edit_interval": 0.05,
        "group_edit_interval": 0.1,
        "album_delay": 0.2,
        "poll_timeout": 1,
        "shutdown_grace": 2,
        **options,
    }
    bot = TelegramBot(settings, service, **options)
    await bot.start()
    try:
        yield bot
    finally:
        await bot.stop()


@asynccontextmanager
async def real_core(
    sim: Simulator, tg: FakeTelegram, tmp_path: Path, **extra: Any
) -> AsyncIterator[tuple[ConversationService, TelegramBot]]:
    """The real core on the simulator, with the Telegram adapter on the fake."""
    settings = tg_settings(tg, tmp_path, NEMO_API_BASE=sim.base_url, **extra)
    async with (
        open_core(settings, poll_policy=FAST_POLL) as service,
        running(settings, service) as bot,
    ):
        await service.start()
        yield service, bot


def finished(tg: FakeTelegram, chat_id: int, count: int = 1) -> Callable[[], bool]:
    """True once ``count`` bot messages in the chat carry buttons (a reply is complete)."""
    return lambda: sum(1 for m in tg.sent_to(chat_id) if m.result_markup) >= count


# -- unit-sized checks ------------------------------------------------------------------------


def test_split_text_is_lossless_and_within_limits() -> None:
    text = ("line of words " * 40 + "\n") * 30 + "🎬" * 3000
    pieces = split_text(text)
    assert "".join(pieces) == text
    assert all(utf16_len(p) <= 4096 for p in pieces)
    assert len(pieces) >= 3


def test_caps_follow_the_bot_api_server(tmp_path: Path) -> None:
    public = Settings(_env_file=None)  # type: ignore[call-arg]
    assert telegram_limits(public) == (20 * 1024 * 1024, 50 * 1024 * 1024)
    custom = Settings(  # type: ignore[call-arg]
        _env_file=None, TELEGRAM_API_BASE="http://127.0.0.1:8081", NEMO_MAX_UPLOAD_MB=300
    )
    # A custom base URL alone may be a proxy of the public server: public caps.
    assert telegram_limits(custom) == (20 * 1024 * 1024, 50 * 1024 * 1024)
    local = Settings(  # type: ignore[call-arg]
        _env_file=None,
        TELEGRAM_API_BASE="http://127.0.0.1:8081",
        TELEGRAM_LOCAL_MODE=True,
        NEMO_MAX_UPLOAD_MB=300,
    )
    assert telegram_limits(local) == (300 * 1024 * 1024, 2000 * 1024 * 1024)
    small = Settings(_env_file=None, NEMO_MAX_UPLOAD_MB=5)  # type: ignore[call-arg]
    assert telegram_limits(small) == (5 * 1024 * 1024, 50 * 1024 * 1024)


async def test_local_mode_is_explicit_and_reaches_ptb(tg: FakeTelegram, tmp_path: Path) -> None:
    async with running(tg_settings(tg, tmp_path), ScriptedService()) as bot:
        assert not bot.app.bot.local_mode and bot.upload_cap == 50 * 1024 * 1024
    local = tg_settings(tg, tmp_path, TELEGRAM_LOCAL_MODE=True)
    async with running(local, ScriptedService()) as bot:
        assert bot.app.bot.local_mode and bot.upload_cap == 2000 * 1024 * 1024


def test_token_redactor_scrubs_messages_and_tracebacks() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "GET %s", (f"/bot{TOKEN}/x",), None)
    assert TokenRedactor(TOKEN).filter(record)
    assert TOKEN not in record.getMessage()
    try:
        raise RuntimeError(f"https://api.telegram.org/file/bot{TOKEN}/a.jpg")
    except RuntimeError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", None, sys.exc_info())
    TokenRedactor(TOKEN).filter(record)
    assert record.exc_text and TOKEN not in record.exc_text


# -- the adapter with a scripted service ---------------------------------------------------------


async def test_startup_sets_english_and_chinese_commands(tg: FakeTelegram, tmp_path: Path) -> None:
    service = ScriptedService()
    async with running(tg_settings(tg, tmp_path), service) as bot:
        assert service.adapters["telegram"] is bot
        assert bot.app.bot.username == "nemo_test_bot"
    names = [c["command"] for c in tg.commands[None]]
    assert names == [
        "start", "help", "new", "status", "credits", "export", "cancel", "projects", "resend"
    ]  # fmt: skip
    assert (
        "zh" in tg.commands
        and tg.commands["zh"][0]["description"] != tg.commands[None][0]["description"]
    )


async def test_private_prompt_streams_as_a_draft_then_one_message(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    service = ScriptedService()
    async with running(tg_settings(tg, tmp_path), service):
        tg.private_text(7, "make a <b>cat</b> video & more")
        await tg.wait_for(finished(tg, 7))
    [reply] = tg.sent_to(7)
    expected = "[7] make a <b>cat</b> video & more: " + " ".join(f"word{i}" for i in range(20))
    assert reply.text == expected  # HTML-escaped on the wire, shown literally
    assert len(tg.calls_of("sendMessage")) == 1 and not reply.edits
    drafts = [text for chat, _, text in tg.drafts if chat == 7]
    assert 1 <= len(drafts) < 21  # batched, not one draft per chunk
    assert all(expected.startswith(d) for d in drafts)  # growing, in order
    assert len({draft_id for _, draft_id, _ in tg.drafts}) == 1
    assert all(a != b for a, b in itertools.pairwise(drafts))


async def test_private_prompt_streams_into_one_edited_message_without_drafts(
    tmp_path: Path,
) -> None:
    service = ScriptedService()
    async with (
        FakeTelegram(TOKEN, drafts=False) as tg,
        running(tg_settings(tg, tmp_path), service),
    ):
        tg.private_text(7, "make a <b>cat</b> video & more")
        await tg.wait_for(finished(tg, 7))
        tg.private_text(8, "and a dog")  # drafts are not tried again after a 404
        await tg.wait_for(finished(tg, 8))
    assert len(tg.calls_of("sendMessageDraft", ok_only=False)) == 1
    assert len(tg.sent_to(8)) == 1 and tg.sent_to(8)[0].edits
    [reply] = tg.sent_to(7)
    expected = "[7] make a <b>cat</b> video & more: " + " ".join(f"word{i}" for i in range(20))
    assert reply.text == expected  # HTML-escaped on the wire, shown literally
    assert [c.params["chat_id"] for c in tg.calls_of("sendMessage")] == [7, 8]
    assert 1 <= len(reply.edits) < 21  # batched, not one edit per chunk
    assert not [e for e in tg.errors if "not modified" in e[1]]
    shown = [
        (c.params["text"], c.params.get("reply_markup"))
        for c in tg.calls_of("sendMessage") + tg.calls_of("editMessageText")
        if c.params["chat_id"] == 7
    ]
    assert all(a != b for a, b in itertools.pairwise(shown))
    times = [
        c.at
        for c in tg.calls_of("sendMessage") + tg.calls_of("editMessageText")
        if c.params["chat_id"] == 7
    ]
    # The chat earns a call every 0.05 s and may save up 3: n calls span (n - 3) intervals
    # (a little less seen here, when a pause delays one request on its way to the fake).
    assert times[-1] - times[0] >= 0.045 * (len(times) - 3)
    buttons = reply.reply_markup["inline_keyboard"][0]  # type: ignore[index]
    assert [b["callback_data"] for b in buttons] == ["a:export:7", "a:timeline:7", "a:credits:7"]
    msg = service.received[0]
    assert (msg.platform, msg.user_id, msg.chat_id, msg.is_group) == ("telegram", "7", "7", False)
    assert msg.language == "en" and msg.message_id == "1"


async def test_each_request_carries_its_update_id_for_ordering(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    async def quiet(msg: IncomingMessage, replier: Replier) -> None:
        await replier.send_text("ok")

    service = ScriptedService(quiet)
    async with running(tg_settings(tg, tmp_path), service):
        chat, user = tg.private_chat(40), tg.user(40)
        pushed = [
            tg.push({"message": tg.message(chat=chat, user=user, text=text)})
            for text in ("first", "/status")
        ]
        await tg.wait_for(lambda: len(service.received) == 2)
    by_text = {m.text or "/status": m.seq for m in service.received}
    assert by_text == {"first": pushed[0]["update_id"], "/status": pushed[1]["update_id"]}


async def test_commands_map_to_intents(tg: FakeTelegram, tmp_path: Path) -> None:
    async def quiet(msg: IncomingMessage, replier: Replier) -> None:
        await replier.send_text(f"ok {msg.intent}")

    service = ScriptedService(quiet)
    async with running(tg_settings(tg, tmp_path), service):
        for command in ("start", "help", "new a dog video", "status", "credits", "export"):
            tg.private_text(5, f"/{command}")
        await tg.wait_for(lambda: len(tg.sent_to(5)) == 6)
    intents = [m.intent for m in service.received]
    assert intents == [
        Intent.START,
        Intent.HELP,
        Intent.NEW,
        Intent.STATUS,
        Intent.CREDITS,
        Intent.EXPORT,
    ]
    assert service.received[2].text == "a dog video"


async def test_long_reply_is_split_at_4096(tg: FakeTelegram, tmp_path: Path) -> None:
    long = "".join(f"sentence number {i} is here. " for i in range(500))  # ~14k chars

    async def verbose(msg: IncomingMessage, replier: Replier) -> None:
        stream = replier.stream()
        for start in range(0, len(long), 700):
            await stream.append(long[start : start + 700])
        await stream.finish()
        await replier.send_text(long)

    async with running(tg_settings(tg, tmp_path), ScriptedService(verbose)):
        tg.private_text(8, "tell me everything")
        await tg.wait_for(lambda: len(tg.sent_to(8)) >= 8 and not tg.errors, within=15)
        await asyncio.sleep(0.2)
    texts = tg.texts(8)
    assert all(utf16_len(t) <= 4096 for t in texts)
    assert not tg.errors
    half = len(texts) // 2
    assert "".join(texts[:half]).replace(" ", "") == long.replace(" ", "")
    assert "".join(texts[half:]).replace(" ", "") == long.replace(" ", "")


async def test_group_mention_and_reply_answered_other_messages_ignored(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    service = ScriptedService()
    async with running(tg_settings(tg, tmp_path), service):
        tg.group_text(-100, 1, "just chatting with friends")
        asked = tg.group_text(-100, 1, "make a video of the sea", mention=True)
        await tg.wait_for(finished(tg, -100))
        first = tg.sent_to(-100)[0]
        tg.group_text(-100, 2, "and a @someone_else mention")
        followed = tg.group_text(-100, 2, "add seagulls", reply_to_bot=first)
        await tg.wait_for(finished(tg, -100, 2))
    assert [m.text for m in service.received] == ["make a video of the sea", "add seagulls"]
    assert all(m.is_group for m in service.received)
    assert [m.user_id for m in service.received] == ["1", "2"]
    replies = tg.sent_to(-100)
    # each answer quotes its request
    assert [m.reply_to for m in replies] == [asked["message_id"], followed["message_id"]]


async def test_album_arrives_as_one_request(tg: FakeTelegram, tmp_path: Path) -> None:
    got: list[bytes] = []

    async def collect(msg: IncomingMessage, replier: Replier) -> None:
        got.extend([await a.read() for a in msg.attachments])
        await replier.send_text(f"{len(msg.attachments)} files: {msg.text}")

    service = ScriptedService(collect)
    async with running(tg_settings(tg, tmp_path), service):
        chat = tg.private_chat(9)
        tg.photo(chat, 9, b"first-photo", caption="use these", media_group_id="g1")
        tg.photo(chat, 9, b"second-photo", media_group_id="g1")
        await tg.wait_for(lambda: tg.sent_to(9))
    assert tg.texts(9) == ["2 files: use these"]
    assert got == [b"first-photo", b"second-photo"]
    assert len(service.received) == 1


@pytest.fixture(scope="session")
def voice_ogg(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real one-second OGG/Opus voice note, made once per session with the bundled ffmpeg."""
    out = tmp_path_factory.mktemp("voice") / "note.ogg"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error",
            "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
            "-c:a", "libopus", "-b:a", "16k", str(out),
        ],
        check=True, timeout=30,
    )  # fmt: skip
    return out.read_bytes()


async def test_a_voice_note_reaches_the_core_as_m4a(
    tg: FakeTelegram, tmp_path: Path, voice_ogg: bytes
) -> None:
    got: list[tuple[str, str | None, bytes]] = []

    async def collect(msg: IncomingMessage, replier: Replier) -> None:
        got.extend([(a.filename, a.mime_type, await a.read()) for a in msg.attachments])
        await replier.send_text("got it")

    service = ScriptedService(collect)
    async with running(tg_settings(tg, tmp_path), service):
        tg.voice(tg.private_chat(24), 24, voice_ogg)
        await tg.wait_for(lambda: tg.sent_to(24))
    assert voice_ogg[:4] == b"OggS" and b"OpusHead" in voice_ogg
    [(name, mime, data)] = got
    assert name.endswith(".m4a") and mime == "audio/mp4"
    assert data[4:8] == b"ftyp" and b"mp4a" in data  # AAC in an MP4 container
    assert tg.texts(24) == ["got it"]


async def test_a_voice_note_that_cannot_be_converted_gets_a_friendly_answer(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    service = ScriptedService()
    async with running(tg_settings(tg, tmp_path), service):
        tg.voice(tg.private_chat(25), 25, b"OggS but not really an ogg file")
        tg.voice(tg.private_chat(26), 26, b"garbage", language_code="zh-hans")
        await tg.wait_for(lambda: tg.sent_to(25) and tg.sent_to(26))
    assert "couldn't convert your voice message" in tg.texts(25)[0]
    assert "语音" in tg.texts(26)[0]
    assert service.received == []


async def test_a_voice_note_is_uploaded_to_the_backend(
    sim: Simulator, tg: FakeTelegram, tmp_path: Path, voice_ogg: bytes
) -> None:
    async with real_core(sim, tg, tmp_path):
        tg.voice(tg.private_chat(27), 27, voice_ogg)
        await tg.wait_for(lambda: sim.stats["uploads"] >= 1 and tg.sent_to(27), within=15)
    assert sim.stats["uploads"] == 1
    assert_no_secrets_reached(sim)


async def test_an_album_with_one_bad_file_still_uploads_the_rest(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    got: list[bytes] = []

    async def collect(msg: IncomingMessage, replier: Replier) -> None:
        got.extend([await a.read() for a in msg.attachments])
        await replier.send_text(f"{len(msg.attachments)} files: {msg.text}")

    service = ScriptedService(collect)
    async with running(tg_settings(tg, tmp_path), service):
        chat = tg.private_chat(28)
        tg.photo(chat, 28, b"good-photo", caption="use these", media_group_id="g2")
        doc = tg.document(chat, 28, file_name="tool.exe", file_size=100)
        doc["media_group_id"] = "g2"  # (the update is queued; mutate it before PTB reads it)
        tg.photo(chat, 28, b"other-photo", media_group_id="g2")
        await tg.wait_for(lambda: len(tg.sent_to(28)) == 2)
    refusal, answer = tg.texts(28)
    assert "tool.exe" in refusal and "WEBP" in refusal
    assert answer == "2 files: use these"
    assert got == [b"good-photo", b"other-photo"]
    assert not [p for p in tg.downloads if "tool.exe" in p]


async def test_a_failing_album_is_logged_not_lost(
    tg: FakeTelegram, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(tg_settings(tg, tmp_path), ScriptedService()) as bot:

        async def broken(messages: Any) -> None:
            raise RuntimeError(f"album handling exploded near /bot{TOKEN}/")

        bot._handlers._media_request = broken  # type: ignore[method-assign]
        tg.photo(tg.private_chat(29), 29, b"p1", media_group_id="g3")
        await tg.wait_for(lambda: "album handling exploded" in caplog.text)
    assert "background task failed" in caplog.text and TOKEN not in caplog.text


async def test_a_request_cut_short_by_stopping_is_told_so(tg: FakeTelegram, tmp_path: Path) -> None:
    started = asyncio.Event()
    outcome: dict[str, str] = {}

    async def slow(msg: IncomingMessage, replier: Replier) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except BaseException as exc:
            outcome[msg.text] = type(exc).__name__
            raise

    async with running(tg_settings(tg, tmp_path), ScriptedService(slow), shutdown_grace=0.2):
        tg.private_text(32, "a long one")
        await asyncio.wait_for(started.wait(), 10)
    # The request was cancelled after the grace, and its user heard why (not silence).
    assert outcome == {"a long one": "CancelledError"}
    assert any("restarting" in t for t in tg.texts(32)), tg.texts(32)


async def test_stop_cancels_queued_edits(tg: FakeTelegram, tmp_path: Path) -> None:
    async def progress(msg: IncomingMessage, replier: Replier) -> None:
        await replier.progress("Rendering… 10%", 10)
        await asyncio.sleep(0.5)  # the first one is on screen by now
        await replier.progress("Rendering… 20%", 20)  # spends the chat's burst
        await asyncio.sleep(0.5)
        await replier.progress("Rendering… 30%", 30)  # waits ~60 s for the chat's next slot

    async with running(
        tg_settings(tg, tmp_path), ScriptedService(progress), edit_interval=60
    ) as bot:
        tg.private_text(30, "export")
        await tg.wait_for(lambda: tg.sent_to(30) and bot.outbox.pending)
    assert bot.outbox.pending == 0 and bot.outbox.closed
    assert tg.texts(30) == ["Rendering… 20%\n▰▰▱▱▱▱▱▱▱▱"]
    assert len(tg.calls_of("editMessageText")) == 1


async def test_oversized_or_unsupported_files_refused_without_download(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    service = ScriptedService()
    settings = tg_settings(tg, tmp_path, NEMO_MAX_UPLOAD_MB=1)
    async with running(settings, service):
        tg.document(
            tg.private_chat(3),
            3,
            file_name="holiday.mp4",
            file_size=30 * 1024 * 1024,
            caption="use this",
        )
        tg.document(tg.private_chat(4), 4, file_name="tool.exe", file_size=100)
        tg.push_message(
            chat=tg.private_chat(6),
            user=tg.user(6, language_code="zh-hans"),
            document={
                "file_id": "Fx",
                "file_unique_id": "ux",
                "file_name": "a.mkv",
                "file_size": 5 * 1024 * 1024,
            },
        )
        await tg.wait_for(lambda: tg.sent_to(3) and tg.sent_to(4) and tg.sent_to(6))
    assert "too large" in tg.texts(3)[0] and "MP4" in tg.texts(3)[0] and "MOV" in tg.texts(3)[0]
    assert "can't use tool.exe" in tg.texts(4)[0] and "WEBP" in tg.texts(4)[0]
    assert "太大" in tg.texts(6)[0]
    assert not tg.calls_of("getFile") and not tg.downloads
    assert service.received == []


async def test_rate_limited_send_is_retried_not_lost(tg: FakeTelegram, tmp_path: Path) -> None:
    async def say(msg: IncomingMessage, replier: Replier) -> None:
        await replier.send_text("here it is")

    tg.fail("sendMessage", 1, retry_after=1)
    async with running(tg_settings(tg, tmp_path), ScriptedService(say)):
        tg.private_text(11, "hello")
        await tg.wait_for(lambda: tg.sent_to(11))
    assert [c.status for c in tg.calls_of("sendMessage", ok_only=False)] == [429, 200]
    assert tg.texts(11) == ["here it is"]


async def test_flood_limited_chat_gets_every_edit_eventually(
    tmp_path: Path,
) -> None:
    async with FakeTelegram(TOKEN, flood_limit=True) as tg:
        async with running(tg_settings(tg, tmp_path), ScriptedService(), edit_interval=1.0):
            tg.private_text(12, "go")
            await tg.wait_for(finished(tg, 12), within=15)
        assert tg.flood_hits == 0
        assert tg.texts(12)[0].endswith("word19")


async def test_buttons_work_for_their_owner_only(tg: FakeTelegram, tmp_path: Path) -> None:
    service = ScriptedService()
    async with running(tg_settings(tg, tmp_path), service):
        tg.group_text(-200, 21, "a robot dance", mention=True)
        await tg.wait_for(finished(tg, -200))
        reply = tg.sent_to(-200)[0]
        tg.press(22, reply, "a:export:21")
        await tg.wait_for(lambda: tg.calls_of("answerCallbackQuery"))
        await asyncio.sleep(0.1)
        assert len(service.received) == 1
        [refusal] = tg.calls_of("answerCallbackQuery")
        assert refusal.params["show_alert"] is True
        assert "belongs to someone else" in refusal.params["text"]
        tg.press(21, reply, "a:timeline:21")
        await tg.wait_for(lambda: len(service.received) == 2)
    pressed = service.received[1]
    assert (pressed.intent, pressed.user_id, pressed.chat_id) == (Intent.STATUS, "21", "-200")
    assert len(tg.calls_of("answerCallbackQuery")) == 2


async def test_a_crash_in_the_service_apologises_and_logs_no_token(
    tg: FakeTelegram, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom(msg: IncomingMessage, replier: Replier) -> None:
        raise RuntimeError(f"exploded near https://x/bot{TOKEN}/getMe")

    caplog.set_level(logging.DEBUG)
    async with running(tg_settings(tg, tmp_path), ScriptedService(boom)):
        tg.private_text(13, "hi", language_code="zh-hans")
        await tg.wait_for(lambda: tg.sent_to(13))
    assert "出了点问题" in tg.texts(13)[0]
    assert TOKEN not in caplog.text
    assert "exploded" in caplog.text


async def test_video_upload_and_link_fallback(tg: FakeTelegram, tmp_path: Path) -> None:
    mp4 = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 1000

    async def deliver(msg: IncomingMessage, replier: Replier) -> None:
        for percent in (0, 40, 80, 100):
            await replier.progress(f"Rendering... {percent}%", percent)
            await asyncio.sleep(0.06)

        async def fits(limit: int) -> bytes | None:
            return mp4

        async def too_big(limit: int) -> bytes | None:
            return None

        url = "https://cdn.example/v.mp4?a=1&b=2"
        await replier.send_video(Video(url=url, caption="Your <video> " + "x" * 2000, fetch=fits))
        await replier.send_video(Video(url=url, caption="Too big for Telegram", fetch=too_big))

    async with running(tg_settings(tg, tmp_path), ScriptedService(deliver)):
        tg.private_text(14, "export")
        await tg.wait_for(lambda: len(tg.sent_to(14)) == 3)
    progress, video, link = tg.sent_to(14)
    assert progress.text and video.caption and link.text
    assert progress.text.startswith("Rendering... 100%")
    assert video.video == mp4 and video.caption.endswith("\nhttps://cdn.example/v.mp4?a=1&b=2")
    assert video.caption.startswith("Your <video> x") and utf16_len(video.caption) <= 1024
    assert link.text == "Too big for Telegram\nhttps://cdn.example/v.mp4?a=1&b=2"
    assert tg.calls_of("sendChatAction")


async def test_a_failing_video_download_still_delivers_the_link(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    async def deliver(msg: IncomingMessage, replier: Replier) -> None:
        async def broken(limit: int) -> bytes | None:
            raise TimeoutError("the CDN did not answer")

        url = "https://cdn.example/v.mp4"
        await replier.send_video(Video(url=url, caption=f"Ready: {url}", fetch=broken))

    service = ScriptedService(deliver)
    async with running(tg_settings(tg, tmp_path), service):
        tg.private_text(18, "export")
        await tg.wait_for(lambda: tg.sent_to(18))
        await asyncio.sleep(0.1)
    assert tg.texts(18) == ["Ready: https://cdn.example/v.mp4"]
    assert not tg.calls_of("sendVideo", ok_only=False)


async def test_a_long_signed_link_never_overflows_the_caption(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    mp4 = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100
    url = "https://cdn.example/v.mp4?X-Signature=" + "a1B2" * 400  # ~1640 characters

    async def deliver(msg: IncomingMessage, replier: Replier) -> None:
        async def fits(limit: int) -> bytes | None:
            return mp4

        caption = f"🎉 Your video is ready (1080p MP4): {url}"
        await replier.send_video(Video(url=url, caption=caption, summary="3 clips", fetch=fits))

    async with running(tg_settings(tg, tmp_path), ScriptedService(deliver)):
        tg.private_text(19, "export")
        await tg.wait_for(lambda: len(tg.sent_to(19)) == 2)
    video, link = tg.sent_to(19)
    assert [c.status for c in tg.calls_of("sendVideo", ok_only=False)] == [200]
    assert video.video == mp4 and video.caption is not None
    assert video.caption.startswith("🎉 Your video is ready") and "3 clips" in video.caption
    assert url not in video.caption and utf16_len(video.caption) <= 1024
    assert link.text == url  # whole, in a message of its own


async def test_handler_errors_reach_the_error_handler(
    tg: FakeTelegram, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    service = ScriptedService()
    async with running(tg_settings(tg, tmp_path), service):
        tg.private_text(16, "hello")
        await tg.wait_for(finished(tg, 16))
        tg.fail("answerCallbackQuery", 1, error=(400, "Bad Request: query is too old"))
        tg.press(17, tg.sent_to(16)[0], "a:export:16")
        await tg.wait_for(lambda: tg.calls_of("answerCallbackQuery"))
    assert "query is too old" in caplog.text.lower() and TOKEN not in caplog.text
    [apology] = tg.calls_of("answerCallbackQuery")
    assert "went wrong" in apology.params["text"]
    assert len(service.received) == 1


async def test_webhook_mode_checks_the_secret(tg: FakeTelegram, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    service = ScriptedService()
    settings = tg_settings(tg, tmp_path, TELEGRAM_WEBHOOK_SECRET="s3cret-Token_1")
    hook = f"http://127.0.0.1:{port}/tg-hook"
    async with running(settings, service, webhook_url=hook, webhook_port=port):
        assert tg.webhook is not None and tg.webhook["url"] == hook
        assert tg.webhook["secret_token"] == "s3cret-Token_1"
        update = {
            "update_id": 1,
            "message": tg.message(chat=tg.private_chat(15), user=tg.user(15), text="via webhook"),
        }
        async with aiohttp.ClientSession() as http:
            async with http.post(hook, json=update) as response:
                assert response.status == 403
            headers = {"X-Telegram-Bot-Api-Secret-Token": "wrong"}
            async with http.post(hook, json=update, headers=headers) as response:
                assert response.status == 403
            headers = {"X-Telegram-Bot-Api-Secret-Token": "s3cret-Token_1"}
            async with http.post(hook, json=update, headers=headers) as response:
                assert response.status == 200
        await tg.wait_for(finished(tg, 15))
    assert [m.text for m in service.received] == ["via webhook"]
    assert not tg.calls_of("getUpdates")


async def test_webhook_secret_without_a_setting_is_the_same_on_every_replica(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = tg_settings(tg, tmp_path)
    hook = f"http://127.0.0.1:{port}/tg-hook"
    secrets = []
    for _ in range(2):  # two replicas (one after the other: they share the port)
        async with running(settings, ScriptedService(), webhook_url=hook, webhook_port=port):
            assert tg.webhook is not None
            secrets.append(tg.webhook["secret_token"])
    assert secrets[0] == secrets[1] == webhook_secret(settings)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secrets[0]) and TOKEN not in secrets[0]
    other = tg_settings(tg, tmp_path, TELEGRAM_BOT_TOKEN="456:DEF")
    assert webhook_secret(other) != secrets[0]


# -- end to end: the real core and the NemoVideo simulator ---------------------------------------


def assert_no_secrets_reached(sim: Simulator) -> None:
    """Neither the bot token nor a Telegram file URL ever reaches the backend."""
    for request in sim.requests:
        blob = repr(request.as_dict())
        assert TOKEN not in blob and "/file/bot" not in blob and "api.telegram" not in blob


async def test_full_session_generate_edit_upload_status_credits_export(
    sim: Simulator, tg: FakeTelegram, tmp_path: Path, png: bytes
) -> None:
    chat = tg.private_chat(31)
    async with real_core(sim, tg, tmp_path):
        tg.private_text(31, "generate a 10-second clip of a futuristic city at night")
        await tg.wait_for(finished(tg, 31), within=15)
        tg.private_text(31, "add lo-fi background music")
        await tg.wait_for(finished(tg, 31, 2), within=15)
        tg.photo(chat, 31, png, caption="use this as the opening shot")
        await tg.wait_for(finished(tg, 31, 3), within=15)
        tg.private_text(31, "/status")
        await tg.wait_for(finished(tg, 31, 4), within=15)
        tg.private_text(31, "/credits")
        await tg.wait_for(lambda: any("available" in t.lower() for t in tg.texts(31)))
        tg.private_text(31, "/export")
        await tg.wait_for(lambda: tg.calls_of("sendVideo"), within=20)
    texts = tg.texts(31)
    assert any(t.startswith("Timeline (") for t in texts)
    assert any("Added" in t for t in texts)
    [video_call] = tg.calls_of("sendVideo")
    assert video_call.params["chat_id"] == 31 and video_call.files["video"][4:8] == b"ftyp"
    progress = [m for m in tg.sent_to(31) if m.text and "%" in m.text]
    assert progress and progress[-1].text and "100%" in progress[-1].text
    assert sim.stats["uploads"] >= 1
    assert tg.calls_of("getFile") and tg.downloads
    assert_no_secrets_reached(sim)
    assert not [e for e in tg.errors if "not modified" in e[1]]
    methods: list[str] = []
    for call in tg.calls:
        if call.method != "getUpdates" and (not methods or methods[-1] != call.method):
            methods.append(call.method)
    print("Bot API calls:", " ".join(methods))


async def test_failed_download_is_reported_without_leaking_the_url(
    sim: Simulator, tg: FakeTelegram, tmp_path: Path, png: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with real_core(sim, tg, tmp_path):
        photo = tg.photo(tg.private_chat(81), 81, png, caption="use it")
        tg.broken_downloads.update(tg.file_paths())
        await tg.wait_for(lambda: tg.sent_to(81), within=10)
    assert tg.downloads and photo["photo"][-1]["file_id"]
    assert "download" in tg.texts(81)[0].lower()
    assert TOKEN not in caplog.text
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert loud and not [r for r in loud if "/file/bot" in (r.getMessage() + (r.exc_text or ""))]
    assert not [r for r in sim.requests if r.endpoint == "upload"]
    assert_no_secrets_reached(sim)


async def test_forum_topic_export_lands_in_the_topic(
    sim: Simulator, tg: FakeTelegram, tmp_path: Path
) -> None:
    async with real_core(sim, tg, tmp_path):
        tg.group_text(
            -300, 41, "make a clip of a sunrise over mountains", mention=True, thread_id=77
        )
        await tg.wait_for(finished(tg, -300), within=15)
        reply = tg.sent_to(-300)[0]
        tg.press(41, reply, "a:export:41")
        await tg.wait_for(lambda: tg.calls_of("sendVideo"), within=20)
    assert all(m.thread_id == 77 for m in tg.sent_to(-300))
    [video] = tg.calls_of("sendVideo")
    assert video.params["message_thread_id"] == 77 and video.params["chat_id"] == -300
    edits = [c for c in tg.calls_of("editMessageText") if "%" in c.params["text"]]
    assert edits, "progress is edited in place"


async def test_two_users_in_one_group_get_separate_sessions(
    sim: Simulator, tg: FakeTelegram, tmp_path: Path
) -> None:
    async with real_core(sim, tg, tmp_path):
        tg.group_text(-400, 51, "make a video of a cat", mention=True)
        tg.group_text(-400, 52, "make a video of a dog", mention=True)
        await tg.wait_for(finished(tg, -400, 2), within=15)
        tg.group_text(-400, 51, "/status")
        tg.group_text(-400, 52, "/status")
        await tg.wait_for(finished(tg, -400, 4), within=15)
    assert len(sim.sessions) == 2
    session_tokens = {
        r.headers.get("Authorization") for r in sim.requests if r.endpoint == "session"
    }
    assert len(session_tokens) == 2
    summaries: dict[str, list[str]] = {}
    for m in tg.sent_to(-400):
        if m.text and m.text.startswith("Timeline") and m.reply_markup:
            owner = m.reply_markup["inline_keyboard"][0][0]["callback_data"]
            summaries.setdefault(owner, []).append(m.text.lower())
    assert set(summaries) == {"a:export:51", "a:export:52"}
    assert all("cat" in t and "dog" not in t for t in summaries["a:export:51"])
    assert all("dog" in t and "cat" not in t for t in summaries["a:export:52"])


async def test_unallowed_user_is_refused_through_the_service(
    sim: Simulator, tg: FakeTelegram, tmp_path: Path
) -> None:
    async with real_core(sim, tg, tmp_path, NEMO_ALLOWED_USERS="1"):
        tg.private_text(61, "make a video")
        await tg.wait_for(lambda: tg.sent_to(61))
    assert "private" in tg.texts(61)[0].lower()
    assert not [r for r in sim.requests if r.endpoint == "chat"]


async def test_render_finished_after_a_restart_is_delivered_to_its_topic(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    async with Simulator(fast_sim_config(render_seconds=3.0)) as sim:
        async with real_core(sim, tg, tmp_path):
            tg.group_text(-500, 71, "make a clip of waves", mention=True, thread_id=9)
            await tg.wait_for(finished(tg, -500), within=15)
            export = tg.group_text(-500, 71, "/export", thread_id=9)
            await tg.wait_for(lambda: any("%" in (m.text or "") for m in tg.sent_to(-500)))
        assert not tg.calls_of("sendVideo")
        async with real_core(sim, tg, tmp_path):  # a new process: same database
            await tg.wait_for(lambda: tg.calls_of("sendVideo"), within=20)
    [video] = tg.calls_of("sendVideo")
    assert (video.params["chat_id"], video.params["message_thread_id"]) == (-500, 9)
    assert video.params["reply_parameters"]["message_id"] == export["message_id"]


async def test_channels_and_anonymous_admins_are_users_of_their_own(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    service = ScriptedService()
    channel_bot = {
        "id": 136817688,
        "is_bot": True,
        "first_name": "Channel",
        "username": "Channel_Bot",
    }
    anonymous = {
        "id": 1087968824,
        "is_bot": True,
        "first_name": "Group",
        "username": "GroupAnonymousBot",
    }
    chat = tg.group_chat(-100500)
    senders = [
        (channel_bot, {"id": -1001, "type": "channel", "title": "Cats"}),
        (channel_bot, {"id": -1002, "type": "channel", "title": "Dogs"}),
        (anonymous, {"id": -100500, "type": "supergroup", "title": "The group"}),
    ]
    async with running(tg_settings(tg, tmp_path), service):
        for user, sender_chat in senders:
            tg.push_message(
                chat=chat, user=user, text="@nemo_test_bot a video", sender_chat=sender_chat
            )
        await tg.wait_for(finished(tg, -100500, 3))
        replies = tg.sent_to(-100500)
        owners = {
            m.reply_markup["inline_keyboard"][0][0]["callback_data"]
            for m in replies
            if m.reply_markup
        }
        # Nobody can press a button owned by a channel: presses come from people.
        tg.press(136817688, replies[0], "a:export:-1001")
        tg.press(21, replies[0], "a:export:-1001")
        await tg.wait_for(lambda: len(tg.calls_of("answerCallbackQuery")) == 2)
        await asyncio.sleep(0.1)
    assert [(m.user_id, m.user_display) for m in service.received] == [
        ("-1001", "Cats"),
        ("-1002", "Dogs"),
        ("-100500", "The group"),
    ]
    assert owners == {"a:export:-1001", "a:export:-1002", "a:export:-100500"}
    assert len(service.received) == 3
    for answer in tg.calls_of("answerCallbackQuery"):
        assert answer.params["show_alert"] is True
        assert "Post as yourself" in answer.params["text"]


async def test_a_video_note_is_an_mp4_and_a_sticker_gets_told_what_works(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    service = ScriptedService()
    note = {
        "file_id": tg.add_file(b"round-video", file_path="video_notes/file_1.mp4"),
        "file_unique_id": "vn1",
        "length": 240,
        "duration": 1,
        "file_size": 11,
    }
    sticker = {
        "file_id": "st1",
        "file_unique_id": "st1u",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
    }
    async with running(tg_settings(tg, tmp_path), service):
        tg.push_message(chat=tg.private_chat(7), user=tg.user(7), video_note=note)
        await tg.wait_for(lambda: service.received)
        clip = service.received[0].attachments[0]
        data = await clip.read()
        tg.push_message(
            chat=tg.private_chat(8), user=tg.user(8, language_code="zh"), sticker=sticker
        )
        tg.push_message(
            chat=tg.private_chat(9), user=tg.user(9), location={"latitude": 1.0, "longitude": 2.0}
        )
        await tg.wait_for(lambda: tg.texts(8) and tg.texts(9))
    assert clip.filename == "video_note_vn1.mp4" and clip.mime_type == "video/mp4"
    assert data == b"round-video"
    assert len(service.received) == 1  # nothing else reaches the core
    assert "图片" in tg.texts(8)[0] and "MP4" in tg.texts(8)[0]
    assert "photos, clips and audio" in tg.texts(9)[0]


async def test_stopping_hands_on_an_album_still_being_collected(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    got: list[bytes] = []

    async def collect(msg: IncomingMessage, replier: Replier) -> None:
        got.extend([await a.read() for a in msg.attachments])
        await replier.send_text(f"{len(msg.attachments)} files: {msg.text}")

    service = ScriptedService(collect)
    async with running(tg_settings(tg, tmp_path), service, album_delay=30) as bot:
        chat = tg.private_chat(31)
        tg.photo(chat, 31, b"first", caption="both of these", media_group_id="g9")
        tg.photo(chat, 31, b"second", media_group_id="g9")
        albums = bot._handlers._albums._albums
        await tg.wait_for(lambda: sum(len(a.messages) for a in albums.values()) == 2)
    # Stopping did not wait the 30 s out, nor drop the album: it went on, and was answered.
    assert tg.texts(31) == ["2 files: both of these"]
    assert got == [b"first", b"second"]


async def test_at_most_four_voice_conversions_run_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "runs.log"
    fake_ffmpeg = tmp_path / "ffmpeg"
    fake_ffmpeg.write_text(
        "#!/bin/sh\n"
        f"echo start >> {log}\n"
        "cat > /dev/null\n"
        "sleep 0.3\n"
        'for arg; do out="$arg"; done\n'
        'printf m4a > "$out"\n'
        f"echo end >> {log}\n"
    )
    fake_ffmpeg.chmod(0o755)
    monkeypatch.setattr(audio, "_ffmpeg", lambda: str(fake_ffmpeg))
    results = await asyncio.gather(*(audio.to_m4a(b"ogg") for _ in range(6)))
    assert results == [b"m4a"] * 6
    running = peak = 0
    for line in log.read_text().split():
        running += 1 if line == "start" else -1
        peak = max(peak, running)
    assert peak == audio.MAX_PARALLEL == 4


async def test_a_cancellation_while_killing_ffmpeg_is_not_swallowed() -> None:
    class StuckProcess:
        def kill(self) -> None:
            pass

        async def wait(self) -> int:
            await asyncio.Event().wait()
            return -9

    killing = asyncio.create_task(audio._kill(StuckProcess()))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    killing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await killing


async def test_a_delivery_after_a_restart_speaks_the_users_language(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    async with running(tg_settings(tg, tmp_path), ScriptedService()) as bot:
        ref = IncomingMessage(
            platform="telegram", user_id="33", chat_id="33", message_id="5", language="zh"
        ).ref()
        await bot.replier_for(ref).send_text("好了", actions=DEFAULT_ACTIONS)
    [reply] = tg.sent_to(33)
    labels = [b["text"] for b in reply.reply_markup["inline_keyboard"][0]]  # type: ignore[index]
    assert labels == ["🎬 导出", "🧾 时间线", "💳 积分"]
