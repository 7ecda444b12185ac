"""Three ``nemo-bot telegram`` webhook replicas on one PostgreSQL database.

Real processes (``python -m bots.cli telegram --webhook-url ...``), a real
PostgreSQL server, the NemoVideo simulator and the fake Bot API, all on
127.0.0.1. The test plays Telegram: it posts each update to one replica's
webhook (round-robin), re-posts some to another replica, and kills replicas with
SIGKILL. What it checks is what Telegram users would see: every update answered
exactly once, one chat's messages in update order, and nothing lost or repeated
when a replica dies mid-stream or mid-render.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from core.retry import RetryPolicy
from simulator.config import SimConfig
from simulator.server import Simulator
from tests.conftest import fast_sim_config
from tests.fakes.procs import BotProcess, bot_env, wait_until
from tests.fakes.telegram_server import FakeTelegram

SECRET = "replica-test-secret"
HEADER = {"X-Telegram-Bot-Api-Secret-Token": SECRET}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Replica:
    """One ``nemo-bot telegram`` webhook process."""

    def __init__(self, name: str, proc: BotProcess, port: int) -> None:
        self.name = name
        self.proc = proc
        self.url = f"http://127.0.0.1:{port}/tg"


async def _start_replicas(
    n: int,
    *,
    tg: FakeTelegram,
    sim: Simulator,
    db: str,
    cwd: Path,
    lease: float,
    **extra: object,
) -> list[Replica]:
    replicas = []
    for i in range(n):
        port = _free_port()
        name = f"r{i}"
        env = bot_env(
            TELEGRAM_BOT_TOKEN=tg.token,
            TELEGRAM_API_BASE=tg.base_url,
            TELEGRAM_WEBHOOK_SECRET=SECRET,
            NEMO_API_BASE=sim.base_url,
            NEMO_BOT_DB=db,
            NEMO_REPLICA_NAME=name,
            NEMO_REPLICA_LEASE=lease,
            NEMO_LOG_LEVEL="INFO",
            **extra,
        )
        args = ("telegram", "--webhook-url", f"http://127.0.0.1:{port}/tg")
        args += ("--webhook-port", str(port), "--webhook-listen", "127.0.0.1")
        proc = await BotProcess(*args, env=env, cwd=cwd).start()
        replicas.append(Replica(name, proc, port))
    async with aiohttp.ClientSession() as http:
        for replica in replicas:
            await _wait_listening(http, replica)
    return replicas


async def _wait_listening(http: aiohttp.ClientSession, replica: Replica) -> None:
    """A POST without the secret is refused (403) once the webhook listens."""
    for _ in range(600):
        with contextlib.suppress(aiohttp.ClientError):
            async with http.post(replica.url, json={"update_id": 0}) as resp:
                if resp.status == 403:
                    return
        if replica.proc.proc is not None and replica.proc.proc.returncode is not None:
            break
        await asyncio.sleep(0.1)
    raise AssertionError(f"replica {replica.name} did not start:\n{replica.proc.stderr}")


@contextlib.asynccontextmanager
async def _replicas(n: int, **kwargs: Any) -> AsyncIterator[list[Replica]]:
    replicas = await _start_replicas(n, **kwargs)
    try:
        yield replicas
    finally:
        for replica in replicas:
            if replica.proc.proc is not None and replica.proc.proc.returncode is None:
                replica.proc.signal(signal.SIGTERM)
        for replica in replicas:
            await replica.proc.wait(30)
        for replica in replicas:
            assert "Traceback" not in replica.proc.stderr, replica.proc.stderr


async def _post(http: aiohttp.ClientSession, replica: Replica, update: dict[str, Any]) -> int:
    async with http.post(replica.url, json=update, headers=HEADER) as resp:
        return resp.status


def _update(tg: FakeTelegram, user_id: int, text: str) -> dict[str, Any]:
    """A private text message as Telegram would post it (a fresh ``update_id``)."""
    msg = tg.message(chat=tg.private_chat(user_id), user=tg.user(user_id), text=text)
    return tg.push({"message": msg})


def _prompts(sim: Simulator) -> list[str]:
    """The prompts the backend received, in order."""
    out = []
    for record in sim.backend.requests:
        if record.endpoint == "chat" and isinstance(record.json, dict):
            parts = (record.json.get("new_message") or {}).get("parts") or []
            out.append("".join(str(p.get("text", "")) for p in parts))
    return out


def _answered(tg: FakeTelegram, chat_id: int, key: Callable[[str], bool]) -> int:
    return sum(1 for text in tg.texts(chat_id) if key(text))


async def _until_handled(conn: asyncpg.Connection, *, within: float) -> None:
    """Wait until every stored update is marked done."""
    for _ in range(int(within / 0.2)):
        if not await conn.fetchval("SELECT count(*) FROM inbound_updates WHERE done_at IS NULL"):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"stored updates still not handled after {within} s")


CUT = "make a video of a lighthouse in a storm"


async def test_replicas_answer_every_update_once_and_a_chat_in_update_order(
    tg: FakeTelegram, sim: Simulator, pg_url: str, tmp_path: Path
) -> None:
    async with (
        _replicas(3, tg=tg, sim=sim, db=pg_url, cwd=tmp_path, lease=30.0) as replicas,
        aiohttp.ClientSession() as http,
    ):
        assert tg.webhook is not None and tg.webhook["secret_token"] == SECRET
        users = list(range(501, 513))
        updates = [_update(tg, user, "/help") for user in users]
        posts = [_post(http, replicas[i % 3], u) for i, u in enumerate(updates)]
        # Telegram re-sends an update it thinks was not answered, maybe to another replica.
        posts += [_post(http, replicas[(i + 1) % 3], updates[i]) for i in range(0, 12, 3)]
        assert set(await asyncio.gather(*posts)) == {200}
        for update in updates[:4]:  # and again, later, once it was handled
            assert await _post(http, replicas[2], update) == 200
        await wait_until(
            lambda: all(tg.texts(user) for user in users), within=60, what="every /help answered"
        )
        # Two messages of one user reach two replicas at the same moment.
        first = _update(tg, 600, "make a video of a red fox in the snow")
        second = _update(tg, 600, "add lo-fi music")
        assert await asyncio.gather(
            _post(http, replicas[1], first), _post(http, replicas[2], second)
        ) == [200, 200]
        await wait_until(
            lambda: (
                _prompts(sim).count("add lo-fi music") == 1
                and not any(t.startswith("⏳") for t in tg.texts(600)[-1:])
            ),
            within=60,
            what="both prompts handled",
        )
        await asyncio.sleep(1.0)  # anything doubled would show up by now
        for user in users:
            assert len(tg.texts(user)) == 1, (user, tg.texts(user))
        prompts = _prompts(sim)
        assert prompts.index("make a video of a red fox in the snow") < prompts.index(
            "add lo-fi music"
        )
        assert prompts.count("make a video of a red fox in the snow") == 1
        assert sim.stats["concurrent_chats"] == 0


@contextlib.asynccontextmanager
async def _three_replicas(
    config: SimConfig, tg: FakeTelegram, db: str, cwd: Path
) -> AsyncIterator[tuple[Simulator, list[Replica], aiohttp.ClientSession, asyncpg.Connection]]:
    """A simulator set up by ``config``, three replicas on it (3 s leases) sharing ``db``,
    an HTTP client to post updates with, and a connection to read the database."""
    async with (
        Simulator(config) as sim,
        _replicas(3, tg=tg, sim=sim, db=db, cwd=cwd, lease=3.0) as replicas,
        aiohttp.ClientSession() as http,
    ):
        conn = await asyncpg.connect(db)
        try:
            yield sim, replicas, http, conn
        finally:
            await conn.close()


async def _stages(conn: asyncpg.Connection) -> list[str]:
    """The recorded stage kinds of the stored updates nobody finished, in update order."""
    rows = await conn.fetch(
        "SELECT stage FROM inbound_updates WHERE done_at IS NULL ORDER BY update_id"
    )
    return [(r["stage"] or "-").partition(":")[0] for r in rows]


@pytest.mark.timeout(300)  # three replica processes and a 15 s step: slow on a busy machine
async def test_a_replica_killed_mid_stream_and_mid_render_loses_nothing(
    tg: FakeTelegram, pg_url: str, tmp_path: Path
) -> None:
    # The generation must still be streaming when the victim is killed: 15 s leaves room
    # for the queued message and its notice on a busy machine (6 s did not: the answer
    # was complete before the kill).
    config = fast_sim_config(slow_step_seconds=15.0, render_seconds=6.0)
    async with _three_replicas(config, tg, pg_url, tmp_path) as (sim, replicas, http, conn):
        victim = replicas[0]
        # A user with a project exports through the victim; the render runs 6 s.
        first = _update(tg, 701, "add a title that says hello")
        assert await _post(http, victim, first) == 200
        await _until_handled(conn, within=60)
        assert await _post(http, victim, _update(tg, 701, "/export")) == 200
        await wait_until(lambda: sim.stats["renders"] == 1, within=30, what="the render")
        # Another user's prompt reaches the backend through the victim (a 6 s
        # generation), and their next message is queued behind it: stored, answered,
        # not yet run.
        assert await _post(http, victim, _update(tg, 702, CUT)) == 200
        await wait_until(lambda: CUT in _prompts(sim), within=30, what="the cut prompt sent")
        assert await _post(http, victim, _update(tg, 702, "add rain sounds")) == 200
        await wait_until(
            lambda: any("⏳" in t for t in tg.texts(702)), within=30, what="the queued notice"
        )
        victim.proc.signal(signal.SIGKILL)
        assert await victim.proc.wait() == -signal.SIGKILL
        assert len(tg.calls_of("sendVideo")) == 0  # killed mid-render
        assert await _stages(conn) == ["sent", "-"]  # mid-stream, and queued
        # The others take over: the render is delivered, the cut request is told what
        # happened (and not sent again), the queued one runs.
        await _until_handled(conn, within=90)
        await wait_until(lambda: len(tg.calls_of("sendVideo")) >= 1, within=90, what="the video")
        await asyncio.sleep(2.0)  # a second delivery or a resent prompt would show by now
        assert len(tg.calls_of("sendVideo")) == 1
        assert sim.stats["renders"] == 1
        assert _prompts(sim).count(CUT) == 1
        assert _prompts(sim).count("add rain sounds") == 1
        assert any("dropped before it finished" in t for t in tg.texts(702)), tg.texts(702)


@pytest.mark.timeout(300)  # three replica processes, a chat turn and a render: slow when busy
async def test_a_replica_killed_mid_upload_and_mid_export_submit_sends_nothing_twice(
    tg: FakeTelegram, pg_url: str, tmp_path: Path, png: bytes
) -> None:
    # The backend takes each call at once but answers it 60 s late (the upload that
    # stalls: takes nothing for 60 s), so the victim dies with all three on their way
    # (the kill comes right after the export reaches the backend, well within the
    # bot's 30 s wait for that answer).
    config = fast_sim_config(render_seconds=3.0, late_answer_seconds=60.0)
    async with _three_replicas(config, tg, pg_url, tmp_path) as (sim, replicas, http, conn):
        victim = replicas[0]
        # A user with a project to export.
        assert await _post(http, victim, _update(tg, 711, "add a title that says hello")) == 200
        await _until_handled(conn, within=60)
        # A photo that reaches the backend (its answer is late) ...
        sim.inject("late_answer", endpoint="upload")
        arrives = tg.photo(tg.private_chat(712), 712, png, caption="use it as the opening")
        assert await _post(http, victim, tg.push({"message": arrives})) == 200
        await wait_until(lambda: sim.stats["uploads"] == 1, within=30, what="the file stored")
        # ... a photo the backend never takes ...
        sim.inject("upload_stalls", endpoint="upload")
        stalls = tg.photo(tg.private_chat(713), 713, png)
        assert await _post(http, victim, tg.push({"message": stalls})) == 200
        await wait_until(lambda: sim.stats["upload"] == 2, within=30, what="the 2nd upload")
        # ... and an export the backend starts (its answer is late).
        sim.inject("late_answer", endpoint="render")
        assert await _post(http, victim, _update(tg, 711, "/export")) == 200
        await wait_until(lambda: sim.stats["renders"] == 1, within=30, what="the render")
        victim.proc.signal(signal.SIGKILL)
        assert await victim.proc.wait() == -signal.SIGKILL
        # The victim died with all three sent and unanswered.
        assert await _stages(conn) == ["upload", "upload", "export"]
        assert not tg.texts(712) and not tg.texts(713)
        # The others take them over: the render is followed and delivered, the
        # users of the uploads are told what the session's state shows.
        await _until_handled(conn, within=90)
        await wait_until(lambda: len(tg.calls_of("sendVideo")) >= 1, within=90, what="the video")
        await wait_until(
            lambda: _prompts(sim).count("use it as the opening") == 1,
            within=60,
            what="the caption's turn",
        )
        await wait_until(
            lambda: any("send it again" in t for t in tg.texts(713)),
            within=60,
            what="the second user told",
        )
        await asyncio.sleep(2.0)  # a second delivery, render or upload would show by now
        assert len(tg.calls_of("sendVideo")) == 1
        assert sim.stats["render"] == 1 and sim.stats["renders"] == 1
        assert sim.stats["upload"] == 2 and sim.stats["uploads"] == 1
        arrived = tg.texts(712)
        assert any("reached your project" in t for t in arrived), arrived
        assert not any("may not have arrived" in t for t in arrived), arrived
        # The caption had not been sent: it runs once the file is known to be there.
        assert _prompts(sim).count("use it as the opening") == 1
        unknown = tg.texts(713)
        assert any("may not have arrived" in t and "send it again" in t for t in unknown), unknown
        assert not any("reached your project" in t or "Added" in t for t in unknown), unknown
        video_chat = tg.calls_of("sendVideo")[0].params["chat_id"]
        assert int(video_chat) == 711


async def test_a_render_still_being_submitted_is_not_taken_over_by_another_replica(
    tg: FakeTelegram, pg_url: str, tmp_path: Path
) -> None:
    """The backend takes the export only after 8 s (its status: not found until then),
    longer than the lease: the other replica, looking for renders nobody follows every
    5 s, must not follow it meanwhile (it would tell the user it never started)."""
    config = fast_sim_config(render_seconds=1.0, late_answer_seconds=8.0)
    async with (
        Simulator(config) as sim,
        _replicas(2, tg=tg, sim=sim, db=pg_url, cwd=tmp_path, lease=2.0) as replicas,
        aiohttp.ClientSession() as http,
    ):
        assert await _post(http, replicas[0], _update(tg, 731, "add a title that says hi")) == 200
        await wait_until(lambda: tg.texts(731), within=60, what="the first answer")
        sim.inject("render_stalls", endpoint="render")
        assert await _post(http, replicas[0], _update(tg, 731, "/export")) == 200
        await wait_until(lambda: len(tg.calls_of("sendVideo")) >= 1, within=90, what="the video")
        await asyncio.sleep(2.0)  # a second delivery would show by now
        assert len(tg.calls_of("sendVideo")) == 1
        assert sim.stats["render"] == 1 and sim.stats["fault_render_stalls"] == 1
        assert not any("failed" in t for t in tg.texts(731)), tg.texts(731)


@pytest.mark.timeout(300)
async def test_one_webhook_process_on_sqlite_killed_mid_export_submit_and_restarted(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    """No replicas: the next start resumes the recorded render and takes the update over;
    the render is submitted once and delivered once."""
    db = str(tmp_path / "bot.db")
    config = fast_sim_config(render_seconds=2.0, late_answer_seconds=40.0)
    async with Simulator(config) as sim, aiohttp.ClientSession() as http:
        async with _replicas(1, tg=tg, sim=sim, db=db, cwd=tmp_path, lease=2.0) as [first]:
            assert await _post(http, first, _update(tg, 721, "add a title that says hello")) == 200
            await wait_until(lambda: tg.texts(721), within=60, what="the first answer")
            sim.inject("late_answer", endpoint="render")
            assert await _post(http, first, _update(tg, 721, "/export")) == 200
            await wait_until(lambda: sim.stats["renders"] == 1, within=30, what="the render")
            first.proc.signal(signal.SIGKILL)
            assert await first.proc.wait() == -signal.SIGKILL
        async with _replicas(1, tg=tg, sim=sim, db=db, cwd=tmp_path, lease=2.0) as [second]:
            await wait_until(
                lambda: len(tg.calls_of("sendVideo")) >= 1, within=90, what="the video"
            )
            await wait_until(
                lambda: "taken over (attempt 2, stage export:" in second.proc.stderr,
                within=30,
                what="the cut update taken over",
            )
            await asyncio.sleep(2.0)  # a second render or delivery would show by now
        assert len(tg.calls_of("sendVideo")) == 1
        assert sim.stats["render"] == 1 and sim.stats["renders"] == 1


async def test_one_webhook_process_on_sqlite_killed_mid_upload_says_what_it_could_not_check(
    tg: FakeTelegram, tmp_path: Path, png: bytes
) -> None:
    """The restart cannot read the session's state: the user is told the file could not
    be checked (not that the project does not show it); it is not sent again, and the
    caption's instruction waits for the user."""
    db = str(tmp_path / "bot.db")
    config = fast_sim_config(late_answer_seconds=40.0)
    async with Simulator(config) as sim, aiohttp.ClientSession() as http:
        async with _replicas(1, tg=tg, sim=sim, db=db, cwd=tmp_path, lease=2.0) as [first]:
            sim.inject("late_answer", endpoint="upload")
            photo = tg.photo(tg.private_chat(731), 731, png, caption="use it as the opening")
            assert await _post(http, first, tg.push({"message": photo})) == 200
            await wait_until(lambda: sim.stats["uploads"] == 1, within=60, what="the file stored")
            first.proc.signal(signal.SIGKILL)
            assert await first.proc.wait() == -signal.SIGKILL
        # Every try of the next state read fails (the backend is down for it).
        sim.inject("server_error", count=RetryPolicy().attempts, endpoint="state")
        async with _replicas(1, tg=tg, sim=sim, db=db, cwd=tmp_path, lease=2.0):
            await wait_until(
                lambda: any("could not check" in t for t in tg.texts(731)),
                within=90,
                what="the user told",
            )
            await asyncio.sleep(2.0)  # a second upload or a caption's turn would show by now
    [told] = tg.texts(731)  # that alone: no "does not show it", no "Added"
    assert re.fullmatch(
        r"⚠️ I was interrupted while sending photo\S*\.jpg, and I could not check whether it "
        r"reached your project\. Say status to see your timeline, and send it again if it "
        r"is not there\.",
        told,
    ), told
    assert sim.stats["upload"] == 1 and sim.stats["uploads"] == 1  # not sent again
    assert "use it as the opening" not in _prompts(sim)


async def test_replicas_share_the_overall_budget(
    pg_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """Three replicas at TELEGRAM_OVERALL_RATE=4 never send more than 4 messages a second."""
    rate = 4
    async with (
        FakeTelegram(overall_rate=rate) as tg,
        _replicas(
            3, tg=tg, sim=sim, db=pg_url, cwd=tmp_path, lease=30.0, TELEGRAM_OVERALL_RATE=rate
        ) as replicas,
        aiohttp.ClientSession() as http,
    ):
        users = list(range(801, 821))
        updates = [_update(tg, user, "/help") for user in users]
        posts = [_post(http, replicas[i % 3], u) for i, u in enumerate(updates)]
        assert set(await asyncio.gather(*posts)) == {200}
        await wait_until(
            lambda: all(tg.texts(user) for user in users), within=90, what="every /help answered"
        )
        sent = sorted(c.at for c in tg.calls if c.method == "sendMessage" and c.status == 200)
    assert len(sent) == len(users)
    assert tg.hits == {} or sum(tg.hits.values()) == 0, tg.hits
    for i in range(len(sent) - rate):  # no one-second window holds more than the budget
        assert sent[i + rate] - sent[i] >= 1.0, sent[i : i + rate + 1]
    # Spread over 20/4 = 5 s at least: the budget was not multiplied by the replicas.
    assert sent[-1] - sent[0] >= (len(users) - rate) / rate


async def test_one_webhook_process_on_sqlite_answers_a_redelivered_update_once(
    tg: FakeTelegram, sim: Simulator, tmp_path: Path
) -> None:
    db = str(tmp_path / "bot.db")
    async with (
        _replicas(1, tg=tg, sim=sim, db=db, cwd=tmp_path, lease=30.0) as [replica],
        aiohttp.ClientSession() as http,
    ):
        update = _update(tg, 901, "/help")
        assert await _post(http, replica, update) == 200
        await wait_until(lambda: tg.texts(901), within=30, what="the answer")
        assert await _post(http, replica, update) == 200  # Telegram re-delivers it
        other = _update(tg, 902, "/help")
        assert await _post(http, replica, other) == 200
        await wait_until(lambda: tg.texts(902), within=30, what="the next update's answer")
        await asyncio.sleep(0.5)
        assert len(tg.texts(901)) == 1
        bad = dict(update, update_id=update["update_id"] + 1000)
        async with http.post(replica.url, json=bad) as resp:  # no secret header
            assert resp.status == 403
        async with http.post(replica.url, data=b"{not json", headers=HEADER) as resp:
            assert resp.status == 400
