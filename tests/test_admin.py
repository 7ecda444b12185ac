"""Admin tools end to end: /stats and /broadcast for NEMO_ADMIN_USERS, hidden from others.

Telegram (PTB against the fake Bot API), Discord (discord.py against the fake) and
the terminal (`nemo-bot chat -m` as a subprocess, the setting read from a .env file),
each with the real core against the NemoVideo simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.admin import BATCH, Admin
from core.client import NemoClient
from core.config import Settings
from simulator.server import Simulator
from storage import make_store
from storage.base import Store
from tests.fakes.collecting import CollectingAdapter
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.procs import db_rows, wait_until
from tests.fakes.simproc import ROOT
from tests.fakes.telegram_server import Call, FakeTelegram
from tests.stores import backend, server, target
from tests.test_discord import content_of, original_edits, running_bot
from tests.test_discord import real_core as discord_core
from tests.test_history import sim_url as sim_url  # the fixture
from tests.test_reliability import _tg_env, start_telegram
from tests.test_telegram import real_core as telegram_core

__all__ = ["backend", "server", "target"]  # fixtures used here

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

ADMIN = 7


def last(tg: FakeTelegram, chat: int) -> str:
    texts = tg.texts(chat)
    return texts[-1] if texts else ""


async def test_telegram_stats_and_a_broadcast_for_the_admin_only(
    sim: Simulator, tg: FakeTelegram, tmp_path: Path
) -> None:
    async with NemoClient(base_url=sim.base_url) as client:
        operator = (await client.anonymous_token(str(uuid.uuid4()))).token
    extra = {"NEMO_ADMIN_USERS": f"{ADMIN},99", "NEMO_TOKEN": operator}
    async with telegram_core(sim, tg, tmp_path, **extra) as (service, _):
        for user in (1, 2, 3):
            tg.private_text(user, "help")
            await tg.wait_for(lambda user=user: tg.texts(user), within=15)  # type: ignore[misc]
        tg.private_text(1, "/stats")
        await tg.wait_for(lambda: "isn't a command I know" in last(tg, 1), within=15)
        tg.private_text(2, "/broadcast you should not see this")
        await tg.wait_for(lambda: "isn't a command I know" in last(tg, 2), within=15)

        tg.private_text(ADMIN, "make a 10-second clip of a city at night")
        await tg.wait_for(lambda: any(m.reply_markup for m in tg.sent_to(ADMIN)), within=15)
        tg.private_text(ADMIN, "/export")
        await tg.wait_for(lambda: tg.calls_of("sendVideo"), within=20)
        tg.private_text(ADMIN, "help")
        await tg.wait_for(lambda: "/broadcast" in last(tg, ADMIN), within=15)
        tg.private_text(ADMIN, "/stats")
        await tg.wait_for(lambda: "Stats" in last(tg, ADMIN), within=15)
        stats = last(tg, ADMIN)

        tg.blocked.add(3)  # this one blocked the bot since
        tg.private_text(ADMIN, "/broadcast Big news: music videos are here!")
        await tg.wait_for(lambda: "Broadcast done" in last(tg, ADMIN), within=30)
        await service.wait_idle()

    assert all("/stats" not in t and "/broadcast" not in t for t in tg.texts(1)[:1])  # help
    assert "Users: 4 today · 4 in the last 7 days" in stats
    assert "ok " in stats.split("Requests (7 days):")[1].splitlines()[0]
    assert "completed 1" in stats.split("Renders (7 days):")[1].splitlines()[0]
    assert "p50 " in stats and " s · p95 " in stats
    assert "Operator token credits:" in stats and "available" in stats
    assert "📣 Broadcast done: 3 sent, 1 failed." in tg.texts(ADMIN)
    for user in (1, 2, ADMIN):
        assert tg.texts(user).count("Big news: music videos are here!") == 1
    assert "Big news" not in " ".join(tg.texts(3))


async def test_a_broadcast_goes_on_after_a_restart_from_where_it_stopped(
    sim: Simulator, tg: FakeTelegram, tmp_path: Path
) -> None:
    # The state a stop left behind: user 10 was reached, 11 and 12 not yet.
    async with make_store(tmp_path / "db.sqlite") as store:
        for user in ("10", "11", "12"):
            await store.note_contact("telegram", user, user)
        record = await store.start_broadcast(
            "telegram", "Maintenance tonight", admin_chat=str(ADMIN), admin_user=str(ADMIN)
        )
        assert await store.claim_broadcast_recipient(record.broadcast_id, "10")
        await store.settle_broadcast_recipient(record.broadcast_id, "10", "sent")
        await store.advance_broadcast(record.broadcast_id, cursor="10")

    async with telegram_core(sim, tg, tmp_path, NEMO_ADMIN_USERS=str(ADMIN)):
        await tg.wait_for(lambda: "Broadcast done" in last(tg, ADMIN), within=30)
    assert last(tg, ADMIN) == "📣 Broadcast done: 3 sent, 0 failed."
    assert tg.texts(10) == []  # not sent twice
    assert tg.texts(11) == tg.texts(12) == ["Maintenance tonight"]
    async with make_store(tmp_path / "db.sqlite") as store:
        assert await store.unfinished_broadcasts() == []


class BulkAdapter(CollectingAdapter):
    """A Telegram stand-in that records bulk sends (slowly, so replicas overlap)."""

    def __init__(self, sends: list[str]) -> None:
        super().__init__("telegram")
        self.sends = sends

    async def send_bulk(self, chat_id: str, text: str) -> str:
        await asyncio.sleep(0.01)
        self.sends.append(chat_id)
        return "sent"


async def test_replicas_resuming_one_broadcast_send_it_once(target: Path | str) -> None:
    """Two replicas on one database (SQLite file or PostgreSQL) both resume it."""
    path = target
    settings = Settings(_env_file=None, NEMO_BOT_DB=path, NEMO_ADMIN_USERS="7")  # type: ignore[call-arg]
    sends: list[str] = []
    async with make_store(path) as first, make_store(path) as second:
        for n in range(25):
            await first.note_contact("telegram", f"u{n:02d}", f"{n}")
        await first.start_broadcast("telegram", "hi", admin_chat="7", admin_user="7")
        adapters = [BulkAdapter(sends), BulkAdapter(sends)]
        async with NemoClient(base_url="http://127.0.0.1:9") as client:  # never called
            replicas = [
                Admin(settings=settings, store=store, client=client) for store in (first, second)
            ]
            for admin, adapter in zip(replicas, adapters, strict=True):
                admin.use({"telegram": adapter})
            assert [await admin.resume() for admin in replicas] == [1, 1]  # both try
            for admin in replicas:
                await admin.wait_idle()
        assert await first.unfinished_broadcasts() == []
    assert sorted(sends) == sorted(str(n) for n in range(25))  # each person once
    reports = [r.all_text() for a in adapters for r in a.repliers.values()]
    assert reports == ["📣 Broadcast done: 25 sent, 0 failed."]


async def test_discord_stats_for_the_admin_and_unknown_for_others(
    sim: Simulator, fake: FakeDiscord, tmp_path: Path
) -> None:
    admin_id = str(fake.alice["id"])
    async with (
        discord_core(sim, fake, tmp_path, NEMO_ADMIN_USERS=admin_id) as (service, settings),
        running_bot(fake, settings, service),
    ):
        other = await fake.slash("stats", user=fake.bob)
        (refusal,) = await fake.wait_for(original_edits(other), within=20)
        helped = await fake.slash("help", user=fake.bob)
        (bob_help,) = await fake.wait_for(original_edits(helped), within=20)
        admin_help = await fake.slash("help")
        (alice_help,) = await fake.wait_for(original_edits(admin_help), within=20)
        mine = await fake.slash("stats")
        (answer,) = await fake.wait_for(original_edits(mine), within=20)
    assert "Stats" in content_of(answer) and "Users: 2 today" in content_of(answer)
    assert "Requests (7 days): ok 3" in content_of(answer)
    assert "/stats" in content_of(alice_help)
    assert fake.messages[fake._originals[mine["token"]]]["flags"] & 64  # to the admin only
    assert "isn't a command I know" in content_of(refusal)
    assert "/stats" not in content_of(bob_help)
    stats = next(c for c in fake.commands if c["name"] == "stats")
    assert str(stats["default_member_permissions"]) == "8"  # server admins only see it


def chat(*messages: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`nemo-bot chat -m ...` in ``cwd`` (where its .env is)."""
    args = [arg for m in messages for arg in ("-m", m)]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("NEMO_", "TELEGRAM_"))}
    return subprocess.run(
        [sys.executable, "-m", "bots.cli", "chat", *args],
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_the_terminal_admin_reads_stats_and_is_told_broadcasts_are_telegrams(
    sim_url: str, tmp_path: Path
) -> None:
    env = {"NEMO_API_BASE": sim_url, "NEMO_BOT_DB": str(tmp_path / "bot.db")}
    user = os.environ.get("USER") or __import__("getpass").getuser()
    (tmp_path / ".env").write_text(f"NEMO_ADMIN_USERS=99,terminal:{user}\n")
    admin = chat("help", "/stats", "/broadcast hello", cwd=tmp_path, env=env)
    assert admin.returncode == 0, admin.stderr
    assert "/stats" in admin.stdout and "📊 Stats" in admin.stdout
    assert "Users: 1 today" in admin.stdout
    assert "Broadcasts go to Telegram users" in admin.stdout

    # A request over an operator's limit is counted as limited.
    (tmp_path / ".env").write_text(
        f"NEMO_ADMIN_USERS=terminal:{user}\nNEMO_LIMIT_REQUESTS_PER_HOUR=1\n"
    )
    limited = chat("make a 5-second clip of a dog", "add music", "/stats", cwd=tmp_path, env=env)
    requests = limited.stdout.split("Requests (7 days):")[1].splitlines()[0]
    assert "limited 1" in requests, limited.stdout

    (tmp_path / ".env").write_text("NEMO_ADMIN_USERS=99\n")
    other = chat("help", "/stats", cwd=tmp_path, env=env)
    assert other.returncode == 2, other.stderr  # the exit status of an unknown command
    assert "/stats isn't a command I know" in other.stdout
    assert "Stats" not in other.stdout and "/broadcast" not in other.stdout


class Crash(BaseException):
    """The process dying: nothing after it runs (not even an ``except Exception``)."""


class InboxAdapter(CollectingAdapter):
    """A Telegram stand-in whose sends land in ``inbox`` the moment they are made.

    ``crash_at``: the send to that chat reaches the chat, then the process "dies"
    before its answer is read (once ``batch_end`` sends went out: its batch), and
    every later send of this adapter hangs, as in a dead process.
    """

    def __init__(
        self,
        inbox: list[str],
        *,
        crash_at: str | None = None,
        batch_end: int = 0,
        refused: frozenset[str] = frozenset(),
        unreadable: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__("telegram")
        self.inbox = inbox
        self.crash_at = crash_at
        self.batch_end = batch_end
        self.refused = refused
        self.unreadable = unreadable
        self.dead = asyncio.Event()

    async def send_bulk(self, chat_id: str, text: str) -> str:
        if self.dead.is_set():
            await asyncio.Event().wait()  # a dead process sends nothing more
        if chat_id in self.refused:
            return "failed"  # e.g. the user blocked the bot: nothing reached the chat
        self.inbox.append(chat_id)
        if chat_id == self.crash_at:
            # every other send of this batch is on its way too
            await wait_until(lambda: len(self.inbox) == self.batch_end, what="the batch sent")
            self.dead.set()
            raise Crash
        await asyncio.sleep(0)
        return "unconfirmed" if chat_id in self.unreadable else "sent"


#: The people of a pending broadcast, by user id (their chat ids are the same).
PEOPLE = [f"{n:02d}" for n in range(25)]


async def _pending_broadcast(path: Path) -> Settings:
    """A database at ``path`` with :data:`PEOPLE` and a broadcast nobody got yet; its settings."""
    async with make_store(path) as store:
        for user in PEOPLE:
            await store.note_contact("telegram", user, user)
        await store.start_broadcast("telegram", "news", admin_chat="7", admin_user="7")
    return Settings(_env_file=None, NEMO_BOT_DB=path, NEMO_ADMIN_USERS="7")  # type: ignore[call-arg]


@contextlib.asynccontextmanager
async def _admin(
    settings: Settings, store: Store, adapter: CollectingAdapter
) -> AsyncIterator[Admin]:
    """The admin tools over ``store``, broadcasting through ``adapter`` (no backend)."""
    async with NemoClient(base_url="http://127.0.0.1:9") as client:  # never called
        admin = Admin(settings=settings, store=store, client=client)
        admin.use({"telegram": adapter})
        yield admin


async def test_a_broadcast_cut_by_a_crash_mid_batch_reaches_everyone_exactly_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bot.db"
    settings = await _pending_broadcast(path)
    inbox: list[str] = []
    async with make_store(path) as store:
        crashing = InboxAdapter(
            inbox, crash_at="14", batch_end=2 * BATCH - 1, refused=frozenset({"03"})
        )
        async with _admin(settings, store, crashing) as admin:
            assert await admin.resume() == 1
            await wait_until(lambda: crashing.dead.is_set(), what="the crash")
            await asyncio.wait_for(admin.wait_idle(), 30)
            assert len(inbox) == 19  # the first batch (one refused) and all of the second
            assert crashing.repliers == {}  # no report from the dead run
    # The restart: a new process, a new store, the same database.
    async with make_store(path) as store:
        after = InboxAdapter(inbox, unreadable=frozenset({"22"}))
        async with _admin(settings, store, after) as admin:
            assert await admin.resume() == 1
            await asyncio.wait_for(admin.wait_idle(), 30)
        assert await store.unfinished_broadcasts() == []
    assert sorted(inbox) == [p for p in PEOPLE if p != "03"]  # each once, none twice
    (report,) = [r.all_text() for r in after.repliers.values()]
    assert report == (
        "📣 Broadcast done: 24 sent, 1 failed. 2 of them could not be confirmed "
        "(the connection broke while sending); they were not sent again."
    )


async def test_a_bot_killed_mid_broadcast_resumes_and_nobody_gets_it_twice(
    sim: Simulator, tg: FakeTelegram, tmp_path: Path
) -> None:
    """``nemo-bot telegram`` killed -9 with a batch on the wire, then started again."""
    db = tmp_path / "bot.db"
    people = [ADMIN, *range(1001, 1026)]
    async with make_store(db) as store:
        for user in people:
            await store.note_contact("telegram", str(user), str(user))
    news = "Big news: the broadcast survives a crash"
    sends = [0]

    def on_the_wire(call: Call) -> bool:
        """The first 12 broadcast messages are answered; later ones reach the chat only."""
        if call.method != "sendMessage" or call.params.get("text") != news:
            return False
        sends[0] += 1
        return sends[0] > 12

    tg.hold(on_the_wire)
    env = _tg_env(tg, sim, db, NEMO_ADMIN_USERS=str(ADMIN), NEMO_REPLICA_LEASE=2)
    bot = await start_telegram(tg, env, tmp_path)
    try:
        tg.private_text(ADMIN, f"/broadcast {news}")
        # Two batches went out: the first answered, 8 of the second held on the wire.
        await wait_until(lambda: len(tg.held) == 2 * BATCH - 12, within=60, what="batch 2")
        settled = "SELECT count(*) FROM broadcast_sends WHERE state = 'sent'"
        await wait_until(lambda: db_rows(db, settled) == [(12,)], what="12 recorded as sent")
        bot.signal(signal.SIGKILL)
        await bot.wait()
    finally:
        await bot.__aexit__()
    tg.release()
    assert sum(tg.texts(user).count(news) for user in people) == 2 * BATCH

    tg.garble("sendMessage")  # the first message after the restart: its answer is unreadable
    again = await start_telegram(tg, env, tmp_path)
    async with again:
        await tg.wait_for(lambda: "Broadcast done" in last(tg, ADMIN), within=60)
        again.signal(signal.SIGTERM)
        assert await again.wait() == 0
    for user in people:
        assert tg.texts(user).count(news) == 1, user  # exactly once each
    assert last(tg, ADMIN) == (
        "📣 Broadcast done: 26 sent, 0 failed. 9 of them could not be confirmed "
        "(the connection broke while sending); they were not sent again."
    )
    assert "Traceback" not in again.stderr


async def test_a_stop_lets_the_batch_on_its_way_finish_and_a_restart_goes_on(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bot.db"
    settings = await _pending_broadcast(path)
    inbox: list[str] = []
    go = asyncio.Event()

    class Slow(InboxAdapter):
        async def send_bulk(self, chat_id: str, text: str) -> str:
            self.inbox.append(chat_id)
            await go.wait()  # the answers come once the stop has begun
            return "sent"

    async with make_store(path) as store:
        async with _admin(settings, store, Slow(inbox)) as admin:
            await admin.resume()
            await wait_until(lambda: len(inbox) == BATCH, what="a batch on its way")
            closing = asyncio.create_task(admin.aclose())
            await asyncio.sleep(0)
            go.set()
            await asyncio.wait_for(closing, 30)
        assert len(inbox) == BATCH  # the stop came before the next batch
    async with make_store(path) as store:
        after = InboxAdapter(inbox)
        async with _admin(settings, store, after) as admin:
            assert await admin.resume() == 1
            await asyncio.wait_for(admin.wait_idle(), 30)
    assert sorted(inbox) == PEOPLE  # each once
    (report,) = [r.all_text() for r in after.repliers.values()]
    assert report == "📣 Broadcast done: 25 sent, 0 failed."  # the stopped batch: confirmed
