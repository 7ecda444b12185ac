"""Cancel, end to end on every door: typed, as a command, and as the button on a running reply.

The simulator keeps working on a turn after the client hangs up (as the real
backend may), so what a cancel says about the timeline is checked against what
the backend really did: nothing yet (cancelled during the slow step) or a change
(cancelled while the reply was streaming, after the edit was applied).
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bots.discord_adapter.views import custom_id
from bots.telegram.format import utf16_len
from bots.telegram.running import SHOW_AFTER
from core.types import DEFAULT_ACTIONS, Action, IncomingMessage, Replier
from simulator.server import Simulator
from tests.conftest import fast_sim_config
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.simproc import sim_process
from tests.fakes.telegram_server import FakeTelegram, SentMessage
from tests.test_cli import run_cli
from tests.test_discord import all_custom_ids, content_of, is_callback, running_bot
from tests.test_discord import real_core as discord_core
from tests.test_telegram import ScriptedService, finished, running, tg_settings
from tests.test_telegram import real_core as telegram_core

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

PROMPT = "make a 10-second clip of a futuristic city at night"


@pytest.fixture
async def slow_step() -> AsyncIterator[Simulator]:
    """A backend whose generation thinks for a long time (heartbeats) before any word."""
    async with Simulator(fast_sim_config(slow_step_seconds=60.0)) as sim:
        yield sim


@pytest.fixture
async def slow_words() -> AsyncIterator[Simulator]:
    """A backend that applies the edit at once, then types its reply slowly."""
    async with Simulator(fast_sim_config(slow_step_seconds=0.05, chunk_delay=0.7)) as sim:
        yield sim


async def until(predicate: Callable[[], bool], within: float = 15.0) -> None:
    """Poll ``predicate`` until it holds (for state no fake announces, like the simulator's)."""
    for _ in range(int(within / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not true within {within} s")


def with_text(tg: FakeTelegram, chat: int, needle: str) -> list[SentMessage]:
    return [m for m in tg.sent_to(chat) if m.text and needle in m.text]


async def test_telegram_cancel_stops_the_running_request_and_drops_the_waiting_one(
    slow_step: Simulator, tg: FakeTelegram, tmp_path: Path
) -> None:
    user = 31
    async with telegram_core(slow_step, tg, tmp_path):
        tg.private_text(user, "取消", language_code="zh")  # nothing to cancel yet, in Chinese
        await tg.wait_for(lambda: with_text(tg, user, "没有可取消的"))
        tg.private_text(user, PROMPT)
        await tg.wait_for(lambda: slow_step.stats["chat"] == 1, within=15)
        tg.private_text(user, "add lo-fi background music")
        [notice] = await tg.wait_for(lambda: with_text(tg, user, "1 request ahead of you"))
        assert notice.callbacks() == [f"a:cancel:{user}"]
        tg.private_text(user, "/cancel")
        [told] = await tg.wait_for(lambda: with_text(tg, user, "Stopped your request"), within=15)
        # The queue notice says it was dropped, and loses its button.
        await tg.wait_for(lambda: notice.text == "⏹ Cancelled." and not notice.reply_markup)
        await asyncio.sleep(0.5)
    assert "Dropped your waiting request." in told.text  # type: ignore[operator]
    # Cancelled during the backend's slow step: nothing was applied yet, and it says so.
    assert "So far the timeline hasn't changed" in told.text  # type: ignore[operator]
    assert slow_step.stats["chat"] == 1  # the dropped request never reached the backend
    assert not with_text(tg, user, "Your turn")


async def test_telegram_cancel_button_is_the_owners_and_reports_the_change_made(
    slow_words: Simulator, tg: FakeTelegram, tmp_path: Path
) -> None:
    owner, other, group = 41, 42, -300
    cancel = f"a:cancel:{owner}"
    async with telegram_core(slow_words, tg, tmp_path):
        tg.group_text(group, owner, PROMPT, mention=True)
        [running] = await tg.wait_for(
            lambda: [m for m in tg.sent_to(group) if cancel in m.callbacks()], within=30
        )
        tg.press(other, running, cancel)
        await tg.wait_for(lambda: tg.calls_of("answerCallbackQuery"))
        [refusal] = tg.calls_of("answerCallbackQuery")
        assert refusal.params["show_alert"] is True
        assert "belongs to someone else" in refusal.params["text"]
        tg.press(owner, running, cancel)
        [told] = await tg.wait_for(lambda: with_text(tg, group, "Stopped your request"), within=20)
        shown = running.text
        await asyncio.sleep(2.0)  # several chunk delays: the stopped reply must not grow
    assert running.text == shown  # the stream was closed: no more words came
    assert running.callbacks() == []  # the running reply's button is gone, and no others came
    # The backend applied the generation before it started typing: the user is told.
    assert "The timeline did change: Added video track" in told.text  # type: ignore[operator]
    assert "Dropped" not in told.text  # type: ignore[operator]


async def test_discord_cancel_command_stops_the_running_request(
    slow_step: Simulator, fake: FakeDiscord, tmp_path: Path
) -> None:
    async with (
        discord_core(slow_step, fake, tmp_path) as (service, settings),
        running_bot(fake, settings, service),
    ):
        made = await fake.slash("video", {"prompt": PROMPT})
        await until(lambda: slow_step.stats["chat"] == 1)
        cancelled = await fake.slash("cancel")
        [told] = await fake.wait_for(
            lambda r: cancelled["token"] in r.path and "Stopped your request" in content_of(r),
            within=15,
        )
        again = await fake.slash("cancel")
        [nothing] = await fake.wait_for(
            lambda r: again["token"] in r.path and "nothing to cancel" in content_of(r),
            within=15,
        )
    assert "So far the timeline hasn't changed" in content_of(told)
    assert made["token"] != cancelled["token"]
    assert nothing


def test_terminal_cancel_stops_following_an_export(tmp_path: Path) -> None:
    with sim_process("--render-seconds", "60") as sim_url:
        env = {"NEMO_API_BASE": sim_url, "NEMO_BOT_DB": str(tmp_path / "bot.db")}
        result = run_cli(
            "chat",
            "--save-dir",
            str(tmp_path / "videos"),
            "-m",
            "make a 4-second clip of a red balloon",
            "-m",
            "export",
            "-m",
            "stop",
            env=env,
        )
        with urllib.request.urlopen(f"{sim_url}/_sim/stats", timeout=10) as answer:
            stats = json.load(answer)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Stopped the export: I won't send that video." in out
    assert "Your video is ready" not in out
    assert not (tmp_path / "videos").exists() or not list((tmp_path / "videos").iterdir())
    assert stats.get("renders_cancelled") == 1  # the backend was asked to stop rendering


async def test_telegram_queue_notice_moves_in_place_as_the_line_moves(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    user = 71
    async with (
        Simulator(fast_sim_config(slow_step_seconds=2.0)) as sim,
        telegram_core(sim, tg, tmp_path),
    ):
        tg.private_text(user, PROMPT)
        await until(lambda: sim.stats["chat"] == 1)
        tg.private_text(user, "add lo-fi background music")
        [second] = await tg.wait_for(lambda: with_text(tg, user, "1 request ahead of you"))
        tg.private_text(user, 'add a title "Night City"')
        [third] = await tg.wait_for(lambda: with_text(tg, user, "2 requests ahead of you"))
        # The first finishes: the second's turn comes, the third moves up, in place.
        await tg.wait_for(lambda: third.text.startswith("⏳ 1 request ahead"), within=30)
        await tg.wait_for(lambda: third.text == "▶️ Your turn — working on it now.", within=30)
        await until(lambda: sim.stats["chat"] == 3, within=30)
    assert second.text == "▶️ Your turn — working on it now." and not second.reply_markup
    assert third.edits == [
        "⏳ 1 request ahead of you — I'll start on this one right after.",
        "▶️ Your turn — working on it now.",
    ]
    assert sim.stats["concurrent_chats"] == 0  # one at a time, as the notices said


async def test_discord_cancel_button_under_the_running_reply_is_the_owners(
    slow_words: Simulator, fake: FakeDiscord, tmp_path: Path
) -> None:
    alice = int(fake.alice["id"])
    cancel = custom_id(Action.CANCEL, alice)
    async with (
        discord_core(slow_words, fake, tmp_path) as (service, settings),
        running_bot(fake, settings, service),
    ):
        await fake.slash("video", {"prompt": PROMPT})
        await until(lambda: fake.message_with(cancel) is not None, within=30)
        running = fake.message_with(cancel)
        refused = await fake.press(cancel, user=fake.bob, message_id=running)
        [callback] = await fake.wait_for(lambda r: is_callback(r) and refused["id"] in r.path)
        pressed = await fake.press(cancel, message_id=running)
        [told] = await fake.wait_for(
            lambda r: pressed["token"] in r.path and "Stopped your request" in content_of(r),
            within=20,
        )
        await until(lambda: fake.message_with(cancel) is None)  # the button is taken away
    assert callback.json["data"]["flags"] == 64 and "belong" in callback.json["data"]["content"]
    assert "The timeline did change: Added video track" in content_of(told)


# -- a private chat's running reply: a draft, with its Cancel button in a note ------------------

RUNNING_NOTE = "Working on it"


def notes(tg: FakeTelegram, chat: int) -> list[SentMessage]:
    return with_text(tg, chat, RUNNING_NOTE)


async def test_telegram_private_running_reply_gets_a_cancel_note_for_its_owner(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    owner, other = 51, 52
    cancel = f"a:cancel:{owner}"
    async with (
        # The edit is applied at once; its reply is then typed slowly (well past the note).
        Simulator(fast_sim_config(slow_step_seconds=0.05, chunk_delay=2.0)) as slow_words,
        telegram_core(slow_words, tg, tmp_path),
    ):
        tg.private_text(owner, PROMPT)
        # The reply grows as a draft; a few seconds in, the note with the button comes.
        [note] = await tg.wait_for(lambda: notes(tg, owner), within=30)
        await tg.wait_for(lambda: tg.drafts, within=30)  # the reply still grows as a draft
        assert note.callbacks() == [cancel]
        assert note.text == "⏳ Working on it… Tap Cancel to stop."
        tg.press(other, note, cancel)  # (a forwarded button: somebody else's press)
        await tg.wait_for(lambda: tg.calls_of("answerCallbackQuery"))
        [refusal] = tg.calls_of("answerCallbackQuery")
        tg.press(owner, note, cancel)
        [told] = await tg.wait_for(lambda: with_text(tg, owner, "Stopped your request"), within=20)
        await tg.wait_for(lambda: not notes(tg, owner))  # the note is deleted
        shown, drafts = tg.texts(owner), len(tg.drafts)
        await asyncio.sleep(4.5)  # two chunk delays: the stopped reply must not grow
        assert tg.texts(owner) == shown and len(tg.drafts) == drafts
    assert refusal.params["show_alert"] is True
    assert "belongs to someone else" in refusal.params["text"]
    assert slow_words.stats["chat"] == 1  # the refused press stopped nothing, the owner's did
    assert [m.message_id for m in tg.deleted] == [note.message_id]
    # The reply so far stays in the chat, cut, before the answer; nothing carries Cancel.
    cut, answer = tg.sent_to(owner)
    assert cut.text and cut.text.startswith(tg.drafts[-1][2][:20]) and answer is told
    assert all(not m.callbacks() or cancel not in m.callbacks() for m in tg.sent_to(owner))
    assert "The timeline did change: Added video track" in told.text  # type: ignore[operator]


async def test_telegram_private_fast_reply_leaves_no_running_note(
    sim: Simulator, tg: FakeTelegram, tmp_path: Path
) -> None:
    user = 53
    async with telegram_core(sim, tg, tmp_path):
        tg.private_text(user, PROMPT)
        await tg.wait_for(finished(tg, user), within=30)
        # Past the moment a still-running request would have shown its note.
        await asyncio.sleep(SHOW_AFTER + 1.0)
        reply, *rest = tg.sent_to(user)
    assert not notes(tg, user)
    # The answer, whole, in one message (then maybe the timeline); what the draft showed
    # meanwhile was its beginning.
    assert reply.text and "futuristic city at night" in reply.text
    assert all(reply.text.startswith(text) for chat, _, text in tg.drafts if chat == user)
    assert all(m.text and m.text.startswith("Timeline (1 track)") for m in rest)
    assert not [m for m in tg.sent_to(user) if f"a:cancel:{user}" in m.callbacks()]
    # Any note a slow machine did send was taken away again: only the answer stays.
    assert all(RUNNING_NOTE in (m.text or "") for m in tg.deleted)


@pytest.mark.parametrize(
    ("chat", "how"), [("private", "press"), ("group", "press"), ("private", "type")]
)
async def test_telegram_export_progress_carries_cancel_for_its_owner(
    tg: FakeTelegram, tmp_path: Path, chat: str, how: str
) -> None:
    owner, other = 61, 62
    where = owner if chat == "private" else -600
    cancel = f"a:cancel:{owner}"

    def say(text: str) -> None:
        if chat == "private":
            tg.private_text(owner, text)
        else:
            tg.group_text(where, owner, text, mention=True)

    async with (
        Simulator(fast_sim_config(render_seconds=60.0)) as sim,
        telegram_core(sim, tg, tmp_path),
    ):
        say(PROMPT)
        await tg.wait_for(finished(tg, where), within=30)
        say("export")
        [progress] = await tg.wait_for(
            lambda: [m for m in tg.sent_to(where) if cancel in m.callbacks()], within=30
        )
        assert progress.text and "Rendering" in progress.text
        if how == "press":
            tg.press(other, progress, cancel)
            await tg.wait_for(lambda: tg.calls_of("answerCallbackQuery"))
            [refusal] = tg.calls_of("answerCallbackQuery")
            assert "belongs to someone else" in refusal.params["text"]
            tg.press(owner, progress, cancel)
        else:
            say("cancel")
        [told] = await tg.wait_for(lambda: with_text(tg, where, "Stopped the export"), within=20)
        # Its job is done, pressed or typed: the button goes, and stays gone.
        await tg.wait_for(lambda: not progress.callbacks())
        await until(lambda: sim.stats.get("renders_cancelled") == 1)
        await asyncio.sleep(1.0)
    assert not progress.callbacks()
    assert not tg.calls_of("sendVideo")
    assert "Stopped your request" not in told.text  # type: ignore[operator]


async def test_telegram_private_long_slow_reply_stays_exact_and_in_order_around_its_note(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    user = 54
    long = "".join(f"sentence number {i} is here. " for i in range(500))  # ~14k chars

    async def slow_verbose(msg: IncomingMessage, replier: Replier) -> None:
        stream = replier.stream(running=(Action.CANCEL,))  # as core.relay asks for it
        for start in range(0, len(long), 700):
            await stream.append(long[start : start + 700])
            await asyncio.sleep(0.4)  # ~8 s in all: well past the note's 3 s
        await stream.finish(DEFAULT_ACTIONS)

    async with running(tg_settings(tg, tmp_path), ScriptedService(slow_verbose)):
        tg.private_text(user, "tell me everything")
        [note] = await tg.wait_for(lambda: notes(tg, user), within=30)
        await tg.wait_for(finished(tg, user), within=60)
        await tg.wait_for(lambda: tg.deleted, within=30)
    assert note.callbacks() == [f"a:cancel:{user}"]
    assert [m.message_id for m in tg.deleted] == [note.message_id]
    parts = tg.texts(user)  # what stays: the reply alone, cut at 4096, in order
    assert len(parts) >= 4 and all(utf16_len(p) <= 4096 for p in parts)
    assert "".join(parts).replace(" ", "") == long.replace(" ", "")
    assert tg.sent_to(user)[-1].callbacks() == [f"a:{a.value}:{user}" for a in DEFAULT_ACTIONS]


# -- Discord: an export's progress message carries its owner's Cancel ---------------------------


@pytest.mark.parametrize(
    ("start", "stop"),
    [("slash", "press"), ("button", "press"), ("typed", "type"), ("slash", "command")],
)
async def test_discord_export_progress_carries_cancel_for_its_owner(
    fake: FakeDiscord, tmp_path: Path, start: str, stop: str
) -> None:
    alice = int(fake.alice["id"])
    cancel = custom_id(Action.CANCEL, alice)
    export = custom_id(Action.EXPORT, alice)
    mention = f"<@{fake.bot_user['id']}> "
    async with (
        Simulator(fast_sim_config(render_seconds=60.0)) as sim,
        discord_core(sim, fake, tmp_path) as (service, settings),
        running_bot(fake, settings, service),
    ):
        if start == "typed":  # typed in the server's channel: answered with channel messages
            await fake.user_message(mention + PROMPT)
        else:
            await fake.slash("video", {"prompt": PROMPT})
        await until(lambda: fake.message_with(export) is not None, within=30)
        if start == "slash":
            await fake.slash("export")
        elif start == "button":
            await fake.press(export)
        else:
            await fake.user_message(mention + "export")
        await until(lambda: fake.message_with(cancel) is not None, within=30)
        progress = fake.message_with(cancel)
        assert progress is not None
        assert "Rendering" in fake.messages[progress]["content"]
        if stop == "press":
            refused = await fake.press(cancel, user=fake.bob, message_id=progress)
            [refusal] = await fake.wait_for(lambda r: is_callback(r) and refused["id"] in r.path)
            assert refusal.json["data"]["flags"] == 64  # ephemeral: only Bob sees it
            assert "belong" in refusal.json["data"]["content"]
            assert fake.message_with(cancel) == progress  # Bob's press stopped nothing
            await fake.press(cancel, message_id=progress)
        elif stop == "command":
            await fake.slash("cancel")
        else:
            await fake.user_message(mention + "cancel")
        [told] = await fake.wait_for(lambda r: "Stopped the export" in content_of(r), within=20)
        # Its job is done, pressed, commanded or typed: the button goes, and stays gone.
        await until(lambda: fake.message_with(cancel) is None)
        await until(lambda: sim.stats.get("renders_cancelled") == 1)
        await asyncio.sleep(1.0)
        shown = fake.messages[progress]
    assert fake.message_with(cancel) is None
    assert "Rendering" in shown["content"] and shown["components"] == []  # the bar stays
    assert "Stopped your request" not in content_of(told)
    assert not [r for r in fake.requests if r.files]  # no video was posted


@pytest.mark.parametrize("outcome", ["delivered", "failed"])
async def test_discord_export_progress_loses_cancel_when_the_export_ends(
    fake: FakeDiscord, tmp_path: Path, outcome: str
) -> None:
    alice = int(fake.alice["id"])
    cancel = custom_id(Action.CANCEL, alice)
    async with (
        Simulator(fast_sim_config(render_seconds=4.0)) as sim,
        discord_core(sim, fake, tmp_path) as (service, settings),
        running_bot(fake, settings, service),
    ):
        await fake.slash("video", {"prompt": PROMPT})
        await until(lambda: fake.message_with(custom_id(Action.EXPORT, alice)) is not None, 30)
        if outcome == "failed":
            sim.inject("render_failed", endpoint="render")
        made = await fake.slash("export")
        await until(lambda: fake.message_with(cancel) is not None, within=30)
        progress = fake.message_with(cancel)
        if outcome == "delivered":
            [end] = await fake.wait_for(
                lambda r: made["token"] in r.path and bool(r.files), within=30
            )
        else:
            [end] = await fake.wait_for(lambda r: "export failed" in content_of(r), within=30)
        await until(lambda: fake.message_with(cancel) is None)
    assert progress is not None
    assert not [r for r in fake.requests if cancel in all_custom_ids(r) and r.at > end.at]
    if outcome == "delivered":  # the video took the progress message's place, no Cancel
        assert fake.messages[progress]["attachments"][0]["filename"] == "nemo-video.mp4"
    else:  # the failure came apart; the progress bar stays, without Cancel
        assert "Rendering" in fake.messages[progress]["content"]
    assert fake.messages[progress]["components"] == []
