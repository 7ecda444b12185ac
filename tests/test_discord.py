"""The Discord adapter end to end: the real discord.py client over HTTP and WebSocket
against a local fake of Discord (tests/fakes/discord_server.py), and the real
conversation service against the NemoVideo simulator.

Slash commands can't be driven by dpytest, so the fake dispatches real
INTERACTION_CREATE events and records every REST call the bot makes.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import discord
import pytest
from pydantic import SecretStr

from bots.discord_adapter import DiscordBot, DiscordReplier, run_discord
from bots.discord_adapter.editable import EditableMessage
from bots.discord_adapter.progresses import unbutton
from bots.discord_adapter.texts import progress_text, split_text
from bots.discord_adapter.views import custom_id
from core.app import open_core
from core.config import Settings, SettingsError
from core.polling import PollPolicy
from core.service import ConversationService
from core.types import Action, IncomingMessage, Intent, Replier, Video
from simulator import media
from simulator.server import Simulator
from tests.fakes.discord_server import FakeDiscord, Recorded

TOKEN = "discord-test-token-do-not-log"
FAST_POLL = PollPolicy(min_interval=0.05, max_interval=0.2, first_delay=0.05)
EDIT_INTERVAL = 0.1


# ---------------------------------------------------------------------- harness


def discord_settings(fake: FakeDiscord, tmp_path: Path, **extra: Any) -> Settings:
    """Settings that point the bot at the fake (and, with NEMO_API_BASE, at the simulator)."""
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        DISCORD_BOT_TOKEN=SecretStr(TOKEN),
        DISCORD_API_BASE=fake.api_base,
        DISCORD_GATEWAY_URL=fake.gateway_url,
        NEMO_BOT_DB=tmp_path / "bot.db",
        **extra,
    )


@asynccontextmanager
async def running_bot(
    fake: FakeDiscord, settings: Settings, service: Any, **options: Any
) -> AsyncIterator[DiscordBot]:
    """Start a DiscordBot against the fake; yield it once it is ready; close it after."""
    options.setdefault("edit_interval", EDIT_INTERVAL)
    bot = DiscordBot(settings, service, guild_ready_timeout=0.05, **options)
    task = asyncio.create_task(bot.start(TOKEN))
    try:
        async with asyncio.timeout(10):
            waiter = asyncio.create_task(bot.adapter.ready.wait())
            done, _ = await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                waiter.cancel()
                task.result()
        yield bot
    finally:
        await bot.close()
        await asyncio.wait_for(task, 10)


@asynccontextmanager
async def real_core(
    sim: Simulator, fake: FakeDiscord, tmp_path: Path, **extra: Any
) -> AsyncIterator[tuple[ConversationService, Settings]]:
    """The real service (SQLite + NemoVideo client) against the simulator."""
    settings = discord_settings(fake, tmp_path, NEMO_API_BASE=sim.base_url, **extra)
    async with open_core(settings, poll_policy=FAST_POLL) as service:
        yield service, settings


def is_callback(rec: Recorded) -> bool:
    return rec.method == "POST" and rec.path.endswith("/callback")


def original_edits(payload: dict[str, Any]) -> Any:
    token = payload["token"]
    return lambda r: r.method == "PATCH" and f"/{token}/messages/@original" in r.path


def answered_with_buttons(payload: dict[str, Any]) -> Any:
    """The interaction's answer carrying buttons: the original response or a followup."""
    token = payload["token"]
    return lambda r: (
        f"/webhooks/{payload['application_id']}/{token}" in r.path and bool(custom_ids(r))
    )


def content_of(rec: Recorded) -> str:
    payload = rec.payload
    return str(payload.get("content") or "") if isinstance(payload, dict) else ""


def all_custom_ids(rec: Recorded) -> list[str]:
    """Every button's ``custom_id`` in a recorded post or edit."""
    payload = rec.payload
    rows = (payload.get("components") or []) if isinstance(payload, dict) else []
    return [c["custom_id"] for row in rows for c in row.get("components", [])]


def custom_ids(rec: Recorded) -> list[str]:
    """The buttons of a finished reply (a running reply's Cancel button left out)."""
    return [c for c in all_custom_ids(rec) if not c.startswith("nemo:cancel:")]


class ScriptedService:
    """A stand-in core: records requests and answers with a scripted coroutine."""

    def __init__(self, script: Any = None) -> None:
        self.messages: list[IncomingMessage] = []
        self.adapters: list[Any] = []
        self.repliers: list[Replier] = []
        self.script = script
        self.done = asyncio.Event()

    def register_adapter(self, adapter: Any) -> None:
        self.adapters.append(adapter)

    async def handle(self, msg: IncomingMessage, replier: Replier) -> None:
        self.messages.append(msg)
        self.repliers.append(replier)
        try:
            if self.script is not None:
                await self.script(msg, replier)
            else:
                await replier.send_text(f"echo: {msg.text}", actions=(Action.EXPORT,))
        finally:
            self.done.set()


# ---------------------------------------------------------------------- start-up


async def test_login_sync_and_gateway_use_the_configured_endpoints(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    service = ScriptedService()
    async with running_bot(fake, discord_settings(fake, tmp_path), service) as bot:
        assert bot.user is not None and str(bot.user.id) == fake.bot_user["id"]
        assert service.adapters == [bot.adapter]
        assert bot.get_guild(int(fake.guild_id)) is not None
    paths = [str(r) for r in fake.requests]
    assert paths[:3] == [
        "GET /api/v10/users/@me",
        "GET /api/v10/oauth2/applications/@me",
        f"PUT /api/v10/applications/{fake.app_id}/commands",
    ]
    identify = fake.identifies[0]
    assert identify["token"] == TOKEN
    assert identify["intents"] & (1 << 15) == 0  # no privileged message-content intent


async def test_command_sync_payload_has_a_description_in_every_language(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    async with running_bot(fake, discord_settings(fake, tmp_path), ScriptedService()):
        pass
    (sync,) = fake.find("PUT", f"/applications/{fake.app_id}/commands")
    commands = {c["name"]: c for c in sync.json}
    assert set(commands) == {
        "video",
        "upload",
        "export",
        "status",
        "credits",
        "new",
        "help",
        "projects",
        "open",
        "resend",
        "stats",
        "cancel",
    }
    for command in commands.values():
        assert command["description"]
        assert set(command["description_localizations"]) == {
            "zh-CN",
            "zh-TW",
            "es-ES",
            "es-419",
            "pt-BR",
            "ru",
            "id",
        }
        assert "name_localizations" not in command or not command["name_localizations"]
    video = commands["video"]
    assert video["description"] == "Generate a video, or edit the current one"
    assert video["description_localizations"] == {
        "zh-CN": "生成视频，或修改当前视频",
        "zh-TW": "生成视频，或修改当前视频",
        "es-ES": "Genera un video o edita el actual",
        "es-419": "Genera un video o edita el actual",
        "pt-BR": "Gere um vídeo ou edite o atual",
        "ru": "Создать видео или изменить текущее",
        "id": "Buat video, atau edit video saat ini",
    }
    options = {o["name"]: o for o in video["options"]}
    assert options["prompt"]["type"] == 3 and options["prompt"]["required"] is True
    assert options["image"]["type"] == 11 and not options["image"].get("required")
    assert options["clip"]["type"] == 11
    assert options["prompt"]["description_localizations"]["zh-CN"] == "想生成或修改的内容"
    assert options["prompt"]["description_localizations"]["ru"] == "Что сделать или изменить"
    upload = {o["name"]: o for o in commands["upload"]["options"]}
    assert upload["file"]["type"] == 11 and upload["file"]["required"] is True
    assert upload["note"]["type"] == 3


# ---------------------------------------------------------------------- with the real core


async def test_video_is_deferred_at_once_then_answered_with_buttons(
    sim: Simulator, fake: FakeDiscord, tmp_path: Path
) -> None:
    async with (
        real_core(sim, fake, tmp_path) as (service, settings),
        running_bot(fake, settings, service),
    ):
        sent_at = time.monotonic()
        payload = await fake.slash(
            "video", {"prompt": "make a 10-second clip of a futuristic city at night"}
        )
        (callback,) = await fake.wait_for(is_callback)
        assert callback.at - sent_at < 3.0
        assert callback.path == f"/api/v10/interactions/{payload['id']}/{payload['token']}/callback"
        assert callback.json == {"type": 5}  # deferred, public "thinking"
        # The streamed answer fills the original response; the last edit carries the buttons.
        (final,) = await fake.wait_for(answered_with_buttons(payload), within=20)
    assert content_of(final).strip()
    alice = fake.alice["id"]
    assert custom_ids(final) == [
        custom_id(Action.EXPORT, int(alice)),
        custom_id(Action.TIMELINE, int(alice)),
        custom_id(Action.CREDITS, int(alice)),
    ]
    every_edit = [r for r in fake.requests if original_edits(payload)(r)]
    contents = [content_of(r) for r in every_edit]
    for (a, b), later in zip(itertools.pairwise(contents), every_edit[1:], strict=True):
        assert a != b or custom_ids(later)  # never an edit that changes nothing
    assert sim.stats["chat"] >= 1


async def test_video_with_an_image_option_uploads_it_to_the_backend(
    sim: Simulator, fake: FakeDiscord, tmp_path: Path
) -> None:
    png = media.sample_image().read_bytes()
    image = fake.attachment("city.png", png, "image/png")
    async with (
        real_core(sim, fake, tmp_path) as (service, settings),
        running_bot(fake, settings, service),
    ):
        payload = await fake.slash(
            "video", {"prompt": "use this photo as the opening shot"}, attachments={"image": image}
        )
        await fake.wait_for(answered_with_buttons(payload), within=20)
    assert fake.find("GET", f"/cdn/{image['id']}/city.png")  # downloaded from Discord's CDN
    assert sim.stats["uploads"] == 1
    assert sim.stats["upload_bytes"] == len(png)
    assert sim.stats["chat"] >= 1  # the prompt followed the upload


async def test_a_mention_in_the_server_is_answered_in_the_channel(
    sim: Simulator, fake: FakeDiscord, tmp_path: Path
) -> None:
    async with (
        real_core(sim, fake, tmp_path) as (service, settings),
        running_bot(fake, settings, service),
    ):
        mention = f"<@{fake.bot_user['id']}> make a 10-second clip of a futuristic city at night"
        message = await fake.user_message(mention)
        posts = await fake.wait_for(
            lambda r: (
                r.method == "POST" and r.path.endswith(f"/channels/{fake.channel_id}/messages")
            )
        )
        first = posts[0].json
        assert str(first["message_reference"]["message_id"]) == message["id"]
        assert first["allowed_mentions"]["parse"] == []
        await fake.wait_for(
            lambda r: (
                r.path.startswith(f"/api/v10/channels/{fake.channel_id}/messages")
                and bool(custom_ids(r))
            ),
            within=20,
        )
    assert any(str(r) == f"POST /api/v10/channels/{fake.channel_id}/typing" for r in fake.requests)


async def test_export_edits_progress_then_attaches_the_mp4(
    sim: Simulator, fake: FakeDiscord, tmp_path: Path
) -> None:
    async with (
        real_core(sim, fake, tmp_path) as (service, settings),
        running_bot(fake, settings, service),
    ):
        first = await fake.slash("video", {"prompt": "make a 10-second clip of a city at night"})
        await fake.wait_for(answered_with_buttons(first), within=20)
        export = await fake.slash("export")
        done = await fake.wait_for(lambda r: original_edits(export)(r) and bool(r.files), within=20)
    edits = [r for r in fake.requests if original_edits(export)(r)]
    assert "%" in content_of(edits[0])  # progress first, in the same message
    final = done[0]
    (mp4,) = final.files
    assert mp4.filename == "nemo-video.mp4" and mp4.data[4:8] == b"ftyp"
    assert final.payload["embeds"][0]["description"]  # the timeline summary
    assert final.payload["attachments"][0]["filename"] == "nemo-video.mp4"


async def test_export_posts_the_link_when_the_file_is_over_the_cap(
    sim: Simulator, fake: FakeDiscord, tmp_path: Path
) -> None:
    async with (
        real_core(sim, fake, tmp_path) as (service, settings),
        running_bot(fake, settings, service),
    ):
        first = await fake.slash("video", {"prompt": "make a 10-second clip of a city at night"})
        await fake.wait_for(answered_with_buttons(first), within=20)
        export = await fake.slash("export", size_limit=1024)  # a 1 KiB upload cap
        done = await fake.wait_for(
            lambda r: original_edits(export)(r) and "http" in content_of(r), within=20
        )
    assert not done[-1].files
    assert sim.base_url in content_of(done[-1])


async def test_credits_are_ephemeral(sim: Simulator, fake: FakeDiscord, tmp_path: Path) -> None:
    async with (
        real_core(sim, fake, tmp_path) as (service, settings),
        running_bot(fake, settings, service),
    ):
        payload = await fake.slash("credits")
        (callback,) = await fake.wait_for(is_callback)
        (answer,) = await fake.wait_for(original_edits(payload))
    assert callback.json == {"type": 5, "data": {"flags": 64}}
    assert content_of(answer)
    assert fake.messages[fake._originals[payload["token"]]]["flags"] & 64


async def test_help_fills_its_ephemeral_placeholder(
    sim: Simulator, fake: FakeDiscord, tmp_path: Path
) -> None:
    async with (
        real_core(sim, fake, tmp_path) as (service, settings),
        running_bot(fake, settings, service),
    ):
        payload = await fake.slash("help")
        (answer,) = await fake.wait_for(original_edits(payload))
        await asyncio.sleep(0.1)
    assert "/video" in content_of(answer) or "video" in content_of(answer).lower()
    assert fake.messages[fake._originals[payload["token"]]]["flags"] & 64
    token_calls = [r for r in fake.requests if payload["token"] in r.path]
    assert [r.method for r in token_calls] == ["POST", "PATCH"]  # defer, fill: nothing else


async def test_a_refusal_for_one_person_is_ephemeral(
    sim: Simulator, fake: FakeDiscord, tmp_path: Path
) -> None:
    async with (
        real_core(sim, fake, tmp_path, NEMO_ALLOWED_USERS="999") as (service, settings),
        running_bot(fake, settings, service),
    ):
        payload = await fake.slash("video", {"prompt": "a city"})
        (followup,) = await fake.wait_for(
            lambda r: (
                r.method == "POST"
                and r.path.endswith(f"/webhooks/{fake.app_id}/{payload['token']}")
            )
        )
    assert followup.json["flags"] == 64
    # The public "thinking" placeholder was removed rather than filled with the refusal.
    assert fake.find("DELETE", f"/{payload['token']}/messages/@original")
    assert sim.stats["chat"] == 0


async def test_buttons_refuse_others_and_survive_a_restart(
    sim: Simulator, fake: FakeDiscord, tmp_path: Path
) -> None:
    alice = int(fake.alice["id"])
    async with real_core(sim, fake, tmp_path) as (service, settings):
        async with running_bot(fake, settings, service):
            first = await fake.slash(
                "video", {"prompt": "make a 10-second clip of a city at night"}
            )
            (result,) = await fake.wait_for(answered_with_buttons(first), within=20)
            message_id = fake.message_with(custom_id(Action.EXPORT, alice))
            assert message_id is not None
            refused = await fake.press(
                custom_id(Action.EXPORT, alice), user=fake.bob, message_id=message_id
            )
            (callback,) = await fake.wait_for(lambda r: is_callback(r) and refused["id"] in r.path)
            assert callback.json["type"] == 4
            assert callback.json["data"]["flags"] == 64
            assert "belong" in callback.json["data"]["content"]
        fake.requests.clear()
        # A new process: a new client instance, the same custom_id on the old message.
        async with running_bot(fake, settings, service):
            press = await fake.press(custom_id(Action.CREDITS, alice), message_id=message_id)
            (callback,) = await fake.wait_for(lambda r: is_callback(r) and press["id"] in r.path)
            (answer,) = await fake.wait_for(original_edits(press))
    assert callback.json == {"type": 5, "data": {"flags": 64}}
    assert content_of(answer)
    assert custom_ids(result)


async def test_an_unsupported_file_gets_the_list_of_formats_without_a_download(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    service = ScriptedService()
    notes = fake.attachment("notes.txt", b"hello", "text/plain")
    async with running_bot(fake, discord_settings(fake, tmp_path), service):
        await fake.user_message(f"<@{fake.bot_user['id']}> use this", attachments=[notes])
        (reply,) = await fake.wait_for(
            lambda r: r.method == "POST" and r.path.endswith("/messages")
        )
    assert "notes.txt" in content_of(reply) and "mp4" in content_of(reply)
    assert "webp" in content_of(reply)
    assert not fake.find("GET", "/cdn/")
    assert service.messages == []


async def test_a_too_large_file_is_refused_before_download(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    service = ScriptedService()
    clip = fake.attachment("big.mp4", b"\0" * 2048, "video/mp4")
    clip["size"] = 5 * 1024 * 1024  # Discord reports the size up front
    settings = discord_settings(fake, tmp_path, NEMO_MAX_UPLOAD_MB=1)
    async with running_bot(fake, settings, service):
        payload = await fake.slash("upload", attachments={"file": clip})
        (followup,) = await fake.wait_for(
            lambda r: r.method == "POST" and r.path.endswith(payload["token"])
        )
    assert "big.mp4" in content_of(followup) and followup.json["flags"] == 64
    assert not fake.find("GET", "/cdn/")
    assert service.messages == []


# ---------------------------------------------------------------------- with a scripted core


async def test_requests_carry_ids_language_and_attachments(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    service = ScriptedService()
    clip = fake.attachment("shot.mp4", b"fake-mp4-bytes", "video/mp4")
    async with running_bot(fake, discord_settings(fake, tmp_path), service):
        await fake.slash("upload", {"note": "opening"}, attachments={"file": clip}, locale="zh-CN")
        await fake.wait_for(lambda r: r.method == "PATCH")
        read = await service.messages[0].attachments[0].read()
        await fake.user_message("hello there", dm=True, user=fake.bob)
        await fake.wait_for(lambda r: r.method == "POST" and "/channels/" in r.path)
        await fake.user_message(f"<@{fake.bot_user['id']}>", thread=True)
        await fake.wait_for(lambda r: r.method == "POST" and "/channels/" in r.path, count=2)
        await fake.user_message("not for the bot", mention_bot=False)
        await asyncio.sleep(0.1)
    slash, dm, thread = service.messages
    assert read == b"fake-mp4-bytes"
    assert (slash.platform, slash.user_id, slash.chat_id) == (
        "discord",
        fake.alice["id"],
        fake.channel_id,
    )
    assert slash.intent is Intent.UPLOAD and slash.text == "opening" and slash.language == "zh"
    assert slash.is_group and slash.thread_id is None
    assert slash.attachments[0].filename == "shot.mp4" and slash.attachments[0].size == len(
        b"fake-mp4-bytes"
    )
    assert dm.user_id == fake.bob["id"] and not dm.is_group and dm.text == "hello there"
    assert dm.intent is None and dm.message_id is not None
    assert thread.chat_id == thread.thread_id == fake.thread_id
    assert thread.intent is Intent.HELP and thread.text == ""  # empty mention: explain


async def test_streamed_text_is_throttled_never_repeated_and_split_at_2000(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    async def script(msg: IncomingMessage, replier: Replier) -> None:
        stream = replier.stream()
        for i in range(60):
            await stream.append(f"Sentence number {i:02d} about the city at night. " * 2)
            await asyncio.sleep(0.01)
        await stream.finish((Action.EXPORT, Action.CREDITS))

    service = ScriptedService(script)
    async with running_bot(fake, discord_settings(fake, tmp_path), service, edit_interval=0.2):
        payload = await fake.slash("video", {"prompt": "talk"})
        await asyncio.wait_for(service.done.wait(), 20)
    full = "".join(f"Sentence number {i:02d} about the city at night. " * 2 for i in range(60))
    original = [r for r in fake.requests if original_edits(payload)(r)]
    followups = [
        r for r in fake.requests if r.method == "POST" and r.path.endswith(payload["token"])
    ]
    followup_edits = [
        r for r in fake.requests if r.method == "PATCH" and "/messages/@original" not in r.path
    ]
    # ~6000 characters: the original response plus two followups, none over 2000.
    assert len(followups) == 2
    assert all(len(content_of(r)) <= 2000 for r in fake.requests if r.payload)
    shown = [m["content"] for m in fake.messages.values()]  # in the order they were posted
    assert len(shown) == 3
    assert " ".join(shown).split() == full.split()
    # Edits of one message are spaced by the interval and never identical.
    for series in (original, followup_edits):
        for a, b in itertools.pairwise(series):
            if a.path == b.path:
                assert b.at - a.at >= 0.2 - 0.02
                assert content_of(a) != content_of(b) or custom_ids(b)
    assert len(original) < 15  # batched: far fewer edits than the 60 appends
    last = followup_edits[-1] if followup_edits else followups[-1]
    assert custom_ids(last) == [
        custom_id(Action.EXPORT, int(fake.alice["id"])),
        custom_id(Action.CREDITS, int(fake.alice["id"])),
    ]


@pytest.mark.parametrize("dm", [False, True], ids=["server", "dm"])
async def test_work_after_the_token_expires_goes_to_the_channel(
    fake: FakeDiscord, tmp_path: Path, dm: bool
) -> None:
    release = asyncio.Event()

    async def script(msg: IncomingMessage, replier: Replier) -> None:
        await replier.progress("Rendering…", 10)
        await release.wait()
        await replier.send_video(Video(url="https://cdn.example/v.mp4", caption="Your video"))

    service = ScriptedService(script)
    async with running_bot(fake, discord_settings(fake, tmp_path), service, token_lifetime=0.3):
        payload = await fake.slash("export", dm=dm)
        await fake.wait_for(original_edits(payload))
        await asyncio.sleep(0.4)
        release.set()
        (post,) = await fake.wait_for(
            lambda r: (
                r.method == "POST"
                and r.path.endswith(f"/channels/{payload['channel_id']}/messages")
            )
        )
    assert "https://cdn.example/v.mp4" in content_of(post)
    late = [r for r in fake.requests if r.method == "PATCH" and r.at > post.at - 0.35]
    # Past the token's time the only edit is the stale progress bar losing its Cancel
    # (Discord still takes the token for the rest of its 15 minutes); the rest was posted.
    assert len(late) == 1 and late[0].payload["components"] == []
    assert content_of(late[0]) == progress_text("Rendering…", 10)
    if dm:  # the DM the command came from; nobody to ping
        assert payload["channel_id"] != fake.channel_id
        assert content_of(post).startswith("Your video")
    else:  # the server channel, pinging only the owner
        assert content_of(post).startswith(f"<@{fake.alice['id']}>")
        assert [str(u) for u in post.json["allowed_mentions"]["users"]] == [fake.alice["id"]]


async def test_a_refused_upload_falls_back_to_the_link(fake: FakeDiscord, tmp_path: Path) -> None:
    async def script(msg: IncomingMessage, replier: Replier) -> None:
        async def fetch(limit: int) -> bytes:
            return b"\0" * 4096

        await replier.send_video(
            Video(url="https://cdn.example/v.mp4", caption="Done", fetch=fetch)
        )

    fake.max_upload = 1024  # the server says 413 although the cap said yes
    service = ScriptedService(script)
    async with running_bot(fake, discord_settings(fake, tmp_path), service):
        payload = await fake.slash("export")
        await asyncio.wait_for(service.done.wait(), 10)
    edits = [r for r in fake.requests if original_edits(payload)(r)]
    assert edits[0].files  # tried the file first
    links = [r for r in fake.requests if "https://cdn.example/v.mp4" in content_of(r)]
    assert links and not links[-1].files


async def test_a_stored_conversation_is_delivered_after_a_restart(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    service = ScriptedService()
    async with running_bot(fake, discord_settings(fake, tmp_path), service) as bot:
        ref = IncomingMessage(
            platform="discord", user_id=fake.alice["id"], chat_id=fake.channel_id, message_id="42"
        ).ref()
        replier = bot.adapter.replier_for(ref)
        video = b"\x00\x00\x00\x18ftypmp42" + b"\0" * 100

        async def fetch(limit: int) -> bytes | None:
            assert limit == 10 * 1024 * 1024  # the guild's cap (no boosts)
            return video

        await replier.send_video(Video(url="u", caption="Done!", summary="1 clip", fetch=fetch))
        (post,) = await fake.wait_for(lambda r: r.method == "POST" and "/channels/" in r.path)
    assert post.files[0].data == video
    assert str(post.payload["message_reference"]["message_id"]) == "42"
    assert post.payload["embeds"][0]["description"] == "1 clip"


async def test_a_failing_core_still_answers_and_the_token_is_never_logged(
    fake: FakeDiscord, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def script(msg: IncomingMessage, replier: Replier) -> None:
        raise RuntimeError(f"boom with {TOKEN}")

    caplog.set_level(logging.DEBUG)
    service = ScriptedService(script)
    async with running_bot(fake, discord_settings(fake, tmp_path), service):
        payload = await fake.slash("status")
        (followup,) = await fake.wait_for(
            lambda r: r.method == "POST" and r.path.endswith(payload["token"])
        )
    assert "went wrong" in content_of(followup) and followup.json["flags"] == 64
    assert "failed" in caplog.text
    assert TOKEN not in caplog.text


async def test_run_discord_runs_until_the_stop_event(fake: FakeDiscord, tmp_path: Path) -> None:
    service = ScriptedService()
    stop = asyncio.Event()
    settings = discord_settings(fake, tmp_path)
    ready = asyncio.Event()
    runner = asyncio.create_task(
        run_discord(settings, service, stop_event=stop, ready=ready, guild_ready_timeout=0.05)
    )
    await asyncio.wait_for(ready.wait(), 10)
    assert fake.identifies
    await fake.slash("help")
    await asyncio.wait_for(service.done.wait(), 10)
    stop.set()
    await asyncio.wait_for(runner, 10)
    assert service.messages[0].intent is Intent.HELP


async def test_a_private_answer_to_a_mention_goes_to_the_users_dm(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    async def script(msg: IncomingMessage, replier: Replier) -> None:
        await replier.send_text("You have 42 credits.", private=True)

    dm_id = str(int(fake.alice["id"]) + 1)  # the fake's DM channel id for alice
    service = ScriptedService(script)
    async with running_bot(fake, discord_settings(fake, tmp_path), service):
        await fake.user_message(f"<@{fake.bot_user['id']}> credits")
        (post,) = await fake.wait_for(lambda r: r.method == "POST" and "/messages" in r.path)
        fake.closed_dms = True
        await fake.user_message(f"<@{fake.bot_user['id']}> credits again")
        await fake.wait_for(
            lambda r: r.method == "POST" and f"/channels/{fake.channel_id}/messages" in r.path
        )
    assert fake.find("POST", "/users/@me/channels")
    assert post.path.endswith(f"/channels/{dm_id}/messages")
    assert content_of(post) == "You have 42 credits."
    channel = fake.find("POST", f"/channels/{fake.channel_id}/messages")
    assert len(channel) == 1  # only once the DM was refused
    assert content_of(channel[0]) == "You have 42 credits."


async def test_a_stream_outliving_its_token_posts_only_the_unshown_rest(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    async def script(msg: IncomingMessage, replier: Replier) -> None:
        stream = replier.stream()
        await stream.append("Part one is here. ")
        await asyncio.sleep(0.6)  # the interaction token is gone now
        await stream.append("Part two follows. ")
        await stream.append("And part three.")
        await stream.finish((Action.EXPORT,))

    service = ScriptedService(script)
    async with running_bot(fake, discord_settings(fake, tmp_path), service, token_lifetime=0.4):
        payload = await fake.slash("video", {"prompt": "talk"})
        await asyncio.wait_for(service.done.wait(), 10)
    (first,) = [r for r in fake.requests if original_edits(payload)(r)]
    assert content_of(first).strip() == "Part one is here."
    posts = fake.find("POST", f"/channels/{fake.channel_id}/messages")
    shown = " ".join(m["content"] for m in fake.messages.values() if m["content"])
    expected = "Part one is here. Part two follows. And part three."
    assert shown.split() == expected.split()
    assert posts and "Part one" not in " ".join(content_of(p) for p in posts)
    final = [r for r in fake.requests if r.at >= posts[0].at and custom_ids(r)]
    assert final and custom_ids(final[-1]) == [custom_id(Action.EXPORT, int(fake.alice["id"]))]


async def test_an_export_progress_outliving_its_token_hands_its_cancel_to_the_channel(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    cancel = custom_id(Action.CANCEL, int(fake.alice["id"]))
    expired, release = asyncio.Event(), asyncio.Event()

    async def script(msg: IncomingMessage, replier: Replier) -> None:
        await replier.progress("Rendering…", 10)
        await expired.wait()
        await replier.progress("Rendering…", 40)
        await release.wait()
        await replier.send_video(Video(url="https://cdn.example/v.mp4", caption="Your video"))

    service = ScriptedService(script)
    async with running_bot(fake, discord_settings(fake, tmp_path), service, token_lifetime=3.0):
        payload = await fake.slash("export")
        (shown,) = await fake.wait_for(
            lambda r: original_edits(payload)(r) and cancel in all_custom_ids(r)
        )
        original = fake.message_with(cancel)
        replier = service.repliers[0]
        assert isinstance(replier, DiscordReplier)
        expires = replier.token_expires_at()
        assert expires is not None
        # Past the part of its 15 minutes the adapter relies on.
        await asyncio.sleep(max(0.0, expires - time.monotonic()) + 0.05)
        expired.set()
        channel = f"/channels/{fake.channel_id}/messages"
        (moved,) = await fake.wait_for(lambda r: r.method == "POST" and r.path.endswith(channel))
        # The old message lost its Cancel (in the token's last minute); the new one has it.
        await fake.wait_for(lambda r: r.at < moved.at and original_edits(payload)(r), count=2)
        assert original is not None and fake.messages[original]["components"] == []
        now = fake.message_with(cancel)
        assert now not in (None, original) and "40%" in fake.messages[now or ""]["content"]
        release.set()
        await asyncio.wait_for(service.done.wait(), 10)
    assert "10%" in content_of(shown) and all_custom_ids(shown) == [cancel]
    assert "40%" in content_of(moved) and all_custom_ids(moved) == [cancel]
    assert fake.message_with(cancel) is None  # the delivery took the last one away
    assert any("https://cdn.example/v.mp4" in m["content"] for m in fake.messages.values())


async def test_an_export_progress_loses_its_cancel_at_100_percent(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    cancel = custom_id(Action.CANCEL, int(fake.alice["id"]))
    rendered, release = asyncio.Event(), asyncio.Event()

    async def script(msg: IncomingMessage, replier: Replier) -> None:
        await replier.progress("Rendering…", 10)
        await replier.progress("Rendering…", 60)
        await rendered.wait()
        await replier.progress("Rendering…", 100)  # the video is being fetched now
        await release.wait()
        await replier.send_video(Video(url="https://cdn.example/v.mp4", caption="Your video"))

    service = ScriptedService(script)
    async with running_bot(fake, discord_settings(fake, tmp_path), service):
        payload = await fake.slash("export")
        await fake.wait_for(lambda r: original_edits(payload)(r) and "60%" in content_of(r))
        progress = fake.message_with(cancel)  # still there: the render runs
        rendered.set()
        (done,) = await fake.wait_for(
            lambda r: original_edits(payload)(r) and "100%" in content_of(r)
        )
        release.set()
        await asyncio.wait_for(service.done.wait(), 10)
    assert progress is not None
    assert done.payload["components"] == []  # taken off in the same edit as the 100 %
    assert fake.messages[progress]["components"] == []
    assert "https://cdn.example/v.mp4" in fake.messages[progress]["content"]


async def test_a_progress_past_discords_token_limit_is_not_edited_to_lose_its_cancel() -> None:
    edits: list[dict[str, Any]] = []

    async def edit(**fields: Any) -> None:
        edits.append(fields)

    now = time.monotonic()
    in_last_minute = EditableMessage(
        edit, shown="10%", interval=0.0, expires_at=now - 1.0, closes_at=now + 60.0
    )
    refused_for_sure = EditableMessage(
        edit, shown="10%", interval=0.0, expires_at=now - 61.0, closes_at=now - 1.0
    )
    assert await unbutton(in_last_minute)
    assert not await unbutton(refused_for_sure)  # a sure 401 is not even asked for
    assert edits == [{"content": "10%", "view": None}]


async def test_a_failed_final_edit_posts_the_rest_with_the_buttons(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    async def script(msg: IncomingMessage, replier: Replier) -> None:
        stream = replier.stream()
        await stream.append("The first words. ")
        await asyncio.sleep(0.15)
        fake.reject_edits = 100  # every edit from now on fails
        await stream.append("The last words.")
        await stream.finish((Action.EXPORT, Action.CREDITS))

    service = ScriptedService(script)
    async with running_bot(fake, discord_settings(fake, tmp_path), service):
        payload = await fake.slash("video", {"prompt": "talk"})
        await asyncio.wait_for(service.done.wait(), 10)
    followups = [
        r for r in fake.requests if r.method == "POST" and r.path.endswith(payload["token"])
    ]
    assert len(followups) == 1
    assert content_of(followups[0]) == "The last words."  # not the first words again
    assert len(custom_ids(followups[0])) == 2


async def test_echoed_mentions_ping_nobody_and_a_delivery_pings_only_the_owner(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    bob = fake.bob["id"]

    async def script(msg: IncomingMessage, replier: Replier) -> None:
        await replier.send_text(f"You asked: {msg.text} <@{bob}> @everyone")

    service = ScriptedService(script)
    async with running_bot(fake, discord_settings(fake, tmp_path), service):
        payload = await fake.slash("video", {"prompt": f"hi <@{bob}>"})
        (answer,) = await fake.wait_for(original_edits(payload))
        await fake.user_message(f"<@{fake.bot_user['id']}> ping <@{bob}>")
        (reply,) = await fake.wait_for(lambda r: r.method == "POST" and "/channels/" in r.path)
    for rec in (answer, reply):
        assert f"<@{bob}>" in content_of(rec)
        mentions = rec.payload["allowed_mentions"]
        assert mentions["parse"] == [] and not mentions.get("users")
        assert not mentions.get("replied_user")


async def test_a_delivery_shows_the_link_once_and_never_cuts_it(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    short = "https://cdn.example/v.mp4?sig=abc"
    long = "https://cdn.example/v.mp4?sig=" + "x" * 2100

    async def script(msg: IncomingMessage, replier: Replier) -> None:
        for url in (short, long):
            caption = f"🎉 Your video is ready (1080p MP4): {url}"
            await replier.send_video(Video(url=url, caption=caption, summary="2 clips"))

    service = ScriptedService(script)
    async with running_bot(fake, discord_settings(fake, tmp_path), service):
        await fake.slash("export")
        await asyncio.wait_for(service.done.wait(), 10)
    sent = [r for r in fake.requests if r.method in ("POST", "PATCH") and r.payload]
    first = next(r for r in sent if short in content_of(r))
    assert content_of(first).count(short) == 1
    assert first.payload["embeds"][0]["description"] == "2 clips"
    second = next(r for r in sent if "2 clips" in str(r.payload) and r is not first)
    assert "cdn.example" not in content_of(second)  # too long for the message...
    assert content_of(second).startswith("🎉 Your video is ready")
    assert long in second.payload["embeds"][0]["description"]  # ...so whole, in the embed
    assert all(len(content_of(r)) <= 2000 for r in sent)


async def test_interaction_tokens_never_reach_the_logs(
    fake: FakeDiscord, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    service = ScriptedService()
    async with running_bot(fake, discord_settings(fake, tmp_path), service) as bot:
        root_handlers = logging.getLogger().handlers
        assert root_handlers and all(bot.redactor in h.filters for h in root_handlers)
        payload = await fake.slash("video", {"prompt": "hello"})
        await fake.wait_for(answered_with_buttons(payload))
    assert f"/interactions/{payload['id']}/" in caplog.text  # discord.http logged the URLs...
    assert f"/webhooks/{fake.app_id}/" in caplog.text
    assert payload["token"] not in caplog.text  # ...without the token
    assert TOKEN not in caplog.text


async def test_an_interaction_without_a_channel_answers_in_the_users_dm(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    release = asyncio.Event()

    async def script(msg: IncomingMessage, replier: Replier) -> None:
        await release.wait()
        await replier.send_text("done")

    dm_id = str(int(fake.alice["id"]) + 1)
    service = ScriptedService(script)
    async with running_bot(fake, discord_settings(fake, tmp_path), service, token_lifetime=0.3):
        await fake.slash("status", dm=True, no_channel=True)
        await fake.wait_for(lambda r: r.method == "POST" and r.path.endswith("/callback"))
        await asyncio.sleep(0.4)
        release.set()
        (post,) = await fake.wait_for(lambda r: r.method == "POST" and "/messages" in r.path)
    assert service.messages[0].chat_id == dm_id
    assert post.path.endswith(f"/channels/{dm_id}/messages") and content_of(post) == "done"


def test_split_text_prefers_line_breaks() -> None:
    text = "\n".join(["a" * 1500] * 3)
    pieces = split_text(text)
    assert pieces == ["a" * 1500] * 3
    assert split_text("x" * 4500) == ["x" * 2000, "x" * 2000, "x" * 500]
    assert split_text("short") == ["short"]


async def test_run_discord_surfaces_a_rejected_token(fake: FakeDiscord, tmp_path: Path) -> None:
    fake.reject_token = True
    with pytest.raises(discord.LoginFailure):
        await asyncio.wait_for(run_discord(discord_settings(fake, tmp_path), ScriptedService()), 10)


async def test_run_discord_needs_a_token(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, NEMO_BOT_DB=tmp_path / "db")  # type: ignore[call-arg]
    with pytest.raises(SettingsError, match="DISCORD_BOT_TOKEN"):
        await run_discord(settings, ScriptedService())


def test_progress_text_draws_a_bar_once() -> None:
    assert progress_text("Rendering… 40%", 40) == "Rendering… 40%\n`████░░░░░░`"
    assert progress_text("Rendering…", 45) == "Rendering…\n`████░░░░░░` 45%"
    assert progress_text("Queued", None) == "Queued"


async def test_closing_lets_running_requests_finish_then_cancels_the_rest(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    outcome: dict[str, str] = {}
    both_started = asyncio.Event()

    async def script(msg: IncomingMessage, replier: Replier) -> None:
        if len(service.messages) == 2:
            both_started.set()
        try:
            await asyncio.sleep(0.3 if msg.text == "quick" else 30)
            await replier.send_text(f"answer to {msg.text}")
            outcome[msg.text] = "sent"
        except BaseException as exc:
            outcome[msg.text] = type(exc).__name__
            raise

    service = ScriptedService(script)
    stop, ready = asyncio.Event(), asyncio.Event()
    runner = asyncio.create_task(
        run_discord(
            discord_settings(fake, tmp_path),
            service,
            stop_event=stop,
            ready=ready,
            edit_interval=EDIT_INTERVAL,
            shutdown_grace=1.0,
            guild_ready_timeout=0.05,
        )
    )
    await asyncio.wait_for(ready.wait(), 10)
    quick = await fake.slash("video", {"prompt": "quick"})
    slow = await fake.slash("video", {"prompt": "slow"})
    await fake.wait_for(lambda r: r.method == "POST" and r.path.endswith("/callback"), count=2)
    await asyncio.wait_for(both_started.wait(), 10)
    stop.set()
    await asyncio.wait_for(runner, 10)
    assert outcome == {"quick": "sent", "slow": "CancelledError"}
    assert any(
        "answer to quick" in content_of(r) for r in fake.requests if original_edits(quick)(r)
    )
    told = [
        r
        for r in fake.requests
        if slow["token"] in r.path
        and r.method in ("PATCH", "POST")
        and "restarting" in content_of(r)
    ]
    assert told  # the cancelled one hears why, instead of a stuck "thinking…"


async def test_one_bad_file_is_named_and_the_good_ones_still_go_on(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    service = ScriptedService()
    big = fake.attachment("huge.png", b"\0" * 16, "image/png")
    big["size"] = 5 * 1024 * 1024
    clip = fake.attachment("shot.mp4", b"mp4", "video/mp4")
    notes = fake.attachment("notes.txt", b"hello", "text/plain")
    photo = fake.attachment("city.jpg", b"jpg", "image/jpeg")
    settings = discord_settings(fake, tmp_path, NEMO_MAX_UPLOAD_MB=1)
    async with running_bot(fake, settings, service):
        payload = await fake.slash(
            "video", {"prompt": "a city"}, attachments={"image": big, "clip": clip}
        )
        await fake.wait_for(answered_with_buttons(payload))
        await fake.user_message(f"<@{fake.bot_user['id']}> use these", attachments=[notes, photo])
        await fake.wait_for(lambda r: "echo: use these" in content_of(r))
    slash, mention = service.messages
    assert [a.filename for a in slash.attachments] == ["shot.mp4"] and slash.text == "a city"
    assert [a.filename for a in mention.attachments] == ["city.jpg"] and mention.text == "use these"
    refusal = [
        r for r in fake.requests if payload["token"] in r.path and "huge.png" in content_of(r)
    ]
    assert refusal and refusal[0].json["flags"] == 64  # private
    assert [r for r in fake.requests if r.method == "POST" and "notes.txt" in content_of(r)]
    assert not fake.find("GET", "/cdn/") or all(
        "huge.png" not in r.path and "notes.txt" not in r.path for r in fake.find("GET", "/cdn/")
    )


async def test_a_delivery_after_a_restart_speaks_the_users_language(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    async with running_bot(fake, discord_settings(fake, tmp_path), ScriptedService()) as bot:
        ref = IncomingMessage(
            platform="discord", user_id=fake.alice["id"], chat_id=fake.channel_id, language="zh"
        ).ref()
        await bot.adapter.replier_for(ref).send_text("好了", actions=(Action.EXPORT,))
        (post,) = await fake.wait_for(lambda r: r.method == "POST" and "/channels/" in r.path)
    [[button]] = [row["components"] for row in post.payload["components"]]
    assert button["label"] == "导出"


async def test_appending_text_never_waits_for_discord(fake: FakeDiscord, tmp_path: Path) -> None:
    seen: list[int] = []

    async def script(msg: IncomingMessage, replier: Replier) -> None:
        await replier.working()
        stream = replier.stream()
        before = len(fake.requests)
        for i in range(60):
            await stream.append(f"Sentence number {i:02d} about the city at night. ")
        seen.extend((before, len(fake.requests)))  # no Discord call was awaited meanwhile
        await stream.finish((Action.EXPORT,))

    service = ScriptedService(script)
    async with running_bot(fake, discord_settings(fake, tmp_path), service, edit_interval=0.2):
        payload = await fake.slash("video", {"prompt": "talk"})
        await asyncio.wait_for(service.done.wait(), 20)
    assert seen[0] == seen[1]
    full = "".join(f"Sentence number {i:02d} about the city at night. " for i in range(60))
    shown = [m["content"] for m in fake.messages.values()]
    assert " ".join(shown).split() == full.split()  # all of it, in order, once
    answers = [r for r in fake.requests if answered_with_buttons(payload)(r)]
    assert answers and "Sentence number 59" in content_of(answers[-1])  # buttons under the end
