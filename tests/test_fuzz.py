"""Bad input, fuzzed: no exception escapes the parsers, whatever the backend or a user sends.

Hypothesis drives the SSE parser (any text, split anywhere), the ADK event decoder,
the draft parser, the envelope parser and the typed readers of every reply, the
intent router, the GUI sentence buffer and the chat platforms' text splitters.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bots.discord_adapter.texts import split_text as discord_split
from bots.telegram.format import escape, parse_callback, utf16_len
from bots.telegram.format import split_text as telegram_split
from core.draft import Draft, diff_drafts
from core.envelope import parse_retry_after, unwrap, unwrap_render_status
from core.errors import ApiError
from core.events import EventDecoder, SSEChatDecoder
from core.gui import SentenceBuffer
from core.router import normalize, route
from core.types import Intent
from core.wire import (
    AnonToken,
    Credits,
    RenderStatus,
    SessionInfo,
    SessionState,
    UploadResult,
)

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))

# Text with the characters that break naive code: newlines of every kind, RTL and
# zero-width marks, emoji (astral plane), NUL, lone surrogates are excluded by UTF-8.
NASTY = st.sampled_from(
    [
        "\n",
        "\r",
        "\r\n",
        "\u2028",
        "\u202e",
        "\u200b",
        "\ufeff",
        "🎬",
        "👨‍👩‍👧",
        "\x00",
        "data:",
        ":",
    ]
)
TEXT = st.lists(st.one_of(st.text(max_size=20), NASTY), max_size=20).map("".join)

# Keys the readers look for, so the fuzzer reaches past the first ``if``.
KEYS = st.sampled_from(
    [
        "code",
        "message",
        "msg",
        "data",
        "success",
        "error",
        "status",
        "progress",
        "output",
        "outputUrl",
        "url",
        "token",
        "user_id",
        "expires_at",
        "credits",
        "available",
        "frozen",
        "total",
        "files",
        "filename",
        "duration",
        "width",
        "height",
        "state",
        "draft",
        "t",
        "tt",
        "sg",
        "d",
        "m",
        "title",
        "text",
        "volume",
        "content",
        "parts",
        "partial",
        "functionCall",
        "functionResponse",
        "thought",
        "turnComplete",
        "errorCode",
        "errorMessage",
        "type",
        "session_id",
        "task_id",
        "st",
        "start",
    ]
)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=True, allow_infinity=True)
    | TEXT,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT | KEYS, inner, max_size=6),
    max_leaves=30,
)
ADK = st.fixed_dictionaries(
    {},
    optional={
        "content": st.fixed_dictionaries(
            {"parts": st.lists(st.dictionaries(KEYS, JSON, max_size=4), max_size=4)}
        ),
        "partial": st.booleans(),
        "turnComplete": st.booleans(),
        "type": st.sampled_from(["text", "heartbeat", "error", "done", "tool_call", "x"]),
        "error": JSON,
        "errorCode": JSON,
    },
)


def _sse_lines(events: list[Any]) -> str:
    out = []
    for event in events:
        if isinstance(event, str):
            out.append(f": {event}\n\n")  # a comment (heartbeat)
        else:
            out.append(f"data: {json.dumps(event)}\n\n")
    return "".join(out)


@FUZZ
@given(text=TEXT, cuts=st.lists(st.integers(0, 400), max_size=8))
def test_sse_parser_takes_any_text_split_anywhere(text: str, cuts: list[int]) -> None:
    whole = SSEChatDecoder()
    expected = whole.feed(text) + whole.close()
    pieces = SSEChatDecoder()
    got = []
    last = 0
    for cut in sorted(c % (len(text) + 1) for c in cuts):
        got += pieces.feed(text[last:cut])
        last = cut
    got += pieces.feed(text[last:]) + pieces.close()
    assert got == expected  # how the bytes were chunked never changes what is seen


@FUZZ
@given(events=st.lists(ADK | TEXT, max_size=8), cuts=st.lists(st.integers(0, 2000), max_size=6))
def test_sse_parser_on_adk_shaped_streams(events: list[Any], cuts: list[int]) -> None:
    stream = _sse_lines(events)
    decoder = SSEChatDecoder()
    last = 0
    for cut in sorted(c % (len(stream) + 1) for c in cuts):
        decoder.feed(stream[last:cut])
        last = cut
    decoder.feed(stream[last:])
    decoder.close()


@FUZZ
@given(objs=st.lists(JSON | ADK, max_size=6))
def test_event_decoder_takes_any_json(objs: list[Any]) -> None:
    decoder = EventDecoder()
    for obj in objs:
        decoder.feed_obj(obj)
        decoder.feed(json.dumps(obj, allow_nan=True))


@FUZZ
@given(obj=JSON, other=JSON)
def test_draft_parser_summary_and_diff_take_any_json(obj: Any, other: Any) -> None:
    draft = Draft.from_json(obj)
    assert isinstance(draft.summary(), str)
    assert isinstance(draft.is_exportable, bool)
    assert isinstance(draft.duration_ms, int)
    assert all(isinstance(line, str) for line in diff_drafts(Draft.from_json(other), draft))
    assert diff_drafts(None, draft) is not None


DRAFTS = st.fixed_dictionaries(
    {
        "t": st.lists(
            st.fixed_dictionaries(
                {
                    "tt": st.sampled_from([0, 1, 7, 3, "0", None, -1]),
                    "sg": st.lists(st.dictionaries(KEYS, JSON, max_size=5), max_size=4),
                },
                optional={"m": st.dictionaries(KEYS, JSON, max_size=4)},
            ),
            max_size=4,
        )
    },
    optional={"m": st.dictionaries(KEYS, JSON, max_size=4)},
)


@FUZZ
@given(obj=DRAFTS, other=DRAFTS)
def test_draft_parser_on_draft_shaped_json(obj: Any, other: Any) -> None:
    draft = Draft.from_json(obj)
    draft.summary()
    diff_drafts(Draft.from_json(other), draft)
    Draft.from_json(json.dumps(obj, allow_nan=True))


READERS = (AnonToken, Credits, RenderStatus, SessionInfo, SessionState, UploadResult)


@FUZZ
@given(
    status=st.sampled_from([200, 201, 400, 401, 402, 404, 429, 500, 502, 503, 999]),
    body=JSON | st.dictionaries(KEYS, JSON, max_size=6),
    raw=st.binary(max_size=64),
    retry_after=st.none() | TEXT,
)
def test_envelope_parser_returns_or_raises_an_api_error(
    status: int, body: Any, raw: bytes, retry_after: str | None
) -> None:
    for candidate in (body, json.dumps(body, allow_nan=True).encode(), raw):
        for unwrapper in (unwrap, unwrap_render_status):
            try:
                data = unwrapper(status, candidate, retry_after=retry_after, secrets=("nmv_x",))
            except ApiError as exc:
                assert "nmv_x" not in str(exc)
                continue
            for reader in READERS:
                try:
                    reader.from_data(data)
                except ApiError:
                    # by design: a token / session reply without its one required field
                    assert reader in (AnonToken, SessionInfo)
    assert parse_retry_after(retry_after) >= 0


@FUZZ
@given(text=TEXT | st.text(max_size=60), attached=st.booleans())
def test_router_takes_any_text(text: str, attached: bool) -> None:
    intent = route(text, has_attachments=attached)
    assert isinstance(intent, Intent)
    assert isinstance(normalize(text), str)
    if attached:
        assert intent is Intent.UPLOAD


@FUZZ
@given(chunks=st.lists(TEXT, max_size=10))
def test_sentence_buffer_takes_any_chunks(chunks: list[str]) -> None:
    buffer = SentenceBuffer()
    out = "".join(buffer.feed(c) for c in chunks) + buffer.flush()
    assert isinstance(out, str)


@FUZZ
@given(text=TEXT | st.text(min_size=3000, max_size=5000), data=st.none() | TEXT)
def test_chat_platform_text_helpers_take_any_text(text: str, data: str | None) -> None:
    pieces = telegram_split(text)
    assert "".join(pieces) == text
    assert all(utf16_len(p) <= 4096 for p in pieces)
    assert "<" not in escape(text) and ">" not in escape(text)
    parse_callback(data)
    assert all(len(p) <= 2000 for p in discord_split(text))


# ----------------------------------------------- bad input end to end: Telegram + real core

INJECTION = (
    "make a video of <b>bold</b> & <i>x</i> <script>alert(1)</script> "
    "*stars* _under_ `code` [link](http://evil.example) \u202eRTL 🎬👨‍👩‍👧"
)


async def test_bad_input_end_to_end_through_telegram(tmp_path: Path, png: bytes) -> None:
    from bots.telegram_bot import TelegramBot
    from core.app import open_core
    from core.config import Settings
    from core.polling import PollPolicy
    from simulator.server import Simulator
    from tests.conftest import fast_sim_config
    from tests.fakes.telegram_server import FakeTelegram

    async with (
        FakeTelegram("777:bad-input-token") as tg,
        Simulator(fast_sim_config()) as sim,
    ):
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            TELEGRAM_BOT_TOKEN=tg.token,
            TELEGRAM_API_BASE=tg.base_url,
            NEMO_API_BASE=sim.base_url,
            NEMO_BOT_DB=tmp_path / "bot.db",
        )
        poll = PollPolicy(min_interval=0.05, max_interval=0.2, first_delay=0.05)
        async with open_core(settings, poll_policy=poll) as service:
            bot = TelegramBot(
                settings, service, edit_interval=0.02, album_delay=0.1, poll_timeout=1
            )
            await bot.start()
            try:
                chat = tg.private_chat(401)
                asked = 0

                async def ask(send: Any) -> None:
                    nonlocal asked
                    send()
                    asked += 1
                    await tg.wait_for(lambda: len(tg.sent_to(401)) >= asked, within=15)
                    await asyncio.sleep(0.15)  # let edits settle

                def send_document(name: str, mime: str, data: bytes) -> None:
                    # Telegram names stored files itself; the user's file name is metadata.
                    file_id = tg.add_file(data, file_path=f"documents/file_{len(tg.calls)}")
                    document = {
                        "file_id": file_id,
                        "file_unique_id": f"u{file_id}",
                        "file_name": name,
                        "mime_type": mime,
                        "file_size": len(data),
                    }
                    tg.push_message(chat=chat, user=tg.user(401), document=document)

                await ask(lambda: tg.private_text(401, "a " * 2040 + "giant"))
                await ask(lambda: tg.private_text(401, INJECTION))
                await ask(lambda: tg.private_text(401, " \n\t "))
                for name, mime, data in (
                    ("empty.mp4", "video/mp4", b""),
                    ("holiday.png", "application/x-msdownload", b"MZ\x90\x00" * 64),
                    ("evil.exe", "image/png", png),
                    ("\u202egnp.exe", "image/png", png),
                    ("../../etc/passwd.jpg", "image/jpeg", png),
                    ("C:\\temp\\shot.png", "image/png", png),
                ):
                    await ask(lambda n=name, m=mime, d=data: send_document(n, m, d))
                await service.wait_idle()
            finally:
                await bot.stop()
        texts = tg.texts(401)
        uploaded = [
            str(info.get("filename") or info.get("name") or "")
            for session in sim.sessions.values()
            for info in session.video_infos
        ]
    joined = "\n".join(texts)
    assert not tg.errors, tg.errors  # every message parsed; nothing too long, nothing empty
    assert len(texts) >= 9
    assert "Traceback" not in joined and "Something went wrong" not in joined
    assert "Tell me what video to make" in joined  # the blank message
    assert "empty" in joined.lower()  # the zero-byte file
    assert "can't use evil.exe" in joined  # refused by name, before download
    assert len(tg.downloads) == 4  # the two .exe files were never downloaded
    assert "can't use holiday.png" in joined  # a program named .png is not uploaded
    assert "Added passwd.jpg" in joined and "Added shot.png" in joined
    # the injected markup reaches the user literally, never as markup
    echoed = [t for t in texts if "bold" in t]
    assert all("<b>bold</b>" in t for t in echoed), echoed
    # path-like names are cut to their last component before they leave the bot
    assert all("/" not in n and "\\" not in n and ".." not in n for n in uploaded), uploaded


@pytest.fixture(scope="module")
def png() -> bytes:
    from simulator import media

    return media.sample_image().read_bytes()
