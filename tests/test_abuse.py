"""Abuse: no free-credit token minting, the allowlist on every door, no cross-user actions.

* A new project makes a new session, never a new token; a token is renewed only
  after a 1001 or when it expires, and at most a few times an hour per user.
* The allowlist (users and chats) is honoured for messages, commands, buttons and
  files, before anything is downloaded or sent to the backend.
* In a group, one user's commands and buttons never touch another user's project.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from core.i18n import t
from simulator.server import Simulator
from tests.fakes.collecting import CollectingReplier
from tests.fakes.telegram_server import FakeTelegram
from tests.test_service import core_for, msg
from tests.test_telegram import finished, real_core

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


# ------------------------------------------------------------------------------ tokens


async def test_new_projects_make_sessions_not_tokens(sim: Simulator, tmp_path: Path) -> None:
    async with core_for(sim, tmp_path) as (service, _):
        r = CollectingReplier()
        await service.handle(msg("make a video of a fox"), r)
        for _ in range(5):
            await service.handle(msg("new project"), r)
            await service.handle(msg("/new"), r)
        await service.handle(msg("make a video of a fox", chat="another-chat"), r)
    assert sim.stats["tokens_minted"] == 1
    assert sim.stats["sessions_created"] == 12


async def test_renewal_only_on_1001_and_capped_per_hour(sim: Simulator, tmp_path: Path) -> None:
    async with core_for(sim, tmp_path) as (service, _):
        r = CollectingReplier()
        await service.handle(msg("make a video of a fox"), r)
        for _ in range(3):
            await service.handle(msg("status"), r)
        assert sim.stats["tokens_minted"] == 1  # no 1001: no new token
        sim.inject("token_expired", count=1, endpoint="state")
        await service.handle(msg("status"), r)
        assert sim.stats["tokens_minted"] == 2 and r.texts()[-1].startswith("Timeline")
        # a backend that rejects every token cannot make the bot mint without end
        sim.inject("token_expired", count=50, endpoint="state")
        for _ in range(12):
            await service.handle(msg("status"), r)
        assert sim.stats["tokens_minted"] <= 2 + 5
        assert r.texts()[-1] == t("auth_failed", "en")


async def test_an_expired_token_is_renewed_once_by_the_clock(
    sim: Simulator, tmp_path: Path
) -> None:
    async with core_for(sim, tmp_path) as (service, _):
        await service.handle(msg("credits"), CollectingReplier())
    with sqlite3.connect(tmp_path / "bot.db") as conn:
        conn.execute("UPDATE users SET token_expires_at = ?", (time.time() - 1,))
    async with core_for(sim, tmp_path) as (service, _):
        r1, r2 = CollectingReplier(), CollectingReplier()
        await asyncio.gather(service.handle(msg("credits"), r1), service.handle(msg("credits"), r2))
    assert sim.stats["token"] == 2  # one renewal, not one per request
    assert "available" in r1.all_text() and "available" in r2.all_text()


# --------------------------------------------------------------------------- allowlist


async def test_the_allowlist_holds_on_every_door(
    sim: Simulator, tmp_path: Path, png: bytes
) -> None:
    async with FakeTelegram() as tg, real_core(sim, tg, tmp_path, NEMO_ALLOWED_USERS="1"):
        stranger = tg.private_chat(66)
        tg.private_text(66, "make a video")
        tg.private_text(66, "/export")
        tg.private_text(66, "/new")
        tg.photo(stranger, 66, png, caption="use this")
        tg.document(stranger, 66, file_name="tool.exe", file_size=100)
        tg.document(stranger, 66, file_name="huge.mp4", file_size=3 * 1024**3)
        await tg.wait_for(lambda: len(tg.sent_to(66)) >= 6, within=15)
        tg.press(66, tg.sent_to(66)[0], "a:export:66")
        await tg.wait_for(lambda: len(tg.sent_to(66)) >= 7, within=15)
        await asyncio.sleep(0.3)
    refusal = t("not_allowed", "en")
    assert tg.texts(66) == [refusal] * 7
    assert not tg.calls_of("getFile") and not tg.downloads
    assert sim.stats["calls"] == 0  # the backend never heard of them


async def test_the_chat_allowlist_holds_in_groups(sim: Simulator, tmp_path: Path) -> None:
    async with FakeTelegram() as tg, real_core(sim, tg, tmp_path, NEMO_ALLOWED_CHATS="-100"):
        tg.group_text(-100, 1, "make a video of a boat", mention=True)
        tg.group_text(-200, 1, "make a video of a boat", mention=True)
        await tg.wait_for(lambda: tg.sent_to(-200) and finished(tg, -100)(), within=15)
    assert tg.texts(-200) == [t("not_allowed", "en")]
    assert sim.stats["sessions_created"] == 1


# ----------------------------------------------------------------------------- groups


async def test_in_a_group_nobody_acts_on_another_users_project(
    sim: Simulator, tmp_path: Path
) -> None:
    async with FakeTelegram() as tg, real_core(sim, tg, tmp_path):
        tg.group_text(-700, 71, "make a video of a cat", mention=True)
        await tg.wait_for(finished(tg, -700), within=15)
        alice_reply = tg.sent_to(-700)[0]
        # Bob presses Alice's buttons, forges her callback data, and types commands
        tg.press(72, alice_reply, "a:export:71")
        tg.press(72, alice_reply, "a:timeline:71")
        bob_ids = {
            tg.group_text(-700, 72, command)["message_id"]
            for command in ("/export", "/new", "/status")
        }
        await tg.wait_for(lambda: len(tg.calls_of("answerCallbackQuery")) >= 2, within=10)
        await tg.wait_for(lambda: len(tg.sent_to(-700)) >= 4, within=15)
        await asyncio.sleep(0.3)
        tg.group_text(-700, 71, "/status")
        await tg.wait_for(
            lambda: any(
                "cat" in (m.text or "") and "Timeline" in (m.text or "") for m in tg.sent_to(-700)
            ),
            within=15,
        )
    alerts = [c.params for c in tg.calls_of("answerCallbackQuery")]
    assert all(a.get("show_alert") for a in alerts)
    assert sim.stats["renders"] == 0  # Bob's export had nothing of his own to export
    to_bob = [m.text or "" for m in tg.sent_to(-700) if m.reply_to in bob_ids]
    assert len(to_bob) == 3 and not [text for text in to_bob if "cat" in text.lower()]
    assert len(sim.sessions) == 3  # Alice's, Bob's, Bob's new one; Alice's untouched
    owners = {s.user_id for s in sim.sessions.values()}
    assert len(owners) == 2


@pytest.fixture(scope="module")
def png() -> bytes:
    from simulator import media

    return media.sample_image().read_bytes()
